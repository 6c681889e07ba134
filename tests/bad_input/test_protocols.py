"""Bad arguments of every ``get_builder_from_protocol``: refused when the builder is made, or at launch at the latest.

Unknown protocol names, oracles and override keys are a ``ValueError`` from the builder method itself; what lies
inside a dictionary input (an override of a key of ``md_parameters``, say) is the business of that port's
validator, so the builder is made and its launch is refused, naming the key. Either way no process node is
created. The builders of the active-learning loop are only validated (as a launch would), never launched: an
input that slipped through would start the whole loop.
"""

from __future__ import annotations

import math
import re

import pytest
from aiida import orm

from tests.bad_input.conftest import launch_message, refused

SHARED_POINTS = [{'temperature_K': 1400.0, 'volume_scale': 1.0}]


def sampling(m, **kwargs):
    from aiida_mlpot.workflows.sampling import SamplingWorkChain

    arguments = {'potential': m.potential, 'state_points': SHARED_POINTS, 'protocol': 'fast', **kwargs}
    return SamplingWorkChain.get_builder_from_protocol(m.lmp, m.structure(), **arguments)


def labelling(m, **kwargs):
    from aiida_mlpot.workflows.labelling import LabellingWorkChain

    arguments = {'oracle': 'classical', 'potential': m.potential, **kwargs}
    return LabellingWorkChain.get_builder_from_protocol(m.lmp, [m.structure()], **arguments)


def cp2k_labelling(m, **kwargs):
    from aiida_mlpot.workflows.labelling import LabellingWorkChain

    return LabellingWorkChain.get_builder_from_protocol(m.cp2k, [m.structure()], oracle='cp2k', **kwargs)


def fitting(m, code=None, **kwargs):
    from aiida_mlpot.workflows.gap_fit import GapFitWorkChain

    return GapFitWorkChain.get_builder_from_protocol(
        code or m.gap_fit, m.dataset(), **{'protocol': 'fast', **kwargs}
    )


def ml_md(m, code=None, **kwargs):
    from aiida_mlpot.workflows.ml_md import MlMdWorkChain

    arguments = {'potential': m.gap, 'temperature_K': 1400.0, 'protocol': 'fast', **kwargs}
    return MlMdWorkChain.get_builder_from_protocol(code or m.python, m.structure(), **arguments)


CASES = [
    # SamplingWorkChain
    ('sampling: unknown protocol', lambda m: sampling(m, protocol='quick'), 'unknown protocol `quick`'),
    (
        'sampling: unknown override key',
        lambda m: sampling(m, overrides={'temperature': 1400}),
        'override key `temperature`',
    ),
    (
        'sampling: unknown nested override key',
        lambda m: sampling(m, overrides={'md': {'metadata': {'option': {}}}}),
        'override key `md.metadata.option`',
    ),
    (
        'sampling: unknown key inside md_parameters',
        lambda m: sampling(m, overrides={'md_parameters': {'temperature': 300}}),
        '`temperature`',
    ),
    (
        'sampling: unknown option',
        lambda m: sampling(m, options={'walltime': 600}),
        'unknown key `walltime` in `options`',
    ),
    (
        'fit: unknown option',
        lambda m: fitting(m, options={'walltime': 600}),
        'unknown key `walltime` in `options`',
    ),
    (
        'ML MD: unknown option',
        lambda m: ml_md(m, options={'walltime': 600}),
        'unknown key `walltime` in `options`',
    ),
    (
        'sampling: state points that are not dictionaries',
        lambda m: sampling(m, state_points=[1400.0]),
        r'state_points.*1400',
    ),
    (
        'sampling: potential that is not a dictionary',
        lambda m: sampling(m, potential='born'),
        "potential.*'born'",
    ),
    (
        'sampling: negative temperature',
        lambda m: sampling(m, state_points=[{'temperature_K': -1.0, 'volume_scale': 1.0}]),
        'temperature_K.*-1',
    ),
    (
        'sampling: a gap_fit code as the LAMMPS code',
        lambda m: _builder(sampling(m), 'md.code', m.gap_fit),
        'mlpot.gap_fit',
    ),
    # LabellingWorkChain
    ('labelling: unknown oracle', lambda m: labelling(m, oracle='dft'), 'unknown oracle `dft`'),
    ('labelling: unknown protocol', lambda m: cp2k_labelling(m, protocol='fast'), 'unknown protocol `fast`'),
    (
        'labelling: protocol for the classical oracle',
        lambda m: labelling(m, protocol='pbe'),
        'cp2k oracle only',
    ),
    (
        'labelling: classical oracle without potential',
        lambda m: labelling(m, potential=None),
        'needs `potential`',
    ),
    (
        'labelling: potential for the CP2K oracle',
        lambda m: cp2k_labelling(m, potential=m.potential),
        'classical oracle only',
    ),
    (
        'labelling: unknown override key',
        lambda m: cp2k_labelling(m, overrides={'cp2k': {'max_concurent': 2}}),
        'override key `cp2k.max_concurent`',
    ),
    (
        'labelling: unknown key inside the CP2K settings',
        lambda m: cp2k_labelling(m, overrides={'cp2k': {'settings': {'scf': {'max_sfc': 2}}}}),
        '`scf.max_sfc`',
    ),
    (
        'labelling: override of the other oracle',
        lambda m: labelling(m, overrides={'cp2k': {'max_concurrent': 2}}),
        'override key `cp2k` does not apply',
    ),
    ('labelling: unknown option', lambda m: labelling(m, options={'walltime': 600}), '`walltime`'),
    ('labelling: nothing to label', lambda m: _labelling_nothing(m), 'give exactly one of `structures`'),
    ('labelling: a LAMMPS code for CP2K', lambda m: _cp2k_with(m, m.lmp), 'not for CP2K'),
    # GapFitWorkChain
    ('fit: unknown protocol', lambda m: fitting(m, protocol='balance'), 'unknown protocol `balance`'),
    (
        'fit: unknown override key',
        lambda m: fitting(m, overrides={'gap_fit': {'parameter': {}}}),
        'override key `gap_fit.parameter`',
    ),
    (
        'fit: unknown key inside the fit parameters',
        lambda m: fitting(m, overrides={'gap_fit': {'parameters': {'sparse_jiter': 1e-8}}}),
        '`sparse_jiter`',
    ),
    (
        'fit: zero n_sparse by override',
        lambda m: fitting(
            m,
            overrides={
                'gap_fit': {
                    'parameters': {
                        'descriptors': [{'type': 'distance_2b', 'cutoff': 5.0, 'n_sparse': 0, 'delta': 1.0}]
                    }
                }
            },
        ),
        r'descriptors\[0\]\.n_sparse.*0',
    ),
    (
        'fit: evaluation code without a test set',
        lambda m: fitting(m, python_code=m.python),
        'give one, or no code',
    ),
    (
        'fit: test set without evaluation code',
        lambda m: fitting(m, test_dataset=m.dataset()),
        'needs the `python_code`',
    ),
    (
        'fit: evaluate overrides without a test set',
        lambda m: fitting(m, overrides={'evaluate': {}}),
        'need a `test_dataset`',
    ),
    ('fit: a LAMMPS code as the gap_fit code', lambda m: fitting(m, code=m.lmp), 'not for gap_fit'),
    # MlMdWorkChain
    ('ML MD: unknown protocol', lambda m: ml_md(m, protocol='long'), 'unknown protocol `long`'),
    (
        'ML MD: unknown override key',
        lambda m: ml_md(m, overrides={'unstable': 'give_up'}),
        'override key `unstable`',
    ),
    (
        'ML MD: unknown key inside the parameters',
        lambda m: ml_md(m, overrides={'md': {'parameters': {'md': {'temprature_K': 300}}}}),
        '`md.temprature_K`',
    ),
    ('ML MD: negative temperature', lambda m: ml_md(m, temperature_K=-300.0), 'temperature_K.*-300'),
    ('ML MD: NaN temperature', lambda m: ml_md(m, temperature_K=math.nan), 'temperature_K.*nan'),
    ('ML MD: NaN pressure', lambda m: ml_md(m, pressure_bar=math.nan), 'pressure_bar.*nan'),
    ('ML MD: temperature as a string', lambda m: ml_md(m, temperature_K='300'), "temperature_K.*'300'"),
    ('ML MD: a Dict as the potential', lambda m: ml_md(m, potential=orm.Dict(m.potential)), 'potential'),
    ('ML MD: a gap_fit code as the driver code', lambda m: ml_md(m, code=m.gap_fit), 'not for python'),
]


def _builder(builder, path: str, value):
    target = builder
    *parents, last = path.split('.')
    for key in parents:
        target = target[key]
    target[last] = value
    return builder


def _labelling_nothing(m):
    from aiida_mlpot.workflows.labelling import LabellingWorkChain

    return LabellingWorkChain.get_builder_from_protocol(m.lmp, [], oracle='classical', potential=m.potential)


def _cp2k_with(m, code):
    from aiida_mlpot.workflows.labelling import LabellingWorkChain

    return LabellingWorkChain.get_builder_from_protocol(code, [m.structure()], oracle='cp2k')


@pytest.mark.parametrize(('case', 'make', 'match'), CASES, ids=[c[0] for c in CASES])
def test_builder_from_protocol(m, case, make, match):
    """Refused by the builder method (ValueError) or, for the content of dictionary inputs, at launch."""
    try:
        builder = make(m)
    except ValueError as exception:
        assert re.search(match, str(exception)), str(exception)
        return
    refused(builder, {}, match)


# --- ActiveLearningWorkChain --------------------------------------------------------------------------------
def active_learning(m, **kwargs):
    from aiida_mlpot.workflows.active_learning import ActiveLearningWorkChain

    arguments = {'temperatures': [1400.0], 'protocol': 'fast', 'codes': m.codes, **kwargs}
    return ActiveLearningWorkChain.get_builder_from_protocol(m.structure(), m.potential, **arguments)


AL_CASES = [
    ('unknown oracle', lambda m: active_learning(m, oracle='dft'), 'unknown oracle `dft`'),
    ('unknown protocol', lambda m: active_learning(m, protocol='quick'), 'unknown protocol `quick`'),
    ('unknown override key', lambda m: active_learning(m, overrides={'loops': {}}), 'override key `loops`'),
    (
        'unknown nested override key',
        lambda m: active_learning(m, overrides={'fitting': {'gap_fits': {}}}),
        'override key `fitting.gap_fits`',
    ),
    (
        'unknown key inside the loop settings',
        lambda m: active_learning(m, overrides={'loop': {'max_iteration': 3}}),
        '`loop.max_iteration`',
    ),
    ('unknown code key', lambda m: active_learning(m, codes={**m.codes, 'lamps': m.lmp}), '`lamps`'),
    (
        'a LAMMPS code as the gap_fit code',
        lambda m: active_learning(m, codes={**m.codes, 'gap_fit': m.lmp}),
        'not for gap_fit',
    ),
    ('no temperature', lambda m: active_learning(m, temperatures=[]), '`state_points`: empty'),
    ('negative temperature', lambda m: active_learning(m, temperatures=[-300.0]), 'temperature_K.*-300'),
    ('NaN temperature', lambda m: active_learning(m, temperatures=[math.nan]), 'temperature_K.*nan'),
    (
        'unknown key inside the sampling MD settings',
        lambda m: active_learning(m, overrides={'sampling': {'md_parameters': {'temperature': 300}}}),
        '`temperature`',
    ),
]


@pytest.mark.parametrize(('case', 'make', 'match'), AL_CASES, ids=[c[0] for c in AL_CASES])
def test_active_learning_builder(m, case, make, match):
    """Refused by the builder method, or by the validation a launch runs (checked without launching)."""
    from aiida_mlpot.workflows.active_learning import ActiveLearningWorkChain

    try:
        builder = make(m)
    except ValueError as exception:
        assert re.search(match, str(exception)), str(exception)
        return
    message = launch_message(ActiveLearningWorkChain, builder)
    assert message is not None, 'the bad input would have started the loop'
    assert re.search(match, message), message


def test_nacl_builder_is_valid(m):
    """The builders of the battery are valid without the bad value (the cases test what they say)."""
    from aiida_mlpot.workflows.active_learning import ActiveLearningWorkChain

    assert launch_message(ActiveLearningWorkChain, active_learning(m)) is None
