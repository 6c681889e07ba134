"""An AiiDA profile on the services of scripts/services/services.py, and its computers and codes.

* :func:`create_profile`: a ``core.psql_dos`` profile on the private PostgreSQL with the ``core.rabbitmq``
  broker of the private RabbitMQ node (the Python equivalent of ``verdi profile setup core.psql_dos``).
* :func:`slurm_computer`: a computer with the ``core.slurm`` scheduler and the ``core.local`` transport for the
  single-node SLURM; :func:`direct_computer`: ``core.direct`` on the same machine.
* :func:`installed_code`: an ``InstalledCode`` for a real executable.
* :func:`enable_oracle_caching`: AiiDA caching for the oracle calculations of this package, per profile.

Functions taking a profile name work on the configuration of ``AIIDA_PATH`` and do not load the profile;
those creating nodes need the profile loaded (``aiida.load_profile(name)``).
"""

from __future__ import annotations

import pathlib
import shutil
import sys

#: The calculations whose results are labels (the "oracle"): CP2K (through Cp2kLabelWorkChain) and the LAMMPS
#: teacher rerun. Caching is enabled for these only (docs/how-to/scale-out.md).
ORACLE_CALCULATIONS = ('aiida.calculations:cp2k', 'aiida.calculations:mlpot.lammps.rerun')


def create_profile(
    name: str, postgres: dict, broker: dict, repository: pathlib.Path, email: str = 'mlpot@localhost'
):
    """Create (and store in the configuration) profile ``name`` on ``core.psql_dos`` + ``core.rabbitmq``.

    :param postgres: the ``info()`` of :class:`services.PostgresService` (database_* keys).
    :param broker: the ``info()`` of :class:`services.RabbitMQService` (broker_* keys).
    :param repository: folder of the file repository (disk-objectstore).
    """
    from aiida.manage.configuration import create_profile as aiida_create_profile
    from aiida.manage.configuration import get_config

    config = get_config(create=True)
    storage = {key: value for key, value in postgres.items() if key.startswith('database_')}
    storage['repository_uri'] = f'file://{pathlib.Path(repository).absolute()}'
    profile = aiida_create_profile(
        config,
        storage_backend='core.psql_dos',
        storage_config=storage,
        broker_backend='core.rabbitmq',
        broker_config={key: value for key, value in broker.items() if key.startswith('broker_')},
        name=name,
        email=email,
    )
    profile.set_option('warnings.development_version', False)
    # aiida-core warns on every RabbitMQ >= 3.8.15 because of its consumer_timeout; services.py disables that
    # timeout in the node's advanced.config, so the warning does not apply to this broker.
    profile.set_option('warnings.rabbitmq_version', False)
    # A process run in process (`run`, not the daemon) on this profile waits after every child for the fallback
    # poll of `runner.poll.interval` (default 60 s): the child's broadcast did not wake it. Measured on the crash
    # test's uninterrupted argon loop (2026-11-30): every child wait took 60 s, 675 s in all against 104 s for the
    # same loop through the daemon. 1 s, as `aiida-mlpot setup` sets for the embedded profile and `verdi presto`.
    profile.set_option('runner.poll.interval', 1)
    config.update_profile(profile)
    config.store()
    return profile


def enable_oracle_caching(profile_name: str, identifiers=ORACLE_CALCULATIONS) -> list[str]:
    """Enable caching for ``identifiers`` in profile ``profile_name`` (``verdi config set caching.enabled_for``).

    Only these process classes are cached (``caching.default_enabled`` stays False). Daemon workers read the
    configuration when they start: restart the daemon after changing it.
    """
    from aiida.manage.configuration import get_config

    config = get_config()
    config.set_option('caching.default_enabled', False, scope=profile_name)
    config.set_option('caching.enabled_for', list(identifiers), scope=profile_name)
    config.store()
    return list(identifiers)


def _configure(computer) -> None:
    """Configure ``computer`` for the current user: no safe interval, and no login shell: the job commands need
    no profile, and a login shell sourcing pyenv waited 60 s per command on a rehash lock left by a process
    SIGKILLed mid-rehash (the crash test's kills; fresh-clone CI of 2026-11-30)."""
    computer.configure(safe_interval=0.0, use_login_shell=False)


def slurm_computer(label: str, workdir: pathlib.Path, memory_mb: int, poll_interval: float = 1.0):
    """Store and configure a ``core.slurm`` + ``core.local`` computer for the single-node SLURM.

    ``default_memory_per_machine`` is the node's memory, so gap_fit plans its memory against it.
    """
    from aiida import orm

    computer = orm.Computer(
        label=label,
        description='single-node SLURM on 127.0.0.1 (scripts/services)',
        hostname='localhost',
        transport_type='core.local',
        scheduler_type='core.slurm',
        workdir=str(workdir),
    ).store()
    computer.set_default_mpiprocs_per_machine(1)
    computer.set_default_memory_per_machine(int(memory_mb) * 1024)
    computer.set_minimum_job_poll_interval(poll_interval)
    _configure(computer)
    return computer


def direct_computer(label: str, workdir: pathlib.Path, poll_interval: float = 0.0):
    """Store and configure a ``core.direct`` + ``core.local`` computer on this machine."""
    from aiida import orm

    computer = orm.Computer(
        label=label,
        hostname='localhost',
        transport_type='core.local',
        scheduler_type='core.direct',
        workdir=str(workdir),
    ).store()
    computer.set_default_mpiprocs_per_machine(1)
    computer.set_minimum_job_poll_interval(poll_interval)
    _configure(computer)
    return computer


def executable(name: str) -> str | None:
    """Return ``name`` from this Python's bin folder (gap_fit, python) or the PATH, or None."""
    candidate = pathlib.Path(sys.executable).parent / name
    return str(candidate) if candidate.is_file() else shutil.which(name)


def installed_code(computer, label: str, name: str, plugin: str | None = None, prepend_text: str = ''):
    """Store an ``InstalledCode`` ``label@computer`` for the executable ``name``; ValueError if it is missing.

    Caching compares a code by content (executable, computer, prepend text...), not by node or label: two codes
    of the same executable and computer hash the same; a different ``prepend_text`` makes them distinct.
    """
    from aiida import orm

    path = executable(name)
    if path is None:
        raise ValueError(f'`{name}` is not installed')
    code = orm.InstalledCode(
        label=label,
        computer=computer,
        filepath_executable=path,
        default_calc_job_plugin=plugin,
        with_mpi=False,
        prepend_text=prepend_text,
    )
    return code.store()
