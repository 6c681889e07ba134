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
    inputs = {
        'dataset': DatasetData.from_ase([*frames, close]),
        'oracle': orm.Str('classical'),
        'classical_code': code_lmp,
        'potential': orm.Dict(nacl_tosi_fumi(cutoff=6.5, kspace_accuracy=1.0e-6)),
        'min_success_fraction': orm.Float(0.8),
    }
    results, node = run_get_node(LabellingWorkChain, **inputs)
    assert node.is_finished_ok, node.exit_message
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


def test_selected_structures_keep_their_frame_info(code_lmp, nacl_reference_frames):
    """Structures from `select_configurations` are labelled with the info of the pool frame they came from."""
    from aiida_mlpot.calculations.functions.selection import select_configurations

    pool = DatasetData.from_ase(nacl_reference_frames[::20])
    selection = select_configurations(pool, orm.Dict({'seed': 3, 'steps': [{'method': 'random', 'n': 4}]}))
    inputs = {
        'structures': dict(selection['structures']),
        'oracle': orm.Str('classical'),
        'classical_code': code_lmp,
        'potential': orm.Dict(nacl_tosi_fumi(cutoff=6.5, kspace_accuracy=1.0e-6)),
    }
    results, node = run_get_node(LabellingWorkChain, **inputs)
    assert node.is_finished_ok, node.exit_message
    selected = selection['selected'].to_ase()
    labelled = results['labelled'].to_ase()
    assert len(labelled) == 4
    for frame, atoms in zip(selected, labelled, strict=True):
        assert atoms.info['config_type'] == frame.info['config_type']
        assert atoms.info['pool_index'] == frame.info['pool_index']
        assert (
            atoms.info['parent_source_uuid'] == frame.info['source_uuid']
            if 'source_uuid' in frame.info
            else True
        )
        assert abs(atoms.info['energy'] - frame.info['energy']) <= 1e-6 * abs(frame.info['energy'])
