"""Classical-potential presets: plain functions returning the classical-potential dictionary.

The dictionary format is documented in :mod:`aiida_mlpot.potentials.classical`. All presets use LAMMPS
``metal`` units (eV, Å, ps, bar).

Sources
-------
* Molten NaCl, Born-Mayer-Huggins / Tosi-Fumi: M. P. Tosi and F. G. Fumi, J. Phys. Chem. Solids 25, 45
  (1964); the parameter set in eV and Å as used for molten-salt simulations (e.g. by the study that this
  package automates): ρ = 0.317 Å, σ = 0,
  Na-Na A = 424.097 eV, C = 1.05 eV·Å⁶, D = 0.499 eV·Å⁸; Na-Cl A = 1256.31 eV, C = 7.0, D = 8.676;
  Cl-Cl A = 3488.998 eV, C = 72.5, D = 145.427; formal charges ±1.
* Liquid argon, Lennard-Jones: ε = 0.2381 kcal/mol (= 119.8 K · k_B), σ = 3.405 Å (Rahman, Phys. Rev. 136,
  A405 (1964)).

Sign of the Tosi-Fumi ``D`` term
--------------------------------
The Tosi-Fumi potential is ``V(r) = A exp((σ - r)/ρ) - C/r⁶ - D/r⁸``: both dispersion terms, dipole-dipole
(C) and dipole-quadrupole (D), are attractive. LAMMPS' ``born`` pair style computes
``A exp((σ - r)/ρ) - C/r⁶ + D/r⁸``, so the attractive D/r⁸ term must be passed with a NEGATIVE D. Passing the
tabulated positive D gives a softer, wrongly repulsive r⁻⁸ term and a molten salt that is too light.
"""

from __future__ import annotations

from aiida_mlpot.common.units import KCAL_PER_MOL_TO_EV

__all__ = ('argon_lj', 'nacl_tosi_fumi')

#: Tosi-Fumi parameters (A in eV, ρ and σ in Å, C in eV·Å⁶, D in eV·Å⁸), D with its PHYSICAL (positive) value.
TOSI_FUMI_NACL: dict[tuple[str, str], dict[str, float]] = {
    ('Na', 'Na'): {'A': 424.097, 'rho': 0.317, 'sigma': 0.0, 'C': 1.05, 'D': 0.499},
    ('Na', 'Cl'): {'A': 1256.31, 'rho': 0.317, 'sigma': 0.0, 'C': 7.0, 'D': 8.676},
    ('Cl', 'Cl'): {'A': 3488.998, 'rho': 0.317, 'sigma': 0.0, 'C': 72.5, 'D': 145.427},
}

_LONG_RANGE_CHOICES = ('ewald', 'pppm', 'wolf')


def nacl_tosi_fumi(
    long_range: str = 'ewald',
    cutoff: float = 9.0,
    kspace_accuracy: float = 1.0e-6,
    wolf_alpha: float = 0.2,
) -> dict:
    """Return the Tosi-Fumi (Born-Mayer-Huggins) potential of NaCl with Coulomb interactions.

    :param long_range: ``'ewald'`` or ``'pppm'`` (``born/coul/long`` plus the kspace solver; use these for
        reference labels) or ``'wolf'`` (``born/coul/wolf``, damped shifted real-space sum; about 0.08 eV/Å
        off in forces and a few percent low in density compared with Ewald).
    :param cutoff: real-space cutoff in Å of the short-range and the real-space Coulomb part (LAMMPS
        includes periodic images, so it may exceed half the cell height of a small box).
    :param kspace_accuracy: relative force accuracy of Ewald / PPPM.
    :param wolf_alpha: damping parameter (1/Å) of the Wolf sum.
    :return: the classical-potential dictionary (see :mod:`aiida_mlpot.potentials.classical`).
    """
    if long_range not in _LONG_RANGE_CHOICES:
        raise ValueError(f'long_range must be one of {_LONG_RANGE_CHOICES}, got {long_range!r}')

    pair_coeff = []
    for (first, second), par in TOSI_FUMI_NACL.items():
        # LAMMPS born adds +D/r^8; the physical term is attractive, so D is passed negative.
        pair_coeff.append(f'{first} {second} {par["A"]} {par["rho"]} {par["sigma"]} {par["C"]} {-par["D"]}')

    potential = {
        'units': 'metal',
        'pair_coeff': pair_coeff,
        'charges': {'Na': 1.0, 'Cl': -1.0},
        'description': f'NaCl Tosi-Fumi (Born-Mayer-Huggins) + Coulomb ({long_range}), D passed negative',
        'references': ['M. P. Tosi and F. G. Fumi, J. Phys. Chem. Solids 25, 45 (1964)'],
    }
    if long_range == 'wolf':
        potential['pair_style'] = f'born/coul/wolf {wolf_alpha} {cutoff}'
    else:
        potential['pair_style'] = f'born/coul/long {cutoff}'
        potential['kspace_style'] = f'{long_range} {kspace_accuracy:g}'
    return potential


def argon_lj(cutoff: float = 8.5, epsilon_kcal_mol: float = 0.2381, sigma: float = 3.405) -> dict:
    """Return the Lennard-Jones potential of liquid argon (ε = 0.2381 kcal/mol, σ = 3.405 Å).

    :param cutoff: cutoff in Å (2.5 σ ≈ 8.5 Å); energies are shifted to zero at the cutoff.
    :return: the classical-potential dictionary (see :mod:`aiida_mlpot.potentials.classical`).
    """
    epsilon = epsilon_kcal_mol * KCAL_PER_MOL_TO_EV
    return {
        'units': 'metal',
        'pair_style': f'lj/cut {cutoff}',
        'pair_coeff': [f'Ar Ar {epsilon:.10g} {sigma}'],
        'special': ['pair_modify shift yes'],
        'description': f'liquid argon, Lennard-Jones eps={epsilon_kcal_mol} kcal/mol sigma={sigma} A',
        'references': ['A. Rahman, Phys. Rev. 136, A405 (1964)'],
    }
