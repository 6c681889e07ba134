"""The loop on liquid argon (the Lennard-Jones preset), and the memory plan refusing a fit before launching."""

from __future__ import annotations

import pytest
from aiida import orm

from aiida_mlpot.presets import argon_lj
from aiida_mlpot.structures import random_box
from aiida_mlpot.workflows.active_learning import ActiveLearningWorkChain
from tests.workflows.active_learning.loop_helpers import SMALL, assert_converged, dataset_labels, run_loop


@pytest.mark.e2e
def test_loop_converges_on_argon(codes):
    """Liquid argon (the Lennard-Jones preset), 32 atoms at 90 K, NVT."""
    structure = orm.StructureData(ase=random_box({'Ar': 32}, density=1.40, min_distance=3.0, seed=1))
    results, node = run_loop(structure, argon_lj(), [90.0], codes)
    assert_converged(results, node)
    labels = dataset_labels(node)
    for role in (
        'pool',
        'selected',
        'labelled_initial',
        'train_final',
        'test_final',
        'planned_01',
        'audit_01',
    ):
        assert role in labels, labels
    assert '' not in labels and 'sampling/md_T90_V1/dataset' in labels, labels  # no data set without a label


@pytest.mark.e2e
def test_refit_refused_before_launching_when_memory_is_too_small(codes):
    """A declared memory below what even the fewest sparse points need: exit 412 before any fit, outputs kept."""
    structure = orm.StructureData(ase=random_box({'Ar': 32}, density=1.40, min_distance=3.0, seed=1))
    overrides = {
        **SMALL,
        'fitting': {'gap_fit': {'metadata': {'options': {'max_memory_kb': 100 * 1024}}}},  # 100 MB
    }
    results, node = run_loop(structure, argon_lj(), [90.0], codes, overrides=overrides)
    assert node.exit_status == ActiveLearningWorkChain.exit_codes.ERROR_REFIT_EXCEEDS_MEMORY.status
    assert 'max_memory_kb' in node.exit_message and 'configurations like these fit' in node.exit_message
    assert not any(child.process_label == 'GapFitWorkChain' for child in node.called)
    assert {'pool', 'training_set', 'test_set', 'learning_curve', 'stopping'} <= set(results)
    assert results['training_set'].label == 'train_final'
    stopping = results['stopping'].get_dict()  # the initial fit was refused: no assessment before it
    assert stopping['criterion'] == 'refit_exceeds_memory' and stopping['stop'] and not stopping['converged']
    assert 'max_memory_kb' in stopping['reason'] and stopping['iteration'] == 0
