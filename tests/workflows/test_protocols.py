"""The one protocol mechanism (`aiida_mlpot.workflows.protocols.utils`) on a small work chain of its own."""

from __future__ import annotations

import pathlib

import pytest
import yaml
from aiida import orm
from aiida.engine import WorkChain

from aiida_mlpot.workflows.protocols.utils import (
    ProtocolMixin,
    load_protocol_file,
    populate_builder,
    recursive_merge,
)

PROTOCOLS = {
    'default_inputs': {
        'settings': {'a': 1, 'nested': {'x': 1, 'y': 2}},
        'steps': 10,
        'child': {'metadata': {'options': {'max_wallclock_seconds': 60}}},
    },
    'default_protocol': 'moderate',
    'protocols': {
        'moderate': {'description': 'the default', 'steps': 20},
        'precise': {'description': 'more steps', 'inherit': 'moderate', 'settings': {'nested': {'y': 3}}},
        'loop_a': {'description': 'inherits in a circle', 'inherit': 'loop_b'},
        'loop_b': {'description': 'inherits in a circle', 'inherit': 'loop_a'},
    },
}


def make_chain(path: pathlib.Path):
    class Chain(ProtocolMixin, WorkChain):
        _protocol_file = path

        @classmethod
        def define(cls, spec):
            super().define(spec)
            spec.input('settings', valid_type=orm.Dict)
            spec.input('steps', valid_type=orm.Int, serializer=orm.to_aiida_type)
            spec.input('labels', valid_type=orm.List, required=False)
            spec.input_namespace('child')
            spec.input_namespace('child.metadata')
            spec.input_namespace('child.metadata.options')
            spec.input('child.metadata.options.max_wallclock_seconds', valid_type=int, non_db=True)
            spec.input('child.value', valid_type=orm.Float, required=False)
            spec.outline(cls.noop)

        def noop(self):
            return None

    return Chain


@pytest.fixture
def chain(tmp_path):
    path = tmp_path / 'protocols.yaml'
    path.write_text(yaml.safe_dump(PROTOCOLS))
    return make_chain(path)


def test_recursive_merge_keeps_inputs_untouched():
    left = {'a': {'b': 1, 'c': [1, 2]}}
    merged = recursive_merge(left, {'a': {'c': [3]}, 'd': 4})
    assert merged == {'a': {'b': 1, 'c': [3]}, 'd': 4}
    assert left == {'a': {'b': 1, 'c': [1, 2]}}


def test_default_and_available(chain):
    assert chain.get_default_protocol() == 'moderate'
    assert chain.get_available_protocols()['precise'] == {'description': 'more steps'}


def test_inherit_and_overrides(chain):
    inputs = chain.get_protocol_inputs('precise', overrides={'settings': {'a': 5}})
    assert inputs['steps'] == 20  # inherited from moderate
    assert inputs['settings'] == {'a': 5, 'nested': {'x': 1, 'y': 3}}
    assert 'description' not in inputs and 'inherit' not in inputs
    assert chain.get_protocol_inputs()['settings']['nested']['y'] == 2


def test_unknown_override_key_is_named(chain):
    with pytest.raises(ValueError, match='unknown override key `stepz`'):
        chain.get_protocol_inputs(overrides={'stepz': 3})
    with pytest.raises(ValueError, match='unknown override key `child.metadata.optionz`'):
        chain.get_protocol_inputs(overrides={'child': {'metadata': {'optionz': {}}}})


def test_unknown_protocol_and_circular_inheritance(chain):
    with pytest.raises(ValueError, match='unknown protocol `nope`'):
        chain.get_protocol_inputs('nope')
    with pytest.raises(ValueError, match='in a circle'):
        chain.get_protocol_inputs('loop_a')


def test_file_without_description_is_refused(tmp_path):
    content = {**PROTOCOLS, 'protocols': {'moderate': {'steps': 1}}}
    path = tmp_path / 'bad.yaml'
    path.write_text(yaml.safe_dump(content))
    with pytest.raises(ValueError, match='no `description`'):
        load_protocol_file(path)


def test_populate_builder_converts_values(chain):
    builder = chain.get_builder()
    inputs = chain.get_protocol_inputs(overrides={'child': {'value': 2.5}})
    populate_builder(builder, {**inputs, 'labels': ['a', 'b']})
    assert isinstance(builder.settings, orm.Dict) and builder.settings['a'] == 1
    assert isinstance(builder.steps, orm.Int) and builder.steps.value == 20
    assert builder.labels.get_list() == ['a', 'b']
    assert builder.child.metadata.options.max_wallclock_seconds == 60
    assert builder.child.value.value == 2.5
