"""Joining the segments of a restarted ML-MD run: frames (pure), summaries (pure) and the calcfunctions."""

from __future__ import annotations

import pytest

from aiida_mlpot.calculations.functions.ml_md import join_frames, segment_inputs, summarise_segments
from tests.workflows.ml_md.conftest import md_frames


def steps_of(frames):
    return [frame.info['step'] for frame in frames]


def test_interrupted_chain_drops_the_duplicated_restart_frame():
    """Killed after step 15, continued from it: 0..40 once each; step 15 is the continuation's frame."""
    first = md_frames([0, 5, 10, 15], tag='a')
    second = md_frames([15, 20, 25, 30, 35, 40], tag='b')
    joined = join_frames([first, second])
    assert steps_of(joined) == [0, 5, 10, 15, 20, 25, 30, 35, 40]
    assert [frame.info['segment'] for frame in joined] == ['a'] * 3 + ['b'] * 6
    # time continues: the continuation counts its time from 0, the joined trajectory from the first start
    assert [frame.info['time_fs'] for frame in joined] == [2.0 * step for step in steps_of(joined)]


def test_halved_timestep_chain_drops_the_frames_past_the_restart_frame():
    """Unstable at step 12, retried at half the time step from the frame of step 10: 12 is not in the run."""
    first = md_frames([0, 5, 10, 12], timestep_fs=4.0, tag='a')
    second = md_frames([10, 15, 20], timestep_fs=2.0, tag='b')
    joined = join_frames([first, second])
    assert steps_of(joined) == [0, 5, 10, 15, 20]
    assert [frame.info['segment'] for frame in joined] == ['a', 'a', 'b', 'b', 'b']
    assert [frame.info['time_fs'] for frame in joined] == [0.0, 20.0, 40.0, 50.0, 60.0]


def test_three_segments_and_a_single_one():
    first, second = md_frames([0, 2, 4], tag='a'), md_frames([4, 6], tag='b')
    third = md_frames([6, 7, 8], timestep_fs=1.0, tag='c')
    joined = join_frames([first, second, third])
    assert steps_of(joined) == [0, 2, 4, 6, 7, 8]
    assert [frame.info['time_fs'] for frame in joined] == [0.0, 4.0, 8.0, 12.0, 13.0, 14.0]
    assert steps_of(join_frames([md_frames([3, 4])])) == [3, 4]


def test_segments_that_do_not_chain_are_refused():
    with pytest.raises(ValueError, match='starts at step 7, which is not a frame'):
        join_frames([md_frames([0, 5, 10]), md_frames([7, 12])])
    with pytest.raises(ValueError, match='do not increase'):
        join_frames([md_frames([0, 5, 5])])
    with pytest.raises(ValueError, match='segment 2 has no frames'):
        join_frames([md_frames([0, 5]), []])


def _summary(outcome, initial, final, requested, **extra):
    traces_steps = list(range(initial, final + 1, 5)) + ([final] if (final - initial) % 5 else [])
    return {
        'outcome': outcome,
        'reason': extra.pop('reason', ''),
        'initial_step': initial,
        'final_step': final,
        'steps_done': final - initial,
        'steps_requested': requested,
        'threshold': 0.2,
        'max_score': extra.pop('max_score', 0.01),
        'wall_time_s': 1.5,
        'traces': {'step': traces_steps, 'score': [0.01] * len(traces_steps)},
        **extra,
    }


def test_summary_of_an_unstable_then_halved_run():
    """40 steps of 4 fs asked, unstable at 12, retried from 10 with 2 fs (60 steps): 160 fs simulated."""
    first = _summary('unstable', 0, 12, 40, reason='temperature 9000 K', triggered_step=12, max_score=0.05)
    second = _summary('completed', 10, 70, 60)
    summary = summarise_segments([first, second], [4.0, 2.0])
    assert summary['outcome'] == 'completed' and 'triggered_step' not in summary
    assert (summary['initial_step'], summary['final_step'], summary['steps_done']) == (0, 70, 70)
    assert summary['steps_requested'] == 40 and summary['steps_integrated'] == 72
    assert summary['simulated_time_fs'] == pytest.approx(10 * 4.0 + 60 * 2.0)
    assert summary['max_score'] == 0.05 and summary['wall_time_s'] == 3.0 and summary['timestep_fs'] == 2.0
    assert summary['n_segments'] == 2
    assert [segment['kept_until_step'] for segment in summary['segments']] == [10, 70]
    assert summary['segments'][0]['reason'] == 'temperature 9000 K'
    assert summary['traces']['step'] == [0, 5, *range(10, 71, 5)]


def test_calcfunctions_record_the_join(aiida_profile):
    """join_trajectories and join_summaries on stored segments: outputs, inputs keyed by segment."""
    from aiida import orm

    from aiida_mlpot.calculations.functions.ml_md import join_summaries, join_trajectories
    from aiida_mlpot.data.dataset import DatasetData

    trajectories = [DatasetData.from_ase(md_frames([0, 5, 10])), DatasetData.from_ase(md_frames([10, 15]))]
    joined, node = join_trajectories.run_get_node(**segment_inputs('trajectory', trajectories))
    assert node.is_finished_ok and steps_of(joined.to_ase()) == [0, 5, 10, 15]
    assert sorted(node.inputs) == ['trajectory_1', 'trajectory_2']
    assert joined.has_property('forces') and all('momenta' in f.arrays for f in joined.to_ase())

    summaries = [orm.Dict(_summary('interrupted', 0, 10, 15)), orm.Dict(_summary('completed', 10, 15, 5))]
    parameters = [orm.Dict({'md': {'n_steps': 15}}), orm.Dict({'md': {'n_steps': 5, 'timestep_fs': 1.0}})]
    summary = join_summaries(
        **segment_inputs('summary', summaries), **segment_inputs('parameters', parameters)
    )
    assert summary['final_step'] == 15 and summary['simulated_time_fs'] == pytest.approx(10 * 2.0 + 5 * 1.0)

    with pytest.raises(ValueError, match='without gaps'):
        join_trajectories(trajectory_1=trajectories[0], trajectory_3=trajectories[1])
    with pytest.raises(ValueError, match='unexpected input `summary_1`'):
        join_trajectories(trajectory_1=trajectories[0], summary_1=summaries[0])
