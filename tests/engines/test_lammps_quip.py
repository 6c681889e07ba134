"""Tests of the LAMMPS (``pair_style quip``) engine of the ML-MD driver.

* pure tests: script and data-file writing, reading of a recorded real LAMMPS segment
  (``fixtures/lammps_quip``, recorded with Debian ``lmp`` by ``record.py`` there);
* the driver's accept / rollback decision on real NaCl frames scored by a real GAP (session fixtures), the
  frames handed over by a replaying engine;
* the LAMMPS engine under the driver with the real Debian ``lmp`` driving the classical teacher the GAP was
  fitted to (Tosi-Fumi + Ewald): everything but ``pair_style quip`` itself, scored afterwards by the GAP;
* the driver end to end with ``pair_style quip``: only where ``lmp -h`` lists it (HPC builds with ML-QUIP).
"""

from __future__ import annotations

import io
import json
import math
import pathlib

import numpy as np
import pytest
from ase import Atoms
from ase.calculators.lammps import Prism
from ase.io import read

from aiida_mlpot.common.units import BAR_TO_EV_PER_ANGSTROM3, stress_to_virial
from aiida_mlpot.engines.checks import GAP_VARIANCE_CALC_ARGS, GapVarianceCheck, stability_checks
from aiida_mlpot.engines.lammps_quip import (
    LammpsEngine,
    Segment,
    lammps_pair_styles,
    quip_potential,
    read_segment_frames,
    segment_data_file,
    segment_lengths,
    segment_script,
)
from aiida_mlpot.engines.ml_md import drive, main, snapshot, summarise
from aiida_mlpot.engines.parameters import normalise_parameters
from aiida_mlpot.parsers.parse_raw.gap_fit import parse_gap_xml
from aiida_mlpot.potentials.lammps_input import setup_lines
from tests.conftest import executable
from tests.engines.ml_md_helpers import prepare

FIXTURES = pathlib.Path(__file__).parent / 'fixtures' / 'lammps_quip'

#: The classical teacher of the test GAP (tests/conftest.py: Tosi-Fumi in `born`, D negative, Ewald).
TOSI_FUMI = {
    'pair_style': 'born/coul/long 6.5',
    'pair_coeff': [
        'Na Na 424.097 0.317 0.0 1.05 -0.499',
        'Na Cl 1256.31 0.317 0.0 7.0 -8.676',
        'Cl Cl 3488.998 0.317 0.0 72.5 -145.427',
    ],
    'kspace_style': 'ewald 1.0e-6',
    'charges': {'Na': 1.0, 'Cl': -1.0},
}


def lmp_has_quip() -> bool:
    """Return whether the `lmp` on this machine lists `quip` among its pair styles."""
    return executable('lmp') is not None and 'quip' in lammps_pair_styles('lmp')


requires_lmp = pytest.mark.skipif(executable('lmp') is None, reason='`lmp` is not installed')


def md_parameters(**md) -> dict:
    return normalise_parameters({'md': {'temperature_K': 1400.0, **md}})['md']


# --- input writing -------------------------------------------------------------------------------------------
def test_quip_pair_lines():
    """`pair_style quip` with the atomic numbers in LAMMPS type order (alphabetical species: Cl, Na)."""
    potential = quip_potential('gap.xml', 'GAP_2026_1', ['Cl', 'Na'])
    lines = setup_lines(potential, ['Cl', 'Na'], (True, True, True), 'data')
    assert 'pair_style quip' in lines
    assert 'pair_coeff * * gap.xml "Potential xml_label=GAP_2026_1" 17 11' in lines
    assert 'atom_modify map yes' in lines  # pair_style quip needs an atom map
    with pytest.raises(ValueError, match='spaces'):
        quip_potential('my gap.xml', 'GAP', ['Na'])


def test_segment_script():
    """Velocities created only when asked; forces stored before the thermostat; last step always dumped."""
    potential = quip_potential('gap.xml', 'GAP_X', ['Cl', 'Na'])
    md = md_parameters(seed=7, friction_per_fs=0.02)
    script = segment_script(potential, ['Cl', 'Na'], md, Segment(100, 40, 10, index=3)).splitlines()
    assert script[0] == '# aiida-mlpot ML-MD segment 3: steps 100 -> 140'
    assert 'reset_timestep 100' in script and 'timestep 0.002' in script and 'run 40' in script
    assert not any(line.startswith('velocity') for line in script)
    store = script.index('fix mlpot_force all store/force')
    assert (
        script[store + 1] == 'fix mlpot_thermostat all langevin 1400.0 1400.0 0.05 11'
    )  # 1/friction, seed+3+1
    assert not any(line.startswith('write_dump') for line in script)  # 140 is a multiple of 10

    segment = Segment(0, 25, 10, create_velocities=True)
    script = segment_script(potential, ['Cl', 'Na'], md, segment).splitlines()
    velocity = script.index('velocity all create 1400.0 8 mom yes rot no dist gaussian')
    assert velocity < script.index('fix mlpot_force all store/force')
    assert script[-4:-2] == ['run 25', 'undump mlpot_segment']
    assert script[-2].startswith('write_dump all custom lammps_segment.dump') and 'append yes' in script[-2]
    assert script[-1].startswith('print ') and script[-1].endswith('append lammps_segment.thermo screen no')

    npt = md_parameters(ensemble='npt', pressure_bar=1.0, taut_fs=100.0, taup_fs=1000.0)
    script = segment_script(potential, ['Cl', 'Na'], npt, Segment(0, 10, 5))
    assert 'fix mlpot_integrate all npt temp 1400.0 1400.0 0.1 iso 1.0 1.0 1' in script
    berendsen = {**npt, 'barostat': 'berendsen'}
    script = segment_script(potential, ['Cl', 'Na'], berendsen, Segment(0, 10, 5))
    assert 'fix mlpot_barostat all press/berendsen iso 1.0 1.0 1 modulus' in script
    assert 'fix mlpot_integrate all nve' in script
    bussi = md_parameters(thermostat='bussi')
    assert 'all temp/csvr 1400.0 1400.0 0.1 2' in segment_script(
        potential, ['Cl', 'Na'], bussi, Segment(0, 10, 5)
    )


def test_segment_lengths():
    """Segments are multiples of the dump stride; the last one takes the rest."""
    assert segment_lengths(100, 40, 10) == [40, 40, 20]
    assert segment_lengths(100, 45, 10) == [40, 40, 20]
    assert segment_lengths(30, 100, 5) == [30]
    assert segment_lengths(23, 5, 10) == [10, 10, 3]


def test_data_file_velocities():
    """The data file carries the velocities in Å/ps, in the LAMMPS frame; ASE's reader gets them back."""
    atoms = read(FIXTURES / 'start.xyz')
    text, prism = segment_data_file(atoms, ['Cl', 'Na'], quip_potential('gap.xml', 'GAP', ['Cl', 'Na']))
    assert '\nVelocities\n' in text
    back = read(io.StringIO(text), format='lammps-data', atom_style='charge', units='metal')
    velocities = back.get_velocities() @ prism.rot_mat.T  # back from the LAMMPS frame
    order = np.argsort(back.arrays['id'])
    assert np.allclose(velocities[order], atoms.get_velocities(), atol=1e-12)
    assert abs(back.get_volume() - atoms.get_volume()) < 1e-8


# --- output reading (recorded real LAMMPS segment) -----------------------------------------------------------
def recorded_frames(dump: pathlib.Path | None = None):
    start = read(FIXTURES / 'start.xyz')
    prism = Prism(start.cell.array, pbc=start.pbc)
    dump = dump or FIXTURES / 'lammps_segment.dump'
    return start, read_segment_frames(dump, FIXTURES / 'lammps_segment.thermo', ['Cl', 'Na'], prism)


def test_read_recorded_segment():
    """A triclinic, rotated 16-atom NaCl segment (steps 3 -> 10, dump every 3 + last step) read back in the ASE frame."""
    start, frames = recorded_frames()
    assert [frame.info['step'] for frame in frames] == [3, 6, 9, 10]
    first = frames[0]
    # the first frame is the data file: same cell, positions (mod the cell) and velocities as the input
    assert np.allclose(first.cell.array, start.cell.array, atol=1e-10)
    delta = first.get_scaled_positions() - start.get_scaled_positions()
    assert np.allclose(delta - np.round(delta), 0.0, atol=1e-10)
    assert np.allclose(first.get_velocities(), start.get_velocities(), atol=1e-12)
    assert first.get_chemical_symbols() == start.get_chemical_symbols()
    for frame in frames:
        forces = frame.get_forces()
        assert forces.shape == (16, 3)
        # the potential's forces only (Langevin's random forces are not in the dump): no net force
        assert np.abs(forces.sum(axis=0)).max() < 1e-9
        virial = stress_to_virial(frame.calc.results['stress'], frame.get_volume())
        assert np.allclose(virial, virial.T)
        # written by the driver as the ASE engine's frames are: labels from the calculator's results
        written = snapshot(frame, frame.info['step'], 2.0 * frame.info['step'], None, {})
        assert written.info['energy'] == frame.get_potential_energy()
        assert np.allclose(written.info['virial'], virial, rtol=1e-14, atol=0)
        assert np.array_equal(written.arrays['forces'], forces)
        assert 0 < written.info['temperature_K'] < 5000
    assert frames[0].get_potential_energy() == pytest.approx(-62.5195558595963, abs=1e-12)
    # trace of the virial = 3 V P (bar), P from the thermo file
    thermo = np.loadtxt(FIXTURES / 'lammps_segment.thermo')
    pressure = thermo[0, 3:6].mean()
    expected = 3 * pressure * first.get_volume() * BAR_TO_EV_PER_ANGSTROM3
    virial = stress_to_virial(first.calc.results['stress'], first.get_volume())
    assert np.trace(virial) == pytest.approx(expected, rel=1e-9)


def test_read_truncated_dump(tmp_path):
    """A frame LAMMPS did not finish writing (killed mid-dump) is dropped, the others are read."""
    text = (FIXTURES / 'lammps_segment.dump').read_text()
    truncated = tmp_path / 'lammps_segment.dump'
    truncated.write_text(text[: len(text) - 200])
    _, frames = recorded_frames(truncated)
    assert [frame.info['step'] for frame in frames] == [3, 6, 9]
    _, frames = recorded_frames(tmp_path / 'missing.dump')
    assert frames == []


def test_pair_styles_of_debian_lmp():
    """`lmp -h` is parsed into the set of pair styles; a missing command gives an empty set."""
    if executable('lmp') is None:
        pytest.skip('`lmp` is not installed')
    styles = lammps_pair_styles('lmp')
    assert {'born/coul/long', 'lj/cut'} <= styles
    assert lammps_pair_styles('/nonexistent/lmp') == set()


# --- scoring and the accept / rollback decision on real frames and a real GAP --------------------------------
@pytest.fixture(scope='module')
def gap_calculator(ml_md_gap):
    from quippy.potential import Potential

    return Potential(param_filename=str(ml_md_gap.xml))


def frames_at(frames: list[Atoms], steps: list[int]) -> list[Atoms]:
    """Copies of ``frames`` labelled with MD ``steps`` (and a calculator for the stability checks)."""
    from ase.calculators.singlepoint import SinglePointCalculator

    result = []
    for frame, step in zip(frames, steps, strict=True):
        copy = Atoms(numbers=frame.numbers, positions=frame.positions, cell=frame.cell, pbc=True)
        copy.info['step'] = step
        copy.calc = SinglePointCalculator(copy, energy=frame.info['energy'], forces=frame.arrays['forces'])
        result.append(copy)
    return result


def compressed(frame: Atoms, factor: float = 0.8) -> Atoms:
    atoms = frame.copy()
    atoms.set_cell(atoms.cell * factor, scale_atoms=True)
    return atoms


@pytest.mark.e2e
def test_rescoring_is_the_ase_engine_measure(ml_md_gap, gap_calculator):
    """Scoring a frame after the fact gives the GAP-variance score the ASE engine measures during its MD."""
    from quippy.potential import Potential

    frame = ml_md_gap.held_out[0]
    check = GapVarianceCheck(calculator=gap_calculator)
    after = check.score(frame)

    atoms = Atoms(numbers=frame.numbers, positions=frame.positions, cell=frame.cell, pbc=True)
    atoms.calc = Potential(param_filename=str(ml_md_gap.xml), calc_args=GAP_VARIANCE_CALC_ARGS)
    atoms.calc.set_default_properties(['energy', 'forces', 'stress'])
    atoms.get_forces()
    during = GapVarianceCheck().score(atoms)
    assert 0.005 < after < 0.1
    assert after == pytest.approx(during, rel=1e-8)
    assert check.score(compressed(frame)) > 2 * after
    assert not check.needs_variance and GapVarianceCheck().needs_variance


class ReplayEngine:
    """An engine that hands recorded frames to the driver (the engines' protocol), rolling back like LAMMPS."""

    name = 'replay'
    frames_have_variance = False
    stability_interval = 1
    failure = None
    md_time_s = 0.0

    def __init__(self, frames: list[Atoms], rolls_back: bool = True):
        self.recorded, self.rolls_back, self.handed = frames, rolls_back, []
        self.atoms = frames[0]

    def start(self, variance_at=None) -> None:
        assert variance_at is None  # the frames are scored by the measure's own calculator

    def frames(self):
        for frame in self.recorded:
            self.handed.append(frame.info['step'])
            yield frame.info['step'], frame

    def summary(self) -> dict:
        return {}


def drive_replay(tmp_path, frames, measure, check_interval, dump_interval, rolls_back=True):
    """Drive a replay of ``frames`` with the default stability checks (volume check off); return record, engine."""
    parameters = normalise_parameters(
        {
            'md': {'temperature_K': 1400.0, 'dump_interval': dump_interval},
            'extrapolation': {'check_interval': check_interval, 'n_flagged': 3},
            'stability': {'max_volume_factor': None},
        }
    )
    checks = stability_checks(parameters['stability'], 1400.0, frames[0].get_volume())
    files = {name: tmp_path / f'{name}.xyz' for name in ('trajectory', 'flagged', 'final')}
    engine = ReplayEngine(frames, rolls_back)
    return drive(engine, parameters, checks, measure, files), engine


@pytest.mark.e2e
def test_driver_accepts_up_to_first_extrapolating_frame(
    ml_md_gap, gap_calculator, ml_md_reference_score, tmp_path
):
    """Frames 0-15 at 1400 K are trusted; the compressed frame at step 20 fails; step 25 is never handed over."""
    held = ml_md_gap.held_out
    frames = frames_at([*held[:4], compressed(held[4]), held[5]], [0, 5, 10, 15, 20, 25])
    measure = GapVarianceCheck(3.0 * ml_md_reference_score, calculator=gap_calculator)
    record, engine = drive_replay(tmp_path, frames, measure, check_interval=5, dump_interval=10)
    assert engine.handed == [0, 5, 10, 15, 20]
    assert record.outcome == 'extrapolation' and record.triggered_step == 20 and record.steps_done == 20
    assert record.failed[0].name == 'gap_variance' and record.failed[0].value > measure.threshold
    assert record.traces['step'] == [0, 5, 10, 15, 20] and record.n_scored == 5
    assert all(score < measure.threshold for score in record.traces['score'][:4])
    assert record.max_score == record.traces['score'][-1] > measure.threshold
    assert [frame.info['step'] for frame in read(tmp_path / 'trajectory.xyz', ':')] == [0, 10, 20]
    # rolled back: the restart point is the last trusted frame; the flagged frames end with the failing one
    assert record.final.info['step'] == 15 and read(tmp_path / 'final.xyz').info['step'] == 15
    flagged = read(tmp_path / 'flagged.xyz', ':')
    assert [frame.info['step'] for frame in flagged] == [10, 15, 20] and record.n_flagged == 3
    assert 'ml_forces' in flagged[-1].arrays and 'forces' not in flagged[-1].arrays
    assert flagged[-1].info['uncertainty'] == record.traces['score'][-1]

    # an engine that does not roll back ends on the failing frame itself (the ASE engine)
    (tmp_path / 'no').mkdir()
    record, _ = drive_replay(tmp_path / 'no', frames, measure, 5, 10, rolls_back=False)
    assert record.final.info['step'] == 20 and record.triggered_step == 20

    # the ASE engine's rule: a frame scored only because it is dumped (step 5, check every 10) never triggers
    (tmp_path / 'dumped').mkdir()
    frames = frames_at([held[0], compressed(held[1]), compressed(held[2])], [0, 5, 10])
    record, _ = drive_replay(tmp_path / 'dumped', frames, measure, check_interval=10, dump_interval=5)
    assert record.traces['score'][1] > measure.threshold and record.triggered_step == 10
    assert record.final.info['step'] == 5


@pytest.mark.e2e
def test_driver_unstable_frame_is_not_scored(ml_md_gap, gap_calculator, ml_md_reference_score, tmp_path):
    """Two atoms at 0.8 Å: `unstable` (closest pair below 1 Å) before the frame is scored."""
    broken = ml_md_gap.held_out[2].copy()
    neighbour = int(np.argsort(broken.get_distances(0, range(1, len(broken)), mic=True))[0]) + 1
    vector = broken.get_distance(0, neighbour, mic=True, vector=True)
    broken.positions[neighbour] = broken.positions[0] + 0.8 * vector / np.linalg.norm(vector)
    frames = frames_at([ml_md_gap.held_out[0], broken], [0, 10])
    measure = GapVarianceCheck(3.0 * ml_md_reference_score, calculator=gap_calculator)
    record, _ = drive_replay(tmp_path, frames, measure, check_interval=10, dump_interval=10)
    assert record.outcome == 'unstable' and record.failed[0].name == 'min_distance'
    assert record.traces['score'][1] is None and record.n_scored == 1 and record.final.info['step'] == 0
    assert record.failed[0].value == pytest.approx(0.8, abs=1e-6)
    assert not (tmp_path / 'flagged.xyz').exists()


# --- the segment loop with the real Debian LAMMPS (classical teacher), scored by the real GAP ----------------
def loop_parameters(**md) -> dict:
    return normalise_parameters(
        {
            'md': {'engine': 'lammps', 'temperature_K': 1400.0, 'n_steps': 40, 'dump_interval': 10, **md},
            'extrapolation': {'check_interval': 5, 'n_flagged': 3},
            'lammps': {'segment_steps': 20},
        }
    )


def start_atoms(ml_md_gap, index: int = 0) -> Atoms:
    frame = ml_md_gap.held_out[index]
    return Atoms(numbers=frame.numbers, positions=frame.positions, cell=frame.cell, pbc=True)


def run_teacher(workdir, atoms, parameters, measure, initial_step=0, momenta=None, progress=None):
    """Run the LAMMPS engine on the classical teacher under the driver in ``workdir``; return record, engine."""
    workdir.mkdir(exist_ok=True)
    engine = LammpsEngine('lmp', workdir, atoms, TOSI_FUMI, parameters, momenta)
    checks = stability_checks(parameters['stability'], parameters['md']['temperature_K'], atoms.get_volume())
    files = {name: workdir / f'{name}.xyz' for name in ('trajectory', 'flagged', 'final')}
    record = drive(engine, parameters, checks, measure, files, initial_step, progress=progress)
    return record, engine


@pytest.mark.e2e
@requires_lmp
def test_segments_complete_then_roll_back(ml_md_gap, gap_calculator, ml_md_reference_score, tmp_path):
    """Two segments of 20 steps at 1400 K complete; the same run with a lower threshold stops mid-segment.

    The same deterministic LAMMPS run (same seed) is repeated with a threshold between the two highest
    scores of the first run: it must stop at the step of the highest score, keep the frames before it, and
    roll back to the previous examined frame although LAMMPS integrated up to the end of that segment.
    """
    parameters = loop_parameters(seed=3)
    measure = GapVarianceCheck(3.0 * ml_md_reference_score, calculator=gap_calculator)
    first = tmp_path / 'first'
    result, engine = run_teacher(first, start_atoms(ml_md_gap), parameters, measure)
    assert result.outcome == 'completed', result.reason
    assert engine.n_segments == 2 and engine.steps_simulated == 40 and result.steps_done == 40
    assert result.traces['step'] == list(range(0, 41, 5))
    scores = result.traces['score']
    assert all(0.0 < score < measure.threshold for score in scores)
    frames = read(first / 'trajectory.xyz', ':')
    assert [frame.info['step'] for frame in frames] == [0, 10, 20, 30, 40]
    assert [frame.info['uncertainty'] for frame in frames] == scores[::2]
    for frame in frames:
        assert np.isfinite(frame.get_potential_energy()) and frame.get_forces().shape == (64, 3)
        assert frame.info['virial'].shape == (3, 3) and 'momenta' in frame.arrays
    assert 700 < np.mean(result.traces['temperature_K']) < 2100
    final = read(first / 'final.xyz')
    assert final.info['step'] == 40 and np.allclose(final.positions, frames[-1].positions)
    assert not (first / 'flagged.xyz').exists()

    # the rollback: a threshold that only the highest-scored frame (after step 0) exceeds
    ordered = sorted(scores[1:])
    threshold = 0.5 * (ordered[-1] + ordered[-2])
    if scores[0] > threshold:
        pytest.fail(f'the start frame scores above the highest MD frame: {scores}')
    trigger = result.traces['step'][scores.index(ordered[-1])]
    second = tmp_path / 'second'
    measure = GapVarianceCheck(threshold, calculator=gap_calculator)
    rolled, engine = run_teacher(second, start_atoms(ml_md_gap), parameters, measure)
    assert rolled.outcome == 'extrapolation' and rolled.triggered_step == trigger
    assert rolled.traces['score'] == pytest.approx(scores[: scores.index(ordered[-1]) + 1], rel=1e-9)
    assert rolled.final.info['step'] == trigger - 5  # the last trusted frame
    assert engine.steps_simulated == 20 * math.ceil(trigger / 20)  # LAMMPS ran to the end of the segment
    assert read(second / 'trajectory.xyz', ':')[-1].info['step'] == trigger
    assert read(second / 'final.xyz').info['step'] == trigger - 5
    flagged = read(second / 'flagged.xyz', ':')
    assert flagged[-1].info['step'] == trigger and flagged[-1].info['uncertainty'] > threshold
    assert 1 <= len(flagged) == rolled.n_flagged <= 3
    assert 'forces' not in flagged[-1].arrays and 'ml_forces' in flagged[-1].arrays

    # the summary has the keys of every engine (the parser reads them) and the rollback bookkeeping
    threshold_info = {'threshold': threshold, 'reference_score': None, 'reference_computed': False}
    summary = summarise(rolled, engine, parameters, measure, threshold_info, 0, start_atoms(ml_md_gap))
    assert summary['outcome'] == 'extrapolation' and summary['steps_done'] == trigger
    assert summary['triggered_step'] == trigger
    assert summary['final_step'] == summary['rollback_step'] == trigger - 5
    assert summary['max_score'] == pytest.approx(ordered[-1], rel=1e-9)
    assert summary['n_flagged'] == len(flagged) and summary['n_scored'] == len(rolled.traces['score'])
    assert summary['volume_trace'] is None and summary['failed_checks'][0]['name'] == 'gap_variance'
    assert summary['engine'] == 'lammps' and summary['n_segments'] == math.ceil(trigger / 20)
    assert summary['steps_simulated'] == engine.steps_simulated and summary['stride'] == 5
    assert summary['integrator'] == 'langevin + nve' and summary['velocities'] == 'lammps_gaussian'
    assert summary['scoring_time_s'] == measure.time_s > 0
    json.dumps(summary)

    # continue from the rollback point (positions and momenta of the last trusted frame), steps numbered on
    restart = read(second / 'final.xyz')
    measure = GapVarianceCheck(3.0 * ml_md_reference_score, calculator=gap_calculator)
    parameters = loop_parameters(seed=4, n_steps=10)
    result, _ = run_teacher(
        tmp_path / 'third',
        restart,
        parameters,
        measure,
        initial_step=restart.info['step'],
        momenta=restart.arrays['momenta'],
    )
    assert result.outcome == 'completed' and result.traces['step'] == [trigger - 5, trigger, trigger + 5]
    frames = read(tmp_path / 'third' / 'trajectory.xyz', ':')
    assert [frame.info['step'] for frame in frames] == [trigger - 5, trigger + 5]
    assert np.allclose(frames[0].arrays['momenta'], restart.arrays['momenta'], atol=1e-12)


@pytest.mark.e2e
@requires_lmp
def test_segments_absurd_timestep_unstable(ml_md_gap, tmp_path):
    """A 40 fs time step: `unstable` (a stability check on a dumped frame, or LAMMPS itself stops)."""
    parameters = loop_parameters(timestep_fs=40.0, n_steps=60, seed=5)
    result, _ = run_teacher(tmp_path, start_atoms(ml_md_gap, 2), parameters, None)
    assert result.outcome == 'unstable', result.reason
    assert result.triggered_step < 60
    assert result.final.info['step'] < result.triggered_step or result.final.info['step'] == 0
    assert result.failed and result.failed[0].kind == 'unstable'
    assert read(tmp_path / 'trajectory.xyz', ':')[-1].info['step'] == result.triggered_step


# --- the driver --------------------------------------------------------------------------------------------
@requires_lmp
def test_driver_rejects_lammps_without_quip(tmp_path):
    """With a LAMMPS built without ML-QUIP the driver stops at once with a clear `error` summary."""
    if lmp_has_quip():
        pytest.skip('this `lmp` has pair_style quip')
    parameters = {'md': {'engine': 'lammps'}, 'lammps': {'command': 'lmp'}}
    (tmp_path / 'input.json').write_text(json.dumps({'structure': 's.xyz', 'parameters': parameters}))
    assert main([str(tmp_path / 'input.json')]) == 1
    summary = json.loads((tmp_path / 'summary.json').read_text())
    assert summary['outcome'] == 'error' and 'no `pair_style quip`' in summary['reason']


@pytest.mark.e2e
@pytest.mark.skipif(
    not lmp_has_quip(), reason='`lmp -h` does not list pair_style quip (LAMMPS without ML-QUIP)'
)
def test_driver_with_pair_style_quip(ml_md_gap, ml_md_reference_score, tmp_path):
    """With a LAMMPS built with ML-QUIP: 1400 K completes, a cell compressed by 20 % extrapolates."""
    from quippy.potential import Potential

    parameters = {
        'md': {'engine': 'lammps', 'temperature_K': 1400.0, 'n_steps': 40, 'dump_interval': 10, 'seed': 3},
        'extrapolation': {
            'check_interval': 5,
            'relative_threshold': 3.0,
            'reference_score': ml_md_reference_score,
        },
        'lammps': {'command': 'lmp', 'segment_steps': 20},
    }
    prepare(tmp_path / 'nvt', ml_md_gap, start_atoms(ml_md_gap), parameters)
    path = tmp_path / 'nvt' / 'input.json'
    assert main([str(path)]) == 0
    summary = json.loads((path.parent / 'summary.json').read_text())
    assert summary['outcome'] == 'completed', summary['reason']
    assert summary['engine'] == 'lammps' and summary['n_segments'] == 2 and summary['steps_done'] == 40
    assert 0.0 < summary['max_score'] < summary['threshold']
    frames = read(path.parent / 'trajectory.xyz', ':')
    assert [frame.info['step'] for frame in frames] == [0, 10, 20, 30, 40]
    # LAMMPS' pair_style quip and quippy give the same energy and forces on the start frame
    atoms = start_atoms(ml_md_gap)
    atoms.calc = Potential(param_filename=str(ml_md_gap.xml))
    assert frames[0].info['energy'] == pytest.approx(atoms.get_potential_energy(), abs=1e-6)
    assert np.allclose(frames[0].arrays['forces'], atoms.get_forces(), atol=1e-6)

    prepare(tmp_path / 'compressed', ml_md_gap, compressed(start_atoms(ml_md_gap, 1)), parameters)
    path = tmp_path / 'compressed' / 'input.json'
    assert main([str(path)]) == 0
    summary = json.loads((path.parent / 'summary.json').read_text())
    assert summary['outcome'] == 'extrapolation' and summary['triggered_step'] <= 10
    flagged = read(path.parent / 'flagged.xyz', ':')
    assert flagged[-1].info['step'] == summary['triggered_step']


# --- MlMdCalculation: engine selection ---------------------------------------------------------------------
@pytest.fixture
def lammps_inputs(aiida_profile, code_python, ml_md_gap):
    from aiida import orm

    from aiida_mlpot.data.potential import GapPotentialData

    def factory(parameters: dict, **extra) -> dict:
        inputs = {
            'code': code_python,
            'structure': orm.StructureData(ase=start_atoms(ml_md_gap)),
            'potential': GapPotentialData.from_files(ml_md_gap.xml),
            'parameters': orm.Dict(parameters),
        }
        return {**inputs, **extra}

    return factory


@pytest.mark.e2e
def test_calculation_engine_validation(lammps_inputs, code_lmp, localhost):
    """`lammps_code` only with the lammps engine, not together with `lammps.command`, on the driver's computer."""
    from aiida.orm import Computer, InstalledCode

    from aiida_mlpot.calculations.ml_md import validate_inputs

    lammps = {'md': {'engine': 'lammps'}}
    assert validate_inputs(lammps_inputs(lammps, lammps_code=code_lmp), None) is None
    assert (
        validate_inputs(lammps_inputs({'md': {'engine': 'lammps'}, 'lammps': {'command': 'lmp'}}), None)
        is None
    )
    message = validate_inputs(lammps_inputs({}, lammps_code=code_lmp), None)
    assert 'only used with `md.engine = lammps`' in message
    both = {'md': {'engine': 'lammps'}, 'lammps': {'command': 'lmp'}}
    assert 'not both' in validate_inputs(lammps_inputs(both, lammps_code=code_lmp), None)
    assert 'md.engine' in validate_inputs(lammps_inputs({'md': {'engine': 'gromacs'}}), None)
    other = Computer(
        label='mlpot-other', hostname='other', transport_type='core.local', scheduler_type='core.direct'
    )
    remote = InstalledCode(label='lmp', computer=other.store(), filepath_executable='/opt/lmp')
    assert 'is on computer `mlpot-other`' in validate_inputs(lammps_inputs(lammps, lammps_code=remote), None)


@pytest.mark.e2e
def test_calculation_writes_lammps_command(lammps_inputs, code_lmp, ml_md_gap):
    """A dry run writes the executable of `lammps_code` and the GAP's xml_label into the driver input."""
    from aiida.engine import run_get_node

    from aiida_mlpot.calculations.ml_md import MlMdCalculation

    inputs = lammps_inputs({'md': {'engine': 'lammps', 'n_steps': 20}}, lammps_code=code_lmp)
    inputs['metadata'] = {'dry_run': True, 'store_provenance': False}
    _, node = run_get_node(MlMdCalculation, **inputs)
    config = json.loads((pathlib.Path(node.dry_run_info['folder']) / 'input.json').read_text())
    assert config['parameters']['md']['engine'] == 'lammps'
    assert config['parameters']['lammps']['command'] == str(code_lmp.get_executable())
    # the node's label is the file's
    assert config['potential']['xml_label'] == parse_gap_xml(ml_md_gap.xml.read_text())['xml_label']
