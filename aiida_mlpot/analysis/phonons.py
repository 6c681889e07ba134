"""Harmonic phonon frequencies of a crystal with any ASE calculator, through phonopy. Pure (no AiiDA).

phonopy (finite displacements in a supercell, force constants, dynamical matrix) does all the physics; this
module only converts between ASE and phonopy structures and evaluates the forces of the displaced supercells
with the given ASE calculator (a GAP, a LAMMPS teacher, or a DFT oracle on small cells).

Units: Å, eV, amu in; frequencies in THz (phonopy's unit with its default ASE-compatible factor); imaginary
modes are returned as negative frequencies (phonopy's convention).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from ase import Atoms
from ase.calculators.calculator import Calculator

__all__ = ('phonon_frequencies',)


def _to_phonopy(atoms: Atoms):
    from phonopy.structure.atoms import PhonopyAtoms

    return PhonopyAtoms(
        symbols=atoms.get_chemical_symbols(),
        cell=np.asarray(atoms.cell[:]),
        scaled_positions=atoms.get_scaled_positions(),
        masses=atoms.get_masses(),
    )


def phonon_frequencies(
    atoms: Atoms,
    calculator: Calculator,
    qpoints: Sequence[Sequence[float]],
    supercell: Sequence[int] = (3, 3, 3),
    displacement: float = 0.01,
    mesh: Sequence[int] | None = None,
) -> dict:
    """Return the phonon frequencies of a relaxed crystal at ``qpoints``, and optionally the lowest on a mesh.

    :param atoms: the relaxed unit cell (forces ~0; relax it first, e.g. with
        :func:`aiida_mlpot.analysis.solids.relax_structure`).
    :param qpoints: q-points in reduced coordinates of the reciprocal lattice of ``atoms``' cell (the cell as
        given is used as the primitive cell: a conventional cell gives its folded 3N modes).
    :param supercell: repetitions of the cell for the force constants; their range must fit in it.
    :param displacement: finite displacement (Å), phonopy's symmetry-reduced set.
    :param mesh: a Γ-centred q-point mesh (e.g. (8, 8, 8)) on which the lowest frequency is also reported: below about
        -0.1 THz the crystal is dynamically unstable with this potential.
    :returns: ``{'qpoints', 'frequencies' (THz, one row of 3N per q-point, ascending), 'n_displacements',
        'mesh_min_frequency' (THz, with mesh)}``.
    """
    from phonopy import Phonopy

    # primitive_matrix='P': the cell as given is the primitive cell, so q-points and modes refer to it (phonopy 4
    # would otherwise reduce a conventional cell to its primitive one and read q in that basis)
    phonon = Phonopy(
        _to_phonopy(atoms), supercell_matrix=np.diag([int(n) for n in supercell]), primitive_matrix='P'
    )
    phonon.generate_displacements(distance=float(displacement))
    forces = []
    for displaced in phonon.supercells_with_displacements:
        frame = Atoms(
            displaced.symbols,
            cell=displaced.cell,
            scaled_positions=displaced.scaled_positions,
            masses=displaced.masses,
            pbc=True,
        )
        frame.calc = calculator
        supercell_forces = frame.get_forces()
        forces.append(supercell_forces - supercell_forces.mean(axis=0))  # remove the net-force drift
    phonon.forces = np.array(forces)
    phonon.produce_force_constants()
    phonon.symmetrize_force_constants()
    qpoints = np.atleast_2d(np.asarray(qpoints, dtype=float))
    frequencies = np.array([phonon.get_frequencies(q) for q in qpoints])
    result = {
        'qpoints': qpoints.tolist(),
        'frequencies': frequencies.tolist(),
        'n_displacements': len(forces),
    }
    if mesh is not None:
        phonon.run_mesh([int(n) for n in mesh], is_gamma_center=True)
        result['mesh_min_frequency'] = float(np.min(phonon.get_mesh_dict()['frequencies']))
    return result
