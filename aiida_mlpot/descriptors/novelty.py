"""How new a configuration is with respect to a reference set, from SOAP environments (no AiiDA import).

Two scores, both distances in [0, 2] between unit SOAP vectors:

* :func:`rematch_novelty`: the REMatch kernel k(A, B) between whole configurations (dscribe's
  :class:`~dscribe.kernels.REMatchKernel`: an entropy-regularised best match of the atomic environments,
  solved by Sinkhorn iterations, normalised so that k(A, A) = 1), the distance d = sqrt(2 - 2k), and the
  novelty of a candidate is its distance to the nearest reference configuration.
* :func:`atomic_novelty`: cheaper; each atom of a candidate is compared with every reference environment
  of the same species, d_i = min_j sqrt(2 - 2 x_i . r_j), and the novelty is the maximum of d_i over
  the candidate's atoms (its most unfamiliar environment).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from ase import Atoms
from dscribe.kernels import REMatchKernel
from threadpoolctl import threadpool_limits

from aiida_mlpot.descriptors.soap import atomic_soap, species_of

__all__ = (
    'atomic_novelty',
    'kernel_distance',
    'rematch_kernel',
    'rematch_novelty',
)

#: Distance assigned to an atom whose species has no environment in the reference set.
MAX_DISTANCE = 2.0


def kernel_distance(kernel: np.ndarray) -> np.ndarray:
    """Return the kernel distance d = sqrt(2 - 2k) of normalised kernel values (clipped at 0)."""
    return np.sqrt(np.clip(2.0 - 2.0 * np.asarray(kernel, dtype=float), 0.0, None))


def rematch_kernel(
    features_a: Sequence[np.ndarray],
    features_b: Sequence[np.ndarray] | None = None,
    alpha: float = 0.1,
    threshold: float = 1e-6,
) -> np.ndarray:
    """Return the normalised REMatch kernel matrix between two lists of per-atom (unit) feature arrays.

    Equals dscribe's ``REMatchKernel(alpha, threshold, metric='linear').create(features_a, features_b)``
    (linear local kernels, entropy-regularised best match by Sinkhorn iterations, normalised as
    k(A, B) / sqrt(k(A, A) k(B, B))), and uses its :meth:`REMatchKernel.get_global_similarity` for every
    pair; the local kernels of one row are one matrix product instead of one scikit-learn call per pair.
    """
    kernel = REMatchKernel(alpha=alpha, threshold=threshold, metric='linear', normalize_kernel=False)
    a = [np.asarray(x, dtype=float) for x in features_a]
    b = a if features_b is None else [np.asarray(x, dtype=float) for x in features_b]
    sizes_b = np.array([len(x) for x in b])
    groups = {int(size): np.flatnonzero(sizes_b == size) for size in np.unique(sizes_b)}
    # One contiguous (n_configs * size, n_features) matrix per size: the local kernels are one BLAS product.
    stacks = {size: np.concatenate([b[j] for j in members]) for size, members in groups.items()}
    result = np.empty((len(a), len(b)))
    with threadpool_limits(limits=1, user_api='blas'):  # small products: threads only add contention
        self_a = np.array([kernel.get_global_similarity(x @ x.T) for x in a])
        self_b = (
            self_a if features_b is None else np.array([kernel.get_global_similarity(x @ x.T) for x in b])
        )
        for i, x in enumerate(a):
            for size, members in groups.items():
                local = (x @ stacks[size].T).reshape(len(x), len(members), size).transpose(1, 0, 2)
                result[i, members] = [kernel.get_global_similarity(c) for c in local]
    return result / np.sqrt(np.outer(self_a, self_b))


def rematch_novelty(
    candidates: Sequence[Atoms] | Sequence[np.ndarray],
    references: Sequence[Atoms] | Sequence[np.ndarray],
    soap: dict | None = None,
    alpha: float = 0.1,
    threshold: float = 1e-6,
) -> np.ndarray:
    """Return, per candidate, the REMatch distance d = sqrt(2 - 2k) to the nearest reference configuration.

    :param candidates: ASE Atoms, or per-atom unit SOAP arrays from :func:`atomic_soap`.
    :param references: ASE Atoms, or per-atom unit SOAP arrays computed with the same settings.
    :param soap: SOAP settings (see :data:`~aiida_mlpot.descriptors.soap.DEFAULT_SOAP`) when Atoms are given.
    """
    cand, ref = _features(candidates, references, soap)
    if not ref:
        raise ValueError('the reference set is empty')
    return kernel_distance(rematch_kernel(cand, ref, alpha=alpha, threshold=threshold)).min(axis=1)


def atomic_novelty(
    candidates: Sequence[Atoms],
    references: Sequence[Atoms],
    soap: dict | None = None,
    return_per_atom: bool = False,
    chunk: int = 4096,
) -> np.ndarray | tuple[np.ndarray, list[np.ndarray]]:
    """Return, per candidate, the maximum over its atoms of the distance to the nearest reference environment.

    Only environments of the same species are compared; an atom of a species absent from the references
    gets :data:`MAX_DISTANCE`.

    :param return_per_atom: also return the per-atom distances d_i (one array per candidate).
    :param chunk: number of candidate atoms compared at once (bounds the memory of the distance matrix).
    """
    cand, ref = _features(candidates, references, soap)
    if not ref:
        raise ValueError('the reference set is empty')
    cand_numbers = np.concatenate([atoms.numbers for atoms in candidates])
    ref_numbers = np.concatenate([atoms.numbers for atoms in references])
    cand_all = np.concatenate(cand, axis=0)
    ref_all = np.concatenate(ref, axis=0)
    per_atom = np.full(len(cand_all), MAX_DISTANCE)
    for number in np.unique(cand_numbers):
        rows = np.flatnonzero(cand_numbers == number)
        envs = ref_all[ref_numbers == number]
        if len(envs) == 0:
            continue
        for start in range(0, len(rows), chunk):
            block = rows[start : start + chunk]
            per_atom[block] = kernel_distance((cand_all[block] @ envs.T).max(axis=1))
    sizes = np.array([len(x) for x in cand])
    offsets = np.concatenate([[0], np.cumsum(sizes)[:-1]])
    novelty = np.maximum.reduceat(per_atom, offsets)
    if return_per_atom:
        return novelty, np.split(per_atom, np.cumsum(sizes)[:-1])
    return novelty


def _features(candidates, references, soap):
    if len(candidates) and isinstance(candidates[0], Atoms):
        species = species_of(candidates, references)
        return atomic_soap(candidates, soap, species), atomic_soap(references, soap, species)
    return list(candidates), list(references)
