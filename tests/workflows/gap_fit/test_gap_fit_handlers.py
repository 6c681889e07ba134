"""GapFitWorkChain handlers and memory planning on fake child nodes (no gap_fit run)."""

from __future__ import annotations

import pytest

PARAMETERS = {
    'descriptors': [
        {'type': 'distance_2b', 'cutoff': 4.0, 'n_sparse': 12, 'delta': 1.0},
        {
            'type': 'soap',
            'n_max': 2,
            'l_max': 1,
            'atom_sigma': 0.5,
            'cutoff': 4.0,
            'delta': 0.2,
            'n_sparse': 40,
        },
    ],
    'default_sigma': {'energy': 0.002, 'force': 0.05, 'virial': 0.05, 'hessian': 0.0},
    'e0_method': 'average',
}


@pytest.fixture
def workchain(code_gap_fit, tiny_dataset):
    """Return a factory of an instantiated (not run) GapFitWorkChain after its setup step."""
    from aiida import orm
    from aiida.engine.utils import instantiate_process
    from aiida.manage import get_manager

    from aiida_mlpot.workflows.gap_fit import GapFitWorkChain

    dataset = tiny_dataset

    def factory(parameters=PARAMETERS, extra_inputs=None, **options):
        inputs = {
            'gap_fit': {
                'code': code_gap_fit,
                'dataset': dataset,
                'parameters': orm.Dict(parameters),
                'metadata': {'options': {'resources': {'num_machines': 1}, **options}},
            },
            **(extra_inputs or {}),
        }
        process = instantiate_process(get_manager().get_runner(), GapFitWorkChain, **inputs)
        process.setup()
        return process

    factory.dataset = dataset
    return factory


def failed_calc(localhost, exit_code, process_type='aiida.calculations:mlpot.gap_fit', **options):
    from aiida import orm
    from aiida.engine import ProcessState

    node = orm.CalcJobNode(computer=localhost, process_type=process_type)
    node.set_option('resources', {'num_machines': 1})
    for key, value in options.items():
        node.set_option(key, value)
    node.set_process_state(ProcessState.FINISHED)
    node.set_exit_status(exit_code.status)
    return node.store()


def test_exit_codes_unique():
    from aiida_mlpot.calculations.gap_fit import GapFitCalculation
    from aiida_mlpot.workflows.gap_fit import GapFitWorkChain

    for process in (GapFitCalculation, GapFitWorkChain):
        statuses = [code.status for code in process.spec().exit_codes.values()]
        assert len(statuses) == len(set(statuses))


def test_out_of_memory_handler_halves_sparse_points(workchain, localhost):
    from aiida_mlpot.calculations.gap_fit import GapFitCalculation

    process = workchain()
    node = failed_calc(localhost, GapFitCalculation.exit_codes.ERROR_OUT_OF_MEMORY)
    report = process.handle_out_of_memory(node)
    assert report.do_break and report.exit_code.status == 0
    assert [d['n_sparse'] for d in process.ctx.inputs.parameters['descriptors']] == [10, 20]


def test_out_of_memory_handler_gives_up_at_minimum(workchain, localhost):
    from aiida_mlpot.calculations.gap_fit import GapFitCalculation

    parameters = {**PARAMETERS, 'descriptors': [dict(d, n_sparse=10) for d in PARAMETERS['descriptors']]}
    process = workchain(parameters)
    node = failed_calc(localhost, GapFitCalculation.exit_codes.ERROR_SCHEDULER_OUT_OF_MEMORY)
    report = process.handle_out_of_memory(node)
    assert report.exit_code.status == process.exit_codes.ERROR_UNRECOVERABLE_OUT_OF_MEMORY.status


def test_walltime_handler_doubles_walltime(workchain, localhost):
    from aiida_mlpot.calculations.gap_fit import GapFitCalculation

    process = workchain(max_wallclock_seconds=600)
    node = failed_calc(localhost, GapFitCalculation.exit_codes.ERROR_SCHEDULER_OUT_OF_WALLTIME)
    report = process.handle_out_of_walltime(node)
    assert report.exit_code.status == 0
    assert process.ctx.inputs.metadata.options['max_wallclock_seconds'] == 1200


def test_memory_planning_reduces_or_refuses(workchain):
    from aiida_mlpot.inputs.gap_fit import dataset_stats, estimate_memory

    process = workchain()
    stats = dataset_stats(process.ctx.inputs.dataset.to_ase())
    needed = estimate_memory(PARAMETERS, stats)['total_mb']
    # declared memory far below the estimate of even the fewest sparse points: refused
    refused = workchain(max_memory_kb=100 * 1024)
    assert refused.plan_memory().status == refused.exit_codes.ERROR_INSUFFICIENT_MEMORY.status
    # enough declared memory: nothing changes
    process = workchain(max_memory_kb=int(needed * 1024) + 1024)
    assert process.plan_memory() is None
    assert process.ctx.inputs.parameters['descriptors'][1]['n_sparse'] == 40


def test_failed_evaluation_is_the_sub_process_failed_code(workchain, localhost, code_python):
    """A failed EvaluateCalculation stops the work chain with ERROR_SUB_PROCESS_FAILED_EVALUATION naming it."""
    from aiida_mlpot.calculations.evaluate import EvaluateCalculation

    process = workchain(extra_inputs={'test_dataset': workchain.dataset, 'evaluate': {'code': code_python}})
    assert process.should_evaluate()
    failure = EvaluateCalculation.exit_codes.ERROR_DRIVER_FAILED
    process.ctx.evaluation = failed_calc(localhost, failure, process_type='aiida.calculations:mlpot.evaluate')
    exit_code = process.inspect_evaluation()
    assert exit_code.status == process.exit_codes.ERROR_SUB_PROCESS_FAILED_EVALUATION.status == 420
    assert (
        f'<{process.ctx.evaluation.pk}>' in exit_code.message
        and f'status {failure.status}' in exit_code.message
    )


def test_one_sub_process_failed_code():
    from aiida_mlpot.workflows.gap_fit import GapFitWorkChain

    labels = [label for label, _ in GapFitWorkChain.spec().exit_codes.items()]
    assert [label for label in labels if label.startswith('ERROR_SUB_PROCESS_FAILED')] == [
        'ERROR_SUB_PROCESS_FAILED_EVALUATION'
    ]
