"""Farthest-point sampling in SOAP space."""

import numpy as np
import pytest
from ase.build import bulk

from aiida_mlpot.selection import SelectionError, farthest_point_sampling, select_fps


def test_fps_geometry():
    """On points of a line the second pick is the end farthest from the (random) first one."""
    points = np.linspace(0.0, 1.0, 101)[:, None]
    for seed in range(5):
        picks = farthest_point_sampling(points, 3, seed=seed)
        assert picks[1] == (0 if picks[0] >= 50 else 100)
        assert len(np.unique(picks)) == 3
    with_reference = farthest_point_sampling(points, 2, reference=np.array([[0.0]]))
    np.testing.assert_array_equal(with_reference, [100, 50])


def test_fps_duplicates_never_picked_twice():
    points = np.zeros((10, 3))
    picks = farthest_point_sampling(points, 10, seed=1)
    assert sorted(picks) == list(range(10))
    with pytest.raises(SelectionError, match='pool holds only 10'):
        farthest_point_sampling(points, 11)


@pytest.mark.e2e
def test_fps_picks_planted_outlier(nacl_pool):
    """A crystal planted into the molten pool is among the first FPS picks, whatever the start."""
    crystal = bulk('NaCl', 'rocksalt', a=5.9, cubic=True).repeat((2, 2, 2))
    pool = list(nacl_pool[::4])
    pool.insert(17, crystal)
    soap = {'r_cut': 4.5, 'n_max': 4, 'l_max': 3}
    from aiida_mlpot.descriptors import average_soap

    features = average_soap(pool, soap)
    for seed in range(3):
        picks = farthest_point_sampling(features, 3, seed=seed)
        assert 17 in picks
        assert len(np.unique(picks)) == 3
    picks = select_fps(pool, 3, seed=0, soap=soap)
    assert 17 in picks[:2]
    np.testing.assert_array_equal(picks, select_fps(pool, 3, seed=0, soap=soap))
