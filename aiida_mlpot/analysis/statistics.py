"""Averages of correlated MD time series with honest error bars: block averaging, density and volume. Pure.

:func:`block_average` is the Flyvbjerg-Petersen blocking transformation (J. Chem. Phys. 91, 461 (1989)) with the
automatic choice of block size of Lee et al. (Phys. Rev. E 83, 066706 (2011)), as in pyblock: the smallest
block size B (a power of two) with B³ > 2 n (σ_B / σ_1)⁴, where n is the series length, σ_1 the naive standard
error and σ_B the standard error of the means of blocks of size B. It is about twenty lines of numpy; pymbar's
statistical inefficiency would do the same job but adds a large dependency for one function, and pyblock is no
longer released.

Units: volumes in Å³, densities in g/cm³ (through :func:`aiida_mlpot.common.units.density_g_cm3`).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from ase import Atoms

from aiida_mlpot.common.units import density_g_cm3

__all__ = ('block_average', 'density_volume_statistics')

MIN_BLOCKS = 4


def block_average(series: Sequence[float]) -> dict:
    """Return the mean of a correlated series and its standard error by block averaging.

    :returns: ``{'mean', 'sem', 'naive_sem', 'block_size', 'n_blocks', 'inefficiency', 'converged', 'count'}``:
        ``inefficiency`` = (sem / naive_sem)², the number of correlated samples worth one independent one;
        ``converged`` is False when no block size met the criterion before fewer than 4 blocks were left (the
        series is too short for its correlation time; ``sem`` is then the largest blocked estimate, a lower bound).
        A series much shorter than its correlation time looks like a smooth trend and can pass the criterion:
        for NPT runs, :func:`density_volume_statistics` reports the drift too.
    :raises ValueError: for fewer than 4 values or non-finite values.
    """
    values = np.asarray(series, dtype=float).ravel()
    if values.size < MIN_BLOCKS:
        raise ValueError(f'block averaging needs at least {MIN_BLOCKS} values, got {values.size}')
    if not np.all(np.isfinite(values)):
        raise ValueError('the series holds non-finite values')
    n = values.size
    mean = float(values.mean())
    blocks = values.copy()
    block_size = 1
    levels = []  # (block size, number of blocks, standard error)
    while blocks.size >= MIN_BLOCKS:
        sem = float(np.sqrt(blocks.var(ddof=1) / blocks.size))
        levels.append((block_size, blocks.size, sem))
        half = blocks.size // 2
        blocks = 0.5 * (blocks[: 2 * half : 2] + blocks[1 : 2 * half : 2])
        block_size *= 2
    naive = levels[0][2]
    chosen, converged = None, False
    for level in levels:
        size, _, sem = level
        if naive == 0.0 or size**3 > 2.0 * n * (sem / naive) ** 4:
            chosen, converged = level, True
            break
    if chosen is None:
        chosen = max(levels, key=lambda level: level[2])
    size, n_blocks, sem = chosen
    return {
        'mean': mean,
        'sem': sem,
        'naive_sem': naive,
        'block_size': int(size),
        'n_blocks': int(n_blocks),
        'inefficiency': float((sem / naive) ** 2) if naive > 0 else 1.0,
        'converged': converged,
        'count': int(n),
    }


def density_volume_statistics(frames: Sequence[Atoms], discard: float = 0.0) -> dict:
    """Return block-averaged volume, volume per atom and mass density of NPT frames, and their drift.

    :param discard: fraction of the frames dropped at the start (equilibration).
    :returns: ``{'volume': block_average (Å³), 'volume_per_atom': (Å³), 'density': (g/cm³), 'relative_drift',
        'relative_drift_sem'}``; ``relative_drift`` is (mean density of the last quarter - mean of the first
        quarter) / mean, the sign of a run that keeps expanding (negative) or collapsing (positive) instead of
        fluctuating; ``relative_drift_sem`` its statistical error, from the block-averaged error of the
        fluctuations about a linear fit (each quarter mean has twice the error of the whole mean).
    """
    if not 0.0 <= discard < 1.0:
        raise ValueError(f'discard must be in [0, 1), got {discard}')
    kept = list(frames)[int(len(frames) * discard) :]
    if len(kept) < MIN_BLOCKS:
        raise ValueError(f'need at least {MIN_BLOCKS} frames after discarding, got {len(kept)}')
    volumes = np.array([atoms.get_volume() for atoms in kept])
    n_atoms = np.array([len(atoms) for atoms in kept])
    densities = np.array([density_g_cm3(atoms.get_masses(), atoms.get_volume()) for atoms in kept])
    quarter = max(1, len(kept) // 4)
    # the drift's error from the fluctuations about a straight line: a steady trend is not noise
    time = np.arange(len(densities), dtype=float)
    residuals = densities - np.polyval(np.polyfit(time, densities, 1), time)
    residual_sem = block_average(residuals)['sem']
    return {
        'volume': block_average(volumes),
        'volume_per_atom': block_average(volumes / n_atoms),
        'density': block_average(densities),
        'relative_drift': float(
            (densities[-quarter:].mean() - densities[:quarter].mean()) / densities.mean()
        ),
        'relative_drift_sem': float(2.0 * np.sqrt(2.0) * residual_sem / densities.mean()),
    }
