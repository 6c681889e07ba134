"""EvaluateParser on the retrieved files of real evaluation runs (fixtures/record.py), attached to a node built
by hand."""

from __future__ import annotations

import pathlib

import numpy as np
import pytest

FIXTURES = pathlib.Path(__file__).parent / 'fixtures'
DATASET = pathlib.Path(__file__).parents[1] / 'gap_fit' / 'fixtures' / 'success_dataset.xyz'


@pytest.fixture
def make_node(aiida_profile, localhost):
    """Return a factory of a stored EvaluateCalculation node (dataset: the first ``n`` recorded configurations)
    with a retrieved folder of the given files."""
    from aiida import orm
    from aiida.common.links import LinkType

    from aiida_mlpot.data.dataset import DatasetData
    from aiida_mlpot.data.extxyz import read_frames

    with open(DATASET) as handle:
        frames = read_frames(handle)

    def factory(files: dict[str, pathlib.Path | str], n: int = 4):
        node = orm.CalcJobNode(computer=localhost, process_type='aiida.calculations:mlpot.evaluate')
        node.set_option('resources', {'num_machines': 1, 'num_mpiprocs_per_machine': 1})
        dataset = DatasetData.from_ase(frames[:n]).store()
        node.base.links.add_incoming(dataset, LinkType.INPUT_CALC, 'dataset')
        node.store()
        retrieved = orm.FolderData()
        for name, content in files.items():
            if isinstance(content, pathlib.Path):
                retrieved.base.repository.put_object_from_file(str(content), name)
            else:
                retrieved.base.repository.put_object_from_bytes(content.encode(), name)
        retrieved.base.links.add_incoming(node, LinkType.CREATE, 'retrieved')
        retrieved.store()
        return node

    return factory


def parse(node):
    from aiida_mlpot.parsers.evaluate import EvaluateParser

    return EvaluateParser.parse_from_node(node, store_provenance=False)


def recorded(case: str) -> dict[str, pathlib.Path]:
    return {path.name: path for path in (FIXTURES / case).iterdir()}


def test_completed(make_node, data_regression):
    results, calcfunction = parse(make_node(recorded('completed')))
    assert calcfunction.is_finished_ok, calcfunction.exit_message
    predictions = results['predictions']
    assert predictions.n_configs == 4 and predictions.species == ['Cl', 'Na']
    assert predictions.properties == ['energy', 'virial', 'forces']
    frames = predictions.to_ase()
    forces = np.concatenate([atoms.arrays['forces'] for atoms in frames])
    data_regression.check(
        {
            'config_types': [str(atoms.info['config_type']) for atoms in frames],
            'energy': [round(float(atoms.info['energy']), 6) for atoms in frames],
            'uncertainty': [round(float(atoms.info['uncertainty']), 6) for atoms in frames],
            'virial_xx': [round(float(atoms.info['virial'][0, 0]), 5) for atoms in frames],
            'max_abs_force': round(float(np.abs(forces).max()), 5),
        }
    )


def test_driver_error(make_node):
    _, calcfunction = parse(make_node(recorded('error')))
    assert calcfunction.exit_status == 310
    assert "No such file or directory: 'dataset.xyz'" in calcfunction.exit_message


def test_killed_before_the_summary(make_node):
    """A driver killed before writing its summary: 301 with the last line of its standard error."""
    files = recorded('completed')
    files.pop('summary.json')
    files['driver.err'] = 'slurmstepd: error: *** JOB 42 CANCELLED DUE TO TIME LIMIT ***\n'
    _, calcfunction = parse(make_node(files))
    assert calcfunction.exit_status == 301 and 'TIME LIMIT' in calcfunction.exit_message


def test_unreadable_summary_and_missing_predictions(make_node):
    for summary in ('{"outcome": ', '{"n_configs": 4}'):
        _, calcfunction = parse(make_node({**recorded('completed'), 'summary.json': summary}))
        assert calcfunction.exit_status == 302
    files = recorded('completed')
    files.pop('predictions.xyz')
    _, calcfunction = parse(make_node(files))
    assert calcfunction.exit_status == 303


def test_predictions_that_do_not_match_the_dataset(make_node):
    _, calcfunction = parse(make_node(recorded('completed'), n=3))
    assert calcfunction.exit_status == 304
    assert '4 predicted configurations for 3 in the dataset' in calcfunction.exit_message
