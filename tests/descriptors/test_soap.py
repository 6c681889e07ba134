"""SOAP features via dscribe."""

import numpy as np
import pytest
from ase.build import bulk

from aiida_mlpot.descriptors import DEFAULT_SOAP, atomic_soap, average_soap, make_soap, species_of

SOAP = {'r_cut': 4.5, 'n_max': 4, 'l_max': 3}


@pytest.mark.e2e
def test_average_and_atomic_shapes_unit_norm(nacl_reference_frames):
    frames = nacl_reference_frames[:5]
    averaged = average_soap(frames, SOAP)
    atomic = atomic_soap(frames, SOAP)
    assert averaged.shape[0] == 5
    assert len(atomic) == 5
    assert atomic[0].shape == (64, averaged.shape[1])
    np.testing.assert_allclose(np.linalg.norm(averaged, axis=1), 1.0)
    np.testing.assert_allclose(np.linalg.norm(atomic[2], axis=1), 1.0)
    assert atomic_soap(frames[:1], SOAP)[0].shape == (64, averaged.shape[1])


@pytest.mark.e2e
def test_crystal_environments_identical_and_distinct_from_melt(nacl_reference_frames):
    crystal = bulk('NaCl', 'rocksalt', a=5.8, cubic=True).repeat((2, 2, 2))
    (features,) = atomic_soap([crystal], SOAP)
    na = features[crystal.numbers == 11]
    np.testing.assert_allclose(na, np.broadcast_to(na[0], na.shape), atol=1e-10)
    melt = average_soap(nacl_reference_frames[:3], SOAP, species=['Cl', 'Na'])
    crystal_avg = average_soap([crystal], SOAP, species=['Cl', 'Na'])
    melt_spread = np.linalg.norm(melt[0] - melt[1])
    assert np.linalg.norm(crystal_avg[0] - melt[0]) > 3 * melt_spread


def test_settings():
    assert species_of([bulk('NaCl', 'rocksalt', a=5.6)], [bulk('Ar', 'fcc', a=5.2)]) == ['Ar', 'Cl', 'Na']
    assert (
        make_soap(['Na', 'Cl']).get_number_of_features()
        == make_soap(['Na', 'Cl'], DEFAULT_SOAP).get_number_of_features()
    )
    with pytest.raises(ValueError, match='unknown SOAP settings'):
        make_soap(['Na'], {'cutoff': 5})
    with pytest.raises(ValueError, match='no configurations'):
        average_soap([])
