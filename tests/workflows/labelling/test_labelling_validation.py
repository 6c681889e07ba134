"""Input validation and exit codes of LabellingWorkChain (no binary is run)."""

from __future__ import annotations

import pytest
from aiida import orm
from aiida.engine import run_get_node
from ase.build import bulk

from aiida_mlpot.data.dataset import DatasetData
from aiida_mlpot.presets import nacl_tosi_fumi
from aiida_mlpot.workflows.labelling import LabellingWorkChain


def test_exit_codes_are_unique_and_in_range():
    statuses = [code.status for code in LabellingWorkChain.exit_codes.values()]
    assert len(statuses) == len(set(statuses))
    assert LabellingWorkChain.exit_codes.ERROR_TOO_FEW_LABELLED.status == 410
    assert LabellingWorkChain.exit_codes.ERROR_SUB_PROCESS_FAILED_CLASSICAL.status == 420


@pytest.fixture
def fake_code(aiida_localhost):
    """A code node that is never run: validation happens before any submission."""
    return orm.InstalledCode(
        computer=aiida_localhost, filepath_executable='/bin/true', label='never-run'
    ).store()


def _structure():
    return orm.StructureData(ase=bulk('NaCl', 'rocksalt', a=5.64, cubic=True))


@pytest.mark.parametrize(
    ('inputs', 'message'),
    [
        ({}, 'give exactly one of `structures`'),
        ({'with_dataset': True}, 'give exactly one of `structures`'),
        ({'oracle': ('Str', 'dft')}, '`oracle` must be one of'),
        ({'no_code': True}, 'needs `cp2k_code`'),
        ({'oracle': ('Str', 'classical')}, 'needs `classical_code` and `potential`'),
        ({'protocol': ('Str', 'fast')}, 'unknown CP2K protocol'),
        ({'min_success_fraction': ('Float', 1.5)}, 'between 0 and 1'),
        ({'max_concurrent': ('Int', 0)}, 'at least 1'),
    ],
)
def test_invalid_inputs_are_refused(fake_code, inputs, message):
    inputs = dict(inputs)
    kwargs = {'structures': {'a': _structure()}}
    if inputs.pop('with_dataset', False):
        kwargs['dataset'] = DatasetData.from_ase([bulk('NaCl', 'rocksalt', a=5.64, cubic=True)])
    if not inputs.pop('no_code', False):
        kwargs['cp2k_code'] = fake_code
    if inputs == {} and message.startswith('give exactly') and 'dataset' not in kwargs:
        kwargs.pop('structures')
    kwargs.update({key: getattr(orm, kind)(value) for key, (kind, value) in inputs.items()})
    with pytest.raises(ValueError, match=message):
        run_get_node(LabellingWorkChain, **kwargs)


def test_classical_inputs_pass_validation(fake_code):
    """A complete classical input passes the validator (checked through the builder, without running)."""
    builder = LabellingWorkChain.get_builder()
    builder.structures = {'a': _structure()}
    builder.oracle = orm.Str('classical')
    builder.classical_code = fake_code
    builder.potential = orm.Dict(nacl_tosi_fumi())
    assert LabellingWorkChain.spec().inputs.validate(builder._inputs(prune=True)) is None


def test_failure_reason_names_the_last_calculation(aiida_localhost):
    """The reason of an excluded configuration quotes the base chain and its last Cp2kCalculation."""
    from aiida.common.links import LinkType
    from aiida.engine import ProcessState

    chain = orm.WorkflowNode()
    chain.set_process_label('Cp2kBaseWorkChain')
    chain.set_process_state(ProcessState.FINISHED)
    chain.set_exit_status(401)
    chain.set_exit_message('The maximum number of iterations was exceeded.')
    chain.store()
    for status in (450, 450):
        calc = orm.CalcJobNode(computer=aiida_localhost, process_type='aiida.calculations:cp2k')
        calc.set_process_state(ProcessState.FINISHED)
        calc.set_exit_status(status)
        calc.set_exit_message('SCF cycle did not converge for the given threshold.')
        calc.base.links.add_incoming(chain, link_type=LinkType.CALL_CALC, link_label='iteration')
        calc.store()
        parameters = orm.Dict({'scf_converged': False})
        parameters.base.links.add_incoming(calc, link_type=LinkType.CREATE, link_label='output_parameters')
        parameters.store()
    reason, status = LabellingWorkChain._failure_reason(chain)
    assert status == 450
    assert 'exit status 401' in reason
    assert f'Cp2kCalculation<{calc.pk}> exit status 450' in reason
    assert reason.endswith('(SCF not converged)')
