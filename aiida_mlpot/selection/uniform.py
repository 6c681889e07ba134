"""Selection of configurations that cover a scalar (per configuration or per atom) uniformly.

The method (pure numpy, no AiiDA import): target values are drawn uniformly over the observed range of
the scalar (one target per equal-width stratum, at a random position within it, so that the targets
cover the range without clumping), then, target by target in random order, the configuration that
contains the value closest to the target is picked, without replacement. For per-atom scalars (the force
magnitude |f_i| or the atomic energy E_i) a configuration is picked for one of its atoms, so rare
high-force or high-energy atoms, the tail of the distribution, are reached with only a few targets.

All values are sorted once; each target is located with a binary search and collisions with
configurations already picked are resolved by scanning a window around the target that doubles until
the nearest free configuration is provably inside it. Selecting 500 of 10^5 configurations of 64 atoms
(6.4 million values) takes about one second, dominated by the sort.
"""

from __future__ import annotations

import numpy as np

from aiida_mlpot.selection.base import (
    PerAtomValues,
    SelectionError,
    check_count,
    energy_per_atom,
    is_frame_list,
    per_atom_energies,
    per_atom_force_magnitudes,
)

__all__ = (
    'select_uniform_atomic_energy',
    'select_uniform_energy',
    'select_uniform_force',
    'select_uniform_values',
    'uniform_targets',
)


def uniform_targets(low: float, high: float, n: int, rng: np.random.Generator) -> np.ndarray:
    """Return ``n`` targets uniform over [low, high], one per equal-width stratum, in random order."""
    targets = low + (np.arange(n) + rng.random(n)) * ((high - low) / n)
    rng.shuffle(targets)
    return targets


def select_uniform_values(
    values: PerAtomValues | np.ndarray,
    n: int,
    *,
    seed: int | None = None,
    allow_fewer: bool = False,
    method: str = 'uniform',
) -> np.ndarray:
    """Select ``n`` configurations so that the given scalar is covered uniformly.

    :param values: a :class:`PerAtomValues` (per-atom scalar with the configuration of each atom), an array
        of shape (n_configs,) (one value per configuration) or (n_configs, n_atoms) (per-atom values).
    :param n: number of configurations to select.
    :param seed: seed of the random generator.
    :param allow_fewer: select the whole pool instead of raising when it holds fewer than ``n``.
    :return: sorted indices of the selected configurations.
    """
    if not isinstance(values, PerAtomValues):
        array = np.asarray(values, dtype=float)
        if array.ndim == 1:
            values = PerAtomValues(array, np.arange(array.size, dtype=np.int64), array.size)
        else:
            values = PerAtomValues.from_array(array)
    n = check_count(n, values.n_configs, allow_fewer, method)
    if not np.all(np.isfinite(values.values)):
        raise SelectionError(f'{method}: the values to cover contain NaN or infinity')
    if n == values.n_configs:
        return np.arange(n)

    order = np.argsort(values.values, kind='stable')
    sorted_values = values.values[order]
    sorted_owner = values.owner[order]
    size = sorted_values.size
    rng = np.random.default_rng(seed)
    targets = uniform_targets(sorted_values[0], sorted_values[-1], n, rng)
    positions = np.searchsorted(sorted_values, targets)

    taken = np.zeros(values.n_configs, dtype=bool)
    picks = np.empty(n, dtype=np.int64)
    for k, (target, position) in enumerate(zip(targets, positions)):
        width = 8
        while True:
            start, stop = max(position - width, 0), min(position + width, size)
            window_owner = sorted_owner[start:stop]
            free = ~taken[window_owner]
            if free.any():
                distance = np.where(free, np.abs(sorted_values[start:stop] - target), np.inf)
                best = int(np.argmin(distance))
                # The nearest free value is in the window unless a value just outside is closer.
                bound = min(
                    target - sorted_values[start - 1] if start > 0 else np.inf,
                    sorted_values[stop] - target if stop < size else np.inf,
                )
                if distance[best] <= bound:
                    picks[k] = window_owner[best]
                    taken[picks[k]] = True
                    break
            if start == 0 and stop == size:  # cannot happen while n < n_configs
                raise SelectionError(f'{method}: ran out of configurations')
            width *= 2
    return np.sort(picks)


def _as_per_atom(pool, extractor, method: str) -> PerAtomValues:
    if isinstance(pool, PerAtomValues):
        return pool
    if is_frame_list(pool):
        return extractor(pool, method=method)
    array = np.asarray(pool, dtype=float)
    if array.ndim == 3 and array.shape[-1] == 3:  # forces (n_configs, n_atoms, 3)
        array = np.sqrt(np.einsum('ijk,ijk->ij', array, array))
    return PerAtomValues.from_array(array)


def select_uniform_energy(
    pool, n: int, *, seed: int | None = None, allow_fewer: bool = False, natoms: np.ndarray | None = None
) -> np.ndarray:
    """Select ``n`` configurations with a flat distribution of the energy per atom.

    :param pool: list of ASE Atoms with ``info['energy']``, or an array of energies per atom (eV/atom),
        or of total energies if ``natoms`` is given.
    :param natoms: number of atoms per configuration, to convert total energies of an array ``pool``.
    """
    if is_frame_list(pool):
        values = energy_per_atom(pool, method='uniform_energy')
    else:
        values = np.asarray(pool, dtype=float).reshape(-1)
        if natoms is not None:
            values = values / np.asarray(natoms, dtype=float)
    return select_uniform_values(values, n, seed=seed, allow_fewer=allow_fewer, method='uniform_energy')


def select_uniform_force(pool, n: int, *, seed: int | None = None, allow_fewer: bool = False) -> np.ndarray:
    """Select ``n`` configurations with a flat distribution of the per-atom force magnitudes |f_i|.

    :param pool: list of ASE Atoms with ``arrays['forces']``, a :class:`PerAtomValues` of |f_i|, an array of
        forces (n_configs, n_atoms, 3) or of force magnitudes (n_configs, n_atoms).
    """
    values = _as_per_atom(pool, per_atom_force_magnitudes, 'uniform_force')
    return select_uniform_values(values, n, seed=seed, allow_fewer=allow_fewer, method='uniform_force')


def select_uniform_atomic_energy(
    pool, n: int, *, seed: int | None = None, allow_fewer: bool = False
) -> np.ndarray:
    """Select ``n`` configurations with a flat distribution of the per-atom energies E_i.

    :param pool: list of ASE Atoms with ``arrays['energies']``, a :class:`PerAtomValues` of E_i or an array
        of per-atom energies (n_configs, n_atoms).
    """
    values = _as_per_atom(pool, per_atom_energies, 'uniform_atomic_energy')
    return select_uniform_values(
        values, n, seed=seed, allow_fewer=allow_fewer, method='uniform_atomic_energy'
    )
