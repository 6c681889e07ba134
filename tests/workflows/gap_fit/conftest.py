"""Fixtures of the GAP fitting tests: the train/test split of ~60 reference NaCl frames (two temperatures)
from the real LAMMPS (the gap_fit code is the session fixture `code_gap_fit` of tests/conftest.py)."""

from __future__ import annotations

import numpy as np
import pytest
from ase.build import bulk


@pytest.fixture(scope='module')
def nacl_train_test(aiida_profile, nacl_reference_frames):
    """60 configurations (30 per temperature, every third frame) split at random into 40 train / 20 test."""
    from aiida import orm

    from aiida_mlpot.calculations.functions.selection import split_dataset
    from aiida_mlpot.data.dataset import DatasetData

    per_type: dict[str, list] = {}
    for atoms in nacl_reference_frames:
        per_type.setdefault(atoms.info['config_type'], []).append(atoms)
    frames = [atoms for group in per_type.values() for atoms in group[::3][:30]]
    assert len(frames) == 60
    result = split_dataset(
        DatasetData.from_ase(frames), orm.Dict({'method': 'random', 'n_test': 20, 'seed': 1})
    )
    return result['train'], result['test']


@pytest.fixture
def tiny_dataset(aiida_profile):
    """Two 8-atom NaCl cells with energies, zero forces and a virial (for launches and handlers, not fits)."""
    from aiida_mlpot.data.dataset import DatasetData

    frames = []
    for index in range(2):
        atoms = bulk('NaCl', 'rocksalt', a=5.64, cubic=True)
        atoms.info.update({'energy': -25.0 - index, 'virial': np.eye(3)})
        atoms.arrays['forces'] = np.zeros((len(atoms), 3))
        frames.append(atoms)
    return DatasetData.from_ase(frames).store()
