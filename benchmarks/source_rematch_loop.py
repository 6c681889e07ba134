"""The REMatch-triggered active learner (the thesis' loop): ``ActiveLearningWorkChain`` with ``loop.trigger: rematch``
next to the GAP-variance trigger, on the same small NaCl case.

Source: the thesis' active learner decided that an MD frame is new by the REMatch similarity of the whole
configuration to the training configurations (docs/ml_md.md, "The REMatch trigger"). Here: the loop of
``source_oracle_calls.py`` (64-atom NaCl, NVT 1400 K, Tosi-Fumi teacher, ``fast``, no Coulomb baseline, 12 initial
configurations, ``--target-steps`` per exploration), NVT at 1.30 g/cm³, with ``loop.trigger: rematch``: every replica scores its
frames by REMatch (SOAP, α 0.1, up to 50 FPS references) against the critical similarity calibrated from the
training set (2 × the 99th percentile of its leave-one-out distances). The variance run it is compared with is
the ``default`` run of ``source_oracle_calls.py --ensemble nvt`` (relative threshold 3), same settings otherwise.

Usage (one loop; a real AiiDA run on a throw-away profile in ``--cache``, see ``source_common.py``)::

    nice -n 10 .venv/bin/python benchmarks/source_rematch_loop.py [--cache /tmp/source]

Writes ``docs/source/rematch_loop.md`` and ``docs/source/rematch_loop.json``.
"""

from __future__ import annotations

import argparse
import json
import pathlib
import sys

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent))

from source_common import DOCS, load_average, open_profile  # noqa: E402
from source_oracle_calls import curve, loop_overrides, run_loop  # noqa: E402


def rematch_costs(node) -> list[dict]:
    """Per exploration of the loop: the REMatch summary entries (references, threshold, cost per check)."""
    from aiida import orm

    from aiida_mlpot.workflows.ml_md import MlMdWorkChain

    rows = []
    for link in node.base.links.get_outgoing(link_type=orm.LinkType.CALL_WORK).all():
        child = link.node
        if child.process_class is not MlMdWorkChain or 'summary' not in child.outputs:
            continue
        summary = child.outputs.summary.get_dict()
        segments = summary.get('segments') or [summary]
        first = segments[0]
        rows.append(
            {
                'call': link.link_label,
                'outcome': summary.get('outcome'),
                'steps_done': summary.get('steps_done'),
                'max_score': summary.get('max_score'),
                'threshold': summary.get('threshold', first.get('threshold')),
                'critical_similarity': summary.get('critical_similarity', first.get('critical_similarity')),
                'n_references': summary.get('n_references', first.get('n_references')),
                'cpu_time_per_check_ms': summary.get(
                    'cpu_time_per_check_ms', first.get('cpu_time_per_check_ms')
                ),
                'reason': summary.get('reason'),
            }
        )
    return rows


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--cache', type=pathlib.Path, default=pathlib.Path('/tmp/source'))
    parser.add_argument('--target-steps', type=int, default=600)
    parser.add_argument('--max-iterations', type=int, default=5)
    args = parser.parse_args(argv)

    store = args.cache / 'rematch_loop.json'
    if not store.exists():
        codes = open_profile(args.cache, 'rematch')
        overrides = loop_overrides(None, args.target_steps, args.max_iterations, trigger='rematch')
        node, wall = run_loop(codes, overrides, 'source REMatch-triggered loop', pressure_bar=None)
        entry = curve(node)
        entry.update(explorations=rematch_costs(node), wall_s=wall, load=load_average(), overrides=overrides)
        store.write_text(json.dumps(entry, indent=1))
    entry = json.loads(store.read_text())
    variance = args.cache / 'oracle_calls_nvt_default.json'
    results = {'rematch': entry}
    if variance.exists():
        results['variance'] = json.loads(variance.read_text())
    DOCS.mkdir(parents=True, exist_ok=True)
    (DOCS / 'rematch_loop.json').write_text(json.dumps(results, indent=1))
    lines = [
        '| trigger | iterations | cumulative steps | cumulative oracle calls | triggers per iteration | final audit force RMSE (eV/Å) | final audit energy RMSE (meV/atom) | stopped by |',
        '|---|---|---|---|---|---|---|---|',
    ]
    for name, result in results.items():
        audit = result['final_audit'] or {}
        triggers = ', '.join(str(row['n_triggers']) for row in result['iterations'])
        force, energy = audit.get('force_rmse'), audit.get('energy_rmse')
        lines.append(
            f'| {name} | {len(result["iterations"])} | {", ".join(map(str, result["cumulative_steps"]))} | '
            f'{", ".join(map(str, result["cumulative_calls"]))} | {triggers} | '
            f'{"n/a" if force is None else f"{force:.3f}"} | {"n/a" if energy is None else f"{energy:.2f}"} | '
            f'{(result["stopping"] or {}).get("criterion")} (exit {result["exit_status"]}) |'
        )
    (DOCS / 'rematch_loop.md').write_text('\n'.join(lines) + '\n')
    print('\n'.join(lines))
    return 0


if __name__ == '__main__':
    sys.exit(main(sys.argv[1:]))
