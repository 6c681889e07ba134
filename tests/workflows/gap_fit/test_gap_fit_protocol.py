"""GapFitWorkChain protocols (ProtocolMixin) and launch-time validation of the evaluation inputs (no run)."""

from __future__ import annotations

import pytest
from aiida import orm
from ase.build import bulk


@pytest.fixture
def dataset(tiny_dataset):
    return tiny_dataset


def test_protocols_have_valid_parameters():
    from aiida_mlpot.inputs.gap_fit import validate_parameters
    from aiida_mlpot.workflows.gap_fit import GapFitWorkChain

    protocols = GapFitWorkChain.get_available_protocols()
    assert sorted(protocols) == ['balanced', 'fast', 'stringent']
    assert GapFitWorkChain.get_default_protocol() == 'balanced'
    soap_n_max = {}
    for name in protocols:
        parameters = GapFitWorkChain.get_protocol_inputs(name)['gap_fit']['parameters']
        assert validate_parameters(parameters) is None, name
        soap_n_max[name] = parameters['descriptors'][1]['n_max']
    assert soap_n_max == {'fast': 4, 'balanced': 6, 'stringent': 8}


def test_builder_from_protocol(code_gap_fit, code_python, dataset):
    from aiida_mlpot.workflows.gap_fit import GapFitWorkChain

    overrides = {
        'gap_fit': {
            'parameters': {'seed': 2, 'baseline': {'type': 'coulomb', 'charges': {'Na': 1, 'Cl': -1}}}
        }
    }
    builder = GapFitWorkChain.get_builder_from_protocol(
        code_gap_fit,
        dataset,
        protocol='fast',
        overrides=overrides,
        options={'max_wallclock_seconds': 600},
        test_dataset=dataset,
        python_code=code_python,
    )
    parameters = builder.gap_fit.parameters.get_dict()
    assert parameters['seed'] == 2 and parameters['baseline']['charges'] == {'Na': 1, 'Cl': -1}
    assert parameters['descriptors'][1]['n_sparse'] == 100 and parameters['e0_method'] == 'average'
    assert builder.gap_fit.metadata.options.max_wallclock_seconds == 600
    assert builder.evaluate.metadata.options.max_wallclock_seconds == 600
    assert builder.evaluate.code.pk == code_python.pk and builder.test_dataset.pk == dataset.pk

    plain = GapFitWorkChain.get_builder_from_protocol(code_gap_fit, dataset)
    assert plain.gap_fit.parameters['descriptors'][1]['n_max'] == 6  # balanced, the default
    assert 'test_dataset' not in plain and 'code' not in plain.evaluate
    assert 'resources' not in plain.evaluate.metadata.options  # no evaluation inputs without a test set


@pytest.mark.parametrize(
    ('overrides', 'named'),
    [
        ({'gap_fitt': {'parameters': {}}}, '`gap_fitt`'),
        ({'gap_fit': {'paramters': {}}}, '`gap_fit.paramters`'),
        ({'evaluate': {'metadata': {'optoins': {}}}}, '`evaluate.metadata.optoins`'),
    ],
)
def test_unknown_override_key_is_named(code_gap_fit, code_python, dataset, overrides, named):
    from aiida_mlpot.workflows.gap_fit import GapFitWorkChain

    with pytest.raises(ValueError, match=named.replace('.', r'\.')):
        GapFitWorkChain.get_builder_from_protocol(
            code_gap_fit, dataset, overrides=overrides, test_dataset=dataset, python_code=code_python
        )


def test_unknown_parameter_key_is_refused_at_launch(code_gap_fit, dataset):
    from aiida.engine import run_get_node

    from aiida_mlpot.workflows.gap_fit import GapFitWorkChain

    builder = GapFitWorkChain.get_builder_from_protocol(
        code_gap_fit, dataset, protocol='fast', overrides={'gap_fit': {'parameters': {'sed': 2}}}
    )
    with pytest.raises(ValueError, match='`sed`: unknown key'):
        run_get_node(builder)


def test_test_dataset_and_python_code_go_together(code_gap_fit, code_python, dataset):
    from aiida.engine import run_get_node

    from aiida_mlpot.workflows.gap_fit import GapFitWorkChain

    with pytest.raises(ValueError, match='needs the `python_code`'):
        GapFitWorkChain.get_builder_from_protocol(code_gap_fit, dataset, test_dataset=dataset)
    with pytest.raises(ValueError, match='give one, or no code'):
        GapFitWorkChain.get_builder_from_protocol(code_gap_fit, dataset, python_code=code_python)

    # the same rules at launch, for builders made by hand
    builder = GapFitWorkChain.get_builder_from_protocol(code_gap_fit, dataset, protocol='fast')
    builder.test_dataset = dataset
    with pytest.raises(ValueError, match='needs `evaluate.code`'):
        run_get_node(builder)
    builder = GapFitWorkChain.get_builder_from_protocol(code_gap_fit, dataset, protocol='fast')
    builder.evaluate.code = code_python
    with pytest.raises(ValueError, match='`evaluate.code` is given without a `test_dataset`'):
        run_get_node(builder)


def test_test_dataset_species_must_be_in_the_training_set(code_gap_fit, code_python, dataset):
    from aiida.engine import run_get_node

    from aiida_mlpot.data.dataset import DatasetData
    from aiida_mlpot.workflows.gap_fit import GapFitWorkChain

    potassium = DatasetData.from_ase([bulk('KCl', 'rocksalt', a=6.3)]).store()
    builder = GapFitWorkChain.get_builder_from_protocol(
        code_gap_fit, dataset, protocol='fast', test_dataset=potassium, python_code=code_python
    )
    with pytest.raises(ValueError, match='`test_dataset` holds species K that the potential does not know'):
        run_get_node(builder)
    builder.test_dataset = DatasetData.from_ase([]).store()
    with pytest.raises(ValueError, match='`test_dataset` holds no configuration'):
        run_get_node(builder)


def test_validator_when_exposed_without_test_dataset(code_gap_fit, code_python, dataset):
    """A parent that exposes the inputs without `test_dataset` (and gives it at run time) may set `evaluate.code`."""
    from aiida.engine import WorkChain

    from aiida_mlpot.workflows.gap_fit import GapFitWorkChain

    class Parent(WorkChain):
        @classmethod
        def define(cls, spec):
            super().define(spec)
            spec.expose_inputs(
                GapFitWorkChain, namespace='fitting', exclude=('gap_fit.dataset', 'test_dataset')
            )

    parameters = orm.Dict(GapFitWorkChain.get_protocol_inputs('fast')['gap_fit']['parameters'])
    fitting = {'gap_fit': {'code': code_gap_fit, 'parameters': parameters}, 'evaluate': {'code': code_python}}
    assert Parent.spec().inputs.validate({'fitting': fitting}) is None
    # GapFitWorkChain itself refuses the evaluation code without a test set
    fitting['gap_fit']['dataset'] = dataset
    assert 'without a `test_dataset`' in GapFitWorkChain.spec().inputs.validate(fitting).message
