"""Fixtures of the scale-out tests: the real services (PostgreSQL, RabbitMQ, SLURM + munge) on loopback, an AiiDA
profile on them with a daemon of two workers, and a runner for tests/scaleout/driver.py.

Every service process and the daemon are stopped by the finalizers, also when a test fails. The tests are
skipped, with the reason, where a Debian package is missing (scripts/bootstrap.sh installs them).
"""

from __future__ import annotations

import json
import os
import pathlib
import secrets
import subprocess
import sys
import time

import pytest

from tests.processes import kill_leftovers

ROOT = pathlib.Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / 'scripts' / 'services'))

import services as scaleout_services  # noqa: E402  (scripts/services/services.py)

DRIVER = pathlib.Path(__file__).with_name('driver.py')
VERDI = pathlib.Path(sys.executable).with_name('verdi')
WORKERS = 2


def pytest_configure(config):
    config.addinivalue_line(
        'markers', 'scaleout: needs PostgreSQL, RabbitMQ and SLURM (started by tests/scaleout)'
    )


class ScaleOut:
    """The running services, the profile name, and the environment that reaches them."""

    def __init__(self, services, profile: str, env: dict[str, str], timings: dict[str, float]):
        self.services = services
        self.profile = profile
        self.env = env
        self.timings = timings
        self.started_pids: list[int] = []  # every daemon process started here, killed if left at the end

    def start_daemon(self) -> None:
        """``verdi daemon start`` with two workers; record the PIDs of circus and the workers."""
        self.verdi('daemon', 'start', str(WORKERS))
        self.started_pids += self.daemon_pids(circus=True)

    def driver(self, command: str, *args: str, timeout: float = 1200.0) -> dict:
        """Run ``driver.py command`` on the scale-out profile and return its JSON result."""
        return self.driver_result(self.driver_start(command, *args), timeout)

    def driver_start(self, command: str, *args: str) -> subprocess.Popen:
        """Start ``driver.py command`` on the scale-out profile in the background (see :meth:`driver_result`)."""
        return subprocess.Popen(
            [sys.executable, str(DRIVER), command, '--name', self.profile, *args],
            env=self.env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        )  # fmt: skip

    @staticmethod
    def driver_result(process: subprocess.Popen, timeout: float = 1200.0) -> dict:
        """Wait for a driver started by :meth:`driver_start` (killed after ``timeout``); return its JSON result."""
        try:
            stdout, stderr = process.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            process.kill()
            stdout, stderr = process.communicate()
        lines = [line for line in stdout.splitlines() if line.startswith('RESULT ')]
        if process.returncode or not lines:
            raise AssertionError(
                f'driver {process.args[2]} failed ({process.returncode}):\n{stdout[-3000:]}\n{stderr[-5000:]}'
            )
        return json.loads(lines[-1][len('RESULT ') :])

    def verdi(self, *args: str, check: bool = True) -> subprocess.CompletedProcess:
        """Run ``verdi -p <profile> args``."""
        result = subprocess.run(
            [str(VERDI), '-p', self.profile, *args], env=self.env, capture_output=True, text=True, timeout=300
        )
        if check and result.returncode:
            raise AssertionError(f'verdi {" ".join(args)} failed: {result.stdout}\n{result.stderr}')
        return result

    def daemon_pids(self, circus: bool = False) -> list[int]:
        """Return the PIDs of the daemon workers (with ``circus``: also the arbiter and all its children)."""
        code = (
            'import json, aiida; from aiida.engine.daemon.client import get_daemon_client; '
            f'aiida.load_profile("{self.profile}"); client = get_daemon_client(); '
            'pids = sorted(int(w["pid"]) for w in client.get_worker_info()["info"].values()); '
            f'circus = client.get_daemon_pid() if {circus} else None; import psutil; '
            'pids += [circus] + [p.pid for p in psutil.Process(circus).children(recursive=True)] if circus else []; '
            'print(json.dumps(sorted(set(pids))))'
        )
        result = subprocess.run([sys.executable, '-c', code], env=self.env, capture_output=True, text=True)
        return json.loads(result.stdout.strip().splitlines()[-1]) if result.returncode == 0 else []


@pytest.fixture(scope='package')
def scaleout(tmp_path_factory):
    """PostgreSQL + RabbitMQ + SLURM on loopback, a ``core.psql_dos`` profile with caching for the oracle
    calculations, its computers and codes (driver.py setup) and a daemon with two workers."""
    if os.environ.get('MLPOT_SCALEOUT') == '0':
        pytest.skip('scale-out tests switched off (MLPOT_SCALEOUT=0)')
    for name in ('postgres', 'rabbitmq', 'slurm'):
        reason = scaleout_services.missing_requirements(name)
        if reason:
            pytest.skip(f'scale-out services unavailable: {reason}')
    start = time.monotonic()
    services = scaleout_services.Services(keep=bool(os.environ.get('MLPOT_KEEP_SERVICES')))
    env = dict(os.environ)
    profile = f'scaleout-{secrets.token_hex(4)}'
    started_daemon, scaleout = False, None
    try:
        info = {
            'postgres': services.start_postgres(),
            'rabbitmq': services.start_rabbitmq(),
            'slurm': services.start_slurm(),
        }
        timings = dict(services.timings)
        info_file = services.folder / 'services.json'
        info_file.write_text(json.dumps(info))
        workdir = tmp_path_factory.mktemp('scaleout')
        env.update(services.slurm.environment())
        env['AIIDA_PATH'] = str(workdir / 'aiida-config')  # a private AiiDA configuration folder
        env['PATH'] = (
            f'{VERDI.parent}{os.pathsep}{env.get("PATH", "")}'  # verdi, gap_fit, the daemon's python
        )
        scaleout = ScaleOut(services, profile, env, timings)
        setup_start = time.monotonic()
        scaleout.setup = scaleout.driver(
            'setup', '--services', str(info_file), '--workdir', str(workdir), timeout=600
        )
        timings['profile_setup'] = time.monotonic() - setup_start
        daemon_start = time.monotonic()
        started_daemon = True
        scaleout.start_daemon()
        timings['daemon_start'] = time.monotonic() - daemon_start
        timings['total_start'] = time.monotonic() - start
        print(f'scale-out services and daemon started: {json.dumps(timings)}')
        yield scaleout
    finally:
        stop_start = time.monotonic()
        if started_daemon:
            if scaleout is not None:  # also a daemon a driver started again (the loop crash test)
                scaleout.started_pids += scaleout.daemon_pids(circus=True)
            result = subprocess.run(
                [str(VERDI), '-p', profile, 'daemon', 'stop'],
                env=env,
                capture_output=True,
                text=True,
                timeout=300,
            )
            if result.returncode:
                print(f'verdi daemon stop: {result.stdout} {result.stderr}')
            time.sleep(1)
            killed = kill_leftovers(sorted(set(scaleout.started_pids)) if scaleout else [])
            if killed:
                print(f'daemon processes still running after `verdi daemon stop`, killed: {killed}')
        codes = services.stop()
        print(f'scale-out services stopped in {time.monotonic() - stop_start:.1f} s: {codes}')
