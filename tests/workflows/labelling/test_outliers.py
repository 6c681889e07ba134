"""Tests of the pure outlier guard."""

import numpy as np
from ase.build import bulk

from aiida_mlpot.analysis.outliers import check_geometry, find_outliers, min_pair_distance


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


def test_min_pair_distance_uses_minimum_image():
    atoms = bulk('NaCl', 'rocksalt', a=5.64, cubic=True)
    assert abs(min_pair_distance(atoms) - 2.82) < 1e-9
    atoms.positions[0] = atoms.positions[-1] + [0.0, 0.0, 0.3]
    assert abs(min_pair_distance(atoms) - 0.3) < 1e-9
    assert 'min pair distance 0.300' in check_geometry(atoms, 1.0)
    assert check_geometry(bulk('NaCl', 'rocksalt', a=5.64, cubic=True), 1.0) is None


def test_each_criterion_flags_its_frame():
    frames = _frames(10)
    frames[2].positions[1] = frames[2].positions[0] + [0.4, 0.0, 0.0]
    frames[5].arrays['forces'][3] = [80.0, 0.0, 0.0]
    frames[7].info['energy'] += 5.0 * len(frames[7])
    outliers = find_outliers(frames)
    assert set(outliers) == {2, 5, 7}
    assert 'min pair distance' in outliers[2]
    assert '|F| max 80' in outliers[5]
    assert 'robust sigmas' in outliers[7]


def test_energy_check_needs_enough_frames_and_respects_overrides():
    frames = _frames(3)
    frames[0].info['energy'] += 100.0
    assert find_outliers(frames) == {}
    assert set(find_outliers(frames, min_frames_for_energy=3)) == {0}
    assert find_outliers(_frames(), max_force=0.1)  # every frame has |F| > 0.1
