"""Classical potentials: the classical-potential dictionary and its translation into LAMMPS input."""

from .classical import is_coulombic, potential_lines, species_order, validate_potential

__all__ = ('is_coulombic', 'potential_lines', 'species_order', 'validate_potential')
