"""Geometry kernels shared by every stage (pure ASE + numpy, no AiiDA).

The one minimum-distance measure of the package: LAMMPS input validation, the labelling outlier guard and the
ML-MD stability check all call :func:`min_distance`, so that "too close" means the same everywhere.
"""

from __future__ import annotations

import numpy as np
from ase import Atoms
from ase.neighborlist import neighbor_list

__all__ = ('min_distance', 'too_close')


def min_distance(atoms: Atoms, cutoff: float | None = None) -> float:
    """Return the shortest interatomic distance (Å, minimum image) of ``atoms``.

    :param cutoff: only distances below it are searched (ASE's linear-scaling neighbour list); ``inf`` is
        returned when no pair is closer. ``None`` searches every pair (O(N²) memory; small cells only).
    """
    if len(atoms) < 2:
        return float('inf')
    if cutoff is not None:
        distances = neighbor_list('d', atoms, float(cutoff))
        return float(distances.min()) if len(distances) else float('inf')
    from ase.geometry import get_distances

    _, distances = get_distances(atoms.positions, cell=atoms.cell, pbc=atoms.pbc)
    np.fill_diagonal(distances, np.inf)
    return float(distances.min())


def too_close(atoms: Atoms, limit: float) -> str | None:
    """Return a reason naming the distance if two atoms are closer than ``limit`` Å, else None."""
    value = min_distance(atoms, limit)
    if value < limit:
        return f'interatomic distance {value:.3f} Å below {limit} Å'
    return None
