"""`ValidationWorkChain`: physical validation of a GAP against its reference by MD at the caller's state points.

Per state point ``{temperature_K}`` (NVT at the volume of ``structure``) or ``{temperature_K, pressure_bar}``
(NVT at that volume and NPT at that pressure), the potential's MD runs through
:class:`~aiida_mlpot.workflows.ml_md.MlMdWorkChain` and the reference's either through
:class:`~aiida_mlpot.workflows.sampling.SamplingWorkChain` (a classical teacher in LAMMPS, the same state
points, all in one sampling run) or is supplied as one ``DatasetData`` per run (``reference_trajectories``,
keyed ``T1400_V1`` for the NVT run at 1400 K, ``T1400_P1`` for the NPT run at 1 bar). Then, by calcfunctions of
:mod:`aiida_mlpot.calculations.functions.validation` (thin wrappers of :mod:`aiida_mlpot.analysis.validation`):

- NVT: partial RDFs overlaid (PNG, ``rdf_plots.<key>``) with |Δg| per pair and short-range artefacts, and the
  diffusion coefficients per species, against the reference;
- NPT: the density (percent) and its drift;
- stability: a potential whose MD became unstable fails the state point (no comparison is made on the frames
  it left);
- rerun (optional, ``rerun`` inputs: a ``LabellingWorkChain`` oracle): a sample of the potential's MD frames
  relabelled by the reference: energy, force and virial errors and the pressure bias on the configurations the
  potential itself visits (figures only: no tolerance is defined for them).

Outputs: ``validation`` (Dict of every figure and verdict), ``verdict`` (Str: pass, fail or inconclusive, see
docs/topics/validation.md), ``rdf_plots`` (PNG per NVT run), ``rerun_labelled``.
"""

from __future__ import annotations

import pathlib
from collections.abc import Mapping, Sequence

from aiida import orm
from aiida.common import AttributeDict
from aiida.engine import ToContext, WorkChain, if_

from aiida_mlpot.analysis.validation import check_tolerances
from aiida_mlpot.calculations.functions.validation import (
    compare_crystal,
    compare_md,
    compare_npt_density,
    compare_rerun,
    join_validation,
    sample_rerun_frames,
)
from aiida_mlpot.calculations.ports import check_options, define_potential_ports
from aiida_mlpot.calculations.solids import SolidPropertiesCalculation
from aiida_mlpot.data.dataset import DatasetData
from aiida_mlpot.data.potential import GapPotentialData
from aiida_mlpot.inputs.sampling import state_point_key
from aiida_mlpot.workflows.labelling import LabellingWorkChain
from aiida_mlpot.workflows.ml_md import MlMdWorkChain
from aiida_mlpot.workflows.protocols.utils import ProtocolMixin, populate_builder, recursive_merge
from aiida_mlpot.workflows.recovery import RecoveryMixin
from aiida_mlpot.workflows.sampling import SamplingWorkChain
from aiida_mlpot.workflows.state_points import validate_state_points

__all__ = ('COMPARISON_KEYS', 'CRYSTAL_EXCLUDED', 'ValidationWorkChain', 'validation_runs')

#: Keys of the ``parameters`` input (numbers; ``tolerances`` overrides of analysis.validation.TOLERANCES).
COMPARISON_KEYS = ('discard', 'n_bins', 'r_max', 'fit_start', 'fit_end', 'tolerances', 'rerun_frames')
#: Inputs of SolidPropertiesCalculation that the work chain sets itself (the potential, or the teacher's).
CRYSTAL_EXCLUDED = ('potential', 'classical', 'potential_files', 'lammps_code')


def validation_runs(state_points: Sequence[Mapping]) -> dict[str, dict]:
    """Return the MD runs of the state points, ``{key: sampling state point}``: NVT of each, NPT where a pressure is.

    Keys are those of :func:`~aiida_mlpot.inputs.sampling.state_point_key`: ``T1400_V1`` (NVT at the
    structure's volume), ``T1400_P1`` (NPT at 1 bar).
    """
    runs = {}
    for point in state_points:
        nvt = {'temperature_K': float(point['temperature_K']), 'volume_scale': 1.0}
        runs[state_point_key(nvt)] = nvt
        if point.get('pressure_bar') is not None:
            npt = {
                'temperature_K': float(point['temperature_K']),
                'pressure_bar': float(point['pressure_bar']),
            }
            runs[state_point_key(npt)] = npt
    return runs


def validate_parameters(node, _) -> str | None:
    """Unknown keys of ``parameters`` are errors naming the key; the tolerances must be known and numbers."""
    values = node.get_dict()
    unknown = sorted(set(values) - set(COMPARISON_KEYS))
    if unknown:
        return f'`parameters.{unknown[0]}`: unknown key; known: {", ".join(COMPARISON_KEYS)}'
    message = check_tolerances(values.get('tolerances') or {})
    if message:
        return f'`parameters.tolerances`: {message}'
    discard = values.get('discard', 0.2)
    if isinstance(discard, bool) or not isinstance(discard, int | float) or not 0.0 <= discard < 1.0:
        return f'`parameters.discard`: must be in [0, 1), got {discard!r}'
    frames = values.get('rerun_frames', 8)
    if isinstance(frames, bool) or not isinstance(frames, int) or frames < 1:
        return f'`parameters.rerun_frames`: must be a positive integer, got {frames!r}'
    return None


def validate_inputs(value, _) -> str | None:
    """The liquid part (``state_points``) needs ``structure``, ``ml_md`` and exactly one reference; the crystal part
    (``crystal``) exactly one of ``crystal_reference.properties`` and ``crystal_reference.classical``."""
    liquid, crystal = 'state_points' in value, bool(value.get('crystal', {}).get('structure'))
    if not liquid and not crystal:
        return 'give `state_points` (the liquid part), `crystal` (the crystal part), or both'
    if liquid:
        missing = [name for name in ('structure', 'parameters') if name not in value]
        missing += [] if value.get('ml_md', {}).get('md', {}).get('code') else ['ml_md.md.code']
        if missing:
            return f'`{missing[0]}`: required with `state_points`'
        has_md = bool(value.get('reference_md', {}).get('md_parameters'))
        trajectories = value.get('reference_trajectories') or {}
        if has_md == bool(trajectories):
            return (
                'give exactly one reference: `reference_md` (a classical teacher) or `reference_trajectories`'
            )
        if trajectories:
            missing = sorted(set(validation_runs(value['state_points'].get_list())) - set(trajectories))
            if missing:
                return f'`reference_trajectories.{missing[0]}`: missing (one trajectory per run is needed)'
    if crystal:
        reference = value.get('crystal_reference') or {}
        if ('properties' in reference) == ('classical' in reference):
            return 'the crystal part needs exactly one of `crystal_reference.properties` and `.classical`'
        if 'classical' in reference and 'lammps_code' not in reference:
            return '`crystal_reference.classical` needs `crystal_reference.lammps_code`'
    return None


def _expose_optional(spec, process, namespace: str, exclude: Sequence[str], help: str) -> None:
    """Expose the inputs of ``process`` in an optional ``namespace`` without defaults (only what is given)."""
    spec.expose_inputs(
        process,
        namespace=namespace,
        exclude=tuple(exclude),
        namespace_options={'required': False, 'populate_defaults': False, 'help': help},
    )
    spec.inputs[namespace].dynamic = False


#: The single input ports: name -> (valid type, help, keyword arguments); all take plain values too.
PORTS = {
    'potential': (GapPotentialData, 'The potential to validate.', {'serializer': None, 'required': True}),
    'structure': (orm.StructureData, 'The liquid part: the start of every MD run.', {'serializer': None}),
    'state_points': (
        orm.List,
        'The liquid part: `{temperature_K}` (NVT at the volume of `structure`) or `{temperature_K, '
        'pressure_bar}` (NVT and NPT).',
        {'validator': validate_state_points},
    ),
    'parameters': (
        orm.Dict,
        f'Comparison settings: {", ".join(COMPARISON_KEYS)} (the tolerances apply to the crystal too).',
        {'validator': validate_parameters},
    ),
    'reference_timestep_fs': (
        orm.Float,
        'MD time step of `reference_trajectories` whose frames have a `step` but no `time_fs`.',
        {},
    ),
}


#: The crystal reference besides the teacher's potential: user values, or the LAMMPS executable of the teacher.
CRYSTAL_REFERENCE_PORTS = {
    'properties': (
        orm.Dict,
        'Values the user supplies (keys of the `properties` of SolidPropertiesCalculation).',
    ),
    'lammps_code': (
        orm.InstalledCode,
        'The LAMMPS executable of `classical` (on the computer of `crystal.code`).',
    ),
}
#: Outputs besides `rdf_plots`: (valid type, required, help).
OUTPUTS = {
    'validation': (orm.Dict, True, 'Every figure and verdict: per state point and run, rerun, crystal.'),
    'verdict': (orm.Str, True, 'The overall verdict: pass, fail or inconclusive.'),
    'rerun_labelled': (DatasetData, False, 'The relabelled ML-MD frames.'),
    'crystal_plot': (
        orm.SinglefileData,
        False,
        'E(V) and phonon bands of the potential over the reference (PNG).',
    ),
}
#: Exit codes: label -> (status, what failed); the message is '<what> failed: {message}'.
EXIT_CODES = dict(
    ERROR_SUB_PROCESS_FAILED_REFERENCE=(401, 'the reference MD'),
    ERROR_SUB_PROCESS_FAILED_ML_MD=(402, 'the ML MD of {key}'),
    ERROR_SUB_PROCESS_FAILED_RERUN=(403, 'the rerun labelling'),
    ERROR_COMPARISON_FAILED=(404, 'the comparison {label}'),
    ERROR_SUB_PROCESS_FAILED_CRYSTAL=(405, 'the crystal properties of the {which}'),
)


class ValidationWorkChain(RecoveryMixin, ProtocolMixin, WorkChain):
    """Physical validation of a GAP against a reference: MD at state points (liquid) and crystal properties."""

    _protocol_file = pathlib.Path(__file__).parent / 'protocols' / 'validation.yaml'

    @classmethod
    def define(cls, spec):
        """Define the process specification."""
        super().define(spec)
        for name, (valid_type, help_text, options) in PORTS.items():
            kwargs = {'serializer': orm.to_aiida_type, 'required': False, **options}
            spec.input(name, valid_type=valid_type, help=help_text, **kwargs)
        _expose_optional(
            spec, MlMdWorkChain, 'ml_md', ('md.structure', 'md.restart_from', 'md.restart_frame', 'md.potential'),
            "The liquid part: inputs of the potential's MD runs (python code, MD settings).",
        )  # fmt: skip
        _expose_optional(
            spec, SamplingWorkChain, 'reference_md', ('structure', 'state_points'),
            "The classical teacher's MD at the same state points (LAMMPS code, potential, settings).",
        )  # fmt: skip
        spec.input_namespace(
            'reference_trajectories',
            valid_type=DatasetData,
            dynamic=True,
            required=False,
            help='Instead of `reference_md`: the reference frames of each run, keyed like `T1400_V1`, `T1400_P1`.',
        )
        _expose_optional(
            spec, LabellingWorkChain, 'rerun', ('structures', 'dataset'),
            "The oracle that relabels a sample of the potential's MD frames (the rerun check).",
        )  # fmt: skip
        _expose_optional(
            spec, SolidPropertiesCalculation, 'crystal', CRYSTAL_EXCLUDED,
            'The crystal part: `structure` (cubic cell), `code` (python), `parameters` (engines.solids.SETTINGS).',
        )  # fmt: skip
        spec.inputs[
            'crystal'
        ].validator = None  # the calculation's own validator runs on each of the two launches
        spec.input_namespace('crystal_reference', required=False, help='The crystal reference: one of these.')
        define_potential_ports(
            spec, 'crystal_reference', 'classical', 'A LAMMPS teacher (computed like the GAP).'
        )
        spec.inputs['crystal_reference']['classical'].required = False
        for name, (valid_type, help_text) in CRYSTAL_REFERENCE_PORTS.items():
            spec.input(f'crystal_reference.{name}', valid_type=valid_type, required=False, help=help_text)
        spec.inputs.validator = validate_inputs

        spec.outline(
            cls.setup,
            cls.run_md,
            cls.inspect_md,
            if_(cls.should_rerun)(
                cls.run_rerun,
                cls.inspect_rerun,
            ),
            cls.compare,
            cls.results,
        )

        spec.output_namespace('rdf_plots', valid_type=orm.SinglefileData, dynamic=True, help='RDF overlays.')
        for name, (valid_type, required, help_text) in OUTPUTS.items():
            spec.output(name, valid_type=valid_type, required=required, help=help_text)
        for label, (status, subject) in EXIT_CODES.items():
            spec.exit_code(status, label, message=f'{subject} failed: {{message}}')

    @classmethod
    def get_builder_from_protocol(
        cls,
        codes: Mapping[str, orm.AbstractCode],
        structure: orm.StructureData | None = None,
        protocol: str | None = None,
        overrides: dict | None = None,
        options: dict | None = None,
        *,
        potential: GapPotentialData,
        state_points: Sequence[Mapping] | None = None,
        teacher: Mapping | orm.Dict | None = None,
        teacher_files: Mapping | None = None,
        reference_trajectories: Mapping[str, DatasetData] | None = None,
        rerun: bool = True,
        crystal: orm.StructureData | None = None,
        crystal_reference: Mapping | orm.Dict | None = None,
    ):
        """Return a builder validating ``potential`` (``fast``, ``balanced``, ``stringent``).

        The liquid part runs with ``state_points`` (MD from ``structure``), the crystal part with ``crystal``;
        give one or both.

        :param codes: ``python`` (ML MD, crystal properties) and ``lammps`` (the teacher's MD, its crystal
            properties, the rerun labelling).
        :param overrides: inputs keyed like the ports, merged over the protocol's; an unknown key is a
            ``ValueError`` naming it.
        :param teacher: the classical potential dictionary of the reference (its MD, its crystal properties and
            the rerun labels); ``teacher_files`` the ``SinglefileData`` it names, keyed like ``Au_u3_eam``.
        :param reference_trajectories: instead of the teacher's MD, the reference frames of each run.
        :param rerun: relabel a sample of the ML-MD frames with the teacher (needs ``teacher``).
        :param crystal: the crystal (cubic cell for fcc and rock salt) whose properties are compared.
        :param crystal_reference: the reference's crystal properties supplied as values (e.g. DFT or experiment,
            keys of ``SolidPropertiesCalculation``'s ``properties``) instead of computing them with ``teacher``.
        """
        liquid = state_points is not None
        if not liquid and crystal is None:
            raise ValueError('give `state_points` (the liquid part), `crystal` (the crystal part), or both')
        if liquid and (structure is None or (teacher is None and reference_trajectories is None)):
            raise ValueError('the liquid part needs `structure` and `teacher` or `reference_trajectories`')
        if liquid and rerun and teacher is None:
            raise ValueError('the rerun check needs a `teacher`')
        if crystal is not None and teacher is None and crystal_reference is None:
            raise ValueError('the crystal part needs `teacher` or `crystal_reference`')
        check_options(options)
        inputs = cls.get_protocol_inputs(protocol, overrides)
        job = {'metadata': {'options': dict(options or {})}}
        teacher = teacher if teacher is None or isinstance(teacher, orm.Dict) else orm.Dict(teacher)
        files = dict(teacher_files or {})
        builder = cls.get_builder()
        builder.potential = potential
        if 'parameters' in inputs:
            populate_builder(builder, {'parameters': inputs['parameters']})
        if liquid:
            builder.structure = structure
            builder.state_points = orm.List([dict(point) for point in state_points])
            populate_builder(
                builder.ml_md, recursive_merge(inputs['ml_md'], {'md': job}), cls.spec().inputs['ml_md']
            )
            builder.ml_md.md.code = codes['python']
            if reference_trajectories is not None:
                builder.reference_trajectories = dict(reference_trajectories)
            else:
                reference = recursive_merge(inputs.get('reference_md', {}), {'md': job})
                populate_builder(builder.reference_md, reference, cls.spec().inputs['reference_md'])
                builder.reference_md.md.code = codes['lammps']
                builder.reference_md.potential = teacher
                if files:
                    builder.reference_md.potential_files = files
            if rerun:
                builder.rerun.classical.code = codes['lammps']
                builder.rerun.classical.potential = teacher
                if files:
                    builder.rerun.classical.potential_files = files
                if options:
                    builder.rerun.options = orm.Dict(dict(options))
        if crystal is not None:
            populate_builder(
                builder.crystal, recursive_merge(inputs['crystal'], job), cls.spec().inputs['crystal']
            )
            builder.crystal.code = codes['python']
            builder.crystal.structure = crystal
            if crystal_reference is not None:
                builder.crystal_reference.properties = (
                    crystal_reference
                    if isinstance(crystal_reference, orm.Dict)
                    else orm.Dict(crystal_reference)
                )
            else:
                builder.crystal_reference.classical = teacher
                builder.crystal_reference.lammps_code = codes['lammps']
                if files:
                    builder.crystal_reference.potential_files = files
        return builder

    def setup(self):
        """The runs: NVT per state point, NPT where a pressure is given (none without ``state_points``)."""
        points = self.inputs.state_points.get_list() if 'state_points' in self.inputs else []
        self.ctx.runs = validation_runs(points)
        self.ctx.parameters = self.inputs.parameters.get_dict() if 'parameters' in self.inputs else {}
        self.ctx.comparisons = {}

    def run_md(self):
        """Submit the potential's MD runs, the teacher's MD at the same state points and the crystal calculations."""
        base = self.exposed_inputs(MlMdWorkChain, 'ml_md') if self.ctx.runs else {}
        processes = {}
        for key, point in self.ctx.runs.items():
            inputs = AttributeDict(base)
            inputs.md = AttributeDict(base['md'])
            parameters = inputs.md.parameters.get_dict()
            md = parameters.setdefault('md', {})
            md['temperature_K'] = point['temperature_K']
            if 'pressure_bar' in point:
                md.update({'ensemble': 'npt', 'pressure_bar': point['pressure_bar']})
            else:
                md['ensemble'] = 'nvt'
            inputs.md.parameters = orm.Dict(parameters)
            inputs.md.potential = self.inputs.potential
            inputs.md.structure = self.inputs.structure
            inputs.metadata = {'call_link_label': f'ml_md_{key}'}
            processes[f'ml_md_{key}'] = self.submit(MlMdWorkChain, **inputs)
        if self.ctx.runs and not self.inputs.get('reference_trajectories'):
            inputs = AttributeDict(self.exposed_inputs(SamplingWorkChain, 'reference_md'))
            inputs.structure = self.inputs.structure
            inputs.state_points = orm.List(list(self.ctx.runs.values()))
            inputs.metadata = {'call_link_label': 'reference_md'}
            processes['reference_md'] = self.submit(SamplingWorkChain, **inputs)
        if self.inputs.get('crystal'):
            crystal = self.exposed_inputs(SolidPropertiesCalculation, 'crystal')
            reference = self.inputs.get('crystal_reference', {})
            sides = {'crystal_ml': {'potential': self.inputs.potential}}
            if 'classical' in reference:
                sides['crystal_reference'] = {
                    'classical': reference['classical'],
                    'lammps_code': reference['lammps_code'],
                    'potential_files': dict(reference.get('potential_files', {})),
                }
            for label, extra in sides.items():
                metadata = {**crystal.get('metadata', {}), 'call_link_label': label}
                processes[label] = self.submit(
                    SolidPropertiesCalculation, **{**crystal, **extra, 'metadata': metadata}
                )
        self.report(f'submitted {", ".join(sorted(processes))}')
        return ToContext(**processes)

    def inspect_md(self):
        """Collect the trajectories and the crystal properties; an unstable ML MD is a failed check, any other
        failure ends the work chain."""
        for label, which in (('crystal_ml', 'potential'), ('crystal_reference', 'reference')):
            node = self.ctx.get(label)
            if node is not None and not node.is_finished_ok:
                return self.exit_codes.ERROR_SUB_PROCESS_FAILED_CRYSTAL.format(
                    which=which, message=_failure(node)
                )
        if not self.ctx.runs:
            self.ctx.trajectories = {}
            return None
        if 'reference_md' in self.ctx:
            node = self.ctx.reference_md
            failed = (
                node.outputs.failed_state_points.get_dict() if 'failed_state_points' in node.outputs else {}
            )
            if not node.is_finished_ok or failed:
                message = '; '.join(f'{k}: {v}' for k, v in failed.items()) or _failure(node)
                return self.exit_codes.ERROR_SUB_PROCESS_FAILED_REFERENCE.format(message=message)
            self.ctx.reference = {key: node.outputs.pool for key in self.ctx.runs}
            self.ctx.reference_timestep = node.inputs.md_parameters.get_dict()['timestep_fs']
        else:
            self.ctx.reference = dict(self.inputs.reference_trajectories)
            timestep = self.inputs.get('reference_timestep_fs')
            self.ctx.reference_timestep = timestep.value if timestep is not None else None
        self.ctx.trajectories = {}
        unstable = MlMdWorkChain.exit_codes.ERROR_UNSTABLE_MD_GAVE_UP.status
        for key in self.ctx.runs:
            node = self.ctx[f'ml_md_{key}']
            summary = node.outputs.summary.get_dict() if 'summary' in node.outputs else {}
            if node.is_finished_ok:
                self.ctx.trajectories[key] = node.outputs.trajectory
                stability = {'verdict': 'pass', 'outcome': summary.get('outcome')}
            elif node.exit_status == unstable:
                stability = {
                    'verdict': 'fail',
                    'outcome': summary.get('outcome'),
                    'steps_done': summary.get('steps_done'),
                    'reason': node.exit_message,
                }
                self.report(f'{key}: the ML MD became unstable: {node.exit_message}')
            else:
                return self.exit_codes.ERROR_SUB_PROCESS_FAILED_ML_MD.format(key=key, message=_failure(node))
            stability['steps_done'] = summary.get('steps_done')
            self.ctx.comparisons[f'{key}__stability'] = orm.Dict(stability)
        return None

    def should_rerun(self) -> bool:
        """Whether the rerun check runs: an oracle is given and some ML MD left frames to relabel."""
        return 'rerun' in self.inputs and bool(self.inputs.rerun) and bool(self.ctx.trajectories)

    def run_rerun(self):
        """Sample the ML-MD frames (calcfunction) and relabel them with the oracle (``LabellingWorkChain``)."""
        settings = {
            'n_frames': int(self.ctx.parameters.get('rerun_frames', 8)),
            'discard': float(self.ctx.parameters.get('discard', 0.2)),
        }
        sample, node = sample_rerun_frames.run_get_node(
            orm.Dict(settings), metadata={'call_link_label': 'sample_rerun_frames'}, **self.ctx.trajectories
        )
        if not node.is_finished_ok:
            return self.exit_codes.ERROR_COMPARISON_FAILED.format(
                label='sample_rerun_frames', message=_failure(node)
            )
        self.ctx.rerun_sample = sample
        inputs = AttributeDict(self.exposed_inputs(LabellingWorkChain, 'rerun'))
        inputs.dataset = self.ctx.rerun_sample
        inputs.metadata = {'call_link_label': 'rerun_labelling'}
        return ToContext(rerun=self.submit(LabellingWorkChain, **inputs))

    def inspect_rerun(self):
        """Compare the potential's labels with the oracle's on the sampled frames (calcfunction)."""
        node = self.ctx.rerun
        if not node.is_finished_ok or 'labelled' not in node.outputs:
            return self.exit_codes.ERROR_SUB_PROCESS_FAILED_RERUN.format(message=_failure(node))
        self.out('rerun_labelled', node.outputs.labelled)
        _, result = compare_rerun.run_get_node(
            self.ctx.rerun_sample, node.outputs.labelled, metadata={'call_link_label': 'compare_rerun'}
        )
        if not result.is_finished_ok:
            return self.exit_codes.ERROR_COMPARISON_FAILED.format(
                label='compare_rerun', message=_failure(result)
            )
        self.ctx.comparisons['rerun__errors'] = result.outputs.result
        return None

    def _comparison_parameters(self, key: str) -> dict:
        values = {
            name: self.ctx.parameters[name]
            for name in ('discard', 'n_bins', 'r_max', 'fit_start', 'fit_end', 'tolerances')
            if name in self.ctx.parameters
        }
        values['timestep_fs'] = None
        values['reference_timestep_fs'] = self.ctx.reference_timestep
        values['reference_config_type'] = key if 'reference_md' in self.ctx else None
        values['title'] = f'{key}: {self.inputs.potential.label or "ML"} vs reference'
        return values

    def compare(self):
        """Compare each run that finished with the reference's: RDFs and diffusion (NVT), density (NPT)."""
        for key, trajectory in self.ctx.trajectories.items():
            parameters = orm.Dict(self._comparison_parameters(key))
            label = f'compare_{key}'
            if 'pressure_bar' in self.ctx.runs[key]:
                _, node = compare_npt_density.run_get_node(
                    trajectory, parameters, self.ctx.reference[key], metadata={'call_link_label': label}
                )
                name, check = 'result', 'density'
            else:
                _, node = compare_md.run_get_node(
                    trajectory, self.ctx.reference[key], parameters, metadata={'call_link_label': label}
                )
                name, check = 'comparison', 'md'
            if not node.is_finished_ok:
                return self.exit_codes.ERROR_COMPARISON_FAILED.format(label=label, message=_failure(node))
            if 'rdf_plot' in node.outputs:
                self.out(f'rdf_plots.{key}', node.outputs.rdf_plot)
            self.ctx.comparisons[f'{key}__{check}'] = node.outputs[name]
        return self.compare_crystal_properties()

    def compare_crystal_properties(self):
        """Compare the potential's crystal properties with the reference's (calcfunction), if asked."""
        if 'crystal_ml' not in self.ctx:
            return None
        reference = self.inputs.crystal_reference
        if 'properties' in reference:
            reference_properties = reference['properties']
        else:
            reference_properties = self.ctx.crystal_reference.outputs.properties
        settings = {'title': f'crystal: {self.inputs.potential.label or "ML"} vs reference'}
        if self.ctx.parameters.get('tolerances'):
            settings['tolerances'] = self.ctx.parameters['tolerances']
        outputs, node = compare_crystal.run_get_node(
            self.ctx.crystal_ml.outputs.properties,
            reference_properties,
            orm.Dict(settings),
            metadata={'call_link_label': 'compare_crystal'},
        )
        if not node.is_finished_ok:
            return self.exit_codes.ERROR_COMPARISON_FAILED.format(
                label='compare_crystal', message=_failure(node)
            )
        if 'plot' in outputs:
            self.out('crystal_plot', outputs['plot'])
        self.ctx.comparisons['crystal__solid'] = outputs['comparison']
        return None

    def results(self):
        """Join every comparison into the ``validation`` Dict and the overall ``verdict``."""
        outputs = join_validation(**self.ctx.comparisons, metadata={'call_link_label': 'join_validation'})
        self.out('validation', outputs['validation'])
        self.out('verdict', outputs['verdict'])
        self.report(f'validation verdict: {outputs["verdict"].value}')


def _failure(node) -> str:
    return f'{node.process_label}<{node.pk}> exit status {node.exit_status}: {node.exit_message}'
