"""`MlMdParser`: outputs of an :class:`~aiida_mlpot.calculations.ml_md.MlMdCalculation` from the retrieved files."""

from __future__ import annotations

import json
import math

from aiida import orm
from aiida.parsers import Parser

from aiida_mlpot.calculations.ml_md import REFERENCE_EXTRA, MlMdCalculation, reference_cache_key
from aiida_mlpot.data.dataset import DatasetData
from aiida_mlpot.data.extxyz import read_frames
from aiida_mlpot.engines.ase_md import normalise_parameters

__all__ = ('MlMdParser',)


def _finite_or_none(value):
    """Return ``value`` with non-finite floats replaced by None, recursively (AiiDA stores JSON)."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {key: _finite_or_none(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_finite_or_none(item) for item in value]
    return value


class MlMdParser(Parser):
    """Parse ``summary.json``, ``trajectory.xyz``, ``flagged.xyz`` and ``final.xyz`` of the ML-MD driver.

    ``completed`` and ``extrapolation`` are successful outcomes; ``unstable`` returns ``ERROR_UNSTABLE_MD``
    after the outputs (partial trajectory, summary, last frame) have been attached.
    """

    def _read(self, name: str) -> str | None:
        if name not in self.retrieved.base.repository.list_object_names():
            return None
        return self.retrieved.base.repository.get_object_content(name, mode='r')

    def _frames(self, name: str):
        content = self._read(name)
        if not content or not content.strip():
            return None
        import io

        return read_frames(io.StringIO(content))

    def parse(self, **kwargs):
        """Attach the outputs and return the exit code of the outcome."""
        calc = MlMdCalculation
        content = self._read(calc.FILENAME_SUMMARY)
        if content is None:
            stderr = (self._read(calc.FILENAME_STDERR) or '').strip().splitlines()
            detail = stderr[-1] if stderr else 'the driver did not run or was killed'
            return self.exit_codes.ERROR_OUTPUT_SUMMARY_MISSING.format(detail=detail)
        try:
            summary = json.loads(content)
            outcome = summary['outcome']
        except (ValueError, KeyError, TypeError) as exception:
            return self.exit_codes.ERROR_OUTPUT_SUMMARY_INVALID.format(exception=exception)
        if outcome == 'error':
            self.out('summary', orm.Dict(_finite_or_none(summary)))
            return self.exit_codes.ERROR_DRIVER_FAILED.format(reason=summary.get('reason', 'unknown'))

        try:
            trajectory = self._frames(calc.FILENAME_TRAJECTORY)
            flagged = self._frames(calc.FILENAME_FLAGGED) if outcome == 'extrapolation' else None
            final = self._frames(calc.FILENAME_FINAL)
        except Exception as exception:
            return self.exit_codes.ERROR_OUTPUT_TRAJECTORY_INVALID.format(exception=exception)
        if not trajectory:
            return self.exit_codes.ERROR_OUTPUT_TRAJECTORY_MISSING
        try:
            self.out('trajectory', DatasetData.from_ase(trajectory, allow_partial=True))
            if flagged:
                self.out('flagged', DatasetData.from_ase(flagged, allow_partial=True))
        except ValueError as exception:
            return self.exit_codes.ERROR_OUTPUT_TRAJECTORY_INVALID.format(exception=exception)
        last = (final or trajectory)[-1]
        last.calc = None
        self.out('final_structure', orm.StructureData(ase=last))
        self.out('summary', orm.Dict(_finite_or_none(summary)))
        self._cache_reference_score(summary)

        if outcome == 'unstable':
            return self.exit_codes.ERROR_UNSTABLE_MD.format(
                step=summary.get('triggered_step'), reason=summary.get('reason', '')
            )
        if outcome == 'extrapolation':
            self.logger.info(
                f'extrapolation at step {summary.get("triggered_step")}: {summary.get("reason")}'
            )
        return None

    def _cache_reference_score(self, summary: dict) -> None:
        """Cache a reference score computed by the driver on the potential (extra), once per training set."""
        if not summary.get('reference_computed') or summary.get('reference_score') is None:
            return
        training = self.node.inputs.training if 'training' in self.node.inputs else None
        if training is None:
            return
        potential = self.node.inputs.potential
        parameters = normalise_parameters(self.node.inputs.parameters.get_dict())
        cache = dict(potential.base.extras.get(REFERENCE_EXTRA, {}))
        cache[reference_cache_key(parameters, training.uuid)] = float(summary['reference_score'])
        potential.base.extras.set(REFERENCE_EXTRA, cache)
