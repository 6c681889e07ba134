"""`GapFitWorkChain`: fit a GAP with restarts on out-of-memory and walltime, then measure test-set errors."""

from __future__ import annotations

import math
import pathlib

from aiida import orm
from aiida.common import AttributeDict
from aiida.engine import BaseRestartWorkChain, ProcessHandlerReport, ToContext, if_, process_handler, while_

from aiida_mlpot.calculations.evaluate import EvaluateCalculation, check_dataset
from aiida_mlpot.calculations.functions.metrics import compute_error_metrics
from aiida_mlpot.calculations.gap_fit import GapFitCalculation, declared_memory_mb, validate_fit_inputs
from aiida_mlpot.calculations.ports import check_options, missing_code_message
from aiida_mlpot.data.dataset import DatasetData
from aiida_mlpot.inputs.gap_fit import dataset_stats, plan_memory, reduce_sparse_points, validate_parameters
from aiida_mlpot.workflows.ports import expose_closed
from aiida_mlpot.workflows.protocols.utils import ProtocolMixin, populate_builder
from aiida_mlpot.workflows.recovery import RecoveryMixin

__all__ = ('GapFitWorkChain', 'validate_inputs')


def _validate_gap_fit_namespace(value, _):
    """Validate the fit parameters against the dataset (the memory is planned later, not refused here)."""
    if 'parameters' in value and 'dataset' not in value:
        # exposed by a parent that provides the training set itself (the loop): the parameters alone
        return validate_parameters(value['parameters'].get_dict())
    if 'parameters' not in value:
        return None
    return missing_code_message(value, 'gap_fit') or validate_fit_inputs(
        value['parameters'].get_dict(), value['dataset']
    )


def _validate_sparse_reduction_factor(value, _):
    if value is not None and not 0.0 < value.value < 1.0:
        return f'`sparse_reduction_factor` must be between 0 and 1 (exclusive), got {value.value}'
    return None


def _validate_walltime_factor(value, _):
    if value is not None and not (math.isfinite(value.value) and value.value > 1.0):
        return f'`walltime_factor` must be a finite number above 1, got {value.value}'
    return None


def validate_inputs(value, ctx):
    """The evaluation inputs go with a ``test_dataset`` (both or neither), whose species the fit will know."""
    if ctx is not None and 'test_dataset' not in ctx:
        return None  # exposed by a parent work chain that provides the test set when it launches the fit
    evaluate = value.get('evaluate') or {}
    test_dataset = value.get('test_dataset')
    if test_dataset is None:
        if evaluate:
            return f'`evaluate.{next(iter(evaluate))}` is given without a `test_dataset` to evaluate'
        return None
    if 'code' not in evaluate:
        return 'a `test_dataset` needs `evaluate.code`: the python code that evaluates the potential on it'
    training = value.get('gap_fit', {}).get('dataset')
    # the potential will know the species of its training set
    return check_dataset(
        test_dataset, training.species if training is not None else test_dataset.species, 'test_dataset'
    )


def failed_by(cause: str) -> list:
    """Return the exit codes of a ``GapFitCalculation`` that failed by ``cause`` (``OUT_OF_MEMORY``,
    ``OUT_OF_WALLTIME``): as gap_fit's parser saw it (``ERROR_<cause>``) or as the scheduler did
    (``ERROR_SCHEDULER_<cause>``)."""
    codes = GapFitCalculation.exit_codes
    return [codes[f'ERROR_{cause}'], codes[f'ERROR_SCHEDULER_{cause}']]


class GapFitWorkChain(RecoveryMixin, ProtocolMixin, BaseRestartWorkChain):
    """Fit a GAP with :class:`GapFitCalculation`, restarting on out-of-memory and walltime; then evaluate it.

    Before the first launch the memory is planned: if the estimate exceeds the declared memory, the sparse
    points are reduced until it fits, or the workchain stops with ``ERROR_INSUFFICIENT_MEMORY``. On an
    out-of-memory failure the sparse points of every descriptor are scaled by ``sparse_reduction_factor``;
    on a walltime failure the walltime is scaled by ``walltime_factor``. With a ``test_dataset`` the potential
    is evaluated on it on the compute node (:class:`EvaluateCalculation`, inputs under ``evaluate``) and the
    predictions are compared with the reference labels (``compute_error_metrics``); a failure of either is
    ``ERROR_SUB_PROCESS_FAILED_EVALUATION``.
    """

    _process_class = GapFitCalculation
    _protocol_file = pathlib.Path(__file__).parent / 'protocols' / 'gap_fit.yaml'

    @classmethod
    def define(cls, spec):
        super().define(spec)
        expose_closed(spec, GapFitCalculation, 'gap_fit')
        # Validate the parameters at launch, but plan the memory in a step (reduce instead of refusing).
        spec.inputs['gap_fit'].validator = _validate_gap_fit_namespace
        spec.input(
            'test_dataset',
            valid_type=DatasetData,
            required=False,
            help='Held-out configurations with reference labels; the potential is evaluated on them.',
        )
        expose_closed(
            spec,
            EvaluateCalculation,
            'evaluate',
            exclude=('potential', 'dataset'),
            namespace_options={
                'required': False,
                'populate_defaults': False,
                'help': 'Inputs of the test-set evaluation (`code`: the python code; with `test_dataset` only).',
            },
        )
        spec.input(
            'sparse_reduction_factor',
            valid_type=orm.Float,
            default=lambda: orm.Float(0.5),
            validator=_validate_sparse_reduction_factor,
            help='Factor applied to every n_sparse after an out-of-memory failure (between 0 and 1).',
        )
        spec.input(
            'walltime_factor',
            valid_type=orm.Float,
            default=lambda: orm.Float(2.0),
            validator=_validate_walltime_factor,
            help='Factor applied to max_wallclock_seconds after a walltime failure (above 1).',
        )
        spec.inputs.validator = validate_inputs
        spec.outline(
            cls.setup,
            cls.plan_memory,
            while_(cls.should_run_process)(
                cls.run_process,
                cls.inspect_process,
            ),
            cls.results,
            if_(cls.should_evaluate)(
                cls.run_evaluation,
                cls.inspect_evaluation,
                cls.compute_metrics,
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
            message='Evaluating the potential on the test set failed: {process} finished with exit status '
            '{status}: {message}',
        )

    @classmethod
    def get_builder_from_protocol(
        cls,
        code: orm.AbstractCode,
        dataset: DatasetData,
        protocol: str | None = None,
        overrides: dict | None = None,
        options: dict | None = None,
        test_dataset: DatasetData | None = None,
        python_code: orm.AbstractCode | None = None,
    ):
        """Return a builder with the inputs of ``protocol`` for fitting ``dataset`` with the ``gap_fit`` ``code``.

        :param protocol: ``fast``, ``balanced`` (default) or ``stringent`` (``get_available_protocols()``).
        :param overrides: inputs keyed like the ports, merged recursively over the protocol's (e.g.
            ``{'gap_fit': {'parameters': {'seed': 2}}}``; a ``descriptors`` list replaces the protocol's list).
            An unknown key is a ``ValueError`` naming it; the keys inside ``gap_fit.parameters`` are checked by
            the parameters validator when the builder is launched.
        :param options: merged into ``metadata.options`` of the fit and of the evaluation.
        :param test_dataset: held-out configurations; needs ``python_code``.
        :param python_code: the python code that runs the evaluation on the compute node.
        """
        if test_dataset is None and python_code is not None:
            raise ValueError(
                '`python_code` evaluates the potential on a `test_dataset`: give one, or no code'
            )
        if test_dataset is not None and python_code is None:
            raise ValueError('a `test_dataset` needs the `python_code` that evaluates the potential on it')
        if test_dataset is None and 'evaluate' in (overrides or {}):
            raise ValueError('`evaluate` overrides need a `test_dataset`')
        check_options(options)
        inputs = cls.get_protocol_inputs(protocol, overrides)
        namespaces = ('gap_fit', 'evaluate') if test_dataset is not None else ('gap_fit',)
        if test_dataset is None:
            inputs.pop('evaluate', None)
        for namespace in namespaces:
            metadata = inputs.setdefault(namespace, {}).setdefault('metadata', {})
            metadata['options'] = {**metadata.get('options', {}), **(options or {})}
        builder = cls.get_builder()
        populate_builder(builder, inputs)
        builder.gap_fit.code = code
        builder.gap_fit.dataset = dataset
        if test_dataset is not None:
            builder.test_dataset = test_dataset
            builder.evaluate.code = python_code
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

    def run_evaluation(self):
        """Evaluate the fitted potential on the test set on the compute node."""
        inputs = AttributeDict(self.exposed_inputs(EvaluateCalculation, 'evaluate'))
        inputs.potential = self.outputs['potential']
        inputs.dataset = self.inputs.test_dataset
        inputs.metadata = {**inputs.get('metadata', {}), 'call_link_label': 'evaluate'}
        node = self.submit(EvaluateCalculation, **inputs)
        self.report(
            f'launching EvaluateCalculation<{node.pk}> on {self.inputs.test_dataset.n_configs} configurations'
        )
        return ToContext(evaluation=node)

    def inspect_evaluation(self):
        """Stop with ``ERROR_SUB_PROCESS_FAILED_EVALUATION`` unless the evaluation finished ok."""
        node = self.ctx.evaluation
        if not node.is_finished_ok:
            return self.exit_codes.ERROR_SUB_PROCESS_FAILED_EVALUATION.format(
                process=f'{node.process_label}<{node.pk}>', status=node.exit_status, message=node.exit_message
            )
        self.out('predictions', node.outputs.predictions)
        return None

    def compute_metrics(self):
        """Compare the predictions with the reference labels (``compute_error_metrics``, a calcfunction)."""
        predictions = self.ctx.evaluation.outputs.predictions
        results, node = compute_error_metrics.run_get_node(
            self.inputs.test_dataset, predictions, metadata={'call_link_label': 'compute_error_metrics'}
        )
        if not node.is_finished_ok:
            return self.exit_codes.ERROR_SUB_PROCESS_FAILED_EVALUATION.format(
                process=f'{node.process_label}<{node.pk}>', status=node.exit_status, message=node.exit_message
            )
        self.out('metrics', results['metrics'])
        self.out('parity_plot', results['parity_plot'])
        overall = results['metrics'].get_dict()['overall']
        summary = ', '.join(
            f'{name} RMSE {stats["rmse"]:.4g} {stats["unit"]}' for name, stats in overall.items()
        )
        self.report(f'test set ({self.inputs.test_dataset.n_configs} configurations): {summary}')
        return None

    @process_handler(priority=500, exit_codes=failed_by('OUT_OF_MEMORY'))
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

    @process_handler(priority=400, exit_codes=failed_by('OUT_OF_WALLTIME'))
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
