"""`MlMdParser`: outputs of an :class:`~aiida_mlpot.calculations.ml_md.MlMdCalculation` from the retrieved files."""

from __future__ import annotations

import io
import json
import math

from aiida import orm

from aiida_mlpot.calculations.ml_md import MlMdCalculation
from aiida_mlpot.data.dataset import DatasetData
from aiida_mlpot.data.extxyz import read_frames
from aiida_mlpot.engines.ml_md import complete_frames_text
from aiida_mlpot.engines.parameters import normalise_parameters
from aiida_mlpot.parsers.driver import DriverParser

__all__ = ('MlMdParser',)


def _finite_or_none(value):
    """Return ``value`` with non-finite floats replaced by None, recursively (AiiDA stores JSON)."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {key: _finite_or_none(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_finite_or_none(item) for item in value]
    return value


class MlMdParser(DriverParser):
    """Parse ``summary.json``, ``trajectory.xyz``, ``flagged.xyz`` and ``final.xyz`` of the ML-MD driver.

    ``completed`` and ``extrapolation`` are successful outcomes; ``unstable`` returns ``ERROR_UNSTABLE_MD``
    after the outputs (partial trajectory, summary, last frame) have been attached.

    A run killed before its end (walltime, node failure, OOM kill) leaves no (or no readable) ``summary.json``
    but a trajectory flushed after every frame and ``progress.json``: the complete frames are attached
    (a half-written last frame is dropped), ``final_structure`` is the last of them, the ``summary`` is built
    from ``progress.json`` and the frames with outcome ``interrupted``, and the exit code is
    ``ERROR_INTERRUPTED`` (420): ``restart_from`` the ``trajectory`` continues the run. Only when not a single
    complete frame is there is the exit code 301 (or 302 for an unreadable summary).

    A reference score the driver computed for a relative threshold (``reference_computed`` in the summary, or
    in ``progress.json`` of an interrupted run) is attached as the ``reference_score`` output.
    """

    def _frames(self, name: str):
        content = self.read(name)
        if not content or not content.strip():
            return None
        return read_frames(io.StringIO(content))

    def parse(self, **kwargs):
        """Attach the outputs and return the exit code of the outcome."""
        calc = MlMdCalculation
        summary, failure = self.read_summary()
        if failure is not None:  # killed before the summary: what the trajectory holds is kept
            return self._parse_interrupted(failure, failure.message)
        outcome = summary['outcome']
        if outcome == 'error':
            # a driver error is not a restartable interruption, but frames written before it are not lost
            try:
                frames = self._complete_trajectory()[0]
            except Exception:
                frames = []
            if frames:
                self._attach_frames(frames)
            self.out('summary', orm.Dict(_finite_or_none(summary)))
            return self.exit_codes.ERROR_DRIVER_FAILED.format(reason=summary.get('reason', 'unknown'))

        try:
            trajectory = self._frames(calc.RESULT_FILES['trajectory'])
            flagged = self._frames(calc.RESULT_FILES['flagged']) if outcome == 'extrapolation' else None
            final = self._frames(calc.RESULT_FILES['final'])
        except Exception as exception:
            return self.exit_codes.ERROR_OUTPUT_TRAJECTORY_INVALID.format(exception=exception)
        if not trajectory:
            return self.exit_codes.ERROR_OUTPUT_TRAJECTORY_MISSING
        try:
            self.out('trajectory', DatasetData.from_ase(trajectory, allow_partial=True))
            if flagged:
                self.out('flagged', DatasetData.from_ase(flagged, allow_partial=True))
        except ValueError as exception:
            return self.exit_codes.ERROR_OUTPUT_TRAJECTORY_INVALID.format(exception=exception)
        last = (final or trajectory)[-1]
        last.calc = None
        self.out('final_structure', orm.StructureData(ase=last))
        self.out('summary', orm.Dict(_finite_or_none(summary)))
        self._attach_reference_score(summary)

        if outcome == 'unstable':
            return self.exit_codes.ERROR_UNSTABLE_MD.format(
                step=summary.get('triggered_step'), reason=summary.get('reason', '')
            )
        if outcome == 'extrapolation':
            self.logger.info(
                f'extrapolation at step {summary.get("triggered_step")}: {summary.get("reason")}'
            )
        return None

    def _complete_trajectory(self) -> tuple[list, bool]:
        """Return the complete frames of ``trajectory.xyz`` (possibly none) and whether a partial one was dropped.

        :raises: any reading error of the complete frames.
        """
        content = self.read(MlMdCalculation.RESULT_FILES['trajectory'])
        complete, n_frames, dropped = complete_frames_text(content or '')
        if not n_frames:
            return [], dropped
        return read_frames(io.StringIO(complete)), dropped

    def _attach_frames(self, frames: list) -> None:
        """Attach ``trajectory`` and ``final_structure`` (the last frame) of an unfinished run."""
        self.out('trajectory', DatasetData.from_ase(frames, allow_partial=True))
        last = frames[-1].copy()
        last.calc = None
        self.out('final_structure', orm.StructureData(ase=last))

    def _progress(self) -> dict:
        """Return the content of ``progress.json`` ({} if missing or unreadable)."""
        try:
            progress = json.loads(self.read(MlMdCalculation.RESULT_FILES['progress']) or '{}')
        except ValueError:
            return {}
        return progress if isinstance(progress, dict) else {}

    def _steps_requested(self, progress: dict):
        if progress.get('steps_requested') is not None:
            return progress['steps_requested']
        if 'parameters' in self.node.inputs:
            try:
                return normalise_parameters(self.node.inputs.parameters.get_dict())['md']['n_steps']
            except ValueError:
                return None
        return None

    def _parse_interrupted(self, nothing_usable, detail: str):
        """Attach what a killed run left (complete frames, a summary from ``progress.json``); exit 420.

        :param nothing_usable: the exit code to return when not a single complete frame was written.
        """
        try:
            frames, dropped = self._complete_trajectory()
        except Exception as exception:
            self.logger.warning(f'the trajectory of the interrupted run cannot be read: {exception}')
            return nothing_usable
        if not frames:
            return nothing_usable
        progress = self._progress()
        steps = [int(frame.info.get('step', 0)) for frame in frames]
        initial_step = int(progress.get('initial_step', steps[0]))
        final_step = steps[-1]
        steps_requested = self._steps_requested(progress)
        steps_done = final_step - initial_step
        scores = [frame.info.get('uncertainty') for frame in frames]
        known = [score for score in scores if score is not None]
        max_score = progress.get('max_score', max(known, default=None))
        summary = {
            'outcome': 'interrupted',
            'reason': f'the driver stopped before writing its summary ({detail})',
            'engine': progress.get('engine'),
            'initial_step': initial_step,
            'steps_done': steps_done,
            'steps_requested': steps_requested,
            'steps_remaining': None if steps_requested is None else steps_requested - steps_done,
            'final_step': final_step,
            'progress_step': progress.get('last_frame_step'),
            'n_dumped': len(frames),
            'partial_frame_dropped': dropped,
            'n_atoms': len(frames[-1]),
            'dump_interval': progress.get('dump_interval'),
            'check_interval': progress.get('check_interval'),
            'threshold': progress.get('threshold'),
            'reference_score': progress.get('reference_score'),
            'reference_computed': bool(progress.get('reference_computed')),
            'max_score': max_score,
            'elapsed_s': progress.get('elapsed_s'),
            'elapsed_per_step_s': progress.get('elapsed_per_step_s'),
            'traces': {
                'step': steps,
                'score': scores,
                'volume': [float(frame.get_volume()) for frame in frames],
                'temperature_K': [frame.info.get('temperature_K') for frame in frames],
                'energy': [frame.info.get('energy') for frame in frames],
            },
        }
        try:
            self._attach_frames(frames)
        except ValueError as exception:
            return self.exit_codes.ERROR_OUTPUT_TRAJECTORY_INVALID.format(exception=exception)
        self.out('summary', orm.Dict(_finite_or_none(summary)))
        self._attach_reference_score(summary)
        requested = '?' if steps_requested is None else steps_requested
        return self.exit_codes.ERROR_INTERRUPTED.format(
            steps_done=steps_done, steps_requested=requested, step=final_step, detail=detail
        )

    def _attach_reference_score(self, summary: dict) -> None:
        """Attach the reference score the driver computed from the training frames as ``reference_score``."""
        score = summary.get('reference_score')
        if summary.get('reference_computed') and score is not None and math.isfinite(score):
            self.out('reference_score', orm.Float(score))
