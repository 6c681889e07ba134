"""`GapFitWorkChain`: fit a GAP with restarts on out-of-memory and walltime, then measure test-set errors."""

from __future__ import annotations

import copy
import pathlib

import yaml
from aiida import orm
from aiida.common import AttributeDict
from aiida.engine import BaseRestartWorkChain, ProcessHandlerReport, if_, process_handler, while_

from aiida_mlpot.calculations.functions.metrics import compute_error_metrics, evaluate_potential
from aiida_mlpot.calculations.gap_fit import GapFitCalculation, declared_memory_mb, validate_fit_inputs
from aiida_mlpot.calculations.gap_params import dataset_stats, estimate_memory, reduce_sparse_points
from aiida_mlpot.data.dataset import DatasetData

__all__ = ('GapFitWorkChain', 'load_protocol', 'plan_memory')

PROTOCOL_FILE = pathlib.Path(__file__).parent / 'protocols' / 'gap_fit.yaml'


def load_protocol(name: str | None = None) -> dict:
    """Return the fit parameters and options of protocol ``name`` (``fast``, ``balanced``, ``stringent``)."""
    content = yaml.safe_load(PROTOCOL_FILE.read_text())
    name = name or content['default_protocol']
    if name not in content['protocols']:
        raise ValueError(f'unknown protocol `{name}`; choose from {", ".join(content["protocols"])}')
    protocol = content['protocols'][name]
    parameters = copy.deepcopy(content['default_inputs']['parameters'])
    parameters['descriptors'] = copy.deepcopy(protocol['descriptors'])
    parameters['default_sigma'] = dict(protocol.get('default_sigma', parameters['default_sigma']))
    return {'parameters': parameters, 'options': dict(content['default_inputs']['options'])}


def _recursive_merge(base: dict, overrides: dict) -> dict:
    result = dict(base)
    for key, value in overrides.items():
        if isinstance(value, dict) and isinstance(result.get(key), dict):
            result[key] = _recursive_merge(result[key], value)
        else:
            result[key] = value
    return result


def plan_memory(parameters: dict, stats, limit_mb: float | None, factor: float = 0.5) -> tuple[dict, str]:
    """Return parameters whose estimated peak memory fits ``limit_mb`` and a note of what was changed.

    Sparse points are scaled by ``factor`` until the estimate fits. Raises ``ValueError`` with a clear
    message when it cannot fit (the descriptor arrays alone exceed the limit).
    """
    estimate = estimate_memory(parameters, stats)
    if limit_mb is None or estimate['total_mb'] <= limit_mb:
        return parameters, ''
    original = estimate['total_mb']
    current = parameters
    while estimate['total_mb'] > limit_mb:
        reduced = reduce_sparse_points(current, factor)
        if reduced is None:
            raise ValueError(
                f'the fit needs about {estimate["total_mb"]:.0f} MB even with the fewest sparse points '
                f'(descriptor arrays {estimate["descriptors_mb"]:.0f} MB), more than the {limit_mb:.0f} MB declared: '
                'use fewer configurations or smaller descriptors (n_max, l_max), or declare more memory'
            )
        current = reduced
        estimate = estimate_memory(current, stats)
    counts = [d['n_sparse'] for d in current['descriptors']]
    return current, (
        f'estimated {original:.0f} MB > declared {limit_mb:.0f} MB: n_sparse reduced to {counts} '
        f'(estimate {estimate["total_mb"]:.0f} MB)'
    )


def _validate_gap_fit_namespace(value, _):
    """Validate the fit parameters against the dataset (the memory is planned later, not refused here)."""
    if 'parameters' not in value or 'dataset' not in value:
        return None
    return validate_fit_inputs(value['parameters'].get_dict(), value['dataset'])


class GapFitWorkChain(BaseRestartWorkChain):
    """Fit a GAP with :class:`GapFitCalculation`, restarting on out-of-memory and walltime; then evaluate it.

    Before the first launch the memory is planned: if the estimate exceeds the declared memory, the sparse
    points are reduced until it fits, or the workchain stops with ``ERROR_INSUFFICIENT_MEMORY``. On an
    out-of-memory failure the sparse points of every descriptor are scaled by ``sparse_reduction_factor``;
    on a walltime failure the walltime is scaled by ``walltime_factor``. With a ``test_dataset`` the
    potential is evaluated on it (``evaluate_potential``) and compared (``compute_error_metrics``).
    """

    _process_class = GapFitCalculation

    @classmethod
    def define(cls, spec):
        super().define(spec)
        spec.expose_inputs(GapFitCalculation, namespace='gap_fit')
        # Validate the parameters at launch, but plan the memory in a step (reduce instead of refusing).
        spec.inputs['gap_fit'].validator = _validate_gap_fit_namespace
        spec.input(
            'test_dataset',
            valid_type=DatasetData,
            required=False,
            help='Held-out configurations with reference labels; the potential is evaluated on them.',
        )
        spec.input(
            'sparse_reduction_factor',
            valid_type=orm.Float,
            default=lambda: orm.Float(0.5),
            help='Factor applied to every n_sparse after an out-of-memory failure.',
        )
        spec.input(
            'walltime_factor',
            valid_type=orm.Float,
            default=lambda: orm.Float(2.0),
            help='Factor applied to max_wallclock_seconds after a walltime failure.',
        )
        spec.outline(
            cls.setup,
            cls.plan_memory,
            while_(cls.should_run_process)(
                cls.run_process,
                cls.inspect_process,
            ),
            cls.results,
            if_(cls.should_evaluate)(
                cls.evaluate,
            ),
        )
        spec.expose_outputs(GapFitCalculation)
        spec.output(
            'predictions', valid_type=DatasetData, required=False, help='Predictions on the test set.'
        )
        spec.output('metrics', valid_type=orm.Dict, required=False, help='Test-set error metrics.')
        spec.output(
            'parity_plot', valid_type=orm.SinglefileData, required=False, help='Test-set parity plot (PNG).'
        )
        spec.exit_code(201, 'ERROR_INVALID_INPUT', message='The fit inputs are invalid: {message}')
        spec.exit_code(
            202, 'ERROR_INSUFFICIENT_MEMORY', message='The fit cannot fit in the declared memory: {message}'
        )
        spec.exit_code(
            410,
            'ERROR_UNRECOVERABLE_OUT_OF_MEMORY',
            message='gap_fit ran out of memory and the sparse points cannot be reduced further.',
        )
        spec.exit_code(
            420,
            'ERROR_SUB_PROCESS_FAILED_EVALUATION',
            message='Evaluating the potential on the test set failed.',
        )
        spec.exit_code(
            421, 'ERROR_SUB_PROCESS_FAILED_METRICS', message='Computing the test-set error metrics failed.'
        )

    @classmethod
    def get_protocol_names(cls) -> list[str]:
        """Return the available protocols."""
        return list(yaml.safe_load(PROTOCOL_FILE.read_text())['protocols'])

    @classmethod
    def get_builder_from_protocol(
        cls,
        code: orm.AbstractCode,
        dataset: DatasetData,
        protocol: str | None = None,
        overrides: dict | None = None,
        options: dict | None = None,
        test_dataset: DatasetData | None = None,
    ):
        """Return a builder with the parameters of ``protocol`` for fitting ``dataset`` with ``code``.

        :param overrides: merged recursively into the parameters dictionary (e.g. ``{'seed': 2}`` or
            ``{'baseline': {...}}``; a ``descriptors`` list replaces the protocol's list).
        :param options: merged into ``metadata.options`` of the calculation.
        """
        settings = load_protocol(protocol)
        parameters = _recursive_merge(settings['parameters'], overrides or {})
        builder = cls.get_builder()
        builder.gap_fit.code = code
        builder.gap_fit.dataset = dataset
        builder.gap_fit.parameters = orm.Dict(parameters)
        builder.gap_fit.metadata.options = {**settings['options'], **(options or {})}
        if test_dataset is not None:
            builder.test_dataset = test_dataset
        return builder

    def setup(self):
        """Collect the calculation inputs in the context."""
        super().setup()
        self.ctx.inputs = AttributeDict(self.exposed_inputs(GapFitCalculation, 'gap_fit'))
        self.ctx.parameters = self.ctx.inputs.parameters.get_dict()

    def plan_memory(self):
        """Validate the inputs and reduce the sparse points if the estimate exceeds the declared memory."""
        message = validate_fit_inputs(self.ctx.parameters, self.ctx.inputs.dataset)
        if message:
            return self.exit_codes.ERROR_INVALID_INPUT.format(message=message)
        options = dict(self.ctx.inputs.get('metadata', {}).get('options', {}))
        limit_mb, source = declared_memory_mb(options, self.ctx.inputs.code.computer)
        try:
            parameters, note = plan_memory(
                self.ctx.parameters, dataset_stats(self.ctx.inputs.dataset.to_ase()), limit_mb
            )
        except ValueError as exception:
            return self.exit_codes.ERROR_INSUFFICIENT_MEMORY.format(message=f'{exception} ({source})')
        if note:
            self.report(f'{note} ({source})')
            self._set_parameters(parameters)
        return None

    def _set_parameters(self, parameters: dict) -> None:
        self.ctx.parameters = parameters
        self.ctx.inputs.parameters = orm.Dict(parameters)

    def should_evaluate(self) -> bool:
        """Return whether a test set was given."""
        return 'test_dataset' in self.inputs

    def evaluate(self):
        """Evaluate the potential on the test set and compute the error metrics (both calcfunctions)."""
        potential = self.outputs['potential']
        predictions = evaluate_potential(
            potential, self.inputs.test_dataset, metadata={'call_link_label': 'evaluate_potential'}
        )
        if not isinstance(predictions, DatasetData):
            return self.exit_codes.ERROR_SUB_PROCESS_FAILED_EVALUATION
        result = compute_error_metrics(
            self.inputs.test_dataset, predictions, metadata={'call_link_label': 'compute_error_metrics'}
        )
        if 'metrics' not in result:
            return self.exit_codes.ERROR_SUB_PROCESS_FAILED_METRICS
        self.out('predictions', predictions)
        self.out('metrics', result['metrics'])
        self.out('parity_plot', result['parity_plot'])
        overall = result['metrics'].get_dict()['overall']
        summary = ', '.join(
            f'{name} RMSE {stats["rmse"]:.4g} {stats["unit"]}' for name, stats in overall.items()
        )
        self.report(f'test set ({self.inputs.test_dataset.n_configs} configurations): {summary}')
        return None

    @process_handler(
        priority=500,
        exit_codes=[
            GapFitCalculation.exit_codes.ERROR_OUT_OF_MEMORY,
            GapFitCalculation.exit_codes.ERROR_SCHEDULER_OUT_OF_MEMORY,
        ],
    )
    def handle_out_of_memory(self, node):
        """Retry with fewer sparse points in every descriptor."""
        factor = self.inputs.sparse_reduction_factor.value
        reduced = reduce_sparse_points(self.ctx.parameters, factor)
        if reduced is None:
            self.report('out of memory with the minimum number of sparse points: giving up')
            return ProcessHandlerReport(True, self.exit_codes.ERROR_UNRECOVERABLE_OUT_OF_MEMORY)
        before = [d['n_sparse'] for d in self.ctx.parameters['descriptors']]
        after = [d['n_sparse'] for d in reduced['descriptors']]
        self.report(f'{node.process_label}<{node.pk}> ran out of memory: n_sparse {before} -> {after}')
        self._set_parameters(reduced)
        return ProcessHandlerReport(True)

    @process_handler(
        priority=400,
        exit_codes=[
            GapFitCalculation.exit_codes.ERROR_OUT_OF_WALLTIME,
            GapFitCalculation.exit_codes.ERROR_SCHEDULER_OUT_OF_WALLTIME,
        ],
    )
    def handle_out_of_walltime(self, node):
        """Restart from scratch with a longer walltime (gap_fit cannot continue a fit)."""
        options = self.ctx.inputs.metadata.options
        current = options.get('max_wallclock_seconds') or node.get_option('max_wallclock_seconds') or 3600
        new = int(current * self.inputs.walltime_factor.value)
        options['max_wallclock_seconds'] = new
        self.report(
            f'{node.process_label}<{node.pk}> hit the walltime: max_wallclock_seconds {current} -> {new}'
        )
        return ProcessHandlerReport(True)
