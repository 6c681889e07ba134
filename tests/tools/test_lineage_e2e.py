"""Lineage of potentials built with the real codes: stage by stage (sampling -> select -> label with the classical
teacher -> fit), read again after an archive export/import, and by the smallest real active-learning loop."""

from __future__ import annotations

import pytest
from aiida import orm
from aiida.common.exceptions import NotExistent
from aiida.engine import run_get_node
from aiida.tools import delete_nodes
from aiida.tools.archive import create_archive, import_archive
from click.testing import CliRunner

from aiida_mlpot.calculations.functions.selection import select_configurations
from aiida_mlpot.cli.lineage import lineage_command
from aiida_mlpot.presets import nacl_tosi_fumi
from aiida_mlpot.structures import random_box
from aiida_mlpot.tools.lineage import lineage, training_set
from aiida_mlpot.workflows.active_learning import ActiveLearningWorkChain
from aiida_mlpot.workflows.gap_fit import GapFitWorkChain
from aiida_mlpot.workflows.labelling import LabellingWorkChain
from aiida_mlpot.workflows.sampling import SamplingWorkChain

pytestmark = pytest.mark.e2e

#: A small, quick fit: 2b + SOAP with few sparse points (the lineage, not the potential, is under test).
DESCRIPTORS = [
    {'type': 'distance_2b', 'cutoff': 5.0, 'cutoff_transition_width': 1.0, 'n_sparse': 10, 'delta': 1.0,
     'theta_uniform': 1.0, 'covariance_type': 'ard_se', 'sparse_method': 'uniform'},
    {'type': 'soap', 'n_max': 3, 'l_max': 2, 'atom_sigma': 0.5, 'cutoff': 5.0, 'cutoff_transition_width': 1.0,
     'zeta': 2, 'delta': 0.2, 'covariance_type': 'dot_product', 'sparse_method': 'cur_points', 'n_sparse': 30},
]  # fmt: skip
#: The per-row fields that name nodes by PK (they change on import; the UUIDs do not).
PK_FIELDS = ('md_pk', 'pool_pk', 'selection_pk', 'oracle_pk')


@pytest.fixture(scope='module')
def nacl_liquid():
    return orm.StructureData(ase=random_box({'Na': 32, 'Cl': 32}, density=1.35, min_distance=2.3, seed=3))


@pytest.fixture(scope='module')
def stage_by_stage(aiida_profile, code_lmp, code_gap_fit, nacl_liquid):
    """Sampling at one state point, a selection of 5 frames, the classical teacher, a fit: the user's own path."""
    potential = nacl_tosi_fumi('ewald')
    builder = SamplingWorkChain.get_builder_from_protocol(
        code_lmp,
        nacl_liquid,
        protocol='fast',
        overrides={
            'md_parameters': {'equilibration_steps': 200, 'production_steps': 400, 'dump_interval': 50}
        },
        potential=potential,
        state_points=[{'temperature_K': 1400.0, 'volume_scale': 1.0}],
    )
    sampled, sampling = run_get_node(builder)
    assert sampling.is_finished_ok, sampling.exit_message
    spec = {'seed': 1, 'steps': [{'method': 'uniform_force', 'n': 7}, {'method': 'fps', 'n': 5}]}
    selection = select_configurations(sampled['pool'], orm.Dict(spec))
    builder = LabellingWorkChain.get_builder_from_protocol(
        code_lmp, selection['selected'], oracle='classical', potential=potential
    )
    labelled, labelling = run_get_node(builder)
    assert labelling.is_finished_ok, labelling.exit_message
    builder = GapFitWorkChain.get_builder_from_protocol(
        code_gap_fit,
        labelled['labelled'],
        protocol='fast',
        overrides={'gap_fit': {'parameters': {'descriptors': DESCRIPTORS}}},
    )
    fitted, fit = run_get_node(builder)
    assert fit.is_finished_ok, fit.exit_message
    return {
        'sampling': sampling,
        'selection': selection,
        'labelling': labelling,
        'potential': fitted['potential'],
    }


def test_stage_by_stage_lineage(stage_by_stage):
    potential = stage_by_stage['potential']
    rows = lineage(potential)
    train = training_set(potential)
    assert len(rows) == len(train) == 5
    pool = stage_by_stage['sampling'].outputs.pool
    pool_frames = pool.to_ase()
    md_calcs = {node.uuid for node in stage_by_stage['sampling'].called_descendants}
    rerun = stage_by_stage['labelling'].base.links.get_outgoing(link_label_filter='classical').one().node
    for row in rows:
        assert row['iteration'] == 0
        assert row['oracle_pk'] == rerun.pk and row['oracle_process'] == 'LammpsRerunCalculation'
        assert row['selection_process'] == 'select_configurations'
        assert row['selection_pk'] == stage_by_stage['selection']['record'].creator.pk
        assert row['pool_pk'] == pool.pk and row['pool_origin'] == 'merge_state_point_pools'
        assert row['md_process'] == 'LammpsMdCalculation' and row['md_uuid'] in md_calcs
        frame = pool_frames[row['pool_index']]
        assert (frame.info['source_uuid'], frame.info['step']) == (row['md_uuid'], row['md_step'])
        md_dataset = orm.load_node(row['md_uuid']).outputs.dataset
        assert row['md_dataset_pk'] == md_dataset.pk
        assert md_dataset.to_ase()[row['md_frame']].info['step'] == row['md_step']


def test_lineage_survives_an_archive_round_trip(stage_by_stage, tmp_path):
    """Export the potential alone, delete its whole provenance, import: the same rows (new PKs)."""
    potential = stage_by_stage['potential']
    uuid = potential.uuid
    before = lineage(potential)
    archive = tmp_path / 'potential.aiida'
    create_archive([potential], filename=archive)
    delete_nodes([stage_by_stage['sampling'].pk], dry_run=False)  # and everything made from its outputs
    with pytest.raises(NotExistent):
        orm.load_node(uuid)
    import_archive(archive)
    after = lineage(orm.load_node(uuid))
    assert len(after) == len(before) == 5
    for old, new in zip(before, after, strict=True):
        assert {k: v for k, v in old.items() if k not in PK_FIELDS} == {
            k: v for k, v in new.items() if k not in PK_FIELDS
        }
        assert all(new[field] is not None for field in PK_FIELDS)  # every node came with the potential
        assert new['oracle_pk'] != old['oracle_pk']  # read from the imported nodes


@pytest.mark.slow
def test_active_learning_lineage(code_lmp, code_gap_fit, code_python, nacl_liquid):
    """The smallest real loop: every training configuration has its MD run, selection, oracle and iteration."""
    overrides = {
        'selection': {'seed': 1, 'steps': [{'method': 'uniform_force', 'n': 8}, {'method': 'fps', 'n': 6}]},
        'split': {'method': 'random', 'test_fraction': 0.34, 'seed': 1},
        'loop': {
            'target_steps': 200,
            'max_iterations': 2,
            'max_per_iteration': 2,
            'audit_per_replica': 1,
            'audit_force_rmse': 0.05,
        },
        'sampling': {
            'md_parameters': {'equilibration_steps': 200, 'production_steps': 500, 'dump_interval': 50}
        },
        'fitting': {'gap_fit': {'parameters': {'descriptors': DESCRIPTORS}}},
        'exploration': {'md': {'parameters': {'extrapolation': {'relative_threshold': 1.2}}}},
    }
    builder = ActiveLearningWorkChain.get_builder_from_protocol(
        orm.StructureData(ase=nacl_liquid.get_ase()),
        nacl_tosi_fumi('ewald'),
        temperatures=[1400.0],
        oracle='classical',
        protocol='fast',
        overrides=overrides,
        codes={'lammps': code_lmp, 'gap_fit': code_gap_fit, 'python': code_python},
    )
    results, node = run_get_node(builder)
    assert 'potential' in results, node.exit_message  # a loop stopped by max_iterations still has its outputs
    rows = lineage(node)
    assert len(rows) == len(results['training_set'])
    assert all(row['oracle_pk'] is not None for row in rows), rows
    assert all(row['oracle_process'] == 'LammpsRerunCalculation' for row in rows)
    initial = [row for row in rows if row['iteration'] == 0]
    added = [row for row in rows if row['iteration'] > 0]
    assert initial and all(row['selection_process'] == 'select_configurations' for row in initial)
    assert all(row['md_process'] == 'LammpsMdCalculation' and row['pool_pk'] for row in initial)
    curve = results['learning_curve'].get_dict()['iterations']
    assert added, curve  # the first exploration triggered and its candidates joined the training set
    assert all(row['selection_process'] == 'plan_iteration' for row in added)
    assert {row['md_process'] for row in added} == {'MlMdCalculation'}, added
    for row in rows:  # the frame each row names is the frame of that MD step
        frames = orm.load_node(row['md_dataset_pk']).lineage
        assert frames[row['md_frame']]['md_step'] == row['md_step'], row
    result = CliRunner().invoke(lineage_command, [str(node.pk)])
    assert result.exit_code == 0, result.output
    print(result.output)  # the table of docs/lineage.md (pytest -s)
    assert f'{len(rows)} training configurations' in result.output
    assert f'{len(rows)} with an oracle calculation' in result.output
