"""Fixtures of the selection tests: the real NaCl pool and a small synthetic one."""

import numpy as np
import pytest
from ase import Atoms


@pytest.fixture(scope='session')
def nacl_pool(nacl_reference_frames) -> list[Atoms]:
    """The real NaCl pool (LAMMPS Tosi-Fumi + Ewald frames at 1100 K and 1400 K), copied per session."""
    return [atoms.copy() for atoms in nacl_reference_frames]


def make_synthetic_pool(n_frames: int = 30, n_atoms: int = 8, seed: int = 0) -> list[Atoms]:
    """Return small labelled frames with random labels (for error paths and bookkeeping, not statistics)."""
    rng = np.random.default_rng(seed)
    frames = []
    for k in range(n_frames):
        atoms = Atoms(
            'NaCl' * (n_atoms // 2), positions=rng.random((n_atoms, 3)) * 6.0, cell=[6, 6, 6], pbc=True
        )
        atoms.arrays['forces'] = rng.normal(size=(n_atoms, 3))
        atoms.arrays['energies'] = rng.normal(-3.0, 0.1, size=n_atoms)
        atoms.info['energy'] = float(atoms.arrays['energies'].sum())
        atoms.info['step'] = k * 10
        atoms.info['source_uuid'] = 'abc' if k < n_frames // 2 else 'def'
        frames.append(atoms)
    return frames


@pytest.fixture
def synthetic_pool() -> list[Atoms]:
    """30 labelled 8-atom frames from two fake trajectories."""
    return make_synthetic_pool()
