"""Start the real scale-out services of AiiDA on loopback, privately, and stop them again by PID.

* **PostgreSQL** (Debian ``postgresql``): a private cluster (``initdb --locale=C.UTF-8``) in a temporary
  folder, its own port on 127.0.0.1, a role and database for AiiDA (password over TCP, ``scram-sha-256``).
  PostgreSQL refuses to run as root: when this process is root the cluster belongs to, and the server runs
  as, the ``postgres`` system user of the Debian package (``subprocess.Popen(user=...)``, so the PID we hold
  is the postmaster's own); otherwise it runs as the current user.
* **RabbitMQ** (Debian ``rabbitmq-server``): a private node name, AMQP and distribution ports, config, data
  and log folders, its own ``epmd`` on a private port (started here, so it is ours to stop) and a private
  Erlang cookie (``HOME`` is the service folder). ``consumer_timeout`` is disabled (``advanced.config``), as
  AiiDA requires for processes that run longer than RabbitMQ's default 30 minutes.
* **SLURM** (Debian ``slurm-wlm`` + ``munge``): ``munged`` with a fresh key and a private socket,
  ``slurmctld`` and ``slurmd`` on 127.0.0.1 with a private ``slurm.conf`` (one node with this machine's
  CPUs, ``proctrack/linuxproc``, no cgroups). There is no ``slurmdbd`` (it needs MySQL), so ``sacct`` has
  no data; finished jobs are recorded by ``jobcomp/filetxt`` in ``jobcomp.log`` (read with
  :meth:`SlurmService.completed_jobs`) and in ``slurmctld.log``. Clients find the cluster through the
  ``SLURM_CONF`` variable of :meth:`SlurmService.environment`.

Every process is started in its own session and stopped by its PID (then its process group, the group id
being that same PID), in reverse order of start, by :meth:`Services.stop`, which also runs at interpreter
exit. Nothing listens on anything but 127.0.0.1 (munge uses a Unix socket only).

Command line (used by the how-to docs/how-to/scale-out.md and benchmarks/bench_daemon_load.py)::

    python scripts/services/services.py start [--services postgres,rabbitmq,slurm] [--info FILE]

starts the services, writes their connection details as JSON and waits until SIGINT/SIGTERM, then stops them.

No AiiDA import here: this module is usable before any profile exists; scripts/services/aiida_setup.py
builds the AiiDA profile, computers and codes on top of it.
"""

from __future__ import annotations

import atexit
import contextlib
import json
import os
import pathlib
import pwd
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time

__all__ = (
    'PostgresService',
    'RabbitMQService',
    'ServiceError',
    'Services',
    'SlurmService',
    'free_port',
    'missing_requirements',
)

POSTGRES_BIN = pathlib.Path('/usr/lib/postgresql')
RABBITMQ_SERVER = pathlib.Path('/usr/lib/rabbitmq/bin/rabbitmq-server')
RABBITMQCTL = pathlib.Path('/usr/lib/rabbitmq/bin/rabbitmqctl')
#: Debian packages providing each service (scripts/bootstrap.sh installs them with SCALEOUT=1).
PACKAGES = {'postgres': ('postgresql',), 'rabbitmq': ('rabbitmq-server',), 'slurm': ('slurm-wlm', 'munge')}
LOOPBACK = '127.0.0.1'


class ServiceError(RuntimeError):
    """A service cannot be started here (missing package, wrong user, start-up failure); the message says why."""


def free_port() -> int:
    """Return a TCP port on 127.0.0.1 that is free now (the kernel's choice)."""
    with socket.socket() as sock:
        sock.bind((LOOPBACK, 0))
        return sock.getsockname()[1]


def _postgres_bindir() -> pathlib.Path | None:
    versions = sorted(
        POSTGRES_BIN.glob('*/bin/postgres'), key=lambda p: int(p.parts[-3]) if p.parts[-3].isdigit() else 0
    )
    return versions[-1].parent if versions else None


def missing_requirements(service: str) -> str | None:
    """Return why ``service`` (``postgres``, ``rabbitmq`` or ``slurm``) cannot run here, or None if it can."""
    if service == 'postgres':
        if _postgres_bindir() is None:
            return (
                'PostgreSQL server binaries not found under /usr/lib/postgresql (Debian package `postgresql`)'
            )
        if os.geteuid() == 0:
            try:
                pwd.getpwnam('postgres')
            except KeyError:
                return 'running as root and there is no `postgres` user to run PostgreSQL as'
        return None
    if service == 'rabbitmq':
        for path in (RABBITMQ_SERVER, RABBITMQCTL):
            if not path.exists():
                return f'{path} not found (Debian package `rabbitmq-server`)'
        if shutil.which('epmd') is None:
            return '`epmd` not found (Debian package `erlang-base`, a dependency of `rabbitmq-server`)'
        return None
    if service == 'slurm':
        for name in ('munged', 'mungekey', 'slurmctld', 'slurmd', 'sbatch', 'squeue', 'scontrol'):
            if shutil.which(name) is None and not pathlib.Path('/usr/sbin', name).exists():
                package = 'munge' if 'munge' in name else 'slurm-wlm'
                return f'`{name}` not found (Debian package `{package}`)'
        if os.geteuid() != 0:
            return 'slurmd must run as root to start jobs (single-node SLURM is only started by root here)'
        return None
    raise ValueError(f'unknown service `{service}`; known: {", ".join(PACKAGES)}')


def _which(name: str) -> str:
    path = shutil.which(name) or str(pathlib.Path('/usr/sbin', name))
    return path


class ManagedProcess:
    """A process this module started: its PID, its name and its log file."""

    def __init__(self, name: str, argv: list[str], log: pathlib.Path, stop_signal=signal.SIGTERM, **kwargs):
        self.name = name
        self.log = log
        self.stop_signal = stop_signal
        with open(log, 'ab') as handle:
            self.popen = subprocess.Popen(
                argv, stdout=handle, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                start_new_session=True, **kwargs,
            )  # fmt: skip
        self.pid = self.popen.pid

    def alive(self) -> bool:
        """Return whether the process is still running."""
        return self.popen.poll() is None

    def stop(self, timeout: float = 30.0) -> None:
        """Send the stop signal to the PID, wait up to ``timeout`` s, then SIGKILL; then clear its process group."""
        if self.alive():
            with contextlib.suppress(ProcessLookupError):
                self.popen.send_signal(self.stop_signal)
            try:
                self.popen.wait(timeout)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    self.popen.kill()
                self.popen.wait(10)
        # Children left in the group we created (its id is our PID), e.g. Erlang helpers or job steps.
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.pid, signal.SIGKILL)

    def tail(self, lines: int = 20) -> str:
        """Return the last lines of the log."""
        try:
            return '\n'.join(self.log.read_text(errors='replace').splitlines()[-lines:])
        except OSError:
            return ''


def _wait_for(condition, timeout: float, what: str, processes: list[ManagedProcess]) -> float:
    """Wait until ``condition()`` is true; raise ServiceError naming ``what`` if a process dies or time is up."""
    start = time.monotonic()
    while not condition():
        for process in processes:
            if not process.alive():
                raise ServiceError(
                    f'{process.name} exited with {process.popen.returncode} while waiting for {what}:\n'
                    f'{process.tail()}'
                )
        if time.monotonic() - start > timeout:
            raise ServiceError(f'{what} not ready after {timeout:.0f} s:\n{processes[-1].tail()}')
        time.sleep(0.1)
    return time.monotonic() - start


def _port_open(port: int) -> bool:
    try:
        socket.create_connection((LOOPBACK, port), timeout=1).close()
        return True
    except OSError:
        return False


class PostgresService:
    """A private PostgreSQL cluster on 127.0.0.1 with one database for AiiDA."""

    def __init__(self, folder: pathlib.Path, fsync: bool = True):
        self.folder = folder
        self.fsync = fsync
        self.bindir = _postgres_bindir()
        self.port = free_port()
        self.username = 'aiida'
        self.password = secrets.token_hex(12)
        self.database = 'aiida_mlpot'
        self.processes: list[ManagedProcess] = []
        if os.geteuid() == 0:
            entry = pwd.getpwnam('postgres')
            self.user = {'user': entry.pw_uid, 'group': entry.pw_gid, 'extra_groups': []}
            self.run_as = 'postgres'
        else:
            self.user, self.run_as = {}, pwd.getpwuid(os.geteuid()).pw_name

    def _run(self, argv: list[str], **kwargs) -> subprocess.CompletedProcess:
        result = subprocess.run(argv, capture_output=True, text=True, cwd=self.folder, **self.user, **kwargs)
        if result.returncode:
            raise ServiceError(f'`{" ".join(argv)}` failed ({result.returncode}): {result.stderr[-2000:]}')
        return result

    def start(self) -> dict:
        """Create the cluster, start the server, create the role and database; return the connection details."""
        self.folder.mkdir(parents=True)
        if self.user:
            os.chown(self.folder, self.user['user'], self.user['group'])
        data = self.folder / 'data'
        self._run([
            str(self.bindir / 'initdb'), '-D', str(data), '--locale=C.UTF-8', '--encoding=UTF8',
            '-U', 'postgres', '--auth-local=trust', '--auth-host=scram-sha-256',
        ])  # fmt: skip
        argv = [
            str(self.bindir / 'postgres'), '-D', str(data), '-c', f'port={self.port}',
            '-c', f'listen_addresses={LOOPBACK}', '-c', f'unix_socket_directories={self.folder}',
            '-c', 'max_connections=200', '-c', f'fsync={"on" if self.fsync else "off"}',
        ]  # fmt: skip
        server = ManagedProcess(
            'postgres',
            argv,
            self.folder / 'postgres.log',
            stop_signal=signal.SIGINT,
            cwd=self.folder,
            **self.user,
        )
        self.processes.append(server)
        ready = [str(self.bindir / 'pg_isready'), '-q', '-h', LOOPBACK, '-p', str(self.port)]
        _wait_for(lambda: subprocess.run(ready).returncode == 0, 60, 'PostgreSQL', self.processes)
        psql = [
            shutil.which('psql') or str(self.bindir / 'psql'),
            '-h',
            str(self.folder),
            '-p',
            str(self.port),
        ]
        self._run([
            *psql, '-U', 'postgres', '-v', 'ON_ERROR_STOP=1',
            '-c', f"CREATE ROLE {self.username} LOGIN PASSWORD '{self.password}'",
            '-c', f"CREATE DATABASE {self.database} OWNER {self.username} ENCODING 'UTF8' "
            "LC_COLLATE 'C.UTF-8' LC_CTYPE 'C.UTF-8' TEMPLATE template0",
        ])  # fmt: skip
        return self.info()

    def info(self) -> dict:
        """Return the connection details (also the AiiDA ``core.psql_dos`` storage keys)."""
        return {
            'database_engine': 'postgresql_psycopg',
            'database_hostname': LOOPBACK,
            'database_port': self.port,
            'database_username': self.username,
            'database_password': self.password,
            'database_name': self.database,
            'run_as': self.run_as,
            'pid': self.processes[0].pid if self.processes else None,
        }


class RabbitMQService:
    """A private RabbitMQ node on 127.0.0.1 with ``consumer_timeout`` disabled."""

    def __init__(self, folder: pathlib.Path):
        self.folder = folder
        self.amqp_port, self.dist_port, self.epmd_port = free_port(), free_port(), free_port()
        self.nodename = f'mlpot-{os.getpid()}-{secrets.token_hex(3)}@localhost'
        self.processes: list[ManagedProcess] = []

    def environment(self) -> dict[str, str]:
        """Return the variables that point rabbitmq-server and rabbitmqctl at this node only."""
        folder = self.folder
        return {
            'HOME': str(folder),  # the Erlang cookie lives here: private to this node
            'ERL_EPMD_PORT': str(self.epmd_port),
            'ERL_EPMD_ADDRESS': LOOPBACK,
            'RABBITMQ_NODENAME': self.nodename,
            'RABBITMQ_NODE_IP_ADDRESS': LOOPBACK,
            'RABBITMQ_NODE_PORT': str(self.amqp_port),
            'RABBITMQ_DIST_PORT': str(self.dist_port),
            'RABBITMQ_CONFIG_FILE': str(folder / 'rabbitmq.conf'),
            'RABBITMQ_ADVANCED_CONFIG_FILE': str(folder / 'advanced.config'),
            'RABBITMQ_ENABLED_PLUGINS_FILE': str(folder / 'enabled_plugins'),
            'RABBITMQ_CONF_ENV_FILE': str(folder / 'rabbitmq-env.conf'),
            'RABBITMQ_MNESIA_BASE': str(folder / 'mnesia'),
            'RABBITMQ_LOG_BASE': str(folder / 'log'),
            'RABBITMQ_PLUGINS_EXPAND_DIR': str(folder / 'plugins-expand'),
            'RABBITMQ_PID_FILE': str(folder / 'rabbitmq.pid'),
        }

    def start(self, timeout: float = 120.0) -> dict:
        """Start epmd and the node; wait for the AMQP listener; check that consumer_timeout is off."""
        folder = self.folder
        folder.mkdir(parents=True)
        (folder / 'rabbitmq.conf').write_text(
            f'listeners.tcp.1 = {LOOPBACK}:{self.amqp_port}\n'
            'loopback_users = none\n'  # guest may log in (it can only over loopback anyway: we listen there)
        )
        (folder / 'advanced.config').write_text('[{rabbit, [{consumer_timeout, undefined}]}].\n')
        (folder / 'enabled_plugins').write_text('[].\n')
        (folder / 'rabbitmq-env.conf').write_text('')  # not /etc/rabbitmq/rabbitmq-env.conf
        env = {**os.environ, **self.environment()}
        epmd = ManagedProcess(
            'epmd', [shutil.which('epmd'), '-port', str(self.epmd_port), '-address', LOOPBACK],
            folder / 'epmd.log', env=env,
        )  # fmt: skip
        self.processes.append(epmd)
        _wait_for(lambda: _port_open(self.epmd_port), 20, 'epmd', self.processes)
        server = ManagedProcess('rabbitmq-server', [str(RABBITMQ_SERVER)], folder / 'server.log', env=env)
        self.processes.append(server)
        _wait_for(lambda: _port_open(self.amqp_port), timeout, 'RabbitMQ', self.processes)
        value = self.ctl('eval', 'application:get_env(rabbit, consumer_timeout).').strip()
        if value != '{ok,undefined}':
            raise ServiceError(f'RabbitMQ consumer_timeout is not disabled: {value}')
        return self.info()

    def ctl(self, *args: str) -> str:
        """Run ``rabbitmqctl -n <node> args`` and return its output."""
        env = {**os.environ, **self.environment()}
        result = subprocess.run(
            [str(RABBITMQCTL), '-n', self.nodename, *args],
            capture_output=True,
            text=True,
            env=env,
            timeout=120,
        )
        if result.returncode:
            raise ServiceError(f'rabbitmqctl {" ".join(args)} failed: {result.stderr[-2000:]}')
        return result.stdout

    def info(self) -> dict:
        """Return the AiiDA ``core.rabbitmq`` broker settings of this node."""
        return {
            'broker_protocol': 'amqp',
            'broker_username': 'guest',
            'broker_password': 'guest',
            'broker_host': LOOPBACK,
            'broker_port': self.amqp_port,
            'broker_virtual_host': '',
            'nodename': self.nodename,
            'pid': self.processes[-1].pid if self.processes else None,
        }


class SlurmService:
    """A single-node SLURM (munged, slurmctld, slurmd) on 127.0.0.1 with a private configuration."""

    def __init__(self, folder: pathlib.Path, cpus: int | None = None, memory_mb: int | None = None):
        self.folder = folder
        self.cpus = cpus or os.cpu_count() or 1
        total_mb = os.sysconf('SC_PAGE_SIZE') * os.sysconf('SC_PHYS_PAGES') // 2**20
        self.memory_mb = memory_mb or int(0.8 * total_mb)
        self.ctld_port, self.slurmd_port = free_port(), free_port()
        self.cluster = 'mlpot'
        self.node = 'mlpot-node'
        self.partition = 'debug'
        self.processes: list[ManagedProcess] = []

    @property
    def conf(self) -> pathlib.Path:
        """The slurm.conf of this cluster."""
        return self.folder / 'slurm.conf'

    def environment(self) -> dict[str, str]:
        """Return the variables that point the SLURM commands (sbatch, squeue, ...) at this cluster."""
        return {'SLURM_CONF': str(self.conf)}

    def _write_conf(self) -> None:
        folder, host = self.folder, socket.gethostname().split('.')[0]
        lines = {
            'ClusterName': self.cluster,
            'SlurmctldHost': f'{host}({LOOPBACK})',
            'SlurmctldPort': self.ctld_port,
            'SlurmdPort': self.slurmd_port,
            'SlurmUser': 'root',
            'SlurmdUser': 'root',
            'AuthType': 'auth/munge',
            'CredType': 'cred/munge',
            'AuthInfo': f'socket={folder / "munge.socket"}',
            'StateSaveLocation': folder / 'state',
            'SlurmdSpoolDir': folder / 'spool',
            'SlurmctldPidFile': folder / 'slurmctld.pid',
            'SlurmdPidFile': folder / 'slurmd.pid',
            'SlurmctldLogFile': folder / 'slurmctld.log',
            'SlurmdLogFile': folder / 'slurmd.log',
            'ProctrackType': 'proctrack/linuxproc',
            'TaskPlugin': 'task/none',
            'SchedulerType': 'sched/backfill',
            'SelectType': 'select/cons_tres',
            'SelectTypeParameters': 'CR_Core_Memory',
            'JobCompType': 'jobcomp/filetxt',
            'JobCompLoc': folder / 'jobcomp.log',
            'AccountingStorageType': 'accounting_storage/none',
            'JobAcctGatherType': 'jobacct_gather/none',
            'MpiDefault': 'none',
            'ReturnToService': 2,
            'SlurmdParameters': 'config_overrides',
            'MinJobAge': 60,
            'DefMemPerCPU': 1024,  # jobs without --mem must not take the whole node
        }
        text = ''.join(f'{key}={value}\n' for key, value in lines.items())
        text += (
            f'NodeName={self.node} NodeAddr={LOOPBACK} NodeHostname={host} CPUs={self.cpus} '
            f'RealMemory={self.memory_mb} State=UNKNOWN\n'
            f'PartitionName={self.partition} Nodes={self.node} Default=YES MaxTime=INFINITE State=UP\n'
        )
        self.conf.write_text(text)

    def start(self, timeout: float = 60.0) -> dict:
        """Start munged, slurmctld and slurmd; wait until the node is idle."""
        folder = self.folder
        folder.mkdir(parents=True)
        (folder / 'state').mkdir()
        (folder / 'spool').mkdir()
        key = folder / 'munge.key'
        subprocess.run([_which('mungekey'), '--create', f'--keyfile={key}'], check=True, capture_output=True)
        key.chmod(0o600)
        socket_path = folder / 'munge.socket'
        munged = ManagedProcess(
            'munged',
            [
                _which('munged'), '--foreground', '--force', f'--socket={socket_path}', f'--key-file={key}',
                f'--log-file={folder / "munged.log"}', f'--pid-file={folder / "munged.pid"}',
                f'--seed-file={folder / "munged.seed"}',
            ],
            folder / 'munged.out',
        )  # fmt: skip
        self.processes.append(munged)
        _wait_for(socket_path.exists, 20, 'munged', self.processes)
        self._write_conf()
        env = {**os.environ, **self.environment()}
        ctld = ManagedProcess(
            'slurmctld',
            [_which('slurmctld'), '-D', '-i', '-f', str(self.conf)],
            folder / 'slurmctld.out',
            env=env,
        )
        self.processes.append(ctld)
        _wait_for(lambda: _port_open(self.ctld_port), timeout, 'slurmctld', self.processes)
        slurmd = ManagedProcess(
            'slurmd',
            [_which('slurmd'), '-D', '-N', self.node, '-f', str(self.conf)],
            folder / 'slurmd.out',
            env=env,
        )
        self.processes.append(slurmd)
        _wait_for(lambda: self.node_state() == 'idle', timeout, 'the SLURM node', self.processes)
        return self.info()

    def node_state(self) -> str:
        """Return the state of the node as sinfo shows it (``idle``, ``mix``, ``unk*``, ...)."""
        env = {**os.environ, **self.environment()}
        result = subprocess.run(
            ['sinfo', '-h', '-n', self.node, '-o', '%t'], capture_output=True, text=True, env=env, timeout=30
        )
        return result.stdout.strip()

    def completed_jobs(self) -> dict[int, dict[str, str]]:
        """Return the finished jobs from the job-completion log: ``{job id: {field: value}}``."""
        path = self.folder / 'jobcomp.log'
        jobs = {}
        if path.exists():
            for line in path.read_text().splitlines():
                fields = dict(item.split('=', 1) for item in line.split() if '=' in item)
                if 'JobId' in fields:
                    jobs[int(fields['JobId'])] = fields
        return jobs

    def info(self) -> dict:
        """Return where the cluster is."""
        return {
            'SLURM_CONF': str(self.conf),
            'cluster': self.cluster,
            'node': self.node,
            'partition': self.partition,
            'cpus': self.cpus,
            'memory_mb': self.memory_mb,
            'jobcomp_log': str(self.folder / 'jobcomp.log'),
            'slurmctld_log': str(self.folder / 'slurmctld.log'),
            'pids': {process.name: process.pid for process in self.processes},
        }


class Services:
    """The services started together in one private folder; :meth:`stop` ends every process it started.

    Usage::

        with Services() as services:
            postgres = services.start_postgres()
            broker = services.start_rabbitmq()
            slurm = services.start_slurm()
    """

    def __init__(self, base: str | os.PathLike | None = None, keep: bool = False):
        self.folder = pathlib.Path(tempfile.mkdtemp(prefix='mlpot-services-', dir=base))
        self.folder.chmod(0o711)  # the postgres user must reach its own subfolder
        self.keep = keep
        self.postgres: PostgresService | None = None
        self.rabbitmq: RabbitMQService | None = None
        self.slurm: SlurmService | None = None
        self.timings: dict[str, float] = {}
        self._started: list[object] = []
        atexit.register(self.stop)

    def _start(self, name: str, service, **kwargs) -> dict:
        reason = missing_requirements(name)
        if reason:
            raise ServiceError(reason)
        self._started.append(service)
        start = time.monotonic()
        info = service.start(**kwargs)
        self.timings[name] = time.monotonic() - start
        return info

    def start_postgres(self, fsync: bool = True) -> dict:
        """Start PostgreSQL; return the ``core.psql_dos`` connection settings."""
        self.postgres = PostgresService(self.folder / 'postgres', fsync=fsync)
        return self._start('postgres', self.postgres)

    def start_rabbitmq(self) -> dict:
        """Start RabbitMQ; return the ``core.rabbitmq`` broker settings."""
        self.rabbitmq = RabbitMQService(self.folder / 'rabbitmq')
        return self._start('rabbitmq', self.rabbitmq)

    def start_slurm(self, cpus: int | None = None, memory_mb: int | None = None) -> dict:
        """Start munge and SLURM; return where the cluster is (``SLURM_CONF``, logs)."""
        self.slurm = SlurmService(self.folder / 'slurm', cpus=cpus, memory_mb=memory_mb)
        return self._start('slurm', self.slurm)

    def pids(self) -> dict[str, int]:
        """Return the PIDs of every process started, by name."""
        return {p.name: p.pid for service in self._started for p in service.processes}

    def alive(self) -> dict[str, bool]:
        """Return whether each started process still runs."""
        return {p.name: p.alive() for service in self._started for p in service.processes}

    def stop(self) -> dict[str, int | None]:
        """Stop every process started, newest first, by PID; return their exit codes. Idempotent."""
        codes = {}
        for service in reversed(self._started):
            for process in reversed(service.processes):
                process.stop()
                codes[process.name] = process.popen.returncode
        self._started.clear()
        if not self.keep:
            shutil.rmtree(self.folder, ignore_errors=True)
        return codes

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.stop()


def main(argv: list[str] | None = None) -> int:
    """``start``: start the services, write their details as JSON and wait for SIGINT/SIGTERM."""
    import argparse

    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('command', choices=['start'])
    parser.add_argument('--services', default='postgres,rabbitmq,slurm', help='comma-separated subset')
    parser.add_argument('--info', type=pathlib.Path, help='write the connection details here (JSON)')
    parser.add_argument('--base', help='parent folder of the private service folder (default: $TMPDIR)')
    args = parser.parse_args(argv)
    wanted = [name.strip() for name in args.services.split(',') if name.strip()]
    for name in wanted:
        reason = missing_requirements(name)
        if reason:
            print(f'cannot start {name}: {reason}', file=sys.stderr)
            return 1
    services = Services(args.base)
    stop = []
    signal.signal(signal.SIGTERM, lambda *_: stop.append(1))
    signal.signal(signal.SIGINT, lambda *_: stop.append(1))
    try:
        info = {'folder': str(services.folder)}
        for name in wanted:
            info[name] = getattr(services, f'start_{name}')()
        info['timings_s'] = services.timings
        text = json.dumps(info, indent=2)
        if args.info:
            args.info.write_text(text)
        print(text, flush=True)
        while not stop:
            time.sleep(0.5)
    finally:
        print(json.dumps({'stopped': services.stop()}), flush=True)
    return 0


if __name__ == '__main__':
    sys.exit(main())
