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
import pathlib
import sys
import time

import numpy as np
from ase.build import bulk

ROOT = pathlib.Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / 'scripts' / 'services'))

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
                'exit_status': node.exit_status,
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
    from aiida import orm

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
        facts['reports'] = [
            f'{log.dbnode_id} {log.levelname}: {log.message}'
            for process in [node, *node.called_descendants]
            for log in orm.Log.collection.get_logs_for(process)
        ][-20:]
    return facts


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
    xtb = LabellingWorkChain.get_builder_from_protocol(
        orm.load_code('cp2k@slurm'),
        [orm.StructureData(ase=atoms) for atoms in nacl_cells(2, seed=args.seed + 200)],
        protocol='xtb',
        overrides={'cp2k': {'settings': {'omp_num_threads': 1}, 'max_concurrent': 2}},
        options=LABEL_OPTIONS,
    )
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

    from aiida_mlpot.workflows.labelling import LabellingWorkChain

    cells = nacl_cells(3, seed=args.seed + 200)  # the first two are the xTB configurations of `e2e`
    code = orm.load_code('cp2k@slurm')
    overrides = {'cp2k': {'settings': {'omp_num_threads': 1}, 'max_concurrent': 3}}

    def label(atoms_list):
        # New StructureData nodes each time: the cache matches on content hashes, not on node identity.
        builder = LabellingWorkChain.get_builder_from_protocol(
            code, [orm.StructureData(ase=atoms) for atoms in atoms_list], protocol='xtb', overrides=overrides,
            options=LABEL_OPTIONS,
        )  # fmt: skip
        node = submit(builder)
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

    from aiida_mlpot.workflows.labelling import LabellingWorkChain

    builder = LabellingWorkChain.get_builder_from_protocol(
        orm.load_code('cp2k@slurm'),
        [orm.StructureData(ase=atoms) for atoms in nacl_cells(3, seed=args.seed + 400)],
        protocol='xtb',
        overrides={'cp2k': {'settings': {'omp_num_threads': 1}, 'max_concurrent': 3}},
        options=LABEL_OPTIONS,
    )
    node = submit(builder)
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
    facts['labelling_children'] = sorted(child.process_label for child in node.called)
    return facts


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument('command', choices=['setup', 'e2e', 'caching', 'crash-submit', 'crash-finish'])
    parser.add_argument('--pk', type=int, help='the process of crash-submit (crash-finish)')
    parser.add_argument('--name', required=True, help='profile name')
    parser.add_argument('--services', help='JSON with the services details (setup)')
    parser.add_argument('--workdir', help='folder for the repository and the computers (setup)')
    parser.add_argument('--timeout', type=float, default=900.0)
    parser.add_argument('--seed', type=int, default=0, help='offset of the rattle seeds (new configurations)')
    args = parser.parse_args()
    if args.command != 'setup':
        import aiida

        aiida.load_profile(args.name)
    commands = {
        'setup': cmd_setup,
        'e2e': cmd_e2e,
        'caching': cmd_caching,
        'crash-submit': cmd_crash_submit,
        'crash-finish': cmd_crash_finish,
    }
    result = commands[args.command](args)
    print('RESULT ' + json.dumps(result), flush=True)
    return 0


if __name__ == '__main__':
    sys.exit(main())
