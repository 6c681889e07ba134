"""MlMdWorkChain handlers on fake finished calculations (no MD run): the decisions and the inputs they set."""

from __future__ import annotations

import pytest

from aiida_mlpot.workflows.ml_md import restart_frame_before
from tests.workflows.ml_md.conftest import md_frames

PARAMETERS = {
    'md': {'temperature_K': 1400.0, 'n_steps': 40, 'timestep_fs': 4.0, 'dump_interval': 5, 'seed': 7},
    'extrapolation': {'check_interval': 5, 'threshold': 0.2},
}


@pytest.fixture
def workchain(aiida_profile, code_python, recorded_potential):
    """Return a factory of an instantiated (not run) MlMdWorkChain after its setup and validate steps."""
    from aiida import orm
    from aiida.engine.utils import instantiate_process
    from aiida.manage import get_manager

    from aiida_mlpot.workflows.ml_md import MlMdWorkChain

    def factory(parameters=PARAMETERS, unstable_policy=None, **md_inputs):
        structure = md_frames([0])[0]
        structure.calc = None
        md = {
            'code': code_python,
            'structure': orm.StructureData(ase=structure),
            'potential': recorded_potential,
            'parameters': orm.Dict(parameters),
            'metadata': {'options': {'max_wallclock_seconds': 600}},
        }
        md.update(md_inputs)
        md = {key: value for key, value in md.items() if value is not None}
        inputs = {} if unstable_policy is None else {'unstable_policy': orm.Str(unstable_policy)}
        process = instantiate_process(get_manager().get_runner(), MlMdWorkChain, md=md, **inputs)
        process.setup()
        process.validate()
        return process

    return factory


def interrupted_summary(initial=0, final=15, requested=40):
    return {
        'outcome': 'interrupted',
        'initial_step': initial,
        'final_step': final,
        'steps_done': final - initial,
        'steps_requested': requested,
        'steps_remaining': requested - (final - initial),
    }


def unstable_summary(initial=0, triggered=12, requested=40):
    return {
        'outcome': 'unstable',
        'reason': 'temperature 9000 K > 3 x 1400 K',
        'triggered_step': triggered,
        'initial_step': initial,
        'final_step': triggered,
        'steps_done': triggered - initial,
        'steps_requested': requested,
    }


def test_exit_codes_and_policy_validator():
    from aiida import orm

    from aiida_mlpot.workflows.ml_md import MlMdWorkChain, validate_unstable_policy

    codes = MlMdWorkChain.exit_codes
    assert codes.ERROR_UNSTABLE_MD_GAVE_UP.status == 410
    assert 400 <= codes.ERROR_SUB_PROCESS_FAILED_ML_MD.status < 500
    statuses = [code.status for _, code in MlMdWorkChain.spec().exit_codes.items()]
    assert len(statuses) == len(set(statuses))
    assert validate_unstable_policy(orm.Str('halve_timestep'), None) is None
    assert 'halve_timestep, give_up' in validate_unstable_policy(orm.Str('shrink'), None)


def test_restart_frame_before():
    assert restart_frame_before([0, 5, 10, 12], 12) == 2
    assert restart_frame_before([0, 5, 10], 10) == 1  # the failing frame is a dumped one
    assert restart_frame_before([0, 2], None) == 0  # no step known: the last frame failed
    assert restart_frame_before([0], 0) is None  # the start frame itself failed


def test_validate_records_the_final_step_of_a_restart(workchain, fake_calculation):
    """Given `restart_from` a trajectory, the run is asked to reach the frame's step + n_steps."""
    assert workchain().ctx.final_step == 40
    node = fake_calculation(420, PARAMETERS, md_frames([0, 5, 10, 15]), interrupted_summary())
    process = workchain(structure=None, restart_from=node.outputs.trajectory)
    assert process.ctx.final_step == 15 + 40


def test_interrupted_run_continues_from_its_last_frame(workchain, fake_calculation):
    process = workchain()
    node = fake_calculation(420, PARAMETERS, md_frames([0, 5, 10, 15]), interrupted_summary())
    report = process.handle_interrupted(node)
    assert report.do_break and report.exit_code.status == 0
    inputs = process.ctx.inputs
    assert 'structure' not in inputs and 'restart_frame' not in inputs
    assert inputs.restart_from.uuid == node.outputs.trajectory.uuid
    md = inputs.parameters['md']
    assert md['n_steps'] == 25  # steps_remaining: the run still reaches step 40
    assert md['seed'] == 8 and md['timestep_fs'] == 4.0
    assert not process.ctx.is_finished and not process.ctx.timestep_halved


def test_interrupted_run_passes_on_its_reference_score(workchain, fake_calculation):
    """The reference score the first calculation computed is given to the continuation (same threshold)."""
    from aiida import orm

    process = workchain()
    score = orm.Float(0.025)
    node = fake_calculation(
        420, PARAMETERS, md_frames([0, 5]), interrupted_summary(final=5), reference_score=score
    )
    process.handle_interrupted(node)
    assert process.ctx.inputs.reference_score.uuid == score.uuid


def test_interrupted_after_its_last_frame_is_complete(workchain, fake_calculation):
    process = workchain()
    node = fake_calculation(420, PARAMETERS, md_frames([0, 20, 40]), interrupted_summary(final=40))
    report = process.handle_interrupted(node)
    assert report.exit_code.status == 0 and process.ctx.is_finished
    assert 'restart_from' not in process.ctx.inputs


def test_unstable_run_is_retried_once_with_half_the_timestep(workchain, fake_calculation):
    """Unstable at step 12 of 40 with 4 fs: from the frame of step 10, 2 fs, 2 x 30 steps."""
    process = workchain()
    node = fake_calculation(410, PARAMETERS, md_frames([0, 5, 10, 12]), unstable_summary())
    report = process.handle_unstable(node)
    assert report.do_break and report.exit_code.status == 0
    inputs = process.ctx.inputs
    assert inputs.restart_from.uuid == node.outputs.trajectory.uuid and inputs.restart_frame.value == 2
    md = inputs.parameters['md']
    assert md['timestep_fs'] == 2.0 and md['n_steps'] == 60 and md['seed'] == 8
    assert process.ctx.timestep_halved and not process.ctx.is_finished


def test_second_instability_gives_up_with_the_partial_trajectory(workchain, fake_calculation):
    """After the halving, unstable again: ERROR_UNSTABLE_MD_GAVE_UP, outputs joined over both runs."""
    process = workchain()
    first = fake_calculation(410, PARAMETERS, md_frames([0, 5, 10, 12]), unstable_summary())
    process.ctx.children = [first]
    process.handle_unstable(first)
    second_parameters = process.ctx.inputs.parameters
    second = fake_calculation(
        410,
        second_parameters,
        md_frames([10, 15, 17]),
        unstable_summary(initial=10, triggered=17, requested=60),
    )
    process.ctx.children = [first, second]
    report = process.handle_unstable(second)
    assert report.exit_code.status == process.exit_codes.ERROR_UNSTABLE_MD_GAVE_UP.status == 410
    assert 'step 17' in report.exit_code.message and 'already retried' in report.exit_code.message
    assert process.ctx.is_finished
    outputs = process.outputs
    assert [frame.info['step'] for frame in outputs['trajectory'].to_ase()] == [0, 5, 10, 15, 17]
    summary = outputs['summary'].get_dict()
    assert summary['outcome'] == 'unstable' and summary['n_segments'] == 2 and summary['final_step'] == 17
    assert outputs['final_structure'].uuid == second.outputs.final_structure.uuid


def test_give_up_policy_does_not_retry(workchain, fake_calculation):
    process = workchain(unstable_policy='give_up')
    node = fake_calculation(410, PARAMETERS, md_frames([0, 5, 10, 12]), unstable_summary())
    process.ctx.children = [node]
    report = process.handle_unstable(node)
    assert report.exit_code.status == 410 and '`give_up`' in report.exit_code.message
    assert 'restart_from' not in process.ctx.inputs and not process.ctx.timestep_halved
    assert process.outputs['trajectory'].uuid == node.outputs.trajectory.uuid  # one run: its own outputs
    assert process.outputs['summary'].uuid == node.outputs.summary.uuid


def test_unstable_start_frame_gives_up(workchain, fake_calculation):
    process = workchain()
    node = fake_calculation(410, PARAMETERS, md_frames([0]), unstable_summary(triggered=0))
    process.ctx.children = [node]
    report = process.handle_unstable(node)
    assert report.exit_code.status == 410 and 'start frame itself failed' in report.exit_code.message


def test_other_failures_end_the_work_chain(workchain, fake_calculation):
    process = workchain()
    failed = fake_calculation(310, PARAMETERS, md_frames([0, 5]), {'outcome': 'error', 'reason': 'boom'})
    process.ctx.children = [failed]
    report = process.handle_failure(failed)
    code = process.exit_codes.ERROR_SUB_PROCESS_FAILED_ML_MD
    assert report.exit_code.status == code.status and 'exit status 310' in report.exit_code.message
    assert process.outputs['trajectory'].uuid == failed.outputs.trajectory.uuid
    finished = fake_calculation(0, PARAMETERS, md_frames([0, 5]), {'outcome': 'completed'})
    assert workchain().handle_failure(finished) is None


def test_driver_error_in_a_continuation_keeps_the_run_so_far(workchain, fake_calculation):
    """Interrupted, then the continuation's driver fails (310, no steps in its summary): the first run's outputs."""
    process = workchain()
    first = fake_calculation(420, PARAMETERS, md_frames([0, 5, 10, 15]), interrupted_summary())
    process.ctx.children = [first]
    process.handle_interrupted(first)
    error = fake_calculation(310, PARAMETERS, md_frames([15, 20]), {'outcome': 'error', 'reason': 'boom'})
    process.ctx.children = [first, error]
    assert process.handle_interrupted(error) is None and process.handle_unstable(error) is None
    report = process.handle_failure(error)
    assert report.exit_code.status == process.exit_codes.ERROR_SUB_PROCESS_FAILED_ML_MD.status
    assert 'exit status 310' in report.exit_code.message
    assert process.outputs['trajectory'].uuid == first.outputs.trajectory.uuid
    assert process.outputs['summary']['outcome'] == 'interrupted'


def test_handlers_leave_a_calculation_without_outputs_to_the_failure_handler(workchain, fake_calculation):
    process = workchain()
    node = fake_calculation(420, PARAMETERS)
    process.ctx.children = [node]
    assert process.handle_interrupted(node) is None
    report = process.handle_failure(node)
    assert report.exit_code.status == process.exit_codes.ERROR_SUB_PROCESS_FAILED_ML_MD.status
    assert 'trajectory' not in process.outputs
