"""The per-configuration lineage of :class:`DatasetData`: derived from the frames' provenance info when made."""

from __future__ import annotations

import numpy as np
import pytest
from aiida.orm import QueryBuilder, load_node
from ase.build import bulk

from aiida_mlpot.data.dataset import DatasetData, lineage_columns, lineage_rows
from aiida_mlpot.data.extxyz import LINEAGE_FIELDS, frame_lineage, md_source

MD = '1c2a0d5e-0000-4000-8000-00000000000a'
ORACLE = '1c2a0d5e-0000-4000-8000-00000000000b'
POOL = '1c2a0d5e-0000-4000-8000-00000000000c'


@pytest.mark.parametrize(
    ('info', 'expected'),
    [
        ({'source_uuid': MD, 'step': 40, 'config_type': 'T1400_V1'}, {'md_uuid': MD, 'md_step': 40}),
        (
            {'source_uuid': MD, 'step': 40, 'pool_uuid': POOL, 'pool_index': 7},
            {'md_uuid': MD, 'md_step': 40, 'pool_uuid': POOL, 'pool_index': 7},
        ),
        (  # labelled by an oracle: source_uuid is the oracle, parent_source_uuid the MD run
            {'source_uuid': ORACLE, 'label_key': 'config_00001', 'parent_source_uuid': MD, 'step': 40},
            {'md_uuid': MD, 'md_step': 40, 'oracle_uuid': ORACLE},
        ),
        (  # a user's structure labelled by an oracle: no MD run
            {'source_uuid': ORACLE, 'label_key': 'config_00000'},
            {'oracle_uuid': ORACLE},
        ),
        ({'source_uuid': ORACLE, 'parent_source_uuid': MD, 'al_iteration': 3}, {'md_uuid': MD, 'oracle_uuid': ORACLE, 'iteration': 3}),
        ({'config_type': 'mine', 'step': 5}, {}),  # a user's frame says nothing about its origin
    ],
)  # fmt: skip
def test_frame_lineage(info, expected):
    assert frame_lineage(info) == expected
    assert set(expected) <= set(LINEAGE_FIELDS)


def test_md_source_of_a_relabelled_frame_is_the_md_run():
    assert md_source({'source_uuid': MD}) == MD
    assert md_source({'source_uuid': ORACLE, 'label_key': 'k', 'parent_source_uuid': MD}) == MD
    assert md_source({'source_uuid': ORACLE, 'label_key': 'k'}) is None
    assert md_source({}) is None


def test_columns_and_rows_round_trip():
    rows = [{'md_uuid': MD, 'md_step': 0}, {}, {'oracle_uuid': ORACLE, 'iteration': 1}]
    columns = lineage_columns(rows)
    assert columns == {
        'md_uuid': [MD, None, None],
        'md_step': [0, None, None],
        'oracle_uuid': [None, None, ORACLE],
        'iteration': [None, None, 1],
    }
    assert lineage_rows(columns, 3) == rows
    assert lineage_columns([{}, {}]) == {}


def frames_with(infos):
    frames = []
    for index, info in enumerate(infos):
        atoms = bulk('NaCl', 'rocksalt', a=5.64, cubic=True)
        atoms.info.update(energy=-25.0 - index, **info)
        atoms.arrays['forces'] = np.zeros((len(atoms), 3))
        frames.append(atoms)
    return frames


def test_attribute_made_with_the_node_and_stored(aiida_profile):
    infos = [
        {'source_uuid': ORACLE, 'label_key': 'config_00000', 'parent_source_uuid': MD, 'step': 10},
        {'source_uuid': MD, 'step': 20, 'pool_uuid': POOL, 'pool_index': 4},
        {'config_type': 'user'},
    ]
    node = DatasetData.from_ase(frames_with(infos)).store()
    loaded = load_node(node.pk)
    assert loaded.base.attributes.get('lineage') == {
        'md_uuid': [MD, MD, None],
        'md_step': [10, 20, None],
        'oracle_uuid': [ORACLE, None, None],
        'pool_uuid': [None, POOL, None],
        'pool_index': [None, 4, None],
    }
    assert loaded.lineage == [frame_lineage(info) for info in infos]
    found = QueryBuilder().append(
        DatasetData, filters={'attributes.lineage.pool_uuid': {'contains': [POOL]}}, project='id'
    )
    assert node.pk in found.all(flat=True)


def test_node_without_the_attribute_reads_the_frames(aiida_profile):
    """A dataset made before the attribute existed: the lineage comes from the frames' info."""
    node = DatasetData.from_ase(frames_with([{'source_uuid': MD, 'step': 3}]))
    node.base.attributes.delete('lineage')
    assert node.lineage == [{'md_uuid': MD, 'md_step': 3}]
