"""End-to-end: the ML-MD driver (its command line) with the `rematch` trigger, GAP fitted by the real gap_fit."""

from __future__ import annotations

import json

import numpy as np
import pytest
from ase.io import read

from aiida_mlpot.descriptors import similarity_of_distance
from aiida_mlpot.engines.ml_md import main
from aiida_mlpot.engines.parameters import REMATCH_RELATIVE_THRESHOLD
from tests.engines.ml_md_helpers import prepare

pytestmark = pytest.mark.e2e

PARAMETERS = {
    'md': {'temperature_K': 1400.0, 'n_steps': 20, 'dump_interval': 10, 'seed': 5},
    'extrapolation': {'method': 'rematch', 'check_interval': 5, 'max_references': 20},
}


def run_driver(workdir, gap, atoms) -> dict:
    atoms = atoms.copy()
    atoms.calc = None
    prepare(workdir, gap, atoms, PARAMETERS, gap.training)
    assert main([str(workdir / 'input.json')]) == 0
    return json.loads((workdir / 'summary.json').read_text())


def test_rematch_trigger_training_like_and_compressed(ml_md_gap, tmp_path):
    """A 1400 K frame held out of the training set runs on; the same frame at 0.8 of its volume triggers."""
    held_out = ml_md_gap.held_out[1]
    summary = run_driver(tmp_path / 'training_like', ml_md_gap, held_out)
    assert summary['outcome'] == 'completed', summary['reason']
    assert summary['extrapolation_method'] == 'rematch' and summary['steps_done'] == 20
    # 20 of the 40 training frames, by farthest-point sampling; threshold calibrated by leave-one-out
    assert summary['n_references'] == 20 and summary['n_training_frames'] == 40
    assert summary['reference_selection'] == 'fps'
    assert summary['reference_computed'] and summary['relative_threshold'] == REMATCH_RELATIVE_THRESHOLD
    assert summary['threshold'] == pytest.approx(REMATCH_RELATIVE_THRESHOLD * summary['reference_score'])
    critical = summary['critical_similarity']
    assert critical == pytest.approx(similarity_of_distance(summary['threshold']))
    assert 0.9 < critical < 1.0
    assert summary['n_score_evaluations'] == 5  # steps 0, 5, 10, 15, 20
    assert summary['time_per_check_ms'] > 0 and summary['cpu_time_per_check_ms'] > 0
    scores = np.array(summary['traces']['score'])
    assert len(scores) == 5 and np.all(scores < summary['threshold'])
    assert summary['max_score'] == pytest.approx(scores.max())
    frames = read(tmp_path / 'training_like' / 'trajectory.xyz', ':')
    assert [frame.info['step'] for frame in frames] == [0, 10, 20]
    assert all(0 < frame.info['uncertainty'] < summary['threshold'] for frame in frames)

    compressed = held_out.copy()
    compressed.set_cell(compressed.cell * 0.8 ** (1 / 3), scale_atoms=True)
    summary = run_driver(tmp_path / 'compressed', ml_md_gap, compressed)
    assert summary['outcome'] == 'extrapolation'
    assert summary['triggered_step'] == 0  # the first check already
    assert summary['max_score'] > summary['threshold']
    similarity = similarity_of_distance(summary['max_score'])
    assert similarity < summary['critical_similarity']
    assert summary['reason'] == (
        f'REMatch similarity {similarity:.5f} below the critical {summary["critical_similarity"]:.5f}'
    )
    flagged = read(tmp_path / 'compressed' / 'flagged.xyz', ':')
    assert len(flagged) == summary['n_flagged'] == 1
    assert flagged[0].info['uncertainty'] == pytest.approx(summary['max_score'])
    assert flagged[0].get_volume() == pytest.approx(0.8 * held_out.get_volume())
