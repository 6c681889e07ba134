"""Tests of the pure CP2K text parser on outputs recorded from the real Debian cp2k.psmp 2023.1."""

import pathlib

import numpy as np
import pytest

from aiida_mlpot.common import units
from aiida_mlpot.parsers.parse_raw.cp2k import (
    parse_cp2k_single_point,
    parse_cp2k_stress,
    parse_energy,
    parse_forces,
    parse_scf,
)

FIXTURES = pathlib.Path(__file__).parent / 'fixtures'


def read(case: str, name: str) -> str:
    return (FIXTURES / case / name).read_text()


def test_energy_forces_stress_xtb():
    """GFN1-xTB single point of an 8-atom NaCl cell (a = 5.64 Å, two atoms displaced)."""
    output = read('xtb_8atoms', 'aiida.out')
    result = parse_cp2k_single_point(
        output,
        read('xtb_8atoms', 'aiida-forces-1_0.xyz'),
        read('xtb_8atoms', 'aiida-stress-1_0.stress_tensor'),
        volume=5.64**3,
    )
    assert result['energy'] == pytest.approx(-18.947689402948253 * units.HARTREE_TO_EV, rel=1e-12)
    forces = np.array(result['forces'])
    assert forces.shape == (8, 3)
    assert forces[0, 0] == pytest.approx(-0.01290218 * units.HARTREE_PER_BOHR_TO_EV_PER_ANGSTROM, rel=1e-9)
    assert np.abs(forces.sum(axis=0)).max() < 1e-6
    stress = np.array(result['stress'])
    # CP2K prints the pressure-like tensor; the ASE stress is its negative.
    assert stress[0, 0] == pytest.approx(35.7884887870 * units.GPA_TO_EV_PER_ANGSTROM3, rel=1e-9)
    assert np.allclose(stress, stress.T)
    virial = np.array(result['virial'])
    assert np.allclose(virial, -stress * 5.64**3)
    assert result['scf_converged'] is True
    assert result['scf_steps'] == [24]
    assert result['completed'] is True
    assert result['aborted'] is False
    assert result['cp2k_version'] == 'CP2K version 2023.1'


def test_blocks_only_in_print_files():
    """With FILENAME set, forces and stress go only to their files: they must be retrieved and parsed."""
    output = read('xtb_8atoms', 'aiida.out')
    assert parse_forces(output) is None
    assert parse_cp2k_stress(output) is None
    result = parse_cp2k_single_point(output, volume=5.64**3)
    assert result['forces'] is None
    assert result['virial'] is None


def test_scf_not_converged():
    """MAX_SCF 2: Debian CP2K exits 0 with only a warning; the parser must see it."""
    output = read('scf_not_converged', 'aiida.out')
    scf = parse_scf(output)
    assert scf['scf_converged'] is False
    assert scf['scf_not_converged_warnings'] == 1
    result = parse_cp2k_single_point(output)
    assert result['completed'] is True
    assert result['scf_converged'] is False
    assert any('SCF run NOT converged' in w for w in result['warnings'])


def test_missing_blocks():
    """An empty or truncated output yields None values, not an exception."""
    assert parse_energy('') is None
    assert parse_forces('nothing here') is None
    assert parse_cp2k_stress('') is None
    result = parse_cp2k_single_point('CP2K| version string:   CP2K version 2023.1\n')
    assert result['energy'] is None
    assert result['forces'] is None
    assert result['virial'] is None
    assert result['completed'] is False


def test_stress_in_bar():
    """A stress block printed in bar is converted with the bar factor."""
    text = (
        ' STRESS| Analytical stress tensor [bar]\n'
        ' STRESS|                        x                   y                   z\n'
        ' STRESS|      x        1.0E+03   0.0   0.0\n'
        ' STRESS|      y        0.0   2.0E+03   0.0\n'
        ' STRESS|      z        0.0   0.0   3.0E+03\n'
    )
    stress = parse_cp2k_stress(text)
    assert stress[2, 2] == pytest.approx(3.0e3 * units.BAR_TO_EV_PER_ANGSTROM3)
