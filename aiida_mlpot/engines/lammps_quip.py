"""The LAMMPS engine of the ML-MD driver: a LAMMPS built with ML-QUIP (``pair_style quip``), in segments.

Selected with ``md.engine = 'lammps'`` in the driver's parameters (:mod:`aiida_mlpot.engines.ml_md`: same JSON
input, same output files, same summary keys; no AiiDA). HPC installs often have a LAMMPS with ML-QUIP; it
integrates a GAP much faster than ASE, but LAMMPS cannot return the GAP predictive variance. So the run is
cut into **segments** of ``lammps.segment_steps`` steps:

1. write a LAMMPS data file of the current frame (positions, cell and velocities) and a script with
   ``pair_style quip`` (type order and atomic-number map from :func:`quip_potential`);
2. run the LAMMPS command for the segment, dumping every ``stride`` steps (the gcd of ``check_interval``
   and ``dump_interval``) positions, velocities and forces, and printing energy, volume and the
   virial-only pressure tensor at the same steps;
3. read the dumped frames back and hand them to the driver in order; the driver assesses each one
   (:func:`aiida_mlpot.engines.checks.assess_frame`: the stability checks on every frame, the extrapolation
   score re-evaluated by quippy on the frames at multiples of ``check_interval`` or ``dump_interval``);
4. if the driver takes every frame, continue from the last one (positions + velocities); otherwise the
   driver stops and **rolls back** (``rolls_back``): the frames LAMMPS integrated past the first failing
   one are discarded, ``final.xyz`` is the last trusted frame (the restart point).

A LAMMPS error inside a segment (lost atoms, non-finite forces) is ``unstable`` (:attr:`LammpsEngine.failure`)
after the frames dumped before the error have been assessed. Differences with the ASE engine, by
construction: the stability checks see the dumped frames (every ``stride`` steps, not
``stability.interval``); the thermostat and barostat state (Nosé-Hoover chain variables) restarts at each
segment, only positions and velocities carry over; the random stream of the Langevin/CSVR thermostat is
seeded per segment (``seed + segment``).
"""

from __future__ import annotations

import dataclasses
import io
import math
import pathlib
import re
import shlex
import subprocess
import time
from collections.abc import Iterator, Sequence

import numpy as np
from ase import Atoms
from ase.calculators.lammps import Prism, convert
from ase.calculators.singlepoint import SinglePointCalculator
from ase.data import atomic_numbers

from aiida_mlpot.common.units import pressure_bar_to_virial, virial_to_stress
from aiida_mlpot.engines.checks import CheckResult
from aiida_mlpot.parsers.parse_raw.lammps import virial_pressure_tensor
from aiida_mlpot.potentials.classical import species_order
from aiida_mlpot.potentials.lammps_input import setup_lines, write_data_file

__all__ = (
    'LammpsEngine',
    'Segment',
    'check_pair_style_quip',
    'integrator_lines',
    'lammps_pair_styles',
    'quip_potential',
    'read_segment_frames',
    'read_thermo',
    'run_segment',
    'segment_data_file',
    'segment_lengths',
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
#: Names of the thermo columns in the table of :func:`read_thermo` (pressure components in LAMMPS order).
_THERMO_COLUMNS = ('step', 'pe', 'vol', 'pxx', 'pyy', 'pzz', 'pxy', 'pxz', 'pyz')
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


def check_pair_style_quip(command: str | Sequence[str]) -> None:
    """Raise if the LAMMPS ``command`` lists its pair styles and ``quip`` is not among them.

    :raises RuntimeError: the LAMMPS was built without ML-QUIP.
    """
    styles = lammps_pair_styles(command)
    if styles and 'quip' not in styles:
        raise RuntimeError(f'the LAMMPS command `{command}` has no `pair_style quip` (built without ML-QUIP)')


# --- input writing -------------------------------------------------------------------------------------------
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


@dataclasses.dataclass(frozen=True)
class Segment:
    """One LAMMPS run of the engine: ``n_steps`` steps from step ``first_step`` of the MD, a frame every ``stride``.

    ``index`` numbers the segments of a run (it offsets the thermostat seed); ``create_velocities``: LAMMPS
    draws Gaussian velocities at the target temperature instead of reading them from the data file.
    """

    first_step: int
    n_steps: int
    stride: int
    index: int = 0
    create_velocities: bool = False

    @property
    def last_step(self) -> int:
        return self.first_step + self.n_steps

    def __str__(self) -> str:
        return f'segment {self.index}: steps {self.first_step} -> {self.last_step}'


def segment_script(
    potential: dict,
    species: Sequence[str],
    md: dict,
    segment: Segment,
    pbc: Sequence[bool] = (True, True, True),
) -> str:
    """Return the LAMMPS script of one ``segment`` of the MD of the driver's ``md`` section.

    Frames (``id type x y z vx vy vz`` and the potential's forces, stored by ``fix store/force`` before the
    thermostat's fixes act: ``fix langevin`` adds friction and random forces to ``fx fy fz``) are dumped at the global steps that are multiples of
    ``stride`` and at the last step; energy, volume and the virial-only pressure tensor (bar) at the same
    steps go to the thermo file (columns ``step pe vol p1..p6``, LAMMPS order xx yy zz xy xz yz).
    """
    timestep_ps = md['timestep_fs'] / 1000.0
    stride = segment.stride
    values = ' '.join(f'${{mlpot_v{k}}}' for k in range(len(_THERMO_VALUES)))
    lines = [
        f'# aiida-mlpot ML-MD {segment}',
        *setup_lines(potential, species, pbc, FILENAME_DATA),
        f'reset_timestep {segment.first_step}',
        f'timestep {timestep_ps:.12g}',
    ]
    if segment.create_velocities:
        seed = 1 + int(md['seed']) % (2**31 - 2)
        lines.append(f'velocity all create {float(md["temperature_K"])} {seed} mom yes rot no dist gaussian')
    # fixes act in the order they are defined: store the potential's forces before the thermostat's are added
    lines.append('fix mlpot_force all store/force')
    lines += integrator_lines(md, segment.index)
    lines += [
        'thermo_style custom step temp pe ke press vol ' + ' '.join(_THERMO_VALUES[3:]),
        f'thermo_modify format float {_FLOAT}',
        f'thermo {stride}',
        *(f'variable mlpot_v{k} equal {name}' for k, name in enumerate(_THERMO_VALUES)),
        f'fix mlpot_print all print {stride} "{values}" file {FILENAME_THERMO} screen no '
        'title "# step pe vol p1 p2 p3 p4 p5 p6"',
        f'dump {_DUMP_ID} all custom {stride} {FILENAME_DUMP} {_DUMP_COLUMNS}',
        f'dump_modify {_DUMP_ID} sort id format float {_FLOAT}',
        f'run {segment.n_steps}',
    ]
    if segment.last_step % stride:
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


def read_thermo(path: str | pathlib.Path) -> dict[str, np.ndarray]:
    """Return the complete rows of a segment's thermo file as columns ``step pe vol pxx pyy pzz pxy pxz pyz``.

    Energies in eV, volumes in Å³, the virial-only pressure tensor in bar; a row LAMMPS did not finish is
    skipped.
    """
    rows = []
    path = pathlib.Path(path)
    for line in path.read_text().splitlines() if path.is_file() else []:
        fields = line.split()
        if not fields or fields[0].startswith('#') or len(fields) != len(_THERMO_COLUMNS):
            continue
        try:
            rows.append([float(value) for value in fields])
        except ValueError:
            continue
    data = np.array(rows, dtype=float).reshape(len(rows), len(_THERMO_COLUMNS))
    return {name: data[:, k] for k, name in enumerate(_THERMO_COLUMNS)}


def read_segment_frames(
    dump_path: str | pathlib.Path,
    thermo_path: str | pathlib.Path,
    species: Sequence[str],
    prism: Prism,
) -> list[Atoms]:
    """Return the frames of a segment in the frame of the ASE input, as the ASE engine hands its frames over.

    Each frame has its positions, cell, ``momenta``, ``info['step']`` (LAMMPS step) and a
    :class:`SinglePointCalculator` with the energy (eV), the forces (eV/Å) and the stress from the
    virial-only pressure tensor; the energy is NaN when the thermo file has no row of that step (the frame
    cannot be trusted). A trailing frame that LAMMPS did not finish writing is dropped.
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
    rows = {int(round(step)): row for row, step in enumerate(thermo['step'])}
    frames, seen = [], set()
    for atoms in raw:
        step = int(atoms.info['timestep'])
        if step in seen:
            continue  # the last step can be both a periodic dump and a written one
        seen.add(step)
        frame = Atoms(numbers=atoms.numbers, positions=atoms.positions, cell=atoms.cell.array, pbc=True)
        frame.set_velocities(atoms.get_velocities())
        forces = np.column_stack([atoms.arrays[f'f_mlpot_force[{k}]'] for k in (1, 2, 3)])
        results = {
            'forces': prism.vector_to_ase(convert(forces, 'force', 'metal', 'ASE')),
            'energy': math.nan,
        }
        row = rows.get(step)
        if row is not None:
            volume = frame.get_volume()
            virial = prism.tensor2_to_ase(pressure_bar_to_virial(virial_pressure_tensor(thermo, row), volume))
            results['energy'] = float(thermo['pe'][row])
            results['stress'] = virial_to_stress(virial, volume)
        frame.info['step'] = step
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
    segment: Segment,
    timeout: float | None = None,
) -> SegmentRun:
    """Run one ``segment`` from ``atoms`` with the LAMMPS ``command`` in ``workdir``; read its frames.

    ``potential`` is a classical-potential dictionary (:func:`quip_potential` for the ML engine); its files
    must be in ``workdir``. The frames are returned even when LAMMPS fails (those dumped before the error).
    """
    workdir = pathlib.Path(workdir)
    species = species_order(atoms.get_chemical_symbols())
    data, prism = segment_data_file(atoms, species, potential)
    (workdir / FILENAME_DATA).write_text(data)
    (workdir / FILENAME_SCRIPT).write_text(segment_script(potential, species, md, segment, tuple(atoms.pbc)))
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
        handle.write(f'### {segment}\n{stdout}{stderr}')
    frames = read_segment_frames(workdir / FILENAME_DUMP, workdir / FILENAME_THERMO, species, prism)
    error = '' if returncode == 0 else _lammps_error(workdir, stdout, stderr)
    return SegmentRun(frames=frames, returncode=returncode, error=error, wall_time_s=wall_time)


# --- the engine --------------------------------------------------------------------------------------------
def segment_lengths(n_steps: int, segment_steps: int, stride: int) -> list[int]:
    """Return the segment lengths that cover ``n_steps``: multiples of ``stride`` (but the last one)."""
    length = max(stride, segment_steps // stride * stride)
    lengths = [length] * (n_steps // length)
    if n_steps % length:
        lengths.append(n_steps % length)
    return lengths


class LammpsEngine:
    """Integrate ``parameters['md']['n_steps']`` steps with the LAMMPS ``command``, segment by segment.

    :param command: the LAMMPS command line.
    :param workdir: where the segment files are written; the potential's files must be there.
    :param atoms: the start frame (positions and cell).
    :param potential: classical-potential dictionary of the interactions (:func:`quip_potential` for a GAP).
    :param parameters: the normalised driver parameters (:func:`aiida_mlpot.engines.parameters.normalise_parameters`).
    :param momenta: start momenta; None: LAMMPS creates Gaussian velocities at the target temperature.

    The driver's engine protocol (see :class:`aiida_mlpot.engines.ase_md.AseEngine`): :meth:`frames` yields
    ``(step, frame)`` for the frames dumped every ``stride`` steps, steps counted from the start of this run;
    after the frames of a segment LAMMPS did not finish, it stops with :attr:`failure` set (``unstable``).
    """

    name = 'lammps'
    #: on a failure the restart point is the last trusted frame, not the failing one
    rolls_back = True
    #: the frames carry no GAP variance: the driver's measure evaluates them itself
    frames_have_variance = False
    #: the stability checks see every dumped frame
    stability_interval = 1

    def __init__(
        self,
        command: str | Sequence[str],
        workdir: str | pathlib.Path,
        atoms: Atoms,
        potential: dict,
        parameters: dict,
        momenta: np.ndarray | None = None,
    ):
        md, extrapolation = parameters['md'], parameters['extrapolation']
        self.command = command
        self.workdir = pathlib.Path(workdir)
        self.atoms = Atoms(numbers=atoms.numbers, positions=atoms.positions, cell=atoms.cell, pbc=True)
        self.create_velocities = momenta is None
        if momenta is not None:
            self.atoms.set_momenta(momenta)
        self.potential = potential
        self.md = md
        self.stride = math.gcd(extrapolation['check_interval'], md['dump_interval'])
        self.lengths = segment_lengths(md['n_steps'], parameters['lammps']['segment_steps'], self.stride)
        self.failure: CheckResult | None = None
        self.n_segments = 0
        self.steps_simulated = 0
        self.md_time_s = 0.0

    def start(self, variance_at=None) -> None:
        """Nothing to evaluate before the first segment (the protocol of the driver's engines)."""

    def frames(self) -> Iterator[tuple[int, Atoms]]:
        """Run the segments; yield each new dumped frame. The caller stops iterating at a failing frame.

        :raises RuntimeError: LAMMPS failed before writing a single frame (a setup error, not an unstable MD).
        """
        atoms, current_step = self.atoms, 0
        for segment, length in enumerate(self.lengths):
            create_velocities = self.create_velocities and segment == 0
            run = Segment(current_step, length, self.stride, segment, create_velocities)
            result = run_segment(self.command, self.workdir, atoms, self.potential, self.md, run)
            self.n_segments = segment + 1
            self.md_time_s += result.wall_time_s
            if result.frames:
                self.steps_simulated += result.frames[-1].info['step'] - current_step
            elif segment == 0 and result.returncode != 0:
                raise RuntimeError(f'LAMMPS failed before the first frame: {result.error}')
            # the first frame of a later segment is the last frame of the previous one: assessed already
            frames = [frame for frame in result.frames if segment == 0 or frame.info['step'] > current_step]
            for frame in frames:
                yield int(frame.info['step']), frame
            end_step = current_step + length
            if result.returncode != 0 or not frames or frames[-1].info['step'] != end_step:
                reason = (
                    f'LAMMPS stopped in segment {segment} (exit code {result.returncode}): {result.error}'
                )
                self.failure = CheckResult('lammps', 'unstable', True, float(result.returncode), 0.0, reason)
                return
            current_step = end_step
            atoms = frames[-1].copy()
            atoms.calc = None

    def summary(self) -> dict:
        """Return the engine's entries of the run summary (segment bookkeeping)."""
        return {
            'lammps_command': self.command,
            'integrator': ' + '.join(line.split()[3] for line in integrator_lines(self.md, 0)),
            'velocities': 'lammps_gaussian' if self.create_velocities else 'from_structure',
            'n_segments': self.n_segments,
            'segment_steps': self.lengths[0],
            'stride': self.stride,
            'steps_simulated': self.steps_simulated,
        }
