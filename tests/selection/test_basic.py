"""Random and temporal selection."""

import numpy as np
import pytest

from aiida_mlpot.selection import SelectionError, select_random, select_temporal


@pytest.mark.e2e
def test_random_seeded_distinct(nacl_pool):
    picks = select_random(nacl_pool, 50, seed=1)
    assert len(np.unique(picks)) == 50
    np.testing.assert_array_equal(picks, select_random(nacl_pool, 50, seed=1))
    assert not np.array_equal(picks, select_random(nacl_pool, 50, seed=2))
    assert picks.max() < len(nacl_pool)


def test_random_counts():
    assert len(select_random(10, 10, seed=0)) == 10
    assert len(select_random(10, 20, seed=0, allow_fewer=True)) == 10
    with pytest.raises(SelectionError, match='20 configurations requested but the pool holds only 10'):
        select_random(10, 20, seed=0)
    with pytest.raises(SelectionError, match='pool is empty'):
        select_random([], 1, seed=0)


def test_temporal_even_within_each_trajectory(synthetic_pool):
    """Two trajectories of 15 frames: 6 picks are 3 per trajectory, evenly spaced in step."""
    picks = select_temporal(synthetic_pool, 6)
    np.testing.assert_array_equal(picks, [2, 7, 12, 17, 22, 27])


def test_temporal_uses_steps_not_pool_order(synthetic_pool):
    reversed_pool = synthetic_pool[::-1]
    picks = select_temporal(reversed_pool, 6)
    steps = sorted(reversed_pool[i].info['step'] for i in picks)
    assert steps == [20, 70, 120, 170, 220, 270]


@pytest.mark.e2e
def test_temporal_real_pool_by_config_type(nacl_pool):
    """On the real pool (two temperatures), picks are shared evenly and spread over each run."""
    picks = select_temporal(nacl_pool, 20, trajectory_key='config_type')
    types = [nacl_pool[i].info['config_type'] for i in picks]
    assert types.count('T1100') == 10
    assert types.count('T1400') == 10
    steps = np.array(
        [nacl_pool[i].info['step'] for i in picks if nacl_pool[i].info['config_type'] == 'T1100']
    )
    assert np.all(np.diff(np.sort(steps)) > 0)
    spacing = np.diff(np.sort(steps))
    assert spacing.max() - spacing.min() <= 20  # one dump interval


def test_temporal_arrays_and_apportioning():
    groups = np.array([0] * 3 + [1] * 97)
    picks = select_temporal(100, 10, groups=groups)
    assert len(picks) == 10
    assert np.sum(picks < 3) == 0 or np.sum(picks < 3) == 1
    assert len(select_temporal(100, 100, groups=groups)) == 100
