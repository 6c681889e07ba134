""" "With time the potential needs fewer and fewer reference calls": cumulative oracle calls against cumulative MD
steps of the active-learning loop, for three extrapolation thresholds.

Source: the MTP active-learning poster (on-the-fly learning: the rate of reference calls falls as the MD goes on).
Here: ``ActiveLearningWorkChain`` on 64-atom molten NaCl, NVT at 1400 K (density 1.30 g/cm³, the model's at 1 bar),
the Tosi-Fumi teacher as the oracle, ``fast`` protocol, WITHOUT the Coulomb baseline (``delta_learning=False``:
with it the Tosi-Fumi Δ is a pair term learnt at once and the loop converges in one iteration, see
docs/active_learning.md), a smaller initial set than ``fast`` (12 configurations, FPS of 24 uniform in |f|) and
``--target-steps`` steps per exploration, so that the loop iterates. One loop run per
``exploration.md.parameters.extrapolation.relative_threshold``: strict 2 (the ``stringent`` ML-MD protocol's),
default 3, loose 6. Every run is a real AiiDA process on a throw-away profile in ``--cache`` (``source_common.py``).

Per iteration the loop's ``learning_curve`` gives the cumulative oracle calls (initial set included) and every
replica's steps; the cumulative MD steps are their running sum. Usage::

    nice -n 10 .venv/bin/python benchmarks/source_oracle_calls.py [--cache /tmp/source] [--thresholds strict default loose]
    nice -n 10 .venv/bin/python benchmarks/source_oracle_calls.py --plot   # remake the figure and table from the cache

Writes ``docs/source/oracle_calls.png``, ``docs/source/oracle_calls.md`` and ``docs/source/oracle_calls.json``.
"""

from __future__ import annotations

import argparse
import json
import pathlib
import sys
import time

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent))

from source_common import DENSITY_1400K, DOCS, NACL, audit_errors, load_average, open_profile  # noqa: E402

THRESHOLDS = {'strict': 2.0, 'default': 3.0, 'loose': 6.0}
TEMPERATURE_K = 1400.0
#: NPT at 1 bar: at fixed density (NVT) the local GAP of 12 frames never triggered (see docs/source_methods.md).
PRESSURE_BAR = 1.0


def loop_overrides(
    relative_threshold: float | None, target_steps: int, max_iterations: int, trigger: str | None = None
) -> dict:
    """The loop's overrides of the ``fast`` protocol used by this study (and by ``source_rematch_loop.py``).

    ``relative_threshold`` None keeps the exploration's extrapolation as the trigger sets it.
    """
    loop = {
        'target_steps': target_steps,
        'max_iterations': max_iterations,
        'max_oracle_calls': 150,
        'max_per_iteration': 6,
        # a local GAP of a few dozen frames: the audit bar of a useful, not a converged, potential
        'audit_force_rmse': 0.15,
        'audit_energy_rmse': 10.0,
    }
    if trigger is not None:
        loop['trigger'] = trigger
    overrides = {
        'delta_learning': False,
        'selection': {'seed': 1, 'steps': [{'method': 'uniform_force', 'n': 24}, {'method': 'fps', 'n': 12}]},
        'loop': loop,
    }
    if relative_threshold is not None:
        extrapolation = {'relative_threshold': relative_threshold}
        overrides['exploration'] = {'md': {'parameters': {'extrapolation': extrapolation}}}
    return overrides


def run_loop(codes: dict, overrides: dict, label: str, pressure_bar: float | None = PRESSURE_BAR):
    """Run the loop on the 64-atom 1400 K case (NPT at ``pressure_bar``, None: NVT); return (node, wall seconds)."""
    from aiida import orm
    from aiida.engine import run_get_node

    from aiida_mlpot.presets import nacl_tosi_fumi
    from aiida_mlpot.structures import random_box
    from aiida_mlpot.workflows.active_learning import ActiveLearningWorkChain

    structure = orm.StructureData(ase=random_box(NACL, density=DENSITY_1400K, min_distance=2.3, seed=2024))
    builder = ActiveLearningWorkChain.get_builder_from_protocol(
        structure,
        nacl_tosi_fumi('ewald'),
        temperatures=[TEMPERATURE_K],
        pressures=None if pressure_bar is None else [pressure_bar],
        oracle='classical',
        protocol='fast',
        overrides=overrides,
        codes=codes,
        random_baseline=False,  # the figure is the loop's own calls; the baseline is a study of its own
    )
    builder.metadata.label = label
    start = time.perf_counter()
    _, node = run_get_node(builder)
    return node, time.perf_counter() - start


def curve(node) -> dict:
    """Cumulative MD steps and oracle calls per iteration, the final audit and test errors, from a finished loop."""
    rows = node.outputs.learning_curve.get_dict()['iterations']
    steps, calls, candidates, cumulative = [0], [], [0], 0
    initial = None
    for row in rows:
        if initial is None:
            # the oracle calls before the first exploration: the initial set (its labels)
            initial = (
                row['oracle_calls'] - row['n_candidates'] - row['n_audited'] if row['oracle_calls'] else None
            )
        cumulative += sum(entry['steps'] or 0 for entry in row['replicas'].values())
        steps.append(cumulative)
        calls.append(row['oracle_calls'])
        candidates.append(candidates[-1] + row['n_candidates'])
    metrics = node.outputs.metrics.get_dict()['overall'] if 'metrics' in node.outputs else {}
    return {
        'node': node.uuid,
        'exit_status': node.exit_status,
        'stopping': node.outputs.stopping.get_dict() if 'stopping' in node.outputs else None,
        'iterations': rows,
        'cumulative_steps': steps,
        'cumulative_calls': [initial, *calls],
        'cumulative_candidates': candidates,
        'final_audit': audit_errors({'iterations': rows}),
        'final_test_force_rmse': metrics.get('forces', {}).get('rmse'),
        'final_test_energy_rmse': metrics.get('energy_per_atom', {}).get('rmse'),
        'n_train_final': len(node.outputs.training_set) if 'training_set' in node.outputs else None,
    }


def curve_from_reports(lines: list[str]) -> dict:
    """Cumulative steps and oracle calls of a loop that has not finished, from its own report lines.

    ``lines`` are the loop's ``[REPORT]`` lines (as printed by ``run_get_node``): per iteration the replica's
    outcome and steps (``plan``), the frames sent to the oracle (``labelling N configurations``) and the audit
    errors (``assess``). Only iterations whose labelling was reported are counted.
    """
    import re

    steps, calls, candidates, audits = [0], [], [0], []
    pending_steps = None
    for line in lines:
        if m := re.search(r'\|plan\]: iteration \d+: \d+ audit frames, (\d+) candidates', line):
            candidates.append(candidates[-1] + int(m.group(1)))
        elif m := re.search(r'\|plan\]: T\S+: \w+ after (\d+) steps', line):
            pending_steps = int(m.group(1))
        elif m := re.search(r'\|run_labelling\]: labelling (\d+) configurations', line):
            calls.append((calls[-1] if calls else 0) + int(m.group(1)))
            if pending_steps is not None:
                steps.append(steps[-1] + pending_steps)
                pending_steps = None
        elif m := re.search(
            r'\|assess\]: iteration (\d+): audit force RMSE ([\d.]+) eV/Å, energy RMSE ([\d.]+)', line
        ):
            audits.append(
                {
                    'iteration': int(m.group(1)),
                    'force_rmse': float(m.group(2)),
                    'energy_rmse': float(m.group(3)),
                }
            )
    return {
        'cumulative_steps': steps[: len(calls)],
        'cumulative_calls': calls,
        'cumulative_candidates': candidates[: len(calls)],
        'final_audit': audits[-1] if audits else None,
        'audits': audits,
        'iterations': [None] * (len(calls) - 1),
        'exit_status': None,
        'stopping': {'criterion': 'not finished: partial, from its report lines'},
    }


def plot(results: dict, path: pathlib.Path, ensemble: str) -> None:
    import matplotlib

    matplotlib.use('Agg')
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(10, 4), sharex=True)
    styles = {
        'strict': ('-', 'o', 9),
        'default': ('--', 's', 6),
        'loose': (':', '^', 4),
    }  # overlaps stay visible
    series = (
        ('cumulative_calls', 'oracle calls: initial set + candidates + audits'),
        ('cumulative_candidates', 'candidates only: triggered frames labelled'),
    )
    for ax, (key, ylabel) in zip(axes, series):
        for name, entry in results.items():
            if not entry.get(key):
                continue
            line, marker, size = styles[name]
            ax.step(
                entry['cumulative_steps'],
                entry[key],
                where='post',  # the calls of an iteration follow its steps
                ls=line,
                marker=marker,
                ms=size,
                label=f'{name} (relative threshold {entry["relative_threshold"]:g})',
            )
        ax.set_xlabel('cumulative ML-MD steps (2 fs)')
        ax.set_ylabel('cumulative count')
        ax.set_title(ylabel, fontsize=9)
        ax.legend(fontsize=8)
    state = 'NPT 1 bar' if ensemble == 'npt' else 'NVT 1.30 g/cm³'
    fig.suptitle(f'NaCl 64 atoms, 1400 K {state}, local GAP, Tosi-Fumi teacher', fontsize=10)
    fig.tight_layout(rect=(0, 0, 1, 0.95))
    fig.savefig(path, dpi=120)


def table(results: dict) -> str:
    lines = [
        '| threshold | relative threshold | iterations | cumulative steps | cumulative oracle calls | cumulative candidates | audit force RMSE per iteration (eV/Å) | final audit force RMSE (eV/Å) | final audit energy RMSE (meV/atom) | stopped by |',
        '|---|---|---|---|---|---|---|---|---|---|',
    ]
    for name, entry in results.items():
        audit = entry['final_audit'] or {}
        stopping = (entry['stopping'] or {}).get('criterion')

        def fmt(value, spec):
            return 'n/a' if value is None else format(value, spec)

        exit_note = '' if entry['exit_status'] is None else f' (exit {entry["exit_status"]})'
        audits = [
            fmt(row.get('audit_force_rmse'), '.3f') for row in entry['iterations'] if isinstance(row, dict)
        ] or [fmt(row['force_rmse'], '.3f') for row in entry.get('audits', [])]
        lines.append(
            f'| {name} | {entry["relative_threshold"]:g} | {len(entry["iterations"])} | '
            f'{", ".join(str(s) for s in entry["cumulative_steps"])} | '
            f'{", ".join(str(c) for c in entry["cumulative_calls"])} | '
            f'{", ".join(str(c) for c in entry.get("cumulative_candidates", [])) or "n/a"} | '
            f'{", ".join(audits)} | {fmt(audit.get("force_rmse"), ".3f")} | '
            f'{fmt(audit.get("energy_rmse"), ".2f")} | {stopping}{exit_note} |'
        )
    return '\n'.join(lines)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--cache', type=pathlib.Path, default=pathlib.Path('/tmp/source'))
    parser.add_argument('--thresholds', nargs='+', default=list(THRESHOLDS), choices=list(THRESHOLDS))
    parser.add_argument('--target-steps', type=int, default=600)
    parser.add_argument('--max-iterations', type=int, default=5)
    parser.add_argument(
        '--ensemble', choices=('npt', 'nvt'), default='npt', help='npt: 1 bar; nvt: 1.30 g/cm³'
    )
    parser.add_argument('--jobs', type=int, default=1, help='loops (processes) run side by side at most')
    parser.add_argument('--plot', action='store_true', help='only remake the figure and table from the cache')
    parser.add_argument(
        '--tag',
        default='',
        help='with --plot: appended to the names of the figure and table (a rerun beside the first)',
    )
    parser.add_argument(
        '--partial',
        nargs=2,
        action='append',
        metavar=('THRESHOLD', 'LOG'),
        default=[],
        help='with --plot: a run that has not finished, read from the report lines in LOG (its own output only)',
    )
    args = parser.parse_args(argv)

    if not args.plot and len(args.thresholds) > 1:  # one process (and profile) per threshold, side by side
        import subprocess

        common = ['--cache', str(args.cache), '--target-steps', str(args.target_steps)]
        common += ['--max-iterations', str(args.max_iterations), '--ensemble', args.ensemble]
        failed, running = False, []
        for name in args.thresholds:  # at most --jobs at once
            if len(running) >= args.jobs:
                failed |= bool(running.pop(0).wait())
            running.append(subprocess.Popen([sys.executable, __file__, '--thresholds', name, *common]))
        if failed or any(child.wait() for child in running):
            return 1
    elif not args.plot:
        for name in args.thresholds:
            if (args.cache / f'oracle_calls_{args.ensemble}_{name}.json').exists():
                continue
            codes = open_profile(args.cache, f'calls_{args.ensemble}_{name}')
            overrides = loop_overrides(THRESHOLDS[name], args.target_steps, args.max_iterations)
            pressure = PRESSURE_BAR if args.ensemble == 'npt' else None
            node, wall = run_loop(codes, overrides, f'source oracle calls: {args.ensemble} {name}', pressure)
            entry = curve(node)
            entry.update(
                relative_threshold=THRESHOLDS[name],
                target_steps=args.target_steps,
                wall_s=wall,
                load=load_average(),
                overrides=overrides,
            )
            print(
                f'{name}: exit {node.exit_status}, steps {entry["cumulative_steps"]}, calls {entry["cumulative_calls"]}'
            )
            entry['ensemble'] = args.ensemble
            (args.cache / f'oracle_calls_{args.ensemble}_{name}.json').write_text(json.dumps(entry, indent=1))
        return 0
    results = {}
    for name in THRESHOLDS:
        path = args.cache / f'oracle_calls_{args.ensemble}_{name}.json'
        if path.exists():
            results[name] = json.loads(path.read_text())
    for name, log in args.partial:
        if name not in results:
            lines = [line for line in pathlib.Path(log).read_text().splitlines() if '[REPORT]' in line]
            results[name] = {**curve_from_reports(lines), 'relative_threshold': THRESHOLDS[name]}
    results = {name: results[name] for name in THRESHOLDS if name in results}
    DOCS.mkdir(parents=True, exist_ok=True)
    stem = ('oracle_calls' if args.ensemble == 'npt' else 'oracle_calls_nvt') + (
        f'_{args.tag}' if args.tag else ''
    )
    plot(results, DOCS / f'{stem}.png', args.ensemble)
    (DOCS / f'{stem}.md').write_text(table(results) + '\n')
    (DOCS / f'{stem}.json').write_text(json.dumps(results, indent=1))
    print(table(results))
    return 0


if __name__ == '__main__':
    sys.exit(main(sys.argv[1:]))
