"""Choices of the active-learning loop on visited frames: audit frames spread in time, distinct candidates."""

from __future__ import annotations

import numpy as np
import pytest
from ase.build import bulk

from aiida_mlpot.selection.active import choose_distinct, spread_in_time


def test_spread_in_time_includes_the_last_and_spreads():
    assert spread_in_time(range(1, 11), 2) == [5, 10]
    assert spread_in_time(range(1, 11), 3) == [4, 7, 10]
    assert spread_in_time([3, 4], 5) == [3, 4]
    assert spread_in_time([], 2) == [] and spread_in_time([1, 2], 0) == []


def _crystal():
    return bulk('NaCl', 'rocksalt', a=5.64, cubic=True)


def _rattled(seed: int, amplitude: float):
    atoms = _crystal()
    atoms.positions += np.random.default_rng(seed).normal(0.0, amplitude, atoms.positions.shape)
    return atoms


SOAP = {'r_cut': 4.0, 'n_max': 4, 'l_max': 3}


def test_choose_distinct_refuses_known_and_duplicates_keeps_order_of_scores():
    training = [_crystal()]
    known = _crystal()
    rattled = _rattled(1, 0.35)
    twin = rattled.copy()
    twin.positions += 1e-4
    compressed = _crystal()
    compressed.set_cell(compressed.cell * 0.85, scale_atoms=True)
    frames = [known, rattled, twin, compressed]
    scores = [0.9, 0.5, 0.6, 0.1]
    choice = choose_distinct(frames, scores, training, max_n=5, min_distance=0.02, soap=SOAP)
    assert choice.novelty[0] < 0.02 < min(choice.novelty[1:])
    assert choice.kept == [2, 3]  # the twin scores higher than its original; the known frame is refused
    assert choice.refused[0].startswith('known') and choice.refused[1].startswith('duplicate')


def test_choose_distinct_caps_and_ranks_missing_scores_first():
    training = [_crystal()]
    frames = [_rattled(seed, 0.3) for seed in range(4)]
    choice = choose_distinct(frames, [0.2, None, 0.5, 0.1], training, max_n=2, min_distance=0.01, soap=SOAP)
    assert choice.kept == [1, 2]
    assert sorted(choice.refused) == [0, 3] and 'max_per_iteration=2' in choice.refused[0]


def test_choose_distinct_checks_lengths():
    with pytest.raises(ValueError, match='2 candidates but 1 scores'):
        choose_distinct([_crystal(), _crystal()], [0.1], [_crystal()], 1, 0.1)
