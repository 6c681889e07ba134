"""The validation calcfunctions on the teacher's own 64-atom NaCl frames (real LAMMPS, tests/conftest.py).

Two halves of the same 1400 K run are two samples of the same liquid: their RDFs and diffusion must not fail;
the 1100 K run against the 1400 K run must (the melts differ by far more than the tolerances).
"""

from __future__ import annotations

import pytest
from aiida import orm

from aiida_mlpot.calculations.functions.exit_codes import check_exit_code_table
from aiida_mlpot.calculations.functions.validation import (
    EXIT_CODES,
    compare_md,
    compare_rerun,
    frame_interval_fs,
    join_validation,
    sample_rerun_frames,
)
from aiida_mlpot.data.dataset import DatasetData


def test_exit_code_table():
    assert check_exit_code_table(EXIT_CODES) is None


@pytest.fixture
def runs(aiida_profile, nacl_reference_frames):
    hot = [a for a in nacl_reference_frames if a.info['config_type'] == 'T1400']
    cold = [a for a in nacl_reference_frames if a.info['config_type'] == 'T1100']
    return {'first': hot[:50], 'second': hot[50:100], 'cold': cold[:50], 'pool': nacl_reference_frames}


def test_frame_interval_from_steps(runs):
    assert frame_interval_fs(runs['first'], 2.0) == pytest.approx(40.0)
    with pytest.raises(ValueError, match='no `time_fs`'):
        frame_interval_fs(runs['first'])


def test_same_liquid_does_not_fail_and_different_liquids_do(runs):
    parameters = {'discard': 0.0, 'n_bins': 60, 'timestep_fs': 2.0, 'reference_timestep_fs': 2.0}
    same = compare_md(
        DatasetData.from_ase(runs['first']), DatasetData.from_ase(runs['second']), orm.Dict(parameters)
    )
    assert same['comparison']['structure']['verdict'] != 'fail'
    with same['rdf_plot'].open(mode='rb') as handle:
        assert handle.read(4) == b'\x89PNG'
    # the whole pool as the reference, its 1400 K frames picked by config_type, against the 1100 K run
    other = compare_md(
        DatasetData.from_ase(runs['cold']),
        DatasetData.from_ase(runs['pool']),
        orm.Dict({**parameters, 'reference_config_type': 'T1400'}),
    )
    assert other['comparison']['reference_frames'] == 101
    assert other['comparison']['verdict'] == 'fail'
    joined = join_validation(a__md=same['comparison'], b__md=other['comparison'])
    assert joined['verdict'].value == 'fail'
    assert set(joined['validation']['state_points']) == {'a', 'b'}


def test_bad_parameters_end_with_an_exit_code(runs):
    dataset = DatasetData.from_ase(runs['first'])
    _, node = compare_md.run_get_node(dataset, dataset, orm.Dict({'nbins': 3}))
    assert node.exit_status == 201 and '`nbins`' in node.exit_message
    _, node = compare_md.run_get_node(dataset, dataset, orm.Dict({}))  # no time step for `step` frames
    assert node.exit_status == 301 and 'time_fs' in node.exit_message


def test_rerun_errors_are_zero_against_the_same_labels(runs):
    sample = sample_rerun_frames(
        orm.Dict({'n_frames': 3, 'discard': 0.0}), run=DatasetData.from_ase(runs['first'])
    )
    frames = sample.to_ase()
    assert len(frames) == 3 and {a.info['config_type'] for a in frames} == {'run'}
    for index, atoms in enumerate(frames):
        atoms.info['label_key'] = f'config_{index:05d}'
    result = compare_rerun(sample, DatasetData.from_ase(frames)).get_dict()
    assert result['labelled'] == 3
    assert result['errors']['overall']['forces']['max'] == pytest.approx(0.0, abs=1e-12)
    assert result['pressure_bias']['mean_bar'] == pytest.approx(0.0, abs=1e-6)
