"""Error metrics of a potential against reference labels, and a parity plot. Pure (no AiiDA).

Quantities (reference and prediction must hold the same configurations in the same order):

- ``energy_per_atom``: (E_pred - E_ref) / N per configuration, in meV/atom;
- ``forces``: every Cartesian force component, in eV/Å;
- ``forces_vector``: per atom, the norm of the force error vector |F_pred - F_ref|, in eV/Å
  (its RMSE equals sqrt(3) times the component RMSE);
- ``virial_per_atom``: every one of the 9 virial components divided by N, in meV/atom.

For each: ``mae``, ``rmse``, ``max`` (largest absolute error), ``count`` and ``unit``; overall and per
``config_type`` (configurations without one are grouped as ``default``).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

__all__ = ('QUANTITIES', 'compute_errors', 'error_statistics', 'frame_labels', 'parity_plot')

MEV_PER_EV = 1000.0
#: Quantity -> unit of its statistics.
QUANTITIES = {
    'energy_per_atom': 'meV/atom',
    'forces': 'eV/Å',
    'forces_vector': 'eV/Å',
    'virial_per_atom': 'meV/atom',
}
DEFAULT_CONFIG_TYPE = 'default'


def error_statistics(errors: np.ndarray) -> dict:
    """Return ``{'mae', 'rmse', 'max', 'count'}`` of an array of signed (or absolute) errors."""
    errors = np.abs(np.asarray(errors, dtype=float).ravel())
    if errors.size == 0:
        return {'mae': None, 'rmse': None, 'max': None, 'count': 0}
    return {
        'mae': float(errors.mean()),
        'rmse': float(np.sqrt(np.mean(errors**2))),
        'max': float(errors.max()),
        'count': int(errors.size),
    }


def frame_labels(atoms) -> dict:
    """Return the labels of ``atoms`` (``energy``, ``forces``, ``virial``) from ``info``/``arrays``.

    Falls back on an attached calculator's results (energy, forces, stress -> virial) when the
    package convention keys are absent. Missing labels are ``None``.
    """
    from aiida_mlpot.common.units import stress_to_virial

    results = getattr(atoms.calc, 'results', {}) if atoms.calc is not None else {}
    energy = atoms.info.get('energy', results.get('energy'))
    forces = atoms.arrays.get('forces', results.get('forces'))
    virial = atoms.info.get('virial')
    if virial is None and results.get('stress') is not None and atoms.cell.rank == 3:
        virial = stress_to_virial(results['stress'], atoms.get_volume())
    return {
        'energy': None if energy is None else float(energy),
        'forces': None if forces is None else np.asarray(forces, dtype=float).reshape(-1, 3),
        'virial': None if virial is None else np.asarray(virial, dtype=float).reshape(3, 3),
    }


def _collect(reference: Sequence, predicted: Sequence) -> list[dict]:
    if len(reference) != len(predicted):
        raise ValueError(f'{len(reference)} reference but {len(predicted)} predicted configurations')
    rows = []
    for index, (ref, pred) in enumerate(zip(reference, predicted)):
        if len(ref) != len(pred) or ref.get_chemical_symbols() != pred.get_chemical_symbols():
            raise ValueError(f'configuration {index}: reference and prediction hold different atoms')
        rows.append(
            {
                'n_atoms': len(ref),
                'config_type': str(ref.info.get('config_type', DEFAULT_CONFIG_TYPE)),
                'ref': frame_labels(ref),
                'pred': frame_labels(pred),
            }
        )
    return rows


def _errors_of(rows: list[dict]) -> dict[str, np.ndarray]:
    """Return the signed errors (absolute for the vector norms) of each quantity over ``rows``."""
    energy, forces, vector, virial = [], [], [], []
    for row in rows:
        ref, pred, n = row['ref'], row['pred'], row['n_atoms']
        if ref['energy'] is not None and pred['energy'] is not None:
            energy.append((pred['energy'] - ref['energy']) / n * MEV_PER_EV)
        if ref['forces'] is not None and pred['forces'] is not None:
            diff = pred['forces'] - ref['forces']
            forces.append(diff.ravel())
            vector.append(np.linalg.norm(diff, axis=1))
        if ref['virial'] is not None and pred['virial'] is not None:
            virial.append(((pred['virial'] - ref['virial']) / n * MEV_PER_EV).ravel())
    return {
        'energy_per_atom': np.asarray(energy, dtype=float),
        'forces': np.concatenate(forces) if forces else np.zeros(0),
        'forces_vector': np.concatenate(vector) if vector else np.zeros(0),
        'virial_per_atom': np.concatenate(virial) if virial else np.zeros(0),
    }


def _block(rows: list[dict]) -> dict:
    errors = _errors_of(rows)
    return {
        name: {**error_statistics(values), 'unit': QUANTITIES[name]}
        for name, values in errors.items()
        if values.size
    }


def compute_errors(reference: Sequence, predicted: Sequence) -> dict:
    """Return error metrics of ``predicted`` against ``reference`` (two lists of ASE Atoms).

    :return: ``{'n_configs', 'n_atoms', 'overall': {quantity: stats}, 'per_config_type': {type: {quantity:
        stats}}}``; a quantity appears only where both sides have it.
    """
    rows = _collect(reference, predicted)
    types = sorted({row['config_type'] for row in rows})
    return {
        'n_configs': len(rows),
        'n_atoms': int(sum(row['n_atoms'] for row in rows)),
        'overall': _block(rows),
        'per_config_type': {t: _block([row for row in rows if row['config_type'] == t]) for t in types},
    }


def parity_plot(reference: Sequence, predicted: Sequence, path, title: str | None = None) -> None:
    """Write a PNG parity plot (energy per atom, force components, virial per atom) to ``path``.

    Points are coloured by ``config_type``; each panel shows its RMSE. Uses the Agg backend.
    """
    import matplotlib

    matplotlib.use('Agg')
    from matplotlib.figure import Figure

    rows = _collect(reference, predicted)
    panels = [
        ('energy', 'Energy (eV/atom)', lambda lab, n: np.array([lab['energy'] / n]), MEV_PER_EV, 'meV/atom'),
        ('forces', 'Force component (eV/Å)', lambda lab, n: lab['forces'].ravel(), 1.0, 'eV/Å'),
        (
            'virial',
            'Virial component (eV/atom)',
            lambda lab, n: lab['virial'].ravel() / n,
            MEV_PER_EV,
            'meV/atom',
        ),
    ]
    panels = [
        p for p in panels if all(r['ref'][p[0]] is not None and r['pred'][p[0]] is not None for r in rows)
    ]
    figure = Figure(figsize=(4.2 * max(len(panels), 1), 4.2), dpi=100)
    types = sorted({row['config_type'] for row in rows})
    for index, (key, label, values, scale, unit) in enumerate(panels):
        axis = figure.add_subplot(1, len(panels), index + 1)
        all_ref, all_pred = [], []
        for config_type in types:
            selected = [r for r in rows if r['config_type'] == config_type]
            ref = np.concatenate([values(r['ref'], r['n_atoms']) for r in selected])
            pred = np.concatenate([values(r['pred'], r['n_atoms']) for r in selected])
            axis.scatter(ref, pred, s=4 if key == 'forces' else 12, alpha=0.6, label=config_type)
            all_ref.append(ref)
            all_pred.append(pred)
        ref, pred = np.concatenate(all_ref), np.concatenate(all_pred)
        low, high = float(min(ref.min(), pred.min())), float(max(ref.max(), pred.max()))
        axis.plot([low, high], [low, high], color='black', linewidth=0.8)
        rmse = float(np.sqrt(np.mean((pred - ref) ** 2))) * scale
        axis.set_title(f'RMSE {rmse:.3g} {unit}', fontsize=10)
        axis.set_xlabel(f'Reference {label}')
        axis.set_ylabel(f'Predicted {label}')
        if len(types) > 1:
            axis.legend(fontsize=8, markerscale=2)
    if title:
        figure.suptitle(title)
    figure.tight_layout()
    figure.savefig(path, format='png')
