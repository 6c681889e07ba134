"""Calcfunction that compares a potential's predictions with reference labels (error metrics, parity plot).

The arithmetic is in :mod:`aiida_mlpot.analysis.errors` (pure); this wrapper only converts nodes. The
predictions themselves come from :class:`~aiida_mlpot.calculations.evaluate.EvaluateCalculation`, which runs on
the compute node.
"""

from __future__ import annotations

import io

from aiida import orm
from aiida.engine import calcfunction

from aiida_mlpot.analysis.errors import compute_errors, parity_plot
from aiida_mlpot.calculations.functions.exit_codes import calcfunction_exit
from aiida_mlpot.data.dataset import DatasetData

__all__ = ('EXIT_CODES', 'compute_error_metrics')

#: Exit codes of the calcfunction (label: (status, message)).
EXIT_CODES = {
    'ERROR_EMPTY_DATASET': (211, 'the dataset is empty'),
    'ERROR_MISMATCHED_DATASETS': (213, 'the reference and predicted datasets do not match: {message}'),
}


@calcfunction
def compute_error_metrics(reference: DatasetData, predicted: DatasetData) -> dict:
    """Return error metrics of ``predicted`` against ``reference`` and a parity plot.

    :param reference: the configurations with their reference labels.
    :param predicted: the same configurations, in the same order, labelled by the potential.
    :return: ``metrics`` (Dict: ``overall`` and ``per_config_type`` statistics, MAE/RMSE/max of energy per
        atom in meV/atom, force components and per-atom force vectors in eV/Å, virial per atom in meV/atom;
        see :func:`aiida_mlpot.analysis.errors.compute_errors`) and ``parity_plot`` (SinglefileData, PNG).
    """
    ref_frames, pred_frames = reference.to_ase(), predicted.to_ase()
    if not ref_frames:
        return calcfunction_exit(EXIT_CODES, 'ERROR_EMPTY_DATASET')
    try:
        metrics = compute_errors(ref_frames, pred_frames)
    except ValueError as exception:
        return calcfunction_exit(EXIT_CODES, 'ERROR_MISMATCHED_DATASETS', message=str(exception))
    buffer = io.BytesIO()
    parity_plot(ref_frames, pred_frames, buffer)
    buffer.seek(0)
    return {
        'metrics': orm.Dict(metrics),
        'parity_plot': orm.SinglefileData(buffer, filename='parity.png'),
    }
