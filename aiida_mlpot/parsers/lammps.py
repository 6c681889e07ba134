"""Parsers of :class:`~aiida_mlpot.calculations.lammps.LammpsMdCalculation` and ``LammpsRerunCalculation``."""

from __future__ import annotations

import functools

import numpy as np
from aiida import orm
from aiida.common.links import LinkType
from aiida.engine import ExitCode
from aiida.parsers.parser import Parser
from ase import Atoms
from ase.calculators.lammps import Prism

from aiida_mlpot.common.units import pressure_bar_to_virial
from aiida_mlpot.data.dataset import DatasetData
from aiida_mlpot.data.extxyz import md_source
from aiida_mlpot.parsers.executable import executable_failure
from aiida_mlpot.parsers.parse_raw.lammps import (
    parse_columns_file,
    parse_dump,
    parse_log,
    virial_pressure_tensor,
)
from aiida_mlpot.potentials.classical import species_order
from aiida_mlpot.potentials.lammps_input import LABEL_COLUMNS, THERMO_COLUMNS

__all__ = ('LammpsMdParser', 'LammpsRerunParser')

#: Labels that a rerun replaces on its input configurations.
_LABEL_INFO = ('energy', 'virial', 'free_energy', 'stress')
_LABEL_ARRAYS = ('forces', 'energies')
#: Quantities summarised (mean, standard deviation) in the ``thermo`` output of an MD run.
_SUMMARY_COLUMNS = ('temp', 'press', 'density', 'vol', 'pe', 'ke')


class _LammpsMlpotParser(Parser):
    """Shared steps: the log (errors, unstable dynamics, completion) and the retrieved files."""

    @functools.cached_property
    def retrieved(self):
        """The retrieved folder, looked up once per parse: aiida-core's property queries the node's links on every
        access (7 per parse here, 6 % of a daemon worker's CPU in the 500-job load benchmark)."""
        return super().retrieved

    def _unstable(self, log: dict) -> ExitCode | None:
        """Return the exit code of a run whose dynamics blew up (MD only), or ``None``."""
        return None

    def _parse_log(self) -> ExitCode | None:
        calc_class = self.node.process_class
        filename = self.node.get_option('output_filename') or calc_class.FILENAME_OUTPUT
        failure = executable_failure(self, [filename])
        if failure:
            return failure
        names = self.retrieved.base.repository.list_object_names()
        if filename not in names:
            return self.exit_codes.ERROR_OUTFILE_MISSING
        log = parse_log(self.retrieved.base.repository.get_object_content(filename, mode='r'))
        self.log_summary = log
        self.out('results', orm.Dict({key: value for key, value in log.items()}))
        exit_code = self._unstable(log) if log['unstable'] else None
        if exit_code:
            return exit_code
        if log['errors']:
            return self.exit_codes.ERROR_PARSER_DETECTED_LAMMPS_RUN_ERROR.format(error=log['errors'][0])
        if not log['completed']:
            return self.exit_codes.ERROR_LAMMPS_NOT_COMPLETED
        return None

    def _read(self, filename: str, missing_code) -> tuple[str | None, ExitCode | None]:
        if filename not in self.retrieved.base.repository.list_object_names():
            return None, missing_code.format(filename=filename)
        return self.retrieved.base.repository.get_object_content(filename, mode='r'), None

    def _read_outputs(self, table_filename: str, columns: tuple[str, ...]):
        """Parse the log (:meth:`_parse_log`), then return ``(frames, table, exit_code)`` of the retrieved dump
        and table files."""
        exit_code = self._parse_log()
        if exit_code:
            return None, None, exit_code
        calc_class = self.node.process_class
        dump_text, exit_code = self._read(calc_class.FILENAME_DUMP, self.exit_codes.ERROR_DUMP_MISSING)
        if exit_code:
            return None, None, exit_code
        table_text, exit_code = self._read(table_filename, self.exit_codes.ERROR_TABLE_MISSING)
        if exit_code:
            return None, None, exit_code
        try:
            frames = parse_dump(dump_text)
        except ValueError as exception:
            return (
                None,
                None,
                self.exit_codes.ERROR_OUTPUT_PARSING.format(
                    filename=calc_class.FILENAME_DUMP, exception=exception
                ),
            )
        try:
            table = parse_columns_file(table_text, columns)
        except ValueError as exception:
            return (
                None,
                None,
                self.exit_codes.ERROR_OUTPUT_PARSING.format(filename=table_filename, exception=exception),
            )
        return frames, table, None

    @staticmethod
    def _non_finite(frames: list[Atoms]) -> int | None:
        """Return the ``info['step']`` (or, without one, the index) of the first frame with non-finite labels."""
        for index, atoms in enumerate(frames):
            values = [
                atoms.info['energy'],
                atoms.info['virial'],
                atoms.arrays['forces'],
                atoms.arrays['energies'],
            ]
            if not all(np.all(np.isfinite(value)) for value in values):
                return int(atoms.info.get('step', index))
        return None


def _per_atom(frame: dict, natoms: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    columns = frame['columns']
    positions = np.column_stack([columns['x'], columns['y'], columns['z']])
    forces = np.column_stack([columns['fx'], columns['fy'], columns['fz']])
    return columns['type'].astype(int), positions, forces, columns['c_mlpot_pe_atom'].copy()


class LammpsMdParser(_LammpsMlpotParser):
    """Turn the dump and thermo file of an MD run into a ``DatasetData`` of frames and a thermo summary.

    Unstable dynamics (LAMMPS lost atoms, non-numeric coordinates or pressure, or non-finite values in a
    dumped frame) is ``ERROR_UNSTABLE_MD`` (410), the code of unstable ML MD too.
    """

    def _unstable(self, log: dict) -> ExitCode:
        parameters = self.node.inputs.parameters.get_dict()
        equilibration = int(parameters.get('equilibration_steps', 0)) > 0
        phase = 'equilibration' if equilibration and log['runs_started'] <= 1 else 'production'
        when = f'in the {phase} run'
        if log['last_thermo_step'] is not None:
            when += f' after step {log["last_thermo_step"]} (the last thermo output)'
        return self.exit_codes.ERROR_UNSTABLE_MD.format(when=when, reason=log['unstable'])

    def parse(self, **kwargs):
        """Parse the retrieved files of a :class:`~aiida_mlpot.calculations.lammps.LammpsMdCalculation`."""
        calc_class = self.node.process_class
        dumps, table, exit_code = self._read_outputs(calc_class.FILENAME_THERMO, THERMO_COLUMNS)
        if exit_code:
            return exit_code

        structure = self.node.inputs.structure.get_ase()
        parameters = self.node.inputs.parameters.get_dict()
        species = species_order(structure.get_chemical_symbols())
        expected = int(parameters['production_steps']) // int(parameters['dump_interval']) + 1
        if len(dumps) != expected or len(table['step']) != expected:
            return self.exit_codes.ERROR_INCONSISTENT_OUTPUT.format(
                message=f'expected {expected} frames, got {len(dumps)} dumped, {len(table["step"])} in thermo'
            )
        rows = {int(step): row for row, step in enumerate(table['step'])}

        frames = []
        for dump in dumps:
            if dump['natoms'] != len(structure) or dump['step'] not in rows:
                return self.exit_codes.ERROR_INCONSISTENT_OUTPUT.format(
                    message=f'dump frame at step {dump["step"]} has {dump["natoms"]} atoms or no thermo row'
                )
            row = rows[dump['step']]
            types, positions, forces, energies = _per_atom(dump, len(structure))
            atoms = Atoms(
                symbols=[species[t - 1] for t in types],
                positions=positions,
                cell=dump['cell'],
                pbc=structure.pbc,
            )
            atoms.arrays['forces'] = forces
            atoms.arrays['energies'] = energies
            atoms.info['energy'] = float(table['pe'][row])
            atoms.info['virial'] = pressure_bar_to_virial(
                virial_pressure_tensor(table, row), atoms.get_volume()
            )
            atoms.info['temperature_K'] = float(table['temp'][row])
            atoms.info['step'] = int(dump['step'])
            atoms.info['source_uuid'] = self.node.uuid
            frames.append(atoms)

        step = self._non_finite(frames)
        if step is not None:
            return self.exit_codes.ERROR_UNSTABLE_MD.format(
                when=f'at step {step} of the production run',
                reason='non-finite energy, forces or virial in the dumped frame',
            )

        self.out('dataset', DatasetData.from_ase(frames))
        self.out('thermo', orm.Dict(thermo_summary(table, parameters)))
        return None


def thermo_summary(table: dict[str, np.ndarray], parameters: dict) -> dict:
    """Return means and standard deviations of the thermo table of a production run, with its state point.

    ``state_point`` is the target of the run in the vocabulary of the MD parameters: ``temperature_K`` and
    ``pressure_bar`` (NPT) or ``volume_scale`` (NVT). Units: temperature K, pressure bar (total, with the
    kinetic part), density g/cm³, volume Å³, energies eV.
    """
    if parameters['ensemble'] == 'npt':
        state_point = {'pressure_bar': float(parameters['pressure_bar'])}
    else:
        state_point = {'volume_scale': float(parameters.get('volume_scale', 1.0))}
    summary = {
        'ensemble': parameters['ensemble'],
        'state_point': {'temperature_K': float(parameters['temperature_K']), **state_point},
        'n_samples': len(table['step']),
        'series': {key: [float(v) for v in table[key]] for key in ('step', *_SUMMARY_COLUMNS)},
    }
    names = {'temp': 'temperature', 'press': 'pressure', 'vol': 'volume', 'pe': 'potential_energy'}
    for key in _SUMMARY_COLUMNS:
        name = names.get(key, key if key != 'ke' else 'kinetic_energy')
        summary[f'{name}_mean'] = float(np.mean(table[key]))
        summary[f'{name}_std'] = float(np.std(table[key]))
    return summary


class LammpsRerunParser(_LammpsMlpotParser):
    """Attach the single-point labels of a rerun to its input configurations, in input order."""

    def parse(self, **kwargs):
        """Parse the retrieved files of a :class:`~aiida_mlpot.calculations.lammps.LammpsRerunCalculation`."""
        calc_class = self.node.process_class
        dumps, table, exit_code = self._read_outputs(calc_class.FILENAME_LABELS, LABEL_COLUMNS)
        if exit_code:
            return exit_code

        nested = self.node.base.links.get_incoming(link_type=LinkType.INPUT_CALC).nested()
        inputs = calc_class.input_frames(nested)
        if len(dumps) != len(inputs) or len(table['index']) != len(inputs):
            return self.exit_codes.ERROR_INCONSISTENT_OUTPUT.format(
                message=f'{len(inputs)} configurations in, {len(dumps)} dump frames and '
                f'{len(table["index"])} label rows out'
            )

        frames = []
        for row, ((key, original), dump) in enumerate(zip(inputs, dumps, strict=True)):
            if dump['natoms'] != len(original) or int(table['index'][row]) != row:
                return self.exit_codes.ERROR_INCONSISTENT_OUTPUT.format(
                    message=f'configuration {key}: {dump["natoms"]} atoms in the dump, {len(original)} in'
                )
            prism = Prism(np.asarray(original.cell), pbc=original.pbc)
            _, _, forces, energies = _per_atom(dump, len(original))
            atoms = Atoms(
                numbers=original.numbers, positions=original.positions, cell=original.cell, pbc=original.pbc
            )
            for name, value in original.info.items():
                if name not in _LABEL_INFO:
                    atoms.info[name] = value
            for name, value in original.arrays.items():
                if name not in (*_LABEL_ARRAYS, 'numbers', 'positions'):
                    atoms.arrays[name] = value
            atoms.info.pop('parent_source_uuid', None)
            md_uuid = md_source(original.info)  # the MD run, also when `original` was labelled before
            if md_uuid is not None:
                atoms.info['parent_source_uuid'] = md_uuid
            virial_lammps = pressure_bar_to_virial(
                virial_pressure_tensor(table, row), float(table['vol'][row])
            )
            atoms.arrays['forces'] = prism.vector_to_ase(forces)
            atoms.arrays['energies'] = energies
            atoms.info['energy'] = float(table['pe'][row])
            atoms.info['virial'] = prism.tensor2_to_ase(virial_lammps)
            atoms.info['source_uuid'] = self.node.uuid
            atoms.info['label_key'] = key
            frames.append(atoms)

        index = self._non_finite(frames)
        if index is not None:
            return self.exit_codes.ERROR_NON_FINITE_VALUES.format(
                message=f'configuration {inputs[index][0]} has non-finite labels'
            )
        self.out('dataset', DatasetData.from_ase(frames))
        return None
