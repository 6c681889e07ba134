"""Farthest-point sampling in SOAP space (pure numpy + dscribe, no AiiDA import)."""

from __future__ import annotations

import numpy as np

from aiida_mlpot.selection.base import SelectionError, check_count, is_frame_list

__all__ = ('farthest_point_sampling', 'select_fps')


def farthest_point_sampling(
    features: np.ndarray,
    n: int,
    *,
    seed: int | None = None,
    reference: np.ndarray | None = None,
    allow_fewer: bool = False,
) -> np.ndarray:
    """Greedy farthest-point sampling: each pick is the point farthest from all points picked before.

    :param features: (n_points, n_features) array; Euclidean distances are used.
    :param n: number of points to pick.
    :param seed: seed choosing the first point at random (when there is no ``reference``).
    :param reference: (m, n_features) points already known (e.g. the training set): then the first pick is
        the point farthest from them, and the seed is not used.
    :return: indices in the order they were picked.
    """
    features = np.asarray(features, dtype=float)
    if features.ndim != 2:
        raise SelectionError(f'fps: features must have shape (n_points, n_features), got {features.shape}')
    n = check_count(n, len(features), allow_fewer, 'fps')
    squared_norms = np.einsum('ij,ij->i', features, features)

    def squared_distance(point: np.ndarray) -> np.ndarray:
        return np.maximum(squared_norms + point @ point - 2.0 * (features @ point), 0.0)

    picks = np.empty(n, dtype=np.int64)
    if reference is not None and len(reference):
        nearest = np.full(len(features), np.inf)
        for point in np.asarray(reference, dtype=float):
            np.minimum(nearest, squared_distance(point), out=nearest)
        first = 0
    else:
        picks[0] = np.random.default_rng(seed).integers(len(features))
        nearest = squared_distance(features[picks[0]])
        first = 1
    for k in range(first, n):
        nearest[picks[:k]] = -1.0  # never pick twice, even among duplicates
        picks[k] = int(np.argmax(nearest))
        np.minimum(nearest, squared_distance(features[picks[k]]), out=nearest)
    return picks


def select_fps(
    pool,
    n: int,
    *,
    seed: int | None = None,
    soap: dict | None = None,
    species: list[str] | None = None,
    reference=None,
    allow_fewer: bool = False,
) -> np.ndarray:
    """Select ``n`` configurations by farthest-point sampling of their averaged SOAP power spectra.

    :param pool: list of ASE Atoms, or a precomputed (n_configs, n_features) feature array.
    :param soap: SOAP settings for :func:`~aiida_mlpot.descriptors.soap.average_soap`.
    :param species: species of the descriptor (default: those of the pool and reference).
    :param reference: configurations (Atoms) or feature rows already selected; picks start far from them.
    :return: indices in the order they were picked.
    """
    if is_frame_list(pool):
        from aiida_mlpot.descriptors.soap import average_soap, species_of

        check_count(n, len(pool), allow_fewer, 'fps')
        ref_frames = list(reference) if reference is not None and is_frame_list(list(reference)) else []
        species = species or species_of(pool, ref_frames)
        features = average_soap(pool, soap, species)
        if ref_frames:
            reference = average_soap(ref_frames, soap, species)
    else:
        features = pool
    return farthest_point_sampling(features, n, seed=seed, reference=reference, allow_fewer=allow_fewer)
