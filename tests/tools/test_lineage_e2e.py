"""Lineage of a potential built by the smallest real active-learning loop (LAMMPS sampling and teacher, gap_fit,
the ML-MD driver): every training configuration with its MD run, selection, oracle and iteration, through the
function and the command line, and the same rows after an archive export, deletion and import.

The loop calls the stage work chains a user would run stage by stage (SamplingWorkChain, select_configurations,
LabellingWorkChain, GapFitWorkChain); the lineage reads no link of the loop itself, so the stage-by-stage graph
is covered too (and in ``test_lineage.py`` without the loop around it)."""

from __future__ import annotations

import pytest
from aiida import orm
from aiida.common.exceptions import NotExistent
from aiida.engine import run_get_node
from aiida.tools import delete_nodes
from aiida.tools.archive import create_archive, import_archive
from click.testing import CliRunner

from aiida_mlpot.cli.lineage import lineage_command
from aiida_mlpot.presets import nacl_tosi_fumi
from aiida_mlpot.structures import random_box
from aiida_mlpot.tools.lineage import lineage
from aiida_mlpot.workflows.active_learning import ActiveLearningWorkChain

pytestmark = pytest.mark.e2e

#: A small, quick fit: 2b + SOAP with few sparse points (the lineage, not the potential, is under test).
DESCRIPTORS = [
    {'type': 'distance_2b', 'cutoff': 5.0, 'cutoff_transition_width': 1.0, 'n_sparse': 10, 'delta': 1.0,
     'theta_uniform': 1.0, 'covariance_type': 'ard_se', 'sparse_method': 'uniform'},
    {'type': 'soap', 'n_max': 3, 'l_max': 2, 'atom_sigma': 0.5, 'cutoff': 5.0, 'cutoff_transition_width': 1.0,
     'zeta': 2, 'delta': 0.2, 'covariance_type': 'dot_product', 'sparse_method': 'cur_points', 'n_sparse': 30},
]  # fmt: skip
#: The per-row fields that name nodes by PK (they change on import; the UUIDs do not).
PK_FIELDS = ('md_pk', 'md_dataset_pk', 'pool_pk', 'selection_pk', 'oracle_pk')


@pytest.fixture(scope='module')
def nacl_liquid():
    return orm.StructureData(ase=random_box({'Na': 32, 'Cl': 32}, density=1.35, min_distance=2.3, seed=3))


@pytest.fixture(scope='module')
def loop_run(code_lmp, code_gap_fit, code_python, nacl_liquid):
    """The smallest real loop that adds candidates: 1 state point, 6 initial frames, 2 iterations of 200 steps."""
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
    return results, node


@pytest.mark.slow
def test_active_learning_lineage(loop_run):
    """Every training configuration has its MD run and frame, its selection, its oracle and its iteration."""
    results, node = loop_run
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


@pytest.mark.slow
def test_lineage_command(loop_run):
    results, node = loop_run
    result = CliRunner().invoke(lineage_command, [str(node.pk)])
    assert result.exit_code == 0, result.output
    print(result.output)  # the table of docs/lineage.md (pytest -s)
    n_train = len(results['training_set'])
    assert f'{n_train} training configurations' in result.output
    assert f'{n_train} with an oracle calculation' in result.output
    assert len(result.output.splitlines()) == n_train + 2


@pytest.mark.slow
def test_lineage_survives_an_archive_round_trip(loop_run, tmp_path):
    """Export the potential alone, delete the whole run, import: the same rows, read from the imported nodes."""
    results, node = loop_run
    uuid = results['potential'].uuid
    before = lineage(results['potential'])
    archive = tmp_path / 'potential.aiida'
    create_archive([results['potential']], filename=archive)
    delete_nodes([node.pk], dry_run=False)  # the loop, everything it called and everything they made
    with pytest.raises(NotExistent):
        orm.load_node(uuid)
    import_archive(archive)
    after = lineage(orm.load_node(uuid))
    assert len(after) == len(before)
    for old, new in zip(before, after, strict=True):
        assert {k: v for k, v in old.items() if k not in PK_FIELDS} == {
            k: v for k, v in new.items() if k not in PK_FIELDS
        }
        assert all(new[field] is not None for field in PK_FIELDS if old[field] is not None)
        assert new['oracle_pk'] != old['oracle_pk']  # read from the imported nodes
