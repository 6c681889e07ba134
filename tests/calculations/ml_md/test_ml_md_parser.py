"""Tests of MlMdParser on files recorded from real runs of the driver (tests/calculations/ml_md/fixtures)."""

from __future__ import annotations

import json
import pathlib
import shutil

import pytest
from aiida import orm
from aiida.common.links import LinkType
from aiida.plugins import ParserFactory

from aiida_mlpot.calculations.ml_md import MlMdCalculation

FIXTURES = pathlib.Path(__file__).parent / 'fixtures'


@pytest.fixture
def calc_node(aiida_localhost):
    """Return a function making a finished MlMdCalculation node whose `retrieved` holds a fixture folder."""

    def factory(case: str | pathlib.Path) -> orm.CalcJobNode:
        node = orm.CalcJobNode(computer=aiida_localhost, process_type='aiida.calculations:mlpot.ml_md')
        node.set_option('resources', {'num_machines': 1, 'num_mpiprocs_per_machine': 1})
        node.set_option('parser_name', 'mlpot.ml_md')
        node.store()
        retrieved = orm.FolderData()
        retrieved.base.repository.put_object_from_tree(str(FIXTURES / case))  # an absolute path stays
        retrieved.base.links.add_incoming(node, link_type=LinkType.CREATE, link_label='retrieved')
        retrieved.store()
        return node

    return factory


def parse(node):
    parser = ParserFactory('mlpot.ml_md')
    return parser.parse_from_node(node, store_provenance=False)


def test_completed(calc_node):
    results, calcfunction = parse(calc_node('completed'))
    assert calcfunction.is_finished_ok
    summary = results['summary'].get_dict()
    assert summary['outcome'] == 'completed' and summary['steps_done'] == 10
    trajectory = results['trajectory']
    assert len(trajectory) == 3
    assert {'energy', 'forces', 'virial'} <= set(trajectory.properties)
    frames = trajectory.to_ase()
    assert [frame.info['step'] for frame in frames] == [0, 5, 10]
    assert all(
        frame.info['uncertainty'] == pytest.approx(score)
        for frame, score in zip(frames, summary['traces']['score'])
    )
    assert 'flagged' not in results
    assert len(results['final_structure'].sites) == 64
    assert 'reference_score' not in results  # given as a parameter, not computed by the driver


def test_extrapolation(calc_node):
    results, calcfunction = parse(calc_node('extrapolation'))
    assert calcfunction.is_finished_ok
    summary = results['summary'].get_dict()
    assert summary['outcome'] == 'extrapolation'
    flagged = results['flagged'].to_ase()
    assert len(flagged) == summary['n_flagged'] == 2
    assert flagged[-1].info['step'] == summary['triggered_step']
    assert flagged[-1].info['uncertainty'] > summary['threshold'] >= flagged[0].info['uncertainty']
    # candidates to label: the ML predictions are kept under other names, never as labels
    assert results['flagged'].properties == []
    assert all('ml_energy' in frame.info and 'ml_forces' in frame.arrays for frame in flagged)


def test_unstable(calc_node):
    results, calcfunction = parse(calc_node('unstable'))
    assert calcfunction.exit_status == MlMdCalculation.exit_codes.ERROR_UNSTABLE_MD.status
    assert 'temperature' in calcfunction.exit_message
    assert results['summary'].get_dict()['outcome'] == 'unstable'
    assert len(results['trajectory']) >= 1 and 'final_structure' in results


def test_driver_error(calc_node):
    results, calcfunction = parse(calc_node('error'))
    assert calcfunction.exit_status == MlMdCalculation.exit_codes.ERROR_DRIVER_FAILED.status
    assert 'structure.xyz' in calcfunction.exit_message
    assert 'trajectory' not in results


def test_summary_missing(calc_node):
    _, calcfunction = parse(calc_node('missing'))
    assert calcfunction.exit_status == MlMdCalculation.exit_codes.ERROR_OUTPUT_SUMMARY_MISSING.status
    assert 'usage' in calcfunction.exit_message


@pytest.mark.parametrize('case', ['completed', 'interrupted'])
def test_computed_reference_score_is_an_output(calc_node, tmp_path, case):
    """A reference score the driver computed (summary, or progress of a killed run) becomes an output node."""
    folder = tmp_path / case
    shutil.copytree(FIXTURES / case, folder)
    name = 'summary.json' if case == 'completed' else 'progress.json'
    data = json.loads((folder / name).read_text())
    data.update(reference_score=0.0251, reference_computed=True)
    (folder / name).write_text(json.dumps(data))
    results, _ = parse(calc_node(folder))
    assert results['reference_score'].value == 0.0251
    assert results['summary']['reference_score'] == 0.0251
