"""How new a configuration is with respect to a reference set, from SOAP environments (no AiiDA import).

Two scores, both distances d = sqrt(2 - 2k) between unit SOAP vectors (k their cosine similarity):

* :func:`rematch_novelty`: the REMatch kernel k(A, B) between whole configurations (dscribe's
  :class:`~dscribe.kernels.REMatchKernel`: an entropy-regularised best match of the atomic environments,
  solved by Sinkhorn iterations, normalised so that k(A, A) = 1), the distance d = sqrt(2 - 2k), and the
  novelty of a candidate is its distance to the nearest reference configuration.
* :func:`atomic_novelty` (and :class:`ReferenceEnvironments`, which keeps the reference environments for
  repeated queries, as the ML-MD check does): cheaper; each atom of a candidate is compared with every
  reference environment of the same species, d_i = min_j sqrt(2 - 2 x_i . r_j), and the novelty is the
  maximum of d_i over the candidate's atoms (its most unfamiliar environment).

The distances lie in [0, sqrt(2)]: a SOAP power spectrum is the upper triangle (over the (species, n)
channels, per l) of positive semi-definite matrices P = C C^T, so the dot product of two of them is
(Tr(P_A P_B) + sum_i P_A,ii P_B,ii) / 2 >= 0 although single components may be negative; hence k in [0, 1]
for unit vectors. An atom of a species with no reference environment gets the largest distance,
:data:`MAX_DISTANCE` = sqrt(2) (orthogonal to everything known).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from ase import Atoms

from aiida_mlpot.descriptors.rematch import rematch_kernel
from aiida_mlpot.descriptors.soap import atomic_soap, is_periodic, make_soap, species_of, unit_features

__all__ = (
    'MAX_DISTANCE',
    'ReferenceEnvironments',
    'atomic_novelty',
    'kernel_distance',
    'rematch_kernel',
    'rematch_novelty',
)

#: Distance assigned to an atom whose species has no environment in the reference set: the largest distance
#: between two SOAP power spectra (k >= 0, see the module docstring).
MAX_DISTANCE = float(np.sqrt(2.0))


def kernel_distance(kernel: np.ndarray) -> np.ndarray:
    """Return the kernel distance d = sqrt(2 - 2k) of normalised kernel values (clipped at 0)."""
    return np.sqrt(np.clip(2.0 - 2.0 * np.asarray(kernel, dtype=float), 0.0, None))


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


class ReferenceEnvironments:
    """The atomic environments of reference configurations (unit SOAP vectors by species), for novelty queries.

    :param references: the reference configurations (e.g. the training set of a potential).
    :param soap: SOAP settings merged over :data:`~aiida_mlpot.descriptors.soap.DEFAULT_SOAP`.
    :param species: chemical symbols the descriptor must handle besides those of ``references`` (those of
        the candidates: their atoms of an unknown species then get :data:`MAX_DISTANCE`).
    :param max_environments: keep at most this many reference environments, drawn at random with ``seed``
        (bounds the cost of a query); None keeps all.
    """

    def __init__(
        self,
        references: Sequence[Atoms],
        soap: dict | None = None,
        species: Sequence[str] = (),
        max_environments: int | None = None,
        seed: int = 0,
    ):
        if not len(references):
            raise ValueError('the reference set is empty')
        self.species = sorted(set(species_of(references)) | set(species))
        self.descriptor = make_soap(self.species, soap, periodic=is_periodic(references))
        self.frames = list(references)
        self.frame_features = unit_features(self.descriptor, self.frames)
        vectors = np.concatenate(self.frame_features)
        numbers = np.concatenate([atoms.numbers for atoms in self.frames])
        frame_index = np.concatenate([np.full(len(atoms), k) for k, atoms in enumerate(self.frames)])
        if max_environments is not None and len(vectors) > max_environments:
            keep = np.sort(np.random.default_rng(seed).choice(len(vectors), max_environments, replace=False))
            vectors, numbers, frame_index = vectors[keep], numbers[keep], frame_index[keep]
        self._by_number = {
            int(z): (vectors[numbers == z], frame_index[numbers == z]) for z in np.unique(numbers)
        }

    @property
    def n_environments(self) -> int:
        """Number of reference environments kept."""
        return sum(len(vectors) for vectors, _ in self._by_number.values())

    def features(self, frames: Sequence[Atoms]) -> list[np.ndarray]:
        """Return the unit per-atom SOAP vectors of ``frames`` (same descriptor as the references)."""
        unknown = {symbol for atoms in frames for symbol in atoms.get_chemical_symbols()} - set(self.species)
        if unknown:
            raise ValueError(f'the descriptor knows {self.species}, not {sorted(unknown)}')
        return unit_features(self.descriptor, frames)

    def distances(
        self, features: np.ndarray, numbers: np.ndarray, exclude_frame: int | None = None, chunk: int = 4096
    ) -> np.ndarray:
        """Return per atom the distance to the nearest reference environment of the same species.

        :param features: unit vectors, one row per atom; ``numbers``: their atomic numbers.
        :param exclude_frame: ignore the environments of this reference frame (leave-one-frame-out).
        :param chunk: atoms compared at once (bounds the memory of the similarity matrix).
        """
        result = np.full(len(features), MAX_DISTANCE)
        for number in np.unique(numbers):
            if int(number) not in self._by_number:
                continue
            vectors, frames = self._by_number[int(number)]
            if exclude_frame is not None:
                vectors = vectors[frames != exclude_frame]
            if not len(vectors):
                continue
            rows = np.flatnonzero(numbers == number)
            for start in range(0, len(rows), chunk):
                block = rows[start : start + chunk]
                result[block] = kernel_distance((features[block] @ vectors.T).max(axis=1))
        return result

    def per_atom(self, atoms: Atoms) -> np.ndarray:
        """Return the per-atom distances of one configuration (its species must be in ``self.species``)."""
        return self.distances(self.features([atoms])[0], atoms.numbers)

    def leave_one_out(self) -> np.ndarray:
        """Return the novelty of each reference frame against the environments of the OTHER frames."""
        return np.array(
            [
                self.distances(features, atoms.numbers, exclude_frame=index).max()
                for index, (atoms, features) in enumerate(zip(self.frames, self.frame_features))
            ]
        )


def atomic_novelty(
    candidates: Sequence[Atoms],
    references: Sequence[Atoms],
    soap: dict | None = None,
    return_per_atom: bool = False,
    chunk: int = 4096,
) -> np.ndarray | tuple[np.ndarray, list[np.ndarray]]:
    """Return, per candidate, the maximum over its atoms of the distance to the nearest reference environment.

    Only environments of the same species are compared; an atom of a species absent from the references
    gets :data:`MAX_DISTANCE`. See :class:`ReferenceEnvironments`.

    :param return_per_atom: also return the per-atom distances d_i (one array per candidate).
    :param chunk: number of candidate atoms compared at once (bounds the memory of the distance matrix).
    """
    reference = ReferenceEnvironments(references, soap, species=species_of(candidates))
    features = reference.features(candidates)
    numbers = np.concatenate([atoms.numbers for atoms in candidates])
    per_atom = reference.distances(np.concatenate(features), numbers, chunk=chunk)
    sizes = np.array([len(x) for x in features])
    novelty = np.maximum.reduceat(per_atom, np.concatenate([[0], np.cumsum(sizes)[:-1]]))
    if return_per_atom:
        return novelty, np.split(per_atom, np.cumsum(sizes)[:-1])
    return novelty


def _features(candidates, references, soap):
    if len(candidates) and isinstance(candidates[0], Atoms):
        species = species_of(candidates, references)
        return atomic_soap(candidates, soap, species), atomic_soap(references, soap, species)
    return list(candidates), list(references)
