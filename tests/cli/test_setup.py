"""Tests of `aiida-mlpot setup` and the `verdi data mlpot.*` command groups."""

import os
import pathlib
import shutil
import subprocess
import sys

import pytest
from aiida.manage.configuration import get_config
from aiida.orm import Computer, InstalledCode, QueryBuilder
from click.testing import CliRunner

from aiida_mlpot.cli.data import dataset, gap_potential
from aiida_mlpot.cli.setup import CodeSpec, SetupError, probe_executable, setup
from aiida_mlpot.data.dataset import DatasetData


def _count(cls, **filters) -> int:
    return QueryBuilder().append(cls, filters=filters).count()


def test_setup_twice_changes_nothing(aiida_profile, tmp_path):
    """On the current profile: the first call creates computer and codes, the second creates nothing."""
    specs = [
        CodeSpec('fake-lmp', '/bin/true', None, 'stand-in executable for the registration test'),
        CodeSpec('missing', None, None, 'no executable: skipped'),
    ]
    messages = []
    first = setup(
        profile=aiida_profile.name,
        computer='mlpot-test',
        workdir=str(tmp_path),
        codes=specs,
        echo=messages.append,
    )
    second = setup(
        profile=aiida_profile.name,
        computer='mlpot-test',
        workdir=str(tmp_path),
        codes=specs,
        echo=messages.append,
    )
    assert first['changed'] and not second['changed']
    assert first['codes'] == second['codes'] == {'fake-lmp': 'fake-lmp@mlpot-test'}
    assert _count(Computer, label='mlpot-test') == 1
    assert _count(InstalledCode, label='fake-lmp') == 1
    assert any('SKIPPED, executable not found' in m for m in messages)
    # aiida-core's default (60 s): the test profile sets none
    poll = get_config().get_option('runner.poll.interval', scope=aiida_profile.name)
    assert any(f'runner.poll.interval is {poll} s' in m for m in messages) == (poll > 5), messages


def test_probe_that_times_out_registers_the_code_with_a_warning():
    """A probe still running at its timeout (a loaded machine) is not a broken executable: warned, not skipped."""
    spec = CodeSpec('slow', '/bin/sleep', None, 'a probe slower than its timeout', probe=('5',))
    with pytest.warns(UserWarning, match=r'`/bin/sleep` did not finish `5` within 0.2 s'):
        assert probe_executable(spec, timeout=0.2) is None


def test_setup_names_every_code_of_an_ambiguous_label(aiida_profile, tmp_path):
    """Two codes `dup@mlpot-dup` (an imported archive next to setup's): setup lists both instead of a bare error."""
    spec = CodeSpec('dup', '/bin/true', None, 'registration test')
    setup(profile=aiida_profile.name, computer='mlpot-dup', workdir=str(tmp_path), codes=[spec], echo=print)
    computer = Computer.collection.get(label='mlpot-dup')
    InstalledCode(label='dup', computer=computer, filepath_executable='/bin/true').store()
    with pytest.raises(SetupError, match=r'2 codes are labelled `dup@mlpot-dup`'):
        setup(
            profile=aiida_profile.name, computer='mlpot-dup', workdir=str(tmp_path), codes=[spec], echo=print
        )


def _executable(name: str) -> str:
    path = shutil.which(name) or os.path.join(os.path.dirname(sys.executable), name)
    if not os.access(path, os.X_OK):
        pytest.skip(f'`{name}` is not installed')
    return path


@pytest.mark.e2e
def test_setup_creates_profile_in_a_fresh_config(tmp_path):
    """In an empty AiiDA configuration the command creates the SQLite + ZeroMQ profile; twice is idempotent."""
    env = {**os.environ, 'AIIDA_PATH': str(tmp_path)}
    command = [
        sys.executable, '-m', 'aiida_mlpot.cli.main', 'setup',
        '--lmp', _executable('lmp'), '--cp2k', _executable('cp2k.psmp'), '--gap-fit', _executable('gap_fit'),
    ]  # fmt: skip
    first = subprocess.run(command, env=env, capture_output=True, text=True, check=True)
    assert 'created (SQLite storage, ZeroMQ broker)' in first.stdout
    second = subprocess.run(command, env=env, capture_output=True, text=True, check=True)
    assert 'changed: nothing' in second.stdout
    assert 'created' not in second.stdout.replace('created (SQLite', '')
    listing = _verdi(env, 'code', 'list', '-r')
    for label in ('lmp', 'cp2k', 'gap_fit', 'python'):
        assert listing.count(f'{label}@localhost') == 1, listing
    plugins = _verdi(env, 'plugin', 'list', 'aiida.data')
    assert 'mlpot.dataset' in plugins and 'mlpot.gap_potential' in plugins


@pytest.mark.parametrize(
    ('option', 'path', 'reason'),
    [
        ('--lmp', '/nonexistent/lmp', 'does not exist'),
        ('--cp2k', 'plain-file', 'is not executable'),
        ('--gap-fit', '/bin/true', 'without printing `libAtoms`'),
    ],
)
def test_setup_refuses_an_executable_that_does_not_run(tmp_path, option, path, reason):
    """A missing, non-executable or wrong executable is named and nothing is created (no profile either)."""
    env = {**os.environ, 'AIIDA_PATH': str(tmp_path)}
    if path == 'plain-file':
        path = str(tmp_path / 'cp2k.psmp')
        pathlib.Path(path).write_text('not a program')
        os.chmod(path, 0o644)
    command = [sys.executable, '-m', 'aiida_mlpot.cli.main', 'setup', option, path]
    result = subprocess.run(command, env=env, capture_output=True, text=True)
    assert result.returncode != 0
    assert path in result.stderr and reason in result.stderr, result.stderr
    assert 'Traceback' not in result.stderr
    assert not (tmp_path / '.aiida' / 'profiles').exists() or not any(
        (tmp_path / '.aiida' / 'profiles').iterdir()
    )


def _verdi(env: dict, *args: str) -> str:
    """Run `verdi` of this environment with ``args`` and return its output."""
    verdi = os.path.join(os.path.dirname(sys.executable), 'verdi')
    return subprocess.run([verdi, *args], env=env, capture_output=True, text=True, check=True).stdout


def test_verdi_data_dataset(aiida_profile, tmp_path):
    from ase.build import bulk

    atoms = bulk('Cu', cubic=True)
    atoms.info['energy'] = -14.0
    node = DatasetData.from_ase([atoms, atoms]).store()
    runner = CliRunner()
    result = runner.invoke(dataset, ['list'])
    assert result.exit_code == 0 and str(node.pk) in result.output
    result = runner.invoke(dataset, ['show', str(node.pk)])
    assert result.exit_code == 0 and '-3.500000 eV/atom' in result.output
    result = runner.invoke(dataset, ['export', str(node.pk), str(tmp_path / 'out.xyz')])
    assert result.exit_code == 0 and (tmp_path / 'out.xyz').read_text() == node.get_content()
    result = runner.invoke(gap_potential, ['list'])
    assert result.exit_code == 0
