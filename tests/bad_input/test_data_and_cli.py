"""Bad input to the data types, the extended-XYZ reader and the command lines: a clear error naming it, no traceback.

`DatasetData` refuses non-finite positions and cells and non-finite labels; the extended-XYZ reader says that a
truncated or foreign text cannot be read; ``verdi data mlpot.*`` refuses a node of the wrong type, a node that
does not exist and an export into a directory that does not exist, and leaves nothing half-written;
``aiida-mlpot`` refuses a structure file that is missing, truncated or not a structure.
"""

from __future__ import annotations

import io
import pathlib
import subprocess
import sys

import numpy as np
import pytest
from click.testing import CliRunner

from aiida_mlpot.data.extxyz import InconsistentDatasetError, read_frames, write_frames
from tests.bad_input.conftest import labelled, nacl


def _frames(n: int = 2) -> list:
    return [labelled(nacl(), seed) for seed in range(n)]


def _xyz_text(n: int = 2) -> str:
    handle = io.StringIO()
    write_frames(_frames(n), handle)
    return handle.getvalue()


# --- DatasetData ----------------------------------------------------------------------------------------------
def _nan_position(frames):
    frames[1].positions[3, 0] = np.nan


def _inf_cell(frames):
    frames[0].cell[0, 0] = np.inf


def _nan_forces(frames):
    frames[1].arrays['forces'][0, 2] = np.nan


def _nan_energy(frames):
    frames[0].info['energy'] = float('nan')


@pytest.mark.parametrize(
    'spoil, match',
    [
        (_nan_position, r'configuration 1: the positions contain non-finite values'),
        (_inf_cell, r'configuration 0: the cell contains non-finite values'),
        (_nan_forces, r'configuration 1: forces contains non-finite values'),
        (_nan_energy, r'configuration 0: energy is not finite'),
    ],
    ids=['NaN position', 'infinite cell', 'NaN force', 'NaN energy'],
)
def test_dataset_refuses_non_finite(aiida_profile, spoil, match):
    from aiida import orm

    from aiida_mlpot.data.dataset import DatasetData

    frames = _frames(2)
    spoil(frames)
    before = orm.QueryBuilder().append(DatasetData).count()
    with pytest.raises(InconsistentDatasetError, match=match):
        DatasetData.from_ase(frames).store()
    assert orm.QueryBuilder().append(DatasetData).count() == before


# --- the extended-XYZ reader ----------------------------------------------------------------------------------
@pytest.mark.parametrize(
    'make, match',
    [
        (lambda text: '\n'.join(text.splitlines()[:-3]) + '\n', r'cannot be read.*has 5 atoms, expected 8'),
        (lambda text: text[: text.rindex('\n', 0, len(text) - 1) + 12], r'cannot be read'),
        (lambda text: 'hello\nworld\n', r'cannot be read.*header'),
    ],
    ids=['truncated frame', 'truncated line', 'not extended XYZ'],
)
def test_reader_says_unreadable(make, match):
    with pytest.raises(InconsistentDatasetError, match=match):
        read_frames(io.StringIO(make(_xyz_text())))


def test_reader_reads_the_complete_text():
    """The control: the same text, whole, reads back."""
    assert len(read_frames(io.StringIO(_xyz_text()))) == 2


# --- verdi data mlpot.* ---------------------------------------------------------------------------------------
@pytest.fixture
def nodes(aiida_profile, gap):
    from aiida import orm

    from aiida_mlpot.data.dataset import DatasetData

    return {
        'dataset': DatasetData.from_ase(_frames(2)).store(),
        'gap_potential': gap,
        'structure': orm.StructureData(ase=nacl()).store(),
    }


def _invoke(group: str, args: list[str]):
    from aiida_mlpot.cli.data import dataset, gap_potential

    result = CliRunner().invoke({'dataset': dataset, 'gap_potential': gap_potential}[group], args)
    assert not isinstance(result.exception, Exception) or isinstance(result.exception, SystemExit), (
        f'traceback: {result.exception!r}\n{result.output}'
    )
    return result


@pytest.mark.parametrize(
    'group, command, wrong',
    [
        ('dataset', 'show', 'structure'),
        ('dataset', 'export', 'gap_potential'),
        ('gap_potential', 'show', 'dataset'),
        ('gap_potential', 'export', 'structure'),
    ],
)
def test_verdi_data_wrong_node_type(nodes, tmp_path, group, command, wrong):
    args = [command, str(nodes[wrong].pk)] + ([str(tmp_path / 'out')] if command == 'export' else [])
    result = _invoke(group, args)
    assert result.exit_code == 2, result.output
    assert f'mlpot.{group}' in result.output and str(nodes[wrong].pk) in result.output
    assert not (tmp_path / 'out').exists()


@pytest.mark.parametrize('group', ['dataset', 'gap_potential'])
def test_verdi_data_missing_node(nodes, group):
    result = _invoke(group, ['show', '987654321'])
    assert result.exit_code == 2 and '987654321' in result.output, result.output


def test_verdi_data_export_into_missing_directory(nodes, tmp_path):
    target = tmp_path / 'no_such_directory' / 'out.xyz'
    result = _invoke('dataset', ['export', str(nodes['dataset'].pk), str(target)])
    assert (
        result.exit_code != 0 and 'does not exist' in result.output and 'no_such_directory' in result.output
    )
    assert not target.parent.exists()


def test_verdi_data_gap_export_unknown_species_writes_nothing(nodes, tmp_path):
    folder = tmp_path / 'gap'
    result = _invoke(
        'gap_potential', ['export', str(nodes['gap_potential'].pk), str(folder), '--type-order', 'Na,K']
    )
    assert result.exit_code == 2 and "'K'" in result.output, result.output
    assert not folder.exists()


# --- aiida-mlpot ----------------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    'content, match',
    [
        (None, 'is neither a file nor a preset'),
        ('truncated', 'ASE cannot read'),
        ('hello\nworld\n', 'ASE cannot read'),
    ],
    ids=['missing file', 'truncated extended XYZ', 'not a structure'],
)
def test_aiida_mlpot_structure_file(tmp_path, content, match):
    """``aiida-mlpot launch active-learning STRUCTURE``: refused by click before any profile is loaded."""
    path = tmp_path / 'missing_dir' / 'nacl.xyz'
    if content is not None:
        path = tmp_path / 'nacl.xyz'
        path.write_text(
            '\n'.join(_xyz_text().splitlines()[:-3]) + '\n' if content == 'truncated' else content
        )
    executable = pathlib.Path(sys.executable).parent / 'aiida-mlpot'
    command = [str(executable), 'launch', 'active-learning', str(path), '-T', '1400']
    result = subprocess.run(command, capture_output=True, text=True, check=False, timeout=300)
    assert result.returncode == 2, result.stderr
    assert match in result.stderr and 'Traceback' not in result.stderr, result.stderr


# --- code lookup by label -------------------------------------------------------------------------------------
def test_code_label_ambiguous_after_import(aiida_profile, localhost):
    """Two codes with one label on one computer (what ``verdi archive import`` of a run leaves next to the codes of
    ``aiida-mlpot setup``): the lookup lists both with pk and UUID and says how to choose; by pk it works."""
    from aiida import orm

    from aiida_mlpot.calculations.ports import load_code_by_label

    codes = [
        orm.InstalledCode(
            label='gap_fit_twice',
            computer=localhost,
            filepath_executable='/usr/bin/true',
            default_calc_job_plugin=p,
        ).store()
        for p in ('mlpot.gap_fit', 'mlpot.gap_fit')
    ]
    with pytest.raises(ValueError) as info:
        load_code_by_label(f'gap_fit_twice@{localhost.label}')
    message = str(info.value)
    assert message.startswith(f'2 codes are labelled `gap_fit_twice@{localhost.label}`')
    assert all(str(code.pk) in message and code.uuid in message for code in codes)
    assert 'by pk or UUID' in message and 'verdi code relabel' in message
    assert load_code_by_label(str(codes[1].pk)).uuid == codes[1].uuid
    with pytest.raises(ValueError, match='no code `no_such_code@'):
        load_code_by_label(f'no_such_code@{localhost.label}')
