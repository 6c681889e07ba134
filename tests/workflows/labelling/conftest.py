"""Fixtures of the labelling tests: module-scoped codes so that one work chain run serves many tests."""

from __future__ import annotations

import shutil
import tempfile

import numpy as np
import pytest
from ase import Atoms
from ase.build import bulk


def _computer():
    from aiida import orm
    from aiida.common.exceptions import NotExistent

    label = 'mlpot-labelling-localhost'
    try:
        return orm.load_computer(label)
    except NotExistent:
        computer = orm.Computer(
            label=label,
            hostname='localhost',
            transport_type='core.local',
            scheduler_type='core.direct',
            workdir=tempfile.mkdtemp(prefix='mlpot-labelling-'),
        ).store()
        computer.set_minimum_job_poll_interval(0.0)
        computer.set_default_mpiprocs_per_machine(1)
        computer.configure()
        return computer


def _code(name: str, label: str, plugin: str):
    from aiida import orm
    from aiida.common.exceptions import NotExistent

    path = shutil.which(name)
    if path is None:
        pytest.skip(f'`{name}` is not installed')
    computer = _computer()
    try:
        return orm.load_code(f'{label}@{computer.label}')
    except NotExistent:
        return orm.InstalledCode(
            label=label,
            computer=computer,
            filepath_executable=path,
            default_calc_job_plugin=plugin,
            with_mpi=False,
        ).store()


@pytest.fixture(scope='module')
def cp2k_code(aiida_profile):
    """The real `cp2k.psmp` (OpenMP threads, no MPI) on a module-scoped local computer."""
    return _code('cp2k.psmp', 'cp2k-labelling', 'cp2k')


@pytest.fixture(scope='module')
def lmp_code(aiida_profile):
    """The real Debian `lmp` on a module-scoped local computer."""
    return _code('lmp', 'lmp-labelling', 'mlpot.lammps.rerun')


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
