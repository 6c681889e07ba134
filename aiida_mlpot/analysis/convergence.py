"""The stopping rule of the active-learning loop (pure, no AiiDA import).

The loop is converged when, in the same iteration, every exploration replica ran its target number of steps
without an extrapolation trigger or an instability AND the audit (frames the ML MD visited without
triggering, relabelled by the oracle) has a force RMSE (and an energy RMSE) below the limits: stable MD whose
measured error on what it visits is small. Hard limits stop it otherwise; the verdict says which criterion
ended the loop.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from ase import Atoms

from aiida_mlpot.analysis.errors import compute_errors
from aiida_mlpot.common.keys import config_index

__all__ = ('CRITERIA_DEFAULTS', 'audit_errors', 'audit_pairs', 'convergence_verdict', 'stopped_verdict')

#: Default criteria: audit force RMSE (eV/Å) and energy RMSE (meV/atom); hard limits.
CRITERIA_DEFAULTS = {
    'audit_force_rmse': 0.05,
    'audit_energy_rmse': 5.0,
    'max_iterations': 10,
    'max_oracle_calls': 500,
}


def convergence_verdict(
    replicas: Sequence[Mapping],
    audit: Mapping | None,
    criteria: Mapping,
    iteration: int,
    oracle_calls: int,
) -> dict:
    """Return the loop's decision after an iteration.

    :param replicas: one mapping per exploration replica: ``key``, ``outcome`` (``completed``,
        ``extrapolation``, ``unstable``, ...), ``steps_done``, ``target_steps``.
    :param audit: ``force_rmse`` (eV/Å) and ``energy_rmse`` (meV/atom) of the audited frames, or None when no
        frame could be audited.
    :param criteria: :data:`CRITERIA_DEFAULTS` keys (``audit_energy_rmse`` may be None: not checked).
    :param iteration: the iteration just finished (1-based); ``oracle_calls``: the oracle calls so far.
    :return: ``converged`` (bool), ``stop`` (bool), ``criterion`` (``converged``, ``max_iterations``,
        ``max_oracle_calls`` or None while the loop goes on), ``stable`` (bool), ``audit_ok`` (bool), and a
        readable ``reason``.
    """
    criteria = {**CRITERIA_DEFAULTS, **criteria}
    unstable = [
        dict(r) for r in replicas if r['outcome'] != 'completed' or r['steps_done'] < r['target_steps']
    ]
    stable = bool(replicas) and not unstable
    problems = []
    if not replicas:
        problems.append('no exploration ran')
    for replica in unstable:
        problems.append(
            f'{replica["key"]}: {replica["outcome"]} after {replica["steps_done"]} of {replica["target_steps"]} steps'
        )
    audit_ok = audit is not None
    if audit is None:
        problems.append('no audited frame')
    else:
        if not audit['force_rmse'] <= criteria['audit_force_rmse']:
            audit_ok = False
            problems.append(
                f'audit force RMSE {audit["force_rmse"]:.4g} eV/Å > {criteria["audit_force_rmse"]} eV/Å'
            )
        limit = criteria.get('audit_energy_rmse')
        if limit is not None and not audit['energy_rmse'] <= limit:
            audit_ok = False
            problems.append(f'audit energy RMSE {audit["energy_rmse"]:.4g} meV/atom > {limit} meV/atom')
    converged = stable and audit_ok
    criterion = None
    if converged:
        criterion, reason = (
            'converged',
            'every replica ran its target steps and the audit errors are below the limits',
        )
    elif oracle_calls >= criteria['max_oracle_calls']:
        criterion = 'max_oracle_calls'
        reason = (
            f'{oracle_calls} oracle calls reached max_oracle_calls={criteria["max_oracle_calls"]}; '
            + '; '.join(problems)
        )
    elif iteration >= criteria['max_iterations']:
        criterion = 'max_iterations'
        reason = f'iteration {iteration} reached max_iterations={criteria["max_iterations"]}; ' + '; '.join(
            problems
        )
    else:
        reason = 'not converged: ' + '; '.join(problems)
    return {
        'converged': converged,
        'stop': criterion is not None,
        'criterion': criterion,
        'stable': stable,
        'audit_ok': audit_ok,
        'iteration': int(iteration),
        'oracle_calls': int(oracle_calls),
        'reason': reason,
    }


def audit_pairs(planned: Sequence[Atoms], labelled: Sequence[Atoms]) -> tuple[list[Atoms], list[Atoms]]:
    """Pair the audited frames' oracle labels with the ML predictions made during the exploration.

    :param planned: the frames sent to the oracle (:func:`aiida_mlpot.selection.active.plan_labels`): the ML
        predictions as ``ml_energy``, ``ml_forces``, ``ml_virial``; audited ones have ``al_role == 'audit'``.
    :param labelled: the oracle's labels; ``info['label_key']`` (``config_00003``) names the planned frame.
        Frames the oracle failed on are simply absent.
    :return: ``(references, predictions)`` in the same order, both with ``config_type`` = the replica that
        visited the frame (``al_replica``), so errors can be broken down per replica.
    """
    references, predictions = [], []
    for frame in labelled:
        index = config_index(str(frame.info.get('label_key', '')))
        if index is None or index >= len(planned) or planned[index].info.get('al_role') != 'audit':
            continue
        source = planned[index]
        config_type = str(source.info.get('al_replica', frame.info.get('config_type', '')))
        reference = frame.copy()
        reference.info['config_type'] = config_type
        prediction = frame.copy()
        prediction.calc = None
        prediction.info = {'config_type': config_type}
        prediction.arrays.pop('forces', None)
        if 'ml_energy' in source.info:
            prediction.info['energy'] = source.info['ml_energy']
        if 'ml_forces' in source.arrays:
            prediction.arrays['forces'] = source.arrays['ml_forces']
        if 'ml_virial' in source.info:
            prediction.info['virial'] = source.info['ml_virial']
        references.append(reference)
        predictions.append(prediction)
    return references, predictions


def audit_errors(planned: Sequence[Atoms], labelled: Sequence[Atoms]) -> dict | None:
    """Return the errors of the ML predictions on the audited frames against the oracle's labels.

    :param planned: the frames sent to the oracle, with the ML predictions (see :func:`audit_pairs`).
    :param labelled: the oracle's labels (see :func:`audit_pairs`).
    :return: :func:`aiida_mlpot.analysis.errors.compute_errors` of the audited frames plus ``force_rmse``
        (eV/Å, components) and ``energy_rmse`` (meV/atom) at the top level; None if no audited frame was
        labelled.
    """
    references, predictions = audit_pairs(planned, labelled)
    if not references:
        return None
    errors = compute_errors(references, predictions)
    overall = errors['overall']
    return {
        **errors,
        'force_rmse': overall['forces']['rmse'],
        'energy_rmse': overall['energy_per_atom']['rmse'],
    }


def stopped_verdict(
    previous: Mapping | None, criterion: str, reason: str, iteration: int, oracle_calls: int
) -> dict:
    """Return the verdict of a loop stopped outside the assessment (e.g. a refit refused by the memory plan).

    :param previous: the last assessment's verdict (its ``stable`` and ``audit_ok`` are kept), or None when the
        loop stopped before its first assessment.
    :param criterion: the criterion that stopped it; ``reason``: why, readable.
    :return: the keys of :func:`convergence_verdict`, with ``converged`` False and ``stop`` True.
    """
    previous = previous or {}
    return {
        'converged': False,
        'stop': True,
        'criterion': criterion,
        'stable': bool(previous.get('stable', False)),
        'audit_ok': bool(previous.get('audit_ok', False)),
        'iteration': int(iteration),
        'oracle_calls': int(oracle_calls),
        'reason': reason,
    }
