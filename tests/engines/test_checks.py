"""Unit tests of the MD checks, of assess_frame and of the driver's parameter validation (no potential evaluation)."""

from __future__ import annotations

import numpy as np
import pytest
from ase import Atoms
from ase.build import bulk
from ase.calculators.singlepoint import SinglePointCalculator

from aiida_mlpot.analysis.geometry import too_close
from aiida_mlpot.descriptors.novelty import MAX_DISTANCE, atomic_novelty
from aiida_mlpot.descriptors.soap import DEFAULT_SOAP
from aiida_mlpot.engines.checks import (
    ExtrapolationCheck,
    FiniteCheck,
    GapVarianceCheck,
    MinDistanceCheck,
    SoapNoveltyCheck,
    TemperatureCheck,
    VolumeCheck,
    assess_frame,
    kinetic_temperature,
    relative_threshold,
    stability_checks,
)
from aiida_mlpot.engines.parameters import DEFAULTS, needs_training, normalise_parameters


@pytest.fixture
def crystal() -> Atoms:
    return bulk('NaCl', 'rocksalt', a=5.64, cubic=True).repeat((2, 2, 2))


def test_finite_check(crystal):
    crystal.calc = SinglePointCalculator(crystal, energy=-1.0, forces=np.zeros((len(crystal), 3)))
    assert not FiniteCheck().check(crystal).triggered
    crystal.calc.results['energy'] = float('nan')
    result = FiniteCheck().check(crystal)
    assert result.triggered and result.kind == 'unstable' and 'energy' in result.message


def test_min_distance_check(crystal):
    result = MinDistanceCheck(2.0).check(crystal)
    assert not result.triggered and result.value == float('inf') and result.message == ''
    crystal.positions[1] = crystal.positions[0] + [1.2, 0.0, 0.0]
    result = MinDistanceCheck(2.0).check(crystal)
    assert result.triggered and result.value == pytest.approx(1.2)
    assert result.message == too_close(crystal, 2.0)


def test_temperature_check(crystal):
    crystal.set_momenta(np.zeros((len(crystal), 3)))
    assert kinetic_temperature(crystal) == 0.0
    assert not TemperatureCheck(1000.0, 3.0).check(crystal).triggered
    rng = np.random.default_rng(0)
    crystal.set_momenta(rng.normal(size=(len(crystal), 3)) * 10.0)
    result = TemperatureCheck(1000.0, 3.0).check(crystal)
    assert result.value == pytest.approx(kinetic_temperature(crystal))
    assert result.triggered == (result.value > 3000.0)


def test_volume_check(crystal):
    volume = crystal.get_volume()
    assert not VolumeCheck(volume, 1.5).check(crystal).triggered
    crystal.set_cell(crystal.cell * 1.2, scale_atoms=True)  # 1.728 x volume
    assert VolumeCheck(volume, 1.5).check(crystal).triggered
    crystal.set_cell(crystal.cell / 1.2 / 1.2, scale_atoms=True)  # 0.58 x volume
    assert VolumeCheck(volume, 1.5).check(crystal).triggered


def test_gap_variance_check_reads_calculator(crystal):
    class Fake:
        extra_results = {'atoms': {'local_gap_variance': np.array([1e-4, 4e-4, 9e-4])}}

    crystal.calc = Fake()
    check = GapVarianceCheck(threshold=0.02)
    assert check.score(crystal) == pytest.approx(0.03)
    assert check.check(crystal).triggered
    crystal.calc = Fake()
    crystal.calc.extra_results = {'atoms': {}}
    with pytest.raises(RuntimeError, match='local_gap_variance'):
        check.score(crystal)


def rattled(crystal, n: int, amplitude: float = 0.05, seed: int = 1) -> list[Atoms]:
    rng = np.random.default_rng(seed)
    frames = []
    for _ in range(n):
        atoms = crystal.copy()
        atoms.rattle(amplitude, rng=rng)
        frames.append(atoms)
    return frames


SMALL_SOAP = {'r_cut': 4.0, 'n_max': 3, 'l_max': 2}


def test_soap_novelty(crystal):
    training = rattled(crystal, 3)
    check = SoapNoveltyCheck(training, soap=SMALL_SOAP)
    near = rattled(crystal, 1, seed=2)[0]
    far = crystal.copy()
    far.set_cell(far.cell * 0.85, scale_atoms=True)
    assert check.score(near) < 0.5 * check.score(far)
    scores = check.training_scores()
    assert scores.shape == (3,) and np.all(scores > 0)
    threshold, reference = relative_threshold(scores, 2.0, 99.0)
    assert threshold == pytest.approx(2.0 * reference)
    assert reference <= scores.max()


def test_soap_novelty_check_is_the_descriptors_kernel(crystal):
    """The check's per-atom distances and leave-one-frame-out scores are those of `atomic_novelty`."""
    training = rattled(crystal, 4, amplitude=0.1)
    frame = rattled(crystal, 1, amplitude=0.2, seed=5)[0]
    check = SoapNoveltyCheck(training, soap=SMALL_SOAP, max_environments=None)
    novelty, (per_atom,) = atomic_novelty([frame], training, soap=SMALL_SOAP, return_per_atom=True)
    np.testing.assert_allclose(check.per_atom(frame), per_atom, atol=1e-12)
    assert check.score(frame) == pytest.approx(novelty[0], abs=1e-12)
    others = [
        atomic_novelty([training[k]], training[:k] + training[k + 1 :], soap=SMALL_SOAP)[0] for k in range(4)
    ]
    np.testing.assert_allclose(check.training_scores(), others, atol=1e-12)
    # the defaults are the package's one default SOAP
    assert {key: DEFAULTS['extrapolation']['soap'][key] for key in DEFAULT_SOAP} == DEFAULT_SOAP
    # a species the training frames lack: the largest distance, sqrt(2), in the check and in the kernel
    mixed = frame.copy()
    mixed.symbols[0] = 'K'
    check = SoapNoveltyCheck(training, soap=SMALL_SOAP, species=['K'])
    novelty, (per_atom,) = atomic_novelty([mixed], training, soap=SMALL_SOAP, return_per_atom=True)
    assert per_atom[0] == check.per_atom(mixed)[0] == MAX_DISTANCE == pytest.approx(np.sqrt(2.0))
    assert check.score(mixed) == novelty[0] == MAX_DISTANCE
    np.testing.assert_allclose(check.per_atom(mixed), per_atom, atol=1e-12)
    assert np.all(per_atom[1:] < MAX_DISTANCE)
    # without the species in the descriptor, the check still answers (every atom unknown-species far)
    assert SoapNoveltyCheck(training, soap=SMALL_SOAP).score(mixed) == MAX_DISTANCE


class ScoreFromInfo(ExtrapolationCheck):
    """An extrapolation measure that reads the frame's `info['fake_score']` (a test double of the GAP variance)."""

    name = 'fake'

    def per_atom(self, atoms):
        return np.array([atoms.info['fake_score']])


def labelled(crystal, score: float, energy: float = -1.0) -> Atoms:
    atoms = crystal.copy()
    atoms.calc = SinglePointCalculator(atoms, energy=energy, forces=np.zeros((len(atoms), 3)))
    atoms.info['fake_score'] = score
    atoms.set_momenta(np.zeros((len(atoms), 3)))
    return atoms


def test_assess_frame_rules(crystal):
    """Stability first (finite alone when it fails; the rest every `stability_interval`), then the score."""
    checks = stability_checks(DEFAULTS['stability'], 1000.0, crystal.get_volume())
    assert [check.name for check in checks] == ['finite', 'temperature', 'volume', 'min_distance']
    measure = ScoreFromInfo(threshold=0.5)
    kwargs = {'check_interval': 10, 'dump_interval': 4}

    trusted = assess_frame(labelled(crystal, 0.1), 0, checks, measure, **kwargs)
    assert trusted.failed == [] and trusted.outcome is None and trusted.score == pytest.approx(0.1)
    assert assess_frame(labelled(crystal, 0.1), 3, checks, measure, **kwargs).score is None  # not traced

    high = labelled(crystal, 0.9)
    dumped_only = assess_frame(high, 4, checks, measure, **kwargs)  # scored because dumped: never a trigger
    assert dumped_only.outcome is None and dumped_only.score == pytest.approx(0.9)
    triggered = assess_frame(high, 20, checks, measure, **kwargs)
    assert triggered.outcome == 'extrapolation' and triggered.score == pytest.approx(0.9)
    assert triggered.failed[0].name == 'fake' and triggered.failed[0].threshold == 0.5
    assert assess_frame(high, 20, checks, None, **kwargs).outcome is None  # no measure: nothing to trigger

    broken = labelled(crystal, 0.9, energy=float('nan'))
    broken.positions[1] = broken.positions[0] + [0.5, 0.0, 0.0]
    unstable = assess_frame(broken, 20, checks, measure, **kwargs)
    assert unstable.outcome == 'unstable' and unstable.score is None  # an unstable frame is not scored
    assert [result.name for result in unstable.failed] == ['finite']  # finite fails alone

    close = labelled(crystal, 0.1)
    close.positions[1] = close.positions[0] + [0.5, 0.0, 0.0]
    skipped = assess_frame(close, 3, checks, measure, stability_interval=2, **kwargs)
    assert skipped.outcome is None  # step 3: only the finite check
    caught = assess_frame(close, 4, checks, measure, stability_interval=2, **kwargs)
    assert caught.outcome == 'unstable' and caught.failed[0].name == 'min_distance'
    assert caught.failed[0].value == pytest.approx(0.5) and caught.score is None
    assert 'below 1.0 Å' in caught.failed[0].message


def test_relative_threshold_rejects_empty():
    with pytest.raises(ValueError):
        relative_threshold(np.array([np.nan]), 2.0)


@pytest.mark.parametrize(
    ('parameters', 'message'),
    [
        ({'md': {'ensemble': 'nve'}}, 'md.ensemble'),
        ({'md': {'n_steps': 0}}, 'md.n_steps'),
        ({'md': {'timestep_fs': -1.0}}, 'md.timestep_fs'),
        ({'mdx': {}}, 'unknown parameter section'),
        ({'md': {'steps': 3}}, 'unknown parameter'),
        ({'extrapolation': {'threshold': 0.1, 'relative_threshold': 3.0}}, 'not both'),
        ({'extrapolation': {'method': 'none', 'threshold': 0.1}}, 'method'),
        ({'extrapolation': {'soap': {'nmax': 3}}}, 'SOAP'),
        ({'stability': {'min_distance': 0}}, 'stability.min_distance'),
    ],
)
def test_normalise_parameters_rejects(parameters, message):
    with pytest.raises(ValueError, match=message):
        normalise_parameters(parameters)


def test_normalise_parameters_defaults():
    parameters = normalise_parameters({'extrapolation': {'relative_threshold': 2.0, 'soap': {'n_max': 4}}})
    assert parameters['md'] == DEFAULTS['md']
    assert parameters['extrapolation']['soap']['n_max'] == 4
    assert parameters['extrapolation']['soap']['l_max'] == DEFAULTS['extrapolation']['soap']['l_max']
    assert needs_training(parameters)
    parameters['extrapolation']['reference_score'] = 0.02
    assert not needs_training(parameters)
