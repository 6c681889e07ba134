"""ML-driven molecular dynamics on the compute node: ASE + quippy, stopped on extrapolation or instability.

Run as ``python -m aiida_mlpot.engines.ase_md input.json`` (imports no AiiDA). The JSON input holds the
file names (``structure``: extended XYZ of the start frame, optionally with ``momenta``; ``potential``:
the GAP XML, its sparseX files next to it; ``training``: optional extended XYZ of training frames) and
the parameters (sections ``md``, ``extrapolation``, ``stability``, ``lammps``; see :data:`DEFAULTS`).
``md.engine = 'lammps'`` runs the same MD with a LAMMPS built with ML-QUIP, in segments scored afterwards
(:mod:`aiida_mlpot.engines.lammps_quip`); inputs, outputs and summary are the same.

Outputs in the working directory:

* ``trajectory.xyz``: every ``dump_interval`` steps (and the last step), with ``info['energy']`` (eV),
  ``info['virial']`` (eV), ``arrays['forces']`` (eV/Å), ``arrays['momenta']``, ``info['uncertainty']``
  (frame score of the extrapolation measure), ``info['step']``, ``info['time_fs']``, ``info['temperature_K']``;
* ``flagged.xyz``: on extrapolation, the triggering frame and the last scored frames before it, ML
  predictions renamed ``ml_energy``/``ml_forces``/``ml_virial`` (they are candidates to label, not labels);
* ``final.xyz``: the last frame (restart point);
* ``summary.json``: ``outcome`` (``completed`` | ``extrapolation`` | ``unstable`` | ``error``), steps done,
  scores, thresholds, timing, volume/temperature/score traces (written once, at the end, atomically);
* ``progress.json``: rewritten (temporary file + rename) after every dumped frame: steps done, step of the
  last written frame, frames written, maximum score so far, elapsed time. With the trajectory (flushed after
  every frame) it is what is left of a run killed before its end (walltime, node failure, OOM kill): the
  parser then attaches the complete frames and the last one is the restart point.

The potential is evaluated once per step for energy, forces and stress together (quippy re-runs the
whole evaluation for a property not asked for at first). The GAP variance is only requested on the steps
where the extrapolation is measured, so its cost is divided by ``check_interval``.
"""

from __future__ import annotations

import collections
import copy
import json
import os
import pathlib
import re
import sys
import time
import traceback

import numpy as np
from ase import Atoms

from aiida_mlpot.common.units import BAR_TO_EV_PER_ANGSTROM3, FS_TO_ASE_TIME, stress_to_virial
from aiida_mlpot.engines.checks import (
    GAP_VARIANCE_CALC_ARGS,
    FiniteCheck,
    GapVarianceCheck,
    MinDistanceCheck,
    SoapNoveltyCheck,
    TemperatureCheck,
    VolumeCheck,
    gap_variance_training_scores,
    kinetic_temperature,
    relative_threshold,
)

__all__ = (
    'DEFAULTS',
    'OUTCOMES',
    'ProgressWriter',
    'complete_frames_text',
    'main',
    'normalise_parameters',
    'run',
    'write_json_atomic',
)

#: Possible outcomes of a run.
OUTCOMES = ('completed', 'extrapolation', 'unstable', 'error')

#: Default parameters; the input's sections are merged over these.
DEFAULTS: dict = {
    'md': {
        'engine': 'ase',  # ase (ASE + quippy) | lammps (LAMMPS with pair_style quip, segments; see lammps_quip)
        'ensemble': 'nvt',  # nvt | npt
        'thermostat': 'langevin',  # nvt: langevin | bussi
        'barostat': 'mtk',  # npt: mtk (IsotropicMTKNPT) | berendsen (NPTBerendsen)
        'timestep_fs': 2.0,
        'n_steps': 100,
        'temperature_K': 300.0,
        'pressure_bar': 1.0,
        'friction_per_fs': 0.01,  # langevin
        'taut_fs': 100.0,  # bussi, mtk, berendsen
        'taup_fs': 1000.0,  # mtk, berendsen
        'compressibility_per_bar': 4.57e-5,  # berendsen
        'seed': 1,
        'dump_interval': 10,
        'velocities': 'auto',  # auto: momenta of the structure if present, else Maxwell-Boltzmann | maxwell
    },
    'extrapolation': {
        'method': 'gap_variance',  # gap_variance | soap_novelty | none
        'check_interval': 10,
        'threshold': None,  # absolute threshold on the frame score (eV for gap_variance)
        'relative_threshold': None,  # k: threshold = k x percentile of the training frames' scores
        'percentile': 99.0,
        'reference_score': None,  # precomputed percentile of the training scores (skips the computation)
        'n_flagged': 3,  # frames kept as candidates on a trigger (the triggering one included)
        'soap': {'r_cut': 5.0, 'n_max': 4, 'l_max': 3, 'sigma': 0.5, 'max_environments': 20000},
    },
    'stability': {
        'min_distance': 1.0,  # Å; None disables
        'max_temperature_factor': 3.0,  # x target temperature; None disables
        'max_volume_factor': 1.5,  # V/V0 outside [1/f, f]; None disables
        'interval': 1,  # steps between the (cheap) stability checks
    },
    'lammps': {  # md.engine = lammps only
        'command': None,  # LAMMPS command line (e.g. 'lmp' or 'srun lmp_mpi'); None: 'lmp'
        'segment_steps': 100,  # steps per LAMMPS run between two scorings of the dumped frames
    },
}

_CHOICES = {
    ('md', 'engine'): ('ase', 'lammps'),
    ('md', 'ensemble'): ('nvt', 'npt'),
    ('md', 'thermostat'): ('langevin', 'bussi'),
    ('md', 'barostat'): ('mtk', 'berendsen'),
    ('md', 'velocities'): ('auto', 'maxwell'),
    ('extrapolation', 'method'): ('gap_variance', 'soap_novelty', 'none'),
}
_POSITIVE_INT = {
    ('md', 'n_steps'),
    ('md', 'dump_interval'),
    ('extrapolation', 'check_interval'),
    ('lammps', 'segment_steps'),
}
_POSITIVE = {
    ('md', 'timestep_fs'),
    ('md', 'temperature_K'),
    ('md', 'friction_per_fs'),
    ('md', 'taut_fs'),
    ('md', 'taup_fs'),
    ('md', 'compressibility_per_bar'),
    ('extrapolation', 'percentile'),
}
_OPTIONAL_POSITIVE = {
    ('extrapolation', 'threshold'),
    ('extrapolation', 'relative_threshold'),
    ('extrapolation', 'reference_score'),
    ('stability', 'min_distance'),
    ('stability', 'max_temperature_factor'),
    ('stability', 'max_volume_factor'),
}


def normalise_parameters(parameters: dict | None) -> dict:
    """Return the parameters merged over :data:`DEFAULTS`, validated.

    :raises ValueError: unknown section or key, wrong type or value.
    """
    parameters = parameters or {}
    result = copy.deepcopy(DEFAULTS)
    for section, values in parameters.items():
        if section not in DEFAULTS:
            raise ValueError(f'unknown parameter section `{section}`; known: {sorted(DEFAULTS)}')
        if not isinstance(values, dict):
            raise ValueError(f'parameter section `{section}` must be a dictionary')
        for key, value in values.items():
            if key not in DEFAULTS[section]:
                raise ValueError(f'unknown parameter `{section}.{key}`; known: {sorted(DEFAULTS[section])}')
            if key == 'soap':
                unknown = set(value or {}) - set(DEFAULTS[section]['soap'])
                if unknown:
                    raise ValueError(f'unknown SOAP parameter(s) {sorted(unknown)}')
                result[section]['soap'].update(value or {})
            else:
                result[section][key] = value
    for (section, key), choices in _CHOICES.items():
        if result[section][key] not in choices:
            raise ValueError(f'`{section}.{key}` must be one of {choices}, got {result[section][key]!r}')
    for section, key in _POSITIVE_INT:
        value = result[section][key]
        if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
            raise ValueError(f'`{section}.{key}` must be a positive integer, got {value!r}')
    for section, key in _POSITIVE | _OPTIONAL_POSITIVE:
        value = result[section][key]
        if value is None and (section, key) in _OPTIONAL_POSITIVE:
            continue
        if (
            isinstance(value, bool)
            or not isinstance(value, int | float)
            or not np.isfinite(value)
            or value <= 0
        ):
            raise ValueError(f'`{section}.{key}` must be a positive number, got {value!r}')
    for key in ('seed',):
        if isinstance(result['md'][key], bool) or not isinstance(result['md'][key], int):
            raise ValueError(f'`md.{key}` must be an integer')
    pressure = result['md']['pressure_bar']
    if isinstance(pressure, bool) or not isinstance(pressure, int | float):
        raise ValueError('`md.pressure_bar` must be a number')
    extrapolation = result['extrapolation']
    if extrapolation['threshold'] is not None and extrapolation['relative_threshold'] is not None:
        raise ValueError(
            'give either `extrapolation.threshold` or `extrapolation.relative_threshold`, not both'
        )
    if extrapolation['method'] == 'none' and (
        extrapolation['threshold'] is not None or extrapolation['relative_threshold'] is not None
    ):
        raise ValueError('a threshold was given but `extrapolation.method` is `none`')
    if not (isinstance(extrapolation['n_flagged'], int) and extrapolation['n_flagged'] >= 1):
        raise ValueError('`extrapolation.n_flagged` must be an integer >= 1')
    interval = result['stability']['interval']
    if isinstance(interval, bool) or not isinstance(interval, int) or interval <= 0:
        raise ValueError('`stability.interval` must be a positive integer')
    command = result['lammps']['command']
    if command is not None and (not isinstance(command, str) or not command.strip()):
        raise ValueError('`lammps.command` must be a non-empty string or None')
    return result


def needs_training(parameters: dict) -> bool:
    """Return whether a run with these (normalised) parameters needs the training frames."""
    extrapolation = parameters['extrapolation']
    if extrapolation['method'] == 'soap_novelty':
        return True
    return extrapolation['relative_threshold'] is not None and extrapolation['reference_score'] is None


def _read_frames(path: pathlib.Path) -> list[Atoms]:
    from ase.io import read

    frames = read(str(path), index=':', format='extxyz')
    return [frames] if isinstance(frames, Atoms) else list(frames)


def _write_frames(frames: list[Atoms], handle) -> None:
    from aiida_mlpot.data.extxyz import write_frames

    write_frames(frames, handle)
    handle.flush()


def write_json_atomic(path: str | pathlib.Path, data: dict) -> None:
    """Write ``data`` as JSON to ``path`` through a temporary file renamed over it (never half-written)."""
    path = pathlib.Path(path)
    temporary = path.with_name(f'.{path.name}.tmp')
    temporary.write_text(json.dumps(data, indent=1, default=_json_default))
    os.replace(temporary, path)


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


def _make_dynamics(atoms: Atoms, md: dict, rng: np.random.Generator):
    timestep = md['timestep_fs'] * FS_TO_ASE_TIME
    temperature = md['temperature_K']
    if md['ensemble'] == 'nvt':
        if md['thermostat'] == 'langevin':
            from ase.md.langevin import Langevin

            friction = md['friction_per_fs'] / FS_TO_ASE_TIME
            return Langevin(
                atoms, timestep, temperature_K=temperature, friction=friction, fixcm=False, rng=rng
            )
        from ase.md.bussi import Bussi

        return Bussi(atoms, timestep, temperature_K=temperature, taut=md['taut_fs'] * FS_TO_ASE_TIME, rng=rng)
    pressure = md['pressure_bar'] * BAR_TO_EV_PER_ANGSTROM3
    if md['barostat'] == 'mtk':
        from ase.md.nose_hoover_chain import IsotropicMTKNPT

        return IsotropicMTKNPT(
            atoms,
            timestep,
            temperature_K=temperature,
            pressure_au=pressure,
            tdamp=md['taut_fs'] * FS_TO_ASE_TIME,
            pdamp=md['taup_fs'] * FS_TO_ASE_TIME,
        )
    from ase.md.nptberendsen import NPTBerendsen

    return NPTBerendsen(
        atoms,
        timestep,
        temperature_K=temperature,
        pressure_au=pressure,
        taut=md['taut_fs'] * FS_TO_ASE_TIME,
        taup=md['taup_fs'] * FS_TO_ASE_TIME,
        compressibility_au=md['compressibility_per_bar'] / BAR_TO_EV_PER_ANGSTROM3,
        fixcm=False,
    )


def _make_extrapolation_check(config: dict, parameters: dict, workdir: pathlib.Path, calculator):
    """Return (check, threshold info) for the extrapolation measure, with its threshold set."""
    extrapolation = parameters['extrapolation']
    method = extrapolation['method']
    training = None
    if config.get('training') and needs_training(parameters):
        training = _read_frames(workdir / config['training'])
    if method == 'none':
        return None, {'threshold': None, 'reference_score': None, 'reference_computed': False}
    if method == 'soap_novelty':
        if training is None:
            raise ValueError('`soap_novelty` needs the training frames (`training` file)')
        check = SoapNoveltyCheck(training, seed=parameters['md']['seed'], **extrapolation['soap'])
    else:
        check = GapVarianceCheck()
    threshold = extrapolation['threshold']
    reference = extrapolation['reference_score']
    computed = False
    n_training = None
    if extrapolation['relative_threshold'] is not None:
        if reference is None:
            if training is None:
                raise ValueError('a relative threshold needs the training frames or a `reference_score`')
            if method == 'soap_novelty':
                scores = check.training_scores()
            else:
                scores = gap_variance_training_scores(training, calculator)
            _, reference = relative_threshold(scores, 1.0, extrapolation['percentile'])
            computed = True
            n_training = len(scores)
        threshold = extrapolation['relative_threshold'] * reference
    check.threshold = threshold
    info = {
        'threshold': threshold,
        'reference_score': reference,
        'reference_computed': computed,
        'n_training_frames_scored': n_training,
    }
    return check, info


def _snapshot(atoms: Atoms, step: int, time_fs: float, score: float | None, extra_info: dict) -> Atoms:
    """Return a labelled copy of the current frame (energy, forces, virial, momenta, uncertainty)."""
    results = atoms.calc.results
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


def _unlabelled(frame: Atoms) -> Atoms:
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


def run(config: dict, workdir: str | pathlib.Path = '.') -> dict:
    """Run the MD described by ``config`` (the parsed JSON input) in ``workdir``; return the summary."""
    from quippy.potential import Potential

    workdir = pathlib.Path(workdir)
    start_time = time.perf_counter()
    parameters = normalise_parameters(config.get('parameters'))
    if parameters['md']['engine'] == 'lammps':
        from aiida_mlpot.engines.lammps_quip import run as run_lammps

        return run_lammps(config, workdir)
    md, extrapolation, stability = parameters['md'], parameters['extrapolation'], parameters['stability']
    files = {
        'trajectory': workdir / config.get('trajectory', 'trajectory.xyz'),
        'flagged': workdir / config.get('flagged', 'flagged.xyz'),
        'final': workdir / config.get('final', 'final.xyz'),
        'progress': workdir / config.get('progress', 'progress.json'),
    }

    atoms = _read_frames(workdir / config['structure'])[int(config.get('structure_index', -1))]
    initial_step = int(config.get('initial_step', 0))
    base_info = {'config_type': config.get('config_type', 'ml_md')}
    if config.get('source_uuid'):
        base_info['source_uuid'] = str(config['source_uuid'])
    has_momenta = 'momenta' in atoms.arrays and np.any(atoms.arrays['momenta'])
    momenta = atoms.arrays['momenta'].copy() if has_momenta else None
    atoms = Atoms(numbers=atoms.numbers, positions=atoms.positions, cell=atoms.cell, pbc=True)

    potential = config['potential']
    calc_args = potential.get('calc_args', '') if isinstance(potential, dict) else ''
    xml = potential['xml'] if isinstance(potential, dict) else potential
    init_args = potential.get('init_args') if isinstance(potential, dict) else None
    kwargs = {'param_filename': str(workdir / xml)}
    if init_args:
        kwargs['args_str'] = init_args
    calculator = Potential(calc_args=calc_args, **kwargs)
    calculator.set_default_properties(['energy', 'forces', 'stress'])
    setup_start = time.perf_counter()
    check_extrapolation, threshold_info = _make_extrapolation_check(config, parameters, workdir, calculator)
    setup_time = time.perf_counter() - setup_start
    variance_args = f'{calc_args} {GAP_VARIANCE_CALC_ARGS}'.strip()
    needs_variance = check_extrapolation is not None and check_extrapolation.needs_variance

    rng = np.random.default_rng(md['seed'])
    if momenta is not None and md['velocities'] == 'auto':
        atoms.set_momenta(momenta)
        velocities = 'from_structure'
    else:
        from ase.md.velocitydistribution import Stationary, thermalize_momenta

        thermalize_momenta(atoms, md['temperature_K'], rng=rng)
        Stationary(atoms)
        velocities = 'maxwell_boltzmann'
    atoms.calc = calculator
    dynamics = _make_dynamics(atoms, md, rng)
    reference_volume = atoms.get_volume()

    cheap_checks = [FiniteCheck()]
    if stability['max_temperature_factor'] is not None:
        cheap_checks.append(TemperatureCheck(md['temperature_K'], stability['max_temperature_factor']))
    if stability['max_volume_factor'] is not None:
        cheap_checks.append(VolumeCheck(reference_volume, stability['max_volume_factor']))
    if stability['min_distance'] is not None:
        cheap_checks.append(MinDistanceCheck(stability['min_distance']))

    check_interval, dump_interval = extrapolation['check_interval'], md['dump_interval']
    progress = ProgressWriter(
        files['progress'],
        start_time,
        engine='ase',
        initial_step=initial_step,
        steps_requested=md['n_steps'],
        n_atoms=len(atoms),
        dump_interval=dump_interval,
        check_interval=check_interval,
        threshold=threshold_info['threshold'],
        reference_score=threshold_info['reference_score'],
        reference_computed=threshold_info['reference_computed'],
    )
    recent = collections.deque(maxlen=extrapolation['n_flagged'])
    traces = {'step': [], 'score': [], 'volume': [], 'temperature_K': [], 'energy': []}
    outcome, reason, triggered_step, failed = 'completed', '', None, []
    max_score, n_scored, n_dumped, n_flagged = None, 0, 0, 0
    md_time = 0.0
    step = 0

    def traced(index: int) -> bool:
        return index % check_interval == 0 or index % dump_interval == 0

    def scored(index: int) -> bool:
        return check_extrapolation is not None and traced(index)

    with open(files['trajectory'], 'w') as trajectory:
        calculator.calc_args = variance_args if needs_variance else calc_args
        calculator.reset()
        atoms.get_forces()
        loop_start, loop_cpu_start = time.perf_counter(), time.process_time()
        for step in range(md['n_steps'] + 1):
            if step > 0:
                if needs_variance:
                    calculator.calc_args = variance_args if scored(step) else calc_args
                tick = time.perf_counter()
                dynamics.step()
                dynamics.nsteps += 1
                md_time += time.perf_counter() - tick
            label = initial_step + step
            time_fs = step * md['timestep_fs']
            results = [check(atoms) for check in cheap_checks[:1]]
            if not results[0].triggered and (step % stability['interval'] == 0):
                results += [check(atoms) for check in cheap_checks[1:]]
            failed = [result for result in results if result.triggered]
            score = None
            if not failed and scored(step):
                result = check_extrapolation.check(atoms)
                score = result.value
                n_scored += 1
                max_score = score if max_score is None or not score <= max_score else max_score
                if step % check_interval == 0 and result.triggered:
                    failed = [result]
            is_last = step == md['n_steps'] or bool(failed)
            frame = None
            if traced(step) or is_last:
                frame = _snapshot(atoms, label, time_fs, score, base_info)
            if score is not None:
                recent.append(frame)
            if traced(step):
                traces['step'].append(label)
                traces['score'].append(score)
                traces['volume'].append(float(atoms.get_volume()))
                traces['temperature_K'].append(frame.info['temperature_K'])
                traces['energy'].append(frame.info.get('energy'))
            if step % dump_interval == 0 or is_last:
                _write_frames([frame], trajectory)
                n_dumped += 1
                progress.update(step, label, n_dumped, max_score)
            if failed:
                outcome = failed[0].kind
                reason = '; '.join(result.message for result in failed)
                triggered_step = label
                break
    loop_time = time.perf_counter() - loop_start
    loop_cpu_time = time.process_time() - loop_cpu_start
    with open(files['final'], 'w') as handle:
        _write_frames([frame], handle)
    if outcome == 'extrapolation':
        with open(files['flagged'], 'w') as handle:
            flagged = [_unlabelled(frame) for frame in recent]
            _write_frames(flagged, handle)
            n_flagged = len(flagged)

    steps_done = step
    wall_time = time.perf_counter() - start_time
    return {
        'outcome': outcome,
        'reason': reason,
        'failed_checks': [result.as_dict() for result in failed],
        'triggered_step': triggered_step,
        'initial_step': initial_step,
        'steps_done': steps_done,
        'steps_requested': md['n_steps'],
        'final_step': initial_step + steps_done,
        'n_atoms': len(atoms),
        'ensemble': md['ensemble'],
        'integrator': type(dynamics).__name__,
        'velocities': velocities,
        'check_interval': check_interval,
        'dump_interval': dump_interval,
        'max_score': max_score,
        'n_scored': n_scored,
        'n_dumped': n_dumped,
        'n_flagged': n_flagged,
        'initial_volume': reference_volume,
        'final_volume': float(atoms.get_volume()),
        'wall_time_s': wall_time,
        'extrapolation_setup_time_s': setup_time,
        'loop_time_s': loop_time,
        'md_time_s': md_time,
        'loop_cpu_time_s': loop_cpu_time,
        **summary_common(
            extrapolation,
            threshold_info,
            traces,
            md['ensemble'],
            loop_time,
            loop_cpu_time,
            steps_done,
            len(atoms),
        ),
    }


def summary_common(
    extrapolation: dict,
    threshold_info: dict,
    traces: dict,
    ensemble: str,
    loop_time: float,
    loop_cpu_time: float,
    steps_done: int,
    n_atoms: int,
) -> dict:
    """Return the summary entries every engine reports: threshold, traces, volume trace (NPT), speeds."""
    return {
        'extrapolation_method': extrapolation['method'],
        'threshold': threshold_info['threshold'],
        'relative_threshold': extrapolation['relative_threshold'],
        'reference_score': threshold_info['reference_score'],
        'reference_computed': threshold_info['reference_computed'],
        'reference_percentile': extrapolation['percentile'],
        'traces': traces,
        'volume_trace': [[s, v] for s, v in zip(traces['step'], traces['volume'])]
        if ensemble == 'npt'
        else None,
        'time_per_step_s': loop_time / max(steps_done, 1),
        'time_per_atom_step_us': 1e6 * loop_time / max(steps_done * n_atoms, 1),
        'cpu_time_per_atom_step_us': 1e6 * loop_cpu_time / max(steps_done * n_atoms, 1),
        'steps_per_second': steps_done / max(loop_time, 1e-12),
    }


def _json_default(value):
    if isinstance(value, np.integer):
        return int(value)
    if isinstance(value, np.floating):
        return float(value)
    if isinstance(value, np.ndarray):
        return value.tolist()
    raise TypeError(f'cannot serialise {type(value).__name__}')


def main(argv: list[str] | None = None) -> int:
    """Command line entry point: ``python -m aiida_mlpot.engines.ase_md input.json``.

    Always writes ``summary.json`` (``outcome: error`` with the traceback when the run fails); returns 0
    for the designed outcomes (completed, extrapolation, unstable) and 1 for an error.
    """
    argv = sys.argv[1:] if argv is None else argv
    if len(argv) != 1:
        print('usage: python -m aiida_mlpot.engines.ase_md input.json', file=sys.stderr)
        return 2
    input_path = pathlib.Path(argv[0])
    workdir = input_path.parent
    summary_name = 'summary.json'
    try:
        config = json.loads(input_path.read_text())
        summary_name = config.get('summary', summary_name)
        summary = run(config, workdir)
        code = 0
    except Exception as exception:
        traceback.print_exc()
        summary = {'outcome': 'error', 'reason': f'{type(exception).__name__}: {exception}'}
        code = 1
    write_json_atomic(workdir / summary_name, summary)
    print(f'outcome: {summary["outcome"]} {summary.get("reason", "")}'.strip())
    return code


if __name__ == '__main__':
    sys.exit(main())
