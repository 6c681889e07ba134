"""Evaluate a GAP on every configuration of a dataset, on the compute node (ASE + quippy; no AiiDA import).

Run as ``python -m aiida_mlpot.engines.evaluate input.json`` (what
:class:`~aiida_mlpot.calculations.evaluate.EvaluateCalculation` does with the ``python`` code). The JSON input::

    {
        "dataset": "dataset.xyz",          # extended XYZ of the configurations (their labels are not used)
        "potential": {"xml": "gap.xml"},   # the GAP XML, its sparseX files next to it
        "predictions": "predictions.xyz",  # output file names (these are the defaults)
        "summary": "summary.json",
        "uncertainty": false               # also write the GAP predictive std of every frame
    }

Outputs in the working directory:

* ``predictions.xyz``: the same configurations in the same order, labelled by the GAP: ``info['energy']`` (eV),
  ``arrays['forces']`` (eV/Å) and, for 3D-periodic cells, ``info['virial']`` (eV); the ``info`` keys of
  :data:`KEPT_INFO` are kept; with ``uncertainty``, ``info['uncertainty']``: the GAP predictive standard
  deviation of the local energies, max over atoms of sqrt(``local_gap_variance``) (eV), the frame score of
  :class:`~aiida_mlpot.engines.checks.GapVarianceCheck`, as in the ML-MD trajectories;
* ``summary.json``: ``outcome`` (``completed`` | ``error``), ``reason`` (on error), ``n_configs``, ``n_atoms``,
  ``uncertainty``, ``wall_time_s``, ``time_per_config_s``; written atomically, also on an error (the command
  line shared by the drivers, :func:`~aiida_mlpot.engines.command.run_command`).

Energy, forces and stress are requested in one ``calculate()`` call per frame (quippy re-runs the whole
evaluation for a property not asked for at first); the variance, when asked, comes from the same call.
"""

from __future__ import annotations

import pathlib
import sys
import time
from collections.abc import Sequence

import numpy as np
from ase import Atoms

from aiida_mlpot.common.units import stress_to_virial
from aiida_mlpot.data.extxyz import read_frames, write_frames
from aiida_mlpot.engines.checks import GAP_VARIANCE_CALC_ARGS, GapVarianceCheck
from aiida_mlpot.engines.command import run_command

__all__ = ('DEFAULT_FILES', 'KEPT_INFO', 'main', 'predict_frames', 'run')

#: ``info`` keys copied from a configuration to its prediction (provenance of the frame and its grouping).
KEPT_INFO = ('config_type', 'source_uuid', 'step', 'frame', 'split_index', 'pool_index')
#: Default file names of the JSON input.
DEFAULT_FILES = {'predictions': 'predictions.xyz', 'summary': 'summary.json'}


def predict_frames(calculator, frames: Sequence[Atoms], uncertainty: bool = False) -> list[Atoms]:
    """Return copies of ``frames`` labelled by a quippy ``calculator`` (one ``calculate()`` call per frame).

    Each copy holds only the structure, the ``info`` keys of :data:`KEPT_INFO`, ``info['energy']``,
    ``arrays['forces']`` and, for 3D-periodic cells, ``info['virial']`` (= -stress x volume). With
    ``uncertainty``, the calculator also evaluates ``local_gap_variance`` (added to its ``calc_args`` for the
    duration of the call) and ``info['uncertainty']`` is the frame's GAP predictive standard deviation (eV).
    """
    saved_args = getattr(calculator, 'calc_args', '') or ''
    if uncertainty and GAP_VARIANCE_CALC_ARGS not in saved_args.split():
        calculator.calc_args = f'{saved_args} {GAP_VARIANCE_CALC_ARGS}'.strip()
    score = GapVarianceCheck().score
    predicted = []
    try:
        for reference in frames:
            atoms = Atoms(
                numbers=reference.numbers,
                positions=reference.positions,
                cell=reference.cell,
                pbc=reference.pbc,
            )
            atoms.info = {key: reference.info[key] for key in KEPT_INFO if key in reference.info}
            periodic = bool(all(atoms.pbc)) and atoms.cell.rank == 3
            properties = ['energy', 'forces', 'stress'] if periodic else ['energy', 'forces']
            calculator.calculate(atoms, properties=properties)
            results = calculator.results
            atoms.info['energy'] = float(results['energy'])
            atoms.arrays['forces'] = np.array(results['forces'], dtype=float)
            if periodic:
                atoms.info['virial'] = stress_to_virial(results['stress'], atoms.get_volume())
            if uncertainty:
                atoms.calc = calculator  # the score reads the variance of this last evaluation
                atoms.info['uncertainty'] = score(atoms)
                atoms.calc = None
            predicted.append(atoms)
    finally:
        if uncertainty:
            calculator.calc_args = saved_args
    return predicted


def run(config: dict, workdir: str | pathlib.Path = '.') -> dict:
    """Evaluate the potential of ``config`` (the parsed JSON input) in ``workdir``; return the summary."""
    from quippy.potential import Potential

    workdir = pathlib.Path(workdir)
    start = time.perf_counter()
    uncertainty = bool(config.get('uncertainty', False))
    with open(workdir / config['dataset']) as handle:
        frames = read_frames(handle)
    if not frames:
        raise ValueError(f'the dataset `{config["dataset"]}` holds no configuration')
    potential = config['potential']
    calculator = Potential(param_filename=str(workdir / potential['xml']))
    predicted = predict_frames(calculator, frames, uncertainty=uncertainty)
    with open(workdir / config.get('predictions', DEFAULT_FILES['predictions']), 'w') as handle:
        write_frames(predicted, handle)
    wall_time = time.perf_counter() - start
    return {
        'outcome': 'completed',
        'n_configs': len(predicted),
        'n_atoms': int(sum(len(atoms) for atoms in predicted)),
        'uncertainty': uncertainty,
        'wall_time_s': wall_time,
        'time_per_config_s': wall_time / len(predicted),
    }


def main(argv: list[str] | None = None) -> int:
    """Command line entry point: ``python -m aiida_mlpot.engines.evaluate input.json``.

    Always writes the summary (``outcome: error`` and the reason when the evaluation fails); returns 0 when
    every configuration was evaluated, 1 on an error, 2 on a wrong command line.
    """
    return run_command(run, 'aiida_mlpot.engines.evaluate', argv, summary_name=DEFAULT_FILES['summary'])


if __name__ == '__main__':
    sys.exit(main())
