"""Stage 0: the starting structure and a dataset round trip (foundation)."""

from __future__ import annotations

import numpy as np
from aiida.orm import StructureData, load_node

from aiida_mlpot.data.dataset import DatasetData
from aiida_mlpot.structures import random_box


def run(ctx: dict) -> dict:
    """Build the 64-atom molten-NaCl start box and check that a dataset survives the database unchanged."""
    atoms = random_box({'Na': 32, 'Cl': 32}, density=1.295, min_distance=2.2, seed=2024)
    structure = StructureData(ase=atoms).store()
    print(
        f'start box: {atoms.get_chemical_formula()} in {atoms.get_volume():.1f} Å³ -> StructureData<{structure.pk}>'
    )

    frames = [atoms.copy() for _ in range(3)]
    rng = np.random.default_rng(0)
    for frame in frames:
        frame.rattle(0.05, seed=int(rng.integers(1000)))
        frame.info['config_type'] = 'roundtrip'
        frame.arrays['forces'] = rng.normal(size=(len(frame), 3))
        frame.info['energy'] = float(rng.normal())
    node = DatasetData.from_ase(frames).store()
    back = load_node(node.pk).to_ase()
    same = all(
        np.array_equal(a.positions, b.positions) and np.array_equal(a.arrays['forces'], b.arrays['forces'])
        for a, b in zip(frames, back)
    )
    print(f'dataset round trip: {node} -> identical after reload: {same}')
    if not same:
        raise RuntimeError('dataset round trip changed the data')
    return {'structure': structure}
