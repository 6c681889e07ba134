"""The stopping rule of the active-learning loop."""

from __future__ import annotations

from aiida_mlpot.analysis.convergence import convergence_verdict

CRITERIA = {'audit_force_rmse': 0.05, 'audit_energy_rmse': 2.0, 'max_iterations': 4, 'max_oracle_calls': 100}


def replica(outcome='completed', steps=500):
    return {'key': 'T1400', 'outcome': outcome, 'steps_done': steps, 'target_steps': 500}


def test_converged_needs_stable_replicas_and_small_audit():
    verdict = convergence_verdict([replica()], {'force_rmse': 0.01, 'energy_rmse': 0.5}, CRITERIA, 2, 40)
    assert verdict['converged'] and verdict['stop'] and verdict['criterion'] == 'converged'


def test_stable_but_wrong_is_not_converged():
    """The variance measures novelty, not error: a run without trigger but with a large audit error goes on."""
    verdict = convergence_verdict([replica()], {'force_rmse': 0.2, 'energy_rmse': 0.5}, CRITERIA, 2, 40)
    assert not verdict['converged'] and not verdict['stop'] and verdict['stable'] and not verdict['audit_ok']
    assert 'audit force RMSE 0.2 eV/Å > 0.05' in verdict['reason']


def test_trigger_or_short_run_is_not_converged():
    for item in (replica('extrapolation', 120), replica('completed', 400), replica('unstable', 30)):
        verdict = convergence_verdict([item], {'force_rmse': 0.01, 'energy_rmse': 0.1}, CRITERIA, 1, 10)
        assert not verdict['converged'] and not verdict['stable']


def test_missing_audit_and_energy_limit():
    assert not convergence_verdict([replica()], None, CRITERIA, 1, 10)['converged']
    verdict = convergence_verdict([replica()], {'force_rmse': 0.01, 'energy_rmse': 3.0}, CRITERIA, 1, 10)
    assert not verdict['audit_ok']
    loose = {**CRITERIA, 'audit_energy_rmse': None}
    assert convergence_verdict([replica()], {'force_rmse': 0.01, 'energy_rmse': 3.0}, loose, 1, 10)[
        'converged'
    ]


def test_hard_limits_say_which():
    bad = {'force_rmse': 0.3, 'energy_rmse': 9.0}
    assert convergence_verdict([replica()], bad, CRITERIA, 4, 10)['criterion'] == 'max_iterations'
    verdict = convergence_verdict([replica()], bad, CRITERIA, 2, 100)
    assert verdict['criterion'] == 'max_oracle_calls' and verdict['stop'] and not verdict['converged']
