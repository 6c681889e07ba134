"""End-to-end tests of LabellingWorkChain with the classical oracle (one real LAMMPS rerun job)."""

from __future__ import annotations

import numpy as np
import pytest
from aiida import orm
from aiida.engine import run_get_node

from aiida_mlpot.data.dataset import DatasetData
from aiida_mlpot.presets import nacl_tosi_fumi
from aiida_mlpot.workflows.labelling import LabellingWorkChain

pytestmark = pytest.mark.e2e


def test_classical_oracle_reproduces_sampling_labels(code_lmp, nacl_reference_frames):
    """The teacher reproduces the labels of the reference LAMMPS MD (same Tosi-Fumi + Ewald) to 1e-6."""
    frames = [nacl_reference_frames[i] for i in (0, 37, 101, 150, 201)]
    source = DatasetData.from_ase(frames)
    close = frames[0].copy()
    close.positions[1] = close.positions[0] + [0.3, 0.0, 0.0]
    builder = LabellingWorkChain.get_builder_from_protocol(
        code_lmp,
        DatasetData.from_ase([*frames, close]),
        oracle='classical',
        potential=nacl_tosi_fumi(cutoff=6.5, kspace_accuracy=1.0e-6),
        overrides={'min_success_fraction': 0.8},
    )
    results, node = run_get_node(builder)
    assert node.is_finished_ok, node.exit_message
    # only the inputs of the classical oracle are recorded (no CP2K settings, no CP2K defaults)
    recorded = set(node.base.links.get_incoming().all_link_labels())
    assert not [label for label in recorded if label.startswith('cp2k')]
    assert {'dataset', 'classical__code', 'classical__potential', 'min_success_fraction'} <= recorded
    assert results['excluded'].get_dict().keys() == {'config_00005'}
    labelled = results['labelled'].to_ase()
    assert len(labelled) == 5
    assert source.n_configs == 5
    rerun = node.base.links.get_outgoing(link_label_filter='classical').one().node
    for reference, atoms in zip(frames, labelled, strict=True):
        assert atoms.info['source_uuid'] == rerun.uuid
        assert atoms.info['config_type'] == reference.info['config_type']  # carried over from the input
        e_ref = reference.info['energy']
        assert abs(atoms.info['energy'] - e_ref) <= 1e-6 * abs(e_ref)
        f_ref = reference.arrays['forces']
        assert np.abs(atoms.arrays['forces'] - f_ref).max() <= 1e-6 * np.abs(f_ref).max()
        w_ref = np.asarray(reference.info['virial'])
        assert np.abs(np.asarray(atoms.info['virial']) - w_ref).max() <= 1e-6 * np.abs(w_ref).max()
    # every configuration is its own StructureData input of the LAMMPS job that labelled it
    structures = {
        link.link_label for link in rerun.base.links.get_incoming().all() if 'structures' in link.link_label
    }
    assert len(structures) == 5


def test_selected_dataset_keeps_its_frame_info(code_lmp, nacl_reference_frames):
    """The `selected` output of `select_configurations` is labelled with the info of the pool frames it holds."""
    from aiida_mlpot.calculations.functions.selection import select_configurations

    frames = [atoms.copy() for atoms in nacl_reference_frames[::20]]
    for atoms in frames:
        atoms.info['source_uuid'] = f'md-{atoms.info["config_type"]}'  # the MD run a pool frame came from
    pool = DatasetData.from_ase(frames)
    selection = select_configurations(pool, orm.Dict({'seed': 3, 'steps': [{'method': 'random', 'n': 4}]}))
    builder = LabellingWorkChain.get_builder_from_protocol(
        code_lmp,
        selection['selected'],
        oracle='classical',
        potential=nacl_tosi_fumi(cutoff=6.5, kspace_accuracy=1.0e-6),
    )
    results, node = run_get_node(builder)
    assert node.is_finished_ok, node.exit_message
    selected = selection['selected'].to_ase()
    labelled = results['labelled'].to_ase()
    assert len(labelled) == 4
    # the selection dataset is an explicit input of the calcfunction that carries its info over
    collect = results['labelled'].creator
    assert (
        collect.base.links.get_incoming(link_label_filter='source').one().node.uuid
        == selection['selected'].uuid
    )
    for frame, atoms in zip(selected, labelled, strict=True):
        assert atoms.info['config_type'] == frame.info['config_type']
        assert atoms.info['pool_index'] == frame.info['pool_index']
        assert atoms.info['pool_uuid'] == pool.uuid
        assert atoms.info['parent_source_uuid'] == frame.info['source_uuid']
        assert atoms.info['source_uuid'] != frame.info['source_uuid']  # the rerun that labelled it
        assert abs(atoms.info['energy'] - frame.info['energy']) <= 1e-6 * abs(frame.info['energy'])
