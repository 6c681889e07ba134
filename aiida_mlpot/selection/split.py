"""Train/test split of a dataset, at random or by ``config_type`` (pure numpy, no AiiDA import)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np

from aiida_mlpot.selection.base import EmptyPoolError, SelectionError

__all__ = ('split_indices', 'validate_split_spec')

_KEYS = {
    'random': {'method', 'test_fraction', 'n_test', 'seed'},
    'config_type': {'method', 'test_config_types'},
}


def validate_split_spec(spec: Mapping) -> str | None:
    """Return an error message if ``spec`` is not a valid split spec, else None (never raises).

    ``{'method': 'random', 'test_fraction': 0.1, 'seed': 1}`` (or ``'n_test': 20`` instead of the fraction)
    or ``{'method': 'config_type', 'test_config_types': ['T1400']}``.
    """
    if not isinstance(spec, Mapping):
        return f'the split spec must be a mapping, got {type(spec).__name__}'
    method = spec.get('method', 'random')
    if method not in _KEYS:
        return f'unknown split method {method!r}; choose from {sorted(_KEYS)}'
    unknown = set(spec) - _KEYS[method]
    if unknown:
        return f'unknown keys {sorted(unknown)} for the {method} split; allowed: {sorted(_KEYS[method])}'
    if method == 'random':
        if ('test_fraction' in spec) == ('n_test' in spec):
            return "the random split needs exactly one of 'test_fraction' and 'n_test'"
        fraction = spec.get('test_fraction')
        if fraction is not None and not (isinstance(fraction, int | float) and 0.0 < fraction < 1.0):
            return f"'test_fraction' must be a number strictly between 0 and 1, got {fraction!r}"
        n_test = spec.get('n_test')
        if n_test is not None and (isinstance(n_test, bool) or not isinstance(n_test, int) or n_test < 1):
            return f"'n_test' must be a positive integer, got {n_test!r}"
        seed = spec.get('seed')
        if seed is not None and (isinstance(seed, bool) or not isinstance(seed, int)):
            return f'the seed must be an integer, got {seed!r}'
    else:
        types = spec.get('test_config_types')
        if not isinstance(types, Sequence) or isinstance(types, str) or not types:
            return "the config_type split needs a non-empty list 'test_config_types'"
    return None


def split_indices(spec: Mapping, n_configs: int, config_types: Sequence[str] | None = None):
    """Return (train indices, test indices), both sorted and both non-empty.

    :param spec: see :func:`validate_split_spec`.
    :param n_configs: number of configurations of the dataset.
    :param config_types: ``config_type`` of each configuration (needed by the config_type split).
    :raises SelectionError: invalid spec, or a split that would leave the train or test set empty.
    """
    message = validate_split_spec(spec)
    if message:
        raise SelectionError(message)
    if n_configs == 0:
        raise EmptyPoolError('the dataset is empty, there is nothing to split')
    if spec.get('method', 'random') == 'random':
        n_test = spec.get('n_test') or int(round(spec['test_fraction'] * n_configs))
        n_test = max(n_test, 1)
        if n_test >= n_configs:
            raise SelectionError(
                f'a test set of {n_test} leaves no training configuration out of {n_configs}'
            )
        test = np.sort(np.random.default_rng(spec.get('seed')).choice(n_configs, n_test, replace=False))
    else:
        if config_types is None or len(config_types) != n_configs:
            raise SelectionError('the config_type split needs the config_type of every configuration')
        is_test = np.isin(np.asarray(config_types, dtype=str), [str(t) for t in spec['test_config_types']])
        test = np.flatnonzero(is_test)
        if len(test) == 0:
            raise SelectionError(f'no configuration has a config_type in {list(spec["test_config_types"])}')
        if len(test) == n_configs:
            raise SelectionError('every configuration would be in the test set')
    train = np.setdiff1d(np.arange(n_configs), test)
    return train, test
