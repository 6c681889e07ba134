"""`DriverCalculation`: the base of the calculations that run a driver of :mod:`aiida_mlpot.engines` on the compute
node with the ``python`` code of the environment: ``python -m <DRIVER_MODULE> input.json``.

The driver side is :func:`aiida_mlpot.engines.command.run_command` (JSON input, summary always written); this
side writes the JSON input and builds the job: one code run, stdout and stderr to ``driver.out`` and
``driver.err`` (retrieved, with the summary and the result files a subclass names in ``RESULT_FILES``, whose
names the JSON input passes to the driver), one machine, one process, no MPI
(:class:`~aiida_mlpot.calculations.base.SerialCalcJob`). The exit codes of the summary and of the main result
are declared here (301 summary missing, 302 unreadable, 303/304 the same for the main result, 310 the driver's
own error); the parser side is :class:`aiida_mlpot.parsers.driver.DriverParser`.
"""

from __future__ import annotations

import json
from collections.abc import Sequence

from aiida.common.datastructures import CalcInfo, CodeInfo
from aiida.common.folders import Folder

from aiida_mlpot.calculations.base import SerialCalcJob

__all__ = ('DriverCalculation',)


class DriverCalculation(SerialCalcJob):
    """Base class: a subclass sets ``DRIVER_MODULE``, ``PARSER_NAME`` and ``RESULT_FILES``, and its
    ``prepare_for_submission`` returns :meth:`driver_calcinfo`."""

    PROGRAM = 'python'
    #: the module run with ``python -m`` (set by the subclass)
    DRIVER_MODULE: str = ''
    FILENAME_INPUT = 'input.json'
    FILENAME_SUMMARY = 'summary.json'
    FILENAME_STDOUT = 'driver.out'
    FILENAME_STDERR = 'driver.err'
    #: the files the driver writes besides its summary (key of the JSON input -> file name), all retrieved; the
    #: first is the main result: 303 ``ERROR_OUTPUT_<KEY>_MISSING`` when it is missing or empty, 304
    #: ``ERROR_OUTPUT_<KEY>_INVALID`` (message: ``RESULT_INVALID``) when it cannot be read
    RESULT_FILES: dict[str, str] = {}
    RESULT_INVALID = ''

    @classmethod
    def define(cls, spec):
        super().define(spec)
        options = spec.inputs['metadata']['options']
        options['input_filename'].default = cls.FILENAME_INPUT
        options['output_filename'].default = cls.FILENAME_STDOUT
        spec.exit_code(
            301, 'ERROR_OUTPUT_SUMMARY_MISSING', message='`summary.json` was not retrieved: {detail}'
        )
        spec.exit_code(
            302, 'ERROR_OUTPUT_SUMMARY_INVALID', message='`summary.json` cannot be read: {exception}'
        )
        if cls.RESULT_FILES:
            key, filename = next(iter(cls.RESULT_FILES.items()))
            spec.exit_code(
                303, f'ERROR_OUTPUT_{key.upper()}_MISSING', message=f'`{filename}` is missing or empty.'
            )
            spec.exit_code(
                304, f'ERROR_OUTPUT_{key.upper()}_INVALID', message=f'{cls.RESULT_INVALID}: {{exception}}'
            )
        spec.exit_code(310, 'ERROR_DRIVER_FAILED', message='the driver stopped with an error: {reason}')

    def driver_calcinfo(self, folder: Folder, config: dict, local_copy_list: Sequence[tuple]) -> CalcInfo:
        """Write ``config``, with the names of the summary and the result files, as the driver's JSON input to
        ``folder``; return the job that runs the driver on it.

        :param local_copy_list: ``(node uuid, file in the node, file in the working directory)`` to copy.
        """
        with folder.open(self.FILENAME_INPUT, 'w') as handle:
            json.dump({**config, 'summary': self.FILENAME_SUMMARY, **self.RESULT_FILES}, handle, indent=1)
        codeinfo = CodeInfo()
        codeinfo.code_uuid = self.inputs.code.uuid
        codeinfo.cmdline_params = ['-m', self.DRIVER_MODULE, self.FILENAME_INPUT]
        codeinfo.stdout_name = self.FILENAME_STDOUT
        codeinfo.stderr_name = self.FILENAME_STDERR
        calcinfo = CalcInfo()
        calcinfo.codes_info = [codeinfo]
        calcinfo.local_copy_list = list(local_copy_list)
        calcinfo.retrieve_list = [
            self.FILENAME_SUMMARY,
            *self.RESULT_FILES.values(),
            self.FILENAME_STDOUT,
            self.FILENAME_STDERR,
        ]
        return calcinfo
