"""The `select_configurations` and `split_dataset` calcfunctions on the real NaCl pool."""

import numpy as np
import pytest
from aiida import orm
from aiida.common.links import LinkType
from aiida.plugins import CalculationFactory

from aiida_mlpot.calculations.functions.exit_codes import check_exit_code_table
from aiida_mlpot.calculations.functions.selection import EXIT_CODES, select_configurations, split_dataset
from aiida_mlpot.common.keys import config_key
from aiida_mlpot.data.dataset import DatasetData
from aiida_mlpot.selection import run_selection


@pytest.fixture(scope='module')
def pool_frames(nacl_reference_frames):
    frames = [atoms.copy() for atoms in nacl_reference_frames[::2]]
    for k, atoms in enumerate(frames):
        atoms.info['source_uuid'] = f'md-{atoms.info["config_type"]}'
        atoms.info['frame'] = k
    return frames


@pytest.fixture
def pool(aiida_profile, pool_frames):
    return DatasetData.from_ase(pool_frames)


def test_entry_points():
    assert CalculationFactory('mlpot.select') is select_configurations
    assert CalculationFactory('mlpot.split') is split_dataset


def test_exit_code_table():
    assert check_exit_code_table(EXIT_CODES) is None


@pytest.mark.e2e
def test_select_two_steps_with_provenance(pool, pool_frames):
    spec = {
        'seed': 3,
        'steps': [
            {'method': 'uniform_force', 'n': 20},
            {'method': 'fps', 'n': 8, 'soap': {'r_cut': 4.5, 'n_max': 4, 'l_max': 3}},
        ],
    }
    results, node = select_configurations.run_get_node(pool, orm.Dict(spec))
    assert node.is_finished_ok
    expected = run_selection(pool_frames, spec)
    selected = results['selected']
    assert len(selected) == 8
    assert selected.is_stored
    frames = selected.to_ase()
    assert [atoms.info['pool_index'] for atoms in frames] == list(expected.indices)
    for atoms in frames:
        source = pool_frames[atoms.info['pool_index']]
        np.testing.assert_allclose(atoms.positions, source.positions)
        np.testing.assert_allclose(atoms.arrays['forces'], source.arrays['forces'])
        assert atoms.info['source_uuid'] == source.info['source_uuid']
        assert atoms.info['step'] == source.info['step']
        assert atoms.info['pool_uuid'] == pool.uuid

    structures = results['structures']
    assert sorted(structures) == [config_key(k) for k in range(8)]
    for k, atoms in enumerate(frames):
        structure = structures[config_key(k)]
        assert structure.is_stored
        np.testing.assert_allclose(structure.get_ase().positions, atoms.positions)
        assert f'pool configuration {atoms.info["pool_index"]}' in structure.description
    created = node.base.links.get_outgoing(link_type=LinkType.CREATE).all_link_labels()
    assert 'structures__config_00007' in created

    record = results['record'].get_dict()
    assert record['n_pool'] == len(pool_frames)
    assert [step['method'] for step in record['steps']] == ['uniform_force', 'fps']
    assert record['steps'][0]['indices'] == expected.steps[0]['indices']
    assert record['pool_indices'] == list(expected.indices)


@pytest.mark.e2e
@pytest.mark.parametrize(
    ('spec', 'status', 'text'),
    [
        ({'steps': [{'method': 'uniform_force', 'n': 500}]}, 203, 'pool holds only 101'),
        ({'steps': [{'method': 'nope', 'n': 5}]}, 201, "unknown method 'nope'"),
    ],
)
def test_select_errors(pool, spec, status, text):
    _, node = select_configurations.run_get_node(pool, orm.Dict(spec))
    assert node.exit_status == status
    assert text in node.exit_message


@pytest.mark.e2e
def test_select_missing_property_and_empty_pool(aiida_profile, pool_frames):
    frames = [atoms.copy() for atoms in pool_frames[:10]]
    for atoms in frames:
        del atoms.arrays['energies']
    _, node = select_configurations.run_get_node(
        DatasetData.from_ase(frames), orm.Dict({'steps': [{'method': 'uniform_atomic_energy', 'n': 3}]})
    )
    assert node.exit_status == 204
    assert "'energies'" in node.exit_message
    _, node = select_configurations.run_get_node(
        DatasetData.from_ase([]), orm.Dict({'steps': [{'method': 'random', 'n': 3}]})
    )
    assert node.exit_status == 202


@pytest.mark.e2e
def test_allow_fewer(aiida_profile, pool_frames):
    spec = {'seed': 0, 'allow_fewer': True, 'steps': [{'method': 'random', 'n': 500}]}
    results = select_configurations(DatasetData.from_ase(pool_frames[:6]), orm.Dict(spec))
    assert len(results['selected']) == 6
    assert len(results['structures']) == 6


@pytest.mark.e2e
def test_split_random(pool):
    spec = orm.Dict({'method': 'random', 'test_fraction': 0.2, 'seed': 5})
    results = split_dataset(pool, spec)
    train, test = results['train'].to_ase(), results['test'].to_ase()
    assert len(test) == 20
    assert len(train) == 81
    indices = [atoms.info['split_index'] for atoms in train + test]
    assert sorted(indices) == list(range(101))
    again = split_dataset(pool, spec)
    assert [a.info['split_index'] for a in again['test'].to_ase()] == [a.info['split_index'] for a in test]


@pytest.mark.e2e
def test_split_by_config_type(pool):
    results = split_dataset(pool, orm.Dict({'method': 'config_type', 'test_config_types': ['T1400']}))
    assert {atoms.info['config_type'] for atoms in results['test'].to_ase()} == {'T1400'}
    assert {atoms.info['config_type'] for atoms in results['train'].to_ase()} == {'T1100'}
    _, node = split_dataset.run_get_node(
        pool, orm.Dict({'method': 'config_type', 'test_config_types': ['T9']})
    )
    assert node.exit_status == 205
    _, node = split_dataset.run_get_node(pool, orm.Dict({'method': 'random'}))
    assert node.exit_status == 201
