"""Units and sign conventions of aiida-mlpot, in one place.

Everything stored by this package is in eV, Å, eV/Å; the virial is a 3x3 tensor in eV with the
extended-XYZ / gap_fit convention ``virial = -stress * volume`` (stress in eV/Å³, positive when
the system pulls inwards, i.e. the virial is positive for a system under compression).
All conversion factors derive from :mod:`ase.units` (CODATA 2014 as ASE uses it).
"""

from __future__ import annotations

import numpy as np
from ase import units as _u

#: 1 Hartree in eV.
HARTREE_TO_EV: float = _u.Hartree
#: 1 Bohr in Å.
BOHR_TO_ANGSTROM: float = _u.Bohr
#: Hartree/Bohr to eV/Å (forces).
HARTREE_PER_BOHR_TO_EV_PER_ANGSTROM: float = _u.Hartree / _u.Bohr
#: 1 bar in eV/Å³.
BAR_TO_EV_PER_ANGSTROM3: float = _u.bar
#: 1 GPa in eV/Å³.
GPA_TO_EV_PER_ANGSTROM3: float = _u.GPa
#: 1 kcal/mol in eV.
KCAL_PER_MOL_TO_EV: float = _u.kcal / _u.mol
#: 1 atomic mass unit in g.
AMU_TO_GRAM: float = 1.0 / _u.mol  # 1 g/mol / N_A
#: 1 Å³ in cm³.
ANGSTROM3_TO_CM3: float = 1.0e-24
#: 1 eV/Å² (surface energy) in J/m².
EV_PER_ANGSTROM2_TO_J_PER_M2: float = _u.m**2 / _u.J
#: 1 Å²/ps (diffusion coefficient) in cm²/s.
ANGSTROM2_PER_PS_TO_CM2_PER_S: float = 1.0e-4
#: 1 fs in ASE time units.
FS_TO_ASE_TIME: float = _u.fs
#: Boltzmann constant in eV/K.
KB_EV_PER_K: float = _u.kB


def stress_to_virial(stress: np.ndarray, volume: float) -> np.ndarray:
    """Return the virial (eV, 3x3) of a stress tensor (eV/Å³, 3x3 or Voigt 6) in a cell of ``volume`` Å³."""
    return -np.asarray(full_3x3(stress)) * float(volume)


def virial_to_stress(virial: np.ndarray, volume: float) -> np.ndarray:
    """Return the stress (eV/Å³, 3x3) of a virial tensor (eV, 3x3 or 9 values) in a cell of ``volume`` Å³."""
    return -np.asarray(full_3x3(virial)) / float(volume)


def pressure_bar_to_virial(pressure_tensor_bar: np.ndarray, volume: float) -> np.ndarray:
    """Return the virial (eV) of a LAMMPS virial-only pressure tensor (bar, metal units) in ``volume`` Å³.

    LAMMPS' ``compute pressure NULL virial`` gives P_ab = W_ab / V, with W the virial and a positive
    pressure for a compressed system; so W (eV) = P (bar) * V (Å³) * (eV/Å³ per bar).
    """
    return np.asarray(full_3x3(pressure_tensor_bar)) * float(volume) * BAR_TO_EV_PER_ANGSTROM3


def full_3x3(tensor: np.ndarray) -> np.ndarray:
    """Return a symmetric 3x3 tensor from a 3x3, a flat 9 or a Voigt-6 (xx, yy, zz, yz, xz, xy) array."""
    arr = np.asarray(tensor, dtype=float)
    if arr.shape == (3, 3):
        return arr
    if arr.shape == (9,):
        return arr.reshape(3, 3)
    if arr.shape == (6,):
        xx, yy, zz, yz, xz, xy = arr
        return np.array([[xx, xy, xz], [xy, yy, yz], [xz, yz, zz]])
    raise ValueError(f'a tensor must have 3x3, 9 or 6 (Voigt) components, got shape {arr.shape}')


def density_g_cm3(masses_amu: np.ndarray, volume_angstrom3: float) -> float:
    """Return the mass density in g/cm³ of atoms with ``masses_amu`` in ``volume_angstrom3`` Å³."""
    return float(np.sum(masses_amu)) * AMU_TO_GRAM / (float(volume_angstrom3) * ANGSTROM3_TO_CM3)
