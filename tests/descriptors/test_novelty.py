"""Novelty of configurations: REMatch distance and per-atom nearest-environment distance."""

import numpy as np
import pytest
from ase.build import bulk
from dscribe.kernels import REMatchKernel

from aiida_mlpot.descriptors import (
    atomic_novelty,
    atomic_soap,
    kernel_distance,
    rematch_kernel,
    rematch_novelty,
)
from aiida_mlpot.descriptors.novelty import MAX_DISTANCE, ReferenceEnvironments

SOAP = {'r_cut': 4.5, 'n_max': 4, 'l_max': 3}


@pytest.fixture(scope='module')
def melt_and_crystal(nacl_reference_frames):
    crystal = bulk('NaCl', 'rocksalt', a=5.9, cubic=True).repeat((2, 2, 2))
    crystal.rattle(0.02, seed=1)
    return list(nacl_reference_frames[:60:6]), list(nacl_reference_frames[101:141:4]), crystal


@pytest.mark.e2e
def test_rematch_kernel_equals_dscribe_create(melt_and_crystal):
    """Our evaluation gives exactly dscribe's REMatchKernel.create (normalised, linear metric)."""
    references, candidates, crystal = melt_and_crystal
    features_a = atomic_soap(candidates[:3] + [crystal], SOAP, ['Cl', 'Na'])
    features_b = atomic_soap(references[:3], SOAP, ['Cl', 'Na'])
    expected = REMatchKernel(alpha=0.1, threshold=1e-6, metric='linear').create(features_a, features_b)
    np.testing.assert_allclose(rematch_kernel(features_a, features_b), expected, rtol=1e-12)
    # The crystal is clearly less similar to the melt than melt frames are to each other.
    assert expected[-1].max() < expected[:-1].min()
    symmetric = rematch_kernel(features_b)
    np.testing.assert_allclose(np.diag(symmetric), 1.0)
    np.testing.assert_allclose(symmetric, symmetric.T)


@pytest.mark.e2e
def test_rematch_novelty_flags_the_crystal(melt_and_crystal):
    references, candidates, crystal = melt_and_crystal
    novelty = rematch_novelty(candidates + [crystal], references, soap=SOAP)
    assert novelty.shape == (len(candidates) + 1,)
    assert np.all(novelty >= 0)
    assert np.argmax(novelty) == len(candidates)
    assert novelty[-1] > 2 * novelty[:-1].max()
    # A reference configuration itself is not new at all.
    assert rematch_novelty(references[:2], references, soap=SOAP) == pytest.approx(0.0, abs=1e-6)


def _squeezed(atoms, distance=1.7):
    """Return a copy of ``atoms`` with atom 0 moved towards its nearest neighbour, to ``distance`` Å."""
    atoms = atoms.copy()
    distances = atoms.get_distances(0, range(len(atoms)), mic=True)
    neighbour = int(np.argsort(distances)[1])
    vector = atoms.get_distance(0, neighbour, mic=True, vector=True)
    atoms.positions[0] += vector * (1.0 - distance / distances[neighbour])
    return atoms


@pytest.mark.e2e
def test_atomic_novelty_flags_one_unusual_atom_and_a_dense_crystal(melt_and_crystal):
    """One over-close Na-Cl pair makes a frame new, at that atom; a compressed crystal is newer still."""
    references, candidates, _ = melt_and_crystal
    squeezed = _squeezed(candidates[4])
    dense = bulk('NaCl', 'rocksalt', a=5.2, cubic=True).repeat((2, 2, 2))
    novelty, per_atom = atomic_novelty(
        candidates + [squeezed, dense], references, soap=SOAP, return_per_atom=True
    )
    assert [len(x) for x in per_atom] == [64] * (len(candidates) + 2)
    np.testing.assert_allclose(novelty, [x.max() for x in per_atom])
    assert novelty[-2] > novelty[:-2].max()
    assert np.argmax(per_atom[-2]) == 0
    assert novelty[-1] > 1.5 * novelty[:-2].max()
    assert atomic_novelty(references[:1], references, soap=SOAP) == pytest.approx(0.0, abs=1e-6)


@pytest.mark.e2e
def test_missing_species_is_maximally_new(melt_and_crystal):
    references, _, _ = melt_and_crystal
    argon = bulk('Ar', 'fcc', a=5.3, cubic=True)
    novelty = atomic_novelty([argon], references, soap=SOAP)
    assert novelty[0] == MAX_DISTANCE == pytest.approx(np.sqrt(2.0))


def test_kernel_distance():
    np.testing.assert_allclose(kernel_distance([1.0, 0.5, 0.0, 1.0 + 1e-12]), [0.0, 1.0, np.sqrt(2.0), 0.0])


def test_soap_kernel_is_non_negative():
    """The largest distance is sqrt(2): dot products of SOAP power spectra are >= 0, single components are not."""
    frames = []
    for k, (a, rattle) in enumerate([(5.6, 0.01), (4.6, 0.3), (6.4, 0.6), (5.0, 0.9)]):
        atoms = bulk('NaCl', 'rocksalt', a=a, cubic=True)
        atoms.rattle(rattle, seed=k)
        frames.append(atoms)
    for soap in ({'r_cut': 4.0, 'n_max': 3, 'l_max': 2}, {'r_cut': 5.0, 'n_max': 6, 'l_max': 4}):
        vectors = np.concatenate(atomic_soap(frames, soap, ['Cl', 'Na']))
        assert vectors.min() < 0  # the (n != n') channels can be negative...
        assert (vectors @ vectors.T).min() >= 0  # ...but not the kernel: distances stay <= sqrt(2)


def test_reference_environments():
    """Sub-sampled environments, leave-one-frame-out scores, and the distance of an atom with no environment."""
    frames = [bulk('NaCl', 'rocksalt', a=5.6, cubic=True) for _ in range(3)]
    for k, atoms in enumerate(frames):
        atoms.rattle(0.1, seed=k)
    reference = ReferenceEnvironments(frames, SOAP, species=['K'])
    assert reference.species == ['Cl', 'K', 'Na'] and reference.n_environments == 24
    assert ReferenceEnvironments(frames, SOAP, max_environments=10, seed=1).n_environments == 10
    np.testing.assert_allclose(reference.per_atom(frames[0]), 0.0, atol=1e-6)  # its own environments
    scores = reference.leave_one_out()
    assert scores.shape == (3,) and np.all(scores > 1e-3)
    single = ReferenceEnvironments(frames[:1], SOAP)
    assert single.leave_one_out()[0] == MAX_DISTANCE  # no other frame: nothing to compare with
    potassium = frames[0].copy()
    potassium.symbols[0] = 'K'
    assert reference.per_atom(potassium)[0] == MAX_DISTANCE
    with pytest.raises(ValueError, match='not'):
        single.features([potassium])
    with pytest.raises(ValueError, match='empty'):
        ReferenceEnvironments([], SOAP)
