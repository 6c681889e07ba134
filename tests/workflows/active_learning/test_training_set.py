"""The loop started from a given labelled training set: validation by name, and an end-to-end run on argon."""

from __future__ import annotations

import re

import numpy as np
import pytest
from aiida import orm
from aiida.common.links import LinkType
from aiida.engine import run_get_node
from aiida.engine.processes.utils import prune_mapping

from aiida_mlpot.data.dataset import DatasetData
from aiida_mlpot.presets import argon_lj
from aiida_mlpot.structures import random_box
from aiida_mlpot.workflows.active_learning import ActiveLearningWorkChain
from aiida_mlpot.workflows.labelling import LabellingWorkChain
from tests.workflows.active_learning.loop_helpers import SMALL, assert_converged, validation_error


def _frames(symbols: dict, n: int, forces: bool = True, seed: int = 1) -> list:
    """``n`` random boxes with made-up labels (for the validation only: never fitted)."""
    frames = []
    for index in range(n):
        atoms = random_box(symbols, density=1.0, min_distance=2.5, seed=seed + index)
        atoms.info['energy'] = -1.0
        if forces:
            atoms.arrays['forces'] = np.zeros((len(atoms), 3))
        frames.append(atoms)
    return frames


def _builder(codes, structure, training_set, test_set=None, overrides=None):
    return ActiveLearningWorkChain.get_builder_from_protocol(
        structure,
        argon_lj(),
        temperatures=[90.0],
        protocol='fast',
        overrides=overrides,
        codes=codes,
        training_set=training_set,
        test_set=test_set,
    )


def test_builder_leaves_out_the_sampling_and_the_selection(codes, argon):
    train = DatasetData.from_ase(_frames({'Ar': 32}, 4))
    builder = _builder(codes, argon, train)
    inputs = prune_mapping(dict(builder))
    assert 'sampling' not in inputs and 'selection' not in inputs and 'split' in inputs
    assert validation_error(builder) is None
    test = DatasetData.from_ase(_frames({'Ar': 32}, 2, seed=10))
    builder = _builder(codes, argon, train, test)
    assert 'split' not in prune_mapping(dict(builder)) and validation_error(builder) is None
    with pytest.raises(ValueError, match='override `selection`: not used'):
        _builder(codes, argon, train, overrides={'selection': {'seed': 2}})
    with pytest.raises(ValueError, match='`test_set` is only used with `training_set`'):
        _builder(codes, argon, None, test)


@pytest.mark.parametrize(
    ('dataset', 'port', 'message'),
    [
        (lambda: _frames({'Ar': 16, 'Ne': 16}, 3), 'training_set', r'`training_set`: species `Ne` is not in'),
        (lambda: _frames({'Ar': 32}, 3, forces=False), 'training_set', r'`training_set`: `forces` missing'),
        (lambda: _frames({'Ne': 32}, 2), 'test_set', r'`test_set`: species `Ne` is not in'),
    ],
)
def test_inconsistent_training_set_is_refused_by_name(codes, argon, dataset, port, message):
    good = DatasetData.from_ase(_frames({'Ar': 32}, 4))
    bad = DatasetData.from_ase(dataset(), allow_partial=True)
    builder = _builder(codes, argon, good, bad) if port == 'test_set' else _builder(codes, argon, bad)
    error = validation_error(builder)
    assert error is not None
    assert re.search(message, error), error


def test_sampling_inputs_are_refused_with_a_training_set(codes, argon):
    builder = _builder(codes, argon, DatasetData.from_ase(_frames({'Ar': 32}, 4)))
    builder.selection = {'seed': 1, 'steps': [{'method': 'random', 'n': 2}]}
    assert '`selection`: not used when the loop starts from `training_set`' in validation_error(builder)
    builder = _builder(codes, argon, None)
    builder.pop('sampling')
    assert '`sampling`: required unless the loop starts from a `training_set`' in validation_error(builder)


def label_random_boxes(codes, n: int, seed: int) -> DatasetData:
    """Label ``n`` random 32-atom argon boxes with the Lennard-Jones teacher (LabellingWorkChain, classical)."""
    structures = [
        orm.StructureData(ase=random_box({'Ar': 32}, density=1.40, min_distance=2.9, seed=seed + index))
        for index in range(n)
    ]
    builder = LabellingWorkChain.get_builder_from_protocol(
        codes['lammps'], structures, oracle='classical', potential=argon_lj()
    )
    results, node = run_get_node(builder)
    assert node.is_finished_ok, node.exit_message
    return results['labelled']


@pytest.mark.e2e
def test_loop_starts_from_a_training_set(codes, argon):
    """Eight labelled random boxes (and four held out): no sampling, the loop starts at the fit and converges."""
    train, test = label_random_boxes(codes, 8, seed=100), label_random_boxes(codes, 4, seed=200)
    loop = {**SMALL['loop'], 'max_iterations': 5}
    builder = _builder(codes, argon, train, test, overrides={'loop': loop})
    results, node = run_get_node(builder)
    assert_converged(results, node)
    assert 'pool' not in results
    called = {link.link_label for link in node.base.links.get_outgoing(link_type=(LinkType.CALL_WORK,)).all()}
    assert not {'sampling', 'label_initial'} & called, called
    curve = results['learning_curve'].get_dict()['iterations']
    assert curve[0]['n_train'] == len(train)
    # the oracle calls are counted from the start (the given sets cost nothing here): each joined a set
    added = len(results['training_set']) - len(train) + len(results['test_set']) - len(test)
    assert curve[-1]['oracle_calls'] == added > 0
    assert train.label == '' and test.label == ''  # the caller's data sets keep their labels
