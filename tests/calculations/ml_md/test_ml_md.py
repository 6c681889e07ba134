"""End-to-end tests of MlMdCalculation + MlMdParser: the real driver runs with the `python` code."""

from __future__ import annotations

import json
import pathlib

import pytest
from aiida import orm
from aiida.engine import run_get_node

from aiida_mlpot.calculations.ml_md import MlMdCalculation

NVT_1400 = {'temperature_K': 1400.0, 'n_steps': 30, 'dump_interval': 10, 'seed': 11}


@pytest.mark.e2e
def test_completed_then_restart(ml_md_inputs, training_dataset, gap_potential):
    """1400 K NVT, threshold 3x the training 99th percentile: completes; a restart reuses the reference score node."""
    parameters = {'md': NVT_1400, 'extrapolation': {'check_interval': 5, 'relative_threshold': 3.0}}
    results, node = run_get_node(MlMdCalculation, **ml_md_inputs(parameters, training=training_dataset))
    assert node.exit_status == 0, node.exit_message
    summary = results['summary'].get_dict()
    assert summary['outcome'] == 'completed'
    assert summary['steps_done'] == 30 and summary['reference_computed']
    assert summary['max_score'] < summary['threshold'] == pytest.approx(3.0 * summary['reference_score'])
    assert results['reference_score'].value == summary['reference_score']  # an output, not an extra
    assert json.loads(node.base.repository.get_object_content('input.json'))['training'] == 'training.xyz'
    trajectory = results['trajectory']
    assert len(trajectory) == 4 and {'energy', 'forces', 'virial'} <= set(trajectory.properties)
    frames = trajectory.to_ase()
    assert all(frame.info['source_uuid'] == node.uuid for frame in frames)
    assert all(0 < frame.info['uncertainty'] <= summary['max_score'] for frame in frames)
    assert 'flagged' not in results
    assert len(results['final_structure'].sites) == 64
    assert set(gap_potential.base.extras.keys()) <= {'_aiida_hash'}  # nothing kept outside the graph

    # restart from the last frame of the trajectory with the reference score of the first run: no training
    inputs = ml_md_inputs({'md': {**NVT_1400, 'n_steps': 10}, 'extrapolation': parameters['extrapolation']})
    inputs.pop('structure')
    inputs.update(restart_from=trajectory, reference_score=results['reference_score'])
    results, node = run_get_node(MlMdCalculation, **inputs)
    assert node.exit_status == 0, node.exit_message
    second = results['summary'].get_dict()
    assert second['initial_step'] == 30 and second['final_step'] == 40
    assert second['velocities'] == 'from_structure'
    assert not second['reference_computed'] and 'reference_score' not in results
    assert second['reference_score'] == pytest.approx(summary['reference_score'])
    assert second['threshold'] == pytest.approx(summary['threshold'])
    assert 'training' not in json.loads(node.base.repository.get_object_content('input.json'))


@pytest.mark.e2e
def test_compressed_cell_extrapolation(ml_md_inputs, training_dataset):
    """Cell compressed by 20 %: outcome `extrapolation` (exit status 0) with flagged frames as an output."""
    parameters = {'md': NVT_1400, 'extrapolation': {'check_interval': 5, 'relative_threshold': 3.0}}
    results, node = run_get_node(
        MlMdCalculation, **ml_md_inputs(parameters, index=1, scale=0.8, training=training_dataset)
    )
    assert node.is_finished_ok, node.exit_message
    summary = results['summary'].get_dict()
    assert summary['outcome'] == 'extrapolation'
    assert summary['triggered_step'] <= 10
    flagged = results['flagged'].to_ase()
    assert len(flagged) == summary['n_flagged'] >= 1
    assert flagged[-1].info['uncertainty'] > summary['threshold']
    assert flagged[-1].info['step'] == summary['triggered_step']


@pytest.mark.e2e
def test_absurd_timestep_unstable(ml_md_inputs):
    """A 40 fs time step: ERROR_UNSTABLE_MD (410), with the partial trajectory and the summary as outputs."""
    parameters = {
        'md': {**NVT_1400, 'timestep_fs': 40.0, 'n_steps': 50},
        'extrapolation': {'method': 'none'},
    }
    results, node = run_get_node(MlMdCalculation, **ml_md_inputs(parameters, index=2))
    assert node.exit_status == MlMdCalculation.exit_codes.ERROR_UNSTABLE_MD.status == 410
    summary = results['summary'].get_dict()
    assert summary['outcome'] == 'unstable' and summary['steps_done'] < 50
    assert len(results['trajectory']) >= 1
    assert 'final_structure' in results


RELATIVE = {'extrapolation': {'relative_threshold': 3.0}}


@pytest.mark.parametrize(
    ('parameters', 'extra', 'message'),
    [
        ({'md': {'ensemble': 'nve'}}, {}, 'md.ensemble'),
        (RELATIVE, {}, 'training'),
        ({'extrapolation': {'method': 'soap_novelty'}}, {}, 'training'),
        ({'extrapolation': {'threshold': 0.1}}, {'reference_score': 0.02}, 'only used with'),
        (RELATIVE, {'reference_score': -0.02}, 'positive number'),
        (
            {'extrapolation': {'relative_threshold': 3.0, 'reference_score': 0.02}},
            {'reference_score': 0.02},
            'not both',
        ),
    ],
)
def test_invalid_inputs(ml_md_inputs, parameters, extra, message):
    extra = {key: orm.Float(value) if key == 'reference_score' else value for key, value in extra.items()}
    with pytest.raises(ValueError, match=message):
        run_get_node(MlMdCalculation, **ml_md_inputs(parameters, **extra))


def test_reference_score_input_replaces_training(ml_md_inputs):
    """A relative threshold with the `reference_score` input: valid without `training`, written to the driver."""
    from aiida_mlpot.calculations.ml_md import driver_parameters, validate_inputs

    inputs = ml_md_inputs(RELATIVE, reference_score=orm.Float(0.025))
    assert validate_inputs(inputs, None) is None
    assert driver_parameters(inputs)['extrapolation']['reference_score'] == 0.025
    inputs['metadata'] = {'dry_run': True, 'store_provenance': False}
    _, node = run_get_node(MlMdCalculation, **inputs)
    folder = pathlib.Path(node.dry_run_info['folder'])
    config = json.loads((folder / 'input.json').read_text())
    assert config['parameters']['extrapolation']['reference_score'] == 0.025 and 'training' not in config
    # the calculation runs the driver module
    assert "'-m' 'aiida_mlpot.engines.ml_md' 'input.json'" in (folder / '_aiidasubmit.sh').read_text()


def test_structure_xor_restart(ml_md_inputs, training_dataset):
    inputs = ml_md_inputs({}, restart_from=training_dataset)
    with pytest.raises(ValueError, match='exactly one'):
        run_get_node(MlMdCalculation, **inputs)
    inputs.pop('structure')
    inputs['restart_frame'] = orm.Int(100)
    with pytest.raises(ValueError, match='out of range'):
        run_get_node(MlMdCalculation, **inputs)


def test_exit_codes_unique():
    statuses = [code.status for code in MlMdCalculation.exit_codes.values()]
    assert len(statuses) == len(set(statuses))


@pytest.mark.e2e
def test_example_stage(code_python, gap_potential, training_dataset, ml_md_gap, capsys):
    """The NaCl example's stage 5 runs (shortened to 20 steps) on the context the earlier stages leave."""
    import importlib.util

    from aiida_mlpot.data.dataset import DatasetData

    path = pathlib.Path(__file__).parents[3] / 'examples' / 'nacl' / 'stage_5_ml_md.py'
    spec = importlib.util.spec_from_file_location('stage_5_ml_md', path)
    stage = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(stage)
    stage.N_STEPS = 20
    pool = DatasetData.from_ase(ml_md_gap.held_out[:3]).store()
    ctx = {'codes': {'python': code_python}, 'gap': gap_potential, 'train': training_dataset, 'pool': pool}
    node = stage.run(ctx)['ml_md']
    assert node.is_finished_ok, node.exit_message
    assert 'outcome completed after 20 of 20 steps' in capsys.readouterr().out
