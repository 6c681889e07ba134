"""Known-answer tests of the MSD and the Einstein diffusion coefficients."""

import numpy as np
import pytest
from ase import Atoms
from ase.build import bulk

from aiida_mlpot.analysis.dynamics import diffusion_coefficients, mean_squared_displacement, unwrap_positions

CELL = np.array([[9.0, 0.0, 0.0], [2.0, 8.5, 0.0], [1.0, -1.5, 9.5]])  # triclinic


def random_walk(diffusion, n_frames=600, dt_fs=10.0, seed=1):
    """Frames of a Gaussian random walk, wrapped into a triclinic cell: <Δx²> = 2 D dt per direction."""
    rng = np.random.default_rng(seed)
    symbols = list(diffusion)
    n_each = 100
    sigma = np.concatenate([np.full(n_each, np.sqrt(2 * diffusion[s] * dt_fs / 1000.0)) for s in symbols])
    steps = rng.normal(size=(n_frames, len(sigma), 3)) * sigma[None, :, None]
    steps[0] = rng.random((len(sigma), 3)) @ CELL  # start positions
    positions = np.cumsum(steps, axis=0)
    frames = []
    for frame in positions:
        atoms = Atoms([s for s in symbols for _ in range(n_each)], positions=frame, cell=CELL, pbc=True)
        atoms.wrap()
        frames.append(atoms)
    return frames, positions


def test_unwrap_recovers_the_true_trajectory():
    frames, positions = random_walk({'Na': 0.5})
    assert not np.allclose(frames[-1].positions, positions[-1])  # the wrapped frames do jump
    np.testing.assert_allclose(unwrap_positions(frames) - positions[0], positions - positions[0], atol=1e-9)


def test_random_walk_gives_its_diffusion_coefficient_per_species():
    truth = {'Cl': 0.05, 'Na': 0.2}  # Å²/ps
    frames, _ = random_walk(truth)
    result = diffusion_coefficients(frames, timestep_fs=10.0)
    assert sorted(result) == ['Cl', 'Na']
    for species, value in truth.items():
        assert result[species]['diffusion'] == pytest.approx(value, rel=0.1)
        assert result[species]['fit_start_ps'] == pytest.approx(0.6)
        assert result[species]['fit_end_ps'] == pytest.approx(3.0)
        # two halves of 300 frames: a crude error of a few per cent, of the size of the actual error
        assert 0.0 < result[species]['diffusion_sem'] < 0.1 * value
    lags, msd = mean_squared_displacement(frames, timestep_fs=10.0)
    assert lags[1] == pytest.approx(0.01)
    assert msd['Na'][0] == pytest.approx(0.0, abs=1e-4)  # freud's FFT: round-off only
    # MSD(t) = 6 D t at short lags, where every origin contributes
    assert msd['Na'][10] == pytest.approx(6 * 0.2 * lags[10], rel=0.1)


def test_vibrating_drifting_crystal_does_not_diffuse():
    rng = np.random.default_rng(5)
    crystal = bulk('Cu', 'fcc', a=3.6, cubic=True).repeat(3)
    frames = []
    for t in range(300):
        atoms = crystal.copy()
        atoms.positions += rng.normal(scale=0.1, size=atoms.positions.shape) + np.array([0.02, 0.01, 0.0]) * t
        atoms.wrap()
        frames.append(atoms)
    still = diffusion_coefficients(frames, timestep_fs=10.0)['Cu']['diffusion']
    assert abs(still) < 1e-3  # against 0.05-0.2 Å²/ps for the random walks above
    drifting = diffusion_coefficients(frames, timestep_fs=10.0, remove_drift=False)['Cu']['diffusion']
    assert drifting > 0.1  # ballistic drift, which remove_drift takes out


def test_already_unwrapped_positions_are_taken_as_they_are():
    frames, positions = random_walk({'Na': 0.2}, n_frames=100)
    unwrapped_frames = [
        Atoms(f.get_chemical_symbols(), positions=p, cell=CELL, pbc=True) for f, p in zip(frames, positions)
    ]
    lags, from_wrapped = mean_squared_displacement(frames, 10.0)
    _, from_unwrapped = mean_squared_displacement(unwrapped_frames, 10.0, unwrapped=True)
    np.testing.assert_allclose(from_wrapped['Na'], from_unwrapped['Na'], rtol=1e-6, atol=1e-9)


def test_invalid_arguments():
    frames, _ = random_walk({'Na': 0.2}, n_frames=5)
    with pytest.raises(ValueError, match='fit window'):
        diffusion_coefficients(frames, 10.0, fit_start=0.1, fit_end=0.3)
    with pytest.raises(ValueError, match='fit_start'):
        diffusion_coefficients(frames, 10.0, fit_start=0.6, fit_end=0.5)
    with pytest.raises(ValueError, match='timestep_fs'):
        diffusion_coefficients(frames, 0.0)
    with pytest.raises(ValueError, match='same number of atoms'):
        unwrap_positions([frames[0], frames[1][:-1]])
