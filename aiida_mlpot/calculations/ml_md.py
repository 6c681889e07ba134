"""`MlMdCalculation`: molecular dynamics with a GAP (ASE + quippy on the compute node), stopped on extrapolation.

The calculation runs the ML-MD driver :mod:`aiida_mlpot.engines.ml_md` with the ``python`` code of the
environment (command line ``python -m aiida_mlpot.engines.ml_md input.json``). ``prepare_for_submission``
only writes the start frame and the JSON input and asks for the potential (and training) files to be copied;
the :class:`~aiida_mlpot.parsers.ml_md.MlMdParser` turns the retrieved files into outputs.

Outcomes: ``completed`` and ``extrapolation`` finish with exit status 0 (the outcome is in the ``summary``
output; on extrapolation the candidates to label are in ``flagged``); ``unstable`` finishes with
``ERROR_UNSTABLE_MD`` (410), so that a caller can react (smaller time step, refit), the partial trajectory
being an output all the same.

A run killed before its end (walltime, node failure, OOM kill) finishes with ``ERROR_INTERRUPTED`` (420): the
driver flushes ``trajectory.xyz`` after every dumped frame and keeps ``progress.json`` up to date, so the
complete frames are attached as ``trajectory`` (the last one as ``final_structure``) with a ``summary`` of
outcome ``interrupted``. ``restart_from`` that trajectory continues the run from its last frame.

Restarts: the start frame of ``restart_from`` (a DatasetData) brings its momenta and its ``step``; the new run
numbers its frames from that step and ``md.n_steps`` counts the steps **added** by this run (``final_step =
initial_step + n_steps``), so to reach the step count a killed run aimed at, give ``n_steps =
summary['steps_remaining']`` of the interrupted run.

Relative thresholds (``extrapolation.relative_threshold`` k: threshold = k x the ``percentile`` of the training
frames' own scores): the driver computes that reference score from the ``training`` frames and the parser
attaches it as the ``reference_score`` output; a later run with the same potential and training set takes it
as its ``reference_score`` input and needs no training frames (the score depends on the measure, the
potential and the training configurations only: the GP variance does not depend on the labels). Nothing is
kept outside the provenance graph.

``parameters.md.engine = 'lammps'`` runs the MD with a LAMMPS built with ML-QUIP instead of ASE, in segments
scored afterwards by quippy (:mod:`aiida_mlpot.engines.lammps_quip`); the driver still runs with the
``python`` code. The LAMMPS executable is the optional ``lammps_code`` input (an ``InstalledCode`` on the same
computer, recorded in the provenance graph) or, failing that, the ``lammps.command`` parameter (default
``lmp``; a full command line such as ``srun lmp_mpi`` is allowed there).
"""

from __future__ import annotations

import io
import math
import shlex

from aiida import orm
from aiida.common.datastructures import CalcInfo
from aiida.common.folders import Folder
from ase import Atoms

from aiida_mlpot.calculations.driver import DriverCalculation
from aiida_mlpot.calculations.lammps import validate_atoms
from aiida_mlpot.calculations.ports import code_validator, missing_code_message
from aiida_mlpot.data.dataset import DatasetData
from aiida_mlpot.data.extxyz import write_frames
from aiida_mlpot.data.potential import GapPotentialData
from aiida_mlpot.engines.parameters import needs_training, normalise_parameters

__all__ = ('MlMdCalculation', 'driver_parameters')


def driver_parameters(inputs) -> dict:
    """Return the normalised driver parameters of ``inputs``, the ``reference_score`` input included.

    :raises ValueError: invalid parameters, or a reference score given twice.
    """
    parameters = normalise_parameters(inputs['parameters'].get_dict())
    if 'reference_score' in inputs:
        if parameters['extrapolation']['reference_score'] is not None:
            raise ValueError(
                'give the reference score either as input `reference_score` or as '
                '`extrapolation.reference_score`, not both'
            )
        parameters['extrapolation']['reference_score'] = inputs['reference_score'].value
    return parameters


def start_frame(inputs) -> tuple[Atoms, int]:
    """Return the start frame (with momenta when restarting from an MD frame) and its step number."""
    if 'restart_from' in inputs:
        source = inputs['restart_from']
        if isinstance(source, DatasetData):
            index = inputs['restart_frame'].value if 'restart_frame' in inputs else -1
            frame = source.to_ase()[index]
            atoms = Atoms(numbers=frame.numbers, positions=frame.positions, cell=frame.cell, pbc=True)
            if 'momenta' in frame.arrays:
                atoms.arrays['momenta'] = frame.arrays['momenta'].copy()
            return atoms, int(frame.info.get('step', 0))
        return source.get_ase(), 0
    return inputs['structure'].get_ase(), 0


def validate_inputs(inputs, _):
    """Validate the combination of inputs; return an error message or None."""
    if 'parameters' not in inputs or 'potential' not in inputs:
        return None  # reported by the port validation
    message = missing_code_message(inputs, 'python')
    if message:
        return message
    has_structure, has_restart = 'structure' in inputs, 'restart_from' in inputs
    if has_structure == has_restart:
        return 'give exactly one of `structure` and `restart_from`'
    if 'restart_frame' in inputs and not isinstance(inputs.get('restart_from'), DatasetData):
        return '`restart_frame` needs `restart_from` to be a DatasetData'
    if isinstance(inputs.get('restart_from'), DatasetData):
        n_configs = len(inputs['restart_from'])
        index = inputs['restart_frame'].value if 'restart_frame' in inputs else -1
        if not -n_configs <= index < n_configs:
            return f'`restart_frame` {index} is out of range for a dataset of {n_configs} configurations'
    try:
        parameters = driver_parameters(inputs)
    except ValueError as exception:
        return f'invalid `parameters`: {exception}'
    message = _validate_reference_score(inputs, parameters)
    if message:
        return message
    potential, training = inputs['potential'], inputs.get('training')
    message = _validate_engine(inputs, parameters)
    if message:
        return message
    if needs_training(parameters) and training is None:
        return (
            f'`extrapolation.method={parameters["extrapolation"]["method"]}` with these thresholds needs the '
            '`training` dataset (or a `reference_score`)'
        )
    source = inputs['structure'] if has_structure else inputs['restart_from']
    symbols = set(source.species) if isinstance(source, DatasetData) else set(source.get_symbols_set())
    unknown = symbols - set(potential.species)
    if unknown:
        return f'the potential knows {potential.species}, the structure also has {sorted(unknown)}'
    if isinstance(source, orm.StructureData):
        return _validate_start_structure(source.get_ase(), parameters)
    return None


def _validate_start_structure(atoms: Atoms, parameters: dict) -> str | None:
    """Return an error if the start structure cannot be run: overlapping atoms, NPT without a periodic cell."""
    name = '`structure`'
    message = validate_atoms(atoms, name)
    if message:
        return message
    if parameters['md']['ensemble'] == 'npt' and not all(atoms.pbc):
        return f'an NPT run needs a structure that is periodic in all three directions; {name} has pbc {atoms.pbc.tolist()}'
    return None


def _validate_reference_score(inputs, parameters: dict) -> str | None:
    """Return an error message if the ``reference_score`` input is invalid or does not apply."""
    if 'reference_score' not in inputs:
        return None
    value = inputs['reference_score'].value
    if not math.isfinite(value) or value <= 0:
        return f'`reference_score` must be a positive number, got {value}'
    if parameters['extrapolation']['relative_threshold'] is None:
        return '`reference_score` is only used with `extrapolation.relative_threshold`'
    return None


def _validate_engine(inputs, parameters: dict) -> str | None:
    """Return an error message if the LAMMPS executable inputs do not fit the chosen ``md.engine``."""
    lammps_code = inputs.get('lammps_code')
    if lammps_code is None:
        return None
    if parameters['md']['engine'] != 'lammps':
        return '`lammps_code` is only used with `md.engine = lammps`'
    if parameters['lammps']['command'] is not None:
        return 'give the LAMMPS executable either as `lammps_code` or as `lammps.command`, not both'
    code = inputs.get('code')
    if code is not None and getattr(code, 'computer', None) is not None:
        if lammps_code.computer.pk != code.computer.pk:
            return (
                f'`lammps_code` is on computer `{lammps_code.computer.label}`, the driver runs on '
                f'`{code.computer.label}`'
            )
    return None


def validate_parameters(node, _):
    """Validate the parameters dictionary (see :data:`aiida_mlpot.engines.parameters.DEFAULTS`)."""
    try:
        parameters = normalise_parameters(node.get_dict())
    except ValueError as exception:
        return str(exception)
    pressure = parameters['md']['pressure_bar']
    if not math.isfinite(pressure):
        return f'`md.pressure_bar` must be a finite number, got {pressure!r}'
    return None


class MlMdCalculation(DriverCalculation):
    """Molecular dynamics with a GAP through ASE + quippy, with extrapolation and stability checks."""

    DRIVER_MODULE = 'aiida_mlpot.engines.ml_md'
    PARSER_NAME = 'mlpot.ml_md'
    FILENAME_STRUCTURE = 'structure.xyz'
    FILENAME_TRAINING = 'training.xyz'
    RESULT_FILES = {
        'trajectory': 'trajectory.xyz',
        'flagged': 'flagged.xyz',
        'final': 'final.xyz',
        'progress': 'progress.json',
    }
    RESULT_INVALID = 'the retrieved frames cannot be read'

    @classmethod
    def define(cls, spec):
        super().define(spec)
        spec.input('structure', valid_type=orm.StructureData, required=False, help='The start structure.')
        spec.input(
            'restart_from',
            valid_type=(DatasetData, orm.StructureData),
            required=False,
            help='Continue from a frame of a dataset (e.g. the `trajectory` of a previous run, momenta kept) '
            "or from a structure; replaces `structure`. Frames are numbered on from the frame's `step`; "
            '`md.n_steps` steps are added to it.',
        )
        spec.input(
            'restart_frame',
            valid_type=orm.Int,
            required=False,
            help='Index of the frame of `restart_from` (a DatasetData) to start from; default: the last one.',
        )
        spec.input('potential', valid_type=GapPotentialData, help='The GAP that drives the MD.')
        spec.input(
            'parameters',
            valid_type=orm.Dict,
            validator=validate_parameters,
            help='Sections `md`, `extrapolation`, `stability`, `lammps`; see '
            '`aiida_mlpot.engines.parameters.DEFAULTS`.',
        )
        spec.input(
            'lammps_code',
            valid_type=orm.InstalledCode,
            required=False,
            validator=code_validator('LAMMPS', 'lammps_code'),
            help='`md.engine = lammps` only: a LAMMPS built with ML-QUIP (`pair_style quip`) on the computer of '
            '`code`; its executable replaces `lammps.command`.',
        )
        spec.input(
            'training',
            valid_type=DatasetData,
            required=False,
            help='Training set of the potential: reference for a relative threshold and for SOAP novelty.',
        )
        spec.input(
            'reference_score',
            valid_type=orm.Float,
            required=False,
            help="Relative threshold only: the `percentile` of the training frames' scores (e.g. the "
            '`reference_score` output of an earlier run with the same potential, training set and measure); '
            'with it no `training` is needed for the threshold.',
        )
        spec.inputs.validator = validate_inputs

        spec.output(
            'trajectory',
            valid_type=DatasetData,
            help='Frames every `dump_interval` steps: ML energy, forces, virial, momenta, `uncertainty`.',
        )
        spec.output(
            'flagged',
            valid_type=DatasetData,
            required=False,
            help='On extrapolation: the triggering frame and the last scored frames before it (to label).',
        )
        spec.output(
            'summary',
            valid_type=orm.Dict,
            help='Outcome (completed | extrapolation | unstable | interrupted), steps done, scores, threshold, timing, '
            'traces of score, volume and temperature.',
        )
        spec.output('final_structure', valid_type=orm.StructureData, help='The last frame of the run.')
        spec.output(
            'reference_score',
            valid_type=orm.Float,
            required=False,
            help='The reference score the driver computed from `training` for a relative threshold (the '
            "`percentile` of the training frames' scores): give it as `reference_score` to later runs.",
        )
        spec.default_output_node = 'summary'

        spec.exit_code(
            410,
            'ERROR_UNSTABLE_MD',
            message='the MD became unstable at step {step}: {reason}',
            invalidates_cache=False,
        )
        spec.exit_code(
            420,
            'ERROR_INTERRUPTED',
            message='the driver was interrupted after {steps_done} of {steps_requested} steps ({detail}); the '
            'complete frames are in `trajectory`, the last one (step {step}) in `final_structure`: '
            '`restart_from` the `trajectory` continues the run.',
        )

    def prepare_for_submission(self, folder: Folder) -> CalcInfo:
        """Write the start frame and ``input.json``; copy the potential (and training) files."""
        parameters = driver_parameters(self.inputs)
        training = self.inputs.get('training')
        potential = self.inputs.potential

        atoms, initial_step = start_frame(self.inputs)
        handle = io.StringIO()
        write_frames([atoms], handle)
        folder.create_file_from_filelike(
            io.BytesIO(handle.getvalue().encode()), self.FILENAME_STRUCTURE, mode='wb'
        )

        local_copy_list = [(potential.uuid, name, name) for name in potential.filenames]
        if 'lammps_code' in self.inputs:
            parameters['lammps']['command'] = shlex.quote(str(self.inputs.lammps_code.get_executable()))
        config = {
            'structure': self.FILENAME_STRUCTURE,
            'potential': {'xml': potential.xml_filename, 'xml_label': potential.xml_label},
            'parameters': parameters,
            'initial_step': initial_step,
            'source_uuid': self.node.uuid,
            'config_type': 'ml_md',
        }
        if training is not None and needs_training(parameters):
            local_copy_list.append((training.uuid, training.filename, self.FILENAME_TRAINING))
            config['training'] = self.FILENAME_TRAINING
        return self.driver_calcinfo(folder, config, local_copy_list)
