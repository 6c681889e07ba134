"""Uniform selections on the real NaCl pool: statistics of what is selected, not only shapes."""

import numpy as np
import pytest

from aiida_mlpot.selection import (
    MissingPropertyError,
    PerAtomValues,
    SelectionError,
    energy_per_atom,
    per_atom_energies,
    per_atom_force_magnitudes,
    select_random,
    select_uniform_atomic_energy,
    select_uniform_energy,
    select_uniform_force,
    select_uniform_values,
)

N_SELECT = 40
N_BINS = 10


def _selected_values(values: PerAtomValues, indices) -> np.ndarray:
    return np.concatenate([values.values[values.owner == i] for i in indices])


def _bin_count_variance(samples: np.ndarray, pool_values: np.ndarray) -> float:
    edges = np.linspace(pool_values.min(), pool_values.max(), N_BINS + 1)
    return float(np.histogram(samples, edges)[0].var())


@pytest.mark.e2e
@pytest.mark.parametrize(
    ('selector', 'extract'),
    [(select_uniform_force, per_atom_force_magnitudes), (select_uniform_atomic_energy, per_atom_energies)],
    ids=['force', 'atomic_energy'],
)
def test_per_atom_uniform_reaches_tail_and_is_flatter(nacl_pool, selector, extract):
    """The top of the per-atom distribution is reached and the histogram of all selected atoms is flatter."""
    values = extract(nacl_pool)
    p99 = np.percentile(values.values, 99)
    uniform_var, random_var, uniform_tail, random_tail = [], [], [], []
    for seed in range(5):
        picks = selector(nacl_pool, N_SELECT, seed=seed)
        assert len(picks) == N_SELECT
        assert len(np.unique(picks)) == N_SELECT
        selected = _selected_values(values, picks)
        assert selected.max() >= p99
        uniform_var.append(_bin_count_variance(selected, values.values))
        uniform_tail.append(np.mean(selected > p99))
    for seed in range(20):
        selected = _selected_values(values, select_random(nacl_pool, N_SELECT, seed=seed))
        random_var.append(_bin_count_variance(selected, values.values))
        random_tail.append(np.mean(selected > p99))
    assert np.mean(uniform_var) < np.mean(random_var)
    # The tail above the pool's 99th percentile is over-represented compared with random picks.
    assert np.mean(uniform_tail) > 1.5 * np.mean(random_tail)


@pytest.mark.e2e
def test_uniform_energy_flat_histogram(nacl_pool):
    """The energy per atom of the selection is close to flat, much flatter than a random selection."""
    epa = energy_per_atom(nacl_pool)
    edges = np.linspace(epa.min(), epa.max(), N_BINS + 1)
    uniform = [
        np.histogram(epa[select_uniform_energy(nacl_pool, N_SELECT, seed=s)], edges)[0].var()
        for s in range(5)
    ]
    random = [
        np.histogram(epa[select_random(nacl_pool, N_SELECT, seed=s)], edges)[0].var() for s in range(20)
    ]
    assert np.mean(uniform) < 0.5 * np.mean(random)
    picks = select_uniform_energy(nacl_pool, N_SELECT, seed=0)
    assert epa[picks].max() >= np.percentile(epa, 99)
    assert epa[picks].min() <= np.percentile(epa, 1)


@pytest.mark.e2e
@pytest.mark.parametrize(
    'selector', [select_uniform_force, select_uniform_atomic_energy, select_uniform_energy]
)
def test_same_seed_same_picks(nacl_pool, selector):
    first = selector(nacl_pool, N_SELECT, seed=11)
    np.testing.assert_array_equal(first, selector(nacl_pool, N_SELECT, seed=11))
    assert not np.array_equal(first, selector(nacl_pool, N_SELECT, seed=12))


@pytest.mark.e2e
def test_arrays_and_frames_agree(nacl_pool):
    """The fast array path gives the same picks as the list-of-Atoms path."""
    forces = np.stack([atoms.arrays['forces'] for atoms in nacl_pool])
    energies = np.stack([atoms.arrays['energies'] for atoms in nacl_pool])
    np.testing.assert_array_equal(
        select_uniform_force(forces, 30, seed=3), select_uniform_force(nacl_pool, 30, seed=3)
    )
    magnitudes = np.linalg.norm(forces, axis=2)
    np.testing.assert_array_equal(
        select_uniform_force(magnitudes, 30, seed=3), select_uniform_force(forces, 30, seed=3)
    )
    np.testing.assert_array_equal(
        select_uniform_atomic_energy(energies, 30, seed=3),
        select_uniform_atomic_energy(nacl_pool, 30, seed=3),
    )
    totals = np.array([atoms.info['energy'] for atoms in nacl_pool])
    np.testing.assert_array_equal(
        select_uniform_energy(totals, 30, seed=3, natoms=np.full(len(totals), 64)),
        select_uniform_energy(nacl_pool, 30, seed=3),
    )


def test_nearest_free_configuration_is_exact():
    """Each target takes the nearest configuration not yet taken, even when the neighbours are taken."""
    # Configuration k holds values around k; many atoms per configuration, so windows must grow.
    rng = np.random.default_rng(0)
    values = np.repeat(np.arange(50, dtype=float), 200)[:, None] + rng.random((10000, 1)) * 1e-3
    per_atom = PerAtomValues(values.ravel(), np.repeat(np.arange(50), 200), 50)
    picks = select_uniform_values(per_atom, 49, seed=0)
    assert len(np.unique(picks)) == 49
    assert set(picks) <= set(range(50))
    # With one target per stratum of width 49/49, the picks cover the whole range.
    assert picks.min() == 0
    assert picks.max() == 49


def test_whole_pool_and_allow_fewer(synthetic_pool):
    assert sorted(select_uniform_force(synthetic_pool, 30, seed=0)) == list(range(30))
    assert len(select_uniform_force(synthetic_pool, 50, seed=0, allow_fewer=True)) == 30
    with pytest.raises(SelectionError, match='50 configurations requested but the pool holds only 30'):
        select_uniform_force(synthetic_pool, 50, seed=0)


@pytest.mark.parametrize(
    ('selector', 'prop', 'where'),
    [
        (select_uniform_force, 'forces', 'arrays'),
        (select_uniform_atomic_energy, 'energies', 'arrays'),
        (select_uniform_energy, 'energy', 'info'),
    ],
)
def test_missing_property_is_named(synthetic_pool, selector, prop, where):
    del getattr(synthetic_pool[3], where)[prop]
    with pytest.raises(MissingPropertyError, match=f"needs the property '{prop}'.*configurations \\[3\\]"):
        selector(synthetic_pool, 5, seed=0)


def test_empty_pool_and_bad_counts():
    with pytest.raises(SelectionError, match='pool is empty'):
        select_uniform_force([], 5, seed=0)
    with pytest.raises(SelectionError, match='must be positive'):
        select_uniform_energy(np.arange(5.0), 0, seed=0)
    with pytest.raises(SelectionError, match='NaN'):
        select_uniform_energy(np.array([1.0, np.nan, 2.0]), 2, seed=0)


def test_labels_from_calculator(synthetic_pool):
    """Frames labelled only through a calculator are accepted."""
    from ase.calculators.singlepoint import SinglePointCalculator

    frames = []
    for atoms in synthetic_pool:
        bare = atoms.copy()
        forces = bare.arrays.pop('forces')
        bare.calc = SinglePointCalculator(bare, forces=forces)
        frames.append(bare)
    np.testing.assert_array_equal(
        select_uniform_force(frames, 10, seed=1), select_uniform_force(synthetic_pool, 10, seed=1)
    )


def test_window_search_matches_brute_force():
    """The sorted/windowed search picks exactly what a brute-force nearest-free search picks."""
    from aiida_mlpot.selection.uniform import uniform_targets

    rng = np.random.default_rng(5)
    n_configs, n_atoms, n = 300, 16, 120
    values = rng.gamma(2.0, 1.0, size=(n_configs, n_atoms))
    picks = select_uniform_values(values, n, seed=9)

    flat, owner = values.ravel(), np.repeat(np.arange(n_configs), n_atoms)
    targets = uniform_targets(flat.min(), flat.max(), n, np.random.default_rng(9))
    taken = np.zeros(n_configs, dtype=bool)
    expected = []
    for target in targets:
        distance = np.where(taken[owner], np.inf, np.abs(flat - target))
        choice = owner[np.argmin(distance)]
        taken[choice] = True
        expected.append(choice)
    np.testing.assert_array_equal(picks, np.sort(expected))
