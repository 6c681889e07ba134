"""Reference energies of the NaCl preset derived independently of LAMMPS (numpy + ASE): an Ewald sum of the
point charges and a direct sum of the Born-Mayer-Huggins (Tosi-Fumi) pair terms.

Used by the tests instead of quoting figures: the 0 K rock-salt energy of the model (≈ -8.06 eV per NaCl pair
at a = 5.621 Å with the preset's 9 Å cutoff) is what :func:`rocksalt_energy_per_pair` returns, and the
rock-salt Madelung constant (1.747565) is what :func:`ewald_energy` gives for the ideal crystal.
"""

from __future__ import annotations

import itertools
import math

import numpy as np
from ase import Atoms, units
from ase.build import bulk
from ase.neighborlist import neighbor_list
from scipy.special import erfc

from aiida_mlpot.presets import TOSI_FUMI_NACL

#: e²/(4πε₀) in eV·Å (LAMMPS metal units use 14.399645).
COULOMB_CONSTANT = units.Hartree * units.Bohr
CHARGES = {'Na': 1.0, 'Cl': -1.0}


def ewald_energy(atoms: Atoms, charges: dict[str, float] = CHARGES, alpha: float = 0.6) -> float:
    """Return the Coulomb energy (eV) of point charges in a periodic orthorhombic cell by an Ewald sum.

    Converged to far below 1e-8 eV for cells of a few Å: real-space images to erfc(α r) < 1e-16, reciprocal
    vectors to exp(-k²/4α²) < 1e-16.
    """
    q = np.array([charges[symbol] for symbol in atoms.get_chemical_symbols()])
    cell = atoms.cell.array
    if not np.allclose(cell, np.diag(np.diag(cell))):
        raise ValueError('ewald_energy handles orthorhombic cells only')
    lengths = np.diag(cell)
    volume = float(np.prod(lengths))
    positions = atoms.positions
    r_cut = 6.2 / alpha  # erfc(6.2) < 1e-17
    k_cut = 2.0 * alpha * 6.2  # exp(-(k/2α)²) < 1e-16

    real = 0.0
    images = [range(-math.ceil(r_cut / length), math.ceil(r_cut / length) + 1) for length in lengths]
    for shift in itertools.product(*images):
        offset = np.array(shift) * lengths
        delta = positions[None, :, :] - positions[:, None, :] + offset
        distance = np.linalg.norm(delta, axis=-1)
        mask = (distance > 1e-12) & (distance < r_cut)
        real += 0.5 * np.sum(
            (q[:, None] * q[None, :] * erfc(alpha * distance) / np.where(mask, distance, 1.0))[mask]
        )

    reciprocal = 0.0
    n_max = [math.ceil(k_cut * length / (2 * math.pi)) for length in lengths]
    for n in itertools.product(*(range(-m, m + 1) for m in n_max)):
        if n == (0, 0, 0):
            continue
        k = 2 * math.pi * np.array(n) / lengths
        k2 = float(k @ k)
        if k2 > k_cut**2:
            continue
        structure_factor = np.sum(q * np.exp(1j * positions @ k))
        reciprocal += math.exp(-k2 / (4 * alpha**2)) / k2 * abs(structure_factor) ** 2
    reciprocal *= 2 * math.pi / volume

    self_term = -alpha / math.sqrt(math.pi) * float(np.sum(q**2))
    return COULOMB_CONSTANT * (real + reciprocal + self_term)


def born_energy(atoms: Atoms, cutoff: float) -> float:
    """Return the Tosi-Fumi short-range energy (eV): Σ A exp((σ - r)/ρ) - C/r⁶ - D/r⁸ over pairs within ``cutoff``.

    D is the physical (positive) value of :data:`aiida_mlpot.presets.TOSI_FUMI_NACL`: both dispersion terms
    attract. The sum is truncated at the cutoff without a shift, as LAMMPS' ``born/coul/long`` does.
    """
    first, second, distances = neighbor_list('ijd', atoms, cutoff)
    symbols = atoms.get_chemical_symbols()
    energy = 0.0
    for i, j, r in zip(first, second, distances, strict=True):
        pair = TOSI_FUMI_NACL.get((symbols[i], symbols[j])) or TOSI_FUMI_NACL[(symbols[j], symbols[i])]
        energy += (
            pair['A'] * math.exp((pair['sigma'] - r) / pair['rho']) - pair['C'] / r**6 - pair['D'] / r**8
        )
    return 0.5 * energy  # every pair was counted from both atoms


def rocksalt_energy_per_pair(lattice_constant: float, cutoff: float = 9.0) -> float:
    """Return the 0 K energy (eV per NaCl pair) of the rock-salt crystal of the Tosi-Fumi + Coulomb model."""
    crystal = bulk('NaCl', 'rocksalt', a=lattice_constant, cubic=True)
    return (ewald_energy(crystal) + born_energy(crystal, cutoff)) / (len(crystal) // 2)
