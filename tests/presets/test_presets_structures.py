"""Tests of the classical-potential presets and of the random-box builder."""

from __future__ import annotations

import numpy as np
import pytest
from ase import units
from ase.data import atomic_masses, atomic_numbers

from aiida_mlpot.common.units import KCAL_PER_MOL_TO_EV, density_g_cm3
from aiida_mlpot.presets import TOSI_FUMI_NACL, argon_lj, nacl_tosi_fumi
from aiida_mlpot.structures import random_box


def test_tosi_fumi_d_is_passed_negative():
    """LAMMPS `born` adds +D/r^8; the physical dipole-quadrupole term is attractive, so D goes in negative."""
    potential = nacl_tosi_fumi()
    for line in potential['pair_coeff']:
        first, second, a, rho, sigma, c, d = line.split()
        reference = TOSI_FUMI_NACL.get((first, second)) or TOSI_FUMI_NACL[(second, first)]
        assert float(d) == -reference['D'] < 0
        assert (float(a), float(rho), float(sigma), float(c)) == (
            reference['A'],
            0.317,
            0.0,
            reference['C'],
        )
    assert potential['charges'] == {'Na': 1.0, 'Cl': -1.0}


@pytest.mark.parametrize(
    ('long_range', 'pair_style', 'kspace'),
    [
        ('ewald', 'born/coul/long', 'ewald'),
        ('pppm', 'born/coul/long', 'pppm'),
        ('wolf', 'born/coul/wolf', None),
    ],
)
def test_tosi_fumi_long_range(long_range, pair_style, kspace):
    potential = nacl_tosi_fumi(long_range)
    assert potential['pair_style'].startswith(pair_style)
    assert (potential.get('kspace_style') or '').startswith(kspace or '')
    if kspace is None:
        assert 'kspace_style' not in potential


def test_tosi_fumi_unknown_long_range():
    with pytest.raises(ValueError, match='long_range'):
        nacl_tosi_fumi('reaction-field')


def test_argon():
    potential = argon_lj()
    _, _, epsilon, sigma = potential['pair_coeff'][0].split()
    # 0.2381 kcal/mol is Rahman's ε/k_B = 119.8 K: both conversions from ase.units agree
    assert float(epsilon) == pytest.approx(0.2381 * KCAL_PER_MOL_TO_EV)
    assert float(epsilon) == pytest.approx(0.2381 * units.kcal / units.mol, rel=1e-9)
    assert float(epsilon) == pytest.approx(119.8 * units.kB, rel=2e-4)
    assert float(sigma) == 3.405
    assert 'charges' not in potential


def test_random_box():
    atoms = random_box({'Na': 32, 'Cl': 32}, density=1.3, min_distance=2.2, seed=0)
    assert len(atoms) == 64 and atoms.get_chemical_symbols().count('Cl') == 32
    assert all(atoms.pbc)
    # 32 NaCl formula units at 1.3 g/cm³ (about 2388.7 Å^3, L = 13.37 Å), from ASE's masses and the CODATA amu
    mass_g = (
        32 * (atomic_masses[atomic_numbers['Na']] + atomic_masses[atomic_numbers['Cl']]) * units._amu * 1e3
    )
    assert atoms.get_volume() == pytest.approx(mass_g / 1.3 * 1e24, rel=1e-8)  # 1 g/mol / N_A vs amu: 3e-10
    assert density_g_cm3(atoms.get_masses(), atoms.get_volume()) == pytest.approx(1.3)
    distances = atoms.get_all_distances(mic=True)
    assert distances[np.triu_indices(64, 1)].min() >= 2.2
    again = random_box({'Na': 32, 'Cl': 32}, density=1.3, min_distance=2.2, seed=0)
    np.testing.assert_array_equal(atoms.positions, again.positions)
    other = random_box({'Na': 32, 'Cl': 32}, density=1.3, min_distance=2.2, seed=1)
    assert not np.allclose(atoms.positions, other.positions)


@pytest.mark.parametrize(
    ('kwargs', 'match'),
    [
        ({'composition': {}, 'density': 1.0}, 'composition'),
        ({'composition': {'Xx': 2}, 'density': 1.0}, 'unknown element'),
        ({'composition': {'Na': 2}, 'density': 0.0}, 'density'),
        ({'composition': {'Na': 64}, 'density': 5.0, 'min_distance': 4.0}, 'could not place'),
    ],
)
def test_random_box_errors(kwargs, match):
    with pytest.raises(ValueError, match=match):
        random_box(**kwargs)
