"""`GapFitParser`: turn a finished ``gap_fit`` job into a ``GapPotentialData`` and a diagnostics ``Dict``."""

from __future__ import annotations

import pathlib
import tempfile

from aiida import orm
from aiida.engine import ExitCode
from aiida.parsers import Parser

from aiida_mlpot.calculations.gap_fit import GapFitCalculation
from aiida_mlpot.data.potential import GapPotentialData
from aiida_mlpot.inputs.gap_fit import dataset_stats, estimate_memory
from aiida_mlpot.parsers.executable import executable_failure
from aiida_mlpot.parsers.parse_raw.gap_fit import parse_gap_fit_log, parse_gap_xml_coordinates

__all__ = ('GapFitParser',)

#: Exit status of a process killed by SIGKILL (e.g. by the kernel's out-of-memory killer).
EXIT_STATUS_SIGKILL = 137


class GapFitParser(Parser):
    """Parse the gap_fit log and XML.

    Failure classification, in order: an executable the shell could not start -> ``ERROR_EXECUTABLE_NOT_RUNNABLE``;
    a memory error in the log, a SIGKILL, or an unfinished run under a
    ``memory_limit_mb`` (gap_fit exits with status 1 and no message when an allocation hits the rlimit)
    -> ``ERROR_OUT_OF_MEMORY``; a scheduler walltime -> ``ERROR_OUT_OF_WALLTIME``; ``SYSTEM ABORT`` ->
    ``ERROR_GAP_FIT_ABORTED``; any other unfinished run -> ``ERROR_GAP_FIT_CRASHED``.
    """

    def parse(self, **kwargs):
        retrieved = self.retrieved
        names = retrieved.base.repository.list_object_names()
        log_name = GapFitCalculation.FILENAME_LOG
        failure = executable_failure(self, [log_name])
        if failure:
            return failure
        if log_name not in names:
            return self.exit_codes.ERROR_OUTPUT_LOG_MISSING.format(filename=log_name)
        log = parse_gap_fit_log(retrieved.base.repository.get_object_content(log_name, mode='r'))
        status = None
        if GapFitCalculation.FILENAME_STATUS in names:
            text = retrieved.base.repository.get_object_content(
                GapFitCalculation.FILENAME_STATUS, mode='r'
            ).strip()
            status = int(text) if text.lstrip('-').isdigit() else None

        failure = self._classify_failure(log, status)
        if failure is not None:
            return failure

        xml_name = GapFitCalculation.FILENAME_XML
        if xml_name not in names:
            return self.exit_codes.ERROR_OUTPUT_XML_MISSING
        xml_text = retrieved.base.repository.get_object_content(xml_name, mode='r')
        coordinates = parse_gap_xml_coordinates(xml_text)
        missing = [c['sparseX_filename'] for c in coordinates if c['sparseX_filename'] not in names]
        if missing:
            return self.exit_codes.ERROR_SPARSEX_MISSING.format(error=', '.join(missing))

        with tempfile.TemporaryDirectory(prefix='mlpot-gapfit-') as tmp:
            folder = pathlib.Path(tmp)
            paths = []
            for name in [xml_name, *(c['sparseX_filename'] for c in coordinates)]:
                (folder / name).write_bytes(retrieved.base.repository.get_object_content(name, mode='rb'))
                paths.append(folder / name)
            potential = GapPotentialData.from_files(paths[0], extra_paths=paths[1:])

        self.out('potential', potential)
        self.out('diagnostics', orm.Dict(self._diagnostics(log, coordinates, status)))
        return ExitCode(0)

    def _pre_launch_estimate(self) -> dict | None:
        try:
            inputs = self.node.inputs
            return estimate_memory(inputs.parameters.get_dict(), dataset_stats(inputs.dataset.to_ase()))
        except Exception:  # noqa: BLE001 - the estimate is a diagnostic, never a reason to fail parsing
            return None

    def _classify_failure(self, log: dict, status: int | None):
        limit = self.node.inputs.memory_limit_mb.value if 'memory_limit_mb' in self.node.inputs else None
        finished = log['completed'] and status in (0, None)
        if finished:
            return None
        error = log['errors'][-1] if log['errors'] else 'no error message in the log'
        if log['out_of_memory'] or status == EXIT_STATUS_SIGKILL or limit is not None:
            memory_lines = [
                line for line in log['errors'] if 'alloc' in line.lower() or 'memory' in line.lower()
            ]
            error = memory_lines[-1] if memory_lines else error
            estimate = self._pre_launch_estimate()
            return self.exit_codes.ERROR_OUT_OF_MEMORY.format(
                limit=f'{limit} MB' if limit is not None else 'none',
                estimate=f'{estimate["total_mb"]:.0f}' if estimate else '?',
                error=error,
            )
        scheduler_exit = self.node.exit_status
        if scheduler_exit == GapFitCalculation.exit_codes.ERROR_SCHEDULER_OUT_OF_WALLTIME.status:
            return self.exit_codes.ERROR_OUT_OF_WALLTIME
        aborts = [line for line in log['errors'] if line.startswith('SYSTEM ABORT')]
        if aborts:
            return self.exit_codes.ERROR_GAP_FIT_ABORTED.format(error=aborts[-1])
        return self.exit_codes.ERROR_GAP_FIT_CRASHED.format(status=status, signal=log['signal'], error=error)

    def _diagnostics(self, log: dict, coordinates: list[dict], status: int | None) -> dict:
        estimate = self._pre_launch_estimate()
        dataset = self.node.inputs.dataset
        return {
            'gap_fit_version': log['version'],
            'exit_status': status,
            'n_configs': dataset.n_configs,
            'n_atoms': dataset.n_atoms_total,
            'n_targets': log['n_targets'],
            'descriptors': log['descriptors'],
            'n_sparse': [c['n_sparse'] for c in coordinates],
            'n_sparse_total': sum(c['n_sparse'] for c in coordinates),
            'coordinates': coordinates,
            'cur_errors': log['cur_errors'],
            'timers': log['timers'],
            'wall_time_s': log['wall_time_s'],
            'memory_peak_estimate_mb': log['memory_estimate_mb'],
            'memory_estimate_pre_launch_mb': estimate['total_mb'] if estimate else None,
            'system_memory_mb': log['system_memory_mb'],
            'warnings': log['warnings'],
        }
