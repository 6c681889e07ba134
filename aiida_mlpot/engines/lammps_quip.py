"""ML-driven MD with a LAMMPS built with ML-QUIP (``pair_style quip``), scored afterwards by quippy (no AiiDA).

The second engine of the ML-MD driver, selected with ``md.engine = 'lammps'`` in the parameters of
:mod:`aiida_mlpot.engines.ase_md` (same JSON input, same output files, same summary keys, so the
:class:`~aiida_mlpot.parsers.ml_md.MlMdParser` needs no change). HPC installs often have a LAMMPS with
ML-QUIP; it integrates a GAP much faster than ASE, but LAMMPS cannot return the GAP predictive variance.
So the run is cut into **segments** of ``lammps.segment_steps`` steps:

1. write a LAMMPS data file of the current frame (positions, cell and velocities) and a script with
   ``pair_style quip`` (type order and atomic-number map from :func:`quip_potential`);
2. run the LAMMPS command for the segment, dumping every ``stride`` steps (the gcd of ``check_interval``
   and ``dump_interval``) positions, velocities and forces, and printing energy, volume and the
   virial-only pressure tensor at the same steps;
3. read the dumped frames back and examine them in order (:func:`assess_frames`): the stability checks of
   :mod:`aiida_mlpot.engines.checks` on every frame, the extrapolation score (quippy GAP predictive
   standard deviation of the local energies, max over atoms, or SOAP novelty: the same measures as the
   ASE engine) on the frames at multiples of ``check_interval`` or ``dump_interval``;
4. if every frame is trusted, continue from the last one (positions + velocities); otherwise stop with
   outcome ``extrapolation`` or ``unstable`` and **roll back**: the frames LAMMPS integrated past the first
   failing one are discarded, ``final.xyz`` is the last trusted frame (the restart point) and the failing
   frame plus the last scored ones before it are ``flagged.xyz`` (extrapolation).

A LAMMPS error inside a segment (lost atoms, non-finite forces) is ``unstable`` after the frames dumped
before the error have been examined. Differences with the ASE engine, by construction: the stability
checks see the dumped frames (every ``stride`` steps, not ``stability.interval``); the thermostat and
barostat state (Nosé-Hoover chain variables) restarts at each segment, only positions and velocities carry
over; the random stream of the Langevin/CSVR thermostat is seeded per segment (``seed + segment``).
"""

from __future__ import annotations

import collections
import dataclasses
import io
import math
import pathlib
import re
import shlex
import subprocess
import time
import xml.etree.ElementTree as ET
from collections.abc import Callable, Sequence

import numpy as np
from ase import Atoms
from ase.calculators.lammps import Prism, convert
from ase.calculators.singlepoint import SinglePointCalculator
from ase.data import atomic_numbers

from aiida_mlpot.common.units import pressure_bar_to_virial, virial_to_stress
from aiida_mlpot.engines.checks import (
    CheckResult,
    ExtrapolationCheck,
    FiniteCheck,
    MinDistanceCheck,
    TemperatureCheck,
    VolumeCheck,
    gap_variance_training_scores,
    kinetic_temperature,
)
from aiida_mlpot.potentials.classical import species_order
from aiida_mlpot.potentials.lammps_input import _setup_lines, write_data_file

__all__ = (
    'Assessment',
    'FrameScorer',
    'assess_frames',
    'lammps_pair_styles',
    'quip_potential',
    'read_segment_frames',
    'run',
    'run_segment',
    'run_segmented',
    'summarise',
    'segment_data_file',
    'segment_script',
)

FILENAME_DATA = 'lammps_segment.data'
FILENAME_SCRIPT = 'lammps_segment.in'
FILENAME_DUMP = 'lammps_segment.dump'
FILENAME_THERMO = 'lammps_segment.thermo'
FILENAME_LOG = 'lammps_segment.log'
FILENAME_SCREEN = 'lammps_segment.out'

_DUMP_ID = 'mlpot_segment'
#: Dumped columns; the forces are those of the potential, stored before a thermostat adds its own (Langevin).
_DUMP_COLUMNS = 'id type x y z vx vy vz f_mlpot_force[1] f_mlpot_force[2] f_mlpot_force[3]'
_THERMO_VALUES = ('step', 'pe', 'vol', *(f'c_mlpot_pvir[{i}]' for i in range(1, 7)))
_FLOAT = '%.16g'


# --- LAMMPS executable ---------------------------------------------------------------------------------------
def lammps_pair_styles(command: str | Sequence[str] = 'lmp', timeout: float = 60.0) -> set[str]:
    """Return the pair styles the LAMMPS ``command`` lists in its help (``lmp -h``); empty if it cannot run."""
    arguments = shlex.split(command) if isinstance(command, str) else list(command)
    try:
        result = subprocess.run(
            [*arguments, '-h'], capture_output=True, text=True, timeout=timeout, stdin=subprocess.DEVNULL
        )
    except (OSError, subprocess.SubprocessError):
        return set()
    match = re.search(r'\* Pair styles:\s*\n(.*?)\n\s*\* ', result.stdout, flags=re.S)
    return set(match.group(1).split()) if match else set()


# --- input writing -------------------------------------------------------------------------------------------
def xml_label_of(xml_path: str | pathlib.Path) -> str:
    """Return the label of the top-level ``<Potential>`` of a GAP XML (what ``pair_coeff`` needs)."""
    root = ET.parse(str(xml_path)).getroot()
    potential = root.find('Potential')
    label = potential.get('label') if potential is not None else None
    if not label:
        raise ValueError(f'{xml_path} has no top-level <Potential label=...>')
    return label


def quip_potential(xml_filename: str, xml_label: str, species: Sequence[str]) -> dict:
    """Return the classical-potential dictionary of a QUIP potential for LAMMPS types in ``species`` order.

    ``pair_coeff * * <xml> "Potential xml_label=<label>" Z1 Z2 ...`` maps LAMMPS type k to the atomic number
    of ``species[k-1]``. The dictionary has the format of :mod:`aiida_mlpot.potentials.classical`, so the
    LAMMPS input helpers of :mod:`aiida_mlpot.potentials.lammps_input` write it unchanged.
    """
    if any(character.isspace() or character == '"' for character in xml_filename):
        raise ValueError(f'the potential file name {xml_filename!r} must not contain spaces or quotes')
    numbers = ' '.join(str(atomic_numbers[symbol]) for symbol in species)
    return {
        'pair_style': 'quip',
        'pair_coeff': [f'* * {xml_filename} "Potential xml_label={xml_label}" {numbers}'],
        'files': [xml_filename],
    }


def segment_data_file(atoms: Atoms, species: Sequence[str], potential: dict) -> tuple[str, Prism]:
    """Return the LAMMPS data file (positions, cell and, when ``atoms`` has momenta, velocities) and its prism.

    Velocities are converted to LAMMPS ``metal`` units (Å/ps) and rotated into the LAMMPS frame.
    """
    text, prism = write_data_file(atoms, species, potential)
    momenta = atoms.arrays.get('momenta')
    if momenta is not None and np.any(momenta):
        velocities = convert(atoms.get_velocities(), 'velocity', 'ASE', 'metal')
        velocities = prism.vector_to_lammps(velocities)
        lines = ['', 'Velocities', '']
        lines += [
            f'{index + 1} {vx:.16g} {vy:.16g} {vz:.16g}' for index, (vx, vy, vz) in enumerate(velocities)
        ]
        text += '\n'.join(lines) + '\n'
    return text, prism


def integrator_lines(md: dict, segment: int) -> list[str]:
    """Return the fixes that integrate the ensemble of ``md`` (the driver's ``md`` section) in LAMMPS.

    nvt/langevin: ``fix langevin`` + ``fix nve``; nvt/bussi: ``fix temp/csvr`` + ``fix nve``; npt/mtk:
    ``fix npt`` (Nosé-Hoover chains, MTK barostat, iso); npt/berendsen: ``fix press/berendsen`` +
    ``fix temp/berendsen`` + ``fix nve``. Damping times go from fs to ps; the Langevin damping time is
    1 / friction. Random seeds are ``md.seed + segment`` (LAMMPS needs a positive seed).
    """
    temperature = float(md['temperature_K'])
    t_damp = md['taut_fs'] / 1000.0
    p_damp = md['taup_fs'] / 1000.0
    seed = 1 + (int(md['seed']) + segment) % (2**31 - 2)
    if md['ensemble'] == 'nvt':
        if md['thermostat'] == 'langevin':
            damp = 1.0 / md['friction_per_fs'] / 1000.0
            thermostat = f'fix mlpot_thermostat all langevin {temperature} {temperature} {damp:.12g} {seed}'
        else:
            thermostat = (
                f'fix mlpot_thermostat all temp/csvr {temperature} {temperature} {t_damp:.12g} {seed}'
            )
        return [thermostat, 'fix mlpot_integrate all nve']
    pressure = float(md['pressure_bar'])
    if md['barostat'] == 'mtk':
        return [
            f'fix mlpot_integrate all npt temp {temperature} {temperature} {t_damp:.12g} '
            f'iso {pressure} {pressure} {p_damp:.12g}'
        ]
    modulus = 1.0 / md['compressibility_per_bar']
    return [
        f'fix mlpot_barostat all press/berendsen iso {pressure} {pressure} {p_damp:.12g} modulus {modulus:.12g}',
        f'fix mlpot_thermostat all temp/berendsen {temperature} {temperature} {t_damp:.12g}',
        'fix mlpot_integrate all nve',
    ]


def segment_script(
    potential: dict,
    species: Sequence[str],
    md: dict,
    first_step: int,
    n_steps: int,
    stride: int,
    segment: int = 0,
    create_velocities: bool = False,
    pbc: Sequence[bool] = (True, True, True),
) -> str:
    """Return the LAMMPS script of one segment: ``n_steps`` steps from step ``first_step`` of the run.

    Frames (``id type x y z vx vy vz`` and the potential's forces, stored by ``fix store/force`` before the
    thermostat's fixes act: ``fix langevin`` adds friction and random forces to ``fx fy fz``) are dumped at the global steps that are multiples of
    ``stride`` and at the last step; energy, volume and the virial-only pressure tensor (bar) at the same
    steps go to the thermo file (columns ``step pe vol p1..p6``, LAMMPS order xx yy zz xy xz yz).
    """
    timestep_ps = md['timestep_fs'] / 1000.0
    last_step = first_step + n_steps
    values = ' '.join(f'${{mlpot_v{k}}}' for k in range(len(_THERMO_VALUES)))
    lines = [
        f'# aiida-mlpot ML-MD segment {segment}: steps {first_step} -> {last_step}',
        *_setup_lines(potential, species, pbc, FILENAME_DATA),
        f'reset_timestep {first_step}',
        f'timestep {timestep_ps:.12g}',
    ]
    if create_velocities:
        seed = 1 + int(md['seed']) % (2**31 - 2)
        lines.append(f'velocity all create {float(md["temperature_K"])} {seed} mom yes rot no dist gaussian')
    # fixes act in the order they are defined: store the potential's forces before the thermostat's are added
    lines.append('fix mlpot_force all store/force')
    lines += integrator_lines(md, segment)
    lines += [
        'thermo_style custom step temp pe ke press vol ' + ' '.join(_THERMO_VALUES[3:]),
        f'thermo_modify format float {_FLOAT}',
        f'thermo {stride}',
        *(f'variable mlpot_v{k} equal {name}' for k, name in enumerate(_THERMO_VALUES)),
        f'fix mlpot_print all print {stride} "{values}" file {FILENAME_THERMO} screen no '
        'title "# step pe vol p1 p2 p3 p4 p5 p6"',
        f'dump {_DUMP_ID} all custom {stride} {FILENAME_DUMP} {_DUMP_COLUMNS}',
        f'dump_modify {_DUMP_ID} sort id format float {_FLOAT}',
        f'run {n_steps}',
    ]
    if last_step % stride:
        lines += [
            f'undump {_DUMP_ID}',
            f'write_dump all custom {FILENAME_DUMP} {_DUMP_COLUMNS} modify append yes sort id format float {_FLOAT}',
            f'print "{values}" append {FILENAME_THERMO} screen no',
        ]
    return '\n'.join(lines) + '\n'


# --- output reading ------------------------------------------------------------------------------------------
def _complete_dump_chunks(text: str) -> list[str]:
    """Split a dump into frames and drop an incomplete trailing one (LAMMPS stopped while writing it)."""
    chunks = ['ITEM: TIMESTEP' + chunk for chunk in text.split('ITEM: TIMESTEP')[1:]]
    complete = []
    for chunk in chunks:
        lines = chunk.strip().splitlines()
        try:
            n_atoms = int(lines[3])
            header = next(k for k, line in enumerate(lines) if line.startswith('ITEM: ATOMS'))
        except (IndexError, ValueError, StopIteration):
            break
        if len(lines) < header + 1 + n_atoms:
            break
        complete.append(chunk)
    return complete


def read_thermo(path: str | pathlib.Path) -> dict[int, np.ndarray]:
    """Return the rows of a segment's thermo file keyed by step: ``[pe, vol, p1..p6]`` (eV, Å³, bar)."""
    rows = {}
    path = pathlib.Path(path)
    if not path.is_file():
        return rows
    for line in path.read_text().splitlines():
        fields = line.split()
        if not fields or fields[0].startswith('#'):
            continue
        try:
            values = [float(value) for value in fields]
        except ValueError:
            continue
        if len(values) == len(_THERMO_VALUES):
            rows[int(round(values[0]))] = np.array(values[1:])
    return rows


def _pressure_tensor(p: np.ndarray) -> np.ndarray:
    """Return the 3x3 tensor of LAMMPS pressure components in LAMMPS order (xx, yy, zz, xy, xz, yz)."""
    xx, yy, zz, xy, xz, yz = p
    return np.array([[xx, xy, xz], [xy, yy, yz], [xz, yz, zz]])


def read_segment_frames(
    dump_path: str | pathlib.Path,
    thermo_path: str | pathlib.Path,
    species: Sequence[str],
    prism: Prism,
    timestep_fs: float,
) -> list[Atoms]:
    """Return the frames of a segment in the frame of the ASE input, labelled as the ASE engine labels them.

    Each frame has ``info['energy']`` (eV), ``info['virial']`` (eV, from the virial-only pressure tensor),
    ``arrays['forces']`` (eV/Å), ``arrays['momenta']``, ``info['step']`` (LAMMPS step), ``info['time_fs']``,
    ``info['temperature_K']``, and a :class:`SinglePointCalculator` with energy, forces and stress (read by
    the stability checks). A trailing frame that LAMMPS did not finish writing is dropped.
    """
    from ase.io import read

    dump_path = pathlib.Path(dump_path)
    if not dump_path.is_file():
        return []
    chunks = _complete_dump_chunks(dump_path.read_text())
    if not chunks:
        return []
    raw = read(
        io.StringIO(''.join(chunks)),
        index=':',
        format='lammps-dump-text',
        specorder=list(species),
        prismobj=prism,
        units='metal',
    )
    thermo = read_thermo(thermo_path)
    frames, seen = [], set()
    for atoms in raw:
        step = int(atoms.info['timestep'])
        if step in seen:
            continue  # the last step can be both a periodic dump and a written one
        seen.add(step)
        frame = Atoms(numbers=atoms.numbers, positions=atoms.positions, cell=atoms.cell.array, pbc=True)
        frame.set_velocities(atoms.get_velocities())
        forces = np.column_stack([atoms.arrays[f'f_mlpot_force[{k}]'] for k in (1, 2, 3)])
        forces = prism.vector_to_ase(convert(forces, 'force', 'metal', 'ASE'))
        frame.arrays['forces'] = forces
        results = {'forces': forces}
        row = thermo.get(step)
        if row is not None:
            energy, tensor_bar = float(row[0]), _pressure_tensor(row[2:])
            virial = prism.tensor2_to_ase(pressure_bar_to_virial(tensor_bar, frame.get_volume()))
            results['energy'] = energy
            results['stress'] = virial_to_stress(virial, frame.get_volume())
            if math.isfinite(energy):
                frame.info['energy'] = energy
            if np.all(np.isfinite(virial)):
                frame.info['virial'] = virial
        else:
            results['energy'] = float('nan')  # LAMMPS did not report it: the frame cannot be trusted
        frame.info['step'] = step
        frame.info['time_fs'] = step * float(timestep_fs)
        frame.info['temperature_K'] = kinetic_temperature(frame)
        frame.calc = SinglePointCalculator(frame, **results)
        frames.append(frame)
    return sorted(frames, key=lambda frame: frame.info['step'])


# --- running a segment ---------------------------------------------------------------------------------------
@dataclasses.dataclass
class SegmentRun:
    """What one LAMMPS segment produced."""

    frames: list[Atoms]
    returncode: int
    error: str
    wall_time_s: float


def _lammps_error(workdir: pathlib.Path, stdout: str, stderr: str) -> str:
    for text in (stdout, stderr, _read_text(workdir / FILENAME_LOG)):
        errors = [line.strip() for line in text.splitlines() if line.strip().startswith('ERROR')]
        if errors:
            return errors[0]
    tail = (stderr or stdout).strip().splitlines()
    return tail[-1] if tail else 'no output'


def _read_text(path: pathlib.Path) -> str:
    return path.read_text(errors='replace') if path.is_file() else ''


def run_segment(
    command: str | Sequence[str],
    workdir: str | pathlib.Path,
    atoms: Atoms,
    potential: dict,
    md: dict,
    first_step: int,
    n_steps: int,
    stride: int,
    segment: int = 0,
    create_velocities: bool = False,
    timeout: float | None = None,
) -> SegmentRun:
    """Run one segment of ``n_steps`` from ``atoms`` with the LAMMPS ``command`` in ``workdir``; read its frames.

    ``potential`` is a classical-potential dictionary (:func:`quip_potential` for the ML engine); its files
    must be in ``workdir``. The frames are returned even when LAMMPS fails (those dumped before the error).
    """
    workdir = pathlib.Path(workdir)
    species = species_order(atoms.get_chemical_symbols())
    data, prism = segment_data_file(atoms, species, potential)
    (workdir / FILENAME_DATA).write_text(data)
    script = segment_script(
        potential, species, md, first_step, n_steps, stride, segment, create_velocities, tuple(atoms.pbc)
    )
    (workdir / FILENAME_SCRIPT).write_text(script)
    for name in (FILENAME_DUMP, FILENAME_THERMO):
        (workdir / name).unlink(missing_ok=True)
    arguments = shlex.split(command) if isinstance(command, str) else list(command)
    arguments += ['-in', FILENAME_SCRIPT, '-log', FILENAME_LOG, '-nocite']
    start = time.perf_counter()
    try:
        result = subprocess.run(
            arguments, cwd=workdir, capture_output=True, text=True, timeout=timeout, stdin=subprocess.DEVNULL
        )
        returncode, stdout, stderr = result.returncode, result.stdout, result.stderr
    except subprocess.TimeoutExpired as exception:
        returncode, stdout, stderr = -1, '', f'LAMMPS timed out after {exception.timeout} s'
    wall_time = time.perf_counter() - start
    with open(workdir / FILENAME_SCREEN, 'a') as handle:
        handle.write(f'### segment {segment}: steps {first_step} -> {first_step + n_steps}\n{stdout}{stderr}')
    frames = read_segment_frames(
        workdir / FILENAME_DUMP, workdir / FILENAME_THERMO, species, prism, md['timestep_fs']
    )
    error = '' if returncode == 0 else _lammps_error(workdir, stdout, stderr)
    return SegmentRun(frames=frames, returncode=returncode, error=error, wall_time_s=wall_time)


# --- scoring and the accept / rollback decision --------------------------------------------------------------
class FrameScorer:
    """Extrapolation score of a frame after the fact: GAP variance re-evaluated by quippy, or SOAP novelty.

    For ``gap_variance`` the frame is evaluated by the quippy ``calculator`` with ``local_gap_variance`` (energy
    only: no variance gradient), score = max over atoms of the predictive standard deviation (eV).
    """

    def __init__(self, check: ExtrapolationCheck, calculator=None):
        if check.needs_variance and calculator is None:
            raise ValueError(f'the `{check.name}` measure needs the quippy calculator')
        self.check = check
        self.calculator = calculator
        self.time_s = 0.0

    @property
    def threshold(self) -> float | None:
        return self.check.threshold

    def __call__(self, frame: Atoms) -> float:
        start = time.perf_counter()
        if self.check.needs_variance:
            value = float(gap_variance_training_scores([frame], self.calculator)[0])
        else:
            value = self.check.score(frame)
        self.time_s += time.perf_counter() - start
        return value

    def result(self, value: float) -> CheckResult:
        """Return the check result of a score (triggered when above the threshold or not finite)."""
        threshold = self.check.threshold
        triggered = threshold is not None and (not np.isfinite(value) or value > threshold)
        message = f'{self.check.name} score {value:.4g} above threshold {threshold:.4g}' if triggered else ''
        return CheckResult(self.check.name, self.check.kind, bool(triggered), value, threshold, message)


@dataclasses.dataclass
class Assessment:
    """Decision on the frames of a segment: ``trusted`` frames, and the first failing frame if any."""

    trusted: list[Atoms]
    failing: Atoms | None
    failed: list[CheckResult]
    scored: list[Atoms]

    @property
    def outcome(self) -> str | None:
        return self.failed[0].kind if self.failed else None

    @property
    def examined(self) -> list[Atoms]:
        return self.trusted + ([self.failing] if self.failing is not None else [])


def assess_frames(
    frames: Sequence[Atoms],
    checks: Sequence[Callable[[Atoms], CheckResult]],
    scorer: FrameScorer | None,
    check_interval: int,
    dump_interval: int,
) -> Assessment:
    """Examine ``frames`` in order; stop at the first one that fails a check.

    Every frame goes through the stability ``checks`` (the first one, :class:`FiniteCheck`, alone when it
    fails). A stable frame at a step that is a multiple of ``check_interval`` or ``dump_interval`` is scored
    (``info['uncertainty']``); it fails when the score is above the threshold at a multiple of
    ``check_interval`` (the ASE engine's rule). Returns the trusted frames before the failing one, the
    failing frame and its failed checks, and the scored frames (candidates for ``flagged``).
    """
    trusted, scored = [], []
    for frame in frames:
        step = int(frame.info['step'])
        results = [checks[0](frame)] if checks else []
        if results and not results[0].triggered:
            results += [check(frame) for check in checks[1:]]
        failed = [result for result in results if result.triggered]
        if not failed and scorer is not None and (step % check_interval == 0 or step % dump_interval == 0):
            value = scorer(frame)
            frame.info['uncertainty'] = float(value)
            scored.append(frame)
            result = scorer.result(value)
            if step % check_interval == 0 and result.triggered:
                failed = [result]
        if failed:
            return Assessment(trusted=trusted, failing=frame, failed=failed, scored=scored)
        trusted.append(frame)
    return Assessment(trusted=trusted, failing=None, failed=[], scored=scored)


def stability_checks(stability: dict, temperature_K: float, reference_volume: float) -> list:
    """Return the stability checks of the ``stability`` section (FiniteCheck first, as the ASE engine)."""
    checks = [FiniteCheck()]
    if stability['max_temperature_factor'] is not None:
        checks.append(TemperatureCheck(temperature_K, stability['max_temperature_factor']))
    if stability['max_volume_factor'] is not None:
        checks.append(VolumeCheck(reference_volume, stability['max_volume_factor']))
    if stability['min_distance'] is not None:
        checks.append(MinDistanceCheck(stability['min_distance']))
    return checks


def segment_lengths(n_steps: int, segment_steps: int, stride: int) -> list[int]:
    """Return the segment lengths that cover ``n_steps``: multiples of ``stride`` (but the last one)."""
    length = max(stride, segment_steps // stride * stride)
    lengths = [length] * (n_steps // length)
    if n_steps % length:
        lengths.append(n_steps % length)
    return lengths


def _output_frame(frame: Atoms, extra_info: dict, initial_step: int = 0) -> Atoms:
    """Return the frame as written (no calculator: the labels are in info/arrays), its step counted from 0."""
    output = frame.copy()
    output.calc = None
    output.info.update(extra_info)
    output.info['step'] = initial_step + int(frame.info['step'])
    return output


# --- the driver ----------------------------------------------------------------------------------------------
@dataclasses.dataclass
class SegmentedRun:
    """Result of :func:`run_segmented` (the files are written; this holds what the summary reports)."""

    outcome: str
    reason: str
    failed: list[CheckResult]
    triggered_step: int | None
    final: Atoms
    traces: dict
    n_dumped: int
    n_flagged: int
    n_segments: int
    steps_simulated: int
    lammps_time_s: float


def run_segmented(
    command: str | Sequence[str],
    workdir: str | pathlib.Path,
    atoms: Atoms,
    potential: dict,
    parameters: dict,
    scorer: FrameScorer | None,
    initial_step: int = 0,
    create_velocities: bool = False,
    base_info: dict | None = None,
    files: dict | None = None,
    progress=None,
) -> SegmentedRun:
    """Run the MD in LAMMPS segments, examine each segment's frames, stop and roll back on the first failure.

    :param command: the LAMMPS command line.
    :param atoms: the start frame (with ``momenta`` unless ``create_velocities``).
    :param potential: classical-potential dictionary of the interactions (:func:`quip_potential` for a GAP);
        its files must be in ``workdir``.
    :param parameters: the normalised driver parameters (:func:`aiida_mlpot.engines.ase_md.normalise_parameters`).
    :param scorer: extrapolation measure (None: no measure).
    :param initial_step: step number of the start frame: the output frames are numbered from it, while
        ``check_interval`` and ``dump_interval`` count the steps of this run (as in the ASE engine).
    :param files: paths of ``trajectory``, ``flagged`` and ``final`` (default: those names + ``.xyz`` in workdir).
    :param progress: a :class:`aiida_mlpot.engines.ase_md.ProgressWriter` updated after each segment's frames
        are written (None: no ``progress.json``).
    :raises RuntimeError: LAMMPS failed before writing a single frame (a setup error, not an unstable MD).
    """
    from aiida_mlpot.engines.ase_md import _unlabelled, _write_frames

    workdir = pathlib.Path(workdir)
    base_info = base_info or {}
    files = files or {name: workdir / f'{name}.xyz' for name in ('trajectory', 'flagged', 'final')}
    md, extrapolation, stability = parameters['md'], parameters['extrapolation'], parameters['stability']
    check_interval, dump_interval = extrapolation['check_interval'], md['dump_interval']
    stride = math.gcd(check_interval, dump_interval)
    checks = stability_checks(stability, md['temperature_K'], atoms.get_volume())
    lengths = segment_lengths(md['n_steps'], parameters['lammps']['segment_steps'], stride)

    recent = collections.deque(maxlen=extrapolation['n_flagged'])
    traces = {'step': [], 'score': [], 'volume': [], 'temperature_K': [], 'energy': []}
    outcome, reason, triggered_step, failed = 'completed', '', None, []
    n_dumped, n_simulated, lammps_time = 0, 0, 0.0
    # steps are counted from the start of this run (as the ASE engine counts them); the output adds initial_step
    last_trusted, failing, current_step, segment, last_written = None, None, 0, 0, None
    with open(files['trajectory'], 'w') as trajectory:
        for segment, length in enumerate(lengths):
            result = run_segment(
                command,
                workdir,
                atoms,
                potential,
                md,
                current_step,
                length,
                stride,
                segment,
                create_velocities=create_velocities and segment == 0,
            )
            lammps_time += result.wall_time_s
            if result.frames:
                n_simulated += result.frames[-1].info['step'] - current_step
            elif segment == 0 and result.returncode != 0:
                raise RuntimeError(f'LAMMPS failed before the first frame: {result.error}')
            # the first frame of a later segment is the last frame of the previous one: examined already
            frames = [frame for frame in result.frames if segment == 0 or frame.info['step'] > current_step]
            end_step = current_step + length
            lammps_failed = result.returncode != 0 or not frames or frames[-1].info['step'] != end_step
            assessment = assess_frames(frames, checks, scorer, check_interval, dump_interval)
            examined = assessment.examined
            for frame in examined:
                step = frame.info['step']
                is_last = frame is examined[-1] and (
                    assessment.failing is not None or lammps_failed or segment == len(lengths) - 1
                )
                if 'uncertainty' in frame.info:
                    recent.append(frame)
                if step % check_interval == 0 or step % dump_interval == 0:
                    traces['step'].append(initial_step + step)
                    traces['score'].append(frame.info.get('uncertainty'))
                    traces['volume'].append(float(frame.get_volume()))
                    traces['temperature_K'].append(frame.info['temperature_K'])
                    traces['energy'].append(frame.info.get('energy'))
                if step % dump_interval == 0 or is_last:
                    _write_frames([_output_frame(frame, base_info, initial_step)], trajectory)
                    n_dumped += 1
                    last_written = step
            if progress is not None and last_written is not None:
                scores = [score for score in traces['score'] if score is not None]
                progress.update(
                    last_written, initial_step + last_written, n_dumped, max(scores, default=None)
                )
            if assessment.trusted:
                last_trusted = assessment.trusted[-1]
            if assessment.failing is not None:
                failing, failed = assessment.failing, assessment.failed
                outcome, triggered_step = assessment.outcome, initial_step + int(failing.info['step'])
                reason = '; '.join(item.message for item in failed)
                break
            if lammps_failed:
                outcome = 'unstable'
                triggered_step = initial_step + (int(frames[-1].info['step']) if frames else current_step)
                reason = (
                    f'LAMMPS stopped in segment {segment} (exit code {result.returncode}): {result.error}'
                )
                failed = [CheckResult('lammps', 'unstable', True, float(result.returncode), 0.0, reason)]
                break
            current_step = end_step
            atoms = frames[-1].copy()
            atoms.calc = None

    # roll back: the restart point is the last trusted frame (the failing one if none was trusted)
    final = last_trusted if last_trusted is not None else failing
    if final is None:
        final = atoms.copy()
        final.info['step'] = current_step
    final = _output_frame(final, base_info, initial_step)
    with open(files['final'], 'w') as handle:
        _write_frames([final], handle)
    n_flagged = 0
    if outcome == 'extrapolation':
        flagged = [_unlabelled(_output_frame(frame, base_info, initial_step)) for frame in recent]
        with open(files['flagged'], 'w') as handle:
            _write_frames(flagged, handle)
        n_flagged = len(flagged)
    return SegmentedRun(
        outcome=outcome,
        reason=reason,
        failed=failed,
        triggered_step=triggered_step,
        final=final,
        traces=traces,
        n_dumped=n_dumped,
        n_flagged=n_flagged,
        n_segments=segment + 1,
        steps_simulated=n_simulated,
        lammps_time_s=lammps_time,
    )


def run(config: dict, workdir: str | pathlib.Path = '.') -> dict:
    """Run the segmented LAMMPS + quippy MD described by ``config`` (the driver's JSON input); return the summary.

    :raises RuntimeError: the LAMMPS command has no ``pair_style quip``, or LAMMPS failed at its setup.
    """
    from quippy.potential import Potential

    from aiida_mlpot.engines.ase_md import (
        ProgressWriter,
        _make_extrapolation_check,
        _read_frames,
        normalise_parameters,
    )

    workdir = pathlib.Path(workdir)
    start_time = time.perf_counter()
    parameters = normalise_parameters(config.get('parameters'))
    md = parameters['md']
    command = parameters['lammps']['command'] or 'lmp'
    styles = lammps_pair_styles(command)
    if styles and 'quip' not in styles:
        raise RuntimeError(f'the LAMMPS command `{command}` has no `pair_style quip` (built without ML-QUIP)')

    start = _read_frames(workdir / config['structure'])[int(config.get('structure_index', -1))]
    initial_step = int(config.get('initial_step', 0))
    base_info = {'config_type': config.get('config_type', 'ml_md')}
    if config.get('source_uuid'):
        base_info['source_uuid'] = str(config['source_uuid'])
    atoms = Atoms(numbers=start.numbers, positions=start.positions, cell=start.cell, pbc=True)
    has_momenta = 'momenta' in start.arrays and np.any(start.arrays['momenta'])
    create_velocities = not (has_momenta and md['velocities'] == 'auto')
    if not create_velocities:
        atoms.set_momenta(start.arrays['momenta'])

    potential_config = (
        config['potential'] if isinstance(config['potential'], dict) else {'xml': config['potential']}
    )
    xml = potential_config['xml']
    xml_label = potential_config.get('xml_label') or xml_label_of(workdir / xml)
    potential = quip_potential(xml, xml_label, species_order(atoms.get_chemical_symbols()))
    kwargs = {'param_filename': str(workdir / xml)}
    if potential_config.get('init_args'):
        kwargs['args_str'] = potential_config['init_args']
    calculator = Potential(calc_args=potential_config.get('calc_args', ''), **kwargs)
    setup_start = time.perf_counter()
    check, threshold_info = _make_extrapolation_check(config, parameters, workdir, calculator)
    setup_time = time.perf_counter() - setup_start
    scorer = FrameScorer(check, calculator) if check is not None else None

    files = {name: workdir / config.get(name, f'{name}.xyz') for name in ('trajectory', 'flagged', 'final')}
    progress = ProgressWriter(
        workdir / config.get('progress', 'progress.json'),
        start_time,
        engine='lammps',
        initial_step=initial_step,
        steps_requested=md['n_steps'],
        n_atoms=len(atoms),
        dump_interval=md['dump_interval'],
        check_interval=parameters['extrapolation']['check_interval'],
        threshold=threshold_info['threshold'],
        reference_score=threshold_info['reference_score'],
        reference_computed=threshold_info['reference_computed'],
    )
    loop_start, cpu_start = time.perf_counter(), time.process_time()
    result = run_segmented(
        command,
        workdir,
        atoms,
        potential,
        parameters,
        scorer,
        initial_step,
        create_velocities,
        base_info,
        files,
        progress,
    )
    timing = {
        'wall_time_s': None,
        'extrapolation_setup_time_s': setup_time,
        'loop_time_s': time.perf_counter() - loop_start,
        'loop_cpu_time_s': time.process_time() - cpu_start,
        'scoring_time_s': scorer.time_s if scorer is not None else 0.0,
    }
    summary = summarise(
        result,
        parameters,
        initial_step=initial_step,
        start=atoms,
        command=command,
        create_velocities=create_velocities,
        threshold_info=threshold_info,
        timing=timing,
    )
    summary['wall_time_s'] = time.perf_counter() - start_time
    return summary


def summarise(
    result: SegmentedRun,
    parameters: dict,
    initial_step: int,
    start: Atoms,
    command: str,
    create_velocities: bool,
    threshold_info: dict,
    timing: dict,
) -> dict:
    """Return the run summary: the keys of the ASE engine's summary, plus the segment bookkeeping.

    Extra keys: ``engine`` (``lammps``), ``lammps_command``, ``n_segments``, ``segment_steps``, ``stride``,
    ``steps_simulated`` (steps LAMMPS integrated, those discarded after a failure included),
    ``rollback_step`` (step of ``final.xyz``, the last trusted frame, when the run stopped early),
    ``scoring_time_s``. ``final_step`` is the step of ``final.xyz``: on a trigger it is the rollback step,
    before ``triggered_step`` (the ASE engine stops on the triggering frame itself).
    """
    from aiida_mlpot.engines.ase_md import summary_common

    md, extrapolation = parameters['md'], parameters['extrapolation']
    traces = result.traces
    scores = [score for score in traces['score'] if score is not None]
    finite = [score for score in scores if np.isfinite(score)]
    max_score = (max(finite) if len(finite) == len(scores) else float('inf')) if scores else None
    steps_done = md['n_steps'] if result.outcome == 'completed' else result.triggered_step - initial_step
    stride = math.gcd(extrapolation['check_interval'], md['dump_interval'])
    n_atoms = len(start)
    loop_time, loop_cpu_time = timing['loop_time_s'], timing['loop_cpu_time_s']
    return {
        'outcome': result.outcome,
        'reason': result.reason,
        'failed_checks': [item.as_dict() for item in result.failed],
        'triggered_step': result.triggered_step,
        'initial_step': initial_step,
        'steps_done': steps_done,
        'steps_requested': md['n_steps'],
        'final_step': int(result.final.info['step']),
        'rollback_step': int(result.final.info['step']) if result.outcome != 'completed' else None,
        'steps_simulated': result.steps_simulated,
        'n_atoms': n_atoms,
        'engine': 'lammps',
        'lammps_command': command,
        'ensemble': md['ensemble'],
        'integrator': ' + '.join(line.split()[3] for line in integrator_lines(md, 0)),
        'velocities': 'lammps_gaussian' if create_velocities else 'from_structure',
        'n_segments': result.n_segments,
        'segment_steps': segment_lengths(md['n_steps'], parameters['lammps']['segment_steps'], stride)[0],
        'stride': stride,
        'check_interval': extrapolation['check_interval'],
        'dump_interval': md['dump_interval'],
        'max_score': max_score,
        'n_scored': len(scores),
        'n_dumped': result.n_dumped,
        'n_flagged': result.n_flagged,
        'initial_volume': float(start.get_volume()),
        'final_volume': float(result.final.get_volume()),
        **timing,
        'md_time_s': result.lammps_time_s,
        **summary_common(
            extrapolation,
            threshold_info,
            traces,
            md['ensemble'],
            loop_time,
            loop_cpu_time,
            steps_done,
            n_atoms,
        ),
    }
