"""`executable_failure`: a job whose executable could not be started, told from what the shell wrote.

A code registered with a wrong path is refused at launch on a ``core.local`` computer
(:func:`aiida_mlpot.calculations.ports.executable_message`); on a remote computer nothing can probe the binary
before the job runs. The job script then fails in the shell (``bash: line 12: /opt/lmp: No such file or
directory``, ``Permission denied``, ``bad interpreter``, ``error while loading shared libraries``) or in the MPI
launcher, the program writes nothing, and without this check every parser would misread the silence (CP2K as
"SCF not converged", LAMMPS as "stopped before the end of the input script"). Every parser of the package calls
:func:`executable_failure` first: ``ERROR_EXECUTABLE_NOT_RUNNABLE`` (305,
:data:`aiida_mlpot.calculations.base.EXIT_EXECUTABLE_NOT_RUNNABLE`) with the shell's line.
"""

from __future__ import annotations

from collections.abc import Iterable

from aiida.engine import ExitCode

from aiida_mlpot.calculations.base import EXIT_EXECUTABLE_NOT_RUNNABLE

__all__ = ('LAUNCHER_FAILURES', 'SHELL_FAILURES', 'executable_failure', 'find_executable_failure')

#: What a shell (bash, dash) or the dynamic loader writes, on a line naming the executable, when it cannot start it.
SHELL_FAILURES = (
    'No such file or directory',
    'Permission denied',
    'command not found',
    ': not found',
    'bad interpreter',
    'cannot execute',
    'Exec format error',
    'error while loading shared libraries',
)
#: What MPI launchers (Open MPI, MPICH/Hydra, srun) write when they cannot start the executable they name.
LAUNCHER_FAILURES = (
    'unable to find the specified executable',
    'could not access or execute an executable',
    'execvp error',
    'Unable to exec',
)


def find_executable_failure(text: str, executable: str) -> str | None:
    """Return the line of ``text`` in which a shell or an MPI launcher says it could not start ``executable``.

    A shell names the executable, followed by a colon, on the failing line; a launcher may name it on another line of the same
    message, so a launcher's phrase counts when the executable appears anywhere in ``text``.
    """
    lines = [line.strip() for line in text.splitlines()]
    for line in lines:
        if f'{executable}: ' in line and any(phrase in line for phrase in SHELL_FAILURES):
            return line
    if executable in text:
        for line in lines:
            if any(phrase in line for phrase in LAUNCHER_FAILURES):
                return f'{line} ({executable})'
    return None


def executable_failure(parser, filenames: Iterable[str] = ()) -> ExitCode | None:
    """Return ``ERROR_EXECUTABLE_NOT_RUNNABLE`` if the job's scheduler stderr, or one of the retrieved
    ``filenames`` (where the calculation sends the program's stderr), says the code's executable could not be
    started; None otherwise."""
    node = parser.node
    code = node.inputs.code if 'code' in node.inputs else None
    if code is None:
        return None
    executable = str(code.get_executable())
    repository = parser.retrieved.base.repository
    present = set(repository.list_object_names())
    for name in [node.get_option('scheduler_stderr'), *filenames]:
        if name not in present:
            continue
        line = find_executable_failure(repository.get_object_content(name, mode='r'), executable)
        if line:
            status, _, message = EXIT_EXECUTABLE_NOT_RUNNABLE
            return ExitCode(status, message.format(detail=line, code=code.full_label))
    return None
