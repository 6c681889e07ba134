"""Stage 5: ML-driven MD with the fitted GAP (NVT 1400 K), stopped if it leaves what the GAP knows."""

from __future__ import annotations

import copy

from aiida.engine import run_get_node
from aiida.orm import Dict, Int

from aiida_mlpot.calculations.ml_md import MlMdCalculation

#: 150 steps of 2 fs; the GAP predictive std is measured every 10 steps against 3x the 99th percentile of
#: the training frames' own scores (computed by the driver from `training` and returned as the `reference_score`
#: output, which later runs with the same potential take as their `reference_score` input instead of `training`).
PARAMETERS = {
    'md': {'ensemble': 'nvt', 'thermostat': 'langevin', 'temperature_K': 1400.0, 'timestep_fs': 2.0},
    'extrapolation': {
        'method': 'gap_variance',
        'check_interval': 10,
        'relative_threshold': 3.0,
        'n_flagged': 3,
    },
    'stability': {'min_distance': 1.2, 'max_temperature_factor': 3.0},
}
N_STEPS = 150


def _eV(value) -> str:
    return 'n/a' if value is None else f'{value:.4f} eV'


def run(ctx: dict) -> dict:
    """Run MlMdCalculation with ``ctx['gap']`` from a pool frame (or ``ctx['structure']``); add ``ml_md``."""
    parameters = copy.deepcopy(PARAMETERS)
    parameters['md'].update(n_steps=N_STEPS, dump_interval=10, seed=7)
    inputs = {
        'code': ctx['codes']['python'],
        'potential': ctx['gap'],
        'parameters': Dict(parameters),
        'metadata': {'label': 'nacl-ml-md-1400K', 'options': {'max_wallclock_seconds': 1800}},
    }
    if 'train' in ctx:
        inputs['training'] = ctx['train']
    else:
        parameters['extrapolation'].update(relative_threshold=None, threshold=0.06)
        inputs['parameters'] = Dict(parameters)
    if 'pool' in ctx:
        inputs.update(restart_from=ctx['pool'], restart_frame=Int(-1))  # a molten frame, fresh velocities
    else:
        inputs['structure'] = ctx['structure']
    results, node = run_get_node(MlMdCalculation, **inputs)
    if 'summary' not in results:
        raise RuntimeError(f'MlMdCalculation<{node.pk}> failed: {node.exit_status} {node.exit_message}')
    summary = results['summary'].get_dict()
    print(
        f'MlMdCalculation<{node.pk}>: outcome {summary["outcome"]} after {summary["steps_done"]} of '
        f'{summary["steps_requested"]} steps (exit status {node.exit_status})'
    )
    max_score, threshold, reference = (summary.get(k) for k in ('max_score', 'threshold', 'reference_score'))
    line = f'  GAP std: max {_eV(max_score)}, threshold {_eV(threshold)}'
    if reference is not None:
        line += f' (3 x the training 99th percentile {_eV(reference)})'
    print(line)
    print(
        f'  speed: {summary["steps_per_second"]:.1f} steps/s ({summary["time_per_atom_step_us"]:.0f} µs per '
        f'atom-step), {summary["n_atoms"]} atoms'
    )
    temperatures = summary['traces']['temperature_K']
    if temperatures:
        mean = sum(temperatures) / len(temperatures)
        print(f'  mean kinetic temperature {mean:.0f} K over {len(temperatures)} checks')
    print(f'  -> trajectory DatasetData<{results["trajectory"].pk}> ({len(results["trajectory"])} frames)')
    if 'reference_score' in results:
        print(f'  -> reference_score Float<{results["reference_score"].pk}>: reuse it instead of `training`')
    if 'flagged' in results:
        print(f'  -> flagged DatasetData<{results["flagged"].pk}>: {len(results["flagged"])} frames to label')
    if summary['outcome'] == 'unstable':
        print(f'  unstable: {summary["reason"]}')
    return {'ml_md': node}
