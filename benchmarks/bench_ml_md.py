"""Benchmark of the ML-MD driver: cost per atom-step against bare quippy calls, and the cost of the uncertainty.

For 64 and 512 atoms of molten NaCl (1400 K) it measures

* bare quippy: one energy + forces + stress evaluation per frame, on the frames the driver visited;
* the driver (NVT Langevin, dump every 10 steps) without extrapolation measure: overhead = driver / bare - 1
  (integrator, stability checks, snapshots and extended-XYZ output);
* the driver with the GAP variance measured every ``check_interval`` steps: its added cost;
* bare quippy with ``local_gap_variance`` on every call (what measuring at every step would cost).

Usage: ``python benchmarks/bench_ml_md.py [--xml gap.xml] [--steps-64 100] [--steps-512 20]``. Without
``--xml`` a small GAP is fitted first (real ``lmp`` Tosi-Fumi frames at 1400 K, real ``gap_fit``; ~1 min).
"""

from __future__ import annotations

import argparse
import pathlib
import shutil
import sys
import tempfile
import time

import numpy as np

ROOT = pathlib.Path(__file__).resolve().parents[1]


def fit_gap(workdir: pathlib.Path) -> tuple[pathlib.Path, list]:
    """Fit the test GAP of the ML-MD tests on real LAMMPS frames; return (xml, held-out frames)."""
    sys.path.insert(0, str(ROOT))
    from tests.conftest import run_lammps_nacl_nvt
    from tests.engines.ml_md_helpers import fit_test_gap, split_reference_frames

    frames = run_lammps_nacl_nvt(workdir / 'lammps', 1400, 1.295, seed=4243)
    training, held_out = split_reference_frames(frames)
    xml = fit_test_gap(training, workdir / 'gap', gap_fit=shutil.which('gap_fit') or 'gap_fit')
    return xml, held_out


def bare_quippy(xml: pathlib.Path, frames: list, calc_args: str = '', repeat: int = 1) -> float:
    """Return CPU seconds per energy + forces + stress evaluation (one call) over ``frames`` (median)."""
    from ase import Atoms
    from quippy.potential import Potential

    calculator = Potential(param_filename=str(xml), calc_args=calc_args)
    calculator.set_default_properties(['energy', 'forces', 'stress'])
    times = []
    for _ in range(repeat):
        for frame in frames:
            atoms = Atoms(numbers=frame.numbers, positions=frame.positions, cell=frame.cell, pbc=True)
            atoms.calc = calculator
            tick = time.process_time()
            atoms.get_forces()
            times.append(time.process_time() - tick)
    return float(np.median(times))


def driver(
    xml: pathlib.Path, atoms, steps: int, method: str, check_interval: int, workdir: pathlib.Path
) -> dict:
    """Run the driver in-process; return its summary."""
    from aiida_mlpot.data.extxyz import write_frames
    from aiida_mlpot.engines.ml_md import run

    workdir.mkdir(parents=True, exist_ok=True)
    for path in xml.parent.glob(xml.name + '*'):
        shutil.copy(path, workdir / path.name)
    with open(workdir / 'structure.xyz', 'w') as handle:
        write_frames([atoms], handle)
    parameters = {
        'md': {'temperature_K': 1400.0, 'n_steps': steps, 'dump_interval': 10, 'seed': 5},
        'extrapolation': {'method': method, 'check_interval': check_interval},
    }
    config = {'structure': 'structure.xyz', 'potential': {'xml': xml.name}, 'parameters': parameters}
    return run(config, workdir)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        '--xml', type=pathlib.Path, help='GAP XML (sparseX files next to it); fitted if absent'
    )
    parser.add_argument('--structure', type=pathlib.Path, help='64-atom NaCl start frame (extxyz)')
    parser.add_argument('--steps-64', type=int, default=100)
    parser.add_argument('--steps-512', type=int, default=20)
    parser.add_argument('--check-interval', type=int, default=10)
    args = parser.parse_args()

    from ase.io import read

    workdir = pathlib.Path(tempfile.mkdtemp(prefix='bench-ml-md-'))
    if args.xml is None:
        xml, held_out = fit_gap(workdir)
        start = held_out[0]
    else:
        xml = args.xml.resolve()
        start = read(args.structure) if args.structure else None
        if start is None:
            raise SystemExit('--structure is needed with --xml')
    start = start.copy()
    start.calc = None
    for key in list(start.arrays):
        if key not in ('numbers', 'positions'):
            del start.arrays[key]

    rows = []
    for size, steps in ((64, args.steps_64), (512, args.steps_512)):
        atoms = start if size == 64 else start.repeat((2, 2, 2))
        plain = driver(xml, atoms, steps, 'none', args.check_interval, workdir / f'none_{size}')
        scored = driver(xml, atoms, steps, 'gap_variance', args.check_interval, workdir / f'var_{size}')
        frames = read(workdir / f'none_{size}' / 'trajectory.xyz', ':')
        bare = bare_quippy(xml, frames, repeat=max(1, 40 // len(frames)) if size == 64 else 1)
        bare_var = bare_quippy(xml, frames, calc_args='local_gap_variance', repeat=1)
        rows.append(
            {
                'atoms': size,
                'steps': steps,
                'bare_us': 1e6 * bare / size,
                'driver_us': plain['cpu_time_per_atom_step_us'],
                'driver_var_us': scored['cpu_time_per_atom_step_us'],
                'bare_var_us': 1e6 * bare_var / size,
                'steps_per_s': plain['steps_per_second'],
            }
        )

    print(
        f'\nML-MD driver benchmark (NaCl 1400 K NVT Langevin, GAP {xml.name}; check_interval {args.check_interval})'
    )
    print(
        'CPU time per atom-step in µs (bare quippy: median of single-call E+F+S evaluations; steps/s: wall)'
    )
    header = (
        f'{"atoms":>6} {"steps":>6} {"bare":>9} {"driver":>9} {"overhead":>9} {"drv+var":>9} {"var cost":>9}'
    )
    header += f' {"bare+var/step":>14} {"steps/s":>8}'
    print(header)
    for row in rows:
        overhead = row['driver_us'] / row['bare_us'] - 1.0
        variance = row['driver_var_us'] / row['driver_us'] - 1.0
        every_step = row['bare_var_us'] / row['bare_us'] - 1.0
        print(
            f'{row["atoms"]:>6} {row["steps"]:>6} {row["bare_us"]:>9.1f} {row["driver_us"]:>9.1f} {overhead:>+9.1%} '
            f'{row["driver_var_us"]:>9.1f} {variance:>+9.1%} {every_step:>+14.1%} {row["steps_per_s"]:>8.2f}'
        )
    print('overhead: driver without measure vs bare quippy (goal <= 10 %);')
    print('var cost: driver with GAP variance every check_interval steps vs without (goal <= 15 %);')
    print('bare+var/step: variance requested at every evaluation vs not.')
    shutil.rmtree(workdir, ignore_errors=True)


if __name__ == '__main__':
    main()
