"""The calcfunctions of the active-learning loop on small hand-made datasets (every decision is a node)."""

from __future__ import annotations

import numpy as np
from aiida import orm
from ase.build import bulk

from aiida_mlpot.calculations.functions.active_learning import (
    EXIT_CODES,
    assess_iteration,
    grow_training_set,
    learning_curve,
    plan_iteration,
    random_baseline_set,
    stopped_verdict,
)
from aiida_mlpot.calculations.functions.exit_codes import check_exit_code_table
from aiida_mlpot.common.keys import config_key
from aiida_mlpot.data.dataset import DatasetData

SOAP = {'r_cut': 4.0, 'n_max': 4, 'l_max': 3}


def _frame(seed: int, step: int, labelled: bool = True):
    atoms = bulk('NaCl', 'rocksalt', a=5.64, cubic=True)
    atoms.positions += np.random.default_rng(seed).normal(0.0, 0.2, atoms.positions.shape)
    if labelled:
        atoms.info.update({'energy': -30.0 - 0.1 * seed, 'virial': np.eye(3) * seed, 'step': step})
        atoms.info['uncertainty'] = 0.01 * seed
        atoms.arrays['forces'] = np.full((len(atoms), 3), 0.01 * seed)
    return atoms


def test_exit_code_table():
    assert check_exit_code_table(EXIT_CODES) is None


def test_plan_assess_grow_and_curve():
    training = DatasetData.from_ase([_frame(0, 0)])
    trajectory = DatasetData.from_ase([_frame(seed, 10 * seed) for seed in range(1, 6)])
    flagged = DatasetData.from_ase([_frame(9, 50)])
    summary = orm.Dict({'outcome': 'extrapolation', 'steps_done': 40})
    spec = {
        'audit_per_replica': 2,
        'max_per_iteration': 3,
        'min_distance': 0.001,
        'soap': SOAP,
        'iteration': 1,
    }
    plan = plan_iteration(
        training, orm.Dict(spec), summary_T1400=summary, trajectory_T1400=trajectory, flagged_T1400=flagged
    )
    decision = plan['decision'].get_dict()
    assert decision['replicas']['T1400'] == {
        'outcome': 'extrapolation', 'steps_done': 40, 'n_frames': 5, 'audited_frames': [2, 3], 'n_flagged': 1
    }  # fmt: skip
    planned = plan['to_label']
    roles = [frame.info['al_role'] for frame in planned.to_ase()]
    assert roles == ['audit', 'audit', 'candidate'] and plan['decision'].creator is not None

    # the oracle's labels: the ML predictions were off by 0.1 eV/Å
    labelled = []
    for index, frame in enumerate(planned.to_ase()):
        frame.info = {'energy': frame.info['ml_energy'], 'label_key': config_key(index)}
        frame.arrays['forces'] = frame.arrays.pop('ml_forces') + 0.1
        labelled.append(frame)
    labelled = DatasetData.from_ase(labelled)
    criteria = {'audit_force_rmse': 0.05, 'audit_energy_rmse': None, 'max_iterations': 3, 'max_oracle_calls': 50,
                'target_steps': 100}  # fmt: skip
    assessed = assess_iteration(
        plan['decision'], orm.Dict(criteria), orm.Dict({'iteration': 1, 'oracle_calls': 9}),
        planned=planned, labelled=labelled,
    )  # fmt: skip
    verdict = assessed['verdict'].get_dict()
    assert abs(assessed['audit']['force_rmse'] - 0.1) < 1e-9
    assert (
        not verdict['converged'] and not verdict['stop'] and 'audit force RMSE 0.1 eV/Å' in verdict['reason']
    )

    test = DatasetData.from_ase([_frame(7, 0)])
    grown = grow_training_set(training, test, planned=planned, labelled=labelled)
    assert len(grown['train']) == 2 and len(grown['test']) == 3
    assert all('ml_forces' not in frame.arrays for frame in grown['train'].to_ase())
    # the iteration's additions alone, by role
    assert [f.info['al_role'] for f in grown['candidates'].to_ase()] == ['candidate']
    assert [f.info['al_role'] for f in grown['audit'].to_ase()] == ['audit', 'audit']
    # the audit failed (0.1 > 0.05 eV/Å): with the verdict, the audited frames are learnt, not only measured
    learnt = grow_training_set(training, test, assessed['verdict'], planned=planned, labelled=labelled)
    assert len(learnt['train']) == 4 and len(learnt['test']) == 1 and 'audit' not in learnt
    assert [f.info['al_role'] for f in learnt['candidates'].to_ase()] == ['audit', 'audit', 'candidate']
    passed = orm.Dict({**assessed['verdict'].get_dict(), 'audit_ok': True})
    kept = grow_training_set(training, test, passed, planned=planned, labelled=labelled)
    assert len(kept['train']) == 2 and len(kept['test']) == 3

    curve = learning_curve(
        decision_01=plan['decision'],
        verdict_01=assessed['verdict'],
        audit_01=assessed['audit'],
        train_01=training,
    ).get_dict()
    row = curve['iterations'][0]
    assert (
        row['n_train'] == 1
        and row['oracle_calls'] == 9
        and row['n_triggers'] == 1
        and row['n_candidates'] == 1
    )


def test_plan_refuses_unknown_spec_key_with_exit_code():
    training = DatasetData.from_ase([_frame(0, 0)])
    spec = {'audit_per_replica': 2, 'max_per_iteration': 3, 'min_distance': 0.01, 'typo': 1}
    _, node = plan_iteration.run_get_node(training, orm.Dict(spec))
    assert node.exit_status == 201 and 'typo' in node.exit_message


def test_grow_without_candidates_has_no_candidates_output():
    training = DatasetData.from_ase([_frame(0, 0)])
    planned = _frame(3, 30)
    planned.info.update({'al_role': 'audit', 'al_replica': 'T1400', 'al_iteration': 2})
    labelled = _frame(3, 30)
    labelled.info['label_key'] = config_key(0)
    grown = grow_training_set(
        training,
        DatasetData.from_ase([_frame(7, 0)]),
        planned=DatasetData.from_ase([planned]),
        labelled=DatasetData.from_ase([labelled]),
    )
    assert set(grown) == {'train', 'test', 'audit'} and len(grown['train']) == 1 and len(grown['test']) == 2


def test_stopped_verdict_names_the_criterion_and_keeps_the_last_assessment():
    state = {'criterion': 'refit_exceeds_memory', 'reason': 'too big', 'iteration': 2, 'oracle_calls': 30}
    alone = stopped_verdict(orm.Dict(state)).get_dict()
    assert alone == {
        'converged': False,
        'stop': True,
        'criterion': 'refit_exceeds_memory',
        'stable': False,
        'audit_ok': False,
        'iteration': 2,
        'oracle_calls': 30,
        'reason': 'too big',
    }
    last = orm.Dict({'stable': True, 'audit_ok': False, 'stop': False, 'criterion': None})
    after = stopped_verdict(orm.Dict(state), verdict=last).get_dict()
    assert after['stable'] and not after['audit_ok'] and after['criterion'] == 'refit_exceeds_memory'


def test_random_baseline_set_draws_the_budget_and_never_a_held_out_frame():
    pool = DatasetData.from_ase([_frame(seed, 10 * seed) for seed in range(12)])
    held_out = [frame for index, frame in enumerate(pool.to_ase()) if index in (1, 4, 7)]
    for index, frame in zip((1, 4, 7), held_out):
        frame.info.update({'pool_index': index, 'pool_uuid': pool.uuid})
    result = random_baseline_set(pool, orm.Dict({'n': 6, 'seed': 2}), DatasetData.from_ase(held_out))
    record = result['record'].get_dict()
    assert record['n_budget'] == record['n_drawn'] == len(result['selected']) == 6
    assert record['n_held_out'] == 3 and not {1, 4, 7} & set(record['pool_indices'])
    assert [row['pool_index'] for row in result['selected'].lineage] == record['pool_indices']
    _, node = random_baseline_set.run_get_node(pool, orm.Dict({'m': 6}), DatasetData.from_ase(held_out))
    assert node.exit_status == 201 and 'unknown keys' in node.exit_message
