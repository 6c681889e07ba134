"""Label reuse: oracle calls saved when a second active-learning loop is started from the first one's training set.

The loop is that of tests/workflows/active_learning/test_loop_argon.py (liquid argon, 32 atoms at 90 K, the
Lennard-Jones preset as sampler and classical oracle, the ``fast`` protocol with the test's small budgets), run in
this process on a throw-away ``core.sqlite_dos`` profile whose configuration enables caching for the oracle
calculations only (``caching.enabled_for`` = the LAMMPS teacher rerun and CP2K, ``scripts/services/aiida_setup.
enable_oracle_caching``; the same call as ``verdi -p PROFILE config set caching.enabled_for ...``). Runs:

1. **first**: the loop from scratch; every configuration it labels is a real oracle run.
2. **from training_set**: a second loop started from the first run's final ``training_set`` and ``test_set``
   outputs (ActiveLearningWorkChain's ``training_set`` input) with the same exploration settings. Its ``structure``
   (where every replica starts) is the first run's exploration start (the ``exploration_starts`` output: the
   last frame its sampling MD left at that state point), so that the second loop explores the same liquid as the
   first rather than the unequilibrated random box (from which the first ML MD triggers at step 0). There is no
   sampling, no initial selection and no initial labelling: those labels are inputs, not oracle calls.
3. with ``--same-inputs`` (before 2): the identical first loop again (a new ``StructureData`` of the same content):
   the saving of a repeated run, served from the cache where the seeded sampling and ML MD revisit the same frames.

For every run the script counts the configurations sent to the oracle (the loop's own ``oracle_calls``), the
oracle CalcJobs and how many of them were served from the cache (``node.base.caching.get_cache_source()`` not
None, ``is_created_from_cache``, and the source a node of an earlier run), the configurations a real oracle job
computed, and the wall time. The saving of the second loop is the first loop's oracle calls minus the
configurations the second loop's oracle jobs computed: the initial labels it did not need (they came with
``training_set``) plus the labellings the cache served. With the classical oracle one ``LammpsRerunCalculation``
labels a whole set, so the cache reuses whole sets; with CP2K every configuration is its own calculation and
reused one by one (tests/scaleout shows that case).

    .venv/bin/python benchmarks/bench_caching.py [--same-inputs] [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import os
import pathlib
import sys
import tempfile
import time

ROOT = pathlib.Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / 'scripts' / 'services'))
sys.path.insert(1, str(ROOT))  # tests.workflows.active_learning.loop_helpers: the argon loop's budgets

ORACLE = 'LammpsRerunCalculation'


def make_profile(workdir: pathlib.Path) -> str:
    """A ``core.sqlite_dos`` profile without a broker (processes run in this interpreter), caching on for the
    oracle calculations only; return its name (loaded)."""
    import aiida
    import aiida_setup  # scripts/services/aiida_setup.py
    from aiida.manage.configuration import create_profile, get_config

    name = 'bench-caching'
    config = get_config(create=True)
    profile = create_profile(
        config,
        storage_backend='core.sqlite_dos',
        storage_config={'filepath': str(workdir / 'storage')},
        name=name,
        email='bench@localhost',
    )
    profile.set_option('warnings.development_version', False)
    config.update_profile(profile)
    config.store()
    enabled = aiida_setup.enable_oracle_caching(name)
    aiida.load_profile(name)
    print(f'profile {name} (core.sqlite_dos); caching.default_enabled False, caching.enabled_for {enabled}')
    return name


def oracle_facts(node, earlier: set[str]) -> dict:
    """The oracle work of the loop ``node``; ``earlier``: UUIDs of the processes of the runs before it."""
    from aiida import orm

    calcs = [
        n for n in node.called_descendants if isinstance(n, orm.CalcJobNode) and n.process_label == ORACLE
    ]
    rows = []
    for calc in sorted(calcs, key=lambda n: n.pk):
        source = calc.base.caching.get_cache_source()
        labelling = calc.caller
        rows.append(
            {
                'pk': calc.pk,
                'labelling': labelling.base.links.get_incoming(node_class=orm.WorkflowNode)
                .first()
                .link_label,
                'n_configurations': len(calc.inputs.structures),
                'cached_from': source,
                'is_created_from_cache': calc.base.caching.is_created_from_cache,
                'source_from_earlier_run': source in earlier if source else None,
                'extra_aiida_cached_from': calc.base.extras.get('_aiida_cached_from', None),
            }
        )
    curve = node.outputs.learning_curve.get_dict()['iterations'] if 'learning_curve' in node.outputs else []
    return {
        'pk': node.pk,
        'finished_ok': node.is_finished_ok,
        'exit_status': node.exit_status,
        'iterations': len(curve),
        'oracle_calls': curve[-1]['oracle_calls'] if curve else None,  # configurations sent to the oracle
        'n_train_final': len(node.outputs.training_set) if 'training_set' in node.outputs else None,
        'oracle_calcs': rows,
        'n_oracle_calcs': len(rows),
        'n_cached_calcs': sum(1 for row in rows if row['cached_from']),
        'configs_from_cache': sum(row['n_configurations'] for row in rows if row['cached_from']),
        'configs_computed': sum(row['n_configurations'] for row in rows if not row['cached_from']),
    }


def exploration_start(loop):
    """The structure the first exploration of ``loop`` started from (the output of its ``exploration_starts``)."""
    from aiida.common.links import LinkType

    calls = loop.base.links.get_outgoing(
        link_type=LinkType.CALL_CALC, link_label_filter='exploration_starts'
    ).all()
    if len(calls) != 1:
        raise RuntimeError(
            f'{loop.process_label}<{loop.pk}> has {len(calls)} `exploration_starts` calls, not 1'
        )
    outputs = calls[0].node.base.links.get_outgoing(link_type=LinkType.CREATE).all()
    if len(outputs) != 1:
        raise RuntimeError(f'exploration_starts<{calls[0].node.pk}> made {len(outputs)} structures, not 1')
    return outputs[0].node


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('--json', type=pathlib.Path, help='also write the figures here')
    parser.add_argument(
        '--same-inputs', action='store_true', help='also run the identical first loop again (a repeated run)'
    )
    args = parser.parse_args()

    workdir = pathlib.Path(tempfile.mkdtemp(prefix='mlpot-bench-caching-'))
    os.environ['AIIDA_PATH'] = str(workdir / 'aiida-config')  # before aiida reads its configuration
    os.environ['PATH'] = f'{pathlib.Path(sys.executable).parent}{os.pathsep}{os.environ["PATH"]}'
    make_profile(workdir)

    import aiida_setup
    from aiida import orm
    from aiida.engine import run_get_node

    from aiida_mlpot.presets import argon_lj
    from aiida_mlpot.structures import random_box
    from aiida_mlpot.workflows.active_learning import ActiveLearningWorkChain
    from tests.workflows.active_learning.loop_helpers import SMALL

    computer = aiida_setup.direct_computer('local', workdir / 'work')
    codes = {
        'lammps': aiida_setup.installed_code(computer, 'lmp', 'lmp', 'mlpot.lammps.md'),
        'gap_fit': aiida_setup.installed_code(computer, 'gap_fit', 'gap_fit', 'mlpot.gap_fit'),
        'python': aiida_setup.installed_code(computer, 'python', 'python', 'mlpot.ml_md'),
    }
    atoms = random_box({'Ar': 32}, density=1.40, min_distance=3.0, seed=1)

    def loop(structure=None, **kwargs):
        overrides = dict(SMALL)
        if 'training_set' in kwargs:  # sampling and selection are not used: leave them out
            overrides = {key: value for key, value in SMALL.items() if key not in ('sampling', 'selection')}
            if 'test_set' in kwargs:
                overrides.pop('split', None)
        builder = ActiveLearningWorkChain.get_builder_from_protocol(
            structure or orm.StructureData(ase=atoms),
            argon_lj(),
            temperatures=[90.0],
            oracle='classical',
            protocol='fast',
            overrides=overrides,
            codes=codes,
            random_baseline=False,  # its labelling is not the loop's and would count as oracle work
            **kwargs,
        )
        start = time.monotonic()
        _, node = run_get_node(builder)
        return node, time.monotonic() - start

    has_training_set = 'training_set' in ActiveLearningWorkChain.spec().inputs
    runs, earlier, results = {}, set(), {}
    plan = ['first'] + (['same_inputs'] if args.same_inputs else [])
    plan += ['from_training_set'] if has_training_set else []
    for name in plan:
        kwargs = {}
        if name == 'from_training_set':
            first = runs['first']
            kwargs = {
                'training_set': first.outputs.training_set,
                'test_set': first.outputs.test_set,
                'structure': exploration_start(first),
            }
        node, wall = loop(**kwargs)
        runs[name] = node
        results[name] = oracle_facts(node, earlier)
        results[name]['wall_s'] = wall
        if name == 'from_training_set':
            results[name]['structure_from'] = (
                f'exploration_starts of the first run, StructureData<{kwargs["structure"].pk}>'
            )
            results[name]['n_train_start'] = len(kwargs['training_set'])
            results[name]['n_test_start'] = len(kwargs['test_set'])
        earlier |= {node.uuid, *(n.uuid for n in node.called_descendants)}
        print(f'{name}: {json.dumps(results[name])}', flush=True)

    report(results, has_training_set)
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))
    return 0 if all(result['finished_ok'] for result in results.values()) else 1


def report(results: dict, has_training_set: bool) -> None:
    """Print the table and what each figure means."""
    first = results['first']
    print(
        '\nrun                 | configs to oracle | oracle calcs (cached) | configs computed | from cache | wall s'
    )
    for name, row in results.items():
        print(
            f'{name:<19} | {row["oracle_calls"]!s:>17} | {row["n_oracle_calcs"]:>12} ({row["n_cached_calcs"]:>2})     '
            f'   | {row["configs_computed"]:>16} | {row["configs_from_cache"]:>10} | {row["wall_s"]:6.0f}'
        )
    if 'same_inputs' in results:
        same = results['same_inputs']
        saved = same['configs_from_cache']
        print(
            f'\nsame inputs, caching on: {saved} of {same["oracle_calls"]} oracle calls served from the cache '
            f'({100 * saved / max(same["oracle_calls"], 1):.0f} % saved); each cached calculation names its source '
            f'(get_cache_source), all in the first run: '
            f'{all(r["source_from_earlier_run"] for r in same["oracle_calcs"] if r["cached_from"])}.'
        )
    if has_training_set:
        start = results['from_training_set']
        saved = first['configs_computed'] - start['configs_computed']
        print(
            f"\nfrom training_set: the second loop started from the first one's {start['n_train_start']} training and "
            f'{start["n_test_start"]} test configurations (inputs, never sent to the oracle) and explored from the '
            f"first run's exploration start. Oracle: first loop {first['oracle_calls']} configurations in "
            f'{first["n_oracle_calcs"]} calculations, all computed; second loop {start["oracle_calls"]} configurations '
            f'in {start["n_oracle_calcs"]} calculations, {start["n_cached_calcs"]} calculations '
            f'({start["configs_from_cache"]} configurations) from the cache, every source in the first run: '
            f'{all(r["source_from_earlier_run"] for r in start["oracle_calcs"] if r["cached_from"])}; '
            f'{start["configs_computed"]} computed. Saved: {saved} of {first["configs_computed"]} oracle runs '
            f'({100 * saved / max(first["configs_computed"], 1):.0f} %): '
            f'{first["configs_computed"] - start["oracle_calls"]} by starting at the fit, '
            f'{start["configs_from_cache"]} by the cache. Iterations: first {first["iterations"]}, '
            f'second {start["iterations"]}; final training set {first["n_train_final"]} -> {start["n_train_final"]}.'
        )
    else:
        print('from training_set: not measured (ActiveLearningWorkChain has no `training_set` input here).')


if __name__ == '__main__':
    sys.exit(main())
