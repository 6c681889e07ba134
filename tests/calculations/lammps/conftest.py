"""Module-scoped LAMMPS code so that expensive runs can be shared between tests of a module."""

from __future__ import annotations

import shutil

import pytest


@pytest.fixture(scope='module')
def lmp_code(aiida_profile, tmp_path_factory):
    """An InstalledCode of the real Debian `lmp` on a local computer (module scope)."""
    from aiida import orm
    from aiida.common.exceptions import NotExistent

    path = shutil.which('lmp')
    if path is None:
        pytest.skip('`lmp` is not installed')
    try:
        computer = orm.load_computer('localhost-mlpot-lammps')
    except NotExistent:
        computer = orm.Computer(
            label='localhost-mlpot-lammps',
            hostname='localhost',
            workdir=str(tmp_path_factory.mktemp('lammps_work')),
            transport_type='core.local',
            scheduler_type='core.direct',
        ).store()
        computer.set_minimum_job_poll_interval(0)
        computer.set_default_mpiprocs_per_machine(1)
        computer.configure()
    try:
        return orm.load_code(f'lmp@{computer.label}')
    except NotExistent:
        return orm.InstalledCode(label='lmp', computer=computer, filepath_executable=path).store()
