"""`EvaluateParser`: the ``predictions`` of an :class:`~aiida_mlpot.calculations.evaluate.EvaluateCalculation`."""

from __future__ import annotations

import io

from aiida_mlpot.calculations.evaluate import EvaluateCalculation
from aiida_mlpot.data.dataset import DatasetData
from aiida_mlpot.data.extxyz import read_frames
from aiida_mlpot.parsers.driver import DriverParser

__all__ = ('EvaluateParser',)


class EvaluateParser(DriverParser):
    """Parse ``summary.json`` and ``predictions.xyz`` of the evaluation driver.

    The predictions are attached only when the driver completed and they hold the dataset's configurations:
    as many, in the same order, with the same atoms. A driver that stopped with an error returns
    ``ERROR_DRIVER_FAILED`` with its reason; a driver killed before writing its summary (walltime, node
    failure) ``ERROR_OUTPUT_SUMMARY_MISSING`` with the last line of its standard error.
    """

    def parse(self, **kwargs):
        """Attach ``predictions``; return the exit code of the driver's outcome."""
        summary, failure = self.read_summary()
        if failure is not None:
            return failure
        if summary['outcome'] != 'completed':
            return self.exit_codes.ERROR_DRIVER_FAILED.format(
                reason=summary.get('reason', summary['outcome'])
            )

        text = self.read(EvaluateCalculation.RESULT_FILES['predictions'])
        if not text or not text.strip():
            return self.exit_codes.ERROR_OUTPUT_PREDICTIONS_MISSING
        try:
            frames = read_frames(io.StringIO(text))
            self._check_matches(frames)
            predictions = DatasetData.from_ase(frames)
        except Exception as exception:  # noqa: BLE001 - any unreadable or mismatched file is the same failure
            return self.exit_codes.ERROR_OUTPUT_PREDICTIONS_INVALID.format(exception=exception)
        self.out('predictions', predictions)
        self.logger.info(
            f'{summary.get("n_configs")} configurations evaluated in {summary.get("wall_time_s", 0.0):.1f} s'
        )
        return None

    def _check_matches(self, frames: list) -> None:
        """Raise ``ValueError`` unless ``frames`` hold the atoms of the input dataset, in its order."""
        reference = self.node.inputs.dataset.to_ase()
        if len(frames) != len(reference):
            raise ValueError(f'{len(frames)} predicted configurations for {len(reference)} in the dataset')
        for index, (predicted, atoms) in enumerate(zip(frames, reference)):
            if predicted.get_chemical_symbols() != atoms.get_chemical_symbols():
                raise ValueError(f'configuration {index}: the prediction holds other atoms than the dataset')
