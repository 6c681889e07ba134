"""Load through the daemon: N small teacher-labelling jobs on a PostgreSQL + RabbitMQ profile with two workers.

Each job is a ``LammpsRerunCalculation`` (the classical teacher of ``LabellingWorkChain``) of one 8-atom NaCl cell
(Tosi-Fumi + Ewald, the real Debian ``lmp``) on a ``core.direct`` computer on this machine, submitted to a daemon
of ``--workers`` workers. The script starts its own PostgreSQL and RabbitMQ (scripts/services/services.py) and a
throw-away AiiDA configuration, and stops everything at the end.

Printed: how many finished ok / failed / excepted / never terminated (lost), messages left in RabbitMQ's
queues, the throughput, the wall time per process (makespan / N, the figure of AiiDA's performance page,
docs/source/topics/performance.rst of aiida-core: about 0.2 s per process on a fast workstation, up to ~2 s on
slow setups; the issue quotes 0.1-0.5 s), and the CPU seconds per process spent by the daemon workers, by
PostgreSQL and by RabbitMQ (the engine's own overhead, without the LAMMPS runs).

    .venv/bin/python benchmarks/bench_daemon_load.py [--n 500] [--workers 2] [--slots 10] [--timeout 0]

There is no fixed timeout by default: the wait ends when every job has terminated, or when none has terminated
for ``--stall-factor`` (20) times the mean interval measured so far (at least ``--min-stall`` s), a limit that
follows the machine's speed; progress lines every 30 s give the rate and the ETA.

``--slots`` is ``daemon.worker_process_slots`` per worker: how many processes a worker runs at once. With
``core.direct`` every running CalcJob is a process on this machine, so it is kept small (10) on 2 cores.

``--profile DIR`` says where the workers' CPU goes: the workers are then started without circus, each as
``start_daemon_worker`` (the function ``verdi daemon worker`` calls) under :mod:`cProfile` with a CPU timer (stats dumped to DIR
when the worker is stopped with SIGTERM), and their CPU is also split per thread with psutil (the RabbitMQ
communicator of a worker runs in a thread of its own, which cProfile does not see). Printed: the CPU seconds per
job by package of the code that spends them (aiida, plumpy, sqlalchemy, psycopg, aiida_mlpot, ...), the
functions with the most own time, and the cumulative time of the CalcJob steps (upload, submit, update,
retrieve, parse) and of this package's validators, ``prepare_for_submission`` and parser. cProfile slows
Python code down (about 1.5-2x), so the per-job CPU of a profiled run is not the benchmark's figure; the
shares are.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import pathlib
import signal
import sys
import tempfile
import time

ROOT = pathlib.Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / 'scripts' / 'services'))

import services as scaleout_services  # noqa: E402  (scripts/services/services.py)


def cpu_seconds(pids: list[int], children: bool = True) -> float:
    """User + system CPU seconds of ``pids`` (and of their live child processes)."""
    import psutil

    total = 0.0
    for pid in pids:
        try:
            process = psutil.Process(pid)
            members = [process] + (process.children(recursive=True) if children else [])
        except psutil.NoSuchProcess:
            continue
        for member in members:
            try:
                times = member.cpu_times()
                total += times.user + times.system
            except psutil.NoSuchProcess:
                pass
    return total


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('--n', type=int, default=500, help='number of jobs (default 500)')
    parser.add_argument('--workers', type=int, default=2, help='daemon workers (default 2)')
    parser.add_argument('--slots', type=int, default=10, help='daemon.worker_process_slots per worker')
    parser.add_argument(
        '--timeout',
        type=float,
        default=0.0,
        help='hard limit in seconds on the whole wait (default 0: none; the stall limit below decides)',
    )
    parser.add_argument(
        '--stall-factor',
        type=float,
        default=20.0,
        help='give up when no process has terminated for this many times the measured mean interval between '
        'terminations (at least --min-stall seconds; default 20)',
    )
    parser.add_argument(
        '--min-stall', type=float, default=600.0, help='the shortest stall limit, s (default 600)'
    )
    parser.add_argument('--json', type=pathlib.Path, help='also write the figures here')
    parser.add_argument(
        '--profile',
        type=pathlib.Path,
        help='run the workers under cProfile (without circus) and write their stats to this folder',
    )
    args = parser.parse_args()

    for name in ('postgres', 'rabbitmq'):
        reason = scaleout_services.missing_requirements(name)
        if reason:
            print(f'cannot run: {reason}')
            return 1
    workdir = pathlib.Path(tempfile.mkdtemp(prefix='mlpot-bench-daemon-'))
    os.environ['AIIDA_PATH'] = str(workdir / 'aiida-config')  # before aiida reads its configuration
    os.environ['PATH'] = f'{pathlib.Path(sys.executable).parent}{os.pathsep}{os.environ["PATH"]}'

    with scaleout_services.Services() as services:
        postgres = services.start_postgres()
        broker = services.start_rabbitmq()
        print(f'services started: {json.dumps({k: round(v, 1) for k, v in services.timings.items()})} s')

        import aiida
        import aiida_setup  # scripts/services/aiida_setup.py
        from aiida import orm
        from aiida.engine.daemon.client import get_daemon_client
        from aiida.manage import get_manager
        from aiida.manage.configuration import get_config
        from aiida.plugins import CalculationFactory
        from ase.build import bulk

        from aiida_mlpot.presets import nacl_tosi_fumi

        name = 'bench-daemon'
        profile = aiida_setup.create_profile(name, postgres, broker, workdir / 'repository')
        profile.set_option('daemon.worker_process_slots', args.slots)
        get_config().update_profile(profile)
        get_config().store()
        aiida.load_profile(name)
        computer = aiida_setup.direct_computer('local', workdir / 'work')
        code = aiida_setup.installed_code(computer, 'lmp', 'lmp', 'mlpot.lammps.rerun')
        potential = orm.Dict(nacl_tosi_fumi(cutoff=5.5, kspace_accuracy=1.0e-5)).store()
        LammpsRerunCalculation = CalculationFactory('mlpot.lammps.rerun')

        builders = []
        for index in range(args.n):
            atoms = bulk('NaCl', 'rocksalt', a=5.64, cubic=True)
            atoms.rattle(0.05, seed=index)  # every job its own configuration
            builder = LammpsRerunCalculation.get_builder()
            builder.code = code
            builder.potential = potential
            builder.structures = {'config_00000': orm.StructureData(ase=atoms)}
            builder.metadata.options = {
                'resources': {'num_machines': 1, 'num_mpiprocs_per_machine': 1},
                'max_wallclock_seconds': 600,
                'withmpi': False,
            }
            builders.append(builder)

        client = get_daemon_client()
        profiled = []
        if args.profile:
            profiled = start_profiled_workers(name, args.workers, args.profile)
            daemon_pids = [None, *(process.pid for process in profiled)]
        else:
            client.start_daemon(number_workers=args.workers)
            time.sleep(2)
            daemon_pids = [client.get_daemon_pid(), *worker_pids(client)]
        try:
            figures = run(args, services, daemon_pids[1:], builders)
            if profiled:
                figures['profile'] = stop_profiled_workers(profiled, args.profile, figures)
        finally:
            try:
                if not profiled:
                    client.stop_daemon(wait=True)
            except Exception as exception:  # a loaded machine: circus may not answer in time
                print(f'stopping the daemon: {exception!r}; killing its processes by PID')
            for pid in daemon_pids:
                with contextlib.suppress(ProcessLookupError, TypeError):
                    os.kill(pid, signal.SIGKILL)
            get_manager().reset_profile()  # close our database and broker connections before the services stop
    report(args, figures)
    return (
        0
        if figures['states'].get('finished_ok', 0) == args.n and figures['messages_left_in_rabbitmq'] == 0
        else 1
    )


def worker_pids(client, attempts: int = 5) -> list[int]:
    """The PIDs of the daemon workers (circus may be slow to answer on a loaded machine: retried)."""
    for attempt in range(attempts):
        try:
            return sorted(int(w['pid']) for w in client.get_worker_info()['info'].values())
        except Exception:
            if attempt == attempts - 1:
                raise
            time.sleep(5)
    return []


#: A daemon worker under cProfile: ``start_daemon_worker`` returns when the worker gets SIGTERM; then the stats.
PROFILED_WORKER = """
import cProfile, sys, time
from aiida.engine.daemon.worker import start_daemon_worker
profiler = cProfile.Profile(time.thread_time)  # CPU of the worker's main thread, not wall time
profiler.enable()
try:
    start_daemon_worker(foreground=False, profile_name=sys.argv[1])
finally:
    profiler.disable()
    profiler.dump_stats(sys.argv[2])
"""


def start_profiled_workers(profile_name: str, number: int, folder: pathlib.Path) -> list:
    """Start ``number`` daemon workers of ``profile_name`` under cProfile (no circus); return the processes."""
    import subprocess

    folder.mkdir(parents=True, exist_ok=True)
    processes = [
        subprocess.Popen(
            [sys.executable, '-c', PROFILED_WORKER, profile_name, str(folder / f'worker-{index}.prof')],
            stdout=(folder / f'worker-{index}.log').open('w'),
            stderr=subprocess.STDOUT,
        )
        for index in range(number)
    ]
    time.sleep(15)  # the imports (before the profiler starts) and the connection to RabbitMQ
    return processes


#: Where a profiled function's file lies -> the package it is counted under (first match wins).
PACKAGES = (
    'aiida_mlpot',
    'aiida_lammps',
    'aiida/engine',
    'aiida/orm',
    'aiida/storage',
    'aiida/schedulers',
    'aiida/transports',
    'aiida/repository',
    'aiida/common',
    'aiida/manage',
    'aiida',
    'plumpy',
    'kiwipy',
    'aio_pika',
    'aiormq',
    'pamqp',
    'sqlalchemy',
    'psycopg',
    'pydantic',
    'disk_objectstore',
    'ase',
    'numpy',
    'yaml',
    'asyncio',
    'json',
    'subprocess',
    'importlib',
    'logging',
)

#: Functions whose cumulative time is printed: the CalcJob steps of the engine and this package's own work.
STEPS = (
    ('aiida/engine/processes/calcjobs/tasks.py', 'task_upload_job'),
    ('aiida/engine/processes/calcjobs/tasks.py', 'task_submit_job'),
    ('aiida/engine/processes/calcjobs/tasks.py', 'task_update_job'),
    ('aiida/engine/processes/calcjobs/tasks.py', 'task_retrieve_job'),
    ('aiida/engine/processes/calcjobs/calcjob.py', 'parse'),
    ('aiida/engine/processes/calcjobs/calcjob.py', 'presubmit'),
    ('aiida/engine/processes/process.py', 'on_entered'),
    ('aiida/engine/processes/process.py', '_save_checkpoint'),
    ('aiida/engine/processes/process.py', 'on_terminated'),
    ('aiida/engine/processes/process.py', 'update_outputs'),
    ('plumpy/processes.py', 'recreate_from'),
    ('aiida/engine/processes/process.py', 'load_instance_state'),
    ('aiida_mlpot/calculations/lammps.py', '_validate_rerun_inputs'),
    ('aiida_mlpot/calculations/lammps.py', 'prepare_for_submission'),
    ('aiida_mlpot/parsers/lammps.py', 'parse'),
    ('aiida/manage/caching.py', 'get_use_cache'),
    ('aiida/engine/launch.py', 'submit'),
    ('aiida/orm/nodes/node.py', 'store'),
    ('aiida/engine/processes/process.py', 'on_create'),
    ('plumpy/processes.py', 'on_create'),
    ('aiida/engine/processes/calcjobs/calcjob.py', 'run'),
    ('aiida/engine/processes/calcjobs/tasks.py', 'execute'),
    ('aiida/orm/nodes/caching.py', 'get_hash'),
    ('aiida/orm/nodes/caching.py', '_get_same_node'),
)


def stop_profiled_workers(processes: list, folder: pathlib.Path, figures: dict) -> dict:
    """CPU per thread of every worker (psutil), then SIGTERM, then the cProfile stats by package and step."""
    import psutil

    n_jobs = max(figures['n_submitted'], 1)
    threads = []
    for process in processes:
        with contextlib.suppress(psutil.NoSuchProcess):
            rows = sorted(psutil.Process(process.pid).threads(), key=lambda t: -(t.user_time + t.system_time))
            threads.append([round(t.user_time + t.system_time, 2) for t in rows])
    for process in processes:
        process.send_signal(signal.SIGTERM)
    for process in processes:
        try:
            process.wait(timeout=120)
        except Exception:
            process.kill()
    files = [str(path) for path in sorted(folder.glob('worker-*.prof'))]
    if not files:
        return {'threads_cpu_s': threads, 'error': 'no profile written'}
    profile = {
        'jobs': n_jobs,
        'threads_cpu_s': threads,
        'workers': summarize(files, n_jobs),
    }  # threads: per worker
    if (folder / 'submit.prof').exists():
        profile['submit'] = summarize([str(folder / 'submit.prof')], n_jobs)
    print(json.dumps(profile, indent=2), flush=True)
    return profile


def summarize(files: list[str], n_jobs: int) -> dict:
    """Per job: the profiled CPU by package, the cumulative time of :data:`STEPS`, the functions of most own time."""
    import pstats

    stats = pstats.Stats(*files)
    by_package = {}
    for (filename, _line, _function), (_cc, _nc, tottime, _ct, _callers) in stats.stats.items():
        key = next((name for name in PACKAGES if f'/{name}/' in filename or f'/{name}.py' in filename), None)
        if key is None:
            key = 'built-in' if filename == '~' else 'other'
        by_package[key] = by_package.get(key, 0.0) + tottime
    steps = {}
    for (filename, line, function), (_cc, calls, _tt, cumtime, _callers) in stats.stats.items():
        for path, name in STEPS:
            if filename.endswith(path) and function == name:
                steps[f'{path}:{line}:{name}'] = {'calls': calls, 'cum_s_per_job': round(cumtime / n_jobs, 4)}
    top = sorted(stats.stats.items(), key=lambda item: -item[1][2])[:25]
    return {
        'profiled_s_per_job': round(stats.total_tt / n_jobs, 4),
        'by_package_s_per_job': {
            k: round(v / n_jobs, 4) for k, v in sorted(by_package.items(), key=lambda kv: -kv[1])
        },
        'steps': steps,
        'top_own_time': [
            f'{tottime / n_jobs:.4f} s/job own, {cumtime / n_jobs:.4f} cum, {calls} calls: '
            f'{filename.split("site-packages/")[-1]}:{line}:{function}'
            for (filename, line, function), (_cc, calls, tottime, cumtime, _callers) in top
        ],
    }


STOP = {'requested': 0}


def request_stop(signum, _frame) -> None:
    """SIGINT/SIGTERM: the first stops the submission (the wait goes on for the jobs submitted), the second
    stops the wait; then the figures of what was measured are printed and the services stopped."""
    STOP['requested'] += 1
    what = 'submitting' if STOP['requested'] == 1 else 'waiting'
    print(f'signal {signum}: stopped {what}; the figures are those of the jobs submitted', flush=True)


def run(args, services, workers: list[int], builders) -> dict:
    """Submit the builders to the running daemon, wait, and return the figures.

    A SIGINT or SIGTERM ends the submission early, a second one the wait; the figures are then those of the jobs
    submitted (``n_submitted``), marked ``stopped_early``.
    """
    signal.signal(signal.SIGINT, request_stop)
    signal.signal(signal.SIGTERM, request_stop)
    import psutil
    from aiida import orm
    from aiida.engine import submit

    worker_pids = workers
    rabbit_pids = [services.rabbitmq.processes[-1].pid]
    postgres_pids = [services.postgres.processes[0].pid]
    cpu_before = {
        'workers': cpu_seconds(worker_pids, children=False),
        'postgres': cpu_seconds(postgres_pids),
        'rabbitmq': cpu_seconds(rabbit_pids),
    }
    print(f'daemon: {args.workers} workers {worker_pids}, {args.slots} slots each; submitting {args.n} jobs')

    start = time.monotonic()
    pks = []
    submit_cpu = time.process_time()
    if (
        args.profile
    ):  # the submitting side too: validation, storing the inputs and the node, the RabbitMQ task
        import cProfile

        submit_profiler = cProfile.Profile(time.thread_time)  # CPU, not wall time
        submit_profiler.enable()
    for index, builder in enumerate(builders, start=1):
        if STOP['requested']:
            break
        pks.append(submit(builder).pk)
        if index % 50 == 0:
            print(f'  submitted {index}/{args.n} in {time.monotonic() - start:.1f} s', flush=True)
    submitted = time.monotonic() - start
    submit_cpu = time.process_time() - submit_cpu
    if args.profile:
        submit_profiler.disable()
        submit_profiler.dump_stats(str(args.profile / 'submit.prof'))
    n = len(pks)
    print(f'submitted {n} in {submitted:.1f} s ({submitted / max(n, 1) * 1e3:.1f} ms each)')

    def terminated() -> int:
        query = orm.QueryBuilder().append(
            orm.CalcJobNode,
            filters={
                'id': {'in': pks},
                'attributes.process_state': {'in': ['finished', 'excepted', 'killed']},
            },
        )
        return query.count()

    # No fixed timeout: the wait ends when every job has terminated, or when none has terminated for
    # `stall_factor` times the mean interval measured so far (a rate-proportional limit: a loaded machine is slow,
    # not stuck), or at the optional hard --timeout. A progress line every 30 s gives the rate and the ETA.
    done, last_report, last_change, stalled = 0, 0.0, time.monotonic(), False
    while done < n and STOP['requested'] < 2:
        time.sleep(2.0)
        now = time.monotonic()
        new_done = terminated()
        if new_done != done:
            done, last_change = new_done, now
        elapsed = now - start
        interval = elapsed / done if done else None
        stall_limit = (
            max(args.min_stall, args.stall_factor * interval) if interval else max(args.min_stall, 1800)
        )
        if now - last_report > 30:
            eta = f'{(n - done) * interval:.0f} s' if interval else 'unknown'
            print(
                f'  {elapsed:7.1f} s: {done}/{n} terminated, {done / elapsed:.3f}/s, ETA {eta}; '
                f'{now - last_change:.0f} s since the last termination (limit {stall_limit:.0f} s); '
                f'load {os.getloadavg()[0]:.1f}',
                flush=True,
            )
            last_report = now
        if now - last_change > stall_limit or (args.timeout and elapsed > args.timeout):
            stalled = True
            break
    makespan = time.monotonic() - start
    # the CPU of the workers, the database and the broker (children: PostgreSQL backends, Erlang helpers)
    cpu_after = {
        'workers': cpu_seconds(worker_pids, children=False),
        'postgres': cpu_seconds(postgres_pids),
        'rabbitmq': cpu_seconds(rabbit_pids),
    }
    workers_alive = [pid for pid in worker_pids if psutil.pid_exists(pid)]

    nodes = [orm.load_node(pk) for pk in pks]
    states = {}
    for node in nodes:
        key = node.process_state.value if node.process_state else 'unknown'
        if node.is_finished:
            key = 'finished_ok' if node.is_finished_ok else f'finished_{node.exit_status}'
        states[key] = states.get(key, 0) + 1
    lifetimes = sorted((node.mtime - node.ctime).total_seconds() for node in nodes if node.is_terminated)
    queues = services.rabbitmq.ctl('list_queues', 'name', 'messages', '--quiet', '--no-table-headers')
    left = sum(
        int(line.split()[-1])
        for line in queues.splitlines()
        if line.split()[-1:] and line.split()[-1].isdigit()
    )

    n_ok = states.get('finished_ok', 0)
    n_done = len(lifetimes)
    figures = {
        'n': args.n,
        'n_submitted': n,
        'stopped_early': bool(STOP['requested']),
        'workers': args.workers,
        'slots_per_worker': args.slots,
        'states': states,
        'timed_out': stalled,
        'not_terminated': n
        - sum(v for k, v in states.items() if k.startswith('finished') or k in ('excepted', 'killed')),
        'messages_left_in_rabbitmq': left,
        'workers_died': workers_alive != worker_pids,
        'submit_s': submitted,
        'submit_cpu_per_job_s': submit_cpu / max(n, 1),  # CPU of this (submitting) process
        'makespan_s': makespan,
        'throughput_per_s': n_ok / makespan,
        'throughput_per_hour': 3600 * n_ok / makespan,
        # per terminated process (all N unless --timeout cut the run short)
        'wall_per_process_s': makespan / max(n_done, 1),
        'lifetime_median_s': lifetimes[len(lifetimes) // 2] if lifetimes else None,
        'cpu_per_process_s': {k: (cpu_after[k] - cpu_before[k]) / max(n_done, 1) for k in cpu_before},
        'load_average': os.getloadavg(),
    }
    return figures


def report(args, figures: dict) -> None:
    """Print the figures (and write them as JSON with --json)."""
    n_ok, left = figures['states'].get('finished_ok', 0), figures['messages_left_in_rabbitmq']
    print(json.dumps(figures, indent=2))
    print(
        f'{n_ok}/{figures["n_submitted"]} submitted ({args.n} planned) finished ok, {figures["not_terminated"]} not terminated '
        f'(timed out: {figures["timed_out"]}), {left} messages left in RabbitMQ; '
        f'throughput {figures["throughput_per_s"]:.2f} jobs/s ({figures["throughput_per_hour"]:.0f}/h); '
        f'wall per process {figures["wall_per_process_s"]:.3f} s (AiiDA documents ~0.2 s on a fast workstation; '
        f'0.1-0.5 s quoted); CPU per process: workers {figures["cpu_per_process_s"]["workers"]:.3f} s, '
        f'PostgreSQL {figures["cpu_per_process_s"]["postgres"]:.3f} s, '
        f'RabbitMQ {figures["cpu_per_process_s"]["rabbitmq"]:.3f} s; load average {figures["load_average"]}'
    )
    if args.json:
        args.json.write_text(json.dumps(figures, indent=2))


if __name__ == '__main__':
    sys.exit(main())
