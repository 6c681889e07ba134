"""The figures of `aiida-mlpot report`: learning curve, exploration traces, volume (PNG, Agg).

Plain data in, a PNG file out: no AiiDA here, the command gathers the data from the graph
(:mod:`aiida_mlpot.cli.al_run`). The parity plot is :func:`aiida_mlpot.analysis.errors.parity_plot`, the RDF
overlay :func:`aiida_mlpot.analysis.rdf.rdf_overlay_plot`.
"""

from __future__ import annotations

import pathlib
from collections.abc import Mapping, Sequence

import numpy as np

__all__ = ('learning_curve_figure', 'traces_figure', 'volume_figure')

#: Labels of the exploration score by extrapolation method.
SCORE_LABELS = {
    'gap_variance': 'GAP std, max over atoms (eV)',
    'soap_novelty': 'SOAP novelty (distance to training)',
}


def _figure(n_columns: int, n_rows: int = 1, width: float = 4.6, height: float = 3.6):
    import matplotlib

    matplotlib.use('Agg')
    from matplotlib.figure import Figure

    figure = Figure(figsize=(width * n_columns, height * n_rows), dpi=110)
    axes = [figure.add_subplot(n_rows, n_columns, index + 1) for index in range(n_rows * n_columns)]
    return figure, axes


def _save(figure, path, title: str | None) -> pathlib.Path:
    if title:
        import textwrap

        characters = int(figure.get_figwidth() * 13)  # about 13 characters of 11 pt per inch
        figure.suptitle('\n'.join(textwrap.wrap(title, max(characters, 40))), fontsize=11)
    figure.tight_layout()
    figure.savefig(path, format='png')
    return pathlib.Path(path)


def _markers(points) -> dict:
    """Markers for short traces (a run stopped at its first frames would otherwise draw nothing)."""
    return {'marker': 'o', 'markersize': 3} if len(points) < 30 else {}


def _values(rows: Sequence[Mapping], key: str) -> tuple[list[int], list[float]]:
    pairs = [(row['iteration'], row[key]) for row in rows if row.get(key) is not None]
    return [p[0] for p in pairs], [float(p[1]) for p in pairs]


def learning_curve_figure(
    rows: Sequence[Mapping], path, limits: Mapping | None = None, title: str | None = None
) -> pathlib.Path:
    """Write the learning curve (one point per iteration) as four panels to ``path``.

    Force and energy RMSE of the potential that explored (on the test set) and of its audit (on frames its MD
    visited); training-set size and cumulative oracle calls; ML-MD steps reached per replica, with the
    triggered or unstable runs marked.

    :param rows: the ``iterations`` of a ``learning_curve`` output.
    :param limits: ``audit_force_rmse`` (eV/Å), ``audit_energy_rmse`` (meV/atom), ``target_steps``: drawn as
        dashed lines when given.
    """
    limits = dict(limits or {})
    figure, (forces, energies, sizes, steps) = _figure(2, 2)
    iterations = [row['iteration'] for row in rows]
    for axis, quantity, unit, limit in (
        (forces, 'force', 'eV/Å', limits.get('audit_force_rmse')),
        (energies, 'energy', 'meV/atom', limits.get('audit_energy_rmse')),
    ):
        for kind, marker in (('test', 'o'), ('audit', 's')):
            x, y = _values(rows, f'{kind}_{quantity}_rmse')
            if x:
                axis.plot(
                    x, y, marker=marker, label=f'{kind} set' if kind == 'test' else 'audit (visited frames)'
                )
        if limit is not None:
            axis.axhline(float(limit), color='grey', linestyle='--', linewidth=1, label='audit limit')
        axis.set_ylabel(f'{quantity.capitalize()} RMSE ({unit})')
        axis.set_title(f'{quantity.capitalize()} error of the exploring potential', fontsize=10)
        axis.set_ylim(bottom=0)
        axis.legend(fontsize=8)

    x, n_train = _values(rows, 'n_train')
    sizes.plot(x, n_train, marker='o', label='training configurations')
    x, calls = _values(rows, 'oracle_calls')
    sizes.plot(x, calls, marker='^', label='oracle calls (cumulative)')
    sizes.set_ylabel('Configurations')
    sizes.set_title('Training set and oracle cost', fontsize=10)
    sizes.set_ylim(bottom=0)
    sizes.legend(fontsize=8)

    from matplotlib.lines import Line2D
    from matplotlib.patches import Patch

    keys = sorted({key for row in rows for key in row.get('replicas', {})})
    width = 0.8 / max(len(keys), 1)
    handles, stopped_early = [], False
    for index, key in enumerate(keys):
        offsets = [row['iteration'] + (index - (len(keys) - 1) / 2) * width for row in rows]
        reached = [float((row.get('replicas', {}).get(key) or {}).get('steps') or 0) for row in rows]
        outcomes = [(row.get('replicas', {}).get(key) or {}).get('outcome') for row in rows]
        bars = steps.bar(offsets, reached, width=width * 0.95, color=f'C{index}')
        handles.append(Patch(facecolor=f'C{index}', label=key))
        for bar, outcome in zip(bars, outcomes):
            if outcome not in (None, 'completed'):
                stopped_early = True
                bar.set_hatch('//')
                steps.annotate(
                    'unstable' if outcome == 'unstable' else 'trigger',
                    (bar.get_x() + bar.get_width() / 2, bar.get_height()),
                    ha='center',
                    va='bottom',
                    fontsize=7,
                )
    if stopped_early:
        handles.append(Patch(facecolor='white', edgecolor='black', hatch='//', label='trigger or unstable'))
    if limits.get('target_steps') is not None:
        steps.axhline(float(limits['target_steps']), color='grey', linestyle='--', linewidth=1)
        handles.append(Line2D([], [], color='grey', linestyle='--', linewidth=1, label='target steps'))
    steps.set_ylabel('ML-MD steps reached')
    steps.set_title('Exploration: steps before a trigger (hatched) or the end', fontsize=10)
    steps.legend(handles=handles, fontsize=8)

    for axis in (forces, energies, sizes, steps):
        axis.set_xlabel('Iteration')
        axis.set_xticks(iterations)
        axis.grid(alpha=0.3)
    return _save(figure, path, title)


def traces_figure(
    traces: Mapping[str, Mapping], path, thresholds: Mapping[str, float] | None = None, method: str = 'gap_variance',
    temperatures: Mapping[str, float] | None = None, title: str | None = None,
) -> pathlib.Path:  # fmt: skip
    """Write the extrapolation score and the temperature against the MD step, one line per replica.

    :param traces: per replica ``{'step': [...], 'score': [...], 'temperature_K': [...]}`` (the ``traces`` of an
        ML-MD summary).
    :param thresholds: per replica the trigger threshold of the score (dashed line).
    :param temperatures: per replica the thermostat temperature in K (dotted line).
    """
    figure, (score_axis, temperature_axis) = _figure(2)
    for index, (key, trace) in enumerate(sorted(traces.items())):
        color = f'C{index}'
        steps = np.asarray(trace.get('step', []), dtype=float)
        scores = [np.nan if value is None else float(value) for value in trace.get('score', [])]
        if len(scores) == len(steps) and len(steps):
            score_axis.plot(steps, scores, color=color, label=key, **_markers(steps))
        threshold = (thresholds or {}).get(key)
        if threshold is not None:
            score_axis.axhline(
                float(threshold), color=color, linestyle='--', linewidth=1, label=f'{key} threshold'
            )
        kelvin = [np.nan if value is None else float(value) for value in trace.get('temperature_K', [])]
        if len(kelvin) == len(steps) and len(steps):
            temperature_axis.plot(steps, kelvin, color=color, label=key, **_markers(steps))
        target = (temperatures or {}).get(key)
        if target is not None:
            temperature_axis.axhline(float(target), color=color, linestyle=':', linewidth=1)
    score_axis.set_ylabel(SCORE_LABELS.get(method, f'{method} score'))
    score_axis.set_title('Extrapolation score (dashed: trigger threshold)', fontsize=10)
    temperature_axis.set_ylabel('Temperature (K)')
    temperature_axis.set_title('Temperature (dotted: thermostat)', fontsize=10)
    for axis in (score_axis, temperature_axis):
        axis.set_xlabel('MD step')
        axis.grid(alpha=0.3)
        axis.legend(fontsize=8)
    return _save(figure, path, title)


def volume_figure(
    traces: Mapping[str, Mapping],
    path,
    reference: Mapping[str, float] | None = None,
    title: str | None = None,
) -> pathlib.Path:
    """Write the cell volume against the MD step (NPT), one line per replica.

    :param traces: per replica ``{'step': [...], 'volume': [...]}`` (Å³).
    :param reference: per replica a reference volume (Å³), e.g. the mean of the classical sampling (dotted).
    """
    figure, (axis,) = _figure(1, width=6.0)
    for index, (key, trace) in enumerate(sorted(traces.items())):
        axis.plot(
            trace['step'],
            trace['volume'],
            color=f'C{index}',
            label=f'{key} (ML MD)',
            **_markers(trace['step']),
        )
        if reference and reference.get(key) is not None:
            axis.axhline(
                float(reference[key]),
                color=f'C{index}',
                linestyle=':',
                label=f'{key} classical sampling mean',
            )
    axis.set_xlabel('MD step')
    axis.set_ylabel('Cell volume (Å³)')
    axis.grid(alpha=0.3)
    axis.legend(fontsize=8)
    return _save(figure, path, title)
