"""Calcfunctions of the ML-MD stage: one trajectory and one summary for a run made of several calculations.

An :class:`~aiida_mlpot.workflows.ml_md.MlMdWorkChain` that had to restart (an interrupted run continued from
its last frame, an unstable run retried with half the time step from the last frame before the failure) ran
the MD in *segments*, one :class:`~aiida_mlpot.calculations.ml_md.MlMdCalculation` each, every segment
starting from a frame of the previous one. Frames are labelled with absolute step numbers (``info['step']``,
counted on from the restart frame), so the segments are joined on them: the frames of a segment at and after
the step where the next segment starts are replaced by the next segment (its first frame *is* the restart
frame, recomputed; frames after it in the earlier segment were integrated past the point the run was
continued from, e.g. up to an instability, and are not part of the run).

The segment inputs are keyed ``<kind>_<k>`` (``trajectory_1``, ``summary_1``, ``parameters_1``, ...), ``k``
counting the segments from 1 in the order they ran.
"""

from __future__ import annotations

import re

from aiida import orm
from aiida.engine import calcfunction
from ase import Atoms

from aiida_mlpot.data.dataset import DatasetData
from aiida_mlpot.engines.parameters import normalise_parameters

__all__ = ('join_frames', 'join_summaries', 'join_trajectories', 'segment_inputs', 'summarise_segments')

_KEY = re.compile(r'^(?P<kind>[a-z]+)_(?P<index>[0-9]+)$')


def segment_inputs(kind: str, nodes: list) -> dict:
    """Return ``{'<kind>_1': nodes[0], '<kind>_2': nodes[1], ...}``: the keyword inputs of the calcfunctions."""
    return {f'{kind}_{index}': node for index, node in enumerate(nodes, start=1)}


def _ordered(inputs: dict, *kinds: str) -> list[list]:
    """Return, for each of ``kinds``, the inputs ``<kind>_<k>`` ordered by ``k``.

    :raises ValueError: a key that is not ``<kind>_<k>`` of one of ``kinds``, or numbers with gaps.
    """
    found: dict[str, dict[int, object]] = {kind: {} for kind in kinds}
    for key, value in inputs.items():
        match = _KEY.match(key)
        if match is None or match['kind'] not in kinds:
            expected = ', '.join(f'`{kind}_<k>`' for kind in kinds)
            raise ValueError(f'unexpected input `{key}`: the inputs are {expected}, k = 1, 2, ...')
        found[match['kind']][int(match['index'])] = value
    for kind, values in found.items():
        if sorted(values) != list(range(1, len(values) + 1)):
            raise ValueError(
                f'the `{kind}_<k>` inputs must be numbered 1, 2, ... without gaps: {sorted(values)}'
            )
    return [[values[index] for index in sorted(values)] for values in found.values()]


def _step(frame: Atoms) -> int:
    return int(frame.info.get('step', 0))


def join_frames(segments: list[list[Atoms]]) -> list[Atoms]:
    """Return the frames of consecutive MD segments as one trajectory, in step order, without duplicates.

    Each segment after the first must start (its first frame's ``step``) at a frame of the trajectory joined so
    far: the frame it was restarted from. The frames from that step on are dropped and the segment appended.
    ``info['time_fs']`` is shifted so that it counts the simulated time from the start of the first segment
    (the driver counts it from the start of each run; segments may have different time steps).

    :raises ValueError: an empty segment, a segment that does not start at a frame of the previous ones, or
        steps that do not increase within a segment.
    """
    joined: list[Atoms] = []
    for index, frames in enumerate(segments, start=1):
        if not frames:
            raise ValueError(f'segment {index} has no frames')
        steps = [_step(frame) for frame in frames]
        if any(later <= earlier for earlier, later in zip(steps, steps[1:])):
            raise ValueError(f'the steps of segment {index} do not increase: {steps}')
        start = steps[0]
        offset = 0.0
        if joined:
            restart = [frame for frame in joined if _step(frame) == start]
            if not restart:
                raise ValueError(
                    f'segment {index} starts at step {start}, which is not a frame of the segments before it'
                )
            offset = float(restart[-1].info.get('time_fs', 0.0)) - float(frames[0].info.get('time_fs', 0.0))
            joined = [frame for frame in joined if _step(frame) < start]
        for frame in frames:
            if 'time_fs' in frame.info:
                frame.info['time_fs'] = float(frame.info['time_fs']) + offset
        joined.extend(frames)
    return joined


@calcfunction
def join_trajectories(**trajectories: DatasetData) -> DatasetData:
    """Join the trajectories of consecutive ML-MD calculations (restarts) into the trajectory of the whole run.

    :param trajectories: ``trajectory_1``, ``trajectory_2``, ...: the ``trajectory`` output of each
        calculation, in the order they ran; each one after the first started from a frame of the one before.
    :return: a DatasetData of the frames in increasing ``step`` order, the restart frames once (as recomputed
        by the continuation), frames an earlier segment integrated past its restart point left out,
        ``time_fs`` counted from the start of the first segment; every frame keeps its ``source_uuid``.
    """
    (datasets,) = _ordered(trajectories, 'trajectory')
    segments = [dataset.to_ase() for dataset in datasets]
    return DatasetData.from_ase(join_frames(segments), allow_partial=True)


def summarise_segments(summaries: list[dict], timesteps_fs: list[float]) -> dict:
    """Return the summary of a run made of consecutive segments (see :func:`join_summaries`)."""
    if not summaries or len(summaries) != len(timesteps_fs):
        raise ValueError('give one summary and one time step per segment')
    first, last = summaries[0], summaries[-1]
    starts = [int(summary['initial_step']) for summary in summaries]
    ends = [*starts[1:], int(last['final_step'])]
    segments, simulated = [], 0.0
    for summary, timestep, start, end in zip(summaries, timesteps_fs, starts, ends):
        simulated += (end - start) * timestep
        segments.append(
            {
                'outcome': summary['outcome'],
                'reason': summary.get('reason', ''),
                'initial_step': start,
                'final_step': int(summary['final_step']),
                'kept_until_step': end,
                'steps_done': summary.get('steps_done'),
                'steps_requested': summary.get('steps_requested'),
                'timestep_fs': timestep,
                'max_score': summary.get('max_score'),
                'wall_time_s': summary.get('wall_time_s', summary.get('elapsed_s')),
            }
        )

    traces: dict[str, list] = {}
    volume_trace = []
    for summary, end, is_last in zip(summaries, ends, [False] * (len(summaries) - 1) + [True]):
        kept = [
            position
            for position, step in enumerate(summary.get('traces', {}).get('step', []))
            if is_last or step < end
        ]
        for name, values in summary.get('traces', {}).items():
            traces.setdefault(name, []).extend(values[position] for position in kept)
        volume_trace += [pair for pair in summary.get('volume_trace') or [] if is_last or pair[0] < end]

    scores = [summary.get('max_score') for summary in summaries if summary.get('max_score') is not None]
    wall_times = [segment['wall_time_s'] for segment in segments if segment['wall_time_s'] is not None]
    keys_of_last = (
        'reason',
        'failed_checks',
        'triggered_step',
        'engine',
        'n_atoms',
        'ensemble',
        'integrator',
        'check_interval',
        'dump_interval',
        'extrapolation_method',
        'threshold',
        'relative_threshold',
        'reference_score',
        'reference_percentile',
        'final_volume',
    )
    result = {key: last[key] for key in keys_of_last if key in last}
    result.update(
        {
            'outcome': last['outcome'],
            'initial_step': starts[0],
            'final_step': int(last['final_step']),
            'steps_done': int(last['final_step']) - starts[0],
            'steps_requested': first.get('steps_requested'),
            'steps_integrated': sum(int(summary.get('steps_done') or 0) for summary in summaries),
            'simulated_time_fs': simulated,
            'timestep_fs': timesteps_fs[-1],
            'velocities': first.get('velocities'),
            'initial_volume': first.get('initial_volume'),
            'max_score': max(scores, default=None),
            'wall_time_s': sum(wall_times) if wall_times else None,
            'n_segments': len(summaries),
            'segments': segments,
            'traces': traces,
            'volume_trace': volume_trace or None,
        }
    )
    return result


@calcfunction
def join_summaries(**kwargs: orm.Dict) -> orm.Dict:
    """Summarise a run made of consecutive ML-MD calculations (restarts) as one run.

    :param kwargs: ``summary_<k>`` (the ``summary`` output of the k-th calculation) and ``parameters_<k>``
        (its ``parameters`` input, for the time step; ``md.timestep_fs``, 2 fs when absent), k = 1, 2, ...
    :return: a Dict with the outcome, reason, failed checks, triggered step, threshold and reference score of
        the last segment; ``initial_step`` of the first and ``final_step`` of the last; ``steps_done`` (step
        labels advanced), ``steps_requested`` (of the first), ``steps_integrated`` (all segments, steps later
        discarded included), ``simulated_time_fs``, ``max_score`` over all segments, the summed
        ``wall_time_s``, the traces joined like the trajectories (``traces``, ``volume_trace``),
        ``n_segments`` and ``segments`` (per segment: outcome, reason, steps, ``kept_until_step``, time step,
        max score, wall time).
    """
    summary_nodes, parameters = _ordered(kwargs, 'summary', 'parameters')
    summaries = [node.get_dict() for node in summary_nodes]
    if len(parameters) != len(summaries):
        raise ValueError(f'{len(summaries)} summaries but {len(parameters)} parameters')
    timesteps = [float(normalise_parameters(node.get_dict())['md']['timestep_fs']) for node in parameters]
    return orm.Dict(summarise_segments(summaries, timesteps))
