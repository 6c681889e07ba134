"""Interrupted runs: MlMdParser on a real driver killed with SIGKILL (fixtures/interrupted), then a restart.

The fixture was recorded by ``fixtures/record_interrupted.py``: the real driver with the test GAP, 40 steps
requested, a frame every 5 steps, killed after its 4th frame (step 15): no ``summary.json``.
"""

from __future__ import annotations

import json
import pathlib
import shutil

import pytest
from aiida import orm
from aiida.common.links import LinkType
from aiida.engine import run_get_node
from aiida.plugins import ParserFactory

from aiida_mlpot.calculations.ml_md import MlMdCalculation

FIXTURES = pathlib.Path(__file__).parent / 'fixtures'
EXIT_CODES = MlMdCalculation.exit_codes


@pytest.fixture
def node_from_folder(aiida_localhost):
    """Return a function making a finished MlMdCalculation node whose `retrieved` holds a folder's files."""

    def factory(folder: pathlib.Path) -> orm.CalcJobNode:
        node = orm.CalcJobNode(computer=aiida_localhost, process_type='aiida.calculations:mlpot.ml_md')
        node.set_option('resources', {'num_machines': 1, 'num_mpiprocs_per_machine': 1})
        node.set_option('parser_name', 'mlpot.ml_md')
        node.store()
        retrieved = orm.FolderData()
        retrieved.base.repository.put_object_from_tree(str(folder))
        retrieved.base.links.add_incoming(node, link_type=LinkType.CREATE, link_label='retrieved')
        retrieved.store()
        return node

    return factory


def parse(node):
    return ParserFactory('mlpot.ml_md').parse_from_node(node, store_provenance=False)


def test_interrupted_run_keeps_its_frames(node_from_folder):
    """Killed after 4 frames: exit 420, the 4 frames attached, the last as final structure, a summary."""
    results, calcfunction = parse(node_from_folder(FIXTURES / 'interrupted'))
    assert calcfunction.exit_status == EXIT_CODES.ERROR_INTERRUPTED.status == 420
    assert 'after 15 of 40 steps' in calcfunction.exit_message
    assert 'restart_from' in calcfunction.exit_message
    frames = results['trajectory'].to_ase()
    assert [frame.info['step'] for frame in frames] == [0, 5, 10, 15]
    assert {'energy', 'forces', 'virial'} <= set(results['trajectory'].properties)
    assert all('momenta' in frame.arrays for frame in frames)
    final = results['final_structure'].get_ase()
    assert len(final) == 64
    assert final.positions == pytest.approx(frames[-1].positions, abs=1e-10)
    summary = results['summary'].get_dict()
    assert summary['outcome'] == 'interrupted' and summary['engine'] == 'ase'
    assert (summary['initial_step'], summary['steps_done'], summary['final_step']) == (0, 15, 15)
    assert summary['steps_requested'] == 40 and summary['steps_remaining'] == 25
    assert summary['n_dumped'] == 4 and not summary['partial_frame_dropped']
    assert summary['max_score'] == pytest.approx(max(summary['traces']['score']))
    assert summary['elapsed_s'] > 0 and summary['threshold'] == 0.2


def test_half_written_frame_is_dropped(node_from_folder, tmp_path):
    """The same run cut in the middle of its last frame (as a kill during a write leaves it): 3 frames."""
    folder = tmp_path / 'cut'
    shutil.copytree(FIXTURES / 'interrupted', folder)
    text = (folder / 'trajectory.xyz').read_text()
    (folder / 'trajectory.xyz').write_text(text[: len(text) - len(text) // 8])
    results, calcfunction = parse(node_from_folder(folder))
    assert calcfunction.exit_status == 420
    assert [frame.info['step'] for frame in results['trajectory'].to_ase()] == [0, 5, 10]
    summary = results['summary'].get_dict()
    assert summary['partial_frame_dropped'] and summary['final_step'] == 10
    assert summary['progress_step'] == 15  # progress.json ran ahead of what is complete on disk


def test_nothing_usable_is_still_301(node_from_folder, tmp_path):
    """Killed before its first frame was complete: nothing to attach, exit 301."""
    folder = tmp_path / 'early'
    folder.mkdir()
    text = (FIXTURES / 'interrupted' / 'trajectory.xyz').read_text()
    (folder / 'trajectory.xyz').write_text(text[:5000])
    (folder / 'driver.err').write_text('Killed\n')
    results, calcfunction = parse(node_from_folder(folder))
    assert calcfunction.exit_status == EXIT_CODES.ERROR_OUTPUT_SUMMARY_MISSING.status
    assert 'Killed' in calcfunction.exit_message and not results


def test_unreadable_summary_with_frames_is_interrupted(node_from_folder, tmp_path):
    """A summary cut while written (an old driver wrote it in place): the frames are kept all the same."""
    folder = tmp_path / 'cut_summary'
    shutil.copytree(FIXTURES / 'interrupted', folder)
    (folder / 'summary.json').write_text(json.dumps({'outcome': 'completed'})[:12])
    (folder / 'progress.json').unlink()
    results, calcfunction = parse(node_from_folder(folder))
    assert calcfunction.exit_status == 420 and 'cannot be read' in calcfunction.exit_message
    summary = results['summary'].get_dict()
    assert summary['final_step'] == 15 and summary['steps_requested'] is None
    assert summary['max_score'] == pytest.approx(max(summary['traces']['score']))


@pytest.mark.e2e
def test_restart_from_interrupted_run_completes(node_from_folder, ml_md_inputs):
    """The trajectory of the killed run as `restart_from`: steps continue from 15 and the 25 left complete."""
    results, _ = parse(node_from_folder(FIXTURES / 'interrupted'))
    trajectory = results['trajectory'].store()
    remaining = results['summary']['steps_remaining']
    parameters = {
        'md': {'temperature_K': 1400.0, 'n_steps': remaining, 'dump_interval': 5, 'seed': 22},
        'extrapolation': {'check_interval': 5, 'threshold': 0.2},
    }
    inputs = ml_md_inputs(parameters)
    inputs.pop('structure')
    inputs['restart_from'] = trajectory
    results, node = run_get_node(MlMdCalculation, **inputs)
    assert node.exit_status == 0, node.exit_message
    summary = results['summary'].get_dict()
    assert summary['outcome'] == 'completed' and summary['velocities'] == 'from_structure'
    assert (summary['initial_step'], summary['steps_done'], summary['final_step']) == (15, 25, 40)
    frames = results['trajectory'].to_ase()
    assert [frame.info['step'] for frame in frames] == [15, 20, 25, 30, 35, 40]
    start = trajectory.to_ase()[-1]
    assert frames[0].positions == pytest.approx(start.positions, abs=1e-10)
    assert frames[0].arrays['momenta'] == pytest.approx(start.arrays['momenta'], abs=1e-10)
    assert 'progress.json' in node.outputs.retrieved.base.repository.list_object_names()
