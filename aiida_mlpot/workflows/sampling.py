"""`SamplingWorkChain`: classical MD over a grid of state points; the frames become one candidate pool."""

from __future__ import annotations

import copy
import pathlib

import yaml
from aiida import orm
from aiida.common import AttributeDict
from aiida.engine import ToContext, WorkChain

from aiida_mlpot.calculations.functions.sampling import merge_state_point_pools
from aiida_mlpot.calculations.lammps import LammpsMdCalculation, validate_atoms
from aiida_mlpot.data.dataset import DatasetData
from aiida_mlpot.potentials.classical import species_order, validate_potential
from aiida_mlpot.potentials.lammps_input import validate_md_parameters

__all__ = ('SamplingWorkChain', 'merge_state_point_pools', 'state_point_key')

PROTOCOL_FILE = pathlib.Path(__file__).parent / 'protocols' / 'sampling.yaml'


def state_point_key(ensemble: str, temperature: float, value: float) -> str:
    """Return the label of a state point, e.g. ``T1400_P1`` (NPT, bar) or ``T1400_V0p95`` (NVT volume scale).

    It is a valid link label and is used as ``config_type`` of the state point's frames.
    """

    def fmt(number: float) -> str:
        return f'{float(number):g}'.replace('.', 'p').replace('-', 'm').replace('+', '')

    return f'T{fmt(temperature)}_{"P" if ensemble == "npt" else "V"}{fmt(value)}'


def load_protocol(protocol: str | None = None, overrides: dict | None = None) -> dict:
    """Return the settings of a protocol of ``protocols/sampling.yaml`` with ``overrides`` applied."""
    content = yaml.safe_load(PROTOCOL_FILE.read_text())
    name = protocol or content['default_protocol']
    if name not in content['protocols']:
        raise ValueError(f'unknown sampling protocol `{name}`; known: {sorted(content["protocols"])}')
    settings = copy.deepcopy(content['protocols'][name])
    settings.update(copy.deepcopy(overrides or {}))
    return settings


class SamplingWorkChain(WorkChain):
    """Classical MD (LAMMPS) at a grid of state points, all in parallel; the frames are merged into one pool.

    The grid is temperatures × pressures for NPT, or temperatures × volume scale factors for NVT (the cell
    volume is multiplied by each factor before the run, covering densities around the starting one). Each
    state point is one :class:`~aiida_mlpot.calculations.lammps.LammpsMdCalculation`. State points that fail
    (crash, lost atoms) are reported and left out; the workchain fails only when none succeeded.
    """

    @classmethod
    def define(cls, spec):
        super().define(spec)
        spec.expose_inputs(
            LammpsMdCalculation,
            namespace='md',
            exclude=('structure', 'parameters', 'potential', 'potential_files'),
            namespace_options={
                'help': 'Inputs of the LAMMPS MD calculations: `code`, `metadata.options`, ...'
            },
        )
        spec.input('structure', valid_type=orm.StructureData, help='The starting configuration.')
        spec.input('potential', valid_type=orm.Dict, help='The classical-potential dictionary.')
        spec.input_namespace(
            'potential_files',
            valid_type=orm.SinglefileData,
            required=False,
            help='Files the potential needs.',
        )
        spec.input(
            'ensemble', valid_type=orm.Str, default=lambda: orm.Str('nvt'), serializer=orm.to_aiida_type,
            help='`nvt` (grid temperatures x volume_scales) or `npt` (grid temperatures x pressures).',
        )  # fmt: skip
        spec.input(
            'temperatures', valid_type=orm.List, serializer=orm.to_aiida_type, help='Temperatures (K).'
        )
        spec.input(
            'pressures', valid_type=orm.List, required=False, serializer=orm.to_aiida_type,
            help='Pressures (bar) of the NPT grid.',
        )  # fmt: skip
        spec.input(
            'volume_scales', valid_type=orm.List, required=False, serializer=orm.to_aiida_type,
            help='Volume factors of the NVT grid (default [1.0]).',
        )  # fmt: skip
        spec.input('timestep', valid_type=orm.Float, serializer=orm.to_aiida_type, help='Timestep (fs).')
        spec.input(
            'equilibration_steps', valid_type=orm.Int, serializer=orm.to_aiida_type, help='Not dumped.'
        )
        spec.input('production_steps', valid_type=orm.Int, serializer=orm.to_aiida_type, help='Dumped steps.')
        spec.input('dump_interval', valid_type=orm.Int, serializer=orm.to_aiida_type, help='Steps per frame.')
        spec.input(
            'seed', valid_type=orm.Int, default=lambda: orm.Int(1), serializer=orm.to_aiida_type,
            help='Seed of the initial velocities; state point i uses seed + i.',
        )  # fmt: skip
        spec.input('thermostat_damping', valid_type=orm.Float, required=False, serializer=orm.to_aiida_type)
        spec.input('barostat_damping', valid_type=orm.Float, required=False, serializer=orm.to_aiida_type)
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
        potential_files: dict | None = None,
    ):
        """Return a builder prepopulated from a protocol (``fast``, ``balanced`` or ``stringent``).

        :param code: the LAMMPS code.
        :param structure: the starting configuration.
        :param protocol: protocol name (default from ``protocols/sampling.yaml``).
        :param overrides: values replacing those of the protocol (keys as in the YAML file).
        :param options: ``metadata.options`` of the MD calculations (merged over serial defaults).
        :param potential: the classical-potential dictionary (or its ``Dict``).
        :param potential_files: ``SinglefileData`` the potential needs, by key.
        """
        settings = load_protocol(protocol, overrides)
        builder = cls.get_builder()
        builder.md.code = code
        builder.md.metadata.options = {
            'resources': {'num_machines': 1, 'num_mpiprocs_per_machine': 1},
            'withmpi': False,
            'max_wallclock_seconds': int(settings['max_wallclock_seconds']),
            **(options or {}),
        }
        builder.structure = structure
        builder.potential = potential if isinstance(potential, orm.Dict) else orm.Dict(potential)
        if potential_files:
            builder.potential_files = potential_files
        builder.ensemble = orm.Str(settings['ensemble'])
        builder.temperatures = orm.List([float(t) for t in settings['temperatures']])
        if settings['ensemble'] == 'npt':
            builder.pressures = orm.List([float(p) for p in settings['pressures']])
        else:
            builder.volume_scales = orm.List([float(v) for v in settings.get('volume_scales', [1.0])])
        builder.timestep = orm.Float(settings['timestep'])
        for key in ('equilibration_steps', 'production_steps', 'dump_interval', 'seed'):
            builder[key] = orm.Int(settings[key])
        for key in ('thermostat_damping', 'barostat_damping'):
            if key in settings:
                builder[key] = orm.Float(settings[key])
        return builder

    def setup(self):
        """Build the list of state points and the MD parameters of each."""
        self.ctx.state_points = state_points(self.inputs)

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
        """Keep the successful state points; report the failed ones; fail if none succeeded."""
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
        self.node.base.extras.set('failed_state_points', sorted(failures))
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


def state_points(inputs) -> dict[str, dict]:
    """Return the MD parameters of every state point of the grid, keyed by :func:`state_point_key`."""
    ensemble = inputs['ensemble'].value
    temperatures = list(inputs['temperatures'].get_list())
    if ensemble == 'npt':
        values = list(inputs['pressures'].get_list()) if 'pressures' in inputs else []
    else:
        values = list(inputs['volume_scales'].get_list()) if 'volume_scales' in inputs else [1.0]
    result = {}
    for temperature in temperatures:
        for value in values:
            parameters = {
                'ensemble': ensemble,
                'temperature': float(temperature),
                'timestep': inputs['timestep'].value,
                'equilibration_steps': inputs['equilibration_steps'].value,
                'production_steps': inputs['production_steps'].value,
                'dump_interval': inputs['dump_interval'].value,
                'seed': inputs['seed'].value + len(result),
            }
            if ensemble == 'npt':
                parameters['pressure'] = float(value)
            else:
                parameters['volume_scale'] = float(value)
            for key in ('thermostat_damping', 'barostat_damping'):
                if key in inputs:
                    parameters[key] = inputs[key].value
            result[state_point_key(ensemble, temperature, value)] = parameters
    return result


def validate_inputs(value, _) -> str | None:
    """Validate the grid, the MD settings, the structure and the potential before any job runs."""
    required = ('structure', 'potential', 'temperatures', 'timestep', 'equilibration_steps')
    if any(key not in value for key in required):
        return None
    ensemble = value['ensemble'].value if 'ensemble' in value else 'nvt'
    if ensemble not in ('nvt', 'npt'):
        return f'ensemble must be `nvt` or `npt`, got {ensemble!r}'
    if ensemble == 'npt' and not value.get('pressures'):
        return 'an NPT grid needs a non-empty list of `pressures`'
    if ensemble == 'nvt' and 'volume_scales' in value and not value['volume_scales'].get_list():
        return '`volume_scales` is empty: the grid has no state points'
    if not value['temperatures'].get_list():
        return '`temperatures` is empty: the grid has no state points'
    try:
        points = state_points(value)
    except (KeyError, TypeError, ValueError) as exception:
        return f'invalid state point grid: {exception}'
    if len(set(points)) != len(points) or not points:
        return 'the state point grid is empty or contains duplicates'
    for key, parameters in points.items():
        message = validate_md_parameters(parameters)
        if message:
            return f'state point {key}: {message}'
    atoms = value['structure'].get_ase()
    message = validate_atoms(atoms)
    if message:
        return message
    if ensemble == 'npt' and not all(atoms.pbc):
        return 'an NPT run needs a structure that is periodic in all three directions'
    return validate_potential(value['potential'].get_dict(), species_order(atoms.get_chemical_symbols()))
