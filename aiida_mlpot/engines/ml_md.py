"""The ML-MD driver on the compute node: MD with a GAP, stopped on extrapolation or instability (no AiiDA).

Run as ``python -m aiida_mlpot.engines.ml_md input.json``. The JSON input holds the file names
(``structure``: extended XYZ of the start frame, optionally with ``momenta``; ``potential``: the GAP XML,
its sparseX files next to it, or ``{'xml', 'xml_label', 'init_args', 'calc_args'}``; ``training``:
optional extended XYZ of training frames), ``initial_step``, ``config_type``, ``source_uuid``, the output
file names and the parameters (sections ``md``, ``extrapolation``, ``stability``, ``lammps``; see
:data:`aiida_mlpot.engines.parameters.DEFAULTS`).

The driver sets the run up (start frame, quippy calculator, extrapolation measure and its threshold,
stability checks, progress file), lets an engine advance the dynamics (:class:`~aiida_mlpot.engines.ase_md.AseEngine`,
``md.engine = 'ase'``: ASE + quippy, every step; :class:`~aiida_mlpot.engines.lammps_quip.LammpsEngine`,
``md.engine = 'lammps'``: a LAMMPS with ML-QUIP, in segments), assesses every frame the engine hands over
with :func:`~aiida_mlpot.engines.checks.assess_frame`, and writes the outputs. Inputs, outputs and summary
keys are the same for both engines.

Outputs in the working directory:

* ``trajectory.xyz``: every ``dump_interval`` steps (and the last step), with ``info['energy']`` (eV),
  ``info['virial']`` (eV), ``arrays['forces']`` (eV/Å), ``arrays['momenta']``, ``info['uncertainty']``
  (frame score of the extrapolation measure), ``info['step']``, ``info['time_fs']``, ``info['temperature_K']``;
* ``flagged.xyz``: on extrapolation, the triggering frame and the last scored frames before it, ML
  predictions renamed ``ml_energy``/``ml_forces``/``ml_virial`` (they are candidates to label, not labels);
* ``final.xyz``: the restart point: the last frame (an engine that ``rolls_back``: the last trusted one);
* ``summary.json``: ``outcome`` (``completed`` | ``extrapolation`` | ``unstable`` | ``error``), steps done,
  scores, thresholds, timing, volume/temperature/score traces (written once, at the end, atomically);
* ``progress.json``: rewritten (temporary file + rename) after every dumped frame: steps done, step of the
  last written frame, frames written, maximum score so far, elapsed time. With the trajectory (flushed after
  every frame) it is what is left of a run killed before its end (walltime, node failure, OOM kill): the
  parser then attaches the complete frames and the last one is the restart point.
"""

from __future__ import annotations

import collections
import dataclasses
import pathlib
import re
import sys
import time

import numpy as np
from ase import Atoms

from aiida_mlpot.common.units import stress_to_virial
from aiida_mlpot.descriptors.novelty import kernel_distance
from aiida_mlpot.engines.ase_md import AseEngine
from aiida_mlpot.engines.checks import (
    CheckResult,
    ExtrapolationCheck,
    GapVarianceCheck,
    RematchCheck,
    SoapNoveltyCheck,
    assess_frame,
    gap_variance_training_scores,
    is_traced,
    kinetic_temperature,
    relative_threshold,
    stability_checks,
)
from aiida_mlpot.engines.command import run_command, write_json_atomic
from aiida_mlpot.engines.lammps_quip import LammpsEngine, check_pair_style_quip, quip_potential
from aiida_mlpot.engines.parameters import needs_training, normalise_parameters
from aiida_mlpot.parsers.parse_raw.gap_fit import parse_gap_xml
from aiida_mlpot.potentials.classical import species_order

__all__ = (
    'OUTCOMES',
    'ProgressWriter',
    'RunRecord',
    'complete_frames_text',
    'drive',
    'extrapolation_check',
    'flagged_candidate',
    'main',
    'run',
    'snapshot',
    'summarise',
)

#: Possible outcomes of a run.
OUTCOMES = ('completed', 'extrapolation', 'unstable', 'error')


# --- files ---------------------------------------------------------------------------------------------------
def read_frames(path: str | pathlib.Path) -> list[Atoms]:
    """Return the frames of an extended-XYZ file."""
    from ase.io import read

    frames = read(str(path), index=':', format='extxyz')
    return [frames] if isinstance(frames, Atoms) else list(frames)


def append_frames(frames: list[Atoms], handle) -> None:
    """Write ``frames`` (lossless extended XYZ) to the open ``handle`` and flush it."""
    from aiida_mlpot.data.extxyz import write_frames

    write_frames(frames, handle)
    handle.flush()


class ProgressWriter:
    """Keep ``progress.json`` up to date while the MD runs (one small atomic write per dumped frame).

    The file records the state of the trajectory on disk: ``steps_done`` (steps integrated by this run when
    the last frame was written), ``last_frame_step`` (its step label, ``initial_step`` included), ``n_dumped``,
    ``max_score`` so far and ``elapsed_s`` since the driver started, plus the static ``initial_step``,
    ``steps_requested``, ``n_atoms``, ``engine``, ``dump_interval``, ``check_interval``, ``threshold`` and
    ``reference_score``/``reference_computed`` (so that a relative threshold's reference is not lost either).
    """

    def __init__(self, path: str | pathlib.Path, start_time: float, **static):
        self.path = pathlib.Path(path)
        self.start_time = start_time
        self.static = dict(static)
        self.n_writes = 0

    def update(self, steps_done: int, last_frame_step: int, n_dumped: int, max_score: float | None) -> None:
        """Write the current state; call it after the frame has been written and flushed to the trajectory."""
        elapsed = time.perf_counter() - self.start_time
        data = {
            'outcome': 'running',
            **self.static,
            'steps_done': int(steps_done),
            'last_frame_step': int(last_frame_step),
            'n_dumped': int(n_dumped),
            'max_score': None if max_score is None or not np.isfinite(max_score) else float(max_score),
            'elapsed_s': elapsed,
            'elapsed_per_step_s': elapsed / steps_done if steps_done else None,
        }
        write_json_atomic(self.path, data)
        self.n_writes += 1


_PROPERTIES = re.compile(r'(?:^|\s)Properties=(\S+)')


def complete_frames_text(text: str) -> tuple[str, int, bool]:
    """Return the complete extended-XYZ frames at the start of ``text``, their number, and whether more followed.

    A frame is complete when its atom count, header and all its atom lines are there, each atom line
    newline-terminated and with the number of fields its ``Properties`` announce. Reading stops at the first
    frame that is not (the half-written last frame of a killed run): it and anything after it are dropped.
    """
    lines = text.split('\n')
    lines.pop()  # what follows the last newline: empty, or a line cut in the middle
    position, n_frames = 0, 0
    while position < len(lines):
        try:
            n_atoms = int(lines[position].strip())
        except ValueError:
            break
        if n_atoms <= 0 or position + 2 + n_atoms > len(lines):
            break
        match = _PROPERTIES.search(lines[position + 1])
        n_fields = sum(int(width) for width in match.group(1).split(':')[2::3]) if match else None
        atom_lines = lines[position + 2 : position + 2 + n_atoms]
        if n_fields is not None and any(len(line.split()) != n_fields for line in atom_lines):
            break
        position += 2 + n_atoms
        n_frames += 1
    complete = '\n'.join(lines[:position]) + '\n' if position else ''
    return complete, n_frames, bool(text[len(complete) :].strip())


# --- frames as written -----------------------------------------------------------------------------------------
def snapshot(atoms: Atoms, step: int, time_fs: float, score: float | None, extra_info: dict) -> Atoms:
    """Return the frame as written: positions, cell, momenta and the calculator's finite results as labels.

    ``info``: ``energy`` (eV), ``virial`` (eV, from the stress), ``step``, ``time_fs``, ``temperature_K``,
    ``uncertainty`` (the score, if any) and ``extra_info``; ``arrays``: ``forces`` (eV/Å), ``momenta``.
    """
    results = getattr(atoms.calc, 'results', None) or {}
    frame = Atoms(
        numbers=atoms.numbers.copy(), positions=atoms.positions.copy(), cell=atoms.cell.array.copy(), pbc=True
    )
    frame.arrays['momenta'] = atoms.get_momenta().copy()
    if 'energy' in results and np.isfinite(results['energy']):
        frame.info['energy'] = float(results['energy'])
    if 'forces' in results and np.all(np.isfinite(results['forces'])):
        frame.arrays['forces'] = np.array(results['forces'], dtype=float)
    if 'stress' in results and np.all(np.isfinite(results['stress'])):
        frame.info['virial'] = stress_to_virial(results['stress'], atoms.get_volume())
    frame.info['step'] = int(step)
    frame.info['time_fs'] = float(time_fs)
    frame.info['temperature_K'] = kinetic_temperature(atoms)
    if score is not None:
        frame.info['uncertainty'] = float(score)
    frame.info.update(extra_info)
    return frame


def flagged_candidate(frame: Atoms) -> Atoms:
    """Return a flagged candidate: the ML predictions renamed (``ml_energy``, ``ml_forces``, ``ml_virial``).

    Flagged frames go to the oracle; keeping the ML values under the label names would let them be
    mistaken for reference labels.
    """
    candidate = frame.copy()
    if 'energy' in candidate.info:
        candidate.info['ml_energy'] = candidate.info.pop('energy')
    if 'virial' in candidate.info:
        candidate.info['ml_virial'] = candidate.info.pop('virial')
    if 'forces' in candidate.arrays:
        candidate.arrays['ml_forces'] = candidate.arrays.pop('forces')
    candidate.info['flagged'] = True
    return candidate


# --- set-up --------------------------------------------------------------------------------------------------
def extrapolation_check(
    parameters: dict,
    training: list[Atoms] | None,
    calculator,
    evaluate: bool = False,
    species: tuple[str, ...] = (),
) -> tuple[ExtrapolationCheck | None, dict]:
    """Return the extrapolation measure of ``parameters`` with its threshold set, and the threshold info.

    :param training: the training frames (needed for ``soap_novelty`` and ``rematch``, and for a relative
        threshold without ``reference_score``).
    :param calculator: the quippy calculator (scores the training frames; scores the MD frames if ``evaluate``).
    :param evaluate: the engine's frames carry no GAP variance: the measure evaluates them itself.
    :param species: species of the MD frames (for the SOAP descriptor).
    :return: (check or None for method ``none``, ``{'threshold', 'reference_score', 'reference_computed'}``).

    ``rematch``: the threshold is on the REMatch distance d = sqrt(2 - 2k) to the closest reference; a
    ``critical_similarity`` k_c sets it to sqrt(2 - 2 k_c), a relative threshold to k x the ``percentile`` of
    the training frames' leave-one-out distances.
    """
    extrapolation = parameters['extrapolation']
    method = extrapolation['method']
    if method == 'none':
        return None, {'threshold': None, 'reference_score': None, 'reference_computed': False}
    if method in ('soap_novelty', 'rematch') and not training:
        raise ValueError(f'`{method}` needs the training frames (`training` file)')
    soap = dict(extrapolation['soap'])
    max_environments = soap.pop('max_environments')
    if method == 'soap_novelty':
        check = SoapNoveltyCheck(
            training,
            soap=soap,
            max_environments=max_environments,
            seed=parameters['md']['seed'],
            species=species,
        )
    elif method == 'rematch':
        check = RematchCheck(
            training,
            max_references=extrapolation['max_references'],
            alpha=extrapolation['rematch_alpha'],
            soap=soap,
            seed=parameters['md']['seed'],
            species=species,
        )
    else:
        check = GapVarianceCheck(calculator=calculator if evaluate else None)
    threshold, reference, computed = extrapolation['threshold'], extrapolation['reference_score'], False
    if extrapolation.get('critical_similarity') is not None:
        threshold = float(kernel_distance(extrapolation['critical_similarity']))
    if extrapolation['relative_threshold'] is not None:
        if reference is None:
            if training is None:
                raise ValueError('a relative threshold needs the training frames or a `reference_score`')
            if method in ('soap_novelty', 'rematch'):
                scores = check.training_scores()
            else:
                scores = gap_variance_training_scores(training, calculator)
            reference, computed = relative_threshold(scores, 1.0, extrapolation['percentile'])[1], True
        threshold = extrapolation['relative_threshold'] * reference
    check.threshold = threshold
    return check, {'threshold': threshold, 'reference_score': reference, 'reference_computed': computed}


def quip_calculator(potential: dict, workdir: pathlib.Path):
    """Return the quippy calculator of the ``potential`` entry of the input (energy, forces, stress per call)."""
    from quippy.potential import Potential

    kwargs = {'param_filename': str(workdir / potential['xml'])}
    if potential.get('init_args'):
        kwargs['args_str'] = potential['init_args']
    calculator = Potential(calc_args=potential.get('calc_args', ''), **kwargs)
    calculator.set_default_properties(['energy', 'forces', 'stress'])
    return calculator


# --- the run -------------------------------------------------------------------------------------------------
@dataclasses.dataclass
class RunRecord:
    """What :func:`drive` saw (the files are written; this holds what the summary reports)."""

    outcome: str
    reason: str
    failed: list[CheckResult]
    triggered_step: int | None
    steps_done: int
    final: Atoms
    traces: dict
    max_score: float | None
    n_scored: int
    n_dumped: int
    n_flagged: int
    loop_time_s: float
    loop_cpu_time_s: float


def drive(
    engine,
    parameters: dict,
    checks: list,
    measure: ExtrapolationCheck | None,
    files: dict,
    initial_step: int = 0,
    base_info: dict | None = None,
    progress: ProgressWriter | None = None,
) -> RunRecord:
    """Run ``engine``, assess each frame it hands over, write the trajectory, final and flagged frames.

    :param engine: an :class:`~aiida_mlpot.engines.ase_md.AseEngine` or a
        :class:`~aiida_mlpot.engines.lammps_quip.LammpsEngine` (``start``, ``frames``, ``failure``, ``rolls_back``,
        ``stability_interval``, ``name``).
    :param checks: the stability checks (:func:`~aiida_mlpot.engines.checks.stability_checks`).
    :param measure: the extrapolation measure with its threshold (None: no measure).
    :param files: paths of ``trajectory``, ``flagged`` and ``final``.
    :param initial_step: step number of the start frame: the output frames are numbered from it, while
        ``check_interval`` and ``dump_interval`` count the steps of this run.
    :param progress: updated after every written frame (None: no ``progress.json``).

    A frame is written every ``dump_interval`` steps and at the end (the last assessed frame); the run stops
    at the first frame that fails (outcome ``unstable`` or ``extrapolation``) or when the engine fails
    (``unstable``). ``final`` is the last assessed frame, or for an engine that ``rolls_back`` the last
    trusted one; ``flagged`` (extrapolation) the last ``n_flagged`` scored frames, the failing one last.
    """
    md, extrapolation = parameters['md'], parameters['extrapolation']
    check_interval, dump_interval = extrapolation['check_interval'], md['dump_interval']
    base_info = base_info or {}
    recent = collections.deque(maxlen=extrapolation['n_flagged'])
    traces = {'step': [], 'score': [], 'volume': [], 'temperature_K': [], 'energy': []}
    failed, max_score, n_scored, n_dumped, written = [], None, 0, 0, False
    # (atoms, step, score, snapshot or None) of the last assessed frame and of the last trusted one
    last = trusted = None

    def variance_at(step: int) -> bool:
        return is_traced(step, check_interval, dump_interval)

    def take(atoms: Atoms, step: int, score: float | None, frame: Atoms | None) -> Atoms:
        if frame is not None:
            return frame
        return snapshot(atoms, initial_step + step, step * md['timestep_fs'], score, base_info)

    def write(frame: Atoms, step: int) -> None:
        nonlocal n_dumped
        append_frames([frame], trajectory)
        n_dumped += 1
        if progress is not None:
            progress.update(step, initial_step + step, n_dumped, max_score)

    engine.start(variance_at if measure is not None and measure.needs_variance else None)
    loop_start, cpu_start = time.perf_counter(), time.process_time()
    with open(files['trajectory'], 'w') as trajectory:
        for step, atoms in engine.frames():
            assessment = assess_frame(
                atoms, step, checks, measure, check_interval, dump_interval, engine.stability_interval
            )
            score, frame = assessment.score, None
            if is_traced(step, check_interval, dump_interval):
                frame = take(atoms, step, score, None)
                traces['step'].append(initial_step + step)
                traces['score'].append(score)
                traces['volume'].append(float(atoms.get_volume()))
                traces['temperature_K'].append(frame.info['temperature_K'])
                traces['energy'].append(frame.info.get('energy'))
            if score is not None:
                n_scored += 1
                recent.append(frame)
                finite = np.isfinite(score)  # a non-finite score makes the maximum infinite for good
                max_score = max(score, -np.inf if max_score is None else max_score) if finite else np.inf
            written = step % dump_interval == 0
            if written:
                write(frame, step)
            last = (atoms, step, score, frame)
            if assessment.failed:
                failed = assessment.failed
                break
            trusted = (atoms, step, score, frame)
        if not failed and engine.failure is not None:
            failed = [engine.failure]
        if last is not None and not written:  # the last assessed frame is always written
            last = (*last[:3], take(*last))
            write(last[3], last[1])
    loop_time, loop_cpu_time = time.perf_counter() - loop_start, time.process_time() - cpu_start

    if failed and engine.rolls_back and trusted is not None:
        final = take(*trusted)
    elif last is not None:
        final = last[3]
    else:  # the engine gave no frame at all
        final = take(engine.atoms, 0, None, None)
    with open(files['final'], 'w') as handle:
        append_frames([final], handle)
    n_flagged = 0
    outcome = failed[0].kind if failed else 'completed'
    if outcome == 'extrapolation':
        with open(files['flagged'], 'w') as handle:
            flagged = [flagged_candidate(frame) for frame in recent]
            append_frames(flagged, handle)
        n_flagged = len(flagged)
    steps_done = last[1] if last is not None else 0
    return RunRecord(
        outcome=outcome,
        reason='; '.join(result.message for result in failed),
        failed=failed,
        triggered_step=initial_step + steps_done if failed else None,
        steps_done=steps_done,
        final=final,
        traces=traces,
        max_score=max_score,
        n_scored=n_scored,
        n_dumped=n_dumped,
        n_flagged=n_flagged,
        loop_time_s=loop_time,
        loop_cpu_time_s=loop_cpu_time,
    )


def run(config: dict, workdir: str | pathlib.Path = '.') -> dict:
    """Run the MD described by ``config`` (the parsed JSON input) in ``workdir``; return the summary.

    :raises RuntimeError: ``md.engine = 'lammps'`` and the LAMMPS command has no ``pair_style quip``.
    """
    workdir = pathlib.Path(workdir)
    start_time = time.perf_counter()
    parameters = normalise_parameters(config.get('parameters'))
    md, extrapolation = parameters['md'], parameters['extrapolation']
    command = parameters['lammps']['command'] or 'lmp'
    if md['engine'] == 'lammps':
        check_pair_style_quip(command)

    start = read_frames(workdir / config['structure'])[int(config.get('structure_index', -1))]
    initial_step = int(config.get('initial_step', 0))
    base_info = {'config_type': config.get('config_type', 'ml_md')}
    if config.get('source_uuid'):
        base_info['source_uuid'] = str(config['source_uuid'])
    atoms = Atoms(numbers=start.numbers, positions=start.positions, cell=start.cell, pbc=True)
    has_momenta = 'momenta' in start.arrays and np.any(start.arrays['momenta'])
    momenta = start.arrays['momenta'].copy() if has_momenta and md['velocities'] == 'auto' else None
    potential = config['potential'] if isinstance(config['potential'], dict) else {'xml': config['potential']}
    calculator = quip_calculator(potential, workdir)
    if md['engine'] == 'lammps':
        xml_label = (
            potential.get('xml_label') or parse_gap_xml((workdir / potential['xml']).read_text())['xml_label']
        )
        species = species_order(atoms.get_chemical_symbols())
        interactions = quip_potential(potential['xml'], xml_label, species)
        engine = LammpsEngine(command, workdir, atoms, interactions, parameters, momenta)
    else:
        engine = AseEngine(atoms, calculator, parameters, momenta, potential.get('calc_args', ''))

    setup_start = time.perf_counter()
    training = None
    if config.get('training') and needs_training(parameters):
        training = read_frames(workdir / config['training'])
    measure, threshold_info = extrapolation_check(
        parameters,
        training,
        calculator,
        evaluate=not engine.frames_have_variance,
        species=tuple(sorted(set(atoms.get_chemical_symbols()))),
    )
    setup_time = time.perf_counter() - setup_start

    checks = stability_checks(parameters['stability'], md['temperature_K'], atoms.get_volume())
    files = {name: workdir / config.get(name, f'{name}.xyz') for name in ('trajectory', 'flagged', 'final')}
    progress = ProgressWriter(
        workdir / config.get('progress', 'progress.json'),
        start_time,
        engine=engine.name,
        initial_step=initial_step,
        steps_requested=md['n_steps'],
        n_atoms=len(atoms),
        dump_interval=md['dump_interval'],
        check_interval=extrapolation['check_interval'],
        **threshold_info,
    )
    record = drive(engine, parameters, checks, measure, files, initial_step, base_info, progress)
    summary = summarise(record, engine, parameters, measure, threshold_info, initial_step, start)
    summary['extrapolation_setup_time_s'] = setup_time
    summary['wall_time_s'] = time.perf_counter() - start_time
    return summary


def summarise(
    record: RunRecord,
    engine,
    parameters: dict,
    measure: ExtrapolationCheck | None,
    threshold_info: dict,
    initial_step: int,
    start: Atoms,
) -> dict:
    """Return the run summary (``summary.json``) of a :func:`drive` record; the same keys for every engine.

    The engine adds its own entries (``integrator``, ``velocities``; the LAMMPS engine its segment
    bookkeeping: ``lammps_command``, ``n_segments``, ``segment_steps``, ``stride``, ``steps_simulated``), and an
    engine that ``rolls_back`` reports ``rollback_step`` (the step of ``final.xyz`` when the run stopped early).
    """
    md, extrapolation = parameters['md'], parameters['extrapolation']
    traces, steps_done, n_atoms = record.traces, record.steps_done, len(start)
    loop_time, loop_cpu_time = record.loop_time_s, record.loop_cpu_time_s
    summary = {
        'outcome': record.outcome,
        'reason': record.reason,
        'failed_checks': [result.as_dict() for result in record.failed],
        'triggered_step': record.triggered_step,
        'initial_step': initial_step,
        'steps_done': steps_done,
        'steps_requested': md['n_steps'],
        'final_step': int(record.final.info['step']),
        'n_atoms': n_atoms,
        'engine': engine.name,
        'ensemble': md['ensemble'],
        **engine.summary(),
        'check_interval': extrapolation['check_interval'],
        'dump_interval': md['dump_interval'],
        'max_score': record.max_score,
        'n_scored': record.n_scored,
        'n_dumped': record.n_dumped,
        'n_flagged': record.n_flagged,
        'initial_volume': float(start.get_volume()),
        'final_volume': float(record.final.get_volume()),
        'loop_time_s': loop_time,
        'md_time_s': engine.md_time_s,
        'scoring_time_s': measure.time_s if measure is not None else 0.0,
        **(measure.summary() if measure is not None else {}),
        'loop_cpu_time_s': loop_cpu_time,
        'extrapolation_method': extrapolation['method'],
        **threshold_info,
        'relative_threshold': extrapolation['relative_threshold'],
        'reference_percentile': extrapolation['percentile'],
        'traces': traces,
        'volume_trace': [[s, v] for s, v in zip(traces['step'], traces['volume'])]
        if md['ensemble'] == 'npt'
        else None,
        'time_per_step_s': loop_time / max(steps_done, 1),
        'time_per_atom_step_us': 1e6 * loop_time / max(steps_done * n_atoms, 1),
        'cpu_time_per_atom_step_us': 1e6 * loop_cpu_time / max(steps_done * n_atoms, 1),
        'steps_per_second': steps_done / max(loop_time, 1e-12),
    }
    if engine.rolls_back:
        summary['rollback_step'] = summary['final_step'] if record.outcome != 'completed' else None
    return summary


def main(argv: list[str] | None = None) -> int:
    """Command line entry point: ``python -m aiida_mlpot.engines.ml_md input.json``.

    Always writes ``summary.json`` (``outcome: error`` with the traceback when the run fails); returns 0
    for the designed outcomes (completed, extrapolation, unstable) and 1 for an error.
    """
    return run_command(run, 'aiida_mlpot.engines.ml_md', argv)


if __name__ == '__main__':
    sys.exit(main())
