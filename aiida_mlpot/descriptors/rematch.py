"""The REMatch kernel between whole configurations, and the reference set of the ML-MD ``rematch`` trigger.

The REMatch kernel (De, Bartók, Csányi, Ceriotti, PCCP 18, 13754 (2016)) compares two configurations A and B
through their atomic environments: with C_ij the cosine similarity of the unit SOAP vectors of atom i of A
and atom j of B, k(A, B) = Tr(P^T C), P the entropy-regularised best match (the transport plan with uniform
marginals maximising sum P_ij (C_ij - alpha ln P_ij), found by Sinkhorn iterations), normalised as
k(A, B) / sqrt(k(A, A) k(B, B)). The Sinkhorn solve is dscribe's
:meth:`dscribe.kernels.REMatchKernel.get_global_similarity` (a maintained implementation); this module only
batches the local kernels and caches the self-similarities. alpha -> 0 approaches the best one-to-one match of
the environments, alpha -> infinity the average kernel.

:class:`RematchReferences` keeps the training configurations of a potential for repeated queries, as the ML-MD
``rematch`` trigger asks them: the similarity of the current frame to its closest reference configuration,
and the leave-one-out similarities of the training frames themselves, from which the trigger's critical
similarity is calibrated (see :mod:`aiida_mlpot.engines.checks`).
"""

from __future__ import annotations

import time
from collections.abc import Sequence

import numpy as np
from ase import Atoms

from aiida_mlpot.descriptors.soap import is_periodic, make_soap, species_of, unit_features

__all__ = (
    'RematchReferences',
    'rematch_kernel',
    'rematch_self_similarities',
    'similarity_of_distance',
)


def _kernel(alpha: float, threshold: float):
    # imported here, not at module level: dscribe.kernels pulls in scikit-learn (seconds)
    from dscribe.kernels import REMatchKernel

    return REMatchKernel(alpha=alpha, threshold=threshold, metric='linear', normalize_kernel=False)


def rematch_self_similarities(
    features: Sequence[np.ndarray], alpha: float = 0.1, threshold: float = 1e-6
) -> np.ndarray:
    """Return the unnormalised REMatch self-similarity k(A, A) of each per-atom (unit) feature array."""
    from threadpoolctl import threadpool_limits

    kernel = _kernel(alpha, threshold)
    with threadpool_limits(limits=1, user_api='blas'):
        return np.array([kernel.get_global_similarity(x @ x.T) for x in features])


def rematch_kernel(
    features_a: Sequence[np.ndarray],
    features_b: Sequence[np.ndarray] | None = None,
    alpha: float = 0.1,
    threshold: float = 1e-6,
    self_a: np.ndarray | None = None,
    self_b: np.ndarray | None = None,
) -> np.ndarray:
    """Return the normalised REMatch kernel matrix between two lists of per-atom (unit) feature arrays.

    Equals dscribe's ``REMatchKernel(alpha, threshold, metric='linear').create(features_a, features_b)``
    (linear local kernels, entropy-regularised best match by Sinkhorn iterations, normalised as
    k(A, B) / sqrt(k(A, A) k(B, B))), and uses its :meth:`REMatchKernel.get_global_similarity` for every
    pair; the local kernels of one row are one matrix product instead of one scikit-learn call per pair.

    :param self_a: the unnormalised self-similarities of ``features_a`` (:func:`rematch_self_similarities`
        with the same ``alpha`` and ``threshold``) when already known; ``self_b`` likewise.
    """
    from threadpoolctl import threadpool_limits

    kernel = _kernel(alpha, threshold)
    a = [np.asarray(x, dtype=float) for x in features_a]
    b = a if features_b is None else [np.asarray(x, dtype=float) for x in features_b]
    if self_a is None:
        self_a = rematch_self_similarities(a, alpha, threshold)
    if self_b is None:
        self_b = self_a if features_b is None else rematch_self_similarities(b, alpha, threshold)
    sizes_b = np.array([len(x) for x in b])
    groups = {int(size): np.flatnonzero(sizes_b == size) for size in np.unique(sizes_b)}
    # One contiguous (n_configs * size, n_features) matrix per size: the local kernels are one BLAS product.
    stacks = {size: np.concatenate([b[j] for j in members]) for size, members in groups.items()}
    result = np.empty((len(a), len(b)))
    with threadpool_limits(limits=1, user_api='blas'):  # small products: threads only add contention
        for i, x in enumerate(a):
            for size, members in groups.items():
                local = (x @ stacks[size].T).reshape(len(x), len(members), size).transpose(1, 0, 2)
                result[i, members] = [kernel.get_global_similarity(c) for c in local]
    return result / np.sqrt(np.outer(self_a, self_b))


def similarity_of_distance(distance: float) -> float:
    """Return the kernel value k of a kernel distance d = sqrt(2 - 2k): k = 1 - d^2 / 2."""
    return 1.0 - 0.5 * float(distance) ** 2


class RematchReferences:
    """Training configurations as REMatch references: similarity queries and leave-one-out calibration.

    :param training: the training configurations of the potential.
    :param soap: SOAP settings merged over :data:`~aiida_mlpot.descriptors.soap.DEFAULT_SOAP`.
    :param species: chemical symbols the descriptor must handle besides those of ``training`` (those of the
        MD frames).
    :param max_references: compare with at most this many configurations, chosen by farthest-point sampling
        in the REMatch distance d = sqrt(2 - 2k); None (or at least the number of training frames): all.
    :param alpha: entropic regularisation of the match (dscribe's ``alpha``).
    :param threshold: convergence threshold of the Sinkhorn iterations (dscribe's ``threshold``).
    :param seed: chooses the first farthest-point pick.

    The farthest-point sampling is done here rather than with
    :func:`aiida_mlpot.selection.fps.farthest_point_sampling`, which needs explicit feature vectors: REMatch
    gives kernel values only. Each pick costs one kernel column (n_training pairs), and the n_training x
    n_references columns are kept: they are also what the leave-one-out calibration needs.
    """

    def __init__(
        self,
        training: Sequence[Atoms],
        soap: dict | None = None,
        species: Sequence[str] = (),
        max_references: int | None = None,
        alpha: float = 0.1,
        threshold: float = 1e-6,
        seed: int = 0,
    ):
        if not len(training):
            raise ValueError('the REMatch reference set needs at least one training configuration')
        start = time.perf_counter()
        self.alpha, self.threshold = float(alpha), float(threshold)
        self.training_species = species_of(training)
        self.species = sorted(set(self.training_species) | set(species))
        self.descriptor = make_soap(self.species, soap, periodic=is_periodic(training))
        self.features = unit_features(self.descriptor, list(training))
        self.self_similarities = rematch_self_similarities(self.features, self.alpha, self.threshold)
        n_training = len(self.features)
        n_references = n_training if max_references is None else min(int(max_references), n_training)
        if n_references < 1:
            raise ValueError(f'`max_references` must be at least 1, got {max_references}')
        #: training-frame indices of the references, in the order they were picked
        self.indices, self.training_kernel = self._pick(n_references, seed)
        self.selection = 'all' if n_references == n_training else 'fps'
        self.setup_time_s = time.perf_counter() - start

    @property
    def n_training(self) -> int:
        """Number of training configurations."""
        return len(self.features)

    @property
    def n_references(self) -> int:
        """Number of reference configurations a query is compared with."""
        return len(self.indices)

    def _columns(self, indices: Sequence[int]) -> np.ndarray:
        """Return the normalised kernel between all training frames and the training frames ``indices``."""
        indices = list(indices)
        return rematch_kernel(
            self.features,
            [self.features[j] for j in indices],
            self.alpha,
            self.threshold,
            self_a=self.self_similarities,
            self_b=self.self_similarities[indices],
        )

    def _pick(self, n_references: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
        """Return (reference indices, n_training x n_references kernel) by greedy farthest-point sampling."""
        n_training = self.n_training
        if n_references == n_training:
            indices = np.arange(n_training)
            return indices, self._columns(indices)
        picks = [int(np.random.default_rng(seed).integers(n_training))]
        columns = np.empty((n_training, n_references))
        nearest = np.full(n_training, -np.inf)  # similarity of each frame to its closest pick so far
        for k in range(n_references):
            columns[:, k] = self._columns([picks[k]])[:, 0]
            if k + 1 == n_references:
                break
            np.maximum(nearest, columns[:, k], out=nearest)
            nearest[picks] = np.inf  # never pick twice, even among duplicates
            picks.append(int(np.argmin(nearest)))  # the least similar = farthest frame
        return np.array(picks), columns

    @property
    def reference_features(self) -> list[np.ndarray]:
        """Per-atom unit SOAP features of the reference configurations."""
        return [self.features[j] for j in self.indices]

    def similarities(self, atoms: Atoms) -> np.ndarray:
        """Return the normalised REMatch kernel of ``atoms`` with each reference configuration.

        A configuration with a species the training frames lack gets 0 (nothing known resembles it).
        """
        if set(atoms.get_chemical_symbols()) - set(self.training_species):
            return np.zeros(self.n_references)
        features = unit_features(self.descriptor, [atoms])
        return rematch_kernel(
            features,
            self.reference_features,
            self.alpha,
            self.threshold,
            self_b=self.self_similarities[self.indices],
        )[0]

    def similarity(self, atoms: Atoms) -> float:
        """Return the largest REMatch similarity of ``atoms`` to a reference configuration."""
        return float(self.similarities(atoms).max())

    def leave_one_out(self) -> np.ndarray:
        """Return, per training frame, its largest similarity to the reference configurations other than itself.

        NaN for a frame that is the only reference. A training frame that is not a reference (FPS subset) is
        compared with all references, as an MD frame is.
        """
        kernel = self.training_kernel.copy()
        kernel[self.indices, np.arange(self.n_references)] = -np.inf
        best = kernel.max(axis=1)
        return np.where(np.isfinite(best), best, np.nan)
