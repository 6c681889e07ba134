"""The ``rematch`` extrapolation method of the ML-MD driver: parameters, calibration, check (no potential)."""

from __future__ import annotations

import numpy as np
import pytest
from ase.build import bulk

from aiida_mlpot.descriptors import RematchReferences, kernel_distance, similarity_of_distance
from aiida_mlpot.engines.checks import RematchCheck, assess_frame, relative_threshold
from aiida_mlpot.engines.ml_md import extrapolation_check
from aiida_mlpot.engines.parameters import REMATCH_RELATIVE_THRESHOLD, needs_training, normalise_parameters

SOAP = {'r_cut': 4.0, 'n_max': 3, 'l_max': 2}


def melt_like(seed: int, volume_factor: float = 1.0):
    """A 16-atom NaCl cell with large random displacements (a crude stand-in for a melt frame)."""
    atoms = bulk('NaCl', 'rocksalt', a=5.64 * volume_factor ** (1 / 3), cubic=True).repeat((2, 1, 1))
    atoms.rattle(0.35, seed=seed)
    return atoms


@pytest.fixture(scope='module')
def training():
    return [melt_like(seed) for seed in range(10)]


def rematch_parameters(**extrapolation):
    return normalise_parameters(
        {'extrapolation': {'method': 'rematch', 'soap': SOAP, **extrapolation}, 'md': {'seed': 3}}
    )


@pytest.mark.parametrize(
    ('extrapolation', 'message'),
    [
        ({'method': 'rematch', 'max_reference': 5}, r'unknown parameter `extrapolation\.max_reference`'),
        (
            {'method': 'rematch', 'critical_similarity': 1.2},
            r'critical_similarity` must be a number in \(0, 1\)',
        ),
        ({'method': 'rematch', 'critical_similarity': '0.9'}, 'critical_similarity'),
        ({'critical_similarity': 0.99}, 'only used with `extrapolation.method = rematch`'),
        ({'method': 'rematch', 'critical_similarity': 0.99, 'relative_threshold': 2.0}, 'not both'),
        ({'method': 'rematch', 'threshold': 0.1}, 'give `extrapolation.critical_similarity`'),
        ({'method': 'rematch', 'max_references': 0}, 'max_references` must be a positive integer or None'),
        ({'method': 'rematch', 'max_references': True}, 'max_references'),
        ({'method': 'rematch', 'rematch_alpha': 0.0}, 'rematch_alpha'),
        ({'method': 'rematch', 'soap': {'rcut': 4.0}}, 'unknown SOAP'),
    ],
)
def test_rematch_parameters_rejected(extrapolation, message):
    with pytest.raises(ValueError, match=message):
        normalise_parameters({'extrapolation': extrapolation})


def test_rematch_parameters_defaults():
    """Without a critical similarity the threshold is calibrated (default factor); normalising is idempotent."""
    parameters = normalise_parameters({'extrapolation': {'method': 'rematch'}})
    extrapolation = parameters['extrapolation']
    assert extrapolation['relative_threshold'] == REMATCH_RELATIVE_THRESHOLD
    assert extrapolation['max_references'] == 50 and extrapolation['critical_similarity'] is None
    assert normalise_parameters(parameters) == parameters
    assert needs_training(parameters)
    fixed = normalise_parameters({'extrapolation': {'method': 'rematch', 'critical_similarity': 0.99}})
    assert fixed['extrapolation']['relative_threshold'] is None
    assert normalise_parameters(fixed) == fixed
    assert normalise_parameters({'extrapolation': {'method': 'rematch', 'max_references': None}})
    # the other methods keep their default (no threshold unless asked)
    assert normalise_parameters({})['extrapolation']['relative_threshold'] is None


def test_calibrated_threshold(training):
    """threshold = factor x percentile of the training frames' leave-one-out REMatch distances."""
    parameters = rematch_parameters(max_references=None, percentile=90.0)
    check, info = extrapolation_check(parameters, training, calculator=None, species=('Cl', 'Na'))
    assert isinstance(check, RematchCheck) and info['reference_computed']
    loo = RematchReferences(training, SOAP).leave_one_out()
    reference = float(np.percentile(kernel_distance(loo), 90.0))
    assert info['reference_score'] == pytest.approx(reference, rel=1e-10)
    assert check.threshold == info['threshold'] == pytest.approx(REMATCH_RELATIVE_THRESHOLD * reference)
    assert check.critical_similarity == pytest.approx(1.0 - 0.5 * check.threshold**2)
    assert check.critical_similarity < np.percentile(loo, 10.0)  # below the training frames' own values
    np.testing.assert_allclose(check.training_scores(), kernel_distance(loo))
    assert relative_threshold(check.training_scores(), 2.0, 90.0)[0] == pytest.approx(check.threshold)

    # a given reference score is used as is; a critical similarity fixes the threshold directly
    check, info = extrapolation_check(
        rematch_parameters(relative_threshold=3.0, reference_score=0.05), training, None
    )
    assert not info['reference_computed'] and check.threshold == pytest.approx(0.15)
    check, info = extrapolation_check(rematch_parameters(critical_similarity=0.98), training, None)
    assert check.critical_similarity == pytest.approx(0.98) and info['reference_score'] is None
    assert check.threshold == pytest.approx(np.sqrt(2 - 2 * 0.98))
    with pytest.raises(ValueError, match='needs the training frames'):
        extrapolation_check(rematch_parameters(), None, None)


def test_check_triggers_on_compressed_frame(training):
    parameters = rematch_parameters(max_references=4)
    check, _ = extrapolation_check(parameters, training, calculator=None, species=('Cl', 'Na'))
    assert check.reference.n_references == 4 and check.reference.selection == 'fps'
    compressed = melt_like(100, volume_factor=0.6)
    similar = melt_like(101)
    result = check(compressed)
    assert result.triggered and result.kind == 'extrapolation'
    assert result.value == pytest.approx(kernel_distance(check.reference.similarity(compressed)))
    k = similarity_of_distance(result.value)
    assert k < check.critical_similarity and f'REMatch similarity {k:.5f}' in result.message
    assert not check(similar).triggered
    # through assess_frame, as the driver does it: only check steps can trigger
    assert assess_frame(compressed, 10, [], check, check_interval=10).outcome == 'extrapolation'
    scored_only = assess_frame(compressed, 5, [], check, check_interval=10, dump_interval=5)
    assert scored_only.outcome is None and scored_only.score == pytest.approx(result.value)
    summary = check.summary()
    assert summary['n_score_evaluations'] == 4 and summary['time_per_check_ms'] > 0
    assert summary['cpu_time_per_check_ms'] > 0
    assert summary['n_references'] == 4 and summary['n_training_frames'] == 10
    assert summary['reference_selection'] == 'fps'
    assert summary['critical_similarity'] == pytest.approx(check.critical_similarity)
