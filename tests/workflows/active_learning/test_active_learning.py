"""ActiveLearningWorkChain end to end with the real codes: LAMMPS teacher, gap_fit, the ML-MD driver."""

from __future__ import annotations

import pytest
from aiida import orm
from aiida.common.links import LinkType
from aiida.engine import run_get_node

from aiida_mlpot.presets import nacl_tosi_fumi
from aiida_mlpot.structures import random_box
from aiida_mlpot.workflows.active_learning import XTB_FIXED_CELL_VIRIAL_SIGMA, ActiveLearningWorkChain


def _builder(codes, structure, overrides, temperatures=(1100.0, 1400.0)):
    return ActiveLearningWorkChain.get_builder_from_protocol(
        structure,
        nacl_tosi_fumi('ewald'),
        temperatures=temperatures,
        oracle='classical',
        protocol='fast',
        overrides=overrides,
        codes=codes,
    )


@pytest.fixture
def nacl_liquid():
    return orm.StructureData(ase=random_box({'Na': 32, 'Cl': 32}, density=1.35, min_distance=2.3, seed=3))


def test_unknown_override_is_refused_by_name(codes, nacl_liquid):
    with pytest.raises(ValueError, match='unknown override key `loop_settings`'):
        _builder(codes, nacl_liquid, {'loop_settings': {}})


def test_bad_loop_setting_is_refused_before_running(codes, nacl_liquid):
    with pytest.raises(ValueError, match='`loop.target_stepz`: unknown key'):
        _builder(codes, nacl_liquid, {'loop': {'target_stepz': 3}})
    builder = _builder(codes, nacl_liquid, {})
    with pytest.raises(
        ValueError, match=r'`state_points\[0\].temperature_K`: must be a positive finite number'
    ):
        builder.state_points = orm.List([{'temperature_K': -5.0}])


@pytest.mark.parametrize(
    ('pressures', 'overrides', 'expected'),
    [
        ((), {}, XTB_FIXED_CELL_VIRIAL_SIGMA),
        ((), {'fitting': {'gap_fit': {'parameters': {'default_sigma': {'virial': 0.2}}}}}, 0.2),
        ((1.0,), {}, 0.05),
    ],
)
def test_xtb_oracle_at_fixed_cell_does_not_fit_the_virial(
    codes, code_cp2k, nacl_liquid, pressures, overrides, expected
):
    """GFN1-xTB's stress (~-40 GPa here) is not fitted in an NVT-only loop, unless the user sets its sigma."""
    builder = ActiveLearningWorkChain.get_builder_from_protocol(
        nacl_liquid, nacl_tosi_fumi('ewald'), temperatures=(1400.0,), pressures=pressures, oracle='cp2k-xtb',
        protocol='fast', overrides=overrides, codes={**codes, 'cp2k': code_cp2k},
    )  # fmt: skip
    assert builder.fitting.gap_fit.parameters['default_sigma']['virial'] == expected


@pytest.mark.e2e
@pytest.mark.slow
def test_loop_triggers_then_converges_on_nacl(codes, nacl_liquid):
    """A deliberately small initial set triggers extrapolation; the loop labels, refits and converges.

    One state point (1400 K, the harder one): half the ML MD and labels of a two-state-point run; the datasets are
    labelled by role and iteration.
    """
    overrides = {
        'selection': {'seed': 1, 'steps': [{'method': 'uniform_force', 'n': 12}, {'method': 'fps', 'n': 6}]},
        'split': {'method': 'random', 'test_fraction': 0.3, 'seed': 1},
        'loop': {'target_steps': 300, 'max_iterations': 6, 'max_per_iteration': 4, 'audit_force_rmse': 0.05},
        'sampling': {
            'md_parameters': {'equilibration_steps': 500, 'production_steps': 1000, 'dump_interval': 50}
        },
        'exploration': {'md': {'parameters': {'extrapolation': {'relative_threshold': 1.5}}}},
    }
    results, node = run_get_node(_builder(codes, nacl_liquid, overrides, temperatures=[1400.0]))
    assert node.is_finished_ok, node.exit_message
    curve = results['learning_curve'].get_dict()['iterations']
    assert any(row['n_triggers'] for row in curve), curve
    stopping = results['stopping'].get_dict()
    assert stopping['converged'] and stopping['criterion'] == 'converged'
    last = curve[-1]
    assert last['audit_force_rmse'] < 0.05 and last['n_triggers'] == 0 and last['n_unstable'] == 0
    assert len(results['training_set']) > 4  # the candidates joined the training set

    # every data set the loop made or attached is labelled by its role (and iteration)
    assert results['pool'].label == 'pool'
    assert results['training_set'].label == 'train_final' and results['test_set'].label == 'test_final'
    children = {
        link.link_label: link.node for link in node.base.links.get_outgoing(link_type=LinkType.CALL_CALC)
    }
    children.update(
        {link.link_label: link.node for link in node.base.links.get_outgoing(link_type=LinkType.CALL_WORK)}
    )
    assert children['select_initial'].outputs.selected.label == 'selected'
    assert children['label_initial'].outputs.labelled.label == 'labelled_initial'
    triggered = next(row['iteration'] for row in curve if row['n_triggers'])
    grown = children[f'iteration_{triggered:02d}_grow'].outputs
    assert grown.candidates.label == f'candidates_{triggered:02d}'
    assert 'audit' not in grown or grown.audit.label == f'audit_{triggered:02d}'
    assert grown.test.label == f'test_{triggered:02d}' or triggered == curve[-1]['iteration']
    assert children[f'iteration_{triggered:02d}_plan'].outputs.to_label.label == f'planned_{triggered:02d}'
    assert children[f'iteration_{triggered:02d}_explore_T1400_V1'].outputs.trajectory.label == (
        f'trajectory_T1400_V1_{triggered:02d}'
    )
