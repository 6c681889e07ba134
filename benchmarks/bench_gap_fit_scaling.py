"""Benchmark of a refit's cost against the training-set size: gap_fit wall time and peak memory per protocol.

For training sets of 50, 100, 200, 400 and 1000 configurations of 64-atom molten NaCl (labelled by the classical
teacher: Tosi-Fumi + Ewald NVT MD with the real ``lmp`` at 1100 K and 1400 K, the model's own densities; half of
each set from each temperature, spread evenly over the trajectories) it runs the real ``gap_fit`` directly (no
AiiDA) with the parameters the ``fast`` and ``balanced`` protocols produce (``GapFitWorkChain``'s protocol file,
``aiida_mlpot.inputs.gap_fit.build_command_line``), on top of the Coulomb baseline that the active-learning loop
adds for NaCl (``--no-baseline`` to leave it out), and prints next to each fit the memory plan's estimate
(``estimate_memory``) and what ``plan_memory`` would do with the memory declared (``--limit-mb``, default the
machine's total memory).

Peak memory is the maximum resident set size of the gap_fit process tree (``os.wait4``'s rusage: the wrapper
script and the Fortran executable it runs). Each fit runs with a data-segment limit (``ulimit -d``, as
``GapFitCalculation`` does) of the memory available when it starts, so a fit that does not fit fails by itself
instead of calling the OOM killer on the machine's other jobs; a fit whose estimate exceeds the memory available
is not started (the table says so).

Usage::

    .venv/bin/python benchmarks/bench_gap_fit_scaling.py [--sizes 50 100 200 400 1000]
        [--protocols fast balanced] [--no-baseline] [--limit-mb MB] [--timeout S] [--workdir DIR] [--json OUT]
"""

from __future__ import annotations

import argparse
import json
import os
import pathlib
import resource
import shutil
import signal
import subprocess
import sys
import tempfile
import time

import numpy as np

ROOT = pathlib.Path(__file__).resolve().parents[1]
#: (temperature K, density g/cm^3): the model's own NPT densities at 1 bar (tests/conftest.py).
STATES = ((1100, 1.445), (1400, 1.295))
#: MD steps between two frames of the pool (2 fs time step).
INTERVAL = 20
#: The Δ-learning baseline the loop adds for NaCl (ActiveLearningWorkChain.setup, `loop.baseline_cutoff`).
BASELINE = {'type': 'coulomb', 'charges': {'Na': 1.0, 'Cl': -1.0}, 'cutoff': 9.0}


def meminfo_mb(key: str) -> float:
    """Return a /proc/meminfo entry in MB."""
    for line in pathlib.Path('/proc/meminfo').read_text().splitlines():
        if line.startswith(key + ':'):
            return float(line.split()[1]) / 1024.0
    raise KeyError(key)


def make_pool(workdir: pathlib.Path, per_state: int) -> list:
    """Return ``2 * per_state`` teacher-labelled frames (real ``lmp``), cached in ``workdir/pool.xyz``."""
    from aiida_mlpot.data.extxyz import read_frames, write_frames

    cache = workdir / 'pool.xyz'
    if cache.is_file():
        with open(cache) as handle:
            frames = read_frames(handle)
        if len(frames) >= 2 * per_state:
            return frames
    sys.path.insert(0, str(ROOT))
    from tests.conftest import run_lammps_nacl_nvt

    frames = []
    for k, (temperature, density) in enumerate(STATES):
        tick = time.perf_counter()
        # the dump has n_prod / INTERVAL + 1 frames; drop the first (it is the last equilibration frame)
        run = run_lammps_nacl_nvt(
            workdir / f'lammps_{temperature}',
            temperature,
            density,
            seed=7100 + k,
            n_prod=INTERVAL * per_state,
        )
        frames += run[1 : per_state + 1]
        print(f'  lmp NVT {temperature} K: {len(run) - 1} frames in {time.perf_counter() - tick:.1f} s')
    with open(cache, 'w') as handle:
        write_frames(frames, handle)
    return frames


def subset(frames: list, size: int, per_state: int) -> list:
    """Return ``size`` frames, half from each temperature, evenly spread over each trajectory."""
    chosen = []
    for k, n in enumerate((size - size // 2, size // 2)):
        indices = np.linspace(0, per_state - 1, n).round().astype(int)
        chosen += [frames[k * per_state + i] for i in indices]
    return chosen


def protocol_parameters(protocol: str, baseline: bool) -> dict:
    """Return the gap_fit parameters of ``protocol`` as the loop's refit uses them."""
    from aiida_mlpot.inputs.gap_fit import validate_parameters
    from aiida_mlpot.workflows.gap_fit import GapFitWorkChain

    parameters = GapFitWorkChain.get_protocol_inputs(protocol)['gap_fit']['parameters']
    if baseline:
        parameters['baseline'] = dict(BASELINE)
    message = validate_parameters(parameters)
    if message:
        raise ValueError(message)
    return parameters


def run_gap_fit(
    folder: pathlib.Path, frames: list, parameters: dict, limit_mb: float, timeout: float
) -> dict:
    """Run gap_fit on ``frames`` in ``folder``; return wall time, peak RSS and status."""
    from aiida_mlpot.data.extxyz import write_frames
    from aiida_mlpot.inputs.gap_fit import build_command_line, coulomb_baseline_xml

    folder.mkdir(parents=True, exist_ok=True)
    with open(folder / 'dataset.xyz', 'w') as handle:
        write_frames(frames, handle)
    if 'baseline' in parameters:
        (folder / 'baseline.xml').write_text(coulomb_baseline_xml(parameters['baseline']))
    args = build_command_line(parameters) + ['do_copy_at_file=F']
    executable = shutil.which('gap_fit', path=str(pathlib.Path(sys.executable).parent)) or 'gap_fit'
    limit = int(limit_mb * 1024 * 1024)

    def set_limit():
        resource.setrlimit(resource.RLIMIT_DATA, (limit, limit))

    env = {**os.environ, 'OMP_NUM_THREADS': '1', 'OPENBLAS_NUM_THREADS': '1'}
    with open(folder / 'gap_fit.log', 'w') as log:
        tick = time.perf_counter()
        process = subprocess.Popen(
            [executable, *args],
            cwd=folder,
            stdout=log,
            stderr=subprocess.STDOUT,
            preexec_fn=set_limit,
            env=env,
            start_new_session=True,  # the wrapper script runs the Fortran gap_fit: a timeout kills both
        )
        deadline = tick + timeout
        while True:
            pid, status, usage = os.wait4(process.pid, os.WNOHANG)
            if pid:
                break
            if time.perf_counter() > deadline:
                os.killpg(process.pid, signal.SIGKILL)
                pid, status, usage = os.wait4(process.pid, 0)
                break
            time.sleep(0.2)
        wall = time.perf_counter() - tick
    process.returncode = os.waitstatus_to_exitcode(status)
    ok = process.returncode == 0 and (folder / 'gap.xml').is_file()
    return {
        'wall_s': wall,
        'max_rss_mb': usage.ru_maxrss / 1024.0,
        'cpu_s': usage.ru_utime + usage.ru_stime,
        'returncode': process.returncode,
        'ok': ok,
        'timed_out': wall > timeout,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--sizes', type=int, nargs='+', default=[50, 100, 200, 400, 1000])
    parser.add_argument('--protocols', nargs='+', default=['fast', 'balanced'])
    parser.add_argument('--no-baseline', action='store_true', help='fit without the Coulomb baseline')
    parser.add_argument(
        '--limit-mb', type=float, default=None, help='memory declared to plan_memory (default: MemTotal)'
    )
    parser.add_argument('--timeout', type=float, default=3600.0, help='seconds per fit before it is killed')
    parser.add_argument(
        '--workdir', default=None, help='working folder (kept; default: a temporary one, removed)'
    )
    parser.add_argument('--json', default=None, help='write the results to this JSON file as they come')
    args = parser.parse_args(argv)

    from aiida_mlpot.inputs.gap_fit import dataset_stats, estimate_memory, plan_memory

    workdir = pathlib.Path(args.workdir or tempfile.mkdtemp(prefix='mlpot-bench-gap-'))
    workdir.mkdir(parents=True, exist_ok=True)
    limit_mb = args.limit_mb or meminfo_mb('MemTotal')
    per_state = (max(args.sizes) + 1) // 2
    print(f'== pool: {2 * per_state} frames of 64-atom NaCl from the Tosi-Fumi teacher (lmp), in {workdir}')
    frames = make_pool(workdir, per_state)
    results = []
    header = (
        f'{"protocol":<9} {"configs":>7} {"estimate MB":>11} {"(descr":>7} {"covar)":>7} {"max RSS MB":>10} '
        f'{"RSS/est":>7} {"wall s":>8} {"cpu s":>8} {"load":>5}  plan_memory (declared {limit_mb:.0f} MB) / status'
    )
    print(header)
    try:
        for protocol in args.protocols:
            parameters = protocol_parameters(protocol, not args.no_baseline)
            for size in sorted(args.sizes):
                training = subset(frames, size, per_state)
                stats = dataset_stats(training)
                estimate = estimate_memory(parameters, stats)
                try:
                    _, note = plan_memory(parameters, stats, limit_mb)
                    plan = note or 'fits as is'
                except ValueError as error:
                    plan = f'refused: {error}'
                available = meminfo_mb('MemAvailable')
                row = {
                    'protocol': protocol,
                    'n_configs': size,
                    'n_atoms': stats.n_atoms,
                    'estimate': estimate,
                    'plan': plan,
                    'available_mb': available,
                    'baseline': not args.no_baseline,
                    'date': time.strftime('%Y-%m-%d %H:%M'),
                }
                if estimate['total_mb'] > 0.9 * available:
                    row['skipped'] = (
                        f'estimate {estimate["total_mb"]:.0f} MB > 90 % of the {available:.0f} MB available'
                    )
                else:
                    row.update(
                        run_gap_fit(
                            workdir / f'{protocol}_{size}',
                            training,
                            parameters,
                            0.95 * available,
                            args.timeout,
                        )
                    )
                row['load'] = os.getloadavg()
                results.append(row)
                if args.json:
                    pathlib.Path(args.json).write_text(json.dumps(results, indent=1))
                if 'skipped' in row:
                    measured = f'{"-":>10} {"-":>7} {"-":>8} {"-":>8} {row["load"][0]:>5.1f}  {plan} / SKIPPED: {row["skipped"]}'
                else:
                    status = (
                        'ok'
                        if row['ok']
                        else ('TIMED OUT' if row['timed_out'] else f'FAILED ({row["returncode"]})')
                    )
                    measured = (
                        f'{row["max_rss_mb"]:>10.0f} {row["max_rss_mb"] / estimate["total_mb"]:>7.2f} '
                        f'{row["wall_s"]:>8.1f} {row["cpu_s"]:>8.1f} {row["load"][0]:>5.1f}  {plan} / {status}'
                    )
                print(
                    f'{protocol:<9} {size:>7} {estimate["total_mb"]:>11.0f} {estimate["descriptors_mb"]:>7.0f} '
                    f'{estimate["covariance_mb"]:>7.0f} {measured}',
                    flush=True,
                )
    finally:
        if not args.workdir:
            shutil.rmtree(workdir, ignore_errors=True)
    return 0 if all(row.get('ok', 'skipped' in row) for row in results) else 1


if __name__ == '__main__':
    sys.exit(main(sys.argv[1:]))
