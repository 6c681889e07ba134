"""`SamplingWorkChain`: classical MD at the caller's state points; the frames become one candidate pool."""

from __future__ import annotations

import pathlib
from collections.abc import Mapping, Sequence

from aiida import orm
from aiida.common import AttributeDict
from aiida.engine import ToContext, WorkChain

from aiida_mlpot.calculations.functions.sampling import collect_failed_state_points, merge_state_point_pools
from aiida_mlpot.calculations.lammps import (
    LammpsMdCalculation,
    check_md_parameter_types,
    check_md_parameters,
    check_total_charge,
    validate_atoms,
    validate_potential_inputs,
)
from aiida_mlpot.calculations.ports import check_options, define_potential_ports, missing_code_message
from aiida_mlpot.data.dataset import DatasetData
from aiida_mlpot.inputs.sampling import (
    state_point_grid,
    state_point_key,
    state_point_parameters,
    validate_md_parameters_shared,
    validate_state_point,
)
from aiida_mlpot.workflows.ports import expose_closed
from aiida_mlpot.workflows.protocols.utils import ProtocolMixin, populate_builder, recursive_merge
from aiida_mlpot.workflows.recovery import RecoveryMixin

__all__ = ('SamplingWorkChain', 'state_point_grid', 'state_point_key')


class SamplingWorkChain(RecoveryMixin, ProtocolMixin, WorkChain):
    """Classical MD (LAMMPS) at the caller's state points, all in parallel; the frames are merged into one pool.

    Each state point is ``{'temperature_K', 'pressure_bar'}`` (NPT) or ``{'temperature_K', 'volume_scale'}``
    (NVT: the cell volume is multiplied by the factor before the run, covering densities around the starting
    one); :func:`state_point_grid` builds a temperature × pressure or temperature × volume grid. Each state
    point is one :class:`~aiida_mlpot.calculations.lammps.LammpsMdCalculation`, all with the shared
    ``md_parameters``. State points that fail (crash, unstable MD) are left out of the pool and listed in the
    ``failed_state_points`` output; the work chain fails only when none succeeded.
    """

    _protocol_file = pathlib.Path(__file__).parent / 'protocols' / 'sampling.yaml'

    @classmethod
    def define(cls, spec):
        super().define(spec)
        expose_closed(
            spec,
            LammpsMdCalculation,
            'md',
            exclude=('structure', 'parameters', 'potential', 'potential_files'),
            namespace_options={
                'help': 'Inputs of the LAMMPS MD calculations: `code`, `metadata.options`, ...'
            },
        )
        spec.input('structure', valid_type=orm.StructureData, help='The starting configuration.')
        define_potential_ports(spec)
        spec.input(
            'state_points',
            valid_type=orm.List,
            serializer=orm.to_aiida_type,
            help='The state points, each `{temperature_K, pressure_bar}` (NPT) or `{temperature_K, volume_scale}` '
            '(NVT); see `state_point_grid`. Unknown keys are refused.',
        )
        spec.input(
            'md_parameters',
            valid_type=orm.Dict,
            serializer=orm.to_aiida_type,
            help='MD settings shared by every state point: timestep_fs, equilibration_steps, production_steps, '
            'dump_interval, seed (state point i uses seed + i), optional taut_fs, taup_fs, pressure_coupling '
            '(NPT only). Unknown keys are refused.',
        )
        spec.inputs.validator = validate_inputs

        spec.outline(
            cls.setup,
            cls.run_state_points,
            cls.inspect_state_points,
            cls.merge_pool,
        )

        spec.output('pool', valid_type=DatasetData, help='Frames of all successful state points.')
        spec.output_namespace(
            'thermo', valid_type=orm.Dict, dynamic=True, help='Thermodynamic summary of each state point.'
        )
        spec.output(
            'failed_state_points',
            valid_type=orm.Dict,
            help='`{state point key: reason}` of the state points that failed; always attached, empty when none '
            'failed.',
        )
        spec.exit_code(
            401,
            'ERROR_SUB_PROCESS_FAILED_SAMPLING',
            message='all {count} state points failed: {failures}',
        )

    @classmethod
    def get_builder_from_protocol(
        cls,
        code: orm.AbstractCode,
        structure: orm.StructureData,
        protocol: str | None = None,
        overrides: dict | None = None,
        options: dict | None = None,
        *,
        potential: dict | orm.Dict,
        state_points: Sequence[Mapping] | orm.List,
        potential_files: dict | None = None,
    ):
        """Return a builder prepopulated from a protocol (``fast``, ``balanced`` or ``stringent``).

        Protocols hold the numerical MD settings (``md_parameters``, wall time); the physics comes from the
        caller: the potential and the state points.

        :param code: the LAMMPS code.
        :param structure: the starting configuration.
        :param protocol: protocol name (default from ``protocols/sampling.yaml``).
        :param overrides: inputs replacing those of the protocol, keyed like the ports, e.g.
            ``{'md_parameters': {'production_steps': 2000}}``; an unknown key is a ``ValueError``.
        :param options: ``metadata.options`` of the MD calculations (merged over the protocol's).
        :param potential: the classical-potential dictionary (or its ``Dict``).
        :param state_points: the state points (see :func:`state_point_grid`), a list of dicts or a ``List``.
        :param potential_files: ``SinglefileData`` the potential needs, by key.
        """
        if not isinstance(potential, Mapping | orm.Dict):
            raise ValueError(f'`potential` must be a dictionary (or a Dict), got {potential!r}')
        if not isinstance(state_points, orm.List) and (
            isinstance(state_points, str | Mapping)
            or not isinstance(state_points, Sequence)
            or not all(isinstance(point, Mapping) for point in state_points)
        ):
            raise ValueError(
                f'`state_points` must be a list of dictionaries (see `state_point_grid`), got {state_points!r}'
            )
        check_options(options)
        inputs = cls.get_protocol_inputs(protocol, overrides)
        if options:
            inputs = recursive_merge(inputs, {'md': {'metadata': {'options': options}}})
        builder = cls.get_builder()
        populate_builder(builder, inputs)
        builder.md.code = code
        builder.structure = structure
        builder.potential = potential if isinstance(potential, orm.Dict) else orm.Dict(potential)
        if isinstance(state_points, orm.List):
            builder.state_points = state_points
        else:
            builder.state_points = orm.List([dict(point) for point in state_points])
        if potential_files:
            builder.potential_files = potential_files
        return builder

    def setup(self):
        """Build the MD parameters of every state point, keyed by :func:`state_point_key`."""
        self.ctx.state_points = parameters_by_key(self.inputs)

    def run_state_points(self):
        """Submit one MD calculation per state point; they run concurrently."""
        calcs = {}
        for key, parameters in self.ctx.state_points.items():
            inputs = AttributeDict(self.exposed_inputs(LammpsMdCalculation, namespace='md'))
            inputs.structure = self.inputs.structure
            inputs.potential = self.inputs.potential
            if 'potential_files' in self.inputs:
                inputs.potential_files = self.inputs.potential_files
            inputs.parameters = orm.Dict(parameters)
            inputs.metadata.call_link_label = f'md_{key}'
            node = self.submit(LammpsMdCalculation, **inputs)
            self.report(f'submitted {node.process_label}<{node.pk}> for state point {key}')
            calcs[f'md_{key}'] = node
        return ToContext(**calcs)

    def inspect_state_points(self):
        """Record the failed state points (an output, by calcfunction); fail if none succeeded."""
        self.ctx.successful = []
        failures = {}
        for key in self.ctx.state_points:
            node = self.ctx[f'md_{key}']
            if node.is_finished_ok:
                self.ctx.successful.append(key)
            else:
                failures[key] = (
                    f'{node.process_label}<{node.pk}> exit {node.exit_status}: {node.exit_message}'
                )
                self.report(f'state point {key} failed: {failures[key]}')
        failed = collect_failed_state_points(self.inputs.state_points, orm.Dict(failures))
        self.out('failed_state_points', failed)
        if not self.ctx.successful:
            return self.exit_codes.ERROR_SUB_PROCESS_FAILED_SAMPLING.format(
                count=len(failures), failures='; '.join(f'{k}: {v}' for k, v in failures.items())
            )
        if failures:
            self.report(
                f'continuing with {len(self.ctx.successful)} of {len(self.ctx.state_points)} state points'
            )
        return None

    def merge_pool(self):
        """Merge the frames of the successful state points (calcfunction) and attach the thermo summaries."""
        datasets = {key: self.ctx[f'md_{key}'].outputs.dataset for key in self.ctx.successful}
        pool = merge_state_point_pools(**datasets)
        self.out('pool', pool)
        for key in self.ctx.successful:
            self.out(f'thermo.{key}', self.ctx[f'md_{key}'].outputs.thermo)
        self.report(f'pool of {len(pool)} frames from {len(datasets)} state points')


def parameters_by_key(inputs) -> dict[str, dict]:
    """Return the ``LammpsMdCalculation`` parameters of every state point, keyed by :func:`state_point_key`."""
    md_parameters = inputs['md_parameters'].get_dict()
    return {
        state_point_key(point): state_point_parameters(point, md_parameters, index)
        for index, point in enumerate(inputs['state_points'].get_list())
    }


def validate_inputs(value, _) -> str | None:
    """Validate the state points, the MD settings, the structure and the potential before any job runs.

    Each part is checked as soon as it is given, so that a parent that exposes this work chain without some of
    them (the active-learning loop provides the structure and the state points itself) still has the others
    checked when it is launched.
    """
    if 'md_parameters' in value:
        md_parameters = value['md_parameters'].get_dict()
        message = validate_md_parameters_shared(md_parameters) or check_md_parameter_types(md_parameters)
        if message:
            return f'md_parameters: {message}'
    if 'state_points' in value:
        points = value['state_points'].get_list()
        if not points:
            return '`state_points` is empty: there is nothing to sample'
        for point in points:
            message = validate_state_point(point)
            if message:
                return message
        keys = [state_point_key(point) for point in points]
        duplicates = sorted({key for key in keys if keys.count(key) > 1})
        if duplicates:
            return f'the state points {duplicates} are given more than once'
        if 'md_parameters' in value:
            for key, parameters in parameters_by_key(value).items():
                message = check_md_parameters(parameters)
                if message:
                    return f'state point {key}: {message}'
    if 'structure' not in value:
        return None
    message = missing_code_message(value.get('md', {}), 'LAMMPS', 'md.code')
    if message:
        return message
    atoms = value['structure'].get_ase()
    message = validate_atoms(atoms)
    if message:
        return message
    points = value['state_points'].get_list() if 'state_points' in value else []
    if any('pressure_bar' in point for point in points) and not all(atoms.pbc):
        return 'an NPT run needs a structure that is periodic in all three directions'
    if 'potential' not in value:
        return None
    potential = value['potential'].get_dict()
    return validate_potential_inputs(
        potential, value.get('potential_files', {}), atoms.get_chemical_symbols()
    ) or check_total_charge(potential, atoms)
