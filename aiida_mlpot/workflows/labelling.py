"""`LabellingWorkChain`: energy, forces and virial of selected configurations from a reference oracle.

Oracles:

* ``cp2k``: one ``Cp2kBaseWorkChain`` (aiida-cp2k) per configuration, with this package's parser
  ``mlpot.cp2k`` (energy, forces, stress; SCF convergence checked). Protocols ``xtb`` (GFN1-xTB, a fast
  fixed-cell TEST oracle), ``pbe`` and ``stringent`` (PBE+D3, GAPW) live in ``protocols/cp2k.yaml``.
  A failed configuration is retried once with the protocol's ``robust`` settings, then excluded with its reason.
  At most ``max_concurrent`` run at once, as a rolling window: a slot is refilled as soon as any job finishes.
* ``classical``: ONE ``LammpsRerunCalculation`` evaluating all configurations with a classical potential
  (the "teacher" mode: labels exact for the model).

Every configuration is its own ``StructureData`` input of the calculation that labels it; the calcfunction
:func:`collect_labels` merges the per-configuration results into one ``DatasetData`` (each frame records the
labelling calculation in ``info['source_uuid']`` and its key in ``info['label_key']``) and applies the outlier
guard of :mod:`aiida_mlpot.analysis.outliers`.
"""

from __future__ import annotations

import re

from aiida import orm
from aiida.engine import ProcessState, ToContext, WorkChain, if_, while_
from aiida.engine.processes.workchains.awaitable import Awaitable
from aiida.plugins import CalculationFactory, WorkflowFactory

from aiida_mlpot.analysis.outliers import DEFAULT_GUARD, check_geometry
from aiida_mlpot.calculations.functions.labelling import collect_labels, dataset_to_structures
from aiida_mlpot.data.dataset import DatasetData
from aiida_mlpot.workflows import cp2k_inputs

__all__ = ('LabellingWorkChain', 'collect_labels', 'dataset_to_structures')

ORACLES = ('cp2k', 'classical')
_DEFAULT_OPTIONS = {
    'resources': {'num_machines': 1, 'num_mpiprocs_per_machine': 1},
    'max_wallclock_seconds': 3600,
    'withmpi': False,
}
#: Exit statuses of Cp2kCalculation worth a retry with robust settings (incomplete, walltime, SCF, iterations).
_RETRIABLE = {303, 400, 401, 450}
#: Context namespace of the running CP2K children (``ctx.window.<key>``): the rolling window of at most
#: ``max_concurrent`` labelling jobs.
_WINDOW = 'window'


def _validate_fraction(value, _):
    if value is not None and not 0.0 <= value.value <= 1.0:
        return '`min_success_fraction` must be between 0 and 1'


def _validate_oracle(value, _):
    if value is not None and value.value not in ORACLES:
        return f'`oracle` must be one of {ORACLES}, got `{value.value}`'


def _validate_max_concurrent(value, _):
    if value is not None and value.value < 1:
        return '`max_concurrent` must be at least 1'


def _validate_inputs(value, ctx):
    """Validate the combination of inputs; refuse elements without basis/pseudopotential before submission."""
    if ctx is not None and any(port not in ctx for port in ('structures', 'dataset', 'oracle')):
        return None  # exposed by a parent work chain without the configurations: validated when launched
    structures = value.get('structures') or {}
    if bool(structures) == ('dataset' in value):
        return 'give exactly one of `structures` (a non-empty namespace) or `dataset`'
    if any(not re.fullmatch(r'[A-Za-z_][A-Za-z0-9_]*', key) for key in structures):
        return 'the keys of `structures` must be valid identifiers'
    oracle = value['oracle'].value if 'oracle' in value else 'cp2k'
    if structures:
        elements = sorted({kind.symbol for node in structures.values() for kind in node.kinds})
    else:
        elements = list(value['dataset'].species)
    if oracle == 'cp2k':
        if 'cp2k_code' not in value:
            return 'the `cp2k` oracle needs `cp2k_code`'
        overrides = value['overrides'].get_dict() if 'overrides' in value else {}
        protocol = value['protocol'].value if 'protocol' in value else None
        try:
            settings = cp2k_inputs.load_protocol(protocol, overrides)
        except (ValueError, KeyError) as exception:
            return str(exception)
        message = cp2k_inputs.check_elements(settings, elements)
        if message:
            return f'refused before submission: {message}'
    elif oracle == 'classical':
        if 'classical_code' not in value or 'potential' not in value:
            return 'the `classical` oracle needs `classical_code` and `potential`'
    return None


class LabellingWorkChain(WorkChain):
    """Label configurations with energy, forces and virial from CP2K (DFT/xTB) or a classical potential."""

    @classmethod
    def define(cls, spec):
        super().define(spec)
        spec.input_namespace(
            'structures',
            valid_type=orm.StructureData,
            dynamic=True,
            required=False,
            help='The configurations to label, one node per configuration (keys become `label_key`).',
        )
        spec.input('dataset', valid_type=DatasetData, required=False, help='Configurations to label.')
        spec.input(
            'oracle', valid_type=orm.Str, default=lambda: orm.Str('cp2k'), validator=_validate_oracle,
            help='`cp2k` (protocols xtb, pbe, stringent) or `classical` (LAMMPS single points).',
        )  # fmt: skip
        spec.input('cp2k_code', valid_type=orm.AbstractCode, required=False, help='The `cp2k.psmp` code.')
        spec.input(
            'protocol', valid_type=orm.Str, default=lambda: orm.Str('xtb'),
            help=f'CP2K protocol of protocols/cp2k.yaml: {", ".join(cp2k_inputs.get_protocol_names())}.',
        )  # fmt: skip
        spec.input(
            'overrides', valid_type=orm.Dict, required=False,
            help='Deep-merged into the CP2K protocol, e.g. {"scf": {"max_scf": 50}, "max_retries": 0}.',
        )  # fmt: skip
        spec.input(
            'config_overrides', valid_type=orm.Dict, required=False,
            help='Per-configuration CP2K overrides {key: overrides}, merged after `overrides`.',
        )  # fmt: skip
        spec.input('classical_code', valid_type=orm.AbstractCode, required=False, help='The LAMMPS code.')
        spec.input('potential', valid_type=orm.Dict, required=False, help='Classical-potential dictionary.')
        spec.input_namespace(
            'potential_files', valid_type=orm.SinglefileData, required=False,
            help='Files the classical potential refers to.',
        )  # fmt: skip
        spec.input(
            'options', valid_type=orm.Dict, required=False,
            help='metadata.options of the calculations (resources, withmpi, max_wallclock_seconds, '
            'environment_variables, ...). Extra keys: `omp_num_threads` (CP2K, default from the protocol) and '
            '`allow_mpi_as_root` (sets OMPI_ALLOW_RUN_AS_ROOT[_CONFIRM]=1 for withmpi=True).',
        )  # fmt: skip
        spec.input(
            'max_concurrent',
            valid_type=orm.Int,
            default=lambda: orm.Int(4),
            validator=_validate_max_concurrent,
        )
        spec.input(
            'min_success_fraction', valid_type=orm.Float, default=lambda: orm.Float(0.5),
            validator=_validate_fraction, help='Below this fraction of labelled configurations the work chain fails.',
        )  # fmt: skip
        spec.input(
            'guard', valid_type=orm.Dict, required=False,
            help=f'Outlier guard settings, defaults {DEFAULT_GUARD}.',
        )  # fmt: skip
        spec.inputs.validator = _validate_inputs

        spec.outline(
            cls.setup,
            cls.prescreen,
            if_(cls.is_cp2k)(
                cls.prepare_cp2k,
                while_(cls.has_pending)(
                    cls.submit_cp2k,
                    cls.inspect_cp2k,
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
            410, 'ERROR_TOO_FEW_LABELLED',
            message='only {n_labelled} of {n_input} configurations were labelled, below min_success_fraction={fraction}.',
        )  # fmt: skip
        spec.exit_code(
            420, 'ERROR_SUB_PROCESS_FAILED_CLASSICAL',
            message='the classical LAMMPS rerun failed with exit status {status}: {message}',
        )  # fmt: skip

    # --- setup ------------------------------------------------------------------------------------------------
    def setup(self):
        """Turn the input into one StructureData per configuration and initialise the bookkeeping."""
        if 'dataset' in self.inputs:
            self.ctx.structures = dict(dataset_to_structures(self.inputs.dataset))
        else:
            self.ctx.structures = dict(self.inputs.structures)
        self.ctx.guard = {**DEFAULT_GUARD, **(self.inputs.guard.get_dict() if 'guard' in self.inputs else {})}
        self.ctx.failures = {}
        self.ctx.retried = []
        self.ctx.results = {}
        user_options = self.inputs.options.get_dict() if 'options' in self.inputs else {}
        options = {**_DEFAULT_OPTIONS, **user_options}
        code = self.inputs.get('cp2k_code') if self.is_cp2k() else self.inputs.get('classical_code')
        if 'withmpi' not in user_options and code is not None and code.with_mpi is not None:
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
            reason = check_geometry(self.ctx.structures[key].get_ase(), self.ctx.guard['min_distance'])
            if reason:
                self.ctx.failures[key] = f'refused before labelling: {reason}'
                self.report(f'configuration {key} refused: {reason}')

    def is_cp2k(self):
        """Return whether the oracle is CP2K."""
        return self.inputs.oracle.value == 'cp2k'

    # --- CP2K oracle ------------------------------------------------------------------------------------------
    def prepare_cp2k(self):
        """Load the protocol, write the basis/pseudopotential entries and queue the configurations."""
        overrides = self.inputs.overrides.get_dict() if 'overrides' in self.inputs else {}
        self.ctx.settings = cp2k_inputs.load_protocol(self.inputs.protocol.value, overrides)
        self.ctx.config_overrides = (
            self.inputs.config_overrides.get_dict() if 'config_overrides' in self.inputs else {}
        )
        elements = sorted({kind.symbol for node in self.ctx.structures.values() for kind in node.kinds})
        self.ctx.elements = elements
        self.ctx.data_files = {}
        if self.ctx.settings['method'] == 'dft':
            for filename, text in cp2k_inputs.extract_data_files(self.ctx.settings, elements).items():
                node = orm.SinglefileData.from_string(text, filename=filename)
                self.ctx.data_files[filename.lower()] = node.store()
        self.ctx.queue = [(key, 0) for key in sorted(self.ctx.structures) if key not in self.ctx.failures]
        self.ctx.running = {}

    def has_pending(self):
        """Return whether configurations remain to be labelled or are being labelled."""
        return bool(self.ctx.queue) or bool(self.ctx.running)

    def _cp2k_builder(self, key: str, attempt: int):
        settings = cp2k_inputs.deep_merge(self.ctx.settings, self.ctx.config_overrides.get(key, {}))
        if attempt > 0:
            settings = cp2k_inputs.robust_settings(settings)
        Cp2kBaseWorkChain = WorkflowFactory('cp2k.base')
        builder = Cp2kBaseWorkChain.get_builder()
        builder.cp2k.code = self.inputs.cp2k_code
        builder.cp2k.structure = self.ctx.structures[key]
        builder.cp2k.parameters = orm.Dict(cp2k_inputs.build_cp2k_parameters(settings, self.ctx.elements))
        builder.cp2k.settings = orm.Dict(
            {'additional_retrieve_list': [cp2k_inputs.FORCES_FILE, cp2k_inputs.STRESS_FILE]}
        )
        if self.ctx.data_files:
            builder.cp2k.file = self.ctx.data_files
        options = dict(self.ctx.options)
        environment = dict(options['environment_variables'])
        threads = self.ctx.omp_num_threads or settings.get('omp_num_threads')
        if threads:
            environment.setdefault('OMP_NUM_THREADS', str(threads))
        options['environment_variables'] = environment
        options['parser_name'] = 'mlpot.cp2k'
        builder.cp2k.metadata.options = options
        builder.cp2k.metadata.call_link_label = f'cp2k_{key}'
        builder.max_iterations = orm.Int(int(settings.get('max_iterations', 1)))
        builder.handler_overrides = orm.Dict(
            {'restart_incomplete_calculation': {'enabled': bool(settings.get('cp2k_restart', False))}}
        )
        builder.metadata.call_link_label = f'label_{key}_attempt{attempt}'
        return builder, settings

    def submit_cp2k(self):
        """Fill the free slots of the window (at most ``max_concurrent`` running) and wait for the FIRST to finish.

        Every running child is (re)awaited as ``ctx.window.<key>``; :meth:`_on_awaitable_finished` resumes the
        work chain as soon as one of them terminates, so a slot is refilled without waiting for the slowest.
        """
        while self.ctx.queue and len(self.ctx.running) < self.inputs.max_concurrent.value:
            key, attempt = self.ctx.queue.pop(0)
            builder, settings = self._cp2k_builder(key, attempt)
            node = self.submit(builder)
            self.ctx.running[node.uuid] = (key, attempt, int(settings.get('max_retries', 0)))
            self.report(f'submitted {node.process_label}<{node.pk}> for {key} (attempt {attempt})')
        running = {f'{_WINDOW}.{key}': orm.load_node(uuid) for uuid, (key, _, _) in self.ctx.running.items()}
        return ToContext(**running)

    def inspect_cp2k(self):
        """Handle every finished child: store its result, or queue one robust retry, or exclude it with the reason."""
        for uuid, (key, attempt, max_retries) in list(self.ctx.running.items()):
            node = orm.load_node(uuid)
            if not node.is_terminated:
                continue  # still running: it keeps its slot and is awaited again
            del self.ctx.running[uuid]
            self.ctx.get(_WINDOW, {}).pop(key, None)
            if node.is_finished_ok:
                self.ctx.results[key] = node.outputs.output_parameters
                continue
            reason, status = self._failure_reason(node)
            if attempt < max_retries and (status in _RETRIABLE or status is None):
                self.report(f'{key}: {reason}; retrying with the robust settings')
                self.ctx.retried.append(key)
                self.ctx.queue.append((key, attempt + 1))
            else:
                self.report(f'{key} excluded: {reason}')
                self.ctx.failures[key] = reason

    def _on_awaitable_finished(self, awaitable: Awaitable) -> None:
        """Resume as soon as ONE child of the CP2K window terminates (aiida-core waits for all of them).

        aiida-core resumes a work chain only once every awaitable of a step is resolved, which would turn the
        window into batches waiting for their slowest member. For awaitables of ``ctx.window`` the chain is
        resumed at the first termination; the others keep running, are dropped from this wait (the next step
        starts with no awaitables) and are awaited again by :meth:`submit_cp2k`. A late callback for a child
        that is no longer awaited is ignored.
        """
        if awaitable not in self._awaitables:
            return
        super()._on_awaitable_finished(awaitable)
        if (
            self.state == ProcessState.WAITING
            and self._awaitables
            and str(awaitable.key).startswith(f'{_WINDOW}.')
        ):
            self.resume()

    @staticmethod
    def _failure_reason(node) -> tuple[str, int | None]:
        """Return a readable reason and the exit status of the last CP2K calculation of a failed base chain."""
        calcs = sorted((c for c in node.called if isinstance(c, orm.CalcJobNode)), key=lambda c: c.ctime)
        reason = (
            f'{node.process_label}<{node.pk}> failed (exit status {node.exit_status}: {node.exit_message})'
        )
        if not calcs:
            return reason, None
        last = calcs[-1]
        status = last.exit_status
        reason += f'; last Cp2kCalculation<{last.pk}> exit status {status}: {last.exit_message}'
        if 'output_parameters' in last.outputs:
            values = last.outputs.output_parameters.get_dict()
            if not values.get('scf_converged', True):
                reason += ' (SCF not converged)'
        return reason, status

    # --- classical oracle -------------------------------------------------------------------------------------
    def run_classical(self):
        """Run ONE LammpsRerunCalculation over all configurations that passed the prescreen."""
        keys = [key for key in sorted(self.ctx.structures) if key not in self.ctx.failures]
        if not keys:
            return None
        LammpsRerunCalculation = CalculationFactory('mlpot.lammps.rerun')
        builder = LammpsRerunCalculation.get_builder()
        builder.code = self.inputs.classical_code
        builder.potential = self.inputs.potential
        if 'potential_files' in self.inputs:
            builder.potential_files = dict(self.inputs.potential_files)
        builder.structures = {key: self.ctx.structures[key] for key in keys}
        options = dict(self.ctx.options)
        options.pop('parser_name', None)
        builder.metadata.options = options
        builder.metadata.call_link_label = 'classical'
        node = self.submit(builder)
        self.report(f'submitted {node.process_label}<{node.pk}> for {len(keys)} configurations')
        return ToContext(classical=node)

    def inspect_classical(self):
        """Fail with ERROR_SUB_PROCESS_FAILED_CLASSICAL if the single LAMMPS job failed."""
        if 'classical' not in self.ctx:
            return None
        node = self.ctx.classical
        if not node.is_finished_ok:
            return self.exit_codes.ERROR_SUB_PROCESS_FAILED_CLASSICAL.format(
                status=node.exit_status, message=node.exit_message
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
        outputs = collect_labels(
            guard=orm.Dict(self.ctx.guard),
            report=report,
            metadata={'call_link_label': 'collect_labels'},
            **kwargs,
        )
        self.ctx.collected = outputs

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
