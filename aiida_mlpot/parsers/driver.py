"""`DriverParser`: the base of the parsers of :class:`~aiida_mlpot.calculations.driver.DriverCalculation` jobs.

Reads retrieved files and the driver's ``summary.json``: missing (the driver was killed before writing it: the last
line of its stderr is the detail), unreadable, or present with its ``outcome``.
"""

from __future__ import annotations

import json

from aiida.engine import ExitCode
from aiida.parsers import Parser

from aiida_mlpot.parsers.executable import executable_failure

__all__ = ('DriverParser',)


class DriverParser(Parser):
    """Parser base with :meth:`read` (a retrieved file or None) and :meth:`read_summary`."""

    def read(self, name: str) -> str | None:
        """Return the content of the retrieved file ``name``, or None if it was not retrieved."""
        if name not in self.retrieved.base.repository.list_object_names():
            return None
        return self.retrieved.base.repository.get_object_content(name, mode='r')

    def read_summary(self) -> tuple[dict | None, ExitCode | None]:
        """Return the driver's summary (a dict with an ``outcome``) or the exit code of why there is none.

        ``ERROR_EXECUTABLE_NOT_RUNNABLE`` if the python executable could not be started,
        ``ERROR_OUTPUT_SUMMARY_MISSING`` with the last line of the driver's stderr, or
        ``ERROR_OUTPUT_SUMMARY_INVALID`` with the reading error.
        """
        calc = self.node.process_class
        content = self.read(calc.FILENAME_SUMMARY)
        if content is None:
            failure = executable_failure(self, [calc.FILENAME_STDERR])
            if failure:
                return None, failure
            stderr = (self.read(calc.FILENAME_STDERR) or '').strip().splitlines()
            detail = stderr[-1] if stderr else 'the driver did not run or was killed'
            return None, self.exit_codes.ERROR_OUTPUT_SUMMARY_MISSING.format(detail=detail)
        try:
            summary = json.loads(content)
        except ValueError as exception:
            return None, self.exit_codes.ERROR_OUTPUT_SUMMARY_INVALID.format(exception=exception)
        if not isinstance(summary, dict) or 'outcome' not in summary:
            return None, self.exit_codes.ERROR_OUTPUT_SUMMARY_INVALID.format(exception='it has no `outcome`')
        return summary, None
