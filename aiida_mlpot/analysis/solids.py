"""Crystal properties of a potential: equation of state, elastic constants, surface and vacancy energies. Pure.

Every function takes ASE ``Atoms`` and an ASE calculator, so that the same code measures a GAP (quippy's
``Potential``), a LAMMPS teacher (``ase.calculators.lammpslib`` / ``LAMMPS``) or a DFT oracle on small cells;
nothing here is specific to one of them. The calculator must give energies, forces and (for the cell relaxation
and the elastic constants) the stress.

Libraries: ASE for the equation of state (:class:`ase.eos.EquationOfState`, Birch-Murnaghan by default), the
structure builders (:func:`ase.build.surface`) and the relaxations (:class:`ase.filters.FrechetCellFilter`,
:class:`ase.optimize.BFGS`); matscipy (:func:`matscipy.elasticity.fit_elastic_constants`) for the elastic
constants by finite strain, with the internal coordinates relaxed at each strain. Phonons are in
:mod:`aiida_mlpot.analysis.phonons` (phonopy).

Units: eV, Å, eV/Å³ inside; GPa and J/m² only in the keys that say so (``*_gpa``, ``*_j_m2``), converted by
:mod:`aiida_mlpot.common.units`.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from ase import Atoms
from ase.build import surface
from ase.calculators.calculator import Calculator
from ase.eos import EquationOfState
from ase.filters import FrechetCellFilter
from ase.optimize import BFGS, FIRE

from aiida_mlpot.common.units import EV_PER_ANGSTROM2_TO_J_PER_M2, GPA_TO_EV_PER_ANGSTROM3

__all__ = (
    'elastic_constants',
    'equation_of_state',
    'relax_structure',
    'surface_energy',
    'vacancy_formation_energy',
)

MAX_STEPS = 500


def _with_calculator(atoms: Atoms, calculator: Calculator) -> Atoms:
    copy = atoms.copy()
    copy.calc = calculator
    return copy


def relax_structure(
    atoms: Atoms, calculator: Calculator, fmax: float = 1e-3, cell: bool = True, steps: int = MAX_STEPS
) -> Atoms:
    """Return a copy of ``atoms`` relaxed with ``calculator`` (positions, and the cell if ``cell``).

    The cell is relaxed with ASE's Frechet cell filter (the cell shape and volume follow the stress, at zero
    pressure). ``fmax`` is in eV/Å (and the filter's equivalent for the cell). The copy keeps the calculator.

    :raises RuntimeError: if the relaxation does not converge within ``steps``.
    """
    relaxed = _with_calculator(atoms, calculator)
    target = FrechetCellFilter(relaxed) if cell else relaxed
    if not BFGS(target, logfile=None).run(fmax=fmax, steps=steps):
        raise RuntimeError(f'the relaxation did not reach fmax={fmax} eV/Å in {steps} steps')
    return relaxed


def equation_of_state(
    atoms: Atoms,
    calculator: Calculator,
    strain: float = 0.03,
    n_points: int = 9,
    eos: str = 'birchmurnaghan',
    relax_positions: bool = False,
    fmax: float = 1e-3,
) -> dict:
    """Return the equilibrium volume, energy, lattice lengths and bulk modulus from an E(V) fit.

    The cell of ``atoms`` is scaled isotropically to ``n_points`` volumes between (1 - strain)³ and (1 + strain)³
    times its own (linear strain ±``strain``), the energies fitted with ASE's ``eos`` form.

    :param relax_positions: relax the internal coordinates at every volume (needed for crystals with internal
        degrees of freedom; fcc and rocksalt have none).
    :returns: ``{'volume', 'volume_per_atom' (Å³), 'energy', 'energy_per_atom' (eV), 'bulk_modulus' (eV/Å³),
        'bulk_modulus_gpa', 'cell_lengths' (Å, the input cell's a, b, c scaled to the equilibrium volume),
        'scale' (equilibrium / input linear scale), 'volumes', 'energies'}``.
    :raises ValueError: if the minimum is not inside the scanned volumes (scan again around a better cell).
    """
    if n_points < 5:
        raise ValueError(f'an equation of state fit needs at least 5 points, got n_points={n_points}')
    volumes, energies = [], []
    for scale in np.linspace(1.0 - strain, 1.0 + strain, n_points):
        strained = _with_calculator(atoms, calculator)
        strained.set_cell(atoms.cell * scale, scale_atoms=True)
        if relax_positions:
            strained = relax_structure(strained, calculator, fmax=fmax, cell=False)
        volumes.append(strained.get_volume())
        energies.append(strained.get_potential_energy())
    fit = EquationOfState(volumes, energies, eos=eos)
    v0, e0, b0 = fit.fit()
    if not min(volumes) < v0 < max(volumes):
        raise ValueError(
            f'the energy minimum (V={v0:.3f} Å³) lies outside the scanned volumes '
            f'[{min(volumes):.3f}, {max(volumes):.3f}] Å³: relax the cell first or widen strain={strain}'
        )
    scale = float((v0 / atoms.get_volume()) ** (1.0 / 3.0))
    n_atoms = len(atoms)
    return {
        'volume': float(v0),
        'volume_per_atom': float(v0) / n_atoms,
        'energy': float(e0),
        'energy_per_atom': float(e0) / n_atoms,
        'bulk_modulus': float(b0),
        'bulk_modulus_gpa': float(b0) / GPA_TO_EV_PER_ANGSTROM3,
        'cell_lengths': [float(x) * scale for x in atoms.cell.lengths()],
        'scale': scale,
        'volumes': [float(v) for v in volumes],
        'energies': [float(e) for e in energies],
    }


def elastic_constants(
    atoms: Atoms,
    calculator: Calculator,
    symmetry: str = 'cubic',
    delta: float = 0.005,
    n_steps: int = 5,
    relax_positions: bool = True,
    fmax: float = 1e-4,
) -> dict:
    """Return the elastic constants of a relaxed crystal by finite strain (matscipy), with internal relaxation.

    ``atoms`` must already be relaxed (cell and positions, e.g. by :func:`relax_structure`): the constants are
    the slopes of stress against strain for ``n_steps`` strains spaced by ``delta`` around it. With
    ``relax_positions`` the atoms are relaxed (FIRE, ``fmax`` eV/Å) at every strain: the relaxed-ion constants,
    which differ from the clamped-ion ones in crystals whose atoms are not all centres of inversion.

    :param symmetry: matscipy's strain patterns: ``'cubic'`` (C11, C12, C44 from 2 patterns) or ``'triclinic'``
        (all 21, 6 patterns), or another of :data:`matscipy.elasticity.strain_patterns`.
    :returns: ``{'C' (6x6, GPa, Voigt), 'C_err' (6x6, GPa, from the regression), 'C11', 'C12', 'C44',
        'bulk_modulus_gpa' ((C11 + 2 C12) / 3, cubic Voigt average)}``; C11, C12 and C44 are the means over the
        cubic-equivalent entries (C11 of C11, C22, C33, and so on).
    """
    from matscipy.elasticity import fit_elastic_constants

    strained = _with_calculator(atoms, calculator)
    strained.set_constraint()
    kwargs = {'fmax': fmax, 'steps': MAX_STEPS} if relax_positions else {}
    c, c_err = fit_elastic_constants(
        strained,
        symmetry=symmetry,
        N_steps=n_steps,
        delta=delta,
        optimizer=FIRE if relax_positions else None,
        verbose=False,
        graphics=False,
        **kwargs,
    )
    c_gpa = np.asarray(c) / GPA_TO_EV_PER_ANGSTROM3
    c11 = float(np.mean([c_gpa[i, i] for i in range(3)]))
    c12 = float(np.mean([c_gpa[0, 1], c_gpa[0, 2], c_gpa[1, 2]]))
    c44 = float(np.mean([c_gpa[i, i] for i in range(3, 6)]))
    return {
        'C': c_gpa.tolist(),
        'C_err': (np.asarray(c_err) / GPA_TO_EV_PER_ANGSTROM3).tolist(),
        'C11': c11,
        'C12': c12,
        'C44': c44,
        'bulk_modulus_gpa': (c11 + 2.0 * c12) / 3.0,
    }


def surface_energy(
    bulk: Atoms,
    calculator: Calculator,
    miller: Sequence[int],
    layers: int = 6,
    vacuum: float = 10.0,
    relax: bool = True,
    fmax: float = 1e-3,
) -> dict:
    """Return the energy of the ``miller`` surface of a relaxed ``bulk`` crystal: (E_slab - N ε_bulk) / (2 A).

    ``miller`` refers to the cell of ``bulk`` as given (for fcc, pass the cubic cell to use the usual indices).
    The slab is ASE's :func:`ase.build.surface` of ``bulk`` (``layers`` repeats of the bulk cell along the
    normal, ``vacuum`` Å on each side; periodic in all three directions, the vacuum separating the images), so
    both faces are the same termination (checked: same number of atoms in the bottom and top planes); ε_bulk
    is the energy per atom of ``bulk`` with the same calculator. With ``relax`` the slab's positions are
    relaxed (cell fixed) and both the unrelaxed and the relaxed energies are given. Converge ``layers`` and
    ``vacuum`` for the potential at hand (a GAP's cutoff sets how thick the slab must be).

    :returns: ``{'miller', 'n_atoms', 'area' (Å², one face), 'unrelaxed' and, with relax, 'relaxed': {'energy'
        (eV/Å²), 'energy_j_m2'}}``.
    """
    bulk_atoms = _with_calculator(bulk, calculator)
    energy_per_atom = bulk_atoms.get_potential_energy() / len(bulk_atoms)
    # atom 0 at the origin: a relaxed bulk may have drifted by a rigid translation, and ASE's cut by fractional
    # coordinates would then wrap part of a plane to the other face (a rough, wrong termination)
    origin = bulk.copy()
    scaled = origin.get_scaled_positions(wrap=False)
    origin.set_scaled_positions(np.mod(np.round(scaled - scaled[0], 8), 1.0))
    # periodic=False, then pbc set: with periodic=True ASE wraps the normal coordinate, and an atom at -1e-17
    # of the bottom plane lands on top (seen for EMT Cu at a = 3.58982633 Å, (111): planes of 3, 4, 4, 4, 1)
    slab = surface(origin, tuple(int(i) for i in miller), layers, vacuum=vacuum, periodic=False)
    slab.pbc = True
    heights = np.round(slab.positions[:, 2] - slab.positions[:, 2].min(), 3)
    if np.count_nonzero(heights == heights.min()) != np.count_nonzero(heights == heights.max()):
        raise RuntimeError(
            f'the {tuple(miller)} slab has different bottom and top planes; check the bulk cell'
        )
    slab.calc = calculator
    cell = np.asarray(slab.cell[:])
    area = float(np.linalg.norm(np.cross(cell[0], cell[1])))

    def gamma(atoms: Atoms) -> dict:
        value = (atoms.get_potential_energy() - len(atoms) * energy_per_atom) / (2.0 * area)
        return {'energy': float(value), 'energy_j_m2': float(value) * EV_PER_ANGSTROM2_TO_J_PER_M2}

    result = {
        'miller': [int(i) for i in miller],
        'n_atoms': len(slab),
        'area': area,
        'unrelaxed': gamma(slab),
    }
    if relax:
        result['relaxed'] = gamma(relax_structure(slab, calculator, fmax=fmax, cell=False))
    return result


def vacancy_formation_energy(
    bulk: Atoms,
    calculator: Calculator,
    supercell: Sequence[int] = (3, 3, 3),
    index: int = 0,
    relax: bool = True,
    fmax: float = 1e-3,
) -> dict:
    """Return the vacancy formation energy E(N-1) - (N-1)/N E(N) in a ``supercell`` of a relaxed ``bulk``.

    Constant volume (the supercell of the perfect crystal); with ``relax`` the atoms around the vacancy relax.

    :returns: ``{'n_atoms' (of the perfect supercell), 'unrelaxed' (eV), 'relaxed' (eV, with relax)}``.
    """
    perfect = _with_calculator(bulk.repeat(tuple(int(n) for n in supercell)), calculator)
    n_atoms = len(perfect)
    energy_perfect = perfect.get_potential_energy()
    defect = perfect.copy()
    del defect[index]
    defect.calc = calculator
    result = {
        'n_atoms': n_atoms,
        'unrelaxed': float(defect.get_potential_energy() - (n_atoms - 1) / n_atoms * energy_perfect),
    }
    if relax:
        relaxed = relax_structure(defect, calculator, fmax=fmax, cell=False)
        result['relaxed'] = float(relaxed.get_potential_energy() - (n_atoms - 1) / n_atoms * energy_perfect)
    return result
