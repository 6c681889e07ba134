"""CPU time of the ``source_*.py`` runs, calculations included: a poller of the processes under a cache folder.

The scripts run their processes in this interpreter, but the calculations (``lmp``, ``gap_fit``, the ML-MD
driver) are started by AiiDA's ``direct`` scheduler in the background and are not children the script waits
for, so ``/usr/bin/time`` of a script misses them. This poller reads, every ``--interval`` seconds, the CPU time
(user + system, psutil) of every process whose working directory is under ``CACHE/scratch_<name>`` (a
calculation of profile ``<name>``) or whose command line names ``benchmarks/source_`` (the scripts), keeps the
last value seen per process, and writes the sums per group to ``--out`` (JSON) as it goes. A process that ends
between two polls loses at most ``--interval`` seconds of CPU; one shorter than that may be missed.

Usage: ``.venv/bin/python benchmarks/source_cpu_monitor.py --out /tmp/source/cpu.json &`` (stop it with kill).
"""

from __future__ import annotations

import argparse
import json
import os
import pathlib
import time

import psutil


def group_of(process: psutil.Process, scratch: str) -> str | None:
    """``calc:<name>`` for a calculation of profile ``<name>``, ``script:<args>`` for a script, else None."""
    try:
        cwd = process.cwd()
        if cwd.startswith(scratch):
            return 'calc:' + cwd[len(scratch) :].split('/')[0]
        cmdline = process.cmdline()
    except (psutil.NoSuchProcess, psutil.AccessDenied, psutil.ZombieProcess):
        return None
    scripts = [arg for arg in cmdline if 'benchmarks/source_' in arg and 'cpu_monitor' not in arg]
    if scripts:
        return 'script:' + ' '.join(cmdline[cmdline.index(scripts[0]) :])[:160]
    return None


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--cache', default='/tmp/source')
    parser.add_argument('--out', type=pathlib.Path, required=True)
    parser.add_argument('--interval', type=float, default=2.0)
    args = parser.parse_args(argv)
    scratch = os.path.join(args.cache, 'scratch_')
    seen: dict[tuple[int, float], tuple[str, float]] = {}  # (pid, create time) -> (group, CPU seconds)
    last_write = 0.0
    while True:
        for process in psutil.process_iter(['pid', 'create_time']):
            key = (process.info['pid'], process.info['create_time'])
            group = seen[key][0] if key in seen else group_of(process, scratch)
            if group is None:
                continue
            try:
                times = process.cpu_times()
            except (psutil.NoSuchProcess, psutil.AccessDenied, psutil.ZombieProcess):
                continue
            seen[key] = (group, times.user + times.system)
        if time.time() - last_write > 30:
            totals: dict[str, float] = {}
            for group, cpu in seen.values():
                totals[group] = totals.get(group, 0.0) + cpu
            payload = {
                'time': time.strftime('%H:%M:%S', time.gmtime()),
                'load': os.getloadavg(),
                'cpu_s': totals,
            }
            args.out.write_text(json.dumps(payload, indent=1, sort_keys=True))
            last_write = time.time()
        time.sleep(args.interval)


if __name__ == '__main__':
    raise SystemExit(main())
