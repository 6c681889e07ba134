"""An executable that cannot be started: every calculation says so with 305 ``ERROR_EXECUTABLE_NOT_RUNNABLE``.

On a ``core.local`` computer a missing or non-executable file is refused at launch (``test_calculations.py``). What
no launch check can see, as on a remote computer where nothing probes the binary, is an executable that exists but
does not start: here a script whose interpreter is missing (``#!/nonexistent/...``). The job really runs (the
``core.direct`` scheduler of the test computer), the shell fails to start the program, and the parser must say so
from the shell's message, not misread the empty output (CP2K "SCF not converged", LAMMPS "stopped before the end
of the input script", gap_fit "no error message in the log"). The shell messages the parser reads are produced
here by a real ``bash``.
"""

from __future__ import annotations

import subprocess

import pytest
from aiida import orm

from aiida_mlpot.parsers.executable import find_executable_failure
from tests.bad_input.test_calculations import evaluate, gap_fit, lammps_md, ml_md
from tests.bad_input.test_workflows import cp2k

STATUS = 305


def _shell_message(tmp_path, command: str) -> str:
    """Run ``command`` as a job script line does (stdout to a file) and return what bash wrote to stderr."""
    result = subprocess.run(
        ['bash', '-c', f'{command} > {tmp_path / "out.txt"}'], capture_output=True, text=True, check=False
    )
    assert result.returncode in (126, 127), result
    return result.stderr


@pytest.fixture
def unstartable(tmp_path):
    """A file that exists and is executable but cannot be started: its interpreter does not exist."""
    path = tmp_path / 'bin' / 'program'
    path.parent.mkdir()
    path.write_text('#!/nonexistent/interpreter\n')
    path.chmod(0o755)
    return path


def test_shell_messages_are_recognised(tmp_path, unstartable):
    """Missing, not executable, bad interpreter: bash's own words name the executable; other text does not count."""
    not_executable = tmp_path / 'not_executable'
    not_executable.write_text('#!/bin/sh\n')
    not_executable.chmod(0o644)
    cases = {
        '/nonexistent/bin/lmp': 'No such file or directory',
        str(not_executable): 'Permission denied',
        # bash 5.1: `bad interpreter: No such file or directory`; bash 5.2: `cannot execute: required file not found`
        str(unstartable): ('bad interpreter', 'cannot execute'),
    }
    for executable, words in cases.items():
        words = (words,) if isinstance(words, str) else words
        line = find_executable_failure(_shell_message(tmp_path, f"'{executable}' -in aiida.in"), executable)
        assert line is not None and any(w in line for w in words) and executable in line, line
    # a program's own complaint about a missing input file is not a failure to start the program
    assert (
        find_executable_failure('ERROR: Cannot open file x.data: No such file or directory', '/usr/bin/lmp')
        is None
    )
    assert find_executable_failure('', '/usr/bin/lmp') is None


@pytest.fixture
def broken(localhost, unstartable):
    """Return a function: a code for the plugin ``plugin`` whose executable cannot be started."""

    def factory(plugin: str):
        return orm.InstalledCode(
            label=f'unstartable-{plugin}',
            computer=localhost,
            filepath_executable=str(unstartable),
            default_calc_job_plugin=plugin,
        ).store()

    return factory


def _assert_not_runnable(node, executable) -> None:
    assert node.is_finished, node.process_state
    assert node.exit_status == STATUS, f'{node.exit_status}: {node.exit_message}'
    assert 'executable not found / not runnable' in node.exit_message
    assert str(executable) in node.exit_message


@pytest.mark.parametrize(
    'make, plugin',
    [
        (lambda m, code: {**lammps_md(m), 'code': code}, 'mlpot.lammps.md'),
        (lambda m, code: {**gap_fit(m), 'code': code}, 'mlpot.gap_fit'),
        (lambda m, code: {**ml_md(m), 'code': code}, 'mlpot.ml_md'),
        (lambda m, code: {**evaluate(m), 'code': code}, 'mlpot.evaluate'),
    ],
    ids=['lammps_md', 'gap_fit', 'ml_md', 'evaluate'],
)
def test_calculation_says_not_runnable(m, broken, unstartable, make, plugin):
    from aiida.engine import run_get_node
    from aiida.plugins import CalculationFactory

    _, node = run_get_node(CalculationFactory(plugin), **make(m, broken(plugin)))
    _assert_not_runnable(node, unstartable)


def test_cp2k_says_not_runnable_not_scf(m, broken, unstartable):
    """The CP2K labelling: the calculation ends with 305 (not 450 "SCF not converged"), it is not retried with
    the robust settings, and the labelling names the reason."""
    from aiida.engine import run_get_node

    from aiida_mlpot.workflows.labelling import LabellingWorkChain

    inputs = cp2k(m)
    inputs['cp2k']['code'] = broken('cp2k')
    _, node = run_get_node(LabellingWorkChain, **inputs)
    calculations = [d for d in node.called_descendants if isinstance(d, orm.CalcJobNode)]
    assert len(calculations) == 1, [c.exit_status for c in calculations]
    _assert_not_runnable(calculations[0], unstartable)
    assert not node.is_finished_ok
