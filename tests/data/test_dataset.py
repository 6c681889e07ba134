"""Tests for :class:`aiida_mlpot.data.dataset.DatasetData`."""

import numpy as np
import pytest
from aiida.orm import load_node
from ase import Atoms
from ase.build import bulk, molecule
from ase.calculators.singlepoint import SinglePointCalculator

from aiida_mlpot.common.units import stress_to_virial
from aiida_mlpot.data.dataset import DatasetData, InconsistentDatasetError


def labelled(atoms: Atoms, seed: int, **info) -> Atoms:
    """Return ``atoms`` with random full-precision labels and ``info``."""
    rng = np.random.default_rng(seed)
    atoms = atoms.copy()
    atoms.info['energy'] = float(rng.normal() * 100)
    atoms.info['virial'] = rng.normal(size=(3, 3))
    atoms.arrays['forces'] = rng.normal(size=(len(atoms), 3))
    atoms.arrays['energies'] = rng.normal(size=len(atoms))
    atoms.info.update(info)
    return atoms


@pytest.fixture
def mixed_frames():
    """Configurations of different sizes and compositions, with free-form info."""
    nacl = bulk('NaCl', 'rocksalt', a=5.64, cubic=True)
    nacl.rattle(0.1, seed=1)
    argon = bulk('Ar', 'fcc', a=5.26).repeat((2, 1, 1))
    water = molecule('H2O', vacuum=4.0, pbc=True)
    return [
        labelled(nacl, 1, config_type='T1400', source_uuid='1c2a0d5e-0000-4000-8000-000000000001', step=20),
        labelled(argon, 2, config_type='argon liquid', step=40, frame=3),
        labelled(water, 3, config_type='molecule', uncertainty=0.0173),
    ]


def test_round_trip_bit_for_bit(mixed_frames):
    """ASE -> node -> ASE keeps every property exactly (floats written at full precision)."""
    node = DatasetData.from_ase(mixed_frames).store()
    frames = load_node(node.pk).to_ase()
    assert len(frames) == len(mixed_frames) == len(node)
    for original, restored in zip(mixed_frames, frames):
        assert restored.get_chemical_symbols() == original.get_chemical_symbols()
        assert np.array_equal(restored.positions, original.positions)
        assert np.array_equal(restored.cell.array, original.cell.array)
        assert np.array_equal(restored.pbc, original.pbc)
        assert restored.info['energy'] == original.info['energy']
        assert np.array_equal(restored.info['virial'], original.info['virial'])
        assert np.array_equal(restored.arrays['forces'], original.arrays['forces'])
        assert np.array_equal(restored.arrays['energies'], original.arrays['energies'])
        for key in ('config_type', 'source_uuid', 'step', 'frame', 'uncertainty'):
            assert restored.info.get(key) == original.info.get(key)
        # the attached calculator gives the labels through the usual ASE API
        assert restored.get_potential_energy() == original.info['energy']
        assert np.array_equal(restored.get_forces(), original.arrays['forces'])


def test_attributes(mixed_frames):
    node = DatasetData.from_ase(mixed_frames)
    assert node.n_configs == 3
    assert node.n_atoms_total == sum(len(f) for f in mixed_frames)
    assert node.species == ['Ar', 'Cl', 'H', 'Na', 'O']
    assert node.properties == ['energy', 'virial', 'forces', 'energies']
    assert node.config_types == ['T1400', 'argon liquid', 'molecule']
    assert {'config_type', 'source_uuid', 'step'} <= set(node.base.attributes.get('info_keys'))
    assert [len(atoms) for atoms in node] == [len(f) for f in mixed_frames]
    assert np.array_equal(node.get_array('energy'), [f.info['energy'] for f in mixed_frames])


def test_calculator_labels_are_taken():
    """Labels held by a SinglePointCalculator become info/arrays; the stress becomes the virial."""
    atoms = bulk('Cu', 'fcc', a=3.6, cubic=True)
    stress = np.array([0.01, 0.02, 0.03, 0.001, 0.002, 0.003])
    forces = np.arange(12.0).reshape(4, 3)
    atoms.calc = SinglePointCalculator(atoms, energy=-12.5, forces=forces, stress=stress)
    frame = DatasetData.from_ase([atoms]).to_ase()[0]
    assert frame.info['energy'] == -12.5
    assert np.array_equal(frame.arrays['forces'], forces)
    assert np.allclose(frame.info['virial'], stress_to_virial(stress, atoms.get_volume()))
    assert np.allclose(frame.get_stress(), stress)


def test_file_is_read_by_ase(mixed_frames):
    """The stored file is plain extended XYZ (the format gap_fit reads)."""
    from ase.io import read

    node = DatasetData.from_ase(mixed_frames)
    with node.get_xyz_path() as path:
        frames = read(path, index=':', format='extxyz')
    assert len(frames) == 3
    assert 'virial=' in node.get_content().splitlines()[1]


@pytest.mark.parametrize(
    ('mutate', 'message'),
    [
        (
            lambda f: f[0].arrays.__setitem__('forces', np.zeros((3, 3))),
            r'forces has shape \(3, 3\), expected \(8, 3\)',
        ),
        (lambda f: f[1].arrays.__setitem__('energies', np.zeros(5)), r'energies has shape'),
        (lambda f: f[2].info.__setitem__('virial', np.zeros(4)), r'virial'),
        (lambda f: f[0].info.__setitem__('energy', float('nan')), r'energy is not finite'),
        (lambda f: f[1].info.pop('energy'), r'`energy` is present in 2 of 3 configurations only'),
        (lambda f: f[2].arrays.pop('forces'), r'`forces` is present in 2 of 3'),
    ],
)
def test_inconsistent_input_is_refused(mixed_frames, mutate, message):
    mutate(mixed_frames)
    with pytest.raises(InconsistentDatasetError, match=message):
        DatasetData.from_ase(mixed_frames)


def test_partial_labels_allowed_on_request(mixed_frames):
    mixed_frames[1].info.pop('energy')
    node = DatasetData.from_ase(mixed_frames, allow_partial=True)
    assert 'energy' not in node.properties
    assert node.base.attributes.get('partial_properties') == ['energy']
    frames = node.to_ase()
    assert 'energy' not in frames[1].info and frames[0].info['energy'] == mixed_frames[0].info['energy']


def test_refuses_non_atoms():
    with pytest.raises(InconsistentDatasetError, match='not an ase.Atoms'):
        DatasetData.from_ase([bulk('Cu'), 'not atoms'])


def test_empty_dataset():
    node = DatasetData.from_ase([]).store()
    assert len(node) == 0 and node.to_ase() == []
