"""Unit tests of :mod:`aiida_mlpot.tools.lineage` on stored graphs built by the real calcfunctions.

The CalcJobs (LAMMPS MD, the oracle, gap_fit) are stand-in nodes here, linked as the engine links them; the
real codes run in ``test_lineage_e2e.py``.
"""

from __future__ import annotations

import json

import numpy as np
import pytest
from aiida import orm
from aiida.common.links import LinkType
from click.testing import CliRunner

from aiida_mlpot.calculations.functions.active_learning import grow_training_set
from aiida_mlpot.calculations.functions.labelling import collect_labels, dataset_to_structures
from aiida_mlpot.calculations.functions.sampling import merge_state_point_pools
from aiida_mlpot.calculations.functions.selection import select_configurations, split_dataset
from aiida_mlpot.cli.lineage import lineage_command
from aiida_mlpot.data.dataset import DatasetData
from aiida_mlpot.data.potential import GapPotentialData
from aiida_mlpot.tools.lineage import ROW_FIELDS, USER_DATASET, lineage, resolve_potential, training_set
from tests.conftest import nacl_rocksalt_box

GUARD = {'min_distance': 0.5, 'max_force': 1.0e6, 'energy_mad_threshold': 1.0e6}


def calcjob(localhost, label: str, entry_point: str, **inputs) -> orm.CalcJobNode:
    """Return a stored CalcJobNode standing for a finished calculation of ``entry_point`` with ``inputs``."""
    node = orm.CalcJobNode(computer=localhost, process_type=f'aiida.calculations:{entry_point}')
    node.set_process_label(label)
    for link_label, data in inputs.items():
        node.base.links.add_incoming(data, LinkType.INPUT_CALC, link_label)
    node.set_process_state('finished')
    node.set_exit_status(0)
    return node.store()


def output(node: orm.ProcessNode, data: orm.Data, link_label: str) -> orm.Data:
    data.base.links.add_incoming(node, LinkType.CREATE, link_label)
    return data.store()


def md_run(localhost, frames, steps) -> tuple[orm.CalcJobNode, DatasetData]:
    """An MD calculation whose dumped frames (``info['source_uuid']``, ``step``) are its ``dataset`` output."""
    node = calcjob(localhost, 'LammpsMdCalculation', 'mlpot.lammps.md')
    dumped = []
    for atoms, step in zip(frames, steps, strict=True):
        atoms = atoms.copy()
        atoms.info.update(source_uuid=node.uuid, step=step)
        dumped.append(atoms)
    return node, output(node, DatasetData.from_ase(dumped), 'dataset')


def classical_oracle(localhost, structures: dict) -> orm.CalcJobNode:
    """A rerun calculation labelling ``structures`` (its ``dataset`` output: energies, forces, ``label_key``)."""
    node = calcjob(
        localhost,
        'LammpsRerunCalculation',
        'mlpot.lammps.rerun',
        **{f'structures__{key}': structure for key, structure in structures.items()},
    )
    frames = []
    for index, key in enumerate(sorted(structures)):
        atoms = structures[key].get_ase()
        atoms.info.update(energy=-100.0 - index, virial=np.eye(3), source_uuid=node.uuid, label_key=key)
        atoms.arrays['forces'] = np.full((len(atoms), 3), 0.01 * index)
        frames.append(atoms)
    output(node, DatasetData.from_ase(frames), 'dataset')
    return node


def label(localhost, dataset: DatasetData) -> tuple[DatasetData, orm.CalcJobNode]:
    """Label ``dataset`` as LabellingWorkChain does: dataset_to_structures, the oracle, collect_labels."""
    structures = dict(dataset_to_structures(dataset))
    oracle = classical_oracle(localhost, structures)
    rerun = oracle.base.links.get_outgoing(link_type=LinkType.CREATE).one().node
    kwargs = {f'structure_{key}': node for key, node in structures.items()}
    result = collect_labels(
        orm.Dict(GUARD), orm.Dict({'failures': {}}), rerun=rerun, source=dataset, **kwargs
    )
    return result['labelled'], oracle


def fit(localhost, train: DatasetData) -> GapPotentialData:
    """A gap_fit calculation with ``train`` as its dataset and a potential as output."""
    node = calcjob(
        localhost, 'GapFitCalculation', 'mlpot.gap_fit', dataset=train, parameters=orm.Dict({}).store()
    )
    return output(node, GapPotentialData(), 'potential')


@pytest.fixture(scope='module')
def frames():
    result = []
    for seed in range(8):
        atoms = nacl_rocksalt_box(1.295)
        atoms.rattle(0.05, seed=seed)
        atoms.info.update(energy=-500.0 + seed, virial=np.eye(3) * seed)
        atoms.arrays['forces'] = np.random.default_rng(seed).normal(size=(len(atoms), 3))
        atoms.arrays['energies'] = np.full(len(atoms), (-500.0 + seed) / len(atoms))
        result.append(atoms)
    return result


@pytest.fixture(scope='module')
def stage_by_stage(aiida_profile, localhost, frames):
    """Sampling (two MD runs merged into a pool) -> select -> label -> split -> fit."""
    md_a, dumped_a = md_run(localhost, frames[:4], [0, 50, 100, 150])
    md_b, dumped_b = md_run(localhost, frames[4:], [0, 50, 100, 150])
    pool = merge_state_point_pools(T1100_V1=dumped_a, T1400_V1=dumped_b)
    spec = {'seed': 1, 'steps': [{'method': 'random', 'n': 5}]}
    selection = select_configurations(pool, orm.Dict(spec))
    labelled, oracle = label(localhost, selection['selected'])
    split = split_dataset(labelled, orm.Dict({'method': 'random', 'n_test': 1, 'seed': 1}))
    potential = fit(localhost, split['train'])
    return {
        'md': (md_a, md_b),
        'pool': pool,
        'selection': selection,
        'oracle': oracle,
        'potential': potential,
    }


def test_one_row_per_training_configuration(stage_by_stage):
    potential = stage_by_stage['potential']
    train = training_set(potential)
    rows = lineage(potential)
    assert len(rows) == len(train) == 4
    pool = stage_by_stage['pool']
    pool_frames = pool.to_ase()
    record = stage_by_stage['selection']['record'].get_dict()
    select_node = stage_by_stage['selection']['record'].creator
    oracle = stage_by_stage['oracle']
    mds = {node.uuid: node for node in stage_by_stage['md']}
    for row, atoms in zip(rows, train.to_ase(), strict=True):
        assert set(row) == set(ROW_FIELDS)
        assert row['iteration'] == 0
        source = pool_frames[row['pool_index']]
        assert row['pool_index'] in record['pool_indices']
        assert np.allclose(atoms.positions, source.positions)  # the row names the pool frame it is
        assert (row['pool_pk'], row['pool_uuid'], row['pool_origin']) == (
            pool.pk,
            pool.uuid,
            'merge_state_point_pools',
        )
        md = mds[source.info['source_uuid']]
        assert (row['md_pk'], row['md_uuid'], row['md_process']) == (md.pk, md.uuid, 'LammpsMdCalculation')
        assert row['md_step'] == source.info['step']
        # the frame index in the MD run's own output
        assert row['md_frame'] == [0, 50, 100, 150].index(source.info['step'])
        assert row['md_dataset_pk'] == md.outputs.dataset.pk
        assert (row['selection_pk'], row['selection_process']) == (select_node.pk, 'select_configurations')
        assert (row['oracle_pk'], row['oracle_uuid'], row['oracle_process']) == (
            oracle.pk,
            oracle.uuid,
            'LammpsRerunCalculation',
        )


def test_the_lineage_attribute_is_queryable(stage_by_stage):
    """Datasets holding frames of an MD run are found by a query on the attribute, without reading files."""
    md_a, _ = stage_by_stage['md']
    builder = orm.QueryBuilder().append(
        DatasetData, filters={'attributes.lineage.md_uuid': {'contains': [md_a.uuid]}}, project='uuid'
    )
    found = set(builder.all(flat=True))
    train = training_set(stage_by_stage['potential'])
    assert stage_by_stage['pool'].uuid in found
    expected = md_a.uuid in train.base.attributes.get('lineage')['md_uuid']
    assert (train.uuid in found) == expected


def test_process_that_returned_the_potential_resolves_to_it(stage_by_stage, localhost):
    potential = stage_by_stage['potential']
    workflow = orm.WorkflowNode()
    workflow.set_process_label('SomeWorkChain')
    workflow.store()
    potential.base.links.add_incoming(workflow, LinkType.RETURN, 'potential')
    assert resolve_potential(workflow).uuid == potential.uuid
    assert [row['oracle_pk'] for row in lineage(workflow)] == [row['oracle_pk'] for row in lineage(potential)]
    with pytest.raises(ValueError, match='not a GapPotentialData or a process'):
        lineage(training_set(potential))


def test_user_pool_names_the_user_dataset(aiida_profile, localhost, frames):
    """Frames a user brings (no MD run in the graph): the lineage says they came from that user dataset."""
    pool = DatasetData.from_ase(frames).store()
    selection = select_configurations(pool, orm.Dict({'seed': 2, 'steps': [{'method': 'random', 'n': 3}]}))
    labelled, oracle = label(localhost, selection['selected'])
    rows = lineage(fit(localhost, labelled))
    assert len(rows) == 3
    assert {row['pool_origin'] for row in rows} == {USER_DATASET}
    assert {row['pool_pk'] for row in rows} == {pool.pk}
    assert sorted(row['pool_index'] for row in rows) == sorted(selection['record'].get_dict()['pool_indices'])
    assert all(row['md_pk'] is None and row['md_uuid'] is None for row in rows)
    assert {row['oracle_pk'] for row in rows} == {oracle.pk}
    assert {row['selection_process'] for row in rows} == {'select_configurations'}


def test_loop_candidates_carry_their_iteration(aiida_profile, localhost, frames):
    """grow_training_set: the candidates a plan chose in iteration 2 are rows of iteration 2 with their ML-MD run."""
    _, dumped = md_run(localhost, frames[:4], [0, 10, 20, 30])
    selection = select_configurations(dumped, orm.Dict({'seed': 1, 'steps': [{'method': 'random', 'n': 2}]}))
    initial, _ = label(localhost, selection['selected'])
    ml_md, trajectory = md_run(localhost, frames[4:], [0, 20, 40, 60])
    planned = []
    for role, atoms in zip(('audit', 'candidate', 'candidate'), trajectory.to_ase()[1:], strict=True):
        atoms.info.update(al_role=role, al_replica='T1400_V1', al_iteration=2)
        planned.append(atoms)
    planned = DatasetData.from_ase(planned).store()  # stands for the `to_label` output of plan_iteration
    labelled, oracle = label(localhost, planned)
    test = DatasetData.from_ase(initial.to_ase()[:1])
    grown = grow_training_set(initial, test, planned=planned, labelled=labelled)
    rows = lineage(fit(localhost, grown['train']))
    assert [row['iteration'] for row in rows] == [0, 0, 2, 2]
    new = rows[2:]
    assert {row['md_pk'] for row in new} == {ml_md.pk}
    assert [row['md_step'] for row in new] == [40, 60] and [row['md_frame'] for row in new] == [2, 3]
    assert {row['md_dataset_pk'] for row in new} == {trajectory.pk}
    assert {row['oracle_pk'] for row in new} == {oracle.pk}
    assert {row['pool_pk'] for row in new} == {None}
    assert grown['test'].lineage[-1]['iteration'] == 2  # the audit frame went to the test set


def test_relabelled_frame_keeps_its_md_run(aiida_profile, localhost, frames):
    """Labelling a labelled dataset again: the MD run stays the parent, the new oracle is the oracle."""
    md, dumped = md_run(localhost, frames[:3], [0, 1, 2])
    first, _ = label(localhost, dumped)
    second, oracle = label(localhost, first)
    for row in second.lineage:
        assert row['md_uuid'] == md.uuid and row['oracle_uuid'] == oracle.uuid


def test_cli_table_and_json(stage_by_stage):
    potential = stage_by_stage['potential']
    runner = CliRunner()
    result = runner.invoke(lineage_command, [str(potential.pk), '--json'])
    assert result.exit_code == 0, result.output
    assert json.loads(result.output) == lineage(potential)
    result = runner.invoke(lineage_command, [potential.uuid])
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert lines[0].split()[:4] == ['#', 'iter', 'MD', 'calculation']
    assert len(lines) == 1 + 4 + 1
    oracle = stage_by_stage['oracle']
    assert all(f'LammpsRerunCalculation<{oracle.pk}>' in line for line in lines[1:5])
    assert '4 training configurations; iterations [0]; 4 with an oracle calculation' in lines[-1]
    result = runner.invoke(lineage_command, [str(training_set(potential).pk)])
    assert result.exit_code != 0 and 'not a GapPotentialData or a process' in result.output
