"""Structures for the labelling tests (codes come from the session fixtures in tests/conftest.py)."""

from __future__ import annotations

import numpy as np
from ase import Atoms
from ase.build import bulk


def nacl_cell8(shift: float = 0.1) -> Atoms:
    """The 8-atom conventional rock-salt cell (a = 5.64 Å) with two atoms displaced (non-zero forces)."""
    atoms = bulk('NaCl', 'rocksalt', a=5.64, cubic=True)
    atoms.positions[0] += [shift, 0.5 * shift, 0.0]
    atoms.positions[-1] += [0.08, -0.07, 0.03]
    return atoms


def nacl_box64(seed: int = 3) -> Atoms:
    """A 64-atom rock-salt NaCl box at about the 1400 K model density, rattled by 0.1 Å."""
    atoms = bulk('NaCl', 'rocksalt', a=6.12, cubic=True).repeat((2, 2, 2))
    atoms.rattle(0.1, seed=seed)
    return atoms


def strained(atoms: Atoms, component: tuple[int, int], epsilon: float) -> Atoms:
    """Return ``atoms`` with the cell and positions deformed by (1 + epsilon) on one strain component."""
    deformation = np.eye(3)
    deformation[component] += epsilon
    result = atoms.copy()
    result.set_cell(atoms.cell.array @ deformation.T, scale_atoms=True)
    return result
