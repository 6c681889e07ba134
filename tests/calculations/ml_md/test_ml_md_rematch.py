"""MlMdCalculation with the `rematch` trigger: the real driver runs with the `python` code (NaCl, 64 atoms)."""

from __future__ import annotations

import json

import pytest
from aiida import orm
from aiida.engine import run_get_node

from aiida_mlpot.calculations.ml_md import MlMdCalculation, validate_inputs

NVT_1400 = {'temperature_K': 1400.0, 'n_steps': 20, 'dump_interval': 10, 'seed': 11}
REMATCH = {'method': 'rematch', 'check_interval': 5, 'max_references': 20}


@pytest.mark.e2e
def test_rematch_compressed_cell(ml_md_inputs, training_dataset):
    """Volume x 0.8: outcome `extrapolation` (exit 0), flagged frames and the leave-one-out reference as outputs.

    The held-out frame at its own volume runs on: tests/engines/test_ase_md_rematch.py (the same driver).
    """
    parameters = {'md': NVT_1400, 'extrapolation': REMATCH}
    results, node = run_get_node(
        MlMdCalculation,
        **ml_md_inputs(parameters, index=1, scale=0.8 ** (1 / 3), training=training_dataset),
    )
    assert node.is_finished_ok, node.exit_message
    summary = results['summary'].get_dict()
    assert summary['outcome'] == 'extrapolation' and summary['triggered_step'] == 0
    assert summary['extrapolation_method'] == 'rematch'
    assert summary['n_references'] == 20 and summary['reference_selection'] == 'fps'
    assert 'REMatch similarity' in summary['reason']
    assert results['flagged'].to_ase()[-1].info['uncertainty'] > summary['threshold']
    assert json.loads(node.base.repository.get_object_content('input.json'))['training'] == 'training.xyz'
    reference = results['reference_score']  # the leave-one-out percentile, reusable by later runs
    assert reference.value == pytest.approx(summary['reference_score'])


@pytest.mark.parametrize(
    ('extrapolation', 'training', 'message'),
    [
        (REMATCH, False, 'training'),
        ({**REMATCH, 'max_reference': 5}, True, r'unknown parameter `extrapolation\.max_reference`'),
        ({**REMATCH, 'critical_similarity': 0.99, 'relative_threshold': 2.0}, True, 'not both'),
        ({'critical_similarity': 0.99}, True, 'only used with'),
    ],
)
def test_rematch_invalid_inputs(ml_md_inputs, training_dataset, extrapolation, training, message):
    extra = {'training': training_dataset} if training else {}
    inputs = ml_md_inputs({'extrapolation': extrapolation}, **extra)
    with pytest.raises(ValueError, match=message):
        run_get_node(MlMdCalculation, **inputs)


def test_rematch_critical_similarity_is_valid(ml_md_inputs, training_dataset):
    inputs = ml_md_inputs(
        {'extrapolation': {'method': 'rematch', 'critical_similarity': 0.99}}, training=training_dataset
    )
    assert validate_inputs(inputs, None) is None
    inputs['reference_score'] = orm.Float(0.05)
    assert 'only used with' in validate_inputs(inputs, None)
