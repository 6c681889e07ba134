"""The REMatch kernel (dscribe's Sinkhorn solve) and the reference set of the ML-MD ``rematch`` trigger."""

import numpy as np
import pytest
from ase.build import bulk
from dscribe.kernels import REMatchKernel

from aiida_mlpot.descriptors import (
    RematchReferences,
    atomic_soap,
    kernel_distance,
    rematch_kernel,
    similarity_of_distance,
)
from aiida_mlpot.descriptors.rematch import rematch_self_similarities

SOAP = {'r_cut': 4.0, 'n_max': 3, 'l_max': 2}


def rocksalt(a: float, rattle: float, seed: int, symbols: str = 'NaCl'):
    atoms = bulk(symbols, 'rocksalt', a=a, cubic=True)
    atoms.rattle(rattle, seed=seed)
    return atoms


@pytest.fixture(scope='module')
def clusters():
    """Three groups of 8-atom NaCl cells: near the crystal, compressed, strongly disordered (4 frames each)."""
    return [
        [rocksalt(5.64, 0.03, seed) for seed in range(4)],
        [rocksalt(4.9, 0.03, 10 + seed) for seed in range(4)],
        [rocksalt(5.64, 0.5, 20 + seed) for seed in range(4)],
    ]


def test_kernel_is_dscribe_rematch(clusters):
    """Our batching gives dscribe's REMatchKernel.create, also between cells of different sizes."""
    frames = [clusters[0][0], clusters[1][0], clusters[2][0], clusters[2][1].repeat((2, 1, 1))]
    features = atomic_soap(frames, SOAP, ['Cl', 'Na'])
    expected = REMatchKernel(alpha=0.1, threshold=1e-6, metric='linear').create(features[:3], features[1:])
    np.testing.assert_allclose(rematch_kernel(features[:3], features[1:]), expected, rtol=1e-10)
    selfs = rematch_self_similarities(features, 0.1, 1e-6)
    cached = rematch_kernel(features[:3], features[1:], self_a=selfs[:3], self_b=selfs[1:])
    np.testing.assert_allclose(cached, expected, rtol=1e-12)
    # a supercell has the environments of its cell: REMatch similarity 1 (sizes need not match)
    cell = atomic_soap([clusters[2][1], clusters[2][1].repeat((2, 1, 1))], SOAP, ['Cl', 'Na'])
    assert rematch_kernel(cell[:1], cell[1:])[0, 0] == pytest.approx(1.0, abs=1e-8)


def test_similarity_of_distance_inverts_kernel_distance():
    for k in (0.0, 0.5, 0.97, 1.0):
        assert similarity_of_distance(kernel_distance(k)) == pytest.approx(k)


def brute_force_fps(kernel: np.ndarray, first: int, n: int) -> list[int]:
    picks = [first]
    while len(picks) < n:
        nearest = kernel[:, picks].max(axis=1)
        nearest[picks] = np.inf
        picks.append(int(np.argmin(nearest)))
    return picks


def test_fps_subset_covers_each_group(clusters):
    frames = [atoms for group in clusters for atoms in group]
    references = RematchReferences(frames, SOAP, max_references=3, seed=5)
    assert references.n_references == 3 and references.n_training == 12 and references.selection == 'fps'
    assert sorted(index // 4 for index in references.indices) == [0, 1, 2]  # one frame of each group
    full = rematch_kernel(references.features)
    assert list(references.indices) == brute_force_fps(full, int(references.indices[0]), 3)
    np.testing.assert_allclose(references.training_kernel, full[:, references.indices], rtol=1e-12)
    # every group is represented: a new frame of any group is closer to a reference than to another group
    for group, probe in enumerate([rocksalt(5.64, 0.03, 99), rocksalt(4.9, 0.03, 98)]):
        similarities = references.similarities(probe)
        assert references.indices[np.argmax(similarities)] // 4 == group


def test_leave_one_out(clusters):
    frames = [atoms for group in clusters for atoms in group]
    everything = RematchReferences(frames, SOAP, max_references=None)
    assert everything.selection == 'all' and everything.n_references == 12
    full = rematch_kernel(everything.features)
    np.fill_diagonal(full, -np.inf)
    np.testing.assert_allclose(everything.leave_one_out(), full.max(axis=1), rtol=1e-12)
    # a frame's own similarity is 1 when it is a reference, never in its leave-one-out value
    assert everything.similarity(frames[3]) == pytest.approx(1.0)
    assert np.all(everything.leave_one_out()[8:] < 0.999)  # the disordered frames differ from each other

    subset = RematchReferences(frames, SOAP, max_references=4, seed=1)
    loo = subset.leave_one_out()
    kernel = rematch_kernel(subset.features)[:, subset.indices]
    for index in range(len(frames)):
        others = [k for k, reference in enumerate(subset.indices) if reference != index]
        assert loo[index] == pytest.approx(kernel[index, others].max(), rel=1e-12)
    # a duplicated frame is its twin's best match: similarity 1
    twins = RematchReferences([frames[0], frames[0].copy(), frames[5]], SOAP)
    assert twins.leave_one_out()[:2] == pytest.approx([1.0, 1.0])
    assert np.isnan(RematchReferences(frames[:1], SOAP).leave_one_out()[0])  # no other frame


def test_similarity_orders_frames(clusters):
    references = RematchReferences(clusters[0], SOAP, species=['K'])
    near = references.similarity(rocksalt(5.64, 0.03, 50))
    squeezed = references.similarity(rocksalt(5.64 * 0.8 ** (1 / 3), 0.03, 50))
    assert 0.0 < squeezed < near <= 1.0
    assert references.similarity(rocksalt(6.3, 0.03, 50, 'KCl')) == 0.0  # a species never trained on
    with pytest.raises(ValueError, match='at least one'):
        RematchReferences([], SOAP)
    with pytest.raises(ValueError, match='max_references'):
        RematchReferences(clusters[0], SOAP, max_references=0)
