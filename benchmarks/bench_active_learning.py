"""Benchmark of the orchestration overhead of `ActiveLearningWorkChain`: loop wall time / wall time of the codes.

It runs the README's loop (molten NaCl, 64 atoms, 1100 K and 1400 K, Tosi-Fumi teacher, ``fast`` protocol; a
real run with the real ``lmp``, ``gap_fit`` and the ML-MD and evaluation drivers) in process on a THROW-AWAY
profile: ``AIIDA_PATH`` points to a temporary folder before AiiDA is imported, and the profile, the computer and
the codes are made there by ``aiida-mlpot setup``'s own functions (same poll intervals as a user gets). The
user's configuration and default profile are never touched.

How the external codes are timed: the throw-away computer gets a ``prepend_text`` and an ``append_text`` that
append ``start|end <epoch seconds> <working directory>`` to a log file. The computer's texts are the first and
the last lines of every job script (aiida-core puts them around the code's, the calculation's and the options'
texts), so an interval is the job script's own run time (the code, plus a ``ulimit`` or an ``echo $?``), and
everything AiiDA does before (upload, submission, waiting for the poll) and after (poll, retrieval, parsing,
storing) is outside it. The append text also records bash's ``times`` for the script's children (the code's
CPU time). Intervals are matched to the CalcJob nodes by their remote working directory. Node ctime/mtime are
only used to say WHERE the rest of the time goes, never to time the codes.

Printed: per code (CalcJob class), the number of jobs and their summed wall time; the loop's wall time; two
ratios:

* ``loop / Σ code wall`` (the issue's definition; concurrent jobs, e.g. the two ML-MD replicas on 2 cores, make
  Σ larger than the time they occupy, so this ratio can be below 1);
* ``loop / busy`` where ``busy`` is the time during which at least one code was running (the union of the
  intervals): ``loop - busy`` is the time when only AiiDA was working (the orchestration overhead proper);
* on a loaded machine wall times mostly measure the queue for the cores, so also the CPU ratio
  ``(CPU of this AiiDA process + CPU of the codes) / CPU of the codes``.

Then where the idle time goes: before the first job, per CalcJob the time from its creation to the start of its
script and from the end of its script to its termination, the calcfunctions by name, and the largest gaps.

To benchmark a given commit while the working tree changes, run it from a clone with ``PYTHONPATH`` set to the
clone (the drivers on the compute side then use it too)::

    git clone -q /work/main /tmp/src && PYTHONPATH=/tmp/src .venv/bin/python /tmp/src/benchmarks/bench_active_learning.py

Usage::

    .venv/bin/python benchmarks/bench_active_learning.py [--protocol fast] [--tmp DIR] [--keep]
        [--overrides '{"loop": {"target_steps": 500}}'] [--cprofile OUT.prof]
"""

from __future__ import annotations

import argparse
import collections
import json
import os
import pathlib
import shutil
import sys
import tempfile
import time

ROOT = pathlib.Path(__file__).resolve().parents[1]
#: Gaps shorter than this (s) between code intervals are not listed one by one.
GAP_LISTED_S = 2.0


def prepare_profile(folder: pathlib.Path, log: pathlib.Path) -> dict:
    """Create the throw-away profile, computer and codes under ``folder``; return ``{key: code}``."""
    os.environ['AIIDA_PATH'] = str(
        folder
    )  # before any aiida import: the user's configuration stays untouched
    from aiida_mlpot.cli.setup import setup

    result = setup(profile='mlpot-bench', workdir=str(folder / 'scratch'), echo=lambda line: None)
    from aiida import orm

    computer = orm.load_computer(result['computer'])
    prepend = f'echo "start $(date +%s.%N) $PWD" >> {log}'
    if os.environ.get('PYTHONPATH'):  # a benchmark of another checkout: its drivers too
        prepend += f'\nexport PYTHONPATH={os.environ["PYTHONPATH"]}'
    computer.set_prepend_text(prepend)
    # `times` (the script's children: the code) must run in the script's own shell, not in a $(...) subshell
    computer.set_append_text(
        f'echo "end $(date +%s.%N) $PWD" >> {log}\n'
        f'times > .bench_times && echo "cpu $(tail -n 1 .bench_times | tr \' \' ,) $PWD" >> {log}'
    )
    labels = {'lammps': 'lmp', 'gap_fit': 'gap_fit', 'python': 'python'}
    return {key: orm.load_code(f'{label}@{computer.label}') for key, label in labels.items()}


def _seconds(text: str) -> float:
    """Return the seconds of a bash ``times`` figure such as ``1m2.345s``."""
    minutes, seconds = text.rstrip('s').split('m')
    return 60.0 * float(minutes) + float(seconds)


def read_intervals(log: pathlib.Path) -> dict[str, tuple[float, float, float]]:
    """Return ``{working directory: (start, end, cpu seconds of the code)}`` from the timing log."""
    starts, ends, cpus = {}, {}, {}
    for line in log.read_text().splitlines():
        kind, value, folder = line.split(' ', 2)
        folder = folder.rstrip('/')
        if kind == 'cpu':
            cpus[folder] = sum(_seconds(x) for x in value.split(','))
        else:
            (starts if kind == 'start' else ends)[folder] = float(value)
    return {
        folder: (starts[folder], ends[folder], cpus.get(folder, float('nan')))
        for folder in starts
        if folder in ends
    }


def union(intervals: list[tuple[float, float]]) -> list[tuple[float, float]]:
    """Return the union of ``intervals`` as sorted disjoint intervals."""
    merged: list[list[float]] = []
    for start, end in sorted(intervals):
        if merged and start <= merged[-1][1]:
            merged[-1][1] = max(merged[-1][1], end)
        else:
            merged.append([start, end])
    return [(a, b) for a, b in merged]


def overlap(a: tuple[float, float], b: tuple[float, float]) -> float:
    """Return the length of the overlap of two intervals."""
    return max(0.0, min(a[1], b[1]) - max(a[0], b[0]))


def analyse(node, intervals: dict[str, tuple[float, float]], t0: float, t1: float) -> dict:
    """Match the intervals to the CalcJobs of ``node``; return the figures (all in seconds)."""
    from aiida.orm import CalcFunctionNode, CalcJobNode

    jobs, functions = [], []
    for child in node.called_descendants:
        if isinstance(child, CalcJobNode):
            workdir = (child.get_remote_workdir() or '').rstrip('/')
            if workdir not in intervals:
                print(f'  WARNING: no timing for {child.process_label}<{child.pk}> ({workdir})')
                continue
            start, end, cpu = intervals[workdir]
            code = child.inputs.code.label if 'code' in child.inputs else '?'
            jobs.append(
                {
                    'label': child.process_label,
                    'code': code,
                    'pk': child.pk,
                    'created': child.ctime.timestamp(),
                    'start': start,
                    'end': end,
                    'cpu': cpu,
                    'finished': child.mtime.timestamp(),
                    'caller': child.caller.process_label if child.caller else '',
                }
            )
        elif isinstance(child, CalcFunctionNode):
            functions.append(
                {
                    'label': child.process_label,
                    'pk': child.pk,
                    'start': child.ctime.timestamp(),
                    'end': child.mtime.timestamp(),
                }
            )
    busy = union([(job['start'], job['end']) for job in jobs])
    busy_s = sum(b - a for a, b in busy)
    per_code = collections.defaultdict(lambda: {'n': 0, 'wall_s': 0.0, 'cpu_s': 0.0})
    for job in jobs:
        key = f'{job["label"]} ({job["code"]})'
        per_code[key]['n'] += 1
        per_code[key]['wall_s'] += job['end'] - job['start']
        per_code[key]['cpu_s'] += job['cpu']
    per_function = collections.defaultdict(lambda: {'n': 0, 'wall_s': 0.0})
    for function in functions:
        per_function[function['label']]['n'] += 1
        per_function[function['label']]['wall_s'] += function['end'] - function['start']
    # idle gaps: [t0, first start], between busy intervals, [last end, t1]
    edges = [t0] + [x for interval in busy for x in interval] + [t1]
    gaps = [(edges[i], edges[i + 1]) for i in range(0, len(edges), 2) if edges[i + 1] > edges[i]]
    return {
        'jobs': jobs,
        'functions': functions,
        'busy': busy,
        'busy_s': busy_s,
        'sum_s': sum(job['end'] - job['start'] for job in jobs),
        'cpu_s': sum(job['cpu'] for job in jobs),
        'per_code': dict(per_code),
        'per_function': dict(per_function),
        'gaps': gaps,
    }


def describe_gap(gap: tuple[float, float], figures: dict) -> str:
    """Return what AiiDA was doing during an idle ``gap``: CalcJob phases and calcfunctions that overlap it."""
    parts = []
    for job in figures['jobs']:
        before = overlap(gap, (job['created'], job['start']))
        after = overlap(gap, (job['end'], job['finished']))
        if before > 0.05:
            parts.append(f'{job["label"]}<{job["pk"]}> before its script {before:.1f}')
        if after > 0.05:
            parts.append(f'{job["label"]}<{job["pk"]}> after its script {after:.1f}')
    for function in figures['functions']:
        seconds = overlap(gap, (function['start'], function['end']))
        if seconds > 0.05:
            parts.append(f'{function["label"]}<{function["pk"]}> {seconds:.1f}')
    return '; '.join(parts) or 'work chain steps (no calcfunction or CalcJob in flight)'


def report(figures: dict, loop_s: float, t0: float, aiida_cpu_s: float) -> None:
    """Print the per-code breakdown, the ratios and where the overhead goes."""
    print('\n== external codes (job script wall time from the timing log; CPU time of the code from `times`)')
    print(f'{"calculation (code)":<42} {"jobs":>5} {"wall s":>9} {"CPU s":>9}')
    for key, item in sorted(figures['per_code'].items(), key=lambda kv: -kv[1]['wall_s']):
        print(f'{key:<42} {item["n"]:>5} {item["wall_s"]:>9.1f} {item["cpu_s"]:>9.1f}')
    print(f'{"Σ":<42} {len(figures["jobs"]):>5} {figures["sum_s"]:>9.1f} {figures["cpu_s"]:>9.1f}')
    busy = figures['busy_s']
    print(f'\nloop wall time (run_get_node, in process)      {loop_s:9.1f} s')
    print(f'Σ code wall time                              {figures["sum_s"]:9.1f} s')
    print(f'busy time (at least one code running)         {busy:9.1f} s')
    print(f'idle time (only AiiDA working)                {loop_s - busy:9.1f} s')
    print(f'overhead ratio loop / Σ code wall             {loop_s / figures["sum_s"]:9.3f}   (goal ≤ 1.10)')
    print(f'overhead ratio loop / busy                    {loop_s / busy:9.3f}   (goal ≤ 1.10)')
    cpu = figures['cpu_s']
    print(f'CPU: AiiDA process {aiida_cpu_s:.1f} s (engine, storage, calcfunctions), codes {cpu:.1f} s; ')
    print(
        f'CPU ratio (AiiDA + codes) / codes             {(aiida_cpu_s + cpu) / cpu:9.3f}   (independent of the load)'
    )

    print('\n== where the idle time goes')
    jobs = figures['jobs']
    first = min(job['start'] for job in jobs)
    print(f'before the first job script starts            {first - t0:9.1f} s')
    pre = collections.defaultdict(float)
    post = collections.defaultdict(float)
    for job in jobs:
        pre[job['label']] += job['start'] - job['created']
        post[job['label']] += job['finished'] - job['end']
    print(
        'per CalcJob class: Σ (creation -> script start) / Σ (script end -> terminated) [upload, submit, poll;'
    )
    print('poll, retrieve, parse, store]; concurrent jobs overlap, so these are not additive')
    for label in sorted(pre):
        n = sum(1 for job in jobs if job['label'] == label)
        print(
            f'  {label:<32} {n:>3} jobs  {pre[label]:7.1f} s / {post[label]:7.1f} s  ({(pre[label] + post[label]) / n:.1f} s per job)'
        )
    print('calcfunctions (ctime -> mtime), by name:')
    for label, item in sorted(figures['per_function'].items(), key=lambda kv: -kv[1]['wall_s']):
        print(f'  {label:<32} {item["n"]:>3} calls {item["wall_s"]:7.1f} s')
    print(f'idle gaps longer than {GAP_LISTED_S:.0f} s (seconds after the start; what overlaps them):')
    for gap in figures['gaps']:
        if gap[1] - gap[0] >= GAP_LISTED_S:
            print(
                f'  {gap[0] - t0:7.1f} -> {gap[1] - t0:7.1f}  {gap[1] - gap[0]:6.1f} s: {describe_gap(gap, figures)}'
            )
    small = [gap for gap in figures['gaps'] if gap[1] - gap[0] < GAP_LISTED_S]
    print(f'  plus {len(small)} shorter gaps: {sum(b - a for a, b in small):.1f} s')


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--protocol', default='fast', help='protocol of the loop (default: fast)')
    parser.add_argument(
        '--overrides',
        default=None,
        help='JSON overrides of the builder, e.g. {"loop": {"target_steps": 500}}',
    )
    parser.add_argument(
        '--tmp', default=None, help='folder for the throw-away profile (default: a new one in /tmp)'
    )
    parser.add_argument(
        '--keep', action='store_true', help='keep the throw-away profile and working directories'
    )
    parser.add_argument(
        '--cprofile', default=None, help='also profile the Python side with cProfile into this file'
    )
    args = parser.parse_args(argv)

    folder = pathlib.Path(args.tmp or tempfile.mkdtemp(prefix='mlpot-bench-al-'))
    folder.mkdir(parents=True, exist_ok=True)
    log = folder / 'code_times.log'
    log.touch()
    try:
        codes = prepare_profile(folder, log)
        from aiida import orm
        from aiida.engine import run_get_node

        from aiida_mlpot.presets import nacl_tosi_fumi
        from aiida_mlpot.structures import random_box
        from aiida_mlpot.workflows.active_learning import ActiveLearningWorkChain

        sys.path.insert(0, str(ROOT / 'examples'))
        from active_learning_nacl import iteration_table

        print(f'== throw-away profile in {folder}; load average {os.getloadavg()[0]:.2f} (1 min)')
        atoms = random_box({'Na': 32, 'Cl': 32}, density=1.35, min_distance=2.3, seed=2024)
        structure = orm.StructureData(ase=atoms)
        builder = ActiveLearningWorkChain.get_builder_from_protocol(
            structure,
            nacl_tosi_fumi('ewald'),
            temperatures=[1100.0, 1400.0],
            oracle='classical',
            protocol=args.protocol,
            overrides=json.loads(args.overrides) if args.overrides else None,
            codes=codes,
        )
        profiler = None
        if args.cprofile:
            import cProfile

            profiler = cProfile.Profile()
            profiler.enable()
        t0 = time.time()
        tick, cpu_tick = time.perf_counter(), os.times()
        results, node = run_get_node(builder)
        loop_s, cpu_tock = time.perf_counter() - tick, os.times()
        aiida_cpu_s = (cpu_tock.user - cpu_tick.user) + (cpu_tock.system - cpu_tick.system)
        if profiler is not None:
            profiler.disable()
            profiler.dump_stats(args.cprofile)
        load = os.getloadavg()
        print(
            f'== {node.process_label}<{node.pk}> exit status {node.exit_status} after {loop_s:.1f} s; '
            f'load average {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}'
        )
        if 'learning_curve' in results:
            print(iteration_table(results['learning_curve'].get_dict()))
        figures = analyse(node, read_intervals(log), t0, t0 + loop_s)
        report(figures, loop_s, t0, aiida_cpu_s)
        if profiler is not None:
            import pstats

            print(f'\n== cProfile (written to {args.cprofile}), top 25 by cumulative time')
            pstats.Stats(args.cprofile).sort_stats('cumulative').print_stats(25)
        return 0 if node.is_finished_ok else 1
    finally:
        if not args.keep and not args.tmp:
            shutil.rmtree(folder, ignore_errors=True)


if __name__ == '__main__':
    sys.exit(main(sys.argv[1:]))
