"""MlMdWorkChain protocols: the YAML schema, the builder (state point from the caller), overrides checked."""

from __future__ import annotations

import pytest

from aiida_mlpot.engines.parameters import normalise_parameters
from aiida_mlpot.workflows.ml_md import MlMdWorkChain
from tests.workflows.ml_md.conftest import md_frames


@pytest.fixture
def builder_inputs(aiida_profile, code_python, recorded_potential):
    from aiida import orm

    from aiida_mlpot.data.dataset import DatasetData

    structure = md_frames([0])[0]
    structure.calc = None
    return {
        'code': code_python,
        'structure': orm.StructureData(ase=structure),
        'potential': recorded_potential,
        'training': DatasetData.from_ase(md_frames([0, 1, 2])).store(),
    }


def test_protocols_are_described():
    protocols = MlMdWorkChain.get_available_protocols()
    assert set(protocols) == {'fast', 'balanced', 'stringent'}
    assert all(protocol['description'] for protocol in protocols.values())
    assert MlMdWorkChain.get_default_protocol() == 'balanced'


@pytest.mark.parametrize(
    ('protocol', 'n_steps', 'timestep_fs'), [('fast', 200, 2.0), ('stringent', 20000, 1.0)]
)
def test_builder_from_protocol_launches(builder_inputs, protocol, n_steps, timestep_fs):
    """Each protocol gives parameters the calculation accepts; the temperature is the caller's."""
    from aiida.engine.utils import instantiate_process
    from aiida.manage import get_manager

    builder = MlMdWorkChain.get_builder_from_protocol(
        builder_inputs['code'],
        builder_inputs['structure'],
        protocol,
        options={'max_wallclock_seconds': 60},
        potential=builder_inputs['potential'],
        temperature_K=1100,
        training=builder_inputs['training'],
    )
    parameters = normalise_parameters(builder.md.parameters.get_dict())
    assert (parameters['md']['n_steps'], parameters['md']['timestep_fs']) == (n_steps, timestep_fs)
    assert parameters['md']['temperature_K'] == 1100.0 and parameters['md']['ensemble'] == 'nvt'
    assert parameters['extrapolation']['relative_threshold'] > 0
    assert builder.md.metadata.options.max_wallclock_seconds == 60
    assert builder.unstable_policy.value == 'halve_timestep' and builder.max_iterations.value == 5
    process = instantiate_process(get_manager().get_runner(), builder)  # the input validators accept it
    assert process.inputs.md.training.uuid == builder_inputs['training'].uuid


def test_builder_pressure_overrides_and_restart(builder_inputs, fake_calculation):
    from aiida_mlpot.data.dataset import DatasetData

    trajectory = DatasetData.from_ase(md_frames([0, 5, 10])).store()
    builder = MlMdWorkChain.get_builder_from_protocol(
        builder_inputs['code'],
        trajectory,
        'fast',
        overrides={'md': {'parameters': {'md': {'n_steps': 30}}}, 'unstable_policy': 'give_up'},
        potential=builder_inputs['potential'],
        temperature_K=1400,
        pressure_bar=1.0,
    )
    md = builder.md.parameters.get_dict()['md']
    assert md['n_steps'] == 30 and md['ensemble'] == 'npt' and md['pressure_bar'] == 1.0
    assert builder.md.restart_from.uuid == trajectory.uuid and 'structure' not in builder.md
    assert builder.unstable_policy.value == 'give_up'
    with pytest.raises(ValueError, match='unknown override key `md.paramters`'):
        MlMdWorkChain.get_builder_from_protocol(
            builder_inputs['code'],
            builder_inputs['structure'],
            overrides={'md': {'paramters': {}}},
            potential=builder_inputs['potential'],
            temperature_K=1400,
        )
