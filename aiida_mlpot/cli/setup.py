"""Idempotent set-up of an AiiDA profile, the `localhost` computer and the codes aiida-mlpot uses."""

from __future__ import annotations

import dataclasses
import os
import pathlib
import shutil
import subprocess
import sys
import warnings

DEFAULT_PROFILE = 'mlpot'
DEFAULT_COMPUTER = 'localhost'


@dataclasses.dataclass
class CodeSpec:
    """A code to register: its label, the executable it runs, the default calculation plugin."""

    label: str
    executable: str | None
    default_plugin: str | None
    description: str
    #: arguments of a quick run that proves the executable works, and a text its output must contain
    probe: tuple[str, ...] = ()
    expect: str = ''
    #: whether the executable was given by the user (then a failing probe is an error, not a skip)
    requested: bool = False


class SetupError(ValueError):
    """An executable given to `aiida-mlpot setup` does not exist or does not run."""


def probe_executable(spec: CodeSpec, timeout: float = 120.0) -> str | None:
    """Return why ``spec.executable`` cannot serve as the code ``spec.label`` (None when it runs).

    A code registered with a missing or broken executable would be misdiagnosed later by every stage (CP2K
    "SCF not converged", LAMMPS "stopped before the end of the input script"), so it is run once here.
    """
    path = spec.executable
    if not path:
        return f'no executable for `{spec.label}`'
    if not os.path.isfile(path):
        return f'the {spec.label} executable `{path}` does not exist'
    if not os.access(path, os.X_OK):
        return f'the {spec.label} executable `{path}` is not executable'
    try:
        result = subprocess.run(
            [path, *spec.probe], capture_output=True, text=True, timeout=timeout, stdin=subprocess.DEVNULL
        )
    except subprocess.TimeoutExpired:
        # It started and did not fail: on a loaded machine the python probe (importing quippy and this package)
        # has taken longer than two minutes. Refusing the code here would leave the user without it, silently.
        warnings.warn(
            f'the {spec.label} executable `{path}` did not finish `{" ".join(spec.probe)}` within {timeout:g} s '
            '(a loaded machine?): registered without the check',
            stacklevel=2,
        )
        return None
    except (OSError, subprocess.SubprocessError) as exception:
        return f'the {spec.label} executable `{path}` does not run: {exception}'
    output = result.stdout + result.stderr
    if spec.expect and spec.expect not in output:
        tail = ' '.join(output.strip().splitlines()[-2:])[:200]
        return (
            f'the {spec.label} executable `{path}` ran `{" ".join(spec.probe)}` without printing '
            f'`{spec.expect}` (exit status {result.returncode}): {tail or "no output"}'
        )
    return None


def default_code_specs(
    lmp: str | None = None, cp2k: str | None = None, gap_fit: str | None = None, python: str | None = None
) -> list[CodeSpec]:
    """Return the codes to register; executables default to this environment's bin folder, then the PATH."""
    env_bin = pathlib.Path(sys.executable).parent

    def find(name: str) -> str | None:
        candidate = env_bin / name
        return str(candidate) if candidate.is_file() else shutil.which(name)

    driver_check = 'import aiida_mlpot.engines.ml_md, quippy; print("mlpot-driver-ok")'
    return [
        CodeSpec(
            'lmp', lmp or find('lmp'), 'mlpot.lammps.md', 'LAMMPS (classical MD sampling and teacher labels)',
            ('-h',), 'Large-scale Atomic/Molecular Massively Parallel Simulator', lmp is not None,
        ),
        CodeSpec(
            'cp2k', cp2k or find('cp2k.psmp'), 'cp2k', 'CP2K (DFT / xTB labels), OpenMP threads',
            ('--version',), 'CP2K version', cp2k is not None,
        ),
        CodeSpec(
            'gap_fit', gap_fit or find('gap_fit'), 'mlpot.gap_fit', 'gap_fit from the quippy-ase wheel',
            (), 'libAtoms', gap_fit is not None,
        ),
        CodeSpec(
            'python', python or sys.executable, 'mlpot.ml_md', 'Python of this environment (ML-MD driver)',
            ('-c', driver_check), 'mlpot-driver-ok', python is not None,
        ),
    ]  # fmt: skip


#: Above this ``runner.poll.interval`` (s), setup notes that a run in process waits that long after every child
#: (measured by benchmarks/bench_inprocess_wait.py).
POLL_INTERVAL_NOTE_S = 5


def ensure_profile(name: str | None, email: str, echo) -> tuple[object, bool]:
    """Load the profile ``name`` (or the default one), creating it when it does not exist.

    A new profile uses SQLite storage and the ZeroMQ broker that aiida-core ships, so `run`, `submit`
    and the daemon work with no service to install. Returns the profile and whether it was created.
    """
    from aiida.manage.configuration import create_profile, get_config, load_profile
    from aiida.plugins import BrokerFactory

    config = get_config(create=True)
    wanted = name or (config.default_profile_name if config.profile_names else DEFAULT_PROFILE)
    if wanted in config.profile_names:
        profile = load_profile(wanted, allow_switch=True)
        echo(
            f'profile   `{wanted}`: exists (storage {profile.storage_backend}, broker {profile.process_control_backend})'
        )
        # aiida-core's default (60 s) when the profile sets none
        poll = config.get_option('runner.poll.interval', scope=wanted)
        if poll > POLL_INTERVAL_NOTE_S:
            echo(
                f'profile   `{wanted}`: note: runner.poll.interval is {poll} s; a work chain run in process (`run`) '
                f'waits that long after every child process (aiida-core 2.9.4; the daemon does not): '
                f'`verdi config set -p {wanted} runner.poll.interval 1`'
            )
        return profile, False
    profile = create_profile(
        config,
        name=wanted,
        email=email,
        storage_backend='core.sqlite_dos',
        storage_config={},
        broker_backend='core.zeromq',
        broker_config=BrokerFactory('core.zeromq').get_default_config(),
    )
    config.set_option('runner.poll.interval', 1, scope=profile.name)
    if not config.default_profile_name or name is None:
        config.set_default_profile(profile.name, overwrite=True)
    config.store()
    profile = load_profile(profile.name, allow_switch=True)
    echo(f'profile   `{wanted}`: created (SQLite storage, ZeroMQ broker) and made the default')
    return profile, True


def ensure_computer(label: str, workdir: str | None, echo):
    """Return the computer ``label``, creating a core.local / core.direct one when it does not exist."""
    from aiida.common.exceptions import NotExistent
    from aiida.manage.configuration import get_config
    from aiida.orm import Computer, User, load_computer

    try:
        computer = load_computer(label)
        created = False
    except NotExistent:
        folder = workdir or str(pathlib.Path(get_config().dirpath) / 'scratch' / label)
        computer = Computer(
            label=label,
            hostname='localhost',
            description='This machine (set up by `aiida-mlpot setup`)',
            transport_type='core.local',
            scheduler_type='core.direct',
            workdir=folder,
        ).store()
        computer.set_minimum_job_poll_interval(1)
        computer.set_default_mpiprocs_per_machine(1)
        created = True
    if not computer.is_user_configured(User.collection.get_default()):
        # no login shell: the transport's commands (mkdir, cp, the scheduler's) need no profile, and `bash -l`
        # sourcing the user's profile on every command is slow (and waited 60 s per command on a pyenv rehash
        # lock left by a killed process here, 2026-11-30); a code that needs its environment says so in its
        # prepend text, which the job script runs
        computer.configure(safe_interval=0, use_login_shell=False)
        echo(f'computer  `{label}`: configured for the default user (no login shell)')
    echo(
        f'computer  `{label}`: {"created" if created else "exists"} '
        f'({computer.transport_type}, {computer.scheduler_type}, workdir {computer.get_workdir()})'
    )
    return computer, created


def ensure_code(computer, spec: CodeSpec, echo):
    """Return the code ``spec.label`` on ``computer``, creating it when it does not exist (None if no executable)."""
    from aiida.orm import AbstractCode, Computer, InstalledCode, QueryBuilder

    from aiida_mlpot.calculations.ports import load_code_by_label

    full_label = f'{spec.label}@{computer.label}'
    builder = QueryBuilder().append(Computer, filters={'id': computer.pk}, tag='computer')
    builder.append(AbstractCode, with_computer='computer', filters={'label': spec.label})
    code = None
    if builder.count():
        try:  # several codes of this label (an imported archive): name them all
            code = load_code_by_label(full_label)
        except ValueError as exception:
            raise SetupError(str(exception)) from None
    if code is not None:
        note = ''
        if spec.executable and str(code.filepath_executable) != spec.executable:
            note = (
                f' (requested {spec.executable}: unchanged; `verdi code delete {full_label}` to re-register)'
            )
        echo(f'code      `{full_label}`: exists -> {code.filepath_executable}{note}')
        return code, False
    if not spec.executable:
        echo(f'code      `{full_label}`: SKIPPED, executable not found (pass its path as an option)')
        return None, False
    problem = probe_executable(spec)
    if problem:
        echo(f'code      `{full_label}`: SKIPPED, {problem} (pass a working path as an option)')
        return None, False
    code = InstalledCode(
        label=spec.label,
        computer=computer,
        filepath_executable=spec.executable,
        default_calc_job_plugin=spec.default_plugin,
        description=spec.description,
        with_mpi=False,
    ).store()
    echo(f'code      `{full_label}`: created -> {spec.executable}')
    return code, True


def setup(
    profile: str | None = None,
    computer: str = DEFAULT_COMPUTER,
    workdir: str | None = None,
    email: str = 'mlpot@localhost',
    codes: list[CodeSpec] | None = None,
    echo=print,
) -> dict:
    """Create what is missing (profile, computer, codes) and return what exists; running it twice changes nothing.

    An executable the caller names explicitly (``requested``) is run first: when it is missing or does not run,
    :class:`SetupError` names it before anything is created.
    """
    for spec in codes or ():
        if spec.requested:
            problem = probe_executable(spec)
            if problem:
                raise SetupError(problem)
    prof, profile_created = ensure_profile(profile, email, echo)
    comp, computer_created = ensure_computer(computer, workdir, echo)
    result = {
        'profile': prof.name,
        'computer': comp.label,
        'codes': {},
        'changed': profile_created or computer_created,
    }
    for spec in codes or default_code_specs():
        code, created = ensure_code(comp, spec, echo)
        result['changed'] |= created
        if code is not None:
            result['codes'][spec.label] = code.full_label
    return result
