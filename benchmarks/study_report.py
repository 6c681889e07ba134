"""Tables and plots of the selection study (``selection_study.py report``), from the cached records.

Reads ``<workdir>/<system>/*/record.json`` (one potential of a selection method) and
``<workdir>/<system>/fast_active_s*/records.json`` (every evaluated iteration of an active-learning run),
writes ``<out>/results.md`` (the tables), ``<out>/records.json`` (every figure, without the RDF arrays) and
the PNG plots. Mean ± standard deviation over seeds (sample sd; "-" with one seed).
"""

from __future__ import annotations

import json
import math
import pathlib
from collections import defaultdict

import numpy as np

ORDER = ('random', 'temporal', 'uniform_energy', 'uniform_force', 'uniform_atomic_energy', 'fps', 'active')


def load(workdir: pathlib.Path, md_steps: int) -> dict[str, list[dict]]:
    """Return the records per system judged with a ``md_steps`` audit; active learning keeps every iteration."""
    systems = defaultdict(list)
    for system_dir in sorted(p for p in workdir.iterdir() if p.is_dir()):
        for path in sorted(system_dir.glob(f'*/record_{md_steps}.json')):
            record = json.loads(path.read_text())
            _attach_crystal(record, path.parent / 'fit' / 'crystal.json')
            systems[system_dir.name].append(record)
        for base in sorted(system_dir.glob('fast_active_s*')):
            done = base / f'records_{md_steps}.json'
            path = done if done.exists() else base / 'progress.json'
            if path.exists():
                records = json.loads(path.read_text())
                loop = base / 'loop.json'  # the loop's log (also of a run stopped before its end)
                if records and 'loop' not in records[-1] and loop.exists():
                    records[-1]['loop'] = json.loads(loop.read_text())
                for record in records:
                    record['final'] = record is records[-1] and done.exists()
                    _attach_crystal(record, base / f'fit_{record["iteration"]:02d}' / 'crystal.json')
                systems[system_dir.name].extend(records)
    return dict(systems)


def _attach_crystal(record: dict, path: pathlib.Path) -> None:
    if path.exists():
        record['crystal'] = json.loads(path.read_text())


CRYSTAL = ('a0', 'B_gpa', 'C11', 'C12', 'C44')


def crystal_table(records: list[dict], reference_file: pathlib.Path) -> str:
    rows = [r for r in records if r.get('crystal') and r.get('protocol') == 'fast']
    if not rows or not reference_file.exists():
        return ''
    reference = json.loads(reference_file.read_text())
    lines = [
        '| method | labels | seeds | a0 Å | B GPa | C11 GPa | C12 GPa | C44 GPa |',
        '|---|---|---|---|---|---|---|---|',
    ]
    lines.append('| EAM teacher | | | ' + ' | '.join(f'{reference[k]:.3f}' if k == 'a0' else f'{reference[k]:.0f}'
                                                   for k in CRYSTAL) + ' |')  # fmt: skip
    groups = defaultdict(list)
    for record in rows:
        groups[(record['method'], record['labels'])].append(record)
    for (method, labels), group in sorted(groups.items(), key=lambda i: (ORDER.index(i[0][0]), i[0][1] or 0)):
        shown = str(labels) if labels is not None else _fmt([r['labels'] for r in group], 0)
        cells = [method, shown, ','.join(str(r['seed']) for r in group)]
        for key in CRYSTAL:
            cells.append(_fmt([r['crystal'].get(key) for r in group], 3 if key == 'a0' else 0))
        lines.append('| ' + ' | '.join(cells) + ' |')
    return '\n'.join(lines)


def _get(record: dict, *keys):
    value = record
    for key in keys:
        if not isinstance(value, dict) or value.get(key) is None:
            return None
        value = value[key]
    return value


def _stats(values) -> tuple[float | None, float | None, int]:
    values = [v for v in values if v is not None and np.isfinite(v)]
    if not values:
        return None, None, 0
    mean = float(np.mean(values))
    sd = float(np.std(values, ddof=1)) if len(values) > 1 else None
    return mean, sd, len(values)


def _fmt(values, digits: int = 3) -> str:
    mean, sd, n = _stats(values)
    if mean is None:
        return 'n/a'
    if sd is None:
        return f'{mean:.{digits}f}'
    return f'{mean:.{digits}f} ± {sd:.{digits}f}'


def _pair(record: dict) -> str:
    return 'Na-Na' if record['system'].startswith('nacl') else 'Au-Au'


def _artefact(record: dict) -> bool | None:
    artefacts = _get(record, 'rdf', 'artefacts')
    return None if artefacts is None else _pair(record) in artefacts


def table_rows(records: list[dict]) -> list[tuple]:
    """Group the fast-protocol records by (method, labels); active learning by its training size."""
    groups = defaultdict(list)
    for record in records:
        if record.get('protocol') != 'fast':
            continue
        groups[(record['method'], record['labels'])].append(record)
    order = {m: i for i, m in enumerate(ORDER)}
    return sorted(groups.items(), key=lambda item: (order.get(item[0][0], 99), item[0][1] or 0))


COLUMNS = (
    ('test F RMSE', ('test', 'force_rmse')),
    ('test F max', ('test', 'force_max')),
    ('hot F RMSE', ('hot', 'force_rmse')),
    ('hot F max', ('hot', 'force_max')),
    ('audit F MAE', ('audit', 'force_mae')),
    ('audit F RMSE', ('audit', 'force_rmse')),
    ('audit F max', ('audit', 'force_max')),
    ('audit E RMSE meV/at', ('audit', 'energy_rmse_mev')),
)


def markdown_table(records: list[dict]) -> str:
    header = ['method', 'labels', 'seeds', *(c[0] for c in COLUMNS), 'stable steps', 'Δg score (like pair)', 'short-range artefact',
              'fit CPU s']  # fmt: skip
    lines = ['| ' + ' | '.join(header) + ' |', '|' + '---|' * len(header)]
    for (method, labels), group in table_rows(records):
        seeds = sorted({r['seed'] for r in group})
        shown_labels = _fmt([r['labels'] for r in group], 0) if labels is None else str(labels)
        cells = [method, shown_labels, ','.join(str(s) for s in seeds)]
        for _, keys in COLUMNS:
            cells.append(_fmt([_get(r, *keys) for r in group], 1 if 'meV' in _ else 3))
        cap = group[0]['stability']['cap']
        cells.append(f'{_fmt([r["stability"]["steps"] for r in group], 0)} / {cap}')
        pair = _pair(group[0])
        cells.append(_fmt([_get(r, 'rdf', 'delta_g', pair) for r in group], 3))
        flags = [_artefact(r) for r in group]
        cells.append(f'{sum(bool(f) for f in flags)}/{sum(f is not None for f in flags)}')
        cells.append(_fmt([r.get('fit_cpu_s') for r in group], 0))
        lines.append('| ' + ' | '.join(cells) + ' |')
    return '\n'.join(lines)


def _curve(
    records: list[dict], method: str, key=('audit', 'force_rmse')
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    by_labels = defaultdict(list)
    for record in records:
        if record.get('protocol') == 'fast' and record['method'] == method:
            value = _get(record, *key)
            if value is not None:
                by_labels[record['labels']].append(value)
    labels = np.array(sorted(by_labels), dtype=float)
    means = np.array([np.mean(by_labels[n]) for n in sorted(by_labels)])
    sds = np.array(
        [np.std(by_labels[n], ddof=1) if len(by_labels[n]) > 1 else 0.0 for n in sorted(by_labels)]
    )
    return labels, means, sds


def labels_to_reach(labels: np.ndarray, errors: np.ndarray, target: float) -> tuple[float | None, str]:
    """Labels at which a (mean) learning curve first reaches ``target``, log-log interpolated.

    Returns (value, note): the value is None with note '> max' when the curve never reaches the target,
    '<= min' when its first point already does.
    """
    if len(labels) == 0:
        return None, 'no curve'
    if errors[0] <= target:
        return float(labels[0]), f'<= {labels[0]:.0f}'
    for k in range(1, len(labels)):
        if errors[k] <= target:
            x0, x1 = math.log(labels[k - 1]), math.log(labels[k])
            y0, y1 = math.log(errors[k - 1]), math.log(errors[k])
            x = x0 + (math.log(target) - y0) * (x1 - x0) / (y1 - y0)
            return float(math.exp(x)), f'{math.exp(x):.0f}'
    return None, f'> {labels[-1]:.0f} (not reached; {errors[-1]:.3f} at {labels[-1]:.0f})'


def random_at(labels: np.ndarray, errors: np.ndarray, n: float) -> float | None:
    """The (mean) curve's error at ``n`` labels, log-log interpolated; None outside the measured range."""
    if len(labels) == 0 or not labels[0] <= n <= labels[-1]:
        return None
    return float(np.exp(np.interp(math.log(n), np.log(labels), np.log(errors))))


def headline(records: list[dict]) -> list[str]:
    """Per active-learning point: its labels and audit error, and the labels the other curves need for it.

    The other curves are the means over seeds at each budget; "labels needed" is the log-log linear
    interpolation between the two budgets around the active-learning error (:func:`labels_to_reach`).
    """
    lines = []
    points = [r for r in records if r['method'] == 'active' and _get(r, 'audit', 'force_rmse') is not None]
    curves = {method: _curve(records, method) for method in ('random', 'uniform_force')}
    for record in sorted(points, key=lambda r: (r['seed'], r['iteration'])):
        target = _get(record, 'audit', 'force_rmse')
        parts = [f'active learning (seed {record["seed"]}, iteration {record["iteration"]}): {record["labels"]} '
                 f'training labels ({record.get("oracle_calls", record["labels"])} oracle calls), audit force '
                 f'RMSE {target:.3f} eV/Å']  # fmt: skip
        if record.get('loop') and record.get('converged'):
            parts[0] += (f' (the loop converged: {record["loop"][-1]["oracle_calls_after"]} oracle calls in all, '
                         'its last audit included)')  # fmt: skip
        for method, (labels, means, _) in curves.items():
            if not len(labels):
                continue
            _, note = labels_to_reach(labels, means, target)
            same = random_at(labels, means, record['labels'])
            at = f', {method} at {record["labels"]} labels: {same:.3f}' if same is not None else ''
            parts.append(f'{method} needs {note}{at}')
        lines.append('; '.join(parts))
    return lines


def plot_curves(records: list[dict], system: str, path: pathlib.Path) -> None:
    import matplotlib

    matplotlib.use('Agg')
    import matplotlib.pyplot as plt
    from matplotlib import ticker

    keys = [('audit', 'force_rmse'), ('test', 'force_rmse'), ('hot', 'force_max')]
    titles = ['audit force RMSE (ML-visited frames)', 'test force RMSE', 'hot-set max |ΔF|']
    figure, axes = plt.subplots(1, 3, figsize=(15, 4.5))
    for axis, key, title in zip(axes, keys, titles):
        for method in ORDER[:-1]:
            labels, means, sds = _curve(records, method, key)
            if len(labels):
                axis.errorbar(labels, means, yerr=sds, marker='o', capsize=3, label=method)
        for seed in sorted({r['seed'] for r in records if r['method'] == 'active'}):
            run = sorted((r for r in records if r['method'] == 'active' and r['seed'] == seed),
                         key=lambda r: r['iteration'])  # fmt: skip
            xs = [r['labels'] for r in run if _get(r, *key) is not None]
            ys = [_get(r, *key) for r in run if _get(r, *key) is not None]
            if xs:
                axis.plot(xs, ys, 'k--s', alpha=0.7, label=f'active (seed {seed})')
        axis.set_xscale('log', base=2)
        axis.set_yscale('log')
        axis.yaxis.set_major_formatter(ticker.FormatStrFormatter('%.3g'))
        axis.yaxis.set_minor_formatter(ticker.FormatStrFormatter('%.3g'))
        axis.set_xlabel('labels (training configurations)')
        axis.set_ylabel('eV/Å')
        axis.set_title(title)
    axes[0].legend(fontsize=7)
    figure.suptitle(system)
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    plt.close(figure)


def plot_rdf(records: list[dict], system: str, path: pathlib.Path) -> None:
    import matplotlib

    matplotlib.use('Agg')
    import matplotlib.pyplot as plt

    fast = [r for r in records if r.get('protocol') == 'fast' and r.get('rdf') and r['method'] != 'active']
    if not fast:
        return
    budget = max(r['labels'] for r in fast)
    seed = min(r['seed'] for r in fast)
    chosen = [r for r in fast if r['labels'] == budget and r['seed'] == seed]
    active = [r for r in records if r['method'] == 'active' and r.get('rdf')]
    chosen += sorted(active, key=lambda r: (-r['labels'], r['seed']))[:1]
    pair = _pair(chosen[0])
    figure, axis = plt.subplots(figsize=(7, 4.5))
    r = np.array(chosen[0]['rdf']['r'])
    axis.plot(r, chosen[0]['rdf']['g_reference'][pair], 'k', lw=2.5, label='teacher (held-out MD)')
    for record in chosen:
        label = f'{record["method"]} ({record["labels"]})'
        axis.plot(np.array(record['rdf']['r']), record['rdf']['g'][pair], lw=1, label=label)
    axis.set_xlabel('r (Å)')
    axis.set_ylabel(f'g {pair}(r)')
    axis.set_title(f'{system}: {pair} RDF of the ML-visited frames, seed {seed}')
    axis.legend(fontsize=7)
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    plt.close(figure)


def peer_table(records: list[dict]) -> str:
    peers = [r for r in records if r.get('protocol') == 'autoplex']
    if not peers:
        return ''
    lines = ['| hyperparameters | method | labels | seed | test F RMSE | hot F RMSE | audit F RMSE | audit F max | '
             'stable steps | fit CPU s |', '|---|---|---|---|---|---|---|---|---|---|']  # fmt: skip
    for peer in peers:
        twins = [r for r in records if r.get('protocol') == 'fast' and r['method'] == peer['method']
                 and r['labels'] == peer['labels'] and r['seed'] == peer['seed']]  # fmt: skip
        for record in [*twins, peer]:
            lines.append('| ' + ' | '.join([
                'autoplex defaults' if record['protocol'] == 'autoplex' else 'this project `fast`',
                record['method'], str(record['labels']), str(record['seed']),
                _fmt([_get(record, 'test', 'force_rmse')]), _fmt([_get(record, 'hot', 'force_rmse')]),
                _fmt([_get(record, 'audit', 'force_rmse')]), _fmt([_get(record, 'audit', 'force_max')]),
                f'{record["stability"]["steps"]} / {record["stability"]["cap"]}', _fmt([record['fit_cpu_s']], 0),
            ]) + ' |')  # fmt: skip
    return '\n'.join(lines)


def npt_table(records: list[dict]) -> str:
    rows = [r for r in records if r.get('npt')]
    if not rows:
        return ''
    groups = defaultdict(list)
    for record in rows:
        groups[(record['method'], record['labels'])].append(record)
    lines = ['| method | labels | density error % | NPT steps |', '|---|---|---|---|']
    for (method, labels), group in sorted(groups.items(), key=lambda i: (ORDER.index(i[0][0]), i[0][1])):
        lines.append(f'| {method} | {labels} | {_fmt([_get(r, "npt", "error_percent") for r in group], 1)} | '
                     f'{_fmt([_get(r, "npt", "steps") for r in group], 0)} |')  # fmt: skip
    return '\n'.join(lines)


def write_report(workdir: pathlib.Path, out: pathlib.Path, md_steps: int) -> None:
    out.mkdir(parents=True, exist_ok=True)
    systems = load(workdir, md_steps)
    sections, slim = [], {}
    for system, records in systems.items():
        plot_curves(records, system, out / f'{system}_curves.png')
        plot_rdf(records, system, out / f'{system}_rdf.png')
        section = [f'## {system}', '', markdown_table(records), '']
        lines = headline(records)
        if lines:
            section += [
                'Active learning vs random / uniform |f| at the same audit force RMSE (mean curves, log-log interpolation):',
                '',
            ]
            section += [f'- {line}' for line in lines] + ['']
        peer = peer_table(records)
        if peer:
            section += [
                'Peer row: autoplex GAP defaults vs this project `fast`, same training set:',
                '',
                peer,
                '',
            ]
        crystal = crystal_table(records, workdir / system / 'crystal_reference.json')
        if crystal:
            section += ['fcc gold crystal properties of the GAPs trained on the liquid (clamped-ion elastic constants):',
                        '', crystal, '']  # fmt: skip
        npt = npt_table(records)
        if npt:
            section += ['NPT density (1 bar) against the teacher:', '', npt, '']
        section += [f'![{system} learning curves]({system}_curves.png)', '',
                    f'![{system} RDF]({system}_rdf.png)', '']  # fmt: skip
        sections.append('\n'.join(section))
        slim[system] = [
            {k: v for k, v in r.items() if k != 'rdf'}
            | ({'rdf': {k: v for k, v in r['rdf'].items() if k in ('delta_g', 'artefacts', 'r_max')}} if r.get('rdf') else {})
            for r in records
        ]  # fmt: skip
    (out / 'results.md').write_text('# Selection study: results (generated by `study_report.py`)\n\n'
                                    + '\n'.join(sections))  # fmt: skip
    (out / 'records.json').write_text(json.dumps(slim, indent=1))
    print(f'wrote {out / "results.md"} and {len(systems)} x 2 plots')
