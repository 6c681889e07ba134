"""Stage 2: select the configurations to label from the pool: uniform in |f_i|, then SOAP farthest points."""

from __future__ import annotations

import numpy as np
from aiida.orm import Dict

from aiida_mlpot.calculations.functions.selection import select_configurations
from aiida_mlpot.selection import per_atom_force_magnitudes, select_random

#: uniform_force keeps the high-force tail; FPS then removes near-duplicates. 24 keeps the labelling cheap.
SPEC = {
    'seed': 11,
    'allow_fewer': True,
    'steps': [
        {'method': 'uniform_force', 'n': 40},
        {'method': 'fps', 'n': 24, 'soap': {'r_cut': 5.0, 'n_max': 6, 'l_max': 4}},
    ],
}


def _summary(name: str, values, indices, p99: float) -> str:
    selected = np.concatenate([values.values[values.owner == i] for i in indices])
    return (
        f'  {name:<16s} |f| {selected.min():.2f}-{selected.max():.2f} eV/Å, '
        f'{100 * np.mean(selected > p99):.1f} % of atoms above the pool 99th percentile'
    )


def run(ctx: dict) -> dict:
    """Select from ``ctx['pool']``; add ``selected`` (DatasetData) and ``selected_structures`` (StructureData)."""
    pool = ctx['pool']
    results, node = select_configurations.run_get_node(pool, Dict(SPEC))
    if not node.is_finished_ok:
        raise RuntimeError(f'select_configurations<{node.pk}> failed: {node.exit_status} {node.exit_message}')
    selected = results['selected']
    structures = [results['structures'][key] for key in sorted(results['structures'])]
    record = results['record'].get_dict()
    print(f'select_configurations<{node.pk}>: {len(selected)} of {record["n_pool"]} pool configurations')
    for step in record['steps']:
        print(f'  step {step["method"]}: {step["n_selected"]} kept (seed {step["seed"]})')

    pool_frames = pool.to_ase()
    forces = per_atom_force_magnitudes(pool_frames)
    p99 = float(np.percentile(forces.values, 99))
    print(
        f'  pool             |f| {forces.values.min():.2f}-{forces.values.max():.2f} eV/Å, '
        f'99th percentile {p99:.2f} eV/Å'
    )
    print(_summary('selected', forces, record['pool_indices'], p99))
    random_pick = select_random(len(pool_frames), len(selected), seed=SPEC['seed'])
    print(_summary('random (compare)', forces, random_pick, p99))
    print(f'  -> DatasetData<{selected.pk}> and {len(structures)} StructureData for the labelling stage')
    return {'selected': selected, 'selected_structures': structures}
