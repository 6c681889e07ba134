"""Selection study: which configurations to label, measured at equal label budgets with teacher oracles.

Issue 12. For each system, a classical teacher (LAMMPS) makes the sampling pool, a held-out test set at the
training temperature and a hotter tail set; each selection method picks ``budget`` pool frames, a GAP is
fitted to them (``gap_fit``, this project's ``fast`` protocol) and judged by

* force MAE / RMSE / max and energy RMSE on the held-out test set and on the hot tail set;
* the **audit**: an ML-MD run (NVT at the training temperature, the package's ML-MD driver
  :func:`aiida_mlpot.engines.ml_md.run`, ASE + quippy) from a held-out frame; the frames it visits are
  relabelled by the teacher (the "rerun") and the same errors computed on them;
* stability: steps before the driver's stability checks fail, up to ``md_steps`` (the cap);
* the partial RDFs of the visited frames against the teacher's: |Δg| per pair and short-range artefacts
  (:mod:`aiida_mlpot.analysis.rdf`);
* optionally (``--npt``) the NPT density error of an ML NPT run against the teacher's NPT density.

Methods: ``random``, ``temporal``, ``uniform_energy`` (global energy per atom), ``uniform_force`` (per-atom
|f|), ``uniform_atomic_energy`` (per-atom E_i), ``fps`` (SOAP farthest points), all from
:mod:`aiida_mlpot.selection`, and ``active`` (active learning, below). Each trained potential counts its
labels: the budget, or for active learning every configuration of its training set (its audit labels are
reported apart).

**Active learning arm.** The loop of ``ActiveLearningWorkChain`` run in process with the package's pure
pieces, without AiiDA (the AiiDA overhead, measured at 1.2x the codes' CPU in ``bench_active_learning.py``,
would dominate at this size): initial set by uniform |f| then FPS (the ``fast`` protocol's two steps, scaled
to ``al_initial``), fit, then per iteration one exploration with the ML-MD driver watched by the GAP variance
(relative threshold 3 x the training 99th percentile, the ``ml_md`` protocol), the label plan of
:func:`aiida_mlpot.selection.active.plan_labels` (audit frames and distinct candidates), teacher labels,
candidates into the training set, refit; until an exploration runs ``md_steps`` without trigger and its
audit force RMSE is below ``audit_force_rmse`` (:func:`aiida_mlpot.analysis.convergence.convergence_verdict`),
or the training set reaches the largest budget. Every intermediate potential is judged exactly as the
other methods' ones, so the active-learning curve (labels -> audit error) is comparable point by point.

The binaries are called directly (``lmp``, ``gap_fit``; the ML MD in process): this is a benchmark, the
AiiDA provenance of the same steps is what the work chains add. Intermediate results are cached under
``--workdir`` (default ``/tmp/study``): a rerun continues where a crash stopped.

Commands::

    # one system per process (each single-threaded), then the report
    nice -n 10 .venv/bin/python benchmarks/selection_study.py run --system nacl_local
    nice -n 10 .venv/bin/python benchmarks/selection_study.py run --system nacl_coulomb --seeds 1
    nice -n 10 .venv/bin/python benchmarks/selection_study.py run --system au_liquid
    .venv/bin/python benchmarks/selection_study.py report --out docs/study
    # a few minutes: one system, budgets 8/16, one seed, short MD
    nice -n 10 .venv/bin/python benchmarks/selection_study.py run --quick --system nacl_local
"""

from __future__ import annotations

import argparse
import copy
import json
import os
import pathlib
import subprocess
import sys
import time

import numpy as np
from ase import Atoms
from ase.build import bulk

from aiida_mlpot.analysis.convergence import convergence_verdict
from aiida_mlpot.analysis.errors import compute_errors
from aiida_mlpot.analysis.rdf import partial_rdfs, rdf_difference, short_range_artefacts
from aiida_mlpot.common.units import pressure_bar_to_virial
from aiida_mlpot.data.extxyz import read_frames, write_frames
from aiida_mlpot.engines import ml_md
from aiida_mlpot.inputs.gap_fit import build_command_line, coulomb_baseline_xml, validate_parameters
from aiida_mlpot.parsers.parse_raw.gap_fit import parse_gap_xml
from aiida_mlpot.parsers.parse_raw.lammps import parse_columns_file, parse_dump, virial_pressure_tensor
from aiida_mlpot.potentials.classical import species_order
from aiida_mlpot.potentials.lammps_input import (
    LABEL_COLUMNS,
    THERMO_COLUMNS,
    md_script,
    rerun_script,
    write_data_file,
)
from aiida_mlpot.presets import nacl_tosi_fumi
from aiida_mlpot.selection import (
    select_fps,
    select_random,
    select_temporal,
    select_uniform_atomic_energy,
    select_uniform_energy,
    select_uniform_force,
)
from aiida_mlpot.selection.active import plan_labels
from aiida_mlpot.structures import random_box

HERE = pathlib.Path(__file__).resolve().parent
REPO = HERE.parent
GAP_FIT = str(pathlib.Path(sys.executable).parent / 'gap_fit')
LMP = os.environ.get('MLPOT_LMP', 'lmp')
EAM_GOLD = '/usr/share/lammps/potentials/Au_u3.eam'

METHODS = ('random', 'temporal', 'uniform_energy', 'uniform_force', 'uniform_atomic_energy', 'fps', 'active')


def _fast_parameters() -> dict:
    """This project's ``fast`` gap_fit protocol (read from the protocol file, not copied)."""
    import yaml

    text = (REPO / 'aiida_mlpot/workflows/protocols/gap_fit.yaml').read_text()
    protocol = yaml.safe_load(text)
    parameters = copy.deepcopy(protocol['default_inputs']['gap_fit']['parameters'])
    parameters.update(copy.deepcopy(protocol['protocols']['fast']['gap_fit']['parameters']))
    return parameters


#: autoplex's published GAP defaults (facts from autoatml/autoplex,
#: src/autoplex/fitting/mlip_hypers/_gap_hypers.py at d327868: general two_body=False, three_body=False,
#: soap=True; default_sigma {0.0001 0.05 0.05 0}; sparse_jitter 1e-8; SOAP l_max 10, n_max 12, atom_sigma 0.5,
#: zeta 4, cutoff 5.0, cutoff_transition_width 1.0, central_weight 1.0, n_sparse 6000, delta 1.0,
#: covariance dot_product, sparse_method cur_points). n_sparse is capped at the atoms of the training set.
AUTOPLEX_GAP = {
    'descriptors': [
        {
            'type': 'soap',
            'n_max': 12,
            'l_max': 10,
            'atom_sigma': 0.5,
            'zeta': 4,
            'cutoff': 5.0,
            'cutoff_transition_width': 1.0,
            'central_weight': 1.0,
            'n_sparse': 6000,
            'delta': 1.0,
            'covariance_type': 'dot_product',
            'sparse_method': 'cur_points',
        }
    ],
    'default_sigma': {'energy': 0.0001, 'force': 0.05, 'virial': 0.05, 'hessian': 0.0},
    'sparse_jitter': 1.0e-8,
    'e0_method': 'average',
    'seed': 1,
}


def gold_eam() -> dict:
    """The EAM teacher of gold that Debian's LAMMPS ships (Foiles-Baskes-Daw u3)."""
    return {
        'units': 'metal',
        'pair_style': 'eam',
        'pair_coeff': ['Au Au Au_u3.eam'],
        'files': [EAM_GOLD],
        'description': 'Au, EAM Foiles-Baskes-Daw u3 (Debian lammps-data Au_u3.eam)',
    }


def _nacl_start(seed: int) -> Atoms:
    return random_box({'Na': 32, 'Cl': 32}, density=1.297, min_distance=2.3, seed=seed)


def _gold_start(seed: int) -> Atoms:
    atoms = bulk('Au', 'fcc', a=4.08, cubic=True).repeat((2, 2, 2))
    atoms.rattle(0.05, seed=seed)
    return atoms


#: The systems: teacher, structure, state points (K), the baseline of the fit, the ML-MD cap.
SYSTEMS = {
    'nacl_local': {
        'teacher': lambda: nacl_tosi_fumi('ewald'),
        'start': _nacl_start,
        'temperature': 1400.0,
        'hot': 2000.0,
        'melt': None,
        'baseline': None,
        'md_steps': 200,
        'rdf_pair': ('Na', 'Na'),
        'data': 'nacl',
        'description': 'molten NaCl, 64 atoms, Tosi-Fumi + Ewald teacher, purely local GAP (no baseline)',
    },
    'nacl_coulomb': {
        'teacher': lambda: nacl_tosi_fumi('ewald'),
        'start': _nacl_start,
        'temperature': 1400.0,
        'hot': 2000.0,
        'melt': None,
        'baseline': {'type': 'coulomb', 'charges': {'Na': 1.0, 'Cl': -1.0}, 'cutoff': 9.0},
        'md_steps': 100,
        'rdf_pair': ('Na', 'Na'),
        'data': 'nacl',
        'description': 'molten NaCl, 64 atoms, Tosi-Fumi + Ewald teacher, GAP on a Coulomb (Ewald) baseline',
    },
    'au_liquid': {
        'teacher': gold_eam,
        'start': _gold_start,
        'temperature': 1600.0,
        'hot': 2200.0,
        'melt': 2500.0,
        'baseline': None,
        'md_steps': 200,
        'rdf_pair': ('Au', 'Au'),
        'data': 'au',
        'description': 'liquid gold, 32 atoms, EAM Au_u3 teacher, local GAP',
    },
}


# --- the teacher ------------------------------------------------------------------------------------------------
def _lammps(script: str, workdir: pathlib.Path, files: dict[str, str], potential: dict) -> None:
    workdir.mkdir(parents=True, exist_ok=True)
    for name, text in files.items():
        (workdir / name).write_text(text)
    for path in potential.get('files', []):
        target = workdir / pathlib.Path(path).name
        if not target.exists():
            target.symlink_to(path)
    (workdir / 'in.lmp').write_text(script)
    result = subprocess.run(
        [LMP, '-in', 'in.lmp', '-log', 'log.lammps', '-screen', 'none'],
        cwd=workdir,
        capture_output=True,
        text=True,
    )
    if result.returncode != 0:
        raise RuntimeError(f'lmp failed in {workdir}: {result.stdout[-500:]} {result.stderr[-500:]}')


def teacher_md(
    potential: dict, start: Atoms, parameters: dict, workdir: pathlib.Path, tag: str
) -> list[Atoms]:
    """Classical MD with the teacher; frames labelled with energy, forces, per-atom energies and virial."""
    cache = workdir / f'{tag}.xyz'
    if cache.exists():
        return _read(cache)
    species = species_order(start.get_chemical_symbols())
    data, _ = write_data_file(start, species, potential)
    script = md_script(potential, species, start.pbc, parameters, 'data.lmp', 'dump.lmp', 'thermo.dat')
    run_dir = workdir / f'lmp_{tag}'
    _lammps(script, run_dir, {'data.lmp': data}, potential)
    dumps = parse_dump((run_dir / 'dump.lmp').read_text())
    table = parse_columns_file((run_dir / 'thermo.dat').read_text(), THERMO_COLUMNS)
    rows = {int(step): row for row, step in enumerate(table['step'])}
    frames = []
    for dump in dumps:
        if dump['step'] not in rows:
            continue
        row, columns = rows[dump['step']], dump['columns']
        atoms = Atoms(
            symbols=[species[int(t) - 1] for t in columns['type']],
            positions=np.column_stack([columns['x'], columns['y'], columns['z']]),
            cell=dump['cell'],
            pbc=True,
        )
        atoms.arrays['forces'] = np.column_stack([columns['fx'], columns['fy'], columns['fz']])
        atoms.arrays['energies'] = columns['c_mlpot_pe_atom'].copy()
        atoms.info['energy'] = float(table['pe'][row])
        atoms.info['virial'] = pressure_bar_to_virial(virial_pressure_tensor(table, row), atoms.get_volume())
        atoms.info['step'] = int(dump['step'])
        atoms.info['source_uuid'] = tag
        atoms.info['config_type'] = tag
        frames.append(atoms)
    _write(cache, frames)
    return frames


def teacher_labels(potential: dict, frames: list[Atoms], workdir: pathlib.Path) -> list[Atoms]:
    """Single points of ``frames`` with the teacher (one LAMMPS job): the oracle."""
    if not frames:
        return []
    species = species_order(frames[0].get_chemical_symbols())
    files, prisms = {}, []
    for index, atoms in enumerate(frames):
        data, prism = write_data_file(atoms, species, potential)
        files[f'data_{index:04d}.lmp'] = data
        prisms.append(prism)
    script = rerun_script(potential, species, [a.pbc for a in frames], list(files), 'dump.lmp', 'labels.dat')
    for name in ('dump.lmp', 'labels.dat'):
        (workdir / name).unlink(missing_ok=True)
    _lammps(script, workdir, files, potential)
    dumps = parse_dump((workdir / 'dump.lmp').read_text())
    table = parse_columns_file((workdir / 'labels.dat').read_text(), LABEL_COLUMNS)
    labelled = []
    for row, (atoms, dump, prism) in enumerate(zip(frames, dumps, prisms, strict=True)):
        columns = dump['columns']
        frame = Atoms(numbers=atoms.numbers, positions=atoms.positions, cell=atoms.cell, pbc=atoms.pbc)
        forces = np.column_stack([columns['fx'], columns['fy'], columns['fz']])
        frame.arrays['forces'] = prism.vector_to_ase(forces)
        frame.arrays['energies'] = columns['c_mlpot_pe_atom'].copy()
        frame.info['energy'] = float(table['pe'][row])
        virial = pressure_bar_to_virial(virial_pressure_tensor(table, row), float(table['vol'][row]))
        frame.info['virial'] = prism.tensor2_to_ase(virial)
        frame.info['config_type'] = atoms.info.get('config_type', 'rerun')
        labelled.append(frame)
    return labelled


def _read(path: pathlib.Path) -> list[Atoms]:
    with open(path) as handle:
        return read_frames(handle)


def _write(path: pathlib.Path, frames: list[Atoms]) -> None:
    partial = path.with_suffix('.partial')
    with open(partial, 'w') as handle:
        write_frames(frames, handle)
    partial.replace(path)


def build_data(name: str, system: dict, workdir: pathlib.Path, quick: bool) -> dict:
    """The teacher's pool (NVT + NPT at the training temperature), test set, hot set and references."""
    workdir.mkdir(parents=True, exist_ok=True)
    potential = system['teacher']()
    temperature, hot = system['temperature'], system['hot']
    production = 4000 if quick else 10000
    start = system['start'](1)
    common = {'timestep_fs': 2.0, 'dump_interval': 50, 'taut_fs': 100.0, 'taup_fs': 1000.0}
    if system['melt']:  # melt the crystal first, then quench to the liquid state point
        melt = teacher_md(
            potential,
            start,
            {**common, 'ensemble': 'npt', 'pressure_bar': 1.0, 'temperature_K': system['melt'],
             'equilibration_steps': 0, 'production_steps': 2000, 'seed': 7},
            workdir,
            'melt',
        )  # fmt: skip
        start = melt[-1]
    runs = {
        'pool_nvt': ({'ensemble': 'nvt', 'temperature_K': temperature, 'seed': 11}, production, start),
        'pool_npt': (
            {'ensemble': 'npt', 'pressure_bar': 1.0, 'temperature_K': temperature, 'seed': 12},
            production,
            start,
        ),
        'test': ({'ensemble': 'nvt', 'temperature_K': temperature, 'seed': 13}, 2500, start),
        'hot': ({'ensemble': 'nvt', 'temperature_K': hot, 'seed': 14}, 2500, start),
        'reference_npt': (
            {'ensemble': 'npt', 'pressure_bar': 1.0, 'temperature_K': temperature, 'seed': 15},
            25000,
            start,
        ),
    }
    data = {}
    for tag, (state, steps, first) in runs.items():
        parameters = {**common, **state, 'equilibration_steps': 2500, 'production_steps': steps}
        data[tag] = teacher_md(potential, first, parameters, workdir, tag)
    data['pool'] = data['pool_nvt'] + data['pool_npt']
    data['test'], data['hot'] = data['test'][::2], data['hot'][::2]  # 26 frames each: the machine was loaded
    return data


# --- fitting and evaluating --------------------------------------------------------------------------------------
def fit_gap(training: list[Atoms], parameters: dict, workdir: pathlib.Path) -> dict:
    """Run gap_fit on ``training``; return the potential entry of the ML-MD driver and the fit's CPU time."""
    result_file = workdir / 'fit.json'
    if result_file.exists():
        return json.loads(result_file.read_text())
    workdir.mkdir(parents=True, exist_ok=True)
    message = validate_parameters(parameters)
    if message:
        raise ValueError(message)
    clean = []
    for atoms in training:
        frame = Atoms(numbers=atoms.numbers, positions=atoms.positions, cell=atoms.cell, pbc=True)
        frame.info['energy'] = atoms.info['energy']
        frame.info['virial'] = np.asarray(atoms.info['virial']).reshape(3, 3)
        frame.info['config_type'] = 'train'
        frame.arrays['forces'] = atoms.arrays['forces']
        clean.append(frame)
    _write(workdir / 'train.xyz', clean)
    if 'baseline' in parameters:
        (workdir / 'baseline.xml').write_text(coulomb_baseline_xml(parameters['baseline']))
    args = build_command_line(parameters, 'train.xyz', 'gap.xml', 'baseline.xml')
    start, before = time.perf_counter(), os.times()
    with open(workdir / 'gap_fit.log', 'w') as log:
        process = subprocess.run(
            [GAP_FIT, *args],
            cwd=workdir,
            stdout=log,
            stderr=subprocess.STDOUT,
            env={**os.environ, 'OMP_NUM_THREADS': '1'},
        )
    after = os.times()
    if process.returncode != 0:
        raise RuntimeError(f'gap_fit failed in {workdir} (see gap_fit.log)')
    declared = parse_gap_xml((workdir / 'gap.xml').read_text())
    result = {
        'xml': str(workdir / 'gap.xml'),
        'init_args': declared['init_args'],
        'fit_cpu_s': (after.children_user + after.children_system)
        - (before.children_user + before.children_system),
        'fit_wall_s': time.perf_counter() - start,
        'n_train': len(training),
    }
    result_file.write_text(json.dumps(result))
    return result


def _calculator(potential: dict):
    from quippy.potential import Potential

    calculator = Potential(param_filename=potential['xml'], args_str=potential['init_args'])
    return calculator


def predict(potential: dict, frames: list[Atoms], calculator=None) -> list[Atoms]:
    calculator = calculator or _calculator(potential)
    predicted = []
    for atoms in frames:
        frame = Atoms(numbers=atoms.numbers, positions=atoms.positions, cell=atoms.cell, pbc=True)
        frame.calc = calculator
        energy, forces = frame.get_potential_energy(), frame.get_forces()
        copy_ = Atoms(numbers=atoms.numbers, positions=atoms.positions, cell=atoms.cell, pbc=True)
        copy_.info['energy'] = float(energy)
        copy_.arrays['forces'] = np.array(forces)
        predicted.append(copy_)
    return predicted


def _summary(errors: dict) -> dict:
    overall = errors['overall']
    forces, energy = overall.get('forces', {}), overall.get('energy_per_atom', {})
    return {
        'force_mae': forces.get('mae'),
        'force_rmse': forces.get('rmse'),
        'force_max': overall.get('forces_vector', {}).get('max'),
        'energy_rmse_mev': energy.get('rmse'),
        'n_configs': errors['n_configs'],
    }


def _strip_labels(frames: list[Atoms]) -> list[Atoms]:
    return [Atoms(numbers=a.numbers, positions=a.positions, cell=a.cell, pbc=True) for a in frames]


def ml_md_run(
    potential: dict,
    start: Atoms,
    workdir: pathlib.Path,
    md: dict,
    extrapolation: dict | None = None,
    training: list[Atoms] | None = None,
) -> tuple[dict, list[Atoms], list[Atoms]]:
    """Run the package's ML-MD driver in process; return its summary, trajectory and flagged frames."""
    workdir.mkdir(parents=True, exist_ok=True)
    first = Atoms(numbers=start.numbers, positions=start.positions, cell=start.cell, pbc=True)
    if 'momenta' in start.arrays:
        first.arrays['momenta'] = start.arrays['momenta']
    _write(workdir / 'start.xyz', [first])
    config = {
        'structure': 'start.xyz',
        'potential': {'xml': potential['xml'], 'init_args': potential['init_args']},
        'parameters': {
            'md': md,
            'extrapolation': extrapolation or {'method': 'none'},
            'stability': {'min_distance': 1.0, 'max_temperature_factor': 3.0, 'max_volume_factor': 1.5},
        },
    }
    if training is not None:
        _write(workdir / 'training.xyz', _strip_labels(training))
        config['training'] = 'training.xyz'
    summary = ml_md.run(config, workdir)
    trajectory = _read(workdir / 'trajectory.xyz')
    flagged = _read(workdir / 'flagged.xyz') if (workdir / 'flagged.xyz').exists() else []
    return summary, trajectory, flagged


def _rdf_r_max(frames: list[Atoms]) -> float:
    from aiida_mlpot.analysis.rdf import max_rdf_cutoff

    return float(min(6.0, min(max_rdf_cutoff(a) for a in frames) * 0.999))


def evaluate(
    name: str, system: dict, data: dict, potential: dict, workdir: pathlib.Path, md_steps: int, npt: bool
) -> dict:
    """Judge one potential: test and hot errors, the audit on ML-visited frames, stability, RDF, density."""
    result_file = workdir / f'evaluation_{md_steps}.json'  # one per audit length
    if result_file.exists():
        return json.loads(result_file.read_text())
    teacher = system['teacher']()
    calculator = _calculator(potential)
    result = {
        'test': _summary(compute_errors(data['test'], predict(potential, data['test'], calculator))),
        'hot': _summary(compute_errors(data['hot'], predict(potential, data['hot'], calculator))),
    }
    md = {
        'ensemble': 'nvt',
        'temperature_K': system['temperature'],
        'timestep_fs': 2.0,
        'n_steps': md_steps,
        'dump_interval': 20,
        'seed': 1,
    }
    start = data['test'][0]
    tick = time.process_time()
    summary, trajectory, _ = ml_md_run(potential, start, workdir / f'audit_md_{md_steps}', md)
    visited = trajectory[1:]
    result['stability'] = {
        'outcome': summary['outcome'],
        'steps': int(summary.get('steps_done', 0) or 0),
        'cap': md_steps,
        'reason': summary.get('reason', ''),
    }
    result['md_cpu_s'] = time.process_time() - tick
    if summary['outcome'] != 'completed':  # the failing frame is not an MD state worth auditing
        visited = visited[:-1]
    visited = [f for f in visited if 'forces' in f.arrays and 'energy' in f.info]
    if visited:
        labelled = teacher_labels(teacher, visited, workdir / f'audit_labels_{md_steps}')
        result['audit'] = _summary(compute_errors(labelled, visited))
        r_max = _rdf_r_max(visited + data['test'])
        reference = partial_rdfs(data['test'], r_max, n_bins=120)
        rdfs = partial_rdfs(visited, r_max, n_bins=120)
        artefacts = short_range_artefacts(rdfs, reference)
        result['rdf'] = {
            'r_max': r_max,
            'delta_g': {'-'.join(p): v for p, v in rdf_difference(rdfs, reference).items()},
            'artefacts': {'-'.join(p): v for p, v in artefacts.items()},
            'g': {'-'.join(p): rdfs[p][1].tolist() for p in rdfs},
            'g_reference': {'-'.join(p): reference[p][1].tolist() for p in reference},
            'r': next(iter(rdfs.values()))[0].tolist(),
        }
    else:
        result['audit'] = None
    if npt:
        md_npt = {**md, 'ensemble': 'npt', 'pressure_bar': 1.0, 'taup_fs': 500.0, 'n_steps': 2 * md_steps}
        summary_npt, trajectory_npt, _ = ml_md_run(potential, start, workdir / 'npt_md', md_npt)
        half = trajectory_npt[len(trajectory_npt) // 2 :]
        reference_density = np.mean([_density(a) for a in data['reference_npt']])
        result['npt'] = {
            'outcome': summary_npt['outcome'],
            'steps': int(summary_npt.get('steps_done', 0) or 0),
            'density': float(np.mean([_density(a) for a in half])) if half else None,
            'reference_density': float(reference_density),
        }
        if result['npt']['density'] is not None:
            result['npt']['error_percent'] = 100.0 * (result['npt']['density'] / reference_density - 1.0)
    result_file.write_text(json.dumps(result))
    return result


def _density(atoms: Atoms) -> float:
    from ase.units import _amu

    return float(atoms.get_masses().sum() * _amu * 1e3 / (atoms.get_volume() * 1e-24))


# --- selection -----------------------------------------------------------------------------------------------
def select(method: str, pool: list[Atoms], n: int, seed: int) -> list[int]:
    if method == 'random':
        indices = select_random(pool, n, seed=seed)
    elif method == 'temporal':  # deterministic: evenly spaced per trajectory; the seed only shifts nothing
        indices = select_temporal(pool, n, seed=seed)
    elif method == 'uniform_energy':
        indices = select_uniform_energy(pool, n, seed=seed)
    elif method == 'uniform_force':
        indices = select_uniform_force(pool, n, seed=seed)
    elif method == 'uniform_atomic_energy':
        indices = select_uniform_atomic_energy(pool, n, seed=seed)
    elif method == 'fps':
        indices = select_fps(pool, n, seed=seed, soap={'r_cut': 4.5, 'n_max': 4, 'l_max': 3})
    else:
        raise ValueError(method)
    return sorted(int(i) for i in indices)


def run_passive(
    name, system, data, method, budget, seed, workdir, parameters, md_steps, npt, label='fast'
) -> dict:
    cell = workdir / f'{label}_{method}_n{budget}_s{seed}'
    record_file = cell / f'record_{md_steps}.json'
    if record_file.exists():
        return json.loads(record_file.read_text())
    indices = select(method, data['pool'], budget, seed)
    training = [data['pool'][i] for i in indices]
    potential = fit_gap(training, parameters, cell / 'fit')
    evaluation = evaluate(name, system, data, potential, cell, md_steps, npt)
    record = {
        'system': name,
        'method': method,
        'protocol': label,
        'budget': budget,
        'labels': budget,
        'seed': seed,
        'indices': indices,
        'fit_cpu_s': potential['fit_cpu_s'],
        **evaluation,
    }
    record_file.write_text(json.dumps(record))
    return record


def run_active(name, system, data, seed, workdir, parameters, md_steps, budgets, npt, options) -> list[dict]:
    """The active-learning loop (see the module docstring); one record per evaluated iteration."""
    base = workdir / f'fast_active_s{seed}'
    done_file = base / f'records_{md_steps}.json'
    if done_file.exists():
        return json.loads(done_file.read_text())
    base.mkdir(parents=True, exist_ok=True)
    teacher = system['teacher']()
    pool = data['pool']
    n0 = options['al_initial']
    first = select_uniform_force(pool, 2 * n0, seed=seed)
    picked = select_fps(
        [pool[i] for i in first], n0, seed=seed + 1, soap={'r_cut': 4.5, 'n_max': 4, 'l_max': 3}
    )
    training = [pool[int(first[i])] for i in picked]
    oracle_calls = len(training)
    records, start = [], pool[int(select_random(pool, 1, seed=seed)[0])]
    extrapolation = {
        'method': 'gap_variance',
        'relative_threshold': 3.0,
        'percentile': 99.0,
        'check_interval': 10,
    }
    explore_steps = options['al_explore_steps'] or md_steps
    judged = {n0, *budgets}  # training sizes at which a potential is judged (and the final one)
    loop, potential, refit, converged = [], None, True, False

    def judge(iteration: int) -> None:
        evaluation = evaluate(name, system, data, potential, base / f'eval_{iteration:02d}', md_steps, npt)
        records.append({
            'system': name, 'method': 'active', 'protocol': 'fast', 'seed': seed, 'iteration': iteration,
            'budget': len(training), 'labels': len(training), 'oracle_calls': oracle_calls,
            'audit_labels': oracle_calls - len(training), 'fit_cpu_s': potential['fit_cpu_s'],
            'audit_growth': options['al_audit_growth'], **evaluation,
        })  # fmt: skip
        (base / 'progress.json').write_text(json.dumps(records))

    for iteration in range(options['al_max_iterations'] + 1):
        tick = time.process_time()
        if refit:  # a new training set: fit; judged as every other potential at the budgets
            potential = fit_gap(training, parameters, base / f'fit_{iteration:02d}')
            if len(training) in judged:
                judge(iteration)
        if len(training) >= max(budgets) or iteration == options['al_max_iterations']:
            break
        md = {
            'ensemble': 'nvt', 'temperature_K': system['temperature'], 'timestep_fs': 2.0,
            'n_steps': explore_steps, 'dump_interval': 20, 'seed': 1000 * seed + 100 + iteration,
        }  # fmt: skip
        summary, trajectory, flagged = ml_md_run(
            potential, start, base / f'explore_{iteration:02d}', md, extrapolation, training
        )
        replicas = {'T': {'outcome': summary['outcome'], 'trajectory': trajectory, 'flagged': flagged,
                          'steps_done': summary.get('steps_done')}}  # fmt: skip
        room = max(budgets) - len(training)
        frames, plan = plan_labels(
            replicas, training, options['al_audit'], min(options['al_per_iteration'], room), 0.01
        )
        labelled = teacher_labels(teacher, frames, base / f'label_{iteration:02d}')
        audits = [f for f in frames if f.info.get('al_role') == 'audit']
        audit_labels = [g for f, g in zip(frames, labelled) if f.info.get('al_role') == 'audit']
        candidates = [g for f, g in zip(frames, labelled) if f.info.get('al_role') == 'candidate']
        oracle_calls += len(frames)
        audit = None
        if audits:
            predicted = []
            for frame in audits:
                copy_ = Atoms(numbers=frame.numbers, positions=frame.positions, cell=frame.cell, pbc=True)
                copy_.info['energy'] = frame.info['ml_energy']
                copy_.arrays['forces'] = frame.arrays['ml_forces']
                predicted.append(copy_)
            errors = _summary(compute_errors(audit_labels, predicted))
            audit = {'force_rmse': errors['force_rmse'], 'energy_rmse': errors['energy_rmse_mev']}
        verdict = convergence_verdict(
            [{'key': 'T', 'outcome': summary['outcome'], 'steps_done': summary.get('steps_done', 0),
              'target_steps': explore_steps}],
            audit,
            {'audit_force_rmse': options['audit_force_rmse'], 'audit_energy_rmse': options['audit_energy_rmse'],
             'max_iterations': options['al_max_iterations'], 'max_oracle_calls': 10**6},
            iteration + 1,
            oracle_calls,
        )  # fmt: skip
        # the audit frames of a failed audit join the training set (``--al-audit-growth``); otherwise, as
        # grow_training_set of the work chain on main, they only join the test set
        fed = []
        if options['al_audit_growth'] and not verdict['converged'] and not verdict['audit_ok']:
            fed = audit_labels[: max(room - len(candidates), 0)]
        loop.append(
            {'iteration': iteration, 'labels_before': len(training), 'outcome': summary['outcome'],
             'steps': summary.get('steps_done'), 'max_score': summary.get('max_score'),
             'threshold': summary.get('threshold'), 'reference_score': summary.get('reference_score'),
             'n_flagged': len(flagged), 'n_candidates': len(candidates), 'n_audit': len(audit_labels),
             'audit_to_training': len(fed), 'oracle_calls_after': oracle_calls, 'audit': audit,
             'verdict': verdict['reason'], 'candidates': plan.get('candidates')}
        )  # fmt: skip
        (base / 'loop.json').write_text(json.dumps(loop))
        print(f'  [{name}] active s{seed} it {iteration}: {summary["outcome"]} at {summary.get("steps_done")} '
              f'(max score {summary.get("max_score")}, threshold {summary.get("threshold")}), '
              f'+{len(candidates)} candidates +{len(fed)} audits -> {len(training) + len(candidates) + len(fed)}, '
              f'audit {audit} ({time.process_time() - tick:.0f} s CPU)', flush=True)  # fmt: skip
        converged = bool(verdict['converged'])
        if verdict['converged'] or verdict['stop']:
            break
        # as the work chain: the candidates join the training set (refit), the exploration continues
        refit = bool(candidates or fed)
        training = training + candidates + fed
        start = _read(base / f'explore_{iteration:02d}' / 'final.xyz')[-1]
    if not records or records[-1]['labels'] != len(training):
        judge(iteration)  # the final potential
    records[-1]['loop'] = loop
    records[-1]['converged'] = converged
    done_file.write_text(json.dumps(records))
    return records


def run_system(args) -> None:
    name = args.system
    system = SYSTEMS[name]
    workdir = pathlib.Path(args.workdir) / name
    workdir.mkdir(parents=True, exist_ok=True)
    md_steps = args.md_steps or (100 if args.quick else system['md_steps'])
    budgets = args.budgets or ([8, 16] if args.quick else [16, 32, 64])
    seeds = args.seeds or [1]
    methods = args.methods or list(METHODS)
    parameters = _fast_parameters()
    if system['baseline']:
        parameters['baseline'] = system['baseline']
    started = time.perf_counter()
    data = build_data(name, system, pathlib.Path(args.workdir) / f'teacher_{system["data"]}', args.quick)
    print(f'[{name}] teacher data: pool {len(data["pool"])}, test {len(data["test"])}, hot {len(data["hot"])} '
          f'({time.perf_counter() - started:.0f} s)', flush=True)  # fmt: skip
    options = {
        'al_initial': max(budgets[0] // 2, 4),
        'al_per_iteration': 6,
        'al_max_iterations': args.al_iterations,
        'audit_force_rmse': args.audit_force_rmse,
        'audit_energy_rmse': 5.0,  # the active_learning protocol's default (meV/atom)
        'al_audit': args.al_audit,
        'al_audit_growth': args.al_audit_growth,
        'al_explore_steps': args.al_explore_steps,
    }
    # the cells in order: --cells method:budget:seed (active:seed) as given, else seed-major over the grid,
    # so that a run cut short still holds complete sets
    if args.cells is not None:  # [] (--cells alone): no cell, e.g. only the peer row
        cells = [tuple(int(x) if x.isdigit() else x for x in cell.split(':')) for cell in args.cells]
    else:
        cells = []
        for seed in seeds:
            if 'active' in methods:
                cells.append(('active', seed))
            for budget in budgets:
                for method in methods:
                    if method != 'active' and not (method == 'temporal' and seed != seeds[0]):
                        cells.append((method, budget, seed))  # temporal is deterministic: one seed
    for cell in cells:
        tick = time.perf_counter()
        if cell[0] == 'active':
            seed = cell[1]
            records = run_active(
                name, system, data, seed, workdir, parameters, md_steps, budgets, args.npt, options
            )
            final = records[-1]
            print(f'[{name}] active s{seed}: {final["labels"]} labels, audit {final.get("audit")} '
                  f'({time.perf_counter() - tick:.0f} s)', flush=True)  # fmt: skip
            continue
        method, budget, seed = cell
        record = run_passive(
            name, system, data, method, budget, seed, workdir, parameters, md_steps, args.npt
        )
        audit = record.get('audit') or {}
        print(f'[{name}] {method:>22s} n={budget:<3d} s{seed}: test F-RMSE '
              f'{record["test"]["force_rmse"]:.3f}, audit F-RMSE {audit.get("force_rmse")}, '
              f'stable {record["stability"]["steps"]}/{md_steps} ({time.perf_counter() - tick:.0f} s)',
              flush=True)  # fmt: skip
    if args.peer:
        for method in args.peer_methods:
            peer = copy.deepcopy(AUTOPLEX_GAP)
            if system['baseline']:
                peer['baseline'] = system['baseline']
            n = args.peer
            symbols = data['pool'][0].get_chemical_symbols()
            per_species = n * min(
                symbols.count(s) for s in set(symbols)
            )  # SOAP sparse points are per species
            peer['descriptors'][0]['n_sparse'] = min(peer['descriptors'][0]['n_sparse'], per_species)
            tick = time.perf_counter()
            record = run_passive(
                name,
                system,
                data,
                method,
                n,
                seeds[0],
                workdir,
                peer,
                args.peer_md_steps or md_steps,
                False,
                'autoplex',
            )
            print(f'[{name}] autoplex {method} n={n}: test F-RMSE {record["test"]["force_rmse"]:.3f}, fit CPU '
                  f'{record["fit_cpu_s"]:.0f} s ({time.perf_counter() - tick:.0f} s)', flush=True)  # fmt: skip
    print(f'[{name}] done in {time.perf_counter() - started:.0f} s', flush=True)


def _eam_calculator(workdir: pathlib.Path):
    from ase.calculators.lammpsrun import LAMMPS

    os.environ.setdefault('ASE_LAMMPSRUN_COMMAND', LMP)
    return LAMMPS(pair_style='eam', pair_coeff=[f'* * {EAM_GOLD}'], files=[EAM_GOLD], specorder=['Au'],
                  tmp_dir=str(workdir))  # fmt: skip


def crystal_properties(calculator) -> dict:
    """fcc gold: lattice constant, bulk modulus (E(V)) and C11, C12, C44 (clamped ions: fcc has none to relax)."""
    from aiida_mlpot.analysis.solids import elastic_constants, equation_of_state

    eos = equation_of_state(bulk('Au', 'fcc', a=4.08, cubic=True), calculator)
    a0 = eos['cell_lengths'][0]
    elastic = elastic_constants(bulk('Au', 'fcc', a=a0, cubic=True), calculator, relax_positions=False)
    return {'a0': a0, 'B_gpa': eos['bulk_modulus_gpa'], **{k: elastic[k] for k in ('C11', 'C12', 'C44')}}


def run_solids(args) -> None:
    """Crystal properties of every gold GAP of the study (trained on the liquid) against the EAM teacher's."""
    workdir = pathlib.Path(args.workdir) / args.system
    reference_file = workdir / 'crystal_reference.json'
    if not reference_file.exists():
        reference = crystal_properties(_eam_calculator(workdir / 'eam_tmp'))
        reference_file.write_text(json.dumps(reference))
    print('EAM teacher:', reference_file.read_text(), flush=True)
    for fit in sorted(workdir.glob('*/fit*/fit.json')):
        target = fit.parent / 'crystal.json'
        if target.exists():
            continue
        try:
            result = crystal_properties(_calculator(json.loads(fit.read_text())))
        except (ValueError, RuntimeError) as exception:  # e.g. no minimum inside the scanned volumes
            result = {'error': str(exception)}
        target.write_text(json.dumps(result))
        print(fit.parent.parent.name, fit.parent.name, result, flush=True)


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest='command', required=True)
    run = sub.add_parser('run', help='run (or continue) the study of one system')
    run.add_argument('--system', choices=sorted(SYSTEMS), required=True)
    run.add_argument('--workdir', default='/tmp/study')
    run.add_argument('--budgets', type=int, nargs='+')
    run.add_argument('--seeds', type=int, nargs='+')
    run.add_argument('--methods', nargs='+', choices=METHODS)
    run.add_argument('--md-steps', type=int, help='cap of the audit ML MD (default: per system)')
    run.add_argument(
        '--audit-force-rmse', type=float, default=0.05, help='convergence of the active loop (eV/Å)'
    )
    run.add_argument('--npt', action='store_true', help='also the NPT density of every potential')
    run.add_argument('--peer', type=int, default=0, help='budget of the autoplex-defaults peer row (0: none)')
    run.add_argument('--peer-methods', nargs='+', default=['uniform_force'], choices=METHODS[:-1])
    run.add_argument(
        '--peer-md-steps', type=int, help='cap of the peer row audit ML MD (default: as the others)'
    )
    run.add_argument('--al-iterations', type=int, default=3, help='active learning: most explorations')
    run.add_argument('--al-audit', type=int, default=2, help='active learning: audit frames per exploration')
    run.add_argument(
        '--al-audit-growth',
        action='store_true',
        help='active learning: the audit frames of a failed audit join the training set (else the test set)',
    )
    run.add_argument(
        '--al-explore-steps', type=int, help='active learning: steps per exploration (default: --md-steps)'
    )
    run.add_argument('--cells', nargs='*', help='explicit order: method:budget:seed or active:seed')
    run.add_argument('--quick', action='store_true', help='budgets 8/16, short teacher and ML MD: minutes')
    solids = sub.add_parser('solids', help='gold: crystal properties of every GAP against the EAM teacher')
    solids.add_argument('--system', default='au_liquid')
    solids.add_argument('--workdir', default='/tmp/study')
    report = sub.add_parser('report', help='table and plots from the cached results')
    report.add_argument('--workdir', default='/tmp/study')
    report.add_argument('--out', default='docs/study')
    report.add_argument('--md-steps', type=int, default=200, help='the audit length of the records to report')
    args = parser.parse_args(argv)
    if args.command == 'run':
        run_system(args)
    elif args.command == 'solids':
        run_solids(args)
    else:
        from study_report import write_report  # benchmarks/study_report.py

        write_report(pathlib.Path(args.workdir), pathlib.Path(args.out), args.md_steps)


if __name__ == '__main__':
    main()
