"""Composition of selection steps and spec validation."""

import re

import numpy as np
import pytest

from aiida_mlpot.selection import (
    MissingPropertyError,
    SelectionError,
    run_selection,
    select_uniform_force,
    validate_selection_spec,
)


@pytest.mark.e2e
def test_two_steps_recorded(nacl_pool):
    spec = {
        'seed': 1,
        'steps': [
            {'method': 'uniform_force', 'n': 40},
            {'method': 'fps', 'n': 12, 'soap': {'r_cut': 4.5, 'n_max': 4, 'l_max': 3}},
        ],
    }
    result = run_selection(nacl_pool, spec)
    first, second = result.steps
    assert first['method'] == 'uniform_force'
    assert first['seed'] == 1
    assert second['seed'] == 2
    assert second['soap'] == {'r_cut': 4.5, 'n_max': 4, 'l_max': 3}
    # The first step is exactly the standalone selector; the second selects within it.
    np.testing.assert_array_equal(first['indices'], select_uniform_force(nacl_pool, 40, seed=1))
    assert set(second['indices']) <= set(first['indices'])
    assert len(second['indices']) == second['n_selected'] == 12
    np.testing.assert_array_equal(result.indices, np.sort(second['indices']))
    assert run_selection(nacl_pool, spec).steps == result.steps


def test_allow_fewer_per_spec_and_step(synthetic_pool):
    spec = {'seed': 0, 'steps': [{'method': 'random', 'n': 20}, {'method': 'temporal', 'n': 25}]}
    with pytest.raises(
        SelectionError, match='temporal: 25 configurations requested but the pool holds only 20'
    ):
        run_selection(synthetic_pool, spec)
    result = run_selection(synthetic_pool, {**spec, 'allow_fewer': True})
    assert len(result.indices) == 20
    spec['steps'][1]['allow_fewer'] = True
    assert len(run_selection(synthetic_pool, spec).indices) == 20


def test_errors(synthetic_pool):
    with pytest.raises(SelectionError, match='pool is empty'):
        run_selection([], {'steps': [{'method': 'random', 'n': 1}]})
    for atoms in synthetic_pool:
        del atoms.arrays['energies']
    with pytest.raises(MissingPropertyError, match="'energies'"):
        run_selection(synthetic_pool, {'seed': 0, 'steps': [{'method': 'uniform_atomic_energy', 'n': 3}]})


@pytest.mark.parametrize(
    ('spec', 'message'),
    [
        ([], 'must be a mapping'),
        ({'steps': []}, "non-empty list 'steps'"),
        ({'steps': [{'method': 'magic', 'n': 2}]}, "unknown method 'magic'"),
        ({'steps': [{'method': 'random', 'n': 0}]}, "'n' must be a positive integer"),
        ({'steps': [{'method': 'random', 'n': 2, 'soap': {}}]}, "unknown options \\['soap'\\]"),
        ({'seed': 1.5, 'steps': [{'method': 'random', 'n': 2}]}, 'seed must be an integer'),
        ({'steps': [{'method': 'random', 'n': 2}], 'extra': 1}, "unknown keys \\['extra'\\]"),
    ],
)
def test_validate_spec(spec, message):
    error = validate_selection_spec(spec)
    assert error is not None
    assert re.search(message, error)


def test_validate_valid_spec():
    spec = {'seed': 3, 'allow_fewer': True, 'steps': [{'method': 'fps', 'n': 4, 'soap': {'r_cut': 4.0}}]}
    assert validate_selection_spec(spec) is None
