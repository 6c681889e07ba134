"""Selections as lists of steps applied in order, each step recorded (pure numpy, no AiiDA import).

A selection spec is a mapping::

    {'seed': 1, 'allow_fewer': False,
     'steps': [{'method': 'uniform_force', 'n': 400},
               {'method': 'fps', 'n': 100, 'soap': {'r_cut': 5.0, 'n_max': 6, 'l_max': 4}}]}

Each step selects from the configurations kept by the previous one. Step ``k`` uses the seed
``step['seed']`` if given, else ``spec['seed'] + k``.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping, Sequence

import numpy as np
from ase import Atoms

from aiida_mlpot.descriptors.soap import validate_soap
from aiida_mlpot.selection.base import EmptyPoolError, SelectionError
from aiida_mlpot.selection.basic import select_random, select_temporal
from aiida_mlpot.selection.fps import select_fps
from aiida_mlpot.selection.uniform import (
    select_uniform_atomic_energy,
    select_uniform_energy,
    select_uniform_force,
)

__all__ = ('SELECTORS', 'SelectionResult', 'run_selection', 'validate_selection_spec')

#: Selection methods by name, with the extra step options each accepts.
SELECTORS: dict[str, tuple[Callable[..., np.ndarray], tuple[str, ...]]] = {
    'random': (select_random, ()),
    'temporal': (select_temporal, ('trajectory_key',)),
    'uniform_energy': (select_uniform_energy, ()),
    'uniform_force': (select_uniform_force, ()),
    'uniform_atomic_energy': (select_uniform_atomic_energy, ()),
    'fps': (select_fps, ('soap', 'species')),
}
_STEP_KEYS = ('method', 'n', 'seed', 'allow_fewer')
_SPEC_KEYS = ('seed', 'steps', 'allow_fewer')


@dataclasses.dataclass
class SelectionResult:
    """Outcome of a selection: final pool indices (ascending) and one record per step."""

    indices: np.ndarray
    steps: list[dict]


def validate_selection_spec(spec: Mapping) -> str | None:
    """Return an error message if ``spec`` is not a valid selection spec, else None (never raises)."""
    if not isinstance(spec, Mapping):
        return f'the selection spec must be a mapping, got {type(spec).__name__}'
    unknown = set(spec) - set(_SPEC_KEYS)
    if unknown:
        return f'unknown keys {sorted(unknown)} in the selection spec; allowed: {list(_SPEC_KEYS)}'
    seed = spec.get('seed')
    if seed is not None and (isinstance(seed, bool) or not isinstance(seed, int)):
        return f'the seed must be an integer, got {seed!r}'
    steps = spec.get('steps')
    if not isinstance(steps, Sequence) or isinstance(steps, str) or not steps:
        return "the selection spec needs a non-empty list 'steps'"
    for k, step in enumerate(steps):
        if not isinstance(step, Mapping):
            return f'step {k} must be a mapping, got {type(step).__name__}'
        method = step.get('method')
        if method not in SELECTORS:
            return f'step {k}: unknown method {method!r}; choose from {sorted(SELECTORS)}'
        allowed = set(_STEP_KEYS) | set(SELECTORS[method][1])
        unknown = set(step) - allowed
        if unknown:
            return f'step {k} ({method}): unknown options {sorted(unknown)}; allowed: {sorted(allowed)}'
        n = step.get('n')
        if isinstance(n, bool) or not isinstance(n, int) or n < 1:
            return f"step {k} ({method}): 'n' must be a positive integer, got {n!r}"
        message = validate_soap(step.get('soap')) if 'soap' in allowed else None
        if message:
            return f'step {k} ({method}): {message}'
    return None


def run_selection(frames: Sequence[Atoms], spec: Mapping) -> SelectionResult:
    """Apply the steps of ``spec`` in order to ``frames`` and return the selected pool indices and a record.

    :raises SelectionError: invalid spec, empty pool, too few configurations (unless ``allow_fewer``),
        or a label needed by a method is missing (:class:`~aiida_mlpot.selection.base.MissingPropertyError`).
    """
    message = validate_selection_spec(spec)
    if message:
        raise SelectionError(message)
    frames = list(frames)
    if not frames:
        raise EmptyPoolError('the pool is empty, there is nothing to select from')
    base_seed = spec.get('seed')
    allow_fewer = bool(spec.get('allow_fewer', False))
    current = np.arange(len(frames))
    records = []
    for k, step in enumerate(spec['steps']):
        method = step['method']
        function, extra = SELECTORS[method]
        seed = step.get('seed', None if base_seed is None else base_seed + k)
        options = {key: step[key] for key in extra if key in step}
        subset = [frames[i] for i in current]
        picks = function(
            subset, step['n'], seed=seed, allow_fewer=bool(step.get('allow_fewer', allow_fewer)), **options
        )
        current = current[np.asarray(picks, dtype=np.int64)]
        records.append(
            {
                'method': method,
                'n': int(step['n']),
                'n_selected': len(current),
                'seed': seed,
                'indices': [int(i) for i in current],
                **{key: value for key, value in options.items()},
            }
        )
    return SelectionResult(np.sort(current), records)
