"""The calcfunctions of the labelling stage: dataset split, CP2K data files, merge of the labels."""

from __future__ import annotations

import pathlib

import numpy as np
import pytest
from aiida import orm
from ase.build import bulk

from aiida_mlpot.calculations.functions.exit_codes import check_exit_code_table
from aiida_mlpot.calculations.functions.labelling import (
    EXIT_CODES,
    collect_labels,
    cp2k_data_files,
    dataset_to_structures,
)
from aiida_mlpot.common.keys import config_key
from aiida_mlpot.data.dataset import DatasetData
from aiida_mlpot.inputs import cp2k as cp2k_inputs

needs_data = pytest.mark.skipif(
    not (pathlib.Path(cp2k_inputs.DEFAULT_DATA_DIR) / 'BASIS_MOLOPT').is_file(),
    reason='cp2k-data is not installed',
)
PBE = {
    'method': 'dft',
    'xc': 'PBE',
    'cutoff': 300,
    'rel_cutoff': 50,
    'basis_file': 'BASIS_MOLOPT',
    'potential_file': 'GTH_POTENTIALS',
    'basis': {'default': 'DZVP-MOLOPT-SR-GTH'},
    'pseudo': {'default': 'GTH-PBE'},
    'scf': {'eps_scf': 1.0e-6, 'max_scf': 50},
}


def test_exit_code_table():
    assert check_exit_code_table(EXIT_CODES) is None


def _frames(n: int) -> list:
    frames = []
    for index in range(n):
        atoms = bulk('NaCl', 'rocksalt', a=5.64, cubic=True)
        atoms.rattle(0.05, seed=index)
        atoms.info.update(
            {'config_type': f'T{index}', 'pool_index': 10 + index, 'source_uuid': f'md-{index}'}
        )
        atoms.info['energy'] = -25.0 + 0.01 * index  # an old label, replaced by the oracle's
        frames.append(atoms)
    return frames


def test_dataset_to_structures_keys(aiida_profile):
    dataset = DatasetData.from_ase(_frames(3))
    structures = dataset_to_structures(dataset)
    assert sorted(structures) == [config_key(i) for i in range(3)]
    np.testing.assert_allclose(structures[config_key(2)].get_ase().positions, dataset.to_ase()[2].positions)


def _rerun(frames: list, keys: list[str]) -> DatasetData:
    labelled = []
    for key, atoms in zip(keys, frames, strict=True):
        atoms = atoms.copy()
        atoms.info = {'label_key': key, 'energy': -30.0, 'virial': np.eye(3)}
        atoms.arrays['forces'] = np.full((len(atoms), 3), 0.1)
        labelled.append(atoms)
    return DatasetData.from_ase(labelled)


def test_collect_labels_carries_the_source_info(aiida_profile):
    """With `source` the info of frame config_index(key) is carried over; without it none is."""
    frames = _frames(3)
    source = DatasetData.from_ase(frames)
    structures = dataset_to_structures(source)
    keys = sorted(structures)
    kwargs = {f'structure_{key}': node for key, node in structures.items()}
    report = orm.Dict({'failures': {keys[1]: 'refused before labelling: too close'}, 'retried': []})
    guard = orm.Dict({'min_frames_for_energy': 10})
    rerun = _rerun([frames[0], frames[2]], [keys[0], keys[2]])

    outputs = collect_labels(guard=guard, report=report, rerun=rerun, source=source, **kwargs)
    labelled = outputs['labelled'].to_ase()
    assert [atoms.info['label_key'] for atoms in labelled] == [keys[0], keys[2]]
    for atoms, frame in zip(labelled, (frames[0], frames[2]), strict=True):
        assert atoms.info['config_type'] == frame.info['config_type']
        assert atoms.info['pool_index'] == frame.info['pool_index']
        assert atoms.info['parent_source_uuid'] == frame.info['source_uuid']
        assert atoms.info['energy'] == -30.0  # the oracle's label, not the source frame's
    assert outputs['excluded'].get_dict() == {keys[1]: 'refused before labelling: too close'}
    assert outputs['counts']['n_labelled'] == 2

    bare = collect_labels(guard=guard, report=report, rerun=rerun, **kwargs)['labelled'].to_ase()
    assert 'config_type' not in bare[0].info and 'parent_source_uuid' not in bare[0].info


@needs_data
def test_cp2k_data_files(aiida_profile):
    outputs = cp2k_data_files(orm.Dict(PBE), orm.List(['Na', 'Cl', 'Na']))
    assert outputs['basis'].filename == cp2k_inputs.BASIS_FILE
    assert outputs['potential'].filename == cp2k_inputs.POTENTIAL_FILE
    basis = outputs['basis'].get_content()
    assert 'Na DZVP-MOLOPT-SR-GTH' in basis and 'Cl DZVP-MOLOPT-SR-GTH' in basis
    headers = [line.split()[0] for line in basis.splitlines() if 'DZVP-MOLOPT-SR-GTH' in line]
    assert headers == ['Cl', 'Na']  # one entry per element, sorted, however often it is named
    assert f'from {cp2k_inputs.DEFAULT_DATA_DIR}/BASIS_MOLOPT' in basis


@needs_data
def test_cp2k_data_files_failures(aiida_profile):
    _, node = cp2k_data_files.run_get_node(orm.Dict(PBE), orm.List(['Na', 'Pu']))
    assert node.exit_status == EXIT_CODES['ERROR_MISSING_CP2K_DATA'][0]
    assert 'Pu: no basis `DZVP-MOLOPT-SR-GTH`' in node.exit_message
    _, node = cp2k_data_files.run_get_node(orm.Dict({**PBE, 'data_dir': '/nonexistent'}), orm.List(['Na']))
    assert node.exit_status == EXIT_CODES['ERROR_MISSING_CP2K_DATA'][0]
    assert 'does not exist' in node.exit_message
    xtb = {'method': 'xtb', 'xtb': {'ewald_alpha': 0.35, 'ewald_gmax': 40}, 'scf': PBE['scf']}
    _, node = cp2k_data_files.run_get_node(orm.Dict(xtb), orm.List(['Na']))
    assert node.exit_status == EXIT_CODES['ERROR_INVALID_CP2K_SETTINGS'][0]
