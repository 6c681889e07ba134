"""Bad inputs of the selection calcfunctions a user calls directly: a 2xx exit code naming the bad value.

``select_configurations`` and ``split_dataset`` return an exit code instead of raising (calcfunctions cannot
refuse at launch); the node must be Finished with that code, not Excepted, and have no outputs.
"""

from __future__ import annotations

import re

import pytest
from aiida import orm

from tests.bad_input.conftest import labelled, nacl

SELECT = {'seed': 1, 'steps': [{'method': 'random', 'n': 2}]}


def _pool(n: int = 4, **kwargs):
    from aiida_mlpot.data.dataset import DatasetData

    return DatasetData.from_ase([labelled(nacl(), k, **kwargs) for k in range(n)])


SELECT_CASES = [
    ('empty pool', lambda: (_pool(0), SELECT), 202, 'empty'),
    ('n larger than the pool', lambda: (_pool(3), {'steps': [{'method': 'random', 'n': 5}]}), 203, r'\b5\b'),
    ('unknown method', lambda: (_pool(), {'steps': [{'method': 'best', 'n': 2}]}), 201, "'best'"),
    (
        'unknown step option',
        lambda: (_pool(), {'steps': [{'method': 'random', 'n': 2, 'sead': 1}]}),
        201,
        'sead',
    ),
    ('unknown spec key', lambda: (_pool(), {**SELECT, 'step': []}), 201, "'step'"),
    ('zero n', lambda: (_pool(), {'steps': [{'method': 'random', 'n': 0}]}), 201, "'n'.*0"),
    (
        'method needing forces on a pool without forces',
        lambda: (_pool(forces=False), {'steps': [{'method': 'uniform_force', 'n': 2}]}),
        204,
        'forces',
    ),
    pytest.param(
        'unknown SOAP setting of FPS',
        lambda: (_pool(), {'steps': [{'method': 'fps', 'n': 2, 'soap': {'rcut': 5.0}}]}),
        201,
        'rcut',
    ),
    pytest.param(
        'negative SOAP cutoff of FPS',
        lambda: (_pool(), {'steps': [{'method': 'fps', 'n': 2, 'soap': {'r_cut': -5.0}}]}),
        201,
        'r_cut.*-5',
    ),
]


@pytest.mark.parametrize(
    ('case', 'make', 'status', 'match'),
    SELECT_CASES,
    ids=[c.values[0] if hasattr(c, 'values') else c[0] for c in SELECT_CASES],
)
def test_select_configurations(aiida_profile, case, make, status, match):
    from aiida_mlpot.calculations.functions.selection import select_configurations

    pool, spec = make()
    outputs, node = select_configurations.run_get_node(pool, orm.Dict(spec))
    assert not node.is_excepted, node.exception
    assert node.exit_status == status, node.exit_message
    assert re.search(match, node.exit_message), node.exit_message
    assert not outputs


SPLIT_CASES = [
    ('unknown key', {'method': 'random', 'test_fractoin': 0.2}, 'test_fractoin'),
    ('unknown method', {'method': 'stratified', 'test_fraction': 0.2}, "'stratified'"),
    ('test fraction of 1', {'method': 'random', 'test_fraction': 1.0}, 'test_fraction.*1.0'),
    ('negative test size', {'method': 'random', 'n_test': -2}, 'n_test.*-2'),
]


@pytest.mark.parametrize(('case', 'spec', 'match'), SPLIT_CASES, ids=[c[0] for c in SPLIT_CASES])
def test_split_dataset(aiida_profile, case, spec, match):
    from aiida_mlpot.calculations.functions.selection import split_dataset

    outputs, node = split_dataset.run_get_node(_pool(), orm.Dict(spec))
    assert not node.is_excepted, node.exception
    assert node.exit_status == 201, node.exit_message
    assert re.search(match, node.exit_message), node.exit_message
    assert not outputs
