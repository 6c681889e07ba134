"""Calcfunctions of the active-learning loop: every decision it makes is one of their outputs.

* :func:`plan_iteration`: from the exploration replicas (trajectory, flagged frames, summary), which frames
  the oracle labels this iteration: audit frames (visited without a trigger) and distinct candidates.
* :func:`assess_iteration`: the audit errors of the current potential on what its MD visited, and the
  verdict (go on, converged, or stopped by a hard limit, and why).
* :func:`grow_training_set`: the labelled candidates join the training set, the labelled audit frames the
  test set (their labels are never wasted).
* :func:`exploration_starts`: the start frame of every exploration state point (the last sampled frame).
* :func:`learning_curve`: the per-iteration table of the whole run.
* :func:`random_baseline_set`: the random baseline's configurations, drawn from the sampling pool at the
  label budget of the active-learning training set, the held-out ones excluded.
* :func:`stopped_verdict`: the verdict of a loop stopped outside an assessment (a refit refused by the memory
  plan), so that the ``stopping`` output names that criterion too.

The logic is pure (:mod:`aiida_mlpot.selection.active`, :mod:`aiida_mlpot.analysis.convergence`); these
wrappers only convert nodes.
"""

from __future__ import annotations

from aiida import orm
from aiida.engine import calcfunction

from aiida_mlpot.analysis.convergence import audit_errors, convergence_verdict
from aiida_mlpot.analysis.convergence import stopped_verdict as verdict_of_stop
from aiida_mlpot.calculations.functions.exit_codes import calcfunction_exit
from aiida_mlpot.common.keys import config_index
from aiida_mlpot.data.dataset import DatasetData
from aiida_mlpot.selection.active import draw_random, plan_labels

__all__ = (
    'EXIT_CODES',
    'assess_iteration',
    'exploration_starts',
    'grow_training_set',
    'learning_curve',
    'plan_iteration',
    'random_baseline_set',
    'stopped_verdict',
)

#: Exit codes of the calcfunctions (label: (status, message)).
EXIT_CODES = {
    'ERROR_INVALID_SPEC': (201, 'the spec is invalid: {message}'),
}

#: Keys of the ``spec`` of :func:`plan_iteration`.
PLAN_KEYS = ('audit_per_replica', 'max_per_iteration', 'min_distance', 'soap', 'iteration', 'budget')


def _replicas(kwargs: dict) -> dict[str, dict]:
    replicas: dict[str, dict] = {}
    for name, node in kwargs.items():
        kind, _, key = name.partition('_')
        replica = replicas.setdefault(key, {'outcome': 'missing', 'trajectory': [], 'flagged': []})
        if kind == 'summary':
            replica['outcome'] = node.get_dict().get('outcome', 'missing')
            replica['steps_done'] = node.get_dict().get('steps_done', 0)
        elif kind in ('trajectory', 'flagged'):
            replica[kind] = node.to_ase()
    return replicas


@calcfunction
def plan_iteration(training: DatasetData, spec: orm.Dict, **replicas) -> dict:
    """Choose the frames the oracle labels in one iteration: audit frames and distinct candidates.

    :param training: the training set of the potential that drove the exploration.
    :param spec: ``audit_per_replica`` (int), ``max_per_iteration`` (int), ``min_distance`` (SOAP distance
        below which a candidate is a duplicate), ``soap`` (settings), ``iteration`` (int), ``budget`` (oracle
        calls left; candidates beyond it are dropped, audits first).
    :param replicas: per exploration replica ``<key>``: ``summary_<key>`` (Dict), ``trajectory_<key>`` and
        optionally ``flagged_<key>`` (DatasetData).
    :return: ``decision`` (Dict: per replica the outcome and audited frames, per candidate its score, novelty,
        whether it was kept and why not) and, if any frame is to be labelled, ``to_label`` (DatasetData:
        ``info['al_role']`` audit | candidate, ``al_replica``, ``al_iteration``; ML predictions as ``ml_*``).
    """
    settings = spec.get_dict()
    unknown = sorted(set(settings) - set(PLAN_KEYS))
    missing = sorted({'audit_per_replica', 'max_per_iteration', 'min_distance'} - set(settings))
    if unknown or missing:
        message = f'unknown keys {unknown}' if unknown else f'missing keys {missing}'
        return calcfunction_exit(EXIT_CODES, 'ERROR_INVALID_SPEC', message=f'{message}; known: {PLAN_KEYS}')
    frames, record = plan_labels(
        _replicas(replicas),
        training.to_ase(),
        audit_per_replica=int(settings['audit_per_replica']),
        max_candidates=int(settings['max_per_iteration']),
        min_distance=float(settings['min_distance']),
        soap=settings.get('soap'),
    )
    budget = settings.get('budget')
    if budget is not None and len(frames) > budget:
        record['dropped_for_budget'] = len(frames) - int(budget)
        frames = frames[: max(int(budget), 0)]
    for frame in frames:
        frame.info['al_iteration'] = int(settings.get('iteration', 0))
    record['n_to_label'] = len(frames)
    outputs = {'decision': orm.Dict(record)}
    if frames:
        outputs['to_label'] = DatasetData.from_ase(frames, allow_partial=True)
    return outputs


@calcfunction
def assess_iteration(decision: orm.Dict, criteria: orm.Dict, state: orm.Dict, **labels) -> dict:
    """Measure the audit errors and decide whether the loop stops.

    :param decision: the ``decision`` of :func:`plan_iteration` (replica outcomes).
    :param criteria: ``audit_force_rmse`` (eV/Å), ``audit_energy_rmse`` (meV/atom or None),
        ``max_iterations``, ``max_oracle_calls``, ``target_steps``.
    :param state: ``iteration`` and ``oracle_calls`` (cumulative, this iteration's included).
    :param labels: ``planned`` (the ``to_label`` DatasetData) and ``labelled`` (the oracle's labels), absent
        when nothing was labelled.
    :return: ``verdict`` (Dict: converged, stop, criterion, reason, ...) and ``audit`` (Dict: the errors of
        the audited frames, when any was labelled).
    """
    settings = criteria.get_dict()
    values = state.get_dict()
    target = int(settings['target_steps'])
    replicas = [
        {
            'key': key,
            'outcome': entry['outcome'],
            'steps_done': entry.get('steps_done', target if entry['outcome'] == 'completed' else 0),
            'target_steps': target,
        }
        for key, entry in sorted(decision.get_dict()['replicas'].items())
    ]
    errors = None
    if 'planned' in labels and 'labelled' in labels:
        errors = audit_errors(labels['planned'].to_ase(), labels['labelled'].to_ase())
    limits = {key: settings[key] for key in settings if key != 'target_steps'}
    verdict = convergence_verdict(replicas, errors, limits, values['iteration'], values['oracle_calls'])
    outputs = {'verdict': orm.Dict(verdict)}
    if errors is not None:
        outputs['audit'] = orm.Dict(errors)
    return outputs


@calcfunction
def grow_training_set(
    train: DatasetData, test: DatasetData, verdict: orm.Dict | None = None, **labels
) -> dict:
    """Add an iteration's labels: candidates to the training set; audited frames to the test set when the audit
    passed, to the training set when it failed.

    A failed audit means the potential is wrong where its own MD goes although its variance did not trigger
    (the variance measures novelty, not error): those frames are what it cannot predict, so it learns them.
    Without this a loop whose trigger stays silent could never improve, only measure (the selection study and
    the NPT rescue of 2026-11-30 both stalled at their audit error for that reason). The next iteration's audit
    is made on frames of a new exploration, so it stays a measurement on unseen frames.

    :param train: the current training set; ``test``: the current test set.
    :param verdict: the iteration's verdict (``assess_iteration``); ``audit_ok`` false sends the audited frames
        to the training set. Without it, audited frames join the test set.
    :param labels: ``planned`` (the ``to_label`` DatasetData, roles in ``info['al_role']``) and ``labelled``
        (the oracle's labels, ``info['label_key']`` naming the planned frame).
    :return: ``train`` and ``test`` (new DatasetData; the added frames keep ``al_role``, ``al_replica`` and
        ``al_iteration``, the ML predictions are dropped), and the added frames alone: ``candidates`` (those
        that joined the training set, audited frames of a failed audit included) and ``audit`` (those that
        joined the test set), each only when not empty.
    """
    audit_to_train = verdict is not None and not verdict.get_dict().get('audit_ok', True)
    planned = labels['planned'].to_ase()
    new_train, new_test = train.to_ase(), test.to_ase()
    added = {'candidates': [], 'audit': []}
    for frame in labels['labelled'].to_ase():
        index = config_index(str(frame.info.get('label_key', '')))
        if index is None or index >= len(planned):
            continue
        source = planned[index]
        for key in ('al_role', 'al_replica', 'al_iteration', 'al_source', 'step'):
            if key in source.info:
                frame.info[key] = source.info[key]
        for key in ('ml_energy', 'ml_virial', 'uncertainty', 'flagged'):
            frame.info.pop(key, None)
        frame.arrays.pop('ml_forces', None)
        to_test = source.info.get('al_role') == 'audit' and not audit_to_train
        (new_test if to_test else new_train).append(frame)
        added['audit' if to_test else 'candidates'].append(frame)
    # labels of mixed origin (pool frames with per-atom energies, oracle frames without) are allowed
    outputs = {
        'train': DatasetData.from_ase(new_train, allow_partial=True),
        'test': DatasetData.from_ase(new_test, allow_partial=True),
    }
    for name, frames in added.items():
        if frames:
            outputs[name] = DatasetData.from_ase(frames, allow_partial=True)
    return outputs


@calcfunction
def exploration_starts(pool: DatasetData, keys: orm.List, structure: orm.StructureData) -> dict:
    """Return the start structure of every exploration state point: the last pool frame sampled there.

    :param pool: the sampling pool (``info['config_type']`` is the sampling state point of each frame).
    :param keys: the sampling state point keys (``T1400_V1``, ...) whose last frame starts an exploration.
    :param structure: the starting structure, used where the pool has no frame of that state point (a
        failed sampling state point).
    :return: one ``StructureData`` per key.
    """
    last = {}
    for atoms in pool.to_ase():
        last[str(atoms.info.get('config_type', ''))] = atoms
    result = {}
    for key in keys.get_list():
        atoms = last.get(key)
        if atoms is None:
            result[key] = orm.StructureData(ase=structure.get_ase())
            continue
        atoms = atoms.copy()
        atoms.calc = None
        result[key] = orm.StructureData(ase=atoms)
    return result


def _value(node, *path, default=None):
    value = node.get_dict() if node is not None else {}
    for key in path:
        if not isinstance(value, dict) or key not in value:
            return default
        value = value[key]
    return value


@calcfunction
def learning_curve(**records) -> orm.Dict:
    """Return the learning curve: one row per iteration of the loop.

    :param records: per iteration ``k`` (two digits): ``decision_k`` and ``verdict_k`` (Dict), ``metrics_k``
        (Dict: test metrics of the potential that explored), ``train_k`` (its training set) and, when frames
        were audited, ``audit_k`` (Dict).
    :return: ``iterations`` (list of rows: iteration, n_train, oracle_calls, test force/energy RMSE, audit
        force/energy RMSE, per replica outcome and steps, candidates kept, verdict) and the column units.
    """
    indices = sorted({name.rpartition('_')[2] for name in records})
    rows = []
    for index in indices:
        decision = records.get(f'decision_{index}')
        verdict = records.get(f'verdict_{index}')
        metrics = records.get(f'metrics_{index}')
        audit = records.get(f'audit_{index}')
        train = records.get(f'train_{index}')
        replicas = _value(decision, 'replicas', default={})
        rows.append(
            {
                'iteration': int(index),
                'n_train': len(train) if train is not None else None,
                'oracle_calls': _value(verdict, 'oracle_calls'),
                'test_force_rmse': _value(metrics, 'overall', 'forces', 'rmse'),
                'test_energy_rmse': _value(metrics, 'overall', 'energy_per_atom', 'rmse'),
                'audit_force_rmse': _value(audit, 'force_rmse'),
                'audit_energy_rmse': _value(audit, 'energy_rmse'),
                'n_audited': _value(audit, 'n_configs', default=0),
                'replicas': {
                    key: {'outcome': entry.get('outcome'), 'steps': entry.get('steps_done')}
                    for key, entry in replicas.items()
                },  # fmt: skip
                'n_triggers': sum(
                    1 for entry in replicas.values() if entry.get('outcome') == 'extrapolation'
                ),
                'n_unstable': sum(1 for entry in replicas.values() if entry.get('outcome') == 'unstable'),
                'n_candidates': _value(decision, 'n_candidates', default=0),
                'verdict': _value(verdict, 'reason'),
            }
        )
    units = {'force_rmse': 'eV/Å', 'energy_rmse': 'meV/atom', 'steps': 'MD steps'}
    return orm.Dict({'iterations': rows, 'units': units})


@calcfunction
def stopped_verdict(state: orm.Dict, **previous) -> orm.Dict:
    """Return the verdict of a loop stopped outside an assessment.

    :param state: ``criterion`` (e.g. ``refit_exceeds_memory``), ``reason``, ``iteration`` and ``oracle_calls``.
    :param previous: ``verdict``: the last assessment's verdict, absent before the first one.
    :return: the verdict (:func:`aiida_mlpot.analysis.convergence.stopped_verdict`).
    """
    values = state.get_dict()
    verdict = previous['verdict'].get_dict() if 'verdict' in previous else None
    return orm.Dict(
        verdict_of_stop(
            verdict, values['criterion'], values['reason'], values['iteration'], values['oracle_calls']
        )
    )


@calcfunction
def random_baseline_set(pool: DatasetData, spec: orm.Dict, held_out: DatasetData) -> dict:
    """Draw the random baseline's configurations from the sampling pool.

    :param pool: the sampling pool.
    :param spec: ``n`` (the label budget: the size of the active-learning training set) and ``seed``.
    :param held_out: the test set; its configurations that came from ``pool`` (lineage ``pool_uuid`` and
        ``pool_index``) are not drawn.
    :return: ``selected`` (DatasetData: the drawn frames, with ``pool_index`` and ``pool_uuid``) and ``record``
        (Dict: ``n_budget``, ``n_drawn`` (fewer only when the pool is too small), ``seed``, ``n_pool``,
        ``n_held_out`` and ``pool_indices``).
    """
    settings = spec.get_dict()
    unknown = sorted(set(settings) - {'n', 'seed'})
    if unknown or 'n' not in settings:
        message = f'unknown keys {unknown}' if unknown else 'missing key `n`'
        return calcfunction_exit(EXIT_CODES, 'ERROR_INVALID_SPEC', message=f'{message}; known: n, seed')
    frames = pool.to_ase()
    excluded = sorted(
        {
            int(row['pool_index'])
            for row in held_out.lineage
            if row.get('pool_uuid') == pool.uuid and row.get('pool_index') is not None
        }
    )
    seed = int(settings.get('seed', 1))
    indices = draw_random(len(frames), int(settings['n']), seed, excluded)
    selected = []
    for index in indices:
        atoms = frames[index]
        atoms.info['pool_index'] = index
        atoms.info['pool_uuid'] = pool.uuid
        selected.append(atoms)
    record = {
        'n_budget': int(settings['n']),
        'n_drawn': len(selected),
        'seed': seed,
        'n_pool': len(frames),
        'n_held_out': len(excluded),
        'pool_indices': indices,
    }
    return {'selected': DatasetData.from_ase(selected, allow_partial=True), 'record': orm.Dict(record)}
