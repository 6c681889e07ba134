"""The AiiDA side of the scale-out tests, run as its own Python process on the PostgreSQL + RabbitMQ profile.

The pytest process keeps its throw-away SQLite profile (switching the loaded profile closes the storage that
the session's nodes are bound to), so everything on the scale-out profile happens here, as a user's script
would: load the profile, submit to the daemon, wait, and print what the graph says as one JSON line.

    python tests/scaleout/driver.py setup --services services.json --name PROFILE --workdir DIR
    python tests/scaleout/driver.py e2e|caching --name PROFILE
"""

from __future__ import annotations

import argparse
import json
import os
import pathlib
import signal
import sys
import time

import numpy as np
from ase.build import bulk

ROOT = pathlib.Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / 'scripts' / 'services'))
sys.path.insert(1, str(ROOT))  # tests.workflows.active_learning.loop_helpers (the argon loop's budgets)

import aiida_setup  # noqa: E402  (scripts/services/aiida_setup.py)

#: metadata.options a user would set on a cluster, per stage (docs/how-to/scale-out.md).
LABEL_OPTIONS = {
    'resources': {'num_machines': 1, 'num_mpiprocs_per_machine': 1},
    'max_wallclock_seconds': 600,
    'max_memory_kb': 1024 * 1024,  # else core.slurm asks for the computer's default_memory_per_machine
    'account': 'mlpot-label',
    'prepend_text': 'echo "labelling on $(hostname) as SLURM job $SLURM_JOB_ID"',
}
FIT_OPTIONS = {
    'resources': {'num_machines': 1, 'num_mpiprocs_per_machine': 1},
    'max_wallclock_seconds': 900,
    'account': 'mlpot-fit',
    'max_memory_kb': 2 * 1024 * 1024,
    'prepend_text': 'echo "gap_fit as SLURM job $SLURM_JOB_ID"',
}
#: A small fit: 2b + a light SOAP, enough for 10 x 8-atom cells.
FIT_DESCRIPTORS = [
    {
        'type': 'distance_2b', 'cutoff': 5.0, 'cutoff_transition_width': 1.0, 'n_sparse': 10, 'delta': 1.0,
        'theta_uniform': 1.0, 'covariance_type': 'ard_se', 'sparse_method': 'uniform',
    },
    {
        'type': 'soap', 'n_max': 3, 'l_max': 2, 'atom_sigma': 0.5, 'cutoff': 4.0, 'cutoff_transition_width': 1.0,
        'zeta': 2, 'delta': 0.2, 'covariance_type': 'dot_product', 'sparse_method': 'cur_points', 'n_sparse': 20,
    },
]  # fmt: skip


def nacl_cells(n: int, seed: int, amplitude: float = 0.08):
    """``n`` 8-atom rock-salt NaCl cells (a = 5.64 Å), each rattled differently."""
    cells = []
    for index in range(n):
        atoms = bulk('NaCl', 'rocksalt', a=5.64, cubic=True)
        atoms.rattle(amplitude, seed=seed + index)
        cells.append(atoms)
    return cells


def xtb_labelling(cells, max_concurrent: int):
    """A CP2K GFN1-xTB ``LabellingWorkChain`` builder of ``cells`` (new StructureData nodes each time: the cache
    matches on content hashes, not on node identity) on the SLURM computer, ``max_concurrent`` jobs at once."""
    from aiida import orm

    from aiida_mlpot.workflows.labelling import LabellingWorkChain

    return LabellingWorkChain.get_builder_from_protocol(
        orm.load_code('cp2k@slurm'),
        [orm.StructureData(ase=atoms) for atoms in cells],
        protocol='xtb',
        overrides={'cp2k': {'settings': {'omp_num_threads': 1}, 'max_concurrent': max_concurrent}},
        options=LABEL_OPTIONS,
    )


def wait(nodes, timeout: float) -> float:
    """Wait until every process node is terminated; return the seconds waited."""
    start = time.monotonic()
    while not all(node.is_terminated for node in nodes):
        if time.monotonic() - start > timeout:
            states = {node.pk: node.process_state.value for node in nodes}
            raise TimeoutError(f'processes not terminated after {timeout:.0f} s: {states}')
        time.sleep(1.0)
    return time.monotonic() - start


def calcjob_facts(root) -> list[dict]:
    """Every CalcJob below ``root``: class, exit status, computer, scheduler job id, #SBATCH lines, caching."""
    from aiida import orm

    facts = []
    for node in sorted(root.called_descendants, key=lambda n: n.pk):
        if not isinstance(node, orm.CalcJobNode):
            continue
        sbatch = []
        remote = node.get_remote_workdir()
        script = pathlib.Path(remote, '_aiidasubmit.sh') if remote else None
        if script is not None and script.exists():
            sbatch = [line for line in script.read_text().splitlines() if line.startswith('#SBATCH')]
        facts.append(
            {
                'pk': node.pk,
                'process_label': node.process_label,
                'process_state': node.process_state.value if node.process_state else None,
                'exit_status': node.exit_status,
                'outputs': sorted(node.base.links.get_outgoing().all_link_labels()),
                'computer': node.computer.label,
                'scheduler': node.computer.scheduler_type,
                'job_id': node.get_job_id(),
                'sbatch': sbatch,
                'cached_from': node.base.caching.get_cache_source(),
            }
        )
    return facts


def workchain_facts(node) -> dict:
    """Exit status and the CalcJobs of a work chain."""

    facts = {
        'pk': node.pk,
        'process_label': node.process_label,
        'process_state': node.process_state.value if node.process_state else None,
        'exit_status': node.exit_status,
        'finished_ok': node.is_finished_ok,
        'calcjobs': calcjob_facts(node),
    }
    if not node.is_finished_ok:  # say why, from the node and every process below it
        facts['exception'] = node.exception
        facts['reports'] = process_reports(node, last=20)
    return facts


def process_reports(node, last: int) -> list[str]:
    """The last ``last`` log messages of ``node`` and every process below it."""
    from aiida import orm

    return [
        f'{log.dbnode_id} {log.levelname}: {log.message}'
        for process in [node, *node.called_descendants]
        for log in orm.Log.collection.get_logs_for(process)
    ][-last:]


def cmd_setup(args) -> dict:
    """Create the profile with caching for the oracle calculations, the SLURM and direct computers, the codes."""
    import aiida

    info = json.loads(pathlib.Path(args.services).read_text())
    workdir = pathlib.Path(args.workdir)
    aiida_setup.create_profile(args.name, info['postgres'], info['rabbitmq'], workdir / 'repository')
    cached = aiida_setup.enable_oracle_caching(args.name)
    aiida.load_profile(args.name)
    codes = {}
    if 'slurm' in info:
        slurm = aiida_setup.slurm_computer('slurm', workdir / 'slurm_work', info['slurm']['memory_mb'])
        for label, name, plugin in (
            ('lmp', 'lmp', 'mlpot.lammps.rerun'),
            ('cp2k', 'cp2k.psmp', 'cp2k'),
            ('gap_fit', 'gap_fit', 'mlpot.gap_fit'),
            ('python', 'python', 'mlpot.evaluate'),
        ):
            try:
                codes[f'{label}@slurm'] = aiida_setup.installed_code(slurm, label, name, plugin).pk
            except ValueError as exception:
                codes[f'{label}@slurm'] = str(exception)
        # The uninterrupted reference loop of the crash test has a LAMMPS code of its own: caching is on for the
        # teacher's rerun, and a code of the same executable and computer hashes the same (caching compares
        # content, not nodes), so a prepend text makes it distinct and neither run is served from the other.
        try:
            codes['lmp-reference@slurm'] = aiida_setup.installed_code(
                slurm, 'lmp-reference', 'lmp', 'mlpot.lammps.rerun', prepend_text='# reference runs'
            ).pk
        except ValueError as exception:
            codes['lmp-reference@slurm'] = str(exception)
    local = aiida_setup.direct_computer('local', workdir / 'local_work')
    codes['lmp@local'] = aiida_setup.installed_code(local, 'lmp', 'lmp', 'mlpot.lammps.rerun').pk
    return {'profile': args.name, 'caching_enabled_for': cached, 'codes': codes}


def cmd_e2e(args) -> dict:
    """Labelling (LAMMPS teacher, CP2K xTB) and fitting as SLURM jobs submitted to the daemon."""
    from aiida import orm
    from aiida.engine import submit

    from aiida_mlpot.presets import nacl_tosi_fumi
    from aiida_mlpot.workflows.gap_fit import GapFitWorkChain
    from aiida_mlpot.workflows.labelling import LabellingWorkChain

    start = time.monotonic()
    teacher = LabellingWorkChain.get_builder_from_protocol(
        orm.load_code('lmp@slurm'),
        [orm.StructureData(ase=atoms) for atoms in nacl_cells(10, seed=args.seed + 100)],
        oracle='classical',
        potential=nacl_tosi_fumi(cutoff=5.5, kspace_accuracy=1.0e-5),
        options=LABEL_OPTIONS,
    )
    xtb = xtb_labelling(nacl_cells(2, seed=args.seed + 200), max_concurrent=2)
    teacher_node, xtb_node = submit(teacher), submit(xtb)
    wait([teacher_node], args.timeout)
    fit_node = None
    if teacher_node.is_finished_ok:
        fit = GapFitWorkChain.get_builder_from_protocol(
            orm.load_code('gap_fit@slurm'),
            teacher_node.outputs.labelled,
            protocol='fast',
            overrides={'gap_fit': {'parameters': {'descriptors': FIT_DESCRIPTORS}}},
            options=FIT_OPTIONS,
        )
        fit_node = submit(fit)
    wait([xtb_node] + ([fit_node] if fit_node else []), args.timeout)
    result = {
        'teacher': workchain_facts(teacher_node),
        'xtb': workchain_facts(xtb_node),
        'fit': workchain_facts(fit_node) if fit_node else None,
        'wall_s': time.monotonic() - start,
    }
    if teacher_node.is_finished_ok:
        result['teacher']['n_labelled'] = teacher_node.outputs.counts['n_labelled']
    if xtb_node.is_finished_ok:
        frames = xtb_node.outputs.labelled.to_ase()
        result['xtb']['n_labelled'] = len(frames)
        result['xtb']['max_force'] = float(max(np.abs(atoms.arrays['forces']).max() for atoms in frames))
    if fit_node is not None and fit_node.is_finished_ok:
        result['fit']['species'] = sorted(fit_node.outputs.potential.species)
    return result


def cmd_caching(args) -> dict:
    """Label two configurations with CP2K xTB (those of ``e2e``: cached already if it ran), then those two and a
    new one: the two are reused from the cache, only the new one runs."""
    from aiida import orm
    from aiida.engine import submit

    cells = nacl_cells(3, seed=args.seed + 200)  # the first two are the xTB configurations of `e2e`

    def label(atoms_list):
        node = submit(xtb_labelling(atoms_list, max_concurrent=3))
        wait([node], args.timeout)
        return node

    start = time.monotonic()
    first = label(cells[:2])
    first_s = time.monotonic() - start
    second = label(cells)
    second_s = time.monotonic() - start - first_s
    result = {'first': workchain_facts(first), 'second': workchain_facts(second)}
    result['first']['wall_s'], result['second']['wall_s'] = first_s, second_s
    for name, node in (('first', first), ('second', second)):
        if node.is_finished_ok:
            frames = node.outputs.labelled.to_ase()
            result[name]['energies'] = {atoms.info['label_key']: atoms.info['energy'] for atoms in frames}
    # The graph: a cached CalcJob is a new node whose `_aiida_cached_from` extra names its source, a finished
    # calculation with the same inputs (it may itself be a cached copy of the original).
    result['cache_sources'] = {}
    for fact in result['second']['calcjobs']:
        if fact['cached_from'] is not None:
            source = orm.load_node(fact['cached_from'])
            result['cache_sources'][fact['pk']] = {
                'process_label': source.process_label,
                'finished_ok': source.is_finished_ok,
                'same_structure_hash': source.inputs.structure.base.caching.get_hash()
                == orm.load_node(fact['pk']).inputs.structure.base.caching.get_hash(),
            }
    return result


def cmd_crash_submit(args) -> dict:
    """Submit a CP2K xTB labelling of 3 configurations; return once every CP2K job is in SLURM (has a job id)."""
    from aiida import orm
    from aiida.engine import submit

    node = submit(xtb_labelling(nacl_cells(3, seed=args.seed + 400), max_concurrent=3))
    start = time.monotonic()
    while time.monotonic() - start < args.timeout:
        calcs = [n for n in node.called_descendants if isinstance(n, orm.CalcJobNode)]
        if len(calcs) == 3 and all(calc.get_job_id() for calc in calcs):
            break
        if node.is_terminated:
            break
        time.sleep(0.5)
    calcs = [n for n in node.called_descendants if isinstance(n, orm.CalcJobNode)]
    return {
        'pk': node.pk,
        'terminated': node.is_terminated,
        'calcjobs': {
            calc.pk: {'job_id': calc.get_job_id(), 'state': str(calc.get_state())} for calc in calcs
        },
    }


def cmd_crash_finish(args) -> dict:
    """Wait for the labelling of ``crash-submit`` (``--pk``) and describe it."""
    from aiida import orm

    node = orm.load_node(args.pk)
    waited = wait([node], args.timeout)
    facts = workchain_facts(node)
    facts['waited_s'] = waited
    facts['n_labelled'] = node.outputs.counts['n_labelled'] if node.is_finished_ok else None
    facts['excluded'] = node.outputs.excluded.get_dict() if 'excluded' in node.outputs else None
    facts['labelling_children'] = sorted(child.process_label for child in node.called)
    below = [node, *node.called_descendants]
    facts['not_terminated'] = [[n.pk, n.process_label] for n in below if not n.is_terminated]
    facts['killed'] = [[n.pk, n.process_label, n.process_status] for n in below if n.is_killed]
    if facts['excluded']:  # a configuration was lost: say why, from every process below
        facts['reports'] = process_reports(node, last=30)
    return facts


#: Options of every calculation of the crash-test loop, as on a cluster (the crashed run adds its gate, below).
LOOP_OPTIONS = {
    'resources': {'num_machines': 1, 'num_mpiprocs_per_machine': 1},
    'max_wallclock_seconds': 900,
    'max_memory_kb': 1024 * 1024,
    'account': 'mlpot-loop',
}
#: The stages at which ``loop-crash`` kills the daemon, in order, and the CalcJob class that must be running.
STAGES = {'labelling': 'LammpsRerunCalculation', 'mlmd': 'MlMdCalculation'}


def gate(hold: pathlib.Path) -> str:
    """The first line of every job of the crashed run: once the job runs in SLURM, it waits there while the file
    ``hold`` exists and ``hold.<its job id>`` does not (``loop-crash`` creates both)."""
    return f'while [ -e {hold} ] && [ ! -e {hold}.$SLURM_JOB_ID ]; do sleep 0.2; done'


def hold_file() -> pathlib.Path:
    """The hold file of the crashed run's jobs, next to the SLURM computer's work directory."""
    from aiida import orm

    return pathlib.Path(orm.load_computer('slurm').get_workdir()).parent / 'loop-crash.hold'


def argon_loop_builder(lammps_label: str, prepend_text: str = ''):
    """The loop of tests/workflows/active_learning/test_loop_argon.py (its SMALL budgets, the fast protocol) with
    every calculation a SLURM job; ``lammps_label`` is the LAMMPS code (sampling and the classical oracle),
    ``prepend_text`` the first lines of every job script."""
    from aiida import orm

    from aiida_mlpot.presets import argon_lj
    from aiida_mlpot.structures import random_box
    from aiida_mlpot.workflows.active_learning import ActiveLearningWorkChain
    from tests.workflows.active_learning.loop_helpers import SMALL

    structure = orm.StructureData(ase=random_box({'Ar': 32}, density=1.40, min_distance=3.0, seed=1))
    codes = {
        'lammps': orm.load_code(lammps_label),
        'gap_fit': orm.load_code('gap_fit@slurm'),
        'python': orm.load_code('python@slurm'),
    }
    return ActiveLearningWorkChain.get_builder_from_protocol(
        structure, argon_lj(), temperatures=[90.0], oracle='classical', protocol='fast', overrides=SMALL,
        codes=codes, options={**LOOP_OPTIONS, 'prepend_text': prepend_text},
        random_baseline=False,  # as in test_loop_argon: the baseline's labelling and fit are not what is tested
    )  # fmt: skip


def tree(root) -> list[str]:
    """Every process below ``root`` as ``call/link/labels:ProcessLabel:state``, sorted (the shape of the run)."""
    from aiida.common.links import LinkType

    paths = []

    def walk(node, prefix):
        for link in node.base.links.get_outgoing(link_type=(LinkType.CALL_CALC, LinkType.CALL_WORK)).all():
            child = link.node
            path = f'{prefix}/{link.link_label}' if prefix else link.link_label
            state = (
                'ok' if child.is_finished_ok else (child.process_state.value if child.process_state else '?')
            )
            paths.append(f'{path}:{child.process_label}:{state}')
            walk(child, path)

    walk(root, '')
    return sorted(paths)


def loop_facts(node) -> dict:
    """What the crash test compares: the learning curve, the labellings and their oracle calculations (with the
    content hash of every configuration sent to the oracle), the process tree, the data nodes made, the sets."""
    from collections import Counter

    from aiida import orm
    from aiida.common.links import LinkType

    facts = workchain_facts(node)
    descendants = node.called_descendants
    facts['tree'] = tree(node)
    facts['not_terminated'] = [f'{n.pk}:{n.process_label}' for n in descendants if not n.is_terminated]
    made = Counter()
    for process in [node, *descendants]:
        for link in process.base.links.get_outgoing(link_type=LinkType.CREATE).all():
            made[link.node.__class__.__name__] += 1
    facts['created'] = dict(made)
    labellings = {}
    for link in node.base.links.get_outgoing(link_type=LinkType.CALL_WORK).all():
        if link.node.process_label != 'LabellingWorkChain':
            continue
        oracle = [n for n in link.node.called_descendants if n.process_label == STAGES['labelling']]
        labellings[link.link_label] = {
            'n_configurations': len(link.node.inputs.dataset),
            'n_labelled': link.node.outputs.counts['n_labelled'] if link.node.is_finished_ok else None,
            'oracle_calcs': [
                {
                    'pk': calc.pk,
                    'job_id': calc.get_job_id(),
                    'cached_from': calc.base.caching.get_cache_source(),
                    'structure_hashes': sorted(
                        structure.base.caching.get_hash() for structure in calc.inputs.structures.values()
                    ),
                }
                for calc in oracle
            ],
        }
    facts['labellings'] = labellings
    if node.is_finished_ok:
        facts['learning_curve'] = node.outputs.learning_curve.get_dict()['iterations']
        facts['n_train'] = len(node.outputs.training_set)
        facts['n_test'] = len(node.outputs.test_set)
        facts['stopping'] = node.outputs.stopping.get_dict()
    facts['ctime'] = node.ctime.isoformat()
    facts['n_processes'] = 1 + len(descendants)
    facts['oracle_code'] = {
        'label': node.inputs.labelling.classical.code.full_label,
        'hash': node.inputs.labelling.classical.code.base.caching.get_hash(),
    }
    facts['all_calcjobs'] = [n.pk for n in descendants if isinstance(n, orm.CalcJobNode)]
    # where the wall time goes: every process's start and end (s after the loop's creation), and the job ids
    facts['process_times'] = [
        [
            n.process_label,
            round((n.ctime - node.ctime).total_seconds(), 1),
            round((n.mtime - node.ctime).total_seconds(), 1),
            *([n.get_job_id()] if isinstance(n, orm.CalcJobNode) else []),
        ]
        for n in sorted(descendants, key=lambda n: n.ctime)
    ]
    facts['wall_in_graph_s'] = round((node.mtime - node.ctime).total_seconds(), 1)
    facts['process_pks'] = [node.pk, *(n.pk for n in descendants)]
    return facts


def cmd_loop_reference(args) -> dict:
    """Run the same loop with the code ``lmp-reference@slurm`` in this process (not the daemon): uninterrupted."""
    from aiida.engine import run_get_node

    start = time.monotonic()
    _, node = run_get_node(argon_loop_builder('lmp-reference@slurm'))
    facts = loop_facts(node)
    facts['wall_s'] = time.monotonic() - start
    return facts


def squeue_jobs() -> list[tuple[int, str, str]]:
    """``(job id, job name, state)`` of every job in the SLURM queue (``RUNNING``, ``PENDING``, ...)."""
    import subprocess

    result = subprocess.run(['squeue', '-h', '-o', '%i %j %T'], capture_output=True, text=True, timeout=60)
    return [(int(i), name, state) for i, name, state in (line.split() for line in result.stdout.splitlines())]


def squeue_state(job_id) -> str:
    """The SLURM state of ``job_id``, or '' once it has left the queue."""
    return next((state for i, _, state in squeue_jobs() if str(i) == str(job_id)), '')


def daemon_pids() -> list[int]:
    """The circus arbiter of this profile's daemon and all its children (the workers)."""
    import psutil
    from aiida.engine.daemon.client import get_daemon_client

    circus = get_daemon_client().get_daemon_pid()
    if circus is None:  # psutil.Process(None) would be this process
        raise RuntimeError('the daemon is not running')
    return sorted({circus, *(p.pid for p in psutil.Process(circus).children(recursive=True))})


def release(hold: pathlib.Path, job_id, released: set) -> None:
    """Let the job ``job_id`` past the gate."""
    pathlib.Path(f'{hold}.{job_id}').touch()
    released.add(int(job_id))


def held_job(node, stage: str, hold: pathlib.Path, released: set, timeout: float):
    """Return the first CalcJob of ``stage`` below the loop ``node`` that runs in SLURM (held at the gate) and that
    AiiDA has seen running (its ``scheduler_state``), or None if the loop ends first; every other job that reaches
    the gate is let through at once."""
    from aiida import orm
    from aiida.schedulers.datastructures import JobState

    start = time.monotonic()
    while time.monotonic() - start < timeout and not node.is_terminated:
        running = [(job_id, name) for job_id, name, state in squeue_jobs() if state == 'RUNNING']
        # after squeue: a job in the queue was submitted by a CalcJob node that already existed, with its links
        calcs = {n.pk: n for n in node.called_descendants if isinstance(n, orm.CalcJobNode)}
        for job_id, name in running:
            if job_id in released:
                continue
            calc = calcs.get(int(name[len('aiida-') :])) if name.startswith('aiida-') else None
            if calc is None or calc.process_label != STAGES[stage]:
                release(hold, job_id, released)  # another stage's job, or not of this loop
            elif calc.get_job_id() == str(job_id) and calc.get_scheduler_state() == JobState.RUNNING:
                return calc
        time.sleep(0.5)
    return None


def cmd_loop_crash(args) -> dict:
    """Submit the argon loop to the daemon (LAMMPS code ``lmp@slurm``, every job behind a gate); SIGKILL the daemon
    (circus and its workers) while the teacher-labelling job runs in SLURM, start the daemon again (``verdi daemon
    start``) and let the job finish; then the same while an ML-MD job runs.

    The gate (:func:`gate`) holds each job of the loop at its first line once SLURM runs it, until this command
    lets it through: the jobs of other stages at once, the job of the stage under test after the kill and the
    restart. So the kill lands while that job runs in SLURM and AiiDA has polled it as running, without a fixed
    sleep in any job. Done in one process: no delay between seeing the job run and the kill."""
    import subprocess

    from aiida.engine import submit

    hold = hold_file()
    hold.touch()
    node = submit(argon_loop_builder('lmp@slurm', gate(hold)))
    kills, started, released = {}, [], set()
    try:
        for stage in STAGES:
            start = time.monotonic()
            calc = held_job(node, stage, hold, released, args.timeout)
            if calc is None:
                facts = workchain_facts(node)
                facts.update({'kills': kills, 'daemon_pids': started, 'missed': stage})
                return facts
            found = {
                'calc': calc.pk,
                'job_id': calc.get_job_id(),
                'caller': calc.caller.process_label,
                'waited_s': round(time.monotonic() - start, 1),
                'scheduler_state_at_kill': calc.get_scheduler_state().value,
                'daemon_pids': daemon_pids(),
            }
            for pid in found['daemon_pids']:
                os.kill(pid, signal.SIGKILL)
            found['slurm_state_after_kill'] = squeue_state(calc.get_job_id())
            found['calc_state_after_kill'] = calc.process_state.value
            found['loop_state_after_kill'] = node.process_state.value
            restart = subprocess.run(
                [str(pathlib.Path(sys.executable).with_name('verdi')), '-p', args.name, 'daemon', 'start', '2'],
                capture_output=True, text=True, timeout=600,
            )  # fmt: skip
            found['restart'] = restart.returncode
            for _ in range(30):  # circus may take a while to answer on a loaded machine
                try:
                    started = daemon_pids()
                    break
                except Exception:
                    time.sleep(2)
            found['slurm_state_after_restart'] = squeue_state(calc.get_job_id())
            release(hold, calc.get_job_id(), released)
            kills[stage] = found
    finally:
        hold.unlink(missing_ok=True)  # every later job runs through
    return {'pk': node.pk, 'kills': kills, 'daemon_pids': started, 'released': len(released)}


def cmd_loop_finish(args) -> dict:
    """Wait for the loop ``--pk``; describe it, and every process of the profile that is not terminated."""
    from aiida import orm

    node = orm.load_node(args.pk)
    waited = wait([node], args.timeout)
    facts = loop_facts(node)
    facts['waited_s'] = waited
    query = orm.QueryBuilder().append(
        orm.ProcessNode,
        filters={'attributes.process_state': {'!in': ['finished', 'excepted', 'killed']}},
        project=['id', 'attributes.process_label'],
    )
    facts['profile_not_terminated'] = query.all()
    # every process made since the loop started belongs to it or to the reference run (nothing else runs then)
    since = orm.QueryBuilder().append(orm.ProcessNode, filters={'ctime': {'>=': node.ctime}}, project=['id'])
    facts['processes_since_submission'] = [pk for (pk,) in since.all()]
    return facts


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument('command', choices=list(COMMANDS))
    parser.add_argument('--pk', type=int, help='the process of crash-submit (crash-finish) or loop-crash')
    parser.add_argument('--name', required=True, help='profile name')
    parser.add_argument('--services', help='JSON with the services details (setup)')
    parser.add_argument('--workdir', help='folder for the repository and the computers (setup)')
    parser.add_argument('--timeout', type=float, default=900.0)
    parser.add_argument('--seed', type=int, default=0, help='offset of the rattle seeds (new configurations)')
    args = parser.parse_args()
    if args.command != 'setup':
        import aiida

        aiida.load_profile(args.name)
    result = COMMANDS[args.command](args)
    print('RESULT ' + json.dumps(result), flush=True)
    return 0


COMMANDS = {
    'setup': cmd_setup,
    'e2e': cmd_e2e,
    'caching': cmd_caching,
    'crash-submit': cmd_crash_submit,
    'crash-finish': cmd_crash_finish,
    'loop-reference': cmd_loop_reference,
    'loop-crash': cmd_loop_crash,
    'loop-finish': cmd_loop_finish,
}

if __name__ == '__main__':
    sys.exit(main())
