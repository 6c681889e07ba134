"""`SerialCalcJob`: the base of this package's CalcJobs that run one serial process of one program.

``GapFitCalculation`` (``gap_fit``) and the driver calculations (:class:`~aiida_mlpot.calculations.driver.
DriverCalculation`, the ``python`` code) share what is declared here: the ``code`` port accepts only a code of
their program (:func:`~aiida_mlpot.calculations.ports.code_validator`), the parser is theirs by default, the job
is one process on one machine without MPI, and an executable that cannot be started is its own exit code
(:func:`define_executable_exit_code`, declared by the LAMMPS calculations too).
"""

from __future__ import annotations

from aiida.engine import CalcJob

from aiida_mlpot.calculations.ports import code_validator

__all__ = ('EXIT_EXECUTABLE_NOT_RUNNABLE', 'SerialCalcJob', 'define_executable_exit_code')

#: ``(status, label, message)`` of a job whose executable the shell could not start (missing, not executable,
#: a bad interpreter or missing shared libraries); the same for every calculation of the package, CP2K included.
EXIT_EXECUTABLE_NOT_RUNNABLE = (
    305,
    'ERROR_EXECUTABLE_NOT_RUNNABLE',
    'executable not found / not runnable: {detail} (fix the code `{code}`: verdi code show / aiida-mlpot setup)',
)


def define_executable_exit_code(spec) -> None:
    """Declare :data:`EXIT_EXECUTABLE_NOT_RUNNABLE` on a CalcJob ``spec`` (the parsers find it with
    :func:`aiida_mlpot.parsers.executable.executable_failure`)."""
    status, label, message = EXIT_EXECUTABLE_NOT_RUNNABLE
    spec.exit_code(status, label, message=message)


class SerialCalcJob(CalcJob):
    """Base class: a subclass sets ``PROGRAM`` (a key of :data:`~aiida_mlpot.calculations.ports.CODE_PLUGINS`)
    and ``PARSER_NAME`` (the default ``metadata.options.parser_name``)."""

    PROGRAM: str = ''
    PARSER_NAME: str = ''

    @classmethod
    def define(cls, spec):
        super().define(spec)
        spec.inputs['code'].validator = code_validator(cls.PROGRAM)
        options = spec.inputs['metadata']['options']
        if cls.PARSER_NAME:
            options['parser_name'].default = cls.PARSER_NAME
        options['resources'].default = {'num_machines': 1, 'num_mpiprocs_per_machine': 1}
        options['withmpi'].default = False
        define_executable_exit_code(spec)
