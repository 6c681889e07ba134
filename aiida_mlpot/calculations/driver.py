"""`DriverCalculation`: the base of the calculations that run a driver of :mod:`aiida_mlpot.engines` on the compute
node with the ``python`` code of the environment: ``python -m <DRIVER_MODULE> input.json``.

The driver side is :func:`aiida_mlpot.engines.command.run_command` (JSON input, summary always written); this
side writes the JSON input and builds the job: one code run, stdout and stderr to ``driver.out`` and
``driver.err`` (retrieved, with the files a subclass names), one machine, one process, no MPI by default. The
exit codes of the summary are declared here (301 missing, 302 unreadable, 310 the driver's own error); the
parser side is :class:`aiida_mlpot.parsers.driver.DriverParser`.
"""

from __future__ import annotations

import json
from collections.abc import Sequence

from aiida.common.datastructures import CalcInfo, CodeInfo
from aiida.common.folders import Folder
from aiida.engine import CalcJob

from aiida_mlpot.calculations.ports import code_validator

__all__ = ('DriverCalculation',)


class DriverCalculation(CalcJob):
    """Base class: a subclass sets ``DRIVER_MODULE`` and the ``parser_name`` default, and its
    ``prepare_for_submission`` returns :meth:`driver_calcinfo`."""

    #: the module run with ``python -m`` (set by the subclass)
    DRIVER_MODULE: str = ''
    FILENAME_INPUT = 'input.json'
    FILENAME_SUMMARY = 'summary.json'
    FILENAME_STDOUT = 'driver.out'
    FILENAME_STDERR = 'driver.err'

    @classmethod
    def define(cls, spec):
        super().define(spec)
        spec.inputs['code'].validator = code_validator('python')
        options = spec.inputs['metadata']['options']
        options['input_filename'].default = cls.FILENAME_INPUT
        options['output_filename'].default = cls.FILENAME_STDOUT
        options['resources'].default = {'num_machines': 1, 'num_mpiprocs_per_machine': 1}
        options['withmpi'].default = False
        spec.exit_code(
            301, 'ERROR_OUTPUT_SUMMARY_MISSING', message='`summary.json` was not retrieved: {detail}'
        )
        spec.exit_code(
            302, 'ERROR_OUTPUT_SUMMARY_INVALID', message='`summary.json` cannot be read: {exception}'
        )
        spec.exit_code(310, 'ERROR_DRIVER_FAILED', message='the driver stopped with an error: {reason}')

    def driver_calcinfo(
        self, folder: Folder, config: dict, local_copy_list: Sequence[tuple], retrieve: Sequence[str]
    ) -> CalcInfo:
        """Write ``config`` as the driver's JSON input to ``folder``; return the job that runs the driver on it.

        :param local_copy_list: ``(node uuid, file in the node, file in the working directory)`` to copy.
        :param retrieve: files to retrieve besides the driver's stdout and stderr.
        """
        with folder.open(self.FILENAME_INPUT, 'w') as handle:
            json.dump(config, handle, indent=1)
        codeinfo = CodeInfo()
        codeinfo.code_uuid = self.inputs.code.uuid
        codeinfo.cmdline_params = ['-m', self.DRIVER_MODULE, self.FILENAME_INPUT]
        codeinfo.stdout_name = self.FILENAME_STDOUT
        codeinfo.stderr_name = self.FILENAME_STDERR
        calcinfo = CalcInfo()
        calcinfo.codes_info = [codeinfo]
        calcinfo.local_copy_list = list(local_copy_list)
        calcinfo.retrieve_list = [*retrieve, self.FILENAME_STDOUT, self.FILENAME_STDERR]
        return calcinfo
