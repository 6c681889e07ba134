"""`GapFitCalculation`: fit a Gaussian Approximation Potential with ``gap_fit`` (quippy-ase wheel)."""

from __future__ import annotations

import io

from aiida import orm
from aiida.common.datastructures import CalcInfo, CodeInfo
from aiida.common.folders import Folder

from aiida_mlpot.calculations.base import SerialCalcJob
from aiida_mlpot.calculations.ports import missing_code_message
from aiida_mlpot.data.dataset import DatasetData
from aiida_mlpot.data.potential import GapPotentialData
from aiida_mlpot.inputs.gap_fit import (
    build_command_line,
    coulomb_baseline_xml,
    dataset_stats,
    estimate_memory,
    validate_parameters,
)

__all__ = ('GapFitCalculation', 'declared_memory_mb', 'validate_fit_inputs')


def declared_memory_mb(options: dict, computer: orm.Computer | None) -> tuple[float | None, str]:
    """Return the memory (MB) a job may use and where that figure comes from.

    ``metadata.options.max_memory_kb`` wins; otherwise the computer's ``default_memory_per_machine``
    (kB) times the number of machines; ``(None, '')`` if neither is declared.
    """
    max_memory_kb = options.get('max_memory_kb')
    if max_memory_kb:
        return max_memory_kb / 1024.0, 'metadata.options.max_memory_kb'
    if computer is not None:
        per_machine = computer.get_default_memory_per_machine()
        if per_machine:
            machines = (options.get('resources') or {}).get('num_machines', 1) or 1
            return per_machine * machines / 1024.0, f'default_memory_per_machine of computer {computer.label}'
    return None, ''


def validate_fit_inputs(parameters: dict, dataset: DatasetData) -> str | None:
    """Return an error message if ``parameters`` do not fit ``dataset`` (species, config types, labels)."""
    message = validate_parameters(parameters)
    if message:
        return message
    if dataset.n_configs == 0:
        return 'the training `dataset` is empty'
    labels = set(dataset.properties) | set(dataset.base.attributes.get('partial_properties', []))
    if 'energy' not in labels and 'forces' not in labels:
        return 'the training `dataset` has neither energies nor forces to fit'
    if 'e0' not in parameters and 'energy' not in dataset.properties:
        return '`e0_method`: needs an energy in every configuration; give `e0` explicitly instead'
    for name in parameters.get('config_type_sigma', {}):
        if name not in dataset.config_types:
            return f'`config_type_sigma.{name}`: no configuration of that config_type in the dataset'
    e0 = parameters.get('e0')
    if isinstance(e0, dict):
        missing = sorted(set(dataset.species) - set(e0))
        if missing:
            return f'`e0.{missing[0]}`: missing; the dataset contains {", ".join(dataset.species)}'
    baseline = parameters.get('baseline')
    if baseline:
        missing = sorted(set(dataset.species) - set(baseline['charges']))
        if missing:
            return (
                f'`baseline.charges.{missing[0]}`: missing; the dataset contains {", ".join(dataset.species)}'
            )
    return None


def _validate_memory_limit(value, _) -> str | None:
    if value is not None and value.value <= 0:
        return f'`memory_limit_mb` must be a positive number of MB, got {value.value}'
    return None


class GapFitCalculation(SerialCalcJob):
    """Run ``gap_fit`` on a :class:`~aiida_mlpot.data.dataset.DatasetData` and return a ``GapPotentialData``.

    The fit uses energies, forces and virials (``energy``, ``forces``, ``virial`` in the extended XYZ)
    wherever the training set has them. Before submission the inputs are validated (unknown keys,
    wrong types, impossible values, config types or species missing from the data) and the peak
    memory is estimated (:func:`~aiida_mlpot.inputs.gap_fit.estimate_memory`); the job is
    refused if the estimate exceeds the declared memory (``metadata.options.max_memory_kb`` or the
    computer's ``default_memory_per_machine``).

    ``memory_limit_mb`` additionally runs gap_fit under a hard data-segment limit (``ulimit -d``), so
    that exceeding it fails cleanly with ``ERROR_OUT_OF_MEMORY`` instead of swapping or killing the node.
    """

    PROGRAM = 'gap_fit'
    PARSER_NAME = 'mlpot.gap_fit'
    FILENAME_DATASET = 'dataset.xyz'
    FILENAME_XML = 'gap.xml'
    FILENAME_LOG = 'gap_fit.log'
    FILENAME_STATUS = 'gap_fit.exit_status'
    FILENAME_BASELINE = 'baseline.xml'

    @classmethod
    def define(cls, spec):
        super().define(spec)
        spec.input('dataset', valid_type=DatasetData, help='The training configurations with their labels.')
        spec.input(
            'parameters',
            valid_type=orm.Dict,
            help='Structured fit parameters: descriptors, default_sigma, config_type_sigma, e0 or e0_method, '
            'sparse_jitter, seed, baseline (see `aiida_mlpot.inputs.gap_fit`).',
        )
        spec.input(
            'memory_limit_mb',
            valid_type=orm.Int,
            required=False,
            validator=_validate_memory_limit,
            help='Hard limit (MB) on the data segment of gap_fit (`ulimit -d`); exceeding it fails the job with '
            'ERROR_OUT_OF_MEMORY.',
        )
        spec.inputs.validator = cls._validate_inputs

        spec.output('potential', valid_type=GapPotentialData, help='The fitted potential.')
        spec.output(
            'diagnostics',
            valid_type=orm.Dict,
            help='Fit diagnostics: sparse points, targets, timings, memory estimates, CUR errors.',
        )

        spec.exit_code(
            301, 'ERROR_OUTPUT_LOG_MISSING', message='The gap_fit log `{filename}` was not retrieved.'
        )
        spec.exit_code(
            302, 'ERROR_OUTPUT_XML_MISSING', message='gap_fit finished but wrote no potential XML.'
        )
        spec.exit_code(
            303,
            'ERROR_SPARSEX_MISSING',
            message='The potential XML names sparseX files not retrieved: {error}',
        )
        spec.exit_code(310, 'ERROR_GAP_FIT_ABORTED', message='gap_fit aborted: {error}')
        spec.exit_code(
            311,
            'ERROR_GAP_FIT_CRASHED',
            message='gap_fit stopped before finishing (exit status {status}, signal {signal}): {error}',
        )
        spec.exit_code(400, 'ERROR_OUT_OF_WALLTIME', message='gap_fit was stopped by the scheduler walltime.')
        spec.exit_code(
            410,
            'ERROR_OUT_OF_MEMORY',
            message='gap_fit ran out of memory (limit {limit}, estimated peak {estimate} MB): {error}',
        )

    @classmethod
    def _validate_inputs(cls, value, _):
        """Validate the parameters against the dataset and the memory estimate against the declared memory."""
        if 'parameters' not in value or 'dataset' not in value:
            return None
        parameters = value['parameters'].get_dict()
        dataset = value['dataset']
        message = missing_code_message(value, 'gap_fit') or validate_fit_inputs(parameters, dataset)
        if message:
            return message
        options = dict(value.get('metadata', {}).get('options', {}))
        code = value.get('code')
        computer = code.computer if code is not None else value.get('metadata', {}).get('computer')
        limit_mb, source = declared_memory_mb(options, computer)
        if limit_mb is None:
            return None
        estimate = estimate_memory(parameters, dataset_stats(dataset.to_ase()))
        if estimate['total_mb'] > limit_mb:
            return (
                f'the estimated peak memory of the fit, {estimate["total_mb"]:.0f} MB (descriptors '
                f'{estimate["descriptors_mb"]:.0f} MB, covariance with {estimate["n_sparse_total"]} sparse points '
                f'x {estimate["n_targets"]} targets {estimate["covariance_mb"]:.0f} MB), exceeds the declared '
                f'{limit_mb:.0f} MB ({source}): reduce `descriptors[].n_sparse` or the dataset, or declare more memory'
            )
        return None

    def prepare_for_submission(self, folder: Folder) -> CalcInfo:
        """Write the command line (and the baseline XML); the dataset file is copied from its node."""
        parameters = self.inputs.parameters.get_dict()
        if 'baseline' in parameters:
            folder.create_file_from_filelike(
                io.StringIO(coulomb_baseline_xml(parameters['baseline'])),
                self.FILENAME_BASELINE,
                mode='w',
            )
        args = build_command_line(
            parameters,
            dataset_filename=self.FILENAME_DATASET,
            xml_filename=self.FILENAME_XML,
            baseline_filename=self.FILENAME_BASELINE,
        )
        args.append('do_copy_at_file=F')  # the training set is in the provenance graph already

        codeinfo = CodeInfo()
        codeinfo.code_uuid = self.inputs.code.uuid
        codeinfo.cmdline_params = args
        codeinfo.stdout_name = self.FILENAME_LOG
        codeinfo.join_files = True

        threads = int(self.inputs.metadata.options.resources.get('num_cores_per_mpiproc', 1) or 1)
        calcinfo = CalcInfo()
        calcinfo.codes_info = [codeinfo]
        calcinfo.local_copy_list = [
            (self.inputs.dataset.uuid, self.inputs.dataset.filename, self.FILENAME_DATASET),
        ]
        calcinfo.job_environment = {'OMP_NUM_THREADS': str(threads), 'OPENBLAS_NUM_THREADS': str(threads)}
        if 'memory_limit_mb' in self.inputs:
            calcinfo.prepend_text = f'ulimit -d {int(self.inputs.memory_limit_mb.value) * 1024}'
        # The exit status of gap_fit (the line right after the run line, unless options.append_text is set).
        calcinfo.append_text = f'echo $? > {self.FILENAME_STATUS}'
        calcinfo.retrieve_list = [
            self.FILENAME_LOG,
            self.FILENAME_STATUS,
            self.FILENAME_XML,
            f'{self.FILENAME_XML}.sparseX.*',
        ]
        return calcinfo
