"""Mean squared displacement and diffusion coefficients (Einstein relation) per species. Pure (no AiiDA).

The windowed MSD (every time origin) is computed by freud (:class:`freud.msd.MSD`, mode ``'window'``, the FFT
algorithm of Calandrini et al. 2011): O(T log T) per atom instead of O(T²). freud's own unwrapping needs image
flags and a constant box, which MD frames read back from a dump or an extended XYZ file do not have and an NPT
run breaks; so :func:`unwrap_positions` unwraps here: the displacement between consecutive frames is taken in
fractional coordinates, wrapped to [-1/2, 1/2) (valid while no atom moves more than half a cell between frames)
and converted with the current frame's cell, then accumulated.

Units: positions in Å, the time between frames in fs, D in Å²/ps (1 Å²/ps = 1e-4 cm²/s,
:data:`aiida_mlpot.common.units.ANGSTROM2_PER_PS_TO_CM2_PER_S`).
"""

from __future__ import annotations

from collections.abc import Sequence

import freud
import numpy as np
from ase import Atoms

__all__ = ('diffusion_coefficients', 'mean_squared_displacement', 'unwrap_positions')

FS_PER_PS = 1000.0


def unwrap_positions(frames: Sequence[Atoms]) -> np.ndarray:
    """Return the unwrapped Cartesian positions (T, N, 3) in Å of a trajectory whose positions may be wrapped.

    The first frame is kept as is; every later frame is the previous one plus the minimum-image displacement
    (in fractional coordinates, converted with the later frame's cell). Directions without periodicity are
    taken as they are.

    :raises ValueError: if the frames do not all have the same number of atoms.
    """
    if len(frames) == 0:
        raise ValueError('unwrap_positions needs at least one frame')
    n_atoms = len(frames[0])
    if any(len(atoms) != n_atoms for atoms in frames):
        raise ValueError('every frame must have the same number of atoms')
    unwrapped = np.empty((len(frames), n_atoms, 3))
    unwrapped[0] = frames[0].positions
    for t in range(1, len(frames)):
        before, after = frames[t - 1], frames[t]
        pbc = np.asarray(after.pbc, dtype=bool)
        if not pbc.any():
            unwrapped[t] = unwrapped[t - 1] + after.positions - before.positions
            continue
        cell = np.asarray(after.cell[:], dtype=float)
        frac_after = np.linalg.solve(cell.T, after.positions.T).T
        frac_before = np.linalg.solve(np.asarray(before.cell[:], dtype=float).T, before.positions.T).T
        step = frac_after - frac_before
        step[:, pbc] -= np.round(step[:, pbc])
        unwrapped[t] = unwrapped[t - 1] + step @ cell
    return unwrapped


def mean_squared_displacement(
    frames: Sequence[Atoms],
    timestep_fs: float,
    unwrapped: bool = False,
    remove_drift: bool = True,
) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """Return the lag times (ps) and the windowed MSD (Å²) per species, averaged over all time origins.

    :param frames: equally spaced MD frames (same atoms, same order).
    :param timestep_fs: time between two consecutive frames (fs), not the MD time step if frames were thinned.
    :param unwrapped: True if the positions are already unwrapped (then used as they are).
    :param remove_drift: subtract the centre-of-mass displacement of the whole system from every atom (a
        drifting system is not diffusing).
    :returns: ``(lags_ps, {species: msd})``, both of length len(frames); ``msd[0]`` is 0 up to FFT round-off.
    """
    if not timestep_fs > 0:
        raise ValueError(f'timestep_fs must be positive, got {timestep_fs}')
    positions = (
        np.array([atoms.positions for atoms in frames], dtype=float)
        if unwrapped
        else unwrap_positions(frames)
    )
    if remove_drift:
        masses = frames[0].get_masses()
        centre = np.einsum('tnk,n->tk', positions, masses) / masses.sum()
        positions = positions - centre[:, None, :]
    per_atom = freud.msd.MSD(mode='window').compute(positions).particle_msd  # (T, N)
    symbols = np.array(frames[0].get_chemical_symbols())
    msd = {str(species): per_atom[:, symbols == species].mean(axis=1) for species in sorted(set(symbols))}
    lags = np.arange(len(frames)) * float(timestep_fs) / FS_PER_PS
    return lags, msd


def _fit(frames, timestep_fs, fit_start, fit_end, unwrapped, remove_drift) -> dict[str, dict]:
    lags, msd = mean_squared_displacement(frames, timestep_fs, unwrapped=unwrapped, remove_drift=remove_drift)
    last = len(lags) - 1
    first_index, last_index = int(round(fit_start * last)), int(round(fit_end * last))
    if last_index - first_index + 1 < 3:
        raise ValueError(
            f'the fit window holds {last_index - first_index + 1} lags; give more frames (>= 3 needed)'
        )
    window = slice(first_index, last_index + 1)
    result = {}
    for species, values in msd.items():
        slope, intercept = np.polyfit(lags[window], values[window], 1)
        result[species] = {
            'diffusion': float(slope / 6.0),
            'intercept': float(intercept),
            'fit_start_ps': float(lags[first_index]),
            'fit_end_ps': float(lags[last_index]),
        }
    return result


def diffusion_coefficients(
    frames: Sequence[Atoms],
    timestep_fs: float,
    fit_start: float = 0.1,
    fit_end: float = 0.5,
    unwrapped: bool = False,
    remove_drift: bool = True,
) -> dict[str, dict]:
    """Return the self-diffusion coefficient per species from the Einstein relation MSD(t) = 6 D t + c.

    The MSD is fitted by least squares on lags between ``fit_start`` and ``fit_end`` times the trajectory
    length: the start skips the ballistic and caging regime, the end the long lags averaged over few origins.

    :returns: ``{species: {'diffusion': D (Å²/ps), 'diffusion_sem', 'intercept': c (Å²), 'fit_start_ps',
        'fit_end_ps'}}``. ``diffusion_sem`` is a crude statistical error: half the difference of the D of the two
        halves of the trajectory (each fitted the same way), None if a half is too short to fit.
    :raises ValueError: for a fit window with fewer than 3 lags or outside (0, 1].
    """
    if not 0.0 <= fit_start < fit_end <= 1.0:
        raise ValueError(f'need 0 <= fit_start < fit_end <= 1, got fit_start={fit_start}, fit_end={fit_end}')
    result = _fit(frames, timestep_fs, fit_start, fit_end, unwrapped, remove_drift)
    half = len(frames) // 2
    try:
        halves = [
            _fit(part, timestep_fs, fit_start, fit_end, unwrapped, remove_drift)
            for part in (frames[:half], frames[half : 2 * half])
        ]
    except ValueError:  # too few frames for the fit window in a half
        halves = None
    for species, values in result.items():
        values['diffusion_sem'] = (
            abs(halves[0][species]['diffusion'] - halves[1][species]['diffusion']) / 2.0 if halves else None
        )
    return result
