"""Process handlers of Cp2kLabelWorkChain (mlpot.cp2k.label) on fake Cp2kCalculation nodes (no CP2K run)."""

from __future__ import annotations

import pytest
from aiida import orm
from aiida.engine import ProcessHandlerReport, ProcessState
from aiida.engine.utils import instantiate_process
from aiida.manage import get_manager
from aiida.plugins import CalculationFactory, WorkflowFactory
from ase.build import bulk

from aiida_mlpot.workflows.cp2k_label import Cp2kLabelWorkChain

Cp2kCalculation = CalculationFactory('cp2k')
NORMAL = {'FORCE_EVAL': {'DFT': {'SCF': {'MAX_SCF': 2}}}}
ROBUST = {'FORCE_EVAL': {'DFT': {'SCF': {'MAX_SCF': 400}}}}


def test_entry_point_and_base_class():
    assert WorkflowFactory('mlpot.cp2k.label') is Cp2kLabelWorkChain
    assert issubclass(Cp2kLabelWorkChain, WorkflowFactory('cp2k.base'))
    assert 'robust_parameters' in Cp2kLabelWorkChain.spec().inputs


@pytest.fixture
def workchain(aiida_localhost):
    """Return a factory of an instantiated (not run) Cp2kLabelWorkChain after its setup step."""
    code = orm.InstalledCode(
        computer=aiida_localhost, filepath_executable='/bin/true', label='never-run'
    ).store()
    structure = orm.StructureData(ase=bulk('NaCl', 'rocksalt', a=5.64, cubic=True)).store()

    def factory(robust=True, **extra):
        inputs = {
            'cp2k': {
                'code': code,
                'structure': structure,
                'parameters': orm.Dict(NORMAL),
                'metadata': {'options': {'resources': {'num_machines': 1}}},
            },
            **extra,
        }
        if robust:
            inputs['robust_parameters'] = orm.Dict(ROBUST)
        process = instantiate_process(get_manager().get_runner(), Cp2kLabelWorkChain, **inputs)
        process.setup()
        return process

    return factory


def failed_calc(localhost, exit_code):
    node = orm.CalcJobNode(computer=localhost, process_type='aiida.calculations:cp2k')
    node.set_option('resources', {'num_machines': 1})
    node.set_process_state(ProcessState.FINISHED)
    node.set_exit_status(exit_code.status)
    node.set_exit_message(exit_code.message)
    return node.store()


@pytest.mark.parametrize(
    'label', ['ERROR_SCF_NOT_CONVERGED', 'ERROR_OUTPUT_INCOMPLETE', 'ERROR_OUT_OF_WALLTIME']
)
def test_switch_to_robust_once(workchain, aiida_localhost, label):
    process = workchain()
    calc = failed_calc(aiida_localhost, Cp2kCalculation.exit_codes[label])
    process.ctx.inputs.parent_calc_folder = orm.RemoteData(computer=aiida_localhost, remote_path='/tmp')
    report = process.switch_to_robust_parameters(calc)
    assert isinstance(report, ProcessHandlerReport)
    assert report.do_break and report.exit_code.status == 0
    assert process.ctx.inputs.parameters.get_dict() == ROBUST
    assert 'parent_calc_folder' not in process.ctx.inputs  # the robust run starts from scratch
    # the robust calculation fails too: this handler leaves it to the others (wavefunction restart or abort)
    assert process.switch_to_robust_parameters(calc) is None
    assert process.ctx.inputs.parameters.get_dict() == ROBUST


def test_no_robust_parameters_no_switch(workchain, aiida_localhost):
    process = workchain(robust=False)
    calc = failed_calc(aiida_localhost, Cp2kCalculation.exit_codes.ERROR_SCF_NOT_CONVERGED)
    assert process.switch_to_robust_parameters(calc) is None
    assert process.ctx.inputs.parameters.get_dict() == NORMAL


def test_other_failures_are_not_handled(workchain, aiida_localhost):
    """An ABORT (e.g. a missing basis) is not retried with robust SCF settings."""
    process = workchain()
    calc = failed_calc(aiida_localhost, Cp2kCalculation.exit_codes.ERROR_OUTPUT_CONTAINS_ABORT)
    assert process.switch_to_robust_parameters(calc) is None
    assert process.ctx.robust_applied is False


def test_handler_order(workchain):
    """The robust switch runs before aiida-cp2k's wavefunction restart, which stays off unless enabled."""
    process = workchain(handler_overrides=orm.Dict({'restart_incomplete_calculation': {'enabled': True}}))
    by_priority = sorted(process.get_process_handlers_by_priority(), key=lambda item: item[0], reverse=True)
    assert [handler.__name__ for _, handler in by_priority] == [
        'switch_to_robust_parameters',
        'restart_incomplete_calculation',
    ]
    names = [handler.__name__ for _, handler in workchain().get_process_handlers_by_priority()]
    assert names == ['switch_to_robust_parameters']
