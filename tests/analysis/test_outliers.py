"""Tests of the pure outlier guard."""

import numpy as np
from ase.build import bulk

from aiida_mlpot.analysis.outliers import DEFAULT_GUARD, find_outliers, validate_guard


def _frames(n=8, seed=0):
    rng = np.random.default_rng(seed)
    frames = []
    for _ in range(n):
        atoms = bulk('NaCl', 'rocksalt', a=5.64, cubic=True)
        atoms.rattle(0.05, seed=int(rng.integers(1000)))
        atoms.info['energy'] = -3.0 * len(atoms) + rng.normal(0, 0.01)
        atoms.arrays['forces'] = rng.normal(0, 0.5, (len(atoms), 3))
        frames.append(atoms)
    return frames


def test_clean_set_has_no_outliers():
    assert find_outliers(_frames()) == {}


def test_geometry_check_uses_the_minimum_image():
    """Two atoms 0.3 Å apart across the periodic boundary are caught (the one kernel of analysis.geometry)."""
    frames = _frames(2)
    frames[1].positions[0] = [0.1, 0.0, 0.0]
    frames[1].positions[1] = [5.64 - 0.2, 0.0, 0.0]  # 0.3 Å away through the boundary, 5.34 Å inside the cell
    outliers = find_outliers(frames)
    assert set(outliers) == {1}
    assert 'interatomic distance 0.300 Å below 1.0 Å' in outliers[1]


def test_validate_guard():
    assert validate_guard(DEFAULT_GUARD) is None
    assert validate_guard({'max_force': 10}) is None
    assert 'unknown key `max_forces`' in validate_guard({'max_forces': 10})
    assert 'must be a number' in validate_guard({'max_force': 'big'})
    assert 'must be a number' in validate_guard({'max_force': True})


def test_each_criterion_flags_its_frame():
    frames = _frames(10)
    frames[2].positions[1] = frames[2].positions[0] + [0.4, 0.0, 0.0]
    frames[5].arrays['forces'][3] = [80.0, 0.0, 0.0]
    frames[7].info['energy'] += 5.0 * len(frames[7])
    outliers = find_outliers(frames)
    assert set(outliers) == {2, 5, 7}
    assert 'interatomic distance 0.400 Å' in outliers[2]
    assert '|F| max 80' in outliers[5]
    assert 'robust sigmas' in outliers[7]


def test_energy_check_needs_enough_frames_and_respects_overrides():
    frames = _frames(3)
    frames[0].info['energy'] += 100.0
    assert find_outliers(frames) == {}
    assert set(find_outliers(frames, min_frames_for_energy=3)) == {0}
    assert find_outliers(_frames(), max_force=0.1)  # every frame has |F| > 0.1
