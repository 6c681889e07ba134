"""`SolidPropertiesParser`: the ``properties`` of a :class:`~aiida_mlpot.calculations.solids.SolidPropertiesCalculation`."""

from __future__ import annotations

import json

from aiida import orm

from aiida_mlpot.calculations.solids import SolidPropertiesCalculation
from aiida_mlpot.parsers.driver import DriverParser

__all__ = ('SolidPropertiesParser',)


class SolidPropertiesParser(DriverParser):
    """Parse ``summary.json`` and ``properties.json`` of the crystal-properties driver.

    A driver that stopped with an error (a relaxation that did not converge, an energy minimum outside the
    scanned volumes, a LAMMPS failure) returns ``ERROR_DRIVER_FAILED`` with its reason.
    """

    def parse(self, **kwargs):
        """Attach ``properties``; return the exit code of the driver's outcome."""
        summary, failure = self.read_summary()
        if failure is None and summary['outcome'] != 'completed':
            failure = self.exit_codes.ERROR_DRIVER_FAILED.format(
                reason=summary.get('reason', summary['outcome'])
            )
        text = None if failure else self.read(SolidPropertiesCalculation.RESULT_FILES['properties'])
        if failure is None and not (text or '').strip():
            failure = self.exit_codes.ERROR_OUTPUT_PROPERTIES_MISSING
        if failure is not None:
            return failure
        try:
            properties = json.loads(text)
        except ValueError as exception:
            return self.exit_codes.ERROR_OUTPUT_PROPERTIES_INVALID.format(exception=exception)
        properties['wall_time_s'] = summary.get('wall_time_s')
        self.out('properties', orm.Dict(properties))
        return None
