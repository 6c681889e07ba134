"""Calcfunctions that evaluate a GAP on a dataset and compare predictions with reference labels.

The arithmetic is in :mod:`aiida_mlpot.analysis.errors` (pure); these wrappers only convert nodes.
"""

from __future__ import annotations

import io

import numpy as np
from aiida import orm
from aiida.engine import ExitCode, calcfunction

from aiida_mlpot.analysis.errors import compute_errors, parity_plot
from aiida_mlpot.common.units import stress_to_virial
from aiida_mlpot.data.dataset import DatasetData
from aiida_mlpot.data.potential import GapPotentialData

__all__ = ('EXIT_CODES', 'evaluate_potential', 'compute_error_metrics', 'predict_frames')

#: Exit codes of the calcfunctions (label: (status, message)).
EXIT_CODES = {
    'ERROR_EMPTY_DATASET': (211, 'the dataset is empty'),
    'ERROR_UNKNOWN_SPECIES': (212, 'the potential knows {known}, the dataset also holds {unknown}'),
    'ERROR_MISMATCHED_DATASETS': (213, 'the reference and predicted datasets do not match: {message}'),
}
#: info keys copied from a reference frame to its prediction.
KEPT_INFO = ('config_type', 'source_uuid', 'step', 'frame', 'split_index', 'pool_index')


def _exit(label: str, **kwargs) -> ExitCode:
    status, template = EXIT_CODES[label]
    return ExitCode(status, template.format(**kwargs), label)


def predict_frames(calculator, frames: list) -> list:
    """Return copies of ``frames`` labelled by ``calculator``: ``info['energy']``, ``arrays['forces']`` and,
    for 3D-periodic cells, ``info['virial']`` (one calculate() call per frame for all three).
    """
    predicted = []
    for reference in frames:
        atoms = reference.copy()
        atoms.calc = None
        for key in list(atoms.arrays):
            if key not in ('numbers', 'positions'):
                del atoms.arrays[key]
        atoms.info = {key: reference.info[key] for key in KEPT_INFO if key in reference.info}
        periodic = bool(all(atoms.pbc)) and atoms.cell.rank == 3
        properties = ['energy', 'forces', 'stress'] if periodic else ['energy', 'forces']
        calculator.calculate(atoms, properties=properties)
        results = calculator.results
        atoms.info['energy'] = float(results['energy'])
        atoms.arrays['forces'] = np.array(results['forces'], dtype=float)
        if periodic:
            atoms.info['virial'] = stress_to_virial(results['stress'], atoms.get_volume())
        predicted.append(atoms)
    return predicted


@calcfunction
def evaluate_potential(potential: GapPotentialData, dataset: DatasetData) -> DatasetData:
    """Return the predictions of ``potential`` on every configuration of ``dataset``.

    :param potential: the fitted GAP.
    :param dataset: configurations to evaluate (their labels, if any, are not used).
    :return: a DatasetData with the same configurations, in the same order, labelled with the GAP's
        energy (eV), forces (eV/Å) and virial (eV, periodic cells); ``config_type``, ``source_uuid``,
        ``step`` and ``frame`` are kept.
    """
    frames = dataset.to_ase()
    if not frames:
        return _exit('ERROR_EMPTY_DATASET')
    unknown = sorted(set(dataset.species) - set(potential.species))
    if unknown:
        return _exit('ERROR_UNKNOWN_SPECIES', known=', '.join(potential.species), unknown=', '.join(unknown))
    calculator = potential.get_calculator()
    return DatasetData.from_ase(predict_frames(calculator, frames))


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
        return _exit('ERROR_EMPTY_DATASET')
    try:
        metrics = compute_errors(ref_frames, pred_frames)
    except ValueError as exception:
        return _exit('ERROR_MISMATCHED_DATASETS', message=str(exception))
    buffer = io.BytesIO()
    parity_plot(ref_frames, pred_frames, buffer)
    buffer.seek(0)
    return {
        'metrics': orm.Dict(metrics),
        'parity_plot': orm.SinglefileData(buffer, filename='parity.png'),
    }
