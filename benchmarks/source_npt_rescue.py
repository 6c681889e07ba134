"""The thesis' NPT rescue, on the Tosi-Fumi NaCl teacher: a GAP fitted to a deliberately small set breaks NPT MD
at 1400 K; the active-learning loop started from that set stabilises it; with virials left out of the fit it fails.

Source: the thesis' active learner (a purely local GAP of molten NaCl that exploded in NPT after ~0.3 ns was rescued
by 33 configurations added by the loop). Here, every step is a real AiiDA process on a throw-away profile in
``--cache`` (real ``lmp``, ``gap_fit`` and the ML-MD driver; see ``source_common.py``):

1. ``SamplingWorkChain``: classical NPT MD of 64-atom NaCl (Tosi-Fumi + Ewald) at 1400 K, 1 bar;
2. ``select_configurations`` (random) → ``LabellingWorkChain`` (the teacher: energies, forces, virials) →
   ``split_dataset``: ``--n-train`` training and 6 test configurations;
3. ``GapFitWorkChain`` (``fast``: 2b + SOAP n4 l3, no Coulomb baseline) twice: with virials (sigma 0.05 eV/atom)
   and without (``default_sigma.virial`` = ``NO_VIRIAL_SIGMA``: gap_fit refuses a zero sigma, "too small
   virial_sigma", and the package always passes ``virial_parameter_name``, so a sigma 2·10⁴ times the energy
   scale of the others is how its parameters drop virials from the fit);
4. "before": ``MlMdWorkChain``, plain NPT ML MD (MTK, 1400 K, 1 bar, no extrapolation trigger, stability checks
   of the protocol: V/V0 within [1/1.5, 1.5], closest pair ≥ 1 Å, T ≤ 3 × 1400 K), ``--steps`` steps, policy
   ``give_up``, from the last frame of the classical NPT run, for each fit;
5. "loop": ``ActiveLearningWorkChain`` started from that training set (input ``training_set``) with the NPT
   state point (1400 K, 1 bar), ``delta_learning=False``, ``fast`` protocol, for each fit's parameters;
6. "after": the same plain NPT run as 4 with the loop's final potential.

Why no Coulomb baseline: the thesis' GAP was purely local, and so is this one; with the baseline the Tosi-Fumi Δ
is a pair term that a 2b descriptor learns from a handful of frames (docs/active_learning.md), so there would be
nothing to rescue.

Usage (about 1 h on the loaded 2-core machine; rerunning reuses what is in the cache)::

    nice -n 10 .venv/bin/python benchmarks/source_npt_rescue.py --stages before    # both variants, one profile
    nice -n 10 .venv/bin/python benchmarks/source_npt_rescue.py --stages loop after --variants virials \
        --target-steps 500 --max-iterations 4 --steps 1000    # side by side with the same for no_virials
    .venv/bin/python benchmarks/source_npt_rescue.py --stages plot    # the figure and numbers from the record

Writes ``docs/source/npt_rescue.png`` and ``docs/source/npt_rescue.json``.
"""

from __future__ import annotations

import argparse
import json
import pathlib
import sys

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent))

from source_common import (  # noqa: E402
    DENSITY_1400K,
    DOCS,
    NACL,
    Record,
    audit_errors,
    load_average,
    open_profile,
    run_checked,
)

TEMPERATURE_K = 1400.0
PRESSURE_BAR = 1.0
#: Virial sigma (eV/atom) that leaves virials out of the fit (the energy sigma is 0.002 eV/atom).
NO_VIRIAL_SIGMA = 40.0
VARIANTS = {
    'virials': {},
    'no_virials': {'gap_fit': {'parameters': {'default_sigma': {'virial': NO_VIRIAL_SIGMA}}}},
}
#: The plain NPT ML MD of "before" and "after".
PLAIN_NPT = {
    'unstable_policy': 'give_up',
    'md': {
        'parameters': {
            'md': {'dump_interval': 20, 'seed': 3},
            'extrapolation': {'method': 'none', 'relative_threshold': None},
        }
    },
}


def prepare(record: Record, codes: dict, n_train: int) -> None:
    """Sample, select, label and split the small initial set (cached in ``record``)."""
    from aiida import orm

    from aiida_mlpot.calculations.functions.selection import select_configurations, split_dataset
    from aiida_mlpot.presets import nacl_tosi_fumi
    from aiida_mlpot.structures import random_box
    from aiida_mlpot.workflows.labelling import LabellingWorkChain
    from aiida_mlpot.workflows.sampling import SamplingWorkChain

    if 'pool' not in record:
        potential = orm.Dict(nacl_tosi_fumi('ewald')).store()
        atoms = random_box(NACL, density=DENSITY_1400K, min_distance=2.3, seed=2024)
        builder = SamplingWorkChain.get_builder_from_protocol(
            codes['lammps'],
            orm.StructureData(ase=atoms),
            'fast',
            overrides={
                'md_parameters': {'equilibration_steps': 1000, 'production_steps': 2000, 'dump_interval': 100}
            },
            potential=potential,
            state_points=[{'temperature_K': TEMPERATURE_K, 'pressure_bar': PRESSURE_BAR}],
        )
        results, _, _ = run_checked(builder, 'classical NPT sampling')
        record.set('teacher', potential.uuid)
        record.set('pool', results['pool'].uuid)
    if 'train' not in record:
        pool = record.node('pool')
        spec = {'seed': 5, 'steps': [{'method': 'random', 'n': n_train + 6}]}
        selected = select_configurations(pool, orm.Dict(spec))['selected']
        builder = LabellingWorkChain.get_builder_from_protocol(
            codes['lammps'], selected, oracle='classical', potential=record.node('teacher')
        )
        results, _, _ = run_checked(builder, 'teacher labels')
        split = split_dataset(results['labelled'], orm.Dict({'method': 'random', 'n_test': 6, 'seed': 1}))
        record.set('train', split['train'].uuid)
        record.set('test', split['test'].uuid)
    print(
        f'initial set: {len(record.node("train"))} training, {len(record.node("test"))} test configurations'
    )


def fit(
    record: Record, codes: dict, variant: str, key: str, train: str = 'train', test: str = 'test'
) -> None:
    """Fit ``record[train]`` with the parameters of ``variant``; record the potential as ``key``."""
    from aiida_mlpot.workflows.gap_fit import GapFitWorkChain

    if key in record:
        return
    builder = GapFitWorkChain.get_builder_from_protocol(
        codes['gap_fit'],
        record.node(train),
        protocol='fast',
        overrides=VARIANTS[variant] or None,
        test_dataset=record.node(test),
        python_code=codes['python'],
    )
    results, _, _ = run_checked(builder, f'fit of {train} ({variant})')
    record.set(key, results['potential'].uuid)
    record.set(key.replace('gap', 'metrics', 1), results['metrics'].get_dict()['overall'])


def plain_npt(record: Record, codes: dict, key: str, potential_key: str, n_steps: int) -> None:
    """Plain NPT ML MD (no trigger) with the potential ``record[potential_key]``; record its summary under ``key``."""
    from aiida_mlpot.workflows.ml_md import MlMdWorkChain
    from aiida_mlpot.workflows.protocols.utils import recursive_merge

    if key in record:
        return
    overrides = recursive_merge(PLAIN_NPT, {'md': {'parameters': {'md': {'n_steps': n_steps}}}})
    builder = MlMdWorkChain.get_builder_from_protocol(
        codes['python'],
        record.node('pool'),  # continues the classical NPT run from its last frame
        'fast',
        overrides=overrides,
        potential=record.node(potential_key),
        temperature_K=TEMPERATURE_K,
        pressure_bar=PRESSURE_BAR,
    )
    results, node, wall = run_checked(builder, f'plain NPT ML MD ({key})', allowed=(0, 410))
    summary = results['summary'].get_dict()
    record.set(
        key,
        {
            'node': node.uuid,
            'exit_status': node.exit_status,
            'outcome': summary['outcome'],
            'reason': summary.get('reason'),
            'steps_requested': n_steps,
            'steps_survived': summary['steps_done'],
            'final_step': summary['final_step'],
            'volume_trace': summary.get('volume_trace'),
            'wall_s': wall,
            'load': load_average(),
        },
    )
    print(f'  {key}: {summary["outcome"]} after {summary["steps_done"]} steps: {summary.get("reason")}')


def active_learning(
    record: Record, codes: dict, variant: str, target_steps: int, max_iterations: int, tag: str = ''
) -> None:
    """The loop from the small training set, at the NPT state point, with the fit parameters of ``variant``.

    ``tag`` (e.g. ``_4fdf77e``) suffixes every key the loop records, so a rerun with other code stays beside the
    first one.
    """
    from aiida_mlpot.workflows.active_learning import ActiveLearningWorkChain

    key = f'loop_{variant}{tag}'
    if key in record:
        return
    overrides = {
        'delta_learning': False,
        'loop': {
            'target_steps': target_steps,
            'max_iterations': max_iterations,
            'max_oracle_calls': 120,
            'max_per_iteration': 6,
            'audit_force_rmse': 0.15,
            'audit_energy_rmse': 10.0,
        },
        'exploration': {'md': {'parameters': {'md': {'seed': 3}}}},
    }
    if VARIANTS[variant]:
        overrides['fitting'] = VARIANTS[variant]
    pool = record.node('pool')
    builder = ActiveLearningWorkChain.get_builder_from_protocol(
        _last_structure(pool),  # the classical NPT melt's last frame
        record.node('teacher'),
        temperatures=[TEMPERATURE_K],
        pressures=[PRESSURE_BAR],
        oracle='classical',
        protocol='fast',
        overrides=overrides,
        codes=codes,
        training_set=record.node('train'),
        test_set=record.node('test'),
    )
    builder.metadata.label = f'source NPT rescue: loop ({variant})'
    results, node, wall = run_checked(builder, f'active learning ({variant})', allowed=(0, 410, 411))
    rows = results['learning_curve'].get_dict()['iterations']
    added = len(results['training_set']) - len(record.node('train'))
    record.set(f'gap_loop_{variant}{tag}', results['potential'].uuid)
    record.set(f'train_loop_{variant}{tag}', results['training_set'].uuid)
    record.set(f'test_loop_{variant}{tag}', results['test_set'].uuid)
    record.set(
        key,
        {
            'node': node.uuid,
            'exit_status': node.exit_status,
            'stopping': results['stopping'].get_dict(),
            'iterations': rows,
            'configurations_added': added,
            'oracle_calls': rows[-1]['oracle_calls'] if rows else None,
            'final_audit': audit_errors({'iterations': rows}),
            'final_metrics': results['metrics'].get_dict()['overall'],
            'wall_s': wall,
            'load': load_average(),
        },
    )
    print(
        f'  {key}: exit {node.exit_status}, {added} configurations added, audit {record[key]["final_audit"]}'
    )


def _last_structure(dataset):
    from aiida import orm

    return orm.StructureData(ase=dataset[-1])


def plot(record: Record, path: pathlib.Path) -> None:
    """Volume traces of the plain NPT runs, before (initial GAP) and after (the loop's GAP), side by side."""
    import matplotlib

    matplotlib.use('Agg')
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(11, 4.2), sharex=True, sharey=True)  # same 2000 steps asked
    panels = {
        'before': [
            ('before_virials', '-', 'initial GAP, with virials'),
            ('before_no_virials', '--', 'initial GAP, without virials'),
        ],
        'after': [
            ('after_loop_virials', '-', "loop's GAP (fit with virials)"),
            ('after_refit_no_virials', '--', "loop's training set refitted without virials"),
            ('after_loop_no_virials', ':', 'loop run without virials in its fits'),
        ],
    }
    # reruns of the loop with later code (--tag), e.g. after_loop_virials_4fdf77e
    for key in sorted(record.data):
        if key.startswith('after_loop_virials_'):
            tag = key[len('after_loop_virials_') :]
            added = (record.data.get(f'loop_virials_{tag}') or {}).get('configurations_added', '?')
            panels['after'].append((key, '-.', f"loop's GAP at {tag} (+{added}, learns failed audits)"))
            if f'after_refit_no_virials_{tag}' in record:
                what = f"{tag} loop's training set refitted without virials"
                panels['after'].append((f'after_refit_no_virials_{tag}', ':', what))
    for ax, stage in zip(axes, panels):
        for key, style, what in panels[stage]:
            entry = record.data.get(key)
            if not entry or not entry.get('volume_trace'):
                continue
            steps, volumes = zip(*entry['volume_trace'])
            times = [2e-3 * (step - steps[0]) for step in steps]  # ps since the start of the ML run
            label = f'{what}: {entry["outcome"]} after {entry["steps_survived"]} of {entry["steps_requested"]} steps'
            (line,) = ax.plot(times, [v / volumes[0] for v in volumes], style, label=label)
            if entry['outcome'] == 'unstable':
                ax.plot(times[-1], volumes[-1] / volumes[0], 'x', color=line.get_color(), ms=9)
        loop = record.data.get('loop_virials') or {}
        title = (
            'initial set (6 configurations)'
            if stage == 'before'
            else f'after active learning (+{loop.get("configurations_added", "?")} configurations, code a7c85f8)'
        )
        ax.set_title(title)
        ax.set_xlabel('time since the start of the ML MD (ps); x: stopped unstable')
        ax.legend(fontsize=7, loc='upper left')
    axes[0].set_ylabel('V / V(0)')
    fig.suptitle('Plain NPT ML MD of 64-atom NaCl, 1400 K, 1 bar (local GAP, Tosi-Fumi teacher)')
    fig.tight_layout()
    fig.savefig(path, dpi=120)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--cache', type=pathlib.Path, default=pathlib.Path('/tmp/source'))
    parser.add_argument('--stages', nargs='+', default=['before', 'loop', 'after'])
    parser.add_argument('--variants', nargs='+', default=list(VARIANTS))
    parser.add_argument('--n-train', type=int, default=6)
    parser.add_argument('--steps', type=int, default=2000, help='steps of the plain NPT runs (2 fs each)')
    parser.add_argument('--target-steps', type=int, default=1000, help='loop: steps of every exploration')
    parser.add_argument('--max-iterations', type=int, default=6, help='loop: iterations at most')
    parser.add_argument(
        '--potential',
        nargs=3,
        metavar=('PROFILE', 'UUID', 'KEY'),
        help='only a plain NPT run, recorded as KEY, of the potential UUID of the profile source-PROFILE (e.g. '
        'an intermediate potential of a loop that is still running there)',
    )
    parser.add_argument(
        '--tag',
        default='',
        help='suffix of the loop/after keys and of the profile (e.g. _4fdf77e: a rerun with other code of main)',
    )
    args = parser.parse_args(argv)
    tag = args.tag

    record = Record(args.cache / 'npt_rescue.json')
    if args.potential:
        profile, uuid, key = args.potential
        codes = open_profile(args.cache, f'npt_{key}', folder='npt', copy=(profile, [uuid, record['pool']]))
        record.set(f'gap_{key}', uuid)
        plain_npt(record, codes, key, f'gap_{key}', args.steps)
        args.variants = []
    elif args.stages == ['plot']:  # only the figure and the numbers, from the record
        args.variants = []
    elif 'before' in args.stages:
        codes = open_profile(args.cache, 'npt')
        prepare(record, codes, args.n_train)
    else:  # the loop and after stages of one variant run side by side with the other's: a profile each
        if len(args.variants) != 1:
            parser.error('--stages without `before` run one variant (one profile) per process')
        # the nodes the `before` stage made in the profile `npt`
        keys = ['train', 'test', 'teacher', 'pool'] + [f'gap_{v}' for v in VARIANTS if f'gap_{v}' in record]
        codes = open_profile(
            args.cache, f'npt_{args.variants[0]}{tag}', folder='npt', copy=('npt', [record[k] for k in keys])
        )
    for variant in args.variants:
        if 'before' in args.stages:
            fit(record, codes, variant, f'gap_{variant}')
            plain_npt(record, codes, f'before_{variant}', f'gap_{variant}', args.steps)
        if 'loop' in args.stages:
            active_learning(record, codes, variant, args.target_steps, args.max_iterations, tag)
        if 'after' in args.stages and f'gap_loop_{variant}{tag}' in record:
            plain_npt(record, codes, f'after_loop_{variant}{tag}', f'gap_loop_{variant}{tag}', args.steps)
        if 'after' in args.stages and variant == 'virials' and f'train_loop_virials{tag}' in record:
            # the virial test on the same data: the loop's final training set refitted without its virials
            refit = f'gap_refit_no_virials{tag}'
            fit(record, codes, 'no_virials', refit, f'train_loop_virials{tag}', f'test_loop_virials{tag}')
            plain_npt(record, codes, f'after_refit_no_virials{tag}', refit, args.steps)
    DOCS.mkdir(parents=True, exist_ok=True)
    plot(record, DOCS / 'npt_rescue.png')
    (DOCS / 'npt_rescue.json').write_text(json.dumps(record.data, indent=1, sort_keys=True))
    return 0


if __name__ == '__main__':
    sys.exit(main(sys.argv[1:]))
