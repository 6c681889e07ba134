"""Errors, count checks and label extraction shared by the selectors (pure numpy, no AiiDA import).

Selectors accept either a list of :class:`ase.Atoms` labelled with the aiida-mlpot convention
(``info['energy']``, ``arrays['forces']``, ``arrays['energies']``; labels of an attached calculator are
used as a fallback) or arrays extracted beforehand, so that large pools can be handled without ASE objects.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

import numpy as np
from ase import Atoms

__all__ = (
    'EmptyPoolError',
    'MissingPropertyError',
    'PerAtomValues',
    'SelectionError',
    'TooFewConfigurationsError',
    'check_count',
    'energy_per_atom',
    'per_atom_energies',
    'per_atom_force_magnitudes',
)


class SelectionError(ValueError):
    """Raised when a selection cannot be made as requested (empty pool, too few configurations, bad spec)."""


class EmptyPoolError(SelectionError):
    """Raised when the pool holds no configuration."""


class TooFewConfigurationsError(SelectionError):
    """Raised when more configurations are requested than the pool holds (and fewer are not allowed)."""


class MissingPropertyError(SelectionError):
    """Raised when a selector needs a label that (some configurations of) the pool lack."""

    def __init__(self, prop: str, method: str, missing: Sequence[int] = ()):
        self.property = prop
        where = (
            f' (missing in configurations {list(missing)[:5]}{"..." if len(missing) > 5 else ""})'
            if missing
            else ''
        )
        super().__init__(
            f"selection method '{method}' needs the property '{prop}', which the pool lacks{where}"
        )


@dataclasses.dataclass(frozen=True)
class PerAtomValues:
    """A per-atom scalar of a pool, flattened: ``values[k]`` belongs to configuration ``owner[k]``."""

    values: np.ndarray
    owner: np.ndarray
    n_configs: int

    @classmethod
    def from_array(cls, array: np.ndarray) -> PerAtomValues:
        """Build from an array of shape (n_configs, n_atoms) (all configurations of the same size)."""
        array = np.asarray(array, dtype=float)
        if array.ndim != 2:
            raise SelectionError(f'per-atom values must have shape (n_configs, n_atoms), got {array.shape}')
        n_configs, n_atoms = array.shape
        owner = np.repeat(np.arange(n_configs, dtype=np.int64), n_atoms)
        return cls(array.reshape(-1), owner, n_configs)

    @classmethod
    def from_list(cls, arrays: Sequence[np.ndarray]) -> PerAtomValues:
        """Build from one 1D array per configuration (configurations of any size)."""
        arrays = [np.asarray(a, dtype=float).reshape(-1) for a in arrays]
        sizes = np.array([a.size for a in arrays], dtype=np.int64)
        values = np.concatenate(arrays) if arrays else np.zeros(0)
        owner = np.repeat(np.arange(len(arrays), dtype=np.int64), sizes)
        return cls(values, owner, len(arrays))


def check_count(n: int, n_pool: int, allow_fewer: bool = False, method: str = 'selection') -> int:
    """Return the number of configurations to select, or raise a clear :class:`SelectionError`.

    :param n: requested number of configurations.
    :param n_pool: number of configurations available.
    :param allow_fewer: if True, return ``min(n, n_pool)`` instead of raising when the pool is too small.
    """
    if isinstance(n, bool) or not isinstance(n, int | np.integer):
        raise SelectionError(f'{method}: the number of configurations must be an integer, got {n!r}')
    if n < 1:
        raise SelectionError(f'{method}: the number of configurations must be positive, got {n}')
    if n_pool == 0:
        raise EmptyPoolError(f'{method}: the pool is empty, there is nothing to select from')
    if n > n_pool:
        if allow_fewer:
            return int(n_pool)
        raise TooFewConfigurationsError(
            f'{method}: {n} configurations requested but the pool holds only {n_pool} '
            '(set allow_fewer=True to accept fewer)'
        )
    return int(n)


def _label(atoms: Atoms, key: str, per_atom: bool) -> np.ndarray | float | None:
    """Return a label from ``info``/``arrays`` or, as a fallback, from an attached calculator."""
    store = atoms.arrays if per_atom else atoms.info
    if key in store:
        return store[key]
    results = getattr(atoms.calc, 'results', None) or {}
    return results.get(key)


def _collect(frames: Sequence[Atoms], key: str, per_atom: bool, method: str) -> list:
    values, missing = [], []
    for index, atoms in enumerate(frames):
        value = _label(atoms, key, per_atom)
        if value is None:
            missing.append(index)
        values.append(value)
    if missing:
        raise MissingPropertyError(key, method, missing)
    return values


def energy_per_atom(frames: Sequence[Atoms], method: str = 'uniform_energy') -> np.ndarray:
    """Return the total energy per atom of each configuration (eV/atom)."""
    energies = _collect(frames, 'energy', per_atom=False, method=method)
    return np.array([float(e) / len(atoms) for e, atoms in zip(energies, frames)])


def per_atom_force_magnitudes(frames: Sequence[Atoms], method: str = 'uniform_force') -> PerAtomValues:
    """Return the per-atom force magnitudes |f_i| (eV/Å) of all configurations, flattened."""
    forces = _collect(frames, 'forces', per_atom=True, method=method)
    return PerAtomValues.from_list([np.linalg.norm(np.asarray(f, dtype=float), axis=1) for f in forces])


def per_atom_energies(frames: Sequence[Atoms], method: str = 'uniform_atomic_energy') -> PerAtomValues:
    """Return the per-atom energies E_i (eV) of all configurations, flattened."""
    return PerAtomValues.from_list(_collect(frames, 'energies', per_atom=True, method=method))


def is_frame_list(pool) -> bool:
    """Return whether ``pool`` is a sequence of ASE Atoms (as opposed to pre-extracted arrays)."""
    return isinstance(pool, list | tuple) and (len(pool) == 0 or isinstance(pool[0], Atoms))
