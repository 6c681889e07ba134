"""Outlier guard for labelled configurations (pure numpy + ASE, no AiiDA).

A poor early potential can push atoms unphysically close; the reference energies and forces of such
configurations are huge and spoil a fit. :func:`find_outliers` returns a reason for every configuration that
must not be trained on:

* any pair of atoms closer than ``min_distance`` Å (minimum image; :func:`aiida_mlpot.analysis.geometry.too_close`,
  the package's one minimum-distance measure);
* any force component norm |F_i| above ``max_force`` eV/Å;
* any atom whose |F_i| lies more than ``force_mad_threshold`` robust standard deviations (1.4826 * MAD, with a
  floor of ``force_floor`` eV/Å) above the median |F| of the atoms of its own frame (frames of at least
  ``min_atoms_for_force`` atoms);
* an energy per atom further than ``energy_mad_threshold`` robust standard deviations (1.4826 * MAD) from
  the median of the set (only applied with at least ``min_frames_for_energy`` frames, and with a floor of
  ``energy_floor`` eV/atom on the spread so that a set of near-identical frames does not flag noise).

The per-atom force criterion is the scale-free one. A local defect (two atoms pushed together) adds a fixed
energy to its frame, which the energy per atom dilutes by the number of atoms, while the spread it is compared
with shrinks only as one over the square root of that number (and not below ``energy_floor``): a 1.6 Å Na-Cl
pair with 18 eV/Å stands out at many sigmas in a 64-atom cell and not in a 512-atom one. The force on the atoms
of the defect does not depend on the size of the cell, nor do the median and spread of the forces of the
other atoms of the frame (intensive quantities, measured in the frame itself, so a hot frame is judged
against its own thermal forces).
"""

from __future__ import annotations

import numpy as np
from ase import Atoms

from aiida_mlpot.analysis.geometry import too_close

__all__ = ('DEFAULT_GUARD', 'find_outliers', 'force_outlier', 'validate_guard')

DEFAULT_GUARD = {
    'min_distance': 1.0,
    'max_force': 50.0,
    'energy_mad_threshold': 20.0,
    'energy_floor': 0.01,
    'min_frames_for_energy': 5,
    'force_mad_threshold': 12.0,
    'force_floor': 0.5,
    'min_atoms_for_force': 8,
}


def validate_guard(guard: dict) -> str | None:
    """Return what is wrong with guard settings (an unknown key, a value that is not a number), or None."""
    for key, value in guard.items():
        if key not in DEFAULT_GUARD:
            return f'unknown key `{key}` in the outlier guard; known: {", ".join(DEFAULT_GUARD)}'
        if isinstance(value, bool) or not isinstance(value, int | float):
            return f'outlier guard `{key}` must be a number, got {value!r}'
    return None


def force_outlier(norms: np.ndarray, options: dict) -> str | None:
    """Return why the largest force norm of a frame is an outlier among the frame's own ``norms``, or None."""
    if len(norms) < options['min_atoms_for_force']:
        return None
    median = float(np.median(norms))
    spread = max(1.4826 * float(np.median(np.abs(norms - median))), options['force_floor'])
    atom = int(np.argmax(norms))
    sigmas = (float(norms[atom]) - median) / spread
    if sigmas <= options['force_mad_threshold']:
        return None
    return (
        f'|F| {norms[atom]:.3g} eV/A on atom {atom} is {sigmas:.1f} robust sigmas above the median |F| '
        f'{median:.3g} eV/A of its frame'
    )


def find_outliers(frames: list[Atoms], **guard) -> dict[int, str]:
    """Return ``{index: reason}`` for the labelled frames that fail the guard (see module docstring).

    :param frames: ASE Atoms with ``info['energy']`` (eV) and ``arrays['forces']`` (eV/Å) where labelled.
    :param guard: overrides of :data:`DEFAULT_GUARD`.
    """
    options = {**DEFAULT_GUARD, **guard}
    reasons: dict[int, list[str]] = {}
    for index, atoms in enumerate(frames):
        reason = too_close(atoms, options['min_distance'])
        if reason:
            reasons.setdefault(index, []).append(reason)
        forces = atoms.arrays.get('forces')
        if forces is not None:
            fmax = float(np.linalg.norm(forces, axis=1).max())
            if not np.isfinite(fmax) or fmax > options['max_force']:
                reasons.setdefault(index, []).append(f'|F| max {fmax:.3g} eV/A > {options["max_force"]} eV/A')
            else:
                reason = force_outlier(np.linalg.norm(forces, axis=1), options)
                if reason:
                    reasons.setdefault(index, []).append(reason)

    energies = {i: a.info['energy'] / len(a) for i, a in enumerate(frames) if 'energy' in a.info}
    if len(energies) >= options['min_frames_for_energy']:
        values = np.array(list(energies.values()))
        median = float(np.median(values))
        spread = max(1.4826 * float(np.median(np.abs(values - median))), options['energy_floor'])
        for index, value in energies.items():
            if not np.isfinite(value) or abs(value - median) > options['energy_mad_threshold'] * spread:
                reasons.setdefault(index, []).append(
                    f'energy per atom {value:.4f} eV is {abs(value - median) / spread:.1f} robust sigmas from '
                    f'the median {median:.4f} eV'
                )
    return {index: '; '.join(items) for index, items in sorted(reasons.items())}
