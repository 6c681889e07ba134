"""Random and temporal selection (pure numpy, no AiiDA import)."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from aiida_mlpot.selection.base import SelectionError, check_count, is_frame_list

__all__ = ('select_random', 'select_temporal', 'trajectory_groups')


def _pool_size(pool) -> int:
    if isinstance(pool, int | np.integer) and not isinstance(pool, bool):
        return int(pool)
    return len(pool)


def select_random(pool, n: int, *, seed: int | None = None, allow_fewer: bool = False) -> np.ndarray:
    """Select ``n`` distinct configurations uniformly at random.

    :param pool: list of configurations, any sized sequence, or the number of configurations.
    :param n: number of configurations to select.
    :param seed: seed of the random generator (same seed, same picks).
    :param allow_fewer: select the whole pool instead of raising when it holds fewer than ``n``.
    :return: sorted indices into the pool.
    """
    n_pool = _pool_size(pool)
    n = check_count(n, n_pool, allow_fewer, 'random')
    rng = np.random.default_rng(seed)
    return np.sort(rng.choice(n_pool, size=n, replace=False))


def trajectory_groups(frames: Sequence, key: str = 'source_uuid') -> tuple[np.ndarray, np.ndarray]:
    """Return (trajectory id, time) per frame from ``info[key]`` and ``info['step']`` (or ``info['frame']``).

    Frames without ``info[key]`` form one trajectory; frames without a step keep their pool order.
    """
    labels = [str(atoms.info.get(key, '')) for atoms in frames]
    _, groups = np.unique(labels, return_inverse=True)
    times = np.array(
        [float(atoms.info.get('step', atoms.info.get('frame', index))) for index, atoms in enumerate(frames)]
    )
    return groups.astype(np.int64), times


def _apportion(sizes: np.ndarray, n: int) -> np.ndarray:
    """Split ``n`` over groups proportionally to ``sizes`` (largest remainder), never above a group's size."""
    quota = n * sizes / sizes.sum()
    counts = np.minimum(np.floor(quota).astype(np.int64), sizes)
    remainder = quota - counts
    while counts.sum() < n:
        room = counts < sizes
        order = np.argsort(-np.where(room, remainder, -np.inf), kind='stable')
        for group in order[: n - counts.sum()]:
            if room[group]:
                counts[group] += 1
                remainder[group] = -np.inf
        remainder[counts >= sizes] = -np.inf
    return counts


def select_temporal(
    pool,
    n: int,
    *,
    groups: np.ndarray | None = None,
    times: np.ndarray | None = None,
    trajectory_key: str = 'source_uuid',
    seed: int | None = None,
    allow_fewer: bool = False,
) -> np.ndarray:
    """Select ``n`` configurations evenly spaced in time within each trajectory.

    The ``n`` picks are shared among trajectories in proportion to their number of frames; within a
    trajectory of ``m`` frames sorted by time, ``k`` picks are the frames ``floor((j + 1/2) m / k)``.

    :param pool: list of ASE Atoms (trajectory from ``info[trajectory_key]``, time from ``info['step']``)
        or the number of configurations (then ``groups``/``times`` may be given as arrays).
    :param groups: trajectory id per configuration (overrides the one read from the frames).
    :param times: time (step) per configuration (overrides the one read from the frames).
    :param seed: unused (temporal selection is deterministic); accepted for a uniform signature.
    :return: sorted indices into the pool.
    """
    del seed
    n_pool = _pool_size(pool)
    n = check_count(n, n_pool, allow_fewer, 'temporal')
    if is_frame_list(pool):
        frame_groups, frame_times = trajectory_groups(pool, trajectory_key)
        groups = frame_groups if groups is None else groups
        times = frame_times if times is None else times
    groups = np.zeros(n_pool, dtype=np.int64) if groups is None else np.asarray(groups)
    times = np.arange(n_pool, dtype=float) if times is None else np.asarray(times, dtype=float)
    if groups.shape != (n_pool,) or times.shape != (n_pool,):
        raise SelectionError(f'temporal: groups and times must have shape ({n_pool},)')
    labels, inverse = np.unique(groups, return_inverse=True)
    sizes = np.bincount(inverse, minlength=len(labels))
    counts = _apportion(sizes, n)
    picks = []
    for group, k in enumerate(counts):
        if k == 0:
            continue
        members = np.flatnonzero(inverse == group)
        members = members[np.argsort(times[members], kind='stable')]
        m = len(members)
        picks.append(members[((np.arange(k) + 0.5) * m / k).astype(np.int64)])
    return np.sort(np.concatenate(picks))
