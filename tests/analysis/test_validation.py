"""Tests of the validation comparisons: known differences give the verdicts they must."""

import numpy as np
import pytest
from ase import Atoms
from ase.build import bulk
from ase.calculators.emt import EMT
from ase.calculators.lj import LennardJones

from aiida_mlpot.analysis.validation import (
    TOLERANCES,
    check_tolerances,
    compare_density,
    compare_diffusion,
    compare_solid,
    compare_structure,
    overall_verdict,
    solid_properties,
)


def rattled(atoms, n_frames, scale, seed):
    rng = np.random.default_rng(seed)
    frames = []
    for _ in range(n_frames):
        frame = atoms.copy()
        frame.positions += rng.normal(scale=scale, size=frame.positions.shape)
        frames.append(frame)
    return frames


def test_check_tolerances_names_the_bad_key():
    assert check_tolerances({'rdf_delta_g': 0.5}) is None
    assert 'rdf_delta' in check_tolerances({'rdf_delta': 0.5})
    assert 'must be a number' in check_tolerances({'density_relative': 'small'})
    with pytest.raises(ValueError, match='unknown tolerance `nope`'):
        compare_solid({}, {}, tolerances={'nope': 1})


def test_overall_verdict():
    assert overall_verdict({'a': {'verdict': 'pass'}, 'b': {'c': {'verdict': 'pass'}}}) == 'pass'
    assert overall_verdict({'a': {'verdict': 'inconclusive'}, 'b': {'verdict': 'pass'}}) == 'inconclusive'
    assert overall_verdict({'a': {'verdict': 'inconclusive'}, 'b': {'x': {'verdict': 'fail'}}}) == 'fail'


def test_structure_same_crystal_passes_and_close_contacts_fail():
    crystal = bulk('NaCl', 'rocksalt', a=5.64, cubic=True).repeat(2)
    reference = rattled(crystal, 40, 0.1, seed=1)
    same = rattled(crystal, 40, 0.1, seed=2)
    result = compare_structure(same, reference, r_max=5.5, n_bins=55)
    assert result['verdict'] == 'pass'
    assert sorted(result['pairs']) == ['Cl-Cl', 'Cl-Na', 'Na-Na']
    for pair in result['pairs'].values():
        assert pair['delta_g'] < 0.3 and pair['artefact'] is None
        # the noise estimate from the reference's two halves is of the size of the difference itself
        assert 0.2 < pair['delta_g_noise'] / pair['delta_g'] < 5
    assert len(result['rdfs']['Cl-Na']['r']) == 55
    # 5 frames of 64 ions in 110 bins: too noisy to tell
    few = compare_structure(same[:5], reference[:5], r_max=5.5, n_bins=110)
    assert all(p['delta_g_noise'] > 0.15 for p in few['pairs'].values())
    assert few['verdict'] == 'inconclusive'
    broken = [frame.copy() for frame in same]
    for frame in broken:  # two Na ions pushed to 1.5 Å of each other
        na = [i for i, s in enumerate(frame.get_chemical_symbols()) if s == 'Na']
        frame.positions[na[1]] = frame.positions[na[0]] + [1.5, 0.0, 0.0]
    result = compare_structure(broken, reference, r_max=5.5, n_bins=55)
    assert result['verdict'] == 'fail'
    assert result['pairs']['Na-Na']['artefact']['r_first'] == pytest.approx(1.5, abs=0.1)


def test_structure_expanded_crystal_fails_on_delta_g():
    crystal = bulk('Cu', 'fcc', a=3.6, cubic=True).repeat(3)
    expanded = crystal.copy()
    expanded.set_cell(crystal.cell * 1.05, scale_atoms=True)
    result = compare_structure(
        rattled(expanded, 5, 0.05, 1), rattled(crystal, 5, 0.05, 2), r_max=5.0, n_bins=100
    )
    assert result['pairs']['Cu-Cu']['delta_g'] > TOLERANCES['rdf_delta_g']
    assert result['pairs']['Cu-Cu']['artefact'] is None
    assert result['verdict'] == 'fail'


def npt(scale_mean, n_frames, noise, seed, trend=0.0):
    rng = np.random.default_rng(seed)
    crystal = bulk('NaCl', 'rocksalt', a=5.64, cubic=True)
    frames = []
    for t in range(n_frames):
        frame = crystal.copy()
        scale = scale_mean + noise * rng.normal() + trend * t / n_frames
        frame.set_cell(crystal.cell * scale, scale_atoms=True)
        frames.append(frame)
    return frames


def test_density_verdicts():
    reference = npt(1.0, 400, 0.002, seed=1)
    # 1 % larger cell: density 3 % lower
    light = compare_density(npt(1.01, 400, 0.002, seed=2), reference)
    assert light['relative_error'] == pytest.approx(1 / 1.01**3 - 1, abs=0.002)
    assert light['verdict'] == light['density_verdict'] == 'fail'
    same = compare_density(npt(1.0, 400, 0.002, seed=3), reference)
    assert same['verdict'] == 'pass'
    assert same['drift']['verdict'] == 'pass'
    noisy = compare_density(npt(1.0, 40, 0.05, seed=4), reference)  # 15 % density noise, 32 frames
    assert noisy['relative_error_sem'] > 0.5 * TOLERANCES['density_relative']
    assert noisy['verdict'] == 'inconclusive'
    expanding = compare_density(npt(1.0, 400, 0.0, seed=5, trend=0.05), reference_density=2.165)
    assert expanding['drift']['verdict'] == 'fail'
    assert expanding['verdict'] == 'fail'
    with pytest.raises(ValueError, match='exactly one'):
        compare_density(reference)


def test_density_of_a_run_shorter_than_its_correlation_time_is_inconclusive():
    """Half a slow oscillation (a barostat period longer than the run) 10 % off: no verdict, not a fail."""
    reference = npt(1.0, 400, 0.002, seed=1)
    frames = npt(1.0, 40, 0.002, seed=2)
    for t, frame in enumerate(frames):
        frame.set_cell(frame.cell * (0.97 - 0.02 * np.sin(np.pi * t / len(frames))), scale_atoms=True)
    result = compare_density(frames, reference, discard=0.0)
    assert result['relative_error'] > 0.1
    assert result['converged'] is False
    assert result['density_verdict'] == 'inconclusive'
    assert compare_density(npt(1.0, 400, 0.002, seed=3), reference)['converged'] is True


def walk(diffusion, seed, n_frames=300, dt_fs=10.0, n_atoms=50):
    rng = np.random.default_rng(seed)
    cell = np.eye(3) * 10.0
    sigma = np.sqrt(2 * diffusion * dt_fs / 1000.0)
    positions = np.cumsum(rng.normal(scale=sigma, size=(n_frames, n_atoms, 3)), axis=0)
    return [Atoms(f'Ar{n_atoms}', positions=p, cell=cell, pbc=True) for p in positions]


def test_diffusion_verdicts():
    reference = walk(0.2, seed=1)
    assert compare_diffusion(walk(0.2, seed=2), reference, 10.0)['verdict'] == 'pass'
    slow = compare_diffusion(walk(0.1, seed=3), reference, 10.0)
    assert slow['species']['Ar']['relative_error'] == pytest.approx(-0.5, abs=0.15)
    assert slow['verdict'] == 'fail'
    assert slow['species']['Ar']['relative_error_sem'] < 0.15
    # 40 frames of 2 atoms: D uncertain by more than half the tolerance
    few = compare_diffusion(
        walk(0.2, seed=5, n_frames=40, n_atoms=2), walk(0.2, seed=6, n_frames=40, n_atoms=2), 10.0
    )
    assert few['species']['Ar']['relative_error_sem'] > 0.15
    assert few['verdict'] == 'inconclusive'  # errors of -80 % to +150 % seen over seeds: noise, not a verdict
    # the reference sampled every 20 fs instead of 10
    coarse = compare_diffusion(
        walk(0.2, seed=2), walk(0.2, seed=4, dt_fs=20.0), 10.0, reference_timestep_fs=20.0
    )
    assert coarse['verdict'] == 'pass'


def test_compare_solid_against_user_values():
    ours = {
        'lattice_constant': 3.59,
        'bulk_modulus_gpa': 134.0,
        'C11': 172.5,
        'C44': 60.0,
        'surface_energies_j_m2': {'111': 1.04, '100': 1.13},
        'vacancy_energy': 1.23,
        'phonon_frequencies': [[0, 0, 0], [5.0, 5.0, 7.0]],
        'phonon_min_frequency': -0.5,
    }
    reference = {
        'lattice_constant': 3.615,
        'bulk_modulus_gpa': 140.0,
        'C11': 176.0,
        'C44': 82.0,
        'surface_energies_j_m2': {'111': 1.3},
        'vacancy_energy': 1.28,
        'phonon_frequencies': [[0, 0, 0], [5.1, 5.1, 7.2]],
    }
    result = compare_solid(ours, reference)
    assert result['lattice_constant']['error'] == pytest.approx(3.59 / 3.615 - 1)
    assert result['lattice_constant']['verdict'] == 'pass'  # -0.7 %
    assert result['C44']['verdict'] == 'fail'  # -27 %
    assert 'C12' not in result  # not in the reference: not judged
    assert result['surface_energy_111']['verdict'] == 'fail'  # -20 %
    assert 'surface_energy_100' not in result
    assert result['vacancy_energy']['error'] == pytest.approx(-0.05)
    assert result['phonon_frequencies']['error'] == pytest.approx(0.2 / 7.2)
    assert result['phonon_stability']['verdict'] == 'fail'  # an imaginary mode at -0.5 THz
    assert result['verdict'] == 'fail'


def test_solid_properties_of_emt_copper_agree_with_themselves_not_with_lennard_jones():
    cu = bulk('Cu', 'fcc', a=3.6, cubic=True)
    wanted = ('eos', 'vacancy', 'surfaces')
    settings = {'surfaces': [(1, 1, 1)], 'surface_layers': 4, 'vacancy_supercell': (2, 2, 2)}
    emt = solid_properties(cu, EMT(), properties=wanted, **settings)
    assert emt['lattice_constant'] == pytest.approx(3.590, abs=0.002)
    assert emt['bulk_modulus_gpa'] == pytest.approx(134, abs=1.5)
    assert emt['surface_energies_j_m2']['111'] == pytest.approx(1.044, abs=0.01)
    assert emt['vacancy_energy'] == pytest.approx(1.228, abs=0.01)
    assert compare_solid(emt, emt)['verdict'] == 'pass'
    # a Lennard-Jones copper with the right nearest-neighbour distance but no many-body physics
    sigma = 3.590 / np.sqrt(2) / 2 ** (1 / 6)
    lj = solid_properties(
        cu, LennardJones(sigma=sigma, epsilon=0.3, rc=1.35 * sigma), properties=('eos', 'vacancy'), **settings
    )
    verdicts = compare_solid(lj, emt)
    assert verdicts['lattice_constant']['verdict'] == 'pass'
    assert verdicts['vacancy_energy']['verdict'] == 'fail'
    assert verdicts['verdict'] == 'fail'
    with pytest.raises(ValueError, match='unknown properties'):
        solid_properties(cu, EMT(), properties=('magic',))
