"""How long a work chain run in process (``run``) waits after its child has finished, per ``runner.poll.interval``.

aiida-core's own ``MultiplyAddWorkChain`` (a calcfunction, then an ``ArithmeticAddCalculation`` of ``/bin/bash``
on a ``core.direct`` computer) is run in this process on a fresh SQLite + ZeroMQ profile (one per interval, in
``--folder``), once per interval given. It prints when the child calculation ended and when the work chain did,
both counted from the work chain's creation: the difference is the wait for the child's end.

Measured on 2026-11-30 (aiida-core 2.9.4, plumpy 0.26.1, kiwipy 0.9.0, idle 2-core machine): with the default 60 s
the work chain ended 59.2 s after its child (61.2 s in all), with 1 s 0.2 s after it (2.3 s in all); the crash test's
in-process loop on a PostgreSQL + RabbitMQ profile waited the same 60 s per child (docs/how-to/scale-out.md). That is
why ``aiida-mlpot setup`` and the scale-out profile set 1 s. Usage::

    .venv/bin/python benchmarks/bench_inprocess_wait.py [--intervals 60 1] [--folder /tmp/mlpot-wait]
"""

from __future__ import annotations

import argparse
import os
import pathlib
import subprocess
import sys
import time

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1] / 'scripts' / 'services'))


def measure(interval: int, folder: pathlib.Path) -> str:
    """Run the work chain on the profile of ``interval`` (made when missing) and describe its timeline."""
    os.environ['AIIDA_PATH'] = str(folder / f'aiida_{interval}')
    from aiida import orm
    from aiida.engine import run_get_node
    from aiida.manage.configuration import create_profile, get_config, load_profile
    from aiida.plugins import BrokerFactory, WorkflowFactory

    config = get_config(create=True)
    name = f'wait-{interval}'
    if name not in config.profile_names:
        broker = BrokerFactory('core.zeromq').get_default_config()
        create_profile(
            config,
            name=name,
            email='mlpot@localhost',
            storage_backend='core.sqlite_dos',
            storage_config={},
            broker_backend='core.zeromq',
            broker_config=broker,
        )
        config.set_option('runner.poll.interval', interval, scope=name)
        config.store()
    load_profile(name, allow_switch=True)
    try:
        computer = orm.load_computer('wait-localhost')
    except Exception:
        import aiida_setup  # scripts/services/aiida_setup.py

        computer = aiida_setup.direct_computer('wait-localhost', folder / 'work')
    try:
        code = orm.load_code('bash@wait-localhost')
    except Exception:
        code = orm.InstalledCode(
            label='bash',
            computer=computer,
            filepath_executable='/bin/bash',
            default_calc_job_plugin='core.arithmetic.add',
        ).store()
    start = time.monotonic()
    _, node = run_get_node(
        WorkflowFactory('core.arithmetic.multiply_add'), x=orm.Int(2), y=orm.Int(3), z=orm.Int(4), code=code
    )
    wall = time.monotonic() - start
    child = next(n for n in node.called_descendants if n.process_label == 'ArithmeticAddCalculation')
    child_end = (child.mtime - node.ctime).total_seconds()
    end = (node.mtime - node.ctime).total_seconds()
    return (
        f'runner.poll.interval {interval:>3} s: exit {node.exit_status}, {wall:.1f} s in all; the child ended at '
        f'{child_end:.1f} s, the work chain at {end:.1f} s: waited {end - child_end:.1f} s after its child'
    )


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--intervals', type=int, nargs='+', default=[60, 1])
    parser.add_argument('--folder', type=pathlib.Path, default=pathlib.Path('/tmp/mlpot-wait'))
    parser.add_argument('--one', type=int, help=argparse.SUPPRESS)  # internal: measure this interval here
    args = parser.parse_args(argv)
    if args.one is not None:
        print(measure(args.one, args.folder), flush=True)
        return 0
    failed = 0
    for interval in args.intervals:  # one process per profile: a loaded profile is not switched in place
        result = subprocess.run(
            [sys.executable, __file__, '--one', str(interval), '--folder', str(args.folder)],
            capture_output=True,
            text=True,
        )
        lines = [line for line in result.stdout.splitlines() if line.startswith('runner.poll.interval')]
        print(lines[-1] if lines else f'interval {interval}: failed\n{result.stderr[-2000:]}', flush=True)
        failed |= result.returncode
    return failed


if __name__ == '__main__':
    sys.exit(main())
