"""`SolidPropertiesCalculation`: crystal properties of a GAP or of a LAMMPS teacher, computed on the compute node.

The calculation runs :mod:`aiida_mlpot.engines.solids` with the ``python`` code of the environment (command
line ``python -m aiida_mlpot.engines.solids input.json``): lattice constant and bulk modulus (equation of
state), C11, C12, C44 with internal relaxation, relaxed surface energies of low-index slabs, the relaxed vacancy
formation energy and phonon frequencies along a path (phonopy), with the ASE calculator of either the
``potential`` (a GAP, quippy) or the ``classical`` potential (ASE's ``LAMMPS`` calculator running the
``lammps_code`` executable, one process per evaluation). The
:class:`~aiida_mlpot.parsers.solids.SolidPropertiesParser` attaches the ``properties``.
"""

from __future__ import annotations

import io
import shlex

from aiida import orm
from aiida.common.datastructures import CalcInfo
from aiida.common.folders import Folder

from aiida_mlpot.calculations.driver import DriverCalculation
from aiida_mlpot.calculations.lammps import check_total_charge, validate_atoms, validate_potential_inputs
from aiida_mlpot.calculations.ports import code_validator, define_potential_ports, missing_code_message
from aiida_mlpot.data.extxyz import write_frames
from aiida_mlpot.data.potential import GapPotentialData
from aiida_mlpot.engines.solids import SETTINGS, normalise_settings

__all__ = ('SolidPropertiesCalculation', 'validate_inputs')


def validate_settings(node, _) -> str | None:
    """Unknown keys and malformed values of ``parameters`` are errors naming the key."""
    try:
        normalise_settings(node.get_dict())
    except (ValueError, TypeError) as exception:
        return f'`parameters`: {exception}'
    return None


def validate_inputs(inputs, _) -> str | None:
    """Exactly one of ``potential`` (a GAP) and ``classical`` (with ``lammps_code``); a sound 3D crystal."""
    message = missing_code_message(inputs, 'python')
    if message or 'structure' not in inputs:
        return message
    has_gap, has_classical = 'potential' in inputs, 'classical' in inputs
    if has_gap == has_classical:
        return 'give exactly one of `potential` (a GAP) and `classical` (a LAMMPS teacher)'
    atoms = inputs['structure'].get_ase()
    if not all(atoms.pbc):
        return (
            f'`structure`: a crystal periodic in all three directions is needed, got pbc {atoms.pbc.tolist()}'
        )
    message = validate_atoms(atoms, '`structure`')
    if message:
        return message
    symbols = set(atoms.get_chemical_symbols())
    if has_gap:
        unknown = sorted(symbols - set(inputs['potential'].species))
        return (
            f'the potential knows {inputs["potential"].species}, the structure also has {unknown}'
            if unknown
            else None
        )
    if 'lammps_code' not in inputs:
        return '`classical` needs the `lammps_code` that runs it'
    potential = inputs['classical'].get_dict()
    return validate_potential_inputs(potential, inputs.get('potential_files'), symbols) or check_total_charge(
        potential, atoms, '`structure`'
    )


class SolidPropertiesCalculation(DriverCalculation):
    """Crystal properties (EOS, elastic constants, surfaces, vacancy, phonons) of a GAP or a LAMMPS teacher."""

    DRIVER_MODULE, PARSER_NAME = 'aiida_mlpot.engines.solids', 'mlpot.solid_properties'
    RESULT_FILES, RESULT_INVALID = {'properties': 'properties.json'}, '`properties.json` cannot be read'
    FILENAME_STRUCTURE = 'structure.xyz'

    @classmethod
    def define(cls, spec):
        super().define(spec)
        spec.input(
            'structure', valid_type=orm.StructureData, help='The crystal (cubic cell for fcc, rock salt).'
        )
        spec.input('potential', valid_type=GapPotentialData, required=False, help='The GAP (quippy).')
        define_potential_ports(spec, name='classical', help='Instead of `potential`: a LAMMPS teacher.')
        spec.inputs['classical'].required = False
        optional = (
            ('lammps_code', orm.InstalledCode, code_validator('LAMMPS', 'lammps_code'), 'With `classical`: the '
             'LAMMPS executable (on the computer of `code`).'),
            ('parameters', orm.Dict, validate_settings, 'Settings (defaults in aiida_mlpot.engines.solids.'
             f'SETTINGS): {", ".join(SETTINGS)}.'),
        )  # fmt: skip
        for name, valid_type, validator, help_text in optional:
            spec.input(name, valid_type=valid_type, required=False, validator=validator, help=help_text)
        spec.inputs.validator = validate_inputs
        spec.output(
            'properties',
            valid_type=orm.Dict,
            help='lattice_constant (Å), bulk_modulus_gpa, C11, C12, C44 (GPa), surface_energies_j_m2, '
            'vacancy_energy (eV), phonon_frequencies (THz) at phonon_qpoints, phonon_min_frequency, EOS points.',
        )

    def prepare_for_submission(self, folder: Folder) -> CalcInfo:
        """Write the crystal and ``input.json``; copy the GAP files or the teacher's potential files."""
        handle = io.StringIO()
        write_frames([self.inputs.structure.get_ase()], handle)
        folder.create_file_from_filelike(
            io.BytesIO(handle.getvalue().encode()), self.FILENAME_STRUCTURE, 'wb'
        )
        if 'potential' in self.inputs:
            potential = self.inputs.potential
            calculator = {'gap': {'xml': potential.xml_filename}}
            local_copy_list = [(potential.uuid, name, name) for name in potential.filenames]
        else:
            executable = shlex.quote(str(self.inputs.lammps_code.get_executable()))
            calculator = {'lammps': {'command': executable, 'potential': self.inputs.classical.get_dict()}}
            files = self.inputs.get('potential_files', {}).values()
            local_copy_list = [(node.uuid, node.filename, node.filename) for node in files]
        config = {
            'structure': self.FILENAME_STRUCTURE,
            'calculator': calculator,
            'settings': self.inputs.parameters.get_dict() if 'parameters' in self.inputs else {},
        }
        return self.driver_calcinfo(folder, config, local_copy_list)
