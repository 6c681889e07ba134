"""Helpers that build starting structures (pure: ASE and numpy, no AiiDA)."""

from __future__ import annotations

import numpy as np
from ase import Atoms
from ase.data import atomic_masses, atomic_numbers

from aiida_mlpot.common.units import AMU_TO_GRAM, ANGSTROM3_TO_CM3, density_g_cm3

__all__ = ('random_box',)


def random_box(
    composition: dict[str, int],
    density: float,
    min_distance: float = 2.0,
    seed: int = 0,
    max_attempts: int = 1000,
) -> Atoms:
    """Return a cubic periodic box of randomly placed atoms, e.g. a molten-salt starting configuration.

    Atoms are inserted one at a time at uniformly random positions; a trial position is rejected when it
    lies closer than ``min_distance`` (minimum image) to any atom already placed. Species are inserted in
    random order, so the box is well mixed.

    :param composition: number of atoms per element, e.g. ``{'Na': 32, 'Cl': 32}``.
    :param density: mass density in g/cm³.
    :param min_distance: minimum interatomic distance in Å.
    :param seed: seed of the random number generator (the result is reproducible).
    :param max_attempts: trial insertions per atom before giving up.
    :return: an :class:`ase.Atoms` with ``pbc=True`` and ``info['density']`` in g/cm³.
    :raises ValueError: for an empty composition, unknown elements, a non-positive density, or when the
        atoms cannot be packed at that density with that minimum distance.
    """
    if not composition or any(int(count) < 0 for count in composition.values()):
        raise ValueError(f'composition must map elements to non-negative counts, got {composition!r}')
    unknown = [symbol for symbol in composition if symbol not in atomic_numbers]
    if unknown:
        raise ValueError(f'unknown element symbols: {unknown}')
    if density <= 0:
        raise ValueError(f'density must be positive, got {density}')

    symbols = [symbol for symbol, count in composition.items() for _ in range(int(count))]
    if not symbols:
        raise ValueError('composition contains no atoms')
    rng = np.random.default_rng(seed)
    rng.shuffle(symbols)

    total_mass_g = sum(atomic_masses[atomic_numbers[s]] for s in symbols) * AMU_TO_GRAM
    volume = total_mass_g / density / ANGSTROM3_TO_CM3
    length = volume ** (1.0 / 3.0)

    positions = np.empty((len(symbols), 3))
    for index in range(len(symbols)):
        for _ in range(max_attempts):
            trial = rng.random(3) * length
            if index == 0:
                break
            delta = positions[:index] - trial
            delta -= length * np.round(delta / length)
            if np.min(np.einsum('ij,ij->i', delta, delta)) >= min_distance**2:
                break
        else:
            raise ValueError(
                f'could not place atom {index} of {len(symbols)} after {max_attempts} attempts: '
                f'min_distance={min_distance} Å is too large for density {density} g/cm³'
            )
        positions[index] = trial

    atoms = Atoms(symbols=symbols, positions=positions, cell=[length] * 3, pbc=True)
    atoms.info['density'] = density_g_cm3(atoms.get_masses(), atoms.get_volume())
    return atoms
