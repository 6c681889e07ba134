"""`LabellingWorkChain`: energy, forces and virial of selected configurations from a reference oracle.

Oracles (give exactly one of the two input namespaces; only the inputs of that oracle are recorded):

* ``cp2k``: one :class:`~aiida_mlpot.workflows.cp2k_label.Cp2kLabelWorkChain` (``mlpot.cp2k.label``, a
  subclass of aiida-cp2k's ``Cp2kBaseWorkChain``) per configuration, with this package's parser ``mlpot.cp2k``
  (energy, forces, stress; SCF convergence checked). The retries are that work chain's process handlers (robust
  settings once, then wavefunction restarts where the settings ask for them); this work chain only records
  a label or the final failure reason. ``cp2k.settings`` is the resolved settings dictionary of
  :mod:`aiida_mlpot.inputs.cp2k`, made from a protocol of ``protocols/labelling.yaml`` (``xtb``, a fast
  fixed-cell TEST oracle; ``pbe`` and ``stringent``, PBE+D3 GAPW) by :meth:`get_builder_from_protocol`
  when the builder is made, not at run time.
* ``classical``: ONE ``LammpsRerunCalculation`` evaluating all configurations with a classical potential
  (the "teacher" mode: labels exact for the model).

Design decisions:

* **Concurrency: batches in the outline.** ``while_(has_pending)(submit_batch, inspect_batch)`` submits the
  next ``cp2k.max_concurrent`` configurations and waits for all of them. aiida-core resumes a step only when
  every awaited child has terminated, so a batch waits for its slowest member; a rolling window would need to
  override the private ``WorkChain._on_awaitable_finished``, which this package does not do. The cost is idle
  slots while the last member of a batch runs: nothing for configurations of equal size and settings (the
  usual case: one selection of same-size cells); up to the spread of run times per batch otherwise (a retried
  configuration makes its batch wait for the retry). Measured figures are in docs/labelling.md.
* **Basis/pseudopotential data are read when the work chain runs**, never in an input validator: the
  validator checks only what the inputs say (known keys and types of the settings, every element named in the
  ``basis``/``pseudo`` maps or covered by ``default``, GFN1-xTB's element range). For ``dft`` settings the
  calcfunction :func:`~aiida_mlpot.calculations.functions.labelling.cp2k_data_files` then reads CP2K's data
  files on the daemon's machine (Debian ``cp2k-data``, ``data_dir`` in the settings) and returns only the
  entries the elements need as two ``SinglefileData`` (inputs ``cp2k.file`` of every calculation), so the
  exact data of every label are in the graph and the CP2K computer needs no data files. A missing file or
  entry ends the work chain with ``ERROR_MISSING_CP2K_DATA`` (201) before any CP2K job is submitted.

Every configuration is its own ``StructureData`` input of the calculation that labels it (a ``dataset`` input
is split by the calcfunction ``dataset_to_structures``); the calcfunction ``collect_labels`` merges the
per-configuration results into one ``DatasetData`` (each frame records the labelling calculation in
``info['source_uuid']`` and its key in ``info['label_key']``; with a ``dataset`` input the free-form info of
its frames, e.g. ``config_type`` and ``pool_index`` of a selection) and applies the outlier guard of
:mod:`aiida_mlpot.analysis.outliers`.
"""

from __future__ import annotations

import math
import pathlib
import re
from collections.abc import Mapping, Sequence

from aiida import orm
from aiida.engine import CalcJob, ToContext, WorkChain, if_, while_
from aiida.plugins import CalculationFactory

from aiida_mlpot.analysis.geometry import too_close
from aiida_mlpot.analysis.outliers import DEFAULT_GUARD, validate_guard
from aiida_mlpot.calculations.functions.labelling import (
    collect_labels,
    cp2k_data_files,
    dataset_to_structures,
)
from aiida_mlpot.calculations.lammps import check_total_charge, validate_potential_inputs
from aiida_mlpot.calculations.ports import code_validator, define_potential_ports, define_structures_port
from aiida_mlpot.common.keys import config_key
from aiida_mlpot.data.dataset import DatasetData
from aiida_mlpot.inputs import cp2k as cp2k_inputs
from aiida_mlpot.workflows.cp2k_label import Cp2kLabelWorkChain
from aiida_mlpot.workflows.protocols.utils import ProtocolMixin, populate_builder, recursive_merge
from aiida_mlpot.workflows.recovery import RecoveryMixin

__all__ = ('LabellingWorkChain', 'failure_reason')

ORACLES = ('cp2k', 'classical')
#: metadata.options of the calculations unless the ``options`` input says otherwise.
DEFAULT_OPTIONS = {
    'resources': {'num_machines': 1, 'num_mpiprocs_per_machine': 1},
    'max_wallclock_seconds': 3600,
    'withmpi': False,
}
#: Keys of the ``options`` input besides CalcJob's ``metadata.options``.
EXTRA_OPTIONS = ('omp_num_threads', 'allow_mpi_as_root')
#: Settings a per-configuration override may not change: the data files are extracted once for all.
FIXED_SETTINGS = ('method', 'data_dir', 'basis_file', 'potential_file', 'basis', 'pseudo')
#: Keys of the Cp2kCalculation ``file`` namespace holding the extracted data files.
DATA_FILE_KEYS = {'basis': cp2k_inputs.BASIS_FILE.lower(), 'potential': cp2k_inputs.POTENTIAL_FILE.lower()}


def _validate_fraction(value, _):
    if value is not None and not 0.0 <= value.value <= 1.0:
        return '`min_success_fraction` must be between 0 and 1'
    return None


def _validate_max_concurrent(value, _):
    if value is not None and value.value < 1:
        return '`cp2k.max_concurrent` must be at least 1'
    return None


def _validate_settings(value, _):
    if value is None:
        return None
    return cp2k_inputs.validate_settings(value.get_dict())


def _validate_guard(value, _):
    if value is None:
        return None
    guard = value.get_dict()
    message = validate_guard(guard)
    if message:
        return message
    for key, number in guard.items():
        if not math.isfinite(number):
            return f'outlier guard `{key}` must be a finite number, got {number!r}'
        if key == 'min_frames_for_energy' and (not float(number).is_integer() or number < 1):
            return f'outlier guard `{key}` must be a positive integer, got {number!r}'
        if number < 0 or (number == 0 and key != 'energy_floor'):
            return f'outlier guard `{key}` must be positive, got {number!r}'
    return None


def _validate_options(value, _):
    if value is None:
        return None
    known = set(CalcJob.spec().inputs['metadata']['options']) | set(EXTRA_OPTIONS)
    unknown = sorted(set(value.get_dict()) - known)
    if unknown:
        return f'unknown key `{unknown[0]}` in `options`; known: {", ".join(sorted(known))}'
    return None


def _elements(value) -> list[str]:
    if value.get('structures'):
        return sorted({kind.symbol for node in value['structures'].values() for kind in node.kinds})
    return sorted(value['dataset'].species)


def _validate_config_overrides(value, settings: dict) -> str | None:
    """Return what is wrong with the per-configuration overrides ``{key: settings overrides}``, or None."""
    overrides = value['cp2k']['config_overrides'].get_dict()
    if value.get('structures'):
        keys = set(value['structures'])
    else:
        keys = {config_key(i) for i in range(value['dataset'].n_configs)}
    for key, override in overrides.items():
        if key not in keys:
            return f'`cp2k.config_overrides` names `{key}`, which is not a configuration to label'
        if not isinstance(override, dict):
            return f'`cp2k.config_overrides.{key}` must be a dictionary of settings'
        fixed = sorted(set(override) & set(FIXED_SETTINGS))
        if fixed:
            return (
                f'`cp2k.config_overrides.{key}` cannot change `{fixed[0]}`: the data files and kinds are the '
                'same for every configuration'
            )
        message = cp2k_inputs.validate_settings(recursive_merge(settings, override))
        if message:
            return f'`cp2k.config_overrides.{key}`: {message}'
    return None


def _prescreen_refuses_all(value) -> str | None:
    """Return why the prescreen would refuse EVERY configuration (atoms too close), or None.

    A single configuration that is too close is excluded with its reason when the work chain runs; when none
    would remain, nothing can be labelled and the input is refused here.
    """
    guard = {**DEFAULT_GUARD, **(value['guard'].get_dict() if 'guard' in value else {})}
    if value.get('structures'):
        frames = {key: node.get_ase() for key, node in value['structures'].items()}
    else:
        frames = {config_key(i): atoms for i, atoms in enumerate(value['dataset'].to_ase())}
    reasons = {key: too_close(atoms, guard['min_distance']) for key, atoms in frames.items()}
    if all(reasons.values()):
        key = sorted(reasons)[0]
        return f'every configuration has atoms too close to be labelled, e.g. {key}: {reasons[key]}'
    return None


def _validate_inputs(value, ctx):
    """Validate the combination of inputs from what they say (no CP2K data file is read)."""
    if ctx is not None and any(port not in ctx for port in ('structures', 'dataset', 'cp2k', 'classical')):
        return None  # exposed by a parent work chain without the configurations: validated when launched
    structures = value.get('structures') or {}
    if bool(structures) == ('dataset' in value):
        return 'give exactly one of `structures` (a non-empty namespace) or `dataset`'
    if 'dataset' in value and value['dataset'].n_configs == 0:
        return 'the `dataset` holds no configuration: there is nothing to label'
    if any(not re.fullmatch(r'[A-Za-z_][A-Za-z0-9_]*', key) for key in structures):
        return 'the keys of `structures` must be valid identifiers'
    cp2k = value.get('cp2k') or {}
    classical = value.get('classical') or {}
    if bool(cp2k) == bool(classical):
        return 'give exactly one oracle: the `cp2k` or the `classical` namespace'
    if cp2k:
        settings = cp2k['settings'].get_dict()
        message = cp2k_inputs.validate_settings(settings)
        if message:
            return message
        if 'config_overrides' in cp2k:
            message = _validate_config_overrides(value, settings)
            if message:
                return message
        message = cp2k_inputs.check_elements(settings, _elements(value))
        if message:
            return f'refused before submission: {message}'
    if classical and 'potential' in classical:
        potential = classical['potential'].get_dict()
        message = validate_potential_inputs(potential, classical.get('potential_files', {}), _elements(value))
        for key, node in sorted(structures.items()):
            message = message or check_total_charge(potential, node.get_ase(), f'configuration {key}')
        if message:
            return f'`classical.potential`: {message}'
    return _prescreen_refuses_all(value)


def failure_reason(node: orm.ProcessNode) -> str:
    """Return why a ``Cp2kLabelWorkChain`` failed: its exit status and that of its last ``Cp2kCalculation``."""
    reason = f'{node.process_label}<{node.pk}> failed (exit status {node.exit_status}: {node.exit_message})'
    calcs = sorted((c for c in node.called if isinstance(c, orm.CalcJobNode)), key=lambda c: c.ctime)
    if not calcs:
        return reason
    last = calcs[-1]
    reason += f'; last Cp2kCalculation<{last.pk}> exit status {last.exit_status}: {last.exit_message}'
    if 'output_parameters' in last.outputs and not last.outputs.output_parameters.get('scf_converged', True):
        reason += ' (SCF not converged)'
    return reason


class LabellingWorkChain(RecoveryMixin, ProtocolMixin, WorkChain):
    """Label configurations with energy, forces and virial from CP2K (DFT/xTB) or a classical potential."""

    _protocol_file = pathlib.Path(__file__).parent / 'protocols' / 'labelling.yaml'

    @classmethod
    def define(cls, spec):
        """Define the process specification."""
        super().define(spec)
        define_structures_port(
            spec, 'The configurations to label, one node per configuration (keys become `label_key`).'
        )
        spec.input(
            'dataset',
            valid_type=DatasetData,
            required=False,
            help='The configurations to label, e.g. the `selected` output of `select_configurations`; split '
            'into `config_00000`, ... by `dataset_to_structures`, their free-form info carried over to the labels.',
        )
        spec.input_namespace(
            'cp2k',
            required=False,
            populate_defaults=False,
            help='The CP2K oracle (one job per configuration).',
        )
        spec.input(
            'cp2k.code', valid_type=orm.AbstractCode, validator=code_validator('CP2K', 'cp2k.code'),
            help='The `cp2k.psmp` code.',
        )  # fmt: skip
        spec.input(
            'cp2k.settings', valid_type=orm.Dict, validator=_validate_settings,
            help='Resolved CP2K settings (aiida_mlpot.inputs.cp2k; made by `get_builder_from_protocol`).',
        )  # fmt: skip
        spec.input(
            'cp2k.config_overrides', valid_type=orm.Dict, required=False,
            help='Per-configuration settings overrides {key: overrides}, merged into `cp2k.settings`.',
        )  # fmt: skip
        spec.input(
            'cp2k.max_concurrent', valid_type=orm.Int, default=lambda: orm.Int(4), serializer=orm.to_aiida_type,
            validator=_validate_max_concurrent, help='CP2K jobs per batch (run at once).',
        )  # fmt: skip
        spec.input_namespace(
            'classical', required=False, populate_defaults=False,
            help='The classical oracle (one LAMMPS job for all configurations).',
        )  # fmt: skip
        spec.input(
            'classical.code', valid_type=orm.AbstractCode, validator=code_validator('LAMMPS', 'classical.code'),
            help='The LAMMPS code.',
        )  # fmt: skip
        define_potential_ports(spec, 'classical')
        spec.input(
            'options', valid_type=orm.Dict, required=False, validator=_validate_options,
            help='metadata.options of the calculations (resources, withmpi, max_wallclock_seconds, '
            'environment_variables, ...). Extra keys: `omp_num_threads` (CP2K, default from the settings) and '
            '`allow_mpi_as_root` (sets OMPI_ALLOW_RUN_AS_ROOT[_CONFIRM]=1 for withmpi=True).',
        )  # fmt: skip
        spec.input(
            'min_success_fraction', valid_type=orm.Float, default=lambda: orm.Float(0.5),
            serializer=orm.to_aiida_type, validator=_validate_fraction,
            help='Below this fraction of labelled configurations the work chain fails.',
        )  # fmt: skip
        spec.input(
            'guard', valid_type=orm.Dict, required=False, validator=_validate_guard,
            help=f'Outlier guard settings, defaults {DEFAULT_GUARD}.',
        )  # fmt: skip
        spec.inputs.validator = _validate_inputs

        spec.outline(
            cls.setup,
            cls.prescreen,
            if_(cls.is_cp2k)(
                cls.prepare_cp2k,
                while_(cls.has_pending)(
                    cls.submit_batch,
                    cls.inspect_batch,
                ),
            ).else_(
                cls.run_classical,
                cls.inspect_classical,
            ),
            cls.collect,
            cls.results,
        )

        spec.output('labelled', valid_type=DatasetData, required=False, help='The labelled configurations.')
        spec.output('excluded', valid_type=orm.Dict, help='Excluded configurations {key: reason}.')
        spec.output(
            'counts', valid_type=orm.Dict, help='Numbers of input, labelled, excluded, ... configurations.'
        )

        spec.exit_code(
            201, 'ERROR_MISSING_CP2K_DATA',
            message='refused before submission: {message}',
        )  # fmt: skip
        spec.exit_code(
            410, 'ERROR_TOO_FEW_LABELLED',
            message='only {n_labelled} of {n_input} configurations were labelled, below min_success_fraction={fraction}.',
        )  # fmt: skip
        spec.exit_code(
            420, 'ERROR_SUB_PROCESS_FAILED_LABELLING',
            message='{process} failed with exit status {status}: {message}',
        )  # fmt: skip

    @classmethod
    def get_builder_from_protocol(
        cls,
        code: orm.AbstractCode,
        structures_or_dataset: DatasetData | Mapping[str, orm.StructureData] | Sequence[orm.StructureData],
        protocol: str | None = None,
        overrides: Mapping | None = None,
        options: Mapping | None = None,
        oracle: str = 'cp2k',
        potential: Mapping | orm.Dict | None = None,
        potential_files: Mapping[str, orm.SinglefileData] | None = None,
    ):
        """Return a builder labelling ``structures_or_dataset`` with ``oracle``, the protocol resolved now.

        :param code: the CP2K code (``oracle='cp2k'``) or the LAMMPS code (``oracle='classical'``).
        :param structures_or_dataset: a ``DatasetData`` (its frames' info is carried over to the labels), a
            mapping ``{key: StructureData}`` or a sequence of ``StructureData`` (keys ``config_00000``, ...).
        :param protocol: CP2K protocol of ``protocols/labelling.yaml`` (default ``xtb``); CP2K oracle only.
        :param overrides: deep-merged into the protocol inputs, keyed like the ports, e.g.
            ``{'cp2k': {'settings': {'scf': {'max_scf': 50}}, 'max_concurrent': 2}, 'min_success_fraction': 0.8}``.
        :param options: the ``options`` input (metadata.options of the calculations, plus ``omp_num_threads``
            and ``allow_mpi_as_root``).
        :param oracle: ``cp2k`` or ``classical``.
        :param potential: the classical-potential dictionary (classical oracle only), e.g.
            ``presets.nacl_tosi_fumi()``.
        :param potential_files: files the classical potential refers to.
        :raises ValueError: unknown oracle or protocol, an unknown override key, invalid CP2K settings, or an
            input that does not apply to the oracle.
        """
        if oracle not in ORACLES:
            raise ValueError(f'unknown oracle `{oracle}`; choose from {", ".join(ORACLES)}')
        other = 'classical' if oracle == 'cp2k' else 'cp2k'
        if overrides and other in overrides:
            raise ValueError(f'override key `{other}` does not apply to the `{oracle}` oracle')
        if oracle == 'cp2k':
            if potential is not None or potential_files is not None:
                raise ValueError('`potential` and `potential_files` apply to the classical oracle only')
            inputs = cls.get_protocol_inputs(protocol, overrides)
            message = cp2k_inputs.validate_settings(inputs['cp2k']['settings'])
            if message:
                raise ValueError(message)
        else:
            if protocol is not None:
                raise ValueError('protocols set CP2K settings: they apply to the cp2k oracle only')
            if potential is None:
                raise ValueError('the classical oracle needs `potential`')
            inputs = cls.get_protocol_inputs(None, overrides)
            inputs.pop('cp2k')
            inputs.setdefault('classical', {})['potential'] = potential
            if potential_files:
                inputs['classical']['potential_files'] = dict(potential_files)
        inputs[oracle]['code'] = code
        if options:
            inputs['options'] = dict(options)

        builder = cls.get_builder()
        if isinstance(structures_or_dataset, DatasetData):
            builder.dataset = structures_or_dataset
        elif isinstance(structures_or_dataset, Mapping):
            builder.structures = dict(structures_or_dataset)
        else:
            builder.structures = {config_key(i): node for i, node in enumerate(structures_or_dataset)}
        populate_builder(builder, inputs)
        return builder

    # --- setup ------------------------------------------------------------------------------------------------
    def setup(self):
        """Turn the input into one StructureData per configuration and initialise the bookkeeping."""
        if 'dataset' in self.inputs:
            self.ctx.structures = dict(
                dataset_to_structures(
                    self.inputs.dataset, metadata={'call_link_label': 'dataset_to_structures'}
                )
            )
        else:
            self.ctx.structures = dict(self.inputs.structures)
        self.ctx.guard = {**DEFAULT_GUARD, **(self.inputs.guard.get_dict() if 'guard' in self.inputs else {})}
        self.ctx.failures = {}
        self.ctx.retried = []
        self.ctx.results = {}
        user_options = self.inputs.options.get_dict() if 'options' in self.inputs else {}
        options = {**DEFAULT_OPTIONS, **user_options}
        code = self.inputs.cp2k.code if self.is_cp2k() else self.inputs.classical.code
        if 'withmpi' not in user_options and code.with_mpi is not None:
            options['withmpi'] = bool(code.with_mpi)  # follow the code's own setting unless told otherwise
        self.ctx.omp_num_threads = options.pop('omp_num_threads', None)
        allow_root = options.pop('allow_mpi_as_root', False)
        environment = dict(options.get('environment_variables', {}))
        if allow_root and options.get('withmpi'):
            environment.update({'OMPI_ALLOW_RUN_AS_ROOT': '1', 'OMPI_ALLOW_RUN_AS_ROOT_CONFIRM': '1'})
        options['environment_variables'] = environment
        self.ctx.options = options

    def prescreen(self):
        """Exclude configurations with atoms closer than the guard's ``min_distance`` before any oracle runs."""
        for key in sorted(self.ctx.structures):
            reason = too_close(self.ctx.structures[key].get_ase(), self.ctx.guard['min_distance'])
            if reason:
                self.ctx.failures[key] = f'refused before labelling: {reason}'
                self.report(f'configuration {key} refused: {reason}')

    def is_cp2k(self):
        """Return whether the oracle is CP2K."""
        return 'code' in self.inputs.get('cp2k', {})

    # --- CP2K oracle ------------------------------------------------------------------------------------------
    def prepare_cp2k(self):
        """Get the basis/pseudopotential entries (``dft``) and queue the configurations that passed the prescreen."""
        settings = self.inputs.cp2k.settings.get_dict()
        self.ctx.elements = sorted(
            {kind.symbol for node in self.ctx.structures.values() for kind in node.kinds}
        )
        self.ctx.data_files = {}
        if settings['method'] == 'dft':
            outputs, node = cp2k_data_files.run_get_node(
                self.inputs.cp2k.settings,
                orm.List(self.ctx.elements),
                metadata={'call_link_label': 'cp2k_data_files'},
            )
            if node.exit_status == 202:
                return self.exit_codes.ERROR_MISSING_CP2K_DATA.format(message=node.exit_message)
            if not node.is_finished_ok:
                return self.exit_codes.ERROR_SUB_PROCESS_FAILED_LABELLING.format(
                    process=f'cp2k_data_files<{node.pk}>', status=node.exit_status, message=node.exit_message
                )
            self.ctx.data_files = {DATA_FILE_KEYS[name]: outputs[name] for name in DATA_FILE_KEYS}
        self.ctx.queue = [key for key in sorted(self.ctx.structures) if key not in self.ctx.failures]
        return None

    def has_pending(self):
        """Return whether configurations remain to be labelled."""
        return bool(self.ctx.queue)

    def _cp2k_builder(self, key: str):
        """Return the builder of the ``Cp2kLabelWorkChain`` of configuration ``key``."""
        settings = self.inputs.cp2k.settings.get_dict()
        if 'config_overrides' in self.inputs.cp2k:
            settings = recursive_merge(settings, self.inputs.cp2k.config_overrides.get(key, {}))
        builder = Cp2kLabelWorkChain.get_builder()
        builder.cp2k.code = self.inputs.cp2k.code
        builder.cp2k.structure = self.ctx.structures[key]
        builder.cp2k.parameters = orm.Dict(cp2k_inputs.build_cp2k_parameters(settings, self.ctx.elements))
        builder.cp2k.settings = orm.Dict(
            {'additional_retrieve_list': [cp2k_inputs.FORCES_FILE, cp2k_inputs.STRESS_FILE]}
        )
        if self.ctx.data_files:
            builder.cp2k.file = self.ctx.data_files
        robust = bool(settings.get('robust_retry', False))
        if robust:
            robust_settings = recursive_merge(settings, settings.get('robust', {}))
            builder.robust_parameters = orm.Dict(
                cp2k_inputs.build_cp2k_parameters(robust_settings, self.ctx.elements)
            )
        restarts = int(settings.get('wavefunction_restarts', 0))
        if restarts:
            builder.handler_overrides = orm.Dict({'restart_incomplete_calculation': {'enabled': True}})
        builder.max_iterations = orm.Int(1 + int(robust) + restarts)
        options = dict(self.ctx.options)
        environment = dict(options['environment_variables'])
        threads = self.ctx.omp_num_threads or settings.get('omp_num_threads')
        if threads:
            environment.setdefault('OMP_NUM_THREADS', str(threads))
        options['environment_variables'] = environment
        options['parser_name'] = 'mlpot.cp2k'
        builder.cp2k.metadata.options = options
        builder.metadata.call_link_label = f'label_{key}'
        return builder

    def submit_batch(self):
        """Submit the next ``cp2k.max_concurrent`` configurations and wait for all of them."""
        size = self.inputs.cp2k.max_concurrent.value
        self.ctx.batch, self.ctx.queue = self.ctx.queue[:size], self.ctx.queue[size:]
        children = {}
        for key in self.ctx.batch:
            node = self.submit(self._cp2k_builder(key))
            children[f'labels.{key}'] = node
            self.report(f'submitted {node.process_label}<{node.pk}> for {key}')
        return ToContext(**children)

    def inspect_batch(self):
        """Record the label of every configuration of the batch, or the reason it failed."""
        for key in self.ctx.batch:
            node = self.ctx.labels[key]
            n_calcs = sum(1 for child in node.called if isinstance(child, orm.CalcJobNode))
            if n_calcs > 1:
                self.ctx.retried.append(key)
            if node.is_finished_ok:
                self.ctx.results[key] = node.outputs.output_parameters
            else:
                reason = failure_reason(node)
                self.report(f'{key} excluded: {reason}')
                self.ctx.failures[key] = reason

    # --- classical oracle -------------------------------------------------------------------------------------
    def run_classical(self):
        """Run ONE LammpsRerunCalculation over all configurations that passed the prescreen."""
        keys = [key for key in sorted(self.ctx.structures) if key not in self.ctx.failures]
        if not keys:
            return None
        LammpsRerunCalculation = CalculationFactory('mlpot.lammps.rerun')
        builder = LammpsRerunCalculation.get_builder()
        builder.code = self.inputs.classical.code
        builder.potential = self.inputs.classical.potential
        if 'potential_files' in self.inputs.classical:
            builder.potential_files = dict(self.inputs.classical.potential_files)
        builder.structures = {key: self.ctx.structures[key] for key in keys}
        options = dict(self.ctx.options)
        options.pop('parser_name', None)  # the rerun calculation's own parser
        builder.metadata.options = options
        builder.metadata.call_link_label = 'classical'
        node = self.submit(builder)
        self.report(f'submitted {node.process_label}<{node.pk}> for {len(keys)} configurations')
        return ToContext(classical=node)

    def inspect_classical(self):
        """Fail with ERROR_SUB_PROCESS_FAILED_LABELLING if the single LAMMPS job failed."""
        if 'classical' not in self.ctx:
            return None
        node = self.ctx.classical
        if not node.is_finished_ok:
            return self.exit_codes.ERROR_SUB_PROCESS_FAILED_LABELLING.format(
                process=f'{node.process_label}<{node.pk}>', status=node.exit_status, message=node.exit_message
            )
        return None

    # --- results ----------------------------------------------------------------------------------------------
    def collect(self):
        """Merge all results with the calcfunction ``collect_labels`` (provenance of the labelled dataset)."""
        kwargs = {f'structure_{key}': node for key, node in self.ctx.structures.items()}
        kwargs.update({f'result_{key}': node for key, node in self.ctx.results.items()})
        if 'classical' in self.ctx:
            kwargs['rerun'] = self.ctx.classical.outputs.dataset
        if 'dataset' in self.inputs:
            kwargs['source'] = self.inputs.dataset
        report = orm.Dict({'failures': self.ctx.failures, 'retried': self.ctx.retried})
        self.ctx.collected = collect_labels(
            guard=orm.Dict(self.ctx.guard),
            report=report,
            metadata={'call_link_label': 'collect_labels'},
            **kwargs,
        )

    def results(self):
        """Attach the outputs; fail with ERROR_TOO_FEW_LABELLED below ``min_success_fraction``."""
        outputs = self.ctx.collected
        for name in ('labelled', 'excluded', 'counts'):
            if name in outputs:
                self.out(name, outputs[name])
        counts = outputs['counts'].get_dict()
        self.report(
            f'labelled {counts["n_labelled"]}/{counts["n_input"]}, excluded {counts["n_excluded"]} '
            f'({counts["n_oracle_failures"]} oracle failures or refusals, {counts["n_outliers"]} outliers)'
        )
        fraction = self.inputs.min_success_fraction.value
        if counts['success_fraction'] < fraction:
            return self.exit_codes.ERROR_TOO_FEW_LABELLED.format(
                n_labelled=counts['n_labelled'], n_input=counts['n_input'], fraction=fraction
            )
        return None
