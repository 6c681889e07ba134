"""`MlMdWorkChain`: ML molecular dynamics that continues interrupted runs and reacts to unstable ones.

A :class:`~aiida.engine.BaseRestartWorkChain` around :class:`~aiida_mlpot.calculations.ml_md.MlMdCalculation`
in the way aiida-quantumespresso's ``PwBaseWorkChain`` wraps ``PwCalculation``: the calculation's inputs are
exposed in the namespace ``md``, its outputs at the top level, and process handlers change ``self.ctx.inputs``
before the next iteration.

- **Interrupted** (calculation exit 420 ``ERROR_INTERRUPTED``: walltime, node failure, OOM kill): the run is
  continued from the last complete frame of its ``trajectory`` (``restart_from``; positions, cell, momenta
  and the step label come from that frame) with ``md.n_steps`` = the interrupted run's
  ``summary['steps_remaining']``, so that the whole run reaches the step it was asked to reach.
- **Unstable** (410 ``ERROR_UNSTABLE_MD``): with ``unstable_policy = 'halve_timestep'`` (default) the run is
  retried ONCE with half the time step from the last trajectory frame before the failing one, covering the
  simulated time that was left; a second instability, or ``unstable_policy = 'give_up'``, ends the work chain
  with ``ERROR_UNSTABLE_MD_GAVE_UP`` (410), the partial trajectory and summary being outputs all the same.
- Any other failure of the calculation ends the work chain with ``ERROR_SUB_PROCESS_FAILED_ML_MD``, with the
  outputs the calculation had (the frames a driver error left, for example).

Outputs: with a single calculation, its outputs. After restarts, the calculations are *segments* of one run:
``trajectory`` is the whole run, joined by the calcfunction
:func:`~aiida_mlpot.calculations.functions.ml_md.join_trajectories` (increasing steps, the restart frames
once), ``summary`` describes the whole run (:func:`~aiida_mlpot.calculations.functions.ml_md.join_summaries`:
outcome of the last segment, steps and simulated time of all, ``segments``), ``final_structure`` and
``flagged`` are those of the last segment.
"""

from __future__ import annotations

import math
import numbers
import pathlib

from aiida import orm
from aiida.common import AttributeDict
from aiida.engine import BaseRestartWorkChain, ProcessHandlerReport, process_handler, while_

from aiida_mlpot.calculations.functions.ml_md import join_summaries, join_trajectories, segment_inputs
from aiida_mlpot.calculations.ml_md import MlMdCalculation
from aiida_mlpot.calculations.ports import check_options
from aiida_mlpot.data.dataset import DatasetData
from aiida_mlpot.engines.parameters import normalise_parameters
from aiida_mlpot.workflows.ports import expose_closed
from aiida_mlpot.workflows.protocols.utils import ProtocolMixin, populate_builder
from aiida_mlpot.workflows.recovery import RecoveryMixin

__all__ = ('UNSTABLE_POLICIES', 'MlMdWorkChain', 'is_segment', 'restart_frame_before')

#: What to do when the MD becomes unstable: retry once with half the time step, or stop.
UNSTABLE_POLICIES = ('halve_timestep', 'give_up')


def validate_unstable_policy(value: orm.Str | None, _) -> str | None:
    """Return an error message if the policy is not one of :data:`UNSTABLE_POLICIES`."""
    if value is not None and value.value not in UNSTABLE_POLICIES:
        return f'`unstable_policy` must be one of {", ".join(UNSTABLE_POLICIES)}, got `{value.value}`'
    return None


def validate_max_iterations(value: orm.Int | None, _) -> str | None:
    """Return an error message unless at least one calculation may run."""
    if value is not None and value.value < 1:
        return f'`max_iterations` must be at least 1, got {value.value}'
    return None


def restart_frame_before(steps: list[int], failing_step: int | None) -> int | None:
    """Return the index of the last frame whose step precedes ``failing_step`` (None: there is none).

    :param steps: the ``step`` of each trajectory frame, in order.
    :param failing_step: the step at which the run failed (None: the last frame is the failing one).
    """
    if failing_step is None:
        failing_step = steps[-1] if steps else 0
    before = [index for index, step in enumerate(steps) if step < failing_step]
    return before[-1] if before else None


def is_segment(node) -> bool:
    """Return whether a finished calculation is a segment of the run: frames and a summary with its steps."""
    if not {'trajectory', 'summary'} <= set(node.outputs):
        return False
    summary = node.outputs.summary
    return summary.get('initial_step') is not None and summary.get('final_step') is not None


class MlMdWorkChain(RecoveryMixin, ProtocolMixin, BaseRestartWorkChain):
    """ML MD with an :class:`MlMdCalculation`: interrupted runs are continued, unstable runs handled by a policy."""

    _process_class = MlMdCalculation
    _protocol_file = pathlib.Path(__file__).parent / 'protocols' / 'ml_md.yaml'

    @classmethod
    def define(cls, spec):
        """Define the process specification."""
        super().define(spec)
        expose_closed(spec, MlMdCalculation, 'md')
        spec.inputs['max_iterations'].validator = validate_max_iterations
        spec.input(
            'unstable_policy',
            valid_type=orm.Str,
            default=lambda: orm.Str('halve_timestep'),
            serializer=orm.to_aiida_type,
            validator=validate_unstable_policy,
            help='On an unstable run (410): `halve_timestep` retries once with half the time step from the last '
            'frame before the failure; `give_up` stops with ERROR_UNSTABLE_MD_GAVE_UP.',
        )
        spec.outline(
            cls.setup,
            cls.validate,
            while_(cls.should_run_process)(
                cls.run_process,
                cls.inspect_process,
            ),
            cls.results,
        )
        spec.expose_outputs(MlMdCalculation)
        spec.outputs['trajectory'].help = (
            'The frames of the whole run; after restarts, the calculations joined (`join_trajectories`): '
            'increasing steps, each restart frame once.'
        )
        spec.outputs['summary'].help = (
            'Summary of the run; after restarts, of all calculations together (`join_summaries`, with '
            '`segments`).'
        )
        spec.exit_code(
            410,
            'ERROR_UNSTABLE_MD_GAVE_UP',
            message='the MD became unstable at step {step} ({reason}) and is not retried: {decision}; the partial '
            'trajectory and its summary are outputs.',
        )
        spec.exit_code(
            450,
            'ERROR_SUB_PROCESS_FAILED_ML_MD',
            message='the ML-MD calculation {process} failed with exit status {status}: {message}',
        )

    @classmethod
    def get_builder_from_protocol(
        cls,
        code: orm.AbstractCode,
        structure: orm.StructureData | DatasetData,
        protocol: str | None = None,
        overrides: dict | None = None,
        options: dict | None = None,
        *,
        potential,
        temperature_K: float,
        pressure_bar: float | None = None,
        training: DatasetData | None = None,
    ):
        """Return a builder for ML MD of ``structure`` with ``potential`` at a state point, with ``protocol``.

        :param code: the python code that runs the ML-MD driver.
        :param structure: the start frame, or a trajectory (DatasetData) whose last frame the run continues
            (``md.restart_from``: momenta and step kept).
        :param protocol: ``fast``, ``balanced`` (default) or ``stringent`` (``get_available_protocols()``).
        :param overrides: inputs keyed like the ports, merged recursively over the protocol's (e.g.
            ``{'md': {'parameters': {'md': {'n_steps': 1000}}}}``); an unknown key is a ``ValueError`` naming
            it; the keys inside ``md.parameters`` are checked by its validator when the builder is launched.
        :param options: merged into ``md.metadata.options``.
        :param potential: the GapPotentialData.
        :param temperature_K: the thermostat's temperature (the state point comes from the caller).
        :param pressure_bar: NPT at this pressure; None: NVT.
        :param training: the potential's training set (reference of the relative threshold).
        """
        for name, value in (('temperature_K', temperature_K), ('pressure_bar', pressure_bar)):
            if value is None and name == 'pressure_bar':
                continue
            if isinstance(value, bool) or not isinstance(value, numbers.Real) or not math.isfinite(value):
                raise ValueError(f'`{name}` must be a finite number, got {value!r}')
        if temperature_K <= 0:
            raise ValueError(f'`temperature_K` must be positive, got {temperature_K!r}')
        check_options(options)
        inputs = cls.get_protocol_inputs(protocol, overrides)
        md = inputs.setdefault('md', {})
        section = md.setdefault('parameters', {}).setdefault('md', {})
        section['temperature_K'] = float(temperature_K)
        if pressure_bar is not None:
            section.update({'ensemble': 'npt', 'pressure_bar': float(pressure_bar)})
        metadata = md.setdefault('metadata', {})
        metadata['options'] = {**metadata.get('options', {}), **(options or {})}
        builder = cls.get_builder()
        populate_builder(builder, inputs)
        builder.md.code = code
        builder.md.potential = potential
        if isinstance(structure, DatasetData):
            builder.md.restart_from = structure
        else:
            builder.md.structure = structure
        if training is not None:
            builder.md.training = training
        return builder

    def setup(self):
        """Collect the inputs of the calculation in ``self.ctx.inputs``."""
        super().setup()
        self.ctx.inputs = AttributeDict(self.exposed_inputs(MlMdCalculation, 'md'))
        self.ctx.timestep_halved = False

    def validate(self):
        """Read the MD settings with their defaults (the ports validated them) and report what is asked.

        The start step is the ``step`` of the ``restart_from`` frame (0 from a structure); the run is asked to
        reach ``start + md.n_steps``, which is what the continuations of an interrupted run aim at.
        """
        md = normalise_parameters(self._parameters())['md']
        start, source = 0, self.ctx.inputs.get('restart_from')
        if isinstance(source, DatasetData):
            index = self.ctx.inputs.restart_frame.value if 'restart_frame' in self.ctx.inputs else -1
            start = int(source.to_ase()[index].info.get('step', 0))
        self.ctx.final_step = start + md['n_steps']
        self.report(
            f'ML MD from step {start} to step {self.ctx.final_step} with a {md["timestep_fs"]} fs time step '
            f'({md["engine"]} engine); unstable policy: {self.inputs.unstable_policy.value}'
        )

    def _parameters(self) -> dict:
        """Return the ``parameters`` of the next calculation as a plain dictionary (a copy)."""
        parameters = self.ctx.inputs.parameters
        return parameters.get_dict() if isinstance(parameters, orm.Dict) else dict(parameters)

    def _continue_from(self, node, n_steps: int, frame: int | None = None, timestep_fs: float | None = None):
        """Set the inputs of the next calculation: continue ``node``'s run from a frame of its ``trajectory``.

        The frame's positions, cell, momenta and step label are kept (``md.velocities`` ``maxwell`` becomes
        ``auto`` so that the momenta are used); ``md.seed`` is advanced by one, so the thermostat's random
        stream does not repeat the one of the run it continues; the reference score of a relative threshold
        that the calculation computed is passed on, so the threshold stays the same.
        """
        inputs = self.ctx.inputs
        inputs.pop('structure', None)
        inputs.restart_from = node.outputs.trajectory
        if frame is None:
            inputs.pop('restart_frame', None)
        else:
            inputs.restart_frame = orm.Int(frame)
        parameters = self._parameters()
        effective = normalise_parameters(parameters)
        md = parameters.setdefault('md', {})
        md['n_steps'] = int(n_steps)
        md['seed'] = effective['md']['seed'] + 1
        if effective['md']['velocities'] == 'maxwell':
            md['velocities'] = 'auto'
        if timestep_fs is not None:
            md['timestep_fs'] = timestep_fs
        inputs.parameters = parameters
        reference_given = effective['extrapolation'].get('reference_score') is not None
        if 'reference_score' in node.outputs and 'reference_score' not in inputs and not reference_given:
            inputs.reference_score = node.outputs.reference_score

    def _finish(self, exit_code) -> ProcessHandlerReport:
        """Attach the outputs of the run so far and end the work chain with ``exit_code``."""
        self.ctx.is_finished = True
        self.results()
        return ProcessHandlerReport(True, exit_code)

    @process_handler(priority=600, exit_codes=[MlMdCalculation.exit_codes.ERROR_INTERRUPTED])
    def handle_interrupted(self, node):
        """Continue an interrupted run from the last complete frame of its trajectory with the steps left."""
        if not {'trajectory', 'summary'} <= set(node.outputs):
            return None  # nothing to continue from: `handle_failure` ends the work chain
        summary = node.outputs.summary.get_dict()
        remaining = summary.get('steps_remaining')
        if remaining is None:
            requested = normalise_parameters(node.inputs.parameters.get_dict())['md']['n_steps']
            remaining = requested - int(summary['steps_done'])
        step = summary.get('final_step')
        if remaining <= 0:
            self.report(
                f'{node.process_label}<{node.pk}> was interrupted after writing its last frame (step {step}): '
                'the run is complete'
            )
            self.ctx.is_finished = True
            return ProcessHandlerReport(True)
        self._continue_from(node, remaining)
        self.report(
            f'{node.process_label}<{node.pk}> was interrupted after {summary.get("steps_done")} of '
            f'{summary.get("steps_requested")} steps: continuing from its last complete frame (step {step}) '
            f'with the {remaining} steps left'
        )
        return ProcessHandlerReport(True)

    @process_handler(priority=500, exit_codes=[MlMdCalculation.exit_codes.ERROR_UNSTABLE_MD])
    def handle_unstable(self, node):
        """Retry an unstable run once with half the time step, or give up (``unstable_policy``).

        The retry starts from the last trajectory frame *before* the failing one: the last state the run
        dumped before a stability check failed, with consistent positions, cell and momenta (the failing frame
        itself is the broken state, and restarting from the start would recompute what was fine). It covers
        the simulated time that was left from that frame: ``md.n_steps`` = 2 × (the step the calculation
        aimed at − the frame's step), so the step labels after the retry count half steps. The frames of the
        unstable run after the restart frame are not part of the joined trajectory. If the start frame itself
        failed, no shorter time step can help and the work chain gives up.
        """
        if not {'trajectory', 'summary'} <= set(node.outputs):
            return None  # nothing to retry from: `handle_failure` ends the work chain
        summary = node.outputs.summary.get_dict()
        step, reason = summary.get('triggered_step'), summary.get('reason', '')
        exit_code = self.exit_codes.ERROR_UNSTABLE_MD_GAVE_UP
        timestep = normalise_parameters(node.inputs.parameters.get_dict())['md']['timestep_fs']
        if self.inputs.unstable_policy.value == 'give_up':
            decision = 'the unstable policy is `give_up`'
        elif self.ctx.timestep_halved:
            decision = f'it was already retried with the time step halved (now {timestep} fs)'
        else:
            steps = [int(frame.info.get('step', 0)) for frame in node.outputs.trajectory.to_ase()]
            index = restart_frame_before(steps, step)
            if index is None:
                decision = 'the start frame itself failed, a shorter time step cannot help'
            else:
                requested = summary.get('steps_requested')
                if requested is None:
                    requested = normalise_parameters(node.inputs.parameters.get_dict())['md']['n_steps']
                end = int(summary.get('initial_step', steps[0])) + int(requested)
                n_steps = 2 * (end - steps[index])
                self._continue_from(node, n_steps, frame=index, timestep_fs=timestep / 2)
                self.ctx.timestep_halved = True
                self.report(
                    f'{node.process_label}<{node.pk}> became unstable at step {step} ({reason}): retrying with the '
                    f'time step halved to {timestep / 2} fs from the frame of step {steps[index]} '
                    f'(trajectory frame {index}), {n_steps} steps to cover the simulated time left'
                )
                return ProcessHandlerReport(True)
        self.report(f'{node.process_label}<{node.pk}> became unstable at step {step} ({reason}): {decision}')
        return self._finish(exit_code.format(step=step, reason=reason, decision=decision))

    @process_handler(priority=100)
    def handle_failure(self, node):
        """End the work chain on any failure no other handler dealt with, keeping the outputs it had."""
        if not node.is_failed:
            return None
        self.report(f'{node.process_label}<{node.pk}> failed with exit status {node.exit_status}: aborting')
        return self._finish(
            self.exit_codes.ERROR_SUB_PROCESS_FAILED_ML_MD.format(
                process=f'{node.process_label}<{node.pk}>',
                status=node.exit_status,
                message=node.exit_message or '',
            )
        )

    def results(self):
        """Attach the outputs: those of the last calculation, or of the whole run when there were restarts.

        The calculations that left a ``trajectory`` and a ``summary`` with their steps are the segments of the
        run (each one started from a frame of the one before); with more than one, ``trajectory`` and
        ``summary`` are joined by calcfunctions. A last calculation that is not a segment (a driver error
        reports no steps) contributes nothing: the outputs are those of the run up to it. ``reference_score``,
        if a calculation computed it, is attached too.
        """
        children = self.ctx.children
        segments = [child for child in children if is_segment(child)]
        last = segments[-1] if segments else children[-1]
        outputs = dict(self.exposed_outputs(last, MlMdCalculation))
        if len(segments) > 1:
            outputs['trajectory'] = join_trajectories(
                **segment_inputs('trajectory', [child.outputs.trajectory for child in segments]),
                metadata={'call_link_label': 'join_trajectories'},
            )
            outputs['summary'] = join_summaries(
                **segment_inputs('summary', [child.outputs.summary for child in segments]),
                **segment_inputs('parameters', [child.inputs.parameters for child in segments]),
                metadata={'call_link_label': 'join_summaries'},
            )
        if 'reference_score' not in outputs:
            computed = [child for child in children if 'reference_score' in child.outputs]
            if computed:
                outputs['reference_score'] = computed[-1].outputs.reference_score
        for name, node in outputs.items():
            if name in self.spec().outputs:
                self.out(name, node)
        summary = outputs['summary'].get_dict() if 'summary' in outputs else {}
        self.report(
            f'{len(children)} calculation(s), {len(segments)} segment(s): outcome {summary.get("outcome")}, '
            f'final step {summary.get("final_step")}'
        )
