"""LAMMPS calculations of aiida-mlpot: classical MD returning its frames, and many single points in one job.

Both subclass aiida-lammps' :class:`~aiida_lammps.calculations.raw.LammpsRawCalculation` (the calculation of
aiida-lammps that accepts any pair style, kspace solver and charges) and keep its ``files``, ``filenames`` and
``settings`` inputs and ``results`` output. Instead of a user-written ``script`` they take the structure(s),
the classical-potential dictionary (see :mod:`aiida_mlpot.potentials.classical`) and, for MD, a parameters
dictionary, and write the LAMMPS data files and input script themselves, so that the dump and thermo files
they retrieve have a layout their parsers know.
"""

from __future__ import annotations

import math
import numbers
import shutil
from collections.abc import Mapping

import numpy as np
from aiida import orm
from aiida.common.datastructures import CalcInfo, CodeInfo
from aiida.common.folders import Folder
from aiida_lammps.calculations.raw import LammpsRawCalculation
from ase import Atoms

from aiida_mlpot.analysis.geometry import min_distance
from aiida_mlpot.calculations.base import define_executable_exit_code
from aiida_mlpot.calculations.ports import (
    check_potential_lines,
    code_validator,
    define_potential_ports,
    define_structures_port,
    missing_code_message,
    required_files_message,
)
from aiida_mlpot.common.keys import config_key
from aiida_mlpot.data.dataset import DatasetData
from aiida_mlpot.potentials.classical import species_order, validate_potential
from aiida_mlpot.potentials.lammps_input import (
    md_script,
    rerun_script,
    validate_md_parameters,
    write_data_file,
)

__all__ = (
    'MIN_DISTANCE',
    'LammpsMdCalculation',
    'LammpsRerunCalculation',
    'check_md_parameter_types',
    'check_md_parameters',
    'check_total_charge',
    'validate_atoms',
    'validate_potential_inputs',
)

#: Atoms closer than this (Å) are refused before any job is run.
MIN_DISTANCE = 0.5


def validate_atoms(atoms: Atoms, label: str = 'the structure') -> str | None:
    """Return an error message if the configuration cannot be passed to LAMMPS."""
    if len(atoms) == 0:
        return f'{label} has no atoms'
    if not np.all(np.isfinite(atoms.cell.array)):
        return f'{label} has a cell with non-finite entries: {atoms.cell.array.tolist()}'
    bad = np.flatnonzero(~np.all(np.isfinite(atoms.positions), axis=1))
    if len(bad):
        return f'{label} has non-finite coordinates (atoms {bad[:5].tolist()})'
    if abs(np.linalg.det(atoms.cell.array)) < 1e-6:
        return f'{label} needs a cell with a non-zero volume (also along non-periodic directions)'
    closest = min_distance(atoms, cutoff=MIN_DISTANCE)
    if closest < MIN_DISTANCE:
        return f'{label} has atoms {closest:.3f} Å apart, closer than {MIN_DISTANCE} Å'
    return None


#: Keys of the MD parameters that are real numbers and integers (the others are strings).
_MD_REAL_KEYS = ('temperature_K', 'pressure_bar', 'timestep_fs', 'volume_scale', 'taut_fs', 'taup_fs')
_MD_INTEGER_KEYS = ('equilibration_steps', 'production_steps', 'dump_interval', 'seed')


def check_md_parameter_types(parameters: Mapping) -> str | None:
    """Return an error naming the first MD parameter of the wrong type or not finite, else None.

    Strict: a string, a boolean or a fractional step count is an error, not something to convert.
    """
    if not isinstance(parameters, Mapping):
        return 'the MD parameters must be a dictionary'
    for key in _MD_REAL_KEYS:
        value = parameters.get(key)
        if key in parameters and (
            isinstance(value, bool) or not isinstance(value, numbers.Real) or not math.isfinite(value)
        ):
            return f'`{key}` must be a finite number, got {value!r}'
    for key in _MD_INTEGER_KEYS:
        value = parameters.get(key)
        if key in parameters and (isinstance(value, bool) or not isinstance(value, numbers.Integral)):
            return f'`{key}` must be an integer, got {value!r}'
    return None


def check_md_parameters(parameters: Mapping) -> str | None:
    """Return an error naming the first bad MD parameter (unknown key, type, non-finite or impossible value).

    The types are checked by :func:`check_md_parameter_types`, the keys and the values by
    :func:`~aiida_mlpot.potentials.lammps_input.validate_md_parameters`.
    """
    return check_md_parameter_types(parameters) or validate_md_parameters(dict(parameters))


def check_total_charge(potential: dict, atoms: Atoms, label: str = 'the structure') -> str | None:
    """Return an error if a potential with a kspace solver (Ewald, PPPM) is given a cell that is not neutral.

    LAMMPS runs such a cell with only a warning (a uniform neutralising background is implied), which is
    never what a sampling or a reference label of this package means.
    """
    if not potential.get('kspace_style') or not potential.get('charges'):
        return None
    charges = potential['charges']
    total = sum(float(charges.get(symbol, 0.0)) for symbol in atoms.get_chemical_symbols())
    if abs(total) > 1e-6:
        return (
            f'{label} has a total charge of {total:g} e with the charges {charges}: kspace_style '
            f'{potential["kspace_style"]!r} needs a neutral cell'
        )
    return None


def validate_potential_inputs(potential: dict, potential_files: Mapping | None, symbols) -> str | None:
    """Return why ``potential`` (with its ``potential_files`` nodes) cannot run configurations of ``symbols``.

    The dictionary itself, its LAMMPS lines, the coverage of every pair of species, the charges of a coulombic
    style and the files it names are checked (no file is read).
    """
    message = validate_potential(potential, species_order(symbols))
    if message:
        return message
    return check_potential_lines(potential) or required_files_message(potential, potential_files)


class _LammpsMlpotCalculation(LammpsRawCalculation):
    """Common part: potential and potential files instead of a raw script."""

    FILENAME_DUMP = 'mlpot.dump'

    @classmethod
    def define(cls, spec):
        super().define(spec)
        spec.inputs.pop('script')
        spec.inputs['code'].validator = code_validator('LAMMPS')
        define_potential_ports(spec)
        define_executable_exit_code(spec)
        spec.exit_code(
            311,
            'ERROR_LAMMPS_NOT_COMPLETED',
            message='LAMMPS stopped before the end of the input script (no total wall time printed).',
        )
        spec.exit_code(352, 'ERROR_DUMP_MISSING', message='the dump file `{filename}` was not retrieved.')
        spec.exit_code(353, 'ERROR_TABLE_MISSING', message='the table file `{filename}` was not retrieved.')
        spec.exit_code(354, 'ERROR_OUTPUT_PARSING', message='could not parse `{filename}`: {exception}')
        spec.exit_code(
            355, 'ERROR_INCONSISTENT_OUTPUT', message='the LAMMPS output is inconsistent: {message}'
        )

    @classmethod
    def _validate_common(cls, value, frames: list[Atoms]) -> str | None:
        message = missing_code_message(value, 'LAMMPS') or cls.validate_inputs(value, None)
        if message:
            return message
        symbols = {symbol for atoms in frames for symbol in atoms.get_chemical_symbols()}
        potential = value['potential'].get_dict()
        message = validate_potential_inputs(potential, value.get('potential_files', {}), symbols)
        if message:
            return message
        for index, atoms in enumerate(frames):
            message = check_total_charge(
                potential, atoms, f'configuration {index}' if len(frames) > 1 else 'the structure'
            )
            if message:
                return message
        return None

    def _write_common(self, folder: Folder) -> list[str]:
        """Write the potential files and the extra ``files``; return the provenance-exclude list."""
        filenames = self.inputs['filenames'].get_dict() if 'filenames' in self.inputs else {}
        exclude = []
        nodes = [(node.filename, node) for node in self.inputs.get('potential_files', {}).values()]
        nodes += [
            (filenames.get(key, node.filename), node) for key, node in self.inputs.get('files', {}).items()
        ]
        for filename, node in nodes:
            with folder.open(filename, 'wb') as target, node.open(mode='rb') as source:
                shutil.copyfileobj(source, target)
            exclude.append(filename)
        return exclude

    def _calcinfo(self, script: str, folder: Folder, retrieve: list[str], exclude: list[str]) -> CalcInfo:
        with folder.open(self.inputs.metadata.options.input_filename, 'w') as handle:
            handle.write(script)
        codeinfo = CodeInfo()
        codeinfo.cmdline_params = ['-in', self.inputs.metadata.options.input_filename]
        codeinfo.code_uuid = self.inputs.code.uuid
        codeinfo.stdout_name = self.inputs.metadata.options.output_filename

        calcinfo = CalcInfo()
        calcinfo.codes_info = [codeinfo]
        calcinfo.provenance_exclude_list = exclude
        calcinfo.retrieve_list = [self.inputs.metadata.options.output_filename, *retrieve]
        if 'settings' in self.inputs:
            calcinfo.retrieve_list += self.inputs.settings.get_dict().get('additional_retrieve_list', [])
        return calcinfo


class LammpsMdCalculation(_LammpsMlpotCalculation):
    """Classical NVT/NPT molecular dynamics with LAMMPS that returns every dumped frame as a dataset.

    Each frame of the output ``dataset`` carries the potential energy, per-atom energies (``compute
    pe/atom``, the kspace share included), forces, the virial (from ``compute pressure NULL virial``, in eV),
    the cell, the temperature and the MD step, and records in ``info['source_uuid']`` the UUID of this
    calculation. The ``thermo`` output summarises the production run (means and standard deviations).
    """

    FILENAME_DATA = 'structure.data'
    FILENAME_THERMO = 'mlpot.thermo'

    @classmethod
    def define(cls, spec):
        super().define(spec)
        spec.input('structure', valid_type=orm.StructureData, help='The starting configuration.')
        spec.input(
            'parameters',
            valid_type=orm.Dict,
            validator=cls._validate_parameters,
            help='MD settings, named as in ML MD: ensemble (nvt|npt), temperature_K, pressure_bar (NPT), '
            'timestep_fs, equilibration_steps, production_steps, dump_interval, seed, optional volume_scale, '
            'taut_fs, taup_fs, pressure_coupling. Unknown keys are refused.',
        )
        spec.inputs.validator = cls._validate_md_inputs
        spec.inputs['metadata']['options']['parser_name'].default = 'mlpot.lammps.md'
        spec.output('dataset', valid_type=DatasetData, help='The dumped frames of the production run.')
        spec.output('thermo', valid_type=orm.Dict, help='Means and standard deviations of T, P, density, ...')
        spec.exit_code(
            410,
            'ERROR_UNSTABLE_MD',
            message='the MD became unstable {when}: {reason}',
            invalidates_cache=False,
        )

    @classmethod
    def _validate_parameters(cls, value, _):
        if value is not None:
            return check_md_parameters(value.get_dict())

    @classmethod
    def _validate_md_inputs(cls, value, ctx):
        if 'structure' not in value or 'potential' not in value:
            return None
        atoms = value['structure'].get_ase()
        message = validate_atoms(atoms)
        if message:
            return message
        parameters = value['parameters'].get_dict() if 'parameters' in value else {}
        if parameters.get('ensemble') == 'npt' and not all(atoms.pbc):
            return 'an NPT run needs a structure that is periodic in all three directions'
        return cls._validate_common(value, [atoms])

    def prepare_for_submission(self, folder: Folder) -> CalcInfo:
        """Write the data file, the potential files and the MD input script."""
        atoms = self.inputs.structure.get_ase()
        potential = self.inputs.potential.get_dict()
        species = species_order(atoms.get_chemical_symbols())
        parameters = self.inputs.parameters.get_dict()
        triclinic = parameters['ensemble'] == 'npt' and parameters.get('pressure_coupling') == 'tri'
        data, _ = write_data_file(atoms, species, potential, triclinic=triclinic)
        with folder.open(self.FILENAME_DATA, 'w') as handle:
            handle.write(data)
        script = md_script(
            potential,
            species,
            atoms.pbc,
            parameters,
            self.FILENAME_DATA,
            self.FILENAME_DUMP,
            self.FILENAME_THERMO,
        )
        exclude = self._write_common(folder)
        return self._calcinfo(script, folder, [self.FILENAME_DUMP, self.FILENAME_THERMO], exclude)


class LammpsRerunCalculation(_LammpsMlpotCalculation):
    """Single points of many configurations with a classical potential in ONE LAMMPS job (classical oracle).

    Configurations come either as a ``structures`` namespace of ``StructureData`` (evaluated in sorted key
    order) or as a ``dataset``; sizes, cells and compositions may differ. The output ``dataset`` holds the
    input configurations, in input order, labelled with energy, forces, virial and per-atom energies; each
    frame records ``info['source_uuid']`` (this calculation) and ``info['label_key']`` (the namespace key, or
    the index in the input dataset).
    """

    FILENAME_LABELS = 'mlpot.labels'

    @classmethod
    def define(cls, spec):
        super().define(spec)
        define_structures_port(
            spec, 'Configurations to evaluate, e.g. keys `config_00000`, ... (evaluated in sorted key order).'
        )
        spec.input('dataset', valid_type=DatasetData, required=False, help='Configurations to evaluate.')
        spec.inputs.validator = cls._validate_rerun_inputs
        spec.inputs['metadata']['options']['parser_name'].default = 'mlpot.lammps.rerun'
        spec.output('dataset', valid_type=DatasetData, help='The input configurations with their labels.')
        spec.exit_code(356, 'ERROR_NON_FINITE_VALUES', message='LAMMPS returned non-finite values: {message}')

    @classmethod
    def _validate_rerun_inputs(cls, value, ctx):
        if 'potential' not in value:
            return None
        has_structures = bool(value.get('structures'))
        if has_structures == ('dataset' in value):
            return 'give exactly one of `structures` (a non-empty namespace) or `dataset`'
        keyed = cls.input_frames(value)
        if not keyed:
            return 'there are no configurations to evaluate'
        for key, atoms in keyed:
            message = validate_atoms(atoms, f'configuration {key}')
            if message:
                return message
        return cls._validate_common(value, [atoms for _, atoms in keyed])

    @staticmethod
    def data_filename(index: int) -> str:
        """Return the name of the LAMMPS data file of configuration ``index`` (``config_00000.data``, ...)."""
        return f'{config_key(index)}.data'

    @staticmethod
    def input_frames(inputs) -> list[tuple[str | int, Atoms]]:
        """Return ``(label_key, atoms)`` of the configurations to evaluate, in evaluation order."""
        if inputs.get('structures'):
            return [(key, inputs['structures'][key].get_ase()) for key in sorted(inputs['structures'])]
        if 'dataset' in inputs:
            return list(enumerate(inputs['dataset'].to_ase()))
        return []

    def prepare_for_submission(self, folder: Folder) -> CalcInfo:
        """Write one data file per configuration and the single-point script."""
        frames = [atoms for _, atoms in self.input_frames(self.inputs)]
        potential = self.inputs.potential.get_dict()
        species = species_order({s for atoms in frames for s in atoms.get_chemical_symbols()})
        filenames = []
        for index, atoms in enumerate(frames):
            filename = self.data_filename(index)
            data, _ = write_data_file(atoms, species, potential)
            with folder.open(filename, 'w') as handle:
                handle.write(data)
            filenames.append(filename)
        script = rerun_script(
            potential,
            species,
            [atoms.pbc for atoms in frames],
            filenames,
            self.FILENAME_DUMP,
            self.FILENAME_LABELS,
        )
        exclude = self._write_common(folder)
        return self._calcinfo(script, folder, [self.FILENAME_DUMP, self.FILENAME_LABELS], exclude)
