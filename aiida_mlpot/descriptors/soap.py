"""SOAP power spectra of configurations via dscribe (no AiiDA import).

Every feature vector returned here is normalised to unit length, so that the linear kernel between two
vectors is their cosine similarity k and their Euclidean distance is the kernel distance sqrt(2 - 2k).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np
from ase import Atoms

if TYPE_CHECKING:
    from dscribe.descriptors import SOAP

__all__ = (
    'DEFAULT_SOAP',
    'validate_soap',
    'atomic_soap',
    'average_soap',
    'is_periodic',
    'make_soap',
    'species_of',
    'unit_features',
)

#: Default SOAP settings (Å): a cutoff like the GAP's, a small basis that is quick to evaluate.
DEFAULT_SOAP = {'r_cut': 5.0, 'n_max': 6, 'l_max': 4, 'sigma': 0.5}
_ALLOWED = {'r_cut', 'n_max', 'l_max', 'sigma', 'rbf', 'weighting', 'compression', 'periodic', 'dtype'}


def species_of(*frame_lists: Sequence[Atoms]) -> list[str]:
    """Return the sorted chemical symbols present in any of the lists of configurations."""
    return sorted(
        {symbol for frames in frame_lists for atoms in frames for symbol in atoms.get_chemical_symbols()}
    )


def validate_soap(soap) -> str | None:
    """Return why the SOAP settings ``soap`` are invalid (unknown key, wrong type or range), or None."""
    if soap is None:
        return None
    if not isinstance(soap, dict):
        return f'the SOAP settings must be a mapping, got {type(soap).__name__}'
    unknown = set(soap) - _ALLOWED
    if unknown:
        return f'unknown SOAP settings {sorted(unknown)}; allowed: {sorted(_ALLOWED)}'
    for key, low in (('r_cut', 0.0), ('sigma', 0.0)):
        value = soap.get(key)
        if value is not None and (
            isinstance(value, bool)
            or not isinstance(value, int | float)
            or not np.isfinite(value)
            or value <= low
        ):
            return f'SOAP `{key}` must be a positive finite number (Å), got {value!r}'
    for key, low in (('n_max', 1), ('l_max', 0)):
        value = soap.get(key)
        if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < low):
            return f'SOAP `{key}` must be an integer >= {low}, got {value!r}'
    return None


def make_soap(
    species: Sequence[str], soap: dict | None = None, average: str = 'off', periodic: bool = True
) -> SOAP:
    """Return a dscribe :class:`SOAP` with the settings of ``soap`` merged over :data:`DEFAULT_SOAP`.

    :param species: all chemical symbols the descriptor must handle (those of every set compared).
    :param soap: SOAP settings (``r_cut``, ``n_max``, ``l_max``, ``sigma``, optionally ``rbf``, ...).
    :param average: dscribe averaging mode: 'off' (one vector per atom) or 'inner' (one per configuration).
    """
    message = validate_soap(soap)
    if message:
        raise ValueError(message)
    settings = {**DEFAULT_SOAP, **(soap or {})}
    settings.setdefault('periodic', periodic)
    from dscribe.descriptors import SOAP  # imported here: dscribe pulls in scikit-learn (seconds)

    return SOAP(species=list(species), average=average, **settings)


def _normalise(array: np.ndarray) -> np.ndarray:
    norm = np.linalg.norm(array, axis=-1, keepdims=True)
    return array / np.where(norm > 0, norm, 1.0)


def is_periodic(frames: Sequence[Atoms]) -> bool:
    """Return whether any of the configurations is periodic (the descriptor then respects each one's ``pbc``)."""
    return bool(any(atoms.pbc.any() for atoms in frames))


def unit_features(descriptor: SOAP, frames: Sequence[Atoms], n_jobs: int = 1) -> list[np.ndarray]:
    """Return one (n_atoms, n_features) array of unit per-atom vectors of ``descriptor`` per configuration."""
    if len(frames) == 0:
        return []
    features = descriptor.create(list(frames), n_jobs=n_jobs)
    if len(frames) == 1:
        features = [features]
    return [_normalise(np.atleast_2d(np.asarray(f, dtype=float))) for f in features]


def average_soap(
    frames: Sequence[Atoms], soap: dict | None = None, species: Sequence[str] | None = None, n_jobs: int = 1
) -> np.ndarray:
    """Return the per-configuration averaged SOAP power spectrum, shape (n_configs, n_features), unit rows.

    dscribe's ``average='inner'`` averages the expansion coefficients over the atoms before forming the
    power spectrum.
    """
    if len(frames) == 0:
        raise ValueError('no configurations to describe')
    species = species or species_of(frames)
    descriptor = make_soap(species, soap, average='inner', periodic=is_periodic(frames))
    features = descriptor.create(list(frames), n_jobs=n_jobs)
    return _normalise(np.asarray(features, dtype=float).reshape(len(frames), -1))


def atomic_soap(
    frames: Sequence[Atoms], soap: dict | None = None, species: Sequence[str] | None = None, n_jobs: int = 1
) -> list[np.ndarray]:
    """Return one (n_atoms, n_features) array of unit per-atom SOAP power spectra per configuration."""
    if len(frames) == 0:
        return []
    species = species or species_of(frames)
    return unit_features(
        make_soap(species, soap, average='off', periodic=is_periodic(frames)), frames, n_jobs
    )
