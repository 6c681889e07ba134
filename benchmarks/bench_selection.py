"""Timings of configuration selection and novelty scores (prints figures; not a test).

Run: ``.venv/bin/python benchmarks/bench_selection.py`` (about 3-4 minutes on 2 cores), or with
``--scale 0.1`` for a quick look. Targets (issue 4): 10^5 frames of 64 atoms to 500 by uniform_force and
uniform_atomic_energy <= 30 s; FPS over 10^4 frames <= 60 s; REMatch novelty of 100 candidates against
200 references of 64 atoms, timed.

The per-atom labels are synthetic (forces from a Student-t distribution, so that the |f| distribution has
a long tail as in a hot melt; per-atom energies normal), because the cost of the selection depends only on
the array sizes. The configurations for SOAP are 64-atom NaCl boxes at the molten density with
large random displacements, so that each atom has a melt-like number of neighbours.
"""

from __future__ import annotations

import argparse
import time

import numpy as np
from ase.build import bulk
from dscribe.kernels import REMatchKernel

from aiida_mlpot.descriptors import (
    DEFAULT_SOAP,
    atomic_novelty,
    atomic_soap,
    average_soap,
    kernel_distance,
    rematch_kernel,
)
from aiida_mlpot.selection import (
    farthest_point_sampling,
    select_random,
    select_uniform_atomic_energy,
    select_uniform_force,
)

#: A cheaper SOAP for selection among many frames.
COMPACT_SOAP = {'r_cut': 4.5, 'n_max': 4, 'l_max': 3}


def _timed(label: str, function, *args, **kwargs):
    start = time.perf_counter()
    result = function(*args, **kwargs)
    elapsed = time.perf_counter() - start
    print(f'{label:<62s} {elapsed:8.2f} s', flush=True)
    return result, elapsed


def _melt_like_frames(n_frames: int, seed: int) -> list:
    rng = np.random.default_rng(seed)
    crystal = bulk('NaCl', 'rocksalt', a=6.69, cubic=True).repeat((2, 2, 2))  # 1.295 g/cm3, 64 atoms
    frames = []
    for _ in range(n_frames):
        atoms = crystal.copy()
        atoms.positions += rng.normal(0.0, 0.45, size=atoms.positions.shape)
        frames.append(atoms)
    return frames


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        '--scale', type=float, default=1.0, help='scale all problem sizes (1 = issue targets)'
    )
    parser.add_argument('--n', type=int, default=500, help='configurations to select')
    parser.add_argument('--soap-jobs', type=int, default=1, help='dscribe n_jobs for the SOAP features')
    args = parser.parse_args()

    n_frames = int(1e5 * args.scale)
    n_fps = int(1e4 * args.scale)
    n_cand, n_ref = max(int(100 * args.scale), 2), max(int(200 * args.scale), 2)
    rng = np.random.default_rng(0)

    print(f'--- uniform selection: {n_frames} frames x 64 atoms -> {args.n}')
    forces = rng.standard_t(5, size=(n_frames, 64, 3)) * 0.6
    energies = rng.normal(-3.3, 0.25, size=(n_frames, 64))
    for seed in (0, 1):
        picks, _ = _timed(
            f'uniform_force (forces array (N, 64, 3)), seed {seed}',
            select_uniform_force,
            forces,
            args.n,
            seed=seed,
        )
    _timed(
        'uniform_atomic_energy (energies array (N, 64))',
        select_uniform_atomic_energy,
        energies,
        args.n,
        seed=0,
    )
    _timed('random', select_random, n_frames, args.n, seed=0)
    magnitudes = np.linalg.norm(forces, axis=2)
    rand = select_random(n_frames, args.n, seed=0)
    p99 = np.percentile(magnitudes, 99)
    print(
        f'  |f| pool max {magnitudes.max():.2f}, pool p99 {p99:.2f}; selected max: uniform_force '
        f'{magnitudes[picks].max():.2f}, random {magnitudes[rand].max():.2f}; fraction of selected atoms above '
        f'p99: uniform_force {np.mean(magnitudes[picks] > p99):.3f}, random {np.mean(magnitudes[rand] > p99):.3f}'
    )
    del forces, energies, magnitudes

    print(f'--- FPS in SOAP space: {n_fps} frames of 64 atoms -> {args.n}')
    frames = _melt_like_frames(n_fps, seed=1)
    for name, soap in (('default', None), ('compact', COMPACT_SOAP)):
        settings = {**DEFAULT_SOAP, **(soap or {})}
        features, t_soap = _timed(
            f'averaged SOAP, {name} {settings}', average_soap, frames, soap, None, args.soap_jobs
        )
        print(f'  {features.shape[1]} features, {1e3 * t_soap / n_fps:.1f} ms per frame')
        _, t_fps = _timed(
            'farthest-point sampling on the features',
            farthest_point_sampling,
            features,
            min(args.n, n_fps),
            seed=0,
        )
        print(f'  FPS total (SOAP + sampling), {name} SOAP: {t_soap + t_fps:.1f} s')
    del frames, features

    print(f'--- novelty: {n_cand} candidates vs {n_ref} references of 64 atoms')
    candidates, references = _melt_like_frames(n_cand, seed=2), _melt_like_frames(n_ref, seed=3)
    (cand_features, ref_features), t_atomic_soap = _timed(
        'per-atom SOAP of candidates and references',
        lambda: (
            atomic_soap(candidates, species=['Cl', 'Na']),
            atomic_soap(references, species=['Cl', 'Na']),
        ),
    )
    kernel, t_rematch = _timed(
        f'REMatch kernel ({n_cand} x {n_ref} pairs, alpha 0.1, dscribe Sinkhorn)',
        rematch_kernel,
        cand_features,
        ref_features,
    )
    novelty = kernel_distance(kernel).min(axis=1)
    print(
        f'  {1e3 * t_rematch / (n_cand * n_ref):.2f} ms per pair; REMatch novelty d = sqrt(2 - 2k) '
        f'{novelty.min():.3f}-{novelty.max():.3f}'
    )
    n_sub = max(n_cand // 20, 1)
    _, t_create = _timed(
        f'same with REMatchKernel.create ({n_sub} x {n_ref} pairs)',
        REMatchKernel(alpha=0.1, metric='linear').create,
        cand_features[:n_sub],
        ref_features,
    )
    print(
        f'  {1e3 * t_create / (n_sub * n_ref):.2f} ms per pair (create also recomputes every self-similarity)'
    )
    _timed('per-atom novelty (max over atoms of min distance)', atomic_novelty, candidates, references)


if __name__ == '__main__':
    main()
