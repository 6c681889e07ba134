"""MlMdWorkChain end to end: the real python driver with the test GAP (64-atom NaCl at 1400 K).

- a run whose driver is killed with SIGKILL part-way (as a scheduler kills a job at its walltime) is finished
  by the work chain from the partial trajectory;
- unstable runs (a huge time step) show the handler's decision: with ``halve_timestep`` a retry with half the
  time step, which either completes or gives up; with ``give_up`` no retry.
"""

from __future__ import annotations

import json
import os
import pathlib
import signal
import threading
import time

import numpy as np
import pytest
from aiida import orm
from aiida.engine import run_get_node

from aiida_mlpot.workflows.ml_md import MlMdWorkChain

pytestmark = pytest.mark.e2e

#: ``md.seed`` of the run the killer looks for (so that no other ML-MD driver on the machine is touched).
KILL_SEED = 90417


class DriverKiller(threading.Thread):
    """SIGKILL the ML-MD driver of a run once its ``progress.json`` reports ``n_frames`` written frames.

    It watches the processes running ``python -m aiida_mlpot.engines...`` whose working directory is below
    ``root`` (the test computer's work directory) and whose ``input.json`` starts at step 0 with
    ``md.seed == seed``: the first calculation of the work chain, not its continuation.
    """

    def __init__(self, root: str, seed: int, n_frames: int, timeout: float = 300.0):
        super().__init__(daemon=True)
        self.root, self.seed, self.n_frames, self.timeout = os.path.realpath(root), seed, n_frames, timeout
        self.killed: dict | None = None
        self.stop = threading.Event()

    def _drivers(self):
        for entry in pathlib.Path('/proc').iterdir():
            if not entry.name.isdigit():
                continue
            try:
                cmdline = (entry / 'cmdline').read_bytes().split(b'\0')
                cwd = os.readlink(entry / 'cwd')
            except OSError:
                continue
            if b'-m' in cmdline and any(arg.startswith(b'aiida_mlpot.engines') for arg in cmdline):
                if cwd.startswith(self.root + os.sep):
                    yield int(entry.name), pathlib.Path(cwd)

    def run(self):
        deadline = time.monotonic() + self.timeout
        while not self.stop.is_set() and time.monotonic() < deadline:
            for pid, cwd in self._drivers():
                try:
                    config = json.loads((cwd / 'input.json').read_text())
                    if (
                        config.get('initial_step', 0) != 0
                        or config['parameters']['md'].get('seed') != self.seed
                    ):
                        continue
                    progress = json.loads((cwd / 'progress.json').read_text())
                except (OSError, ValueError, KeyError):
                    continue
                if progress.get('n_dumped', 0) >= self.n_frames:
                    os.kill(pid, signal.SIGKILL)
                    self.killed = {'pid': pid, 'workdir': str(cwd), 'progress': progress}
                    return
            time.sleep(0.02)


def calculations(workchain: orm.WorkChainNode) -> list[orm.CalcJobNode]:
    """Return the MlMdCalculations the work chain ran, in order."""
    return sorted(
        (node for node in workchain.called if isinstance(node, orm.CalcJobNode)), key=lambda node: node.ctime
    )


def steps_of(dataset) -> list[int]:
    return [int(frame.info['step']) for frame in dataset.to_ase()]


def test_killed_run_is_finished_from_its_partial_trajectory(ml_md_inputs, training_dataset, localhost):
    """SIGKILL of the driver after 3 frames (420); the work chain continues from the last one to step 60.

    The threshold is relative (10 x the training frames' 99th percentile, far above what 1400 K reaches): the
    first calculation computes the reference score from the training frames, the continuation receives it.
    """
    parameters = {
        'md': {'temperature_K': 1400.0, 'n_steps': 60, 'dump_interval': 5, 'seed': KILL_SEED},
        'extrapolation': {'check_interval': 5, 'relative_threshold': 10.0},
    }
    killer = DriverKiller(localhost.get_workdir(), KILL_SEED, n_frames=3)
    killer.start()
    try:
        md = ml_md_inputs(parameters, index=1, training=training_dataset)
        results, node = run_get_node(MlMdWorkChain, md=md)
    finally:
        killer.stop.set()
        killer.join()
    assert killer.killed is not None, 'the driver was not killed'
    assert node.is_finished_ok, node.exit_message

    first, second = calculations(node)
    assert first.exit_status == 420
    interrupted = first.outputs.summary.get_dict()
    killed_at = interrupted['final_step']
    assert killed_at >= 10 and killed_at % 5 == 0 and interrupted['steps_remaining'] == 60 - killed_at
    # the restart link: the continuation starts from the interrupted run's trajectory, last frame
    assert second.inputs.restart_from.uuid == first.outputs.trajectory.uuid
    assert 'restart_frame' not in second.inputs and 'structure' not in second.inputs
    assert second.inputs.parameters['md']['n_steps'] == 60 - killed_at
    assert second.is_finished_ok
    continuation = second.outputs.summary.get_dict()
    assert continuation['initial_step'] == killed_at and continuation['velocities'] == 'from_structure'
    # the same threshold: the reference score the first run computed is an input of the continuation
    reference = first.outputs.reference_score
    assert second.inputs.reference_score.uuid == reference.uuid and 'reference_score' not in second.outputs
    assert (
        continuation['threshold']
        == pytest.approx(interrupted['threshold'])
        == pytest.approx(10 * reference.value)
    )
    assert results['reference_score'].uuid == reference.uuid

    summary = results['summary'].get_dict()
    assert summary['outcome'] == 'completed' and summary['n_segments'] == 2
    assert (summary['initial_step'], summary['final_step'], summary['steps_done']) == (0, 60, 60)
    assert summary['steps_requested'] == 60

    trajectory = results['trajectory']
    assert trajectory.creator.process_label == 'join_trajectories' and trajectory.creator.caller.pk == node.pk
    steps = steps_of(trajectory)
    assert steps == list(range(0, 61, 5))  # increasing, each step once (the restart frame not duplicated)
    sources = [frame.info['source_uuid'] for frame in trajectory.to_ase()]
    assert sources == [first.uuid] * (killed_at // 5) + [second.uuid] * ((60 - killed_at) // 5 + 1)
    restart = first.outputs.trajectory.to_ase()[-1]
    joined_restart = trajectory.to_ase()[killed_at // 5]
    assert joined_restart.positions == pytest.approx(restart.positions, abs=1e-8)
    assert joined_restart.arrays['momenta'] == pytest.approx(restart.arrays['momenta'], abs=1e-8)
    assert trajectory.to_ase()[-1].info['time_fs'] == pytest.approx(60 * 2.0)  # time counted from the start
    final = results['final_structure'].get_ase()
    assert np.allclose(final.positions, trajectory.to_ase()[-1].positions, atol=1e-8)


def unstable_parameters(timestep_fs: float, n_steps: int) -> dict:
    return {
        'md': {
            'temperature_K': 1400.0,
            'n_steps': n_steps,
            'timestep_fs': timestep_fs,
            'dump_interval': 2,
            'seed': 3,
        },
        'extrapolation': {'check_interval': 2, 'threshold': 0.2},
    }


def test_unstable_run_halved_once_then_gives_up(ml_md_inputs):
    """80 fs: unstable at once; retried at 40 fs from the frame before the failure, unstable again: 410."""
    results, node = run_get_node(MlMdWorkChain, md=ml_md_inputs(unstable_parameters(80.0, 20)))
    first, second = calculations(node)
    assert first.exit_status == second.exit_status == 410
    assert second.inputs.parameters['md']['timestep_fs'] == 40.0
    failed_at = first.outputs.summary['triggered_step']
    frames = first.outputs.trajectory.to_ase()
    restart_index = second.inputs.restart_frame.value
    assert frames[restart_index].info['step'] < failed_at and restart_index == len(frames) - 2
    assert second.inputs.restart_from.uuid == first.outputs.trajectory.uuid
    restart_step = frames[restart_index].info['step']
    assert second.inputs.parameters['md']['n_steps'] == 2 * (20 - restart_step)

    assert node.exit_status == MlMdWorkChain.exit_codes.ERROR_UNSTABLE_MD_GAVE_UP.status == 410
    second_summary = second.outputs.summary.get_dict()
    assert f'step {second_summary["triggered_step"]}' in node.exit_message
    assert 'already retried' in node.exit_message
    # the partial trajectory is an output: both runs joined, up to the failing frame of the second
    summary = results['summary'].get_dict()
    assert summary['outcome'] == 'unstable' and summary['n_segments'] == 2
    assert [segment['timestep_fs'] for segment in summary['segments']] == [80.0, 40.0]
    steps = steps_of(results['trajectory'])
    assert steps == sorted(set(steps)) and steps[-1] == second_summary['triggered_step']
    assert results['final_structure'].uuid == second.outputs.final_structure.uuid


def test_unstable_run_completes_with_half_the_timestep(ml_md_inputs):
    """40 fs: unstable after 2 steps; 20 fs from the start frame covers the 10 × 40 fs asked and completes."""
    results, node = run_get_node(MlMdWorkChain, md=ml_md_inputs(unstable_parameters(40.0, 10)))
    assert node.is_finished_ok, node.exit_message
    first, second = calculations(node)
    assert first.exit_status == 410 and second.is_finished_ok
    assert second.inputs.parameters['md']['timestep_fs'] == 20.0
    summary = results['summary'].get_dict()
    assert summary['outcome'] == 'completed' and summary['simulated_time_fs'] == pytest.approx(400.0)
    restart_step = first.outputs.trajectory.to_ase()[second.inputs.restart_frame.value].info['step']
    assert summary['final_step'] == restart_step + 2 * (10 - restart_step)
    steps = steps_of(results['trajectory'])
    assert steps == sorted(set(steps)) and steps[-1] == summary['final_step']
    assert results['trajectory'].to_ase()[-1].info['time_fs'] == pytest.approx(400.0)


def test_give_up_policy_does_not_retry(ml_md_inputs):
    """40 fs with `give_up`: one calculation, 410 with its partial trajectory and summary as outputs."""
    results, node = run_get_node(
        MlMdWorkChain, md=ml_md_inputs(unstable_parameters(40.0, 10)), unstable_policy=orm.Str('give_up')
    )
    (only,) = calculations(node)
    assert only.exit_status == 410
    assert node.exit_status == 410 and '`give_up`' in node.exit_message
    assert results['trajectory'].uuid == only.outputs.trajectory.uuid
    assert results['summary']['outcome'] == 'unstable'
