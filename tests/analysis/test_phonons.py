"""Known-answer tests of the phonon frequencies (phonopy with an ASE calculator)."""

import numpy as np
import pytest
from ase import units
from ase.build import bulk
from ase.calculators.emt import EMT
from ase.calculators.lj import LennardJones

from aiida_mlpot.analysis.phonons import phonon_frequencies
from aiida_mlpot.common.units import GPA_TO_EV_PER_ANGSTROM3

SIGMA, EPSILON = 2.3, 0.4
A_LJ = np.sqrt(2) * 2 ** (1 / 6) * SIGMA
K_LJ = 72 * EPSILON / (2 ** (1 / 3) * SIGMA**2)  # V''(r0), eV/Å²
TO_THZ = units.second / 1e12 / (2 * np.pi)  # angular frequency in ASE units -> THz


def test_nearest_neighbour_fcc_dispersion_at_x():
    """Central springs k between nearest neighbours: at X, nu_T = sqrt(4k/m)/2pi (twice), nu_L = sqrt(8k/m)/2pi."""
    primitive = bulk('Ar', 'fcc', a=A_LJ)
    calculator = LennardJones(sigma=SIGMA, epsilon=EPSILON, rc=1.35 * SIGMA, smooth=False)
    result = phonon_frequencies(
        primitive, calculator, [[0, 0, 0], [0, 0.5, 0.5]], supercell=(3, 3, 3), mesh=(4, 4, 4)
    )
    mass = primitive.get_masses()[0]
    gamma, x_point = np.asarray(result['frequencies'])
    assert np.all(np.abs(gamma) < 1e-3)  # acoustic sum rule
    transverse, longitudinal = np.sqrt(4 * K_LJ / mass) * TO_THZ, np.sqrt(8 * K_LJ / mass) * TO_THZ
    assert x_point == pytest.approx([transverse, transverse, longitudinal], rel=1e-3)
    assert result['mesh_min_frequency'] == pytest.approx(0.0, abs=1e-3)  # the mesh holds Γ; no imaginary mode
    assert result['n_displacements'] == 1


def test_emt_copper_long_waves_travel_at_the_speed_of_sound():
    """Near Γ along [100], nu = v |q| / 2pi with v_L = sqrt(C11/rho), v_T = sqrt(C44/rho) (EMT: 172.5, 89.9 GPa)."""
    a0 = 3.5898
    primitive = bulk('Cu', 'fcc', a=a0)
    result = phonon_frequencies(primitive, EMT(), [[0, 0.05, 0.05]], supercell=(4, 4, 4))
    density = primitive.get_masses().sum() / primitive.get_volume()  # amu/Å³
    q = 0.1 * 2 * np.pi / a0  # (0, 0.05, 0.05) in the primitive basis is 0.1 X
    v_l = np.sqrt(172.5 * GPA_TO_EV_PER_ANGSTROM3 / density)
    v_t = np.sqrt(89.9 * GPA_TO_EV_PER_ANGSTROM3 / density)
    frequencies = np.asarray(result['frequencies'][0])
    # 0.3-0.5 % measured: the dispersion at 0.1 X and the 4x4x4 force-constant range
    assert frequencies == pytest.approx([v_t * q * TO_THZ, v_t * q * TO_THZ, v_l * q * TO_THZ], rel=0.01)


def test_conventional_cell_is_taken_as_given():
    """The cubic cell is not reduced to the primitive one: 12 modes, q in the cubic reciprocal basis."""
    cubic = bulk('Ar', 'fcc', a=A_LJ, cubic=True)
    calculator = LennardJones(sigma=SIGMA, epsilon=EPSILON, rc=1.35 * SIGMA, smooth=False)
    result = phonon_frequencies(cubic, calculator, [[0, 0, 0]], supercell=(2, 2, 2))
    frequencies = np.sort(result['frequencies'][0])
    assert len(frequencies) == 12
    # Γ of the cubic cell holds Γ and the three X points of the primitive one: 3 zeros, 6 transverse, 3 longitudinal
    mass = cubic.get_masses()[0]
    assert frequencies[:3] == pytest.approx([0, 0, 0], abs=1e-3)
    assert frequencies[3:9] == pytest.approx([np.sqrt(4 * K_LJ / mass) * TO_THZ] * 6, rel=1e-3)
    assert frequencies[9:] == pytest.approx([np.sqrt(8 * K_LJ / mass) * TO_THZ] * 3, rel=1e-3)
