"""Unit tests of the MD checks and of the driver's parameter validation (no potential evaluation)."""

from __future__ import annotations

import numpy as np
import pytest
from ase import Atoms
from ase.build import bulk
from ase.calculators.singlepoint import SinglePointCalculator

from aiida_mlpot.engines.ase_md import DEFAULTS, needs_training, normalise_parameters
from aiida_mlpot.engines.checks import (
    FiniteCheck,
    GapVarianceCheck,
    MinDistanceCheck,
    SoapNoveltyCheck,
    TemperatureCheck,
    VolumeCheck,
    kinetic_temperature,
    relative_threshold,
)


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
    assert not MinDistanceCheck(2.0).check(crystal).triggered
    crystal.positions[1] = crystal.positions[0] + [1.2, 0.0, 0.0]
    result = MinDistanceCheck(2.0).check(crystal)
    assert result.triggered and result.value == pytest.approx(1.2)


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


def test_soap_novelty(crystal):
    rng = np.random.default_rng(1)
    training = []
    for _ in range(3):
        atoms = crystal.copy()
        atoms.rattle(0.05, rng=rng)
        training.append(atoms)
    check = SoapNoveltyCheck(training, r_cut=4.0, n_max=3, l_max=2)
    near = crystal.copy()
    near.rattle(0.05, rng=rng)
    far = crystal.copy()
    far.set_cell(far.cell * 0.85, scale_atoms=True)
    assert check.score(near) < 0.5 * check.score(far)
    scores = check.training_scores()
    assert scores.shape == (3,) and np.all(scores > 0)
    threshold, reference = relative_threshold(scores, 2.0, 99.0)
    assert threshold == pytest.approx(2.0 * reference)
    assert reference <= scores.max()


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
    parameters = normalise_parameters({'extrapolation': {'relative_threshold': 2.0, 'soap': {'n_max': 6}}})
    assert parameters['md'] == DEFAULTS['md']
    assert parameters['extrapolation']['soap']['n_max'] == 6
    assert parameters['extrapolation']['soap']['l_max'] == DEFAULTS['extrapolation']['soap']['l_max']
    assert needs_training(parameters)
    parameters['extrapolation']['reference_score'] = 0.02
    assert not needs_training(parameters)
