"""The loop through the daemon of the embedded profile, stopped and killed in the middle, against a run in process.

As a user would, on a throw-away AiiDA configuration (its own ``AIIDA_PATH``): ``aiida-mlpot setup`` makes the
embedded profile (SQLite storage, aiida-core's ZeroMQ broker) and registers the codes, ``verdi daemon start``
starts one worker, and ``aiida-mlpot launch active-learning`` runs the smallest loop of the tests (the argon
system and budgets of test_loop_argon.py) twice with the same inputs: once with ``--submit`` through the daemon,
once in process (``run``), side by side. The daemon run is interrupted twice:

1. ``verdi daemon stop`` while a CalcJob of the loop runs (the first seen after the initial fit: an ML-MD,
   labelling or fit job; the job goes on without a daemon), then ``verdi daemon start`` again;
2. SIGKILL of the daemon worker while a CalcJob of a later step runs (of the loop, or of the random baseline fitted
   after it; circus starts a new worker, the broker hands the killed worker's tasks to it).

Both runs must end OK with the same learning curve: the same oracle calls per iteration, one labelling per step,
no configuration labelled twice, every CalcJob terminated and none run twice. Any state the loop kept outside
AiiDA's checkpoints would be lost by the interruptions and show as a difference.

The pytest process keeps its own profile (switching profiles closes the storage of the session's nodes), so
everything on the embedded profile runs in subprocesses; the graph is read by this file run as a script
(``python test_loop_daemon.py wait|facts|workers ...``), which prints one JSON line.
"""

from __future__ import annotations

import json
import os
import pathlib
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time

import pytest

from tests.processes import kill_leftovers

ROOT = pathlib.Path(__file__).resolve().parents[3]
BIN = pathlib.Path(sys.executable).parent
#: A RAM-backed folder where there is one: SQLite commits on this disk cost 10-20 ms each.
FAST_TMP = pathlib.Path('/dev/shm') if os.access('/dev/shm', os.W_OK) else None
#: Seconds to wait for each stage of the test.
TIMEOUT = 1500.0


# --- the script side: runs on the embedded profile, prints one JSON line ---------------------------------------
def _calcjobs(node) -> list:
    from aiida import orm

    return [child for child in node.called_descendants if isinstance(child, orm.CalcJobNode)]


def _call_path(node, root) -> str:
    """Return the call-link labels from ``root`` down to ``node``, e.g. ``fit_01/gap_fit/iteration_01``."""
    from aiida.common.links import LinkType

    labels = []
    while node.pk != root.pk:
        link = node.base.links.get_incoming(link_type=(LinkType.CALL_CALC, LinkType.CALL_WORK)).one()
        labels.append(link.link_label)
        node = link.node
    return '/'.join(reversed(labels))


#: Call link labels of the steps inside the loop (``iteration_01_explore_T90_V1``, ``iteration_01_label``, ...;
#: ``explore_01_...``, ``label_01`` before the labels were grouped by iteration), whose CalcJobs mark its middle.
MIDDLE_STEPS = re.compile(r'^(iteration_\d\d_|(explore|label|fit)_\d\d)')


#: Children of the run before the loop proper: never taken for "the middle".
BEFORE_THE_LOOP = ('sampling', 'label_initial', 'fit_initial', 'fit_00')


def _fresh_view() -> None:
    """End the storage session's transaction, so that the next query sees what the other processes committed."""
    from aiida.manage import get_manager

    get_manager().get_profile_storage().get_session().rollback()


def _running_step(node, done: set[str], inside_loop: bool) -> str | None:
    """Return the call link label of a child step of the run, not in ``done`` nor ``BEFORE_THE_LOOP`` (with
    ``inside_loop``: one of ``MIDDLE_STEPS``), with a CalcJob that has not terminated (at any depth), or None."""
    from aiida.common.links import LinkType

    for child in node.base.links.get_outgoing(link_type=LinkType.CALL_WORK).all():
        label = child.link_label
        if label in done or label in BEFORE_THE_LOOP or (inside_loop and not MIDDLE_STEPS.match(label)):
            continue
        if any(not job.is_terminated for job in _calcjobs(child.node)):
            return label
    return None


def script_wait(pk: int, done: str, timeout: float) -> dict:
    """Wait until a CalcJob of the run ``pk`` runs in a step not in ``done`` (comma-separated labels; ``none``: a
    step inside the loop, ``MIDDLE_STEPS``; ``terminated``: wait for the end) or the run ended; say what was seen."""
    from aiida import orm

    start = time.monotonic()
    excluded = set(done.split(','))
    while time.monotonic() - start < timeout:
        _fresh_view()
        node = orm.load_node(pk)
        step = None if done == 'terminated' else _running_step(node, excluded, inside_loop=done == 'none')
        if step is not None or node.is_terminated:
            return {'step': step, 'seconds': time.monotonic() - start, 'terminated': node.is_terminated}
        time.sleep(0.5)
    return {'step': None, 'seconds': time.monotonic() - start, 'terminated': False}


def script_facts(pk: int) -> dict:
    """What the graph of the loop ``pk`` says: state, learning curve, labellings, oracle calculations, CalcJobs."""
    import hashlib

    import numpy as np
    from aiida import orm
    from aiida.common.links import LinkType

    node = orm.load_node(pk)
    facts = {
        'pk': pk,
        'state': node.process_state.value if node.process_state else None,
        'exit_status': node.exit_status,
        'exit_message': node.exit_message,
        'curve': node.outputs.learning_curve.get_dict()['iterations']
        if 'learning_curve' in node.outputs
        else None,
        'stopping': node.outputs.stopping.get_dict() if 'stopping' in node.outputs else None,
    }
    labellings: dict[str, list] = {}
    digests: list[str] = []
    for child in node.called:
        if child.process_label != 'LabellingWorkChain':
            continue
        label = child.base.links.get_incoming(link_type=LinkType.CALL_WORK).one().link_label
        oracle_jobs = [job for job in _calcjobs(child) if job.process_label == 'LammpsRerunCalculation']
        n_configs = 0
        for job in oracle_jobs:
            for structure in job.inputs.structures.values():
                atoms = structure.get_ase()
                rounded = np.round(np.concatenate([atoms.positions.ravel(), atoms.cell.ravel()]), 6)
                # the loop's own labellings only: the random baseline may draw a configuration labelled before
                if label == 'label_initial' or MIDDLE_STEPS.match(label):
                    digests.append(hashlib.sha1(rounded.tobytes()).hexdigest())
                n_configs += 1
        labellings.setdefault(label, []).append(
            {
                'pk': child.pk,
                'state': child.process_state.value,
                'oracle_jobs': len(oracle_jobs),
                'configs': n_configs,
            }
        )
    facts['labellings'] = labellings
    facts['n_labelled_configs'] = len(digests)
    facts['n_distinct_labelled_configs'] = len(set(digests))
    jobs = _calcjobs(node)
    facts['calcjobs'] = sorted(
        f'{_call_path(job, node)} {job.process_label} [{job.exit_status}]' for job in jobs
    )
    facts['calcjobs_not_terminated'] = [job.pk for job in jobs if not job.is_terminated]
    return facts


def script_workers() -> dict:
    """The PIDs of the daemon's workers, and of circus with all its children (workers, broker)."""
    import psutil
    from aiida.engine.daemon.client import get_daemon_client

    client = get_daemon_client()
    workers = sorted(int(info['pid']) for info in client.get_worker_info()['info'].values())
    circus = client.get_daemon_pid()
    tree = (
        [circus] + [child.pid for child in psutil.Process(circus).children(recursive=True)] if circus else []
    )
    return {'workers': workers, 'tree': sorted(set(tree))}


def _retry(function, *args):
    """Call ``function``; on SQLite's `database is locked` (a reader meets a writer holding the lock longer than
    the busy timeout: seen at load 30 while the daemon and the run in process both wrote) try again."""
    from sqlalchemy.exc import OperationalError

    for _ in range(30):
        try:
            return function(*args)
        except OperationalError as exception:
            if 'database is locked' not in str(exception):
                raise
            _fresh_view()
            time.sleep(2.0)
    return function(*args)


def main(argv: list[str]) -> None:
    from aiida import load_profile

    load_profile()
    command, args = argv[0], argv[1:]
    if command == 'wait':
        result = _retry(script_wait, int(args[0]), args[1], float(args[2]))
    elif command == 'facts':
        result = _retry(script_facts, int(args[0]))
    elif command == 'workers':
        result = script_workers()
    else:
        raise SystemExit(f'unknown command {command}')
    print('RESULT ' + json.dumps(result))


# --- the test side -----------------------------------------------------------------------------------------------
class Embedded:
    """A throw-away AiiDA configuration with the embedded profile that ``aiida-mlpot setup`` makes."""

    def __init__(self, folder: pathlib.Path):
        self.folder = folder
        self.env = {
            **os.environ,
            'AIIDA_PATH': str(folder / 'config'),
            'PATH': f'{BIN}{os.pathsep}{os.environ.get("PATH", "")}',  # verdi, gap_fit, the daemon's python
            'PYTHONPATH': str(ROOT),
        }
        self.pids: set[int] = set()  # every process of the daemon seen by the test: killed if left at the end
        self.daemon_started = False

    def run(self, *command: str, timeout: float = 600.0, check: bool = True) -> subprocess.CompletedProcess:
        result = subprocess.run(
            [str(c) for c in command],
            env=self.env,
            cwd=self.folder,
            capture_output=True,
            text=True,
            timeout=timeout,
        )
        if check and result.returncode:
            raise AssertionError(
                f'{" ".join(map(str, command))} failed:\n{result.stdout[-3000:]}\n{result.stderr[-3000:]}'
            )
        return result

    def verdi(self, *args: str, check: bool = True) -> str:
        return self.run(BIN / 'verdi', *args, check=check).stdout

    def mlpot(self, *args: str, timeout: float = 600.0) -> str:
        return self.run(sys.executable, '-m', 'aiida_mlpot.cli.main', *args, timeout=timeout).stdout

    def script(self, *args: str, timeout: float = TIMEOUT + 60) -> dict:
        result = self.run(sys.executable, __file__, *map(str, args), timeout=timeout)
        lines = [line for line in result.stdout.splitlines() if line.startswith('RESULT ')]
        assert lines, result.stdout[-3000:] + result.stderr[-3000:]
        return json.loads(lines[-1][len('RESULT ') :])

    def start_daemon(self) -> None:
        self.daemon_started = True
        self.verdi('daemon', 'start', '1')
        self.pids |= set(self.script('workers')['tree'])

    def stop_daemon(self) -> None:
        self.pids |= set(self.script('workers')['tree'])
        self.verdi('daemon', 'stop')

    def processes_in_folder(self) -> list:
        """Processes whose working directory is inside the folder: the CalcJobs the daemon or a run started."""
        import psutil

        found = []
        for process in psutil.process_iter(['pid', 'cwd']):
            cwd = process.info.get('cwd')
            if cwd and pathlib.Path(cwd).is_relative_to(self.folder) and process.pid != os.getpid():
                found.append(process)
        return found

    def cleanup(self) -> list[int]:
        """Stop the daemon, then SIGKILL what is left of it and of the jobs; return the PIDs killed."""
        if self.daemon_started:
            self.verdi('daemon', 'stop', check=False)
        return kill_leftovers(sorted(self.pids) + [p.pid for p in self.processes_in_folder()])


@pytest.fixture
def embedded():
    """The embedded profile in a throw-away ``AIIDA_PATH``, with its codes; everything started is stopped."""
    for name in ('lmp', 'gap_fit'):
        if not (BIN / name).is_file() and shutil.which(name) is None:
            pytest.skip(f'`{name}` is not installed')
    folder = pathlib.Path(tempfile.mkdtemp(prefix='mlpot-daemon-', dir=FAST_TMP))
    profile = Embedded(folder)
    try:
        output = profile.mlpot('setup')
        assert 'created (SQLite storage, ZeroMQ broker)' in output, output
        # verdi waits 2 s for circus by default: too short on a loaded machine (a `daemon stop` timed out at load 27)
        profile.verdi('config', 'set', 'daemon.timeout', '120')
        yield profile
    finally:
        killed = profile.cleanup()
        if killed:
            print(f'left running at the end and killed: {killed}')
        shutil.rmtree(folder, ignore_errors=True)


def _launch(profile: Embedded, structure: pathlib.Path, overrides: pathlib.Path, *extra: str) -> list[str]:
    return [
        sys.executable, '-m', 'aiida_mlpot.cli.main', 'launch', 'active-learning', str(structure), '-T', '90',
        '--potential', 'argon_lj', '--protocol', 'fast', '--overrides', str(overrides), *extra,
    ]  # fmt: skip


@pytest.mark.skip(
    reason='aiida-core 2.9.4 ZeroMQ broker: a child submitted seconds before `verdi daemon stop` stays Created after '
    '`verdi daemon start` (its task is in neither the pending nor the processing queue; measured 2026-11-30, '
    'LabellingWorkChain of iteration_01_label): the loop then waits for ever. Unskip when that is fixed.'
)
@pytest.mark.e2e
@pytest.mark.slow
def test_loop_survives_daemon_stop_and_worker_kill(embedded):
    """Submitted, stopped, restarted, its worker killed: the loop ends OK exactly like the run in process."""
    from ase.io import write

    from aiida_mlpot.structures import random_box
    from tests.workflows.active_learning.loop_helpers import SMALL

    structure = embedded.folder / 'argon32.xyz'
    write(structure, random_box({'Ar': 32}, density=1.40, min_distance=3.0, seed=1))
    overrides = embedded.folder / 'small.json'
    overrides.write_text(json.dumps(SMALL))
    timings = {}
    start = time.monotonic()

    embedded.start_daemon()
    output = embedded.mlpot(*_launch(embedded, structure, overrides, '--submit')[3:])
    submitted = int(re.search(r'submitted ActiveLearningWorkChain<(\d+)>', output).group(1))
    log = embedded.folder / 'in_process.log'  # a file, not a pipe: a full pipe would block the run
    with log.open('w') as stream:
        in_process = subprocess.Popen(
            _launch(embedded, structure, overrides), env=embedded.env, cwd=embedded.folder,
            stdout=stream, stderr=subprocess.STDOUT, text=True,
        )  # fmt: skip
    try:
        # 1. `verdi daemon stop` while a CalcJob of the loop runs (the job goes on without the daemon), restart
        first = embedded.script('wait', submitted, 'none', TIMEOUT)
        assert first['step'], f'no job of the loop seen running before the end: {first}'
        embedded.stop_daemon()
        timings['stopped_at'] = time.monotonic() - start
        time.sleep(5.0)
        facts = embedded.script('facts', submitted)
        assert facts['state'] in ('waiting', 'running', 'created'), facts['state']  # not ended by the stop
        embedded.start_daemon()

        # 2. SIGKILL of the worker while a CalcJob of a later step runs; circus starts a new worker
        second = embedded.script('wait', submitted, f'{first["step"]}', TIMEOUT)
        assert second['step'], f'no job of a step after {first["step"]} seen running before the end: {second}'
        print(f'daemon stopped during {first["step"]}, worker killed during {second["step"]}')
        workers = embedded.script('workers')['workers']
        assert len(workers) == 1, workers
        os.kill(workers[0], signal.SIGKILL)
        timings['killed_at'] = time.monotonic() - start
        for _ in range(60):  # circus restarts the worker
            time.sleep(1.0)
            now = embedded.script('workers')
            embedded.pids |= set(now['tree'])
            if now['workers'] and now['workers'] != workers:
                break
        else:
            raise AssertionError('circus did not start a new worker after the SIGKILL')

        seen = embedded.script('wait', submitted, 'terminated', TIMEOUT)
        assert seen['terminated'], f'the submitted loop did not end in {TIMEOUT} s'
        timings['submitted_done'] = time.monotonic() - start
        in_process.wait(timeout=TIMEOUT)
        timings['in_process_done'] = time.monotonic() - start
    finally:
        if in_process.poll() is None:
            in_process.kill()
            in_process.wait()
    stdout = log.read_text()
    assert in_process.returncode == 0, stdout[-5000:]
    ran = int(re.search(r'ActiveLearningWorkChain<(\d+)> finished with exit status 0', stdout).group(1))

    daemon, reference = embedded.script('facts', submitted), embedded.script('facts', ran)
    print(f'timings (s): {json.dumps(timings)}')
    print(f'daemon run: {json.dumps(daemon["curve"])}\nin process: {json.dumps(reference["curve"])}')
    for facts in (daemon, reference):
        assert facts['state'] == 'finished' and facts['exit_status'] == 0, facts['exit_message']
        assert facts['stopping']['converged'], facts['stopping']
        assert not facts['calcjobs_not_terminated'], facts['calcjobs_not_terminated']
        assert facts['n_labelled_configs'] == facts['n_distinct_labelled_configs'], (
            'a configuration labelled twice'
        )
        for label, runs in facts['labellings'].items():  # one labelling per step, one oracle job each
            assert len(runs) == 1 and runs[0]['oracle_jobs'] == 1, (label, runs)
    # the interrupted run did what the uninterrupted one did: per iteration the same oracle calls, the same jobs
    assert [row['oracle_calls'] for row in daemon['curve']] == [
        row['oracle_calls'] for row in reference['curve']
    ]
    assert {k: v[0]['configs'] for k, v in daemon['labellings'].items()} == {
        k: v[0]['configs'] for k, v in reference['labellings'].items()
    }
    assert (
        daemon['calcjobs'] == reference['calcjobs']
    )  # each by its call path and exit status: none run twice


if __name__ == '__main__':
    main(sys.argv[1:])
