"""The random baseline at the end of the loop, on liquid argon, both potentials validated against the teacher.

One end-to-end run: the loop, the random baseline at the same label budget, and ``validate`` (a
ValidationWorkChain per potential, the ``fast`` protocol); ``status`` and ``report`` show them side by side.
"""

from __future__ import annotations

import pytest
from click.testing import CliRunner

from aiida_mlpot.cli.active_learning import report_command, status_command, validation_verdicts
from aiida_mlpot.presets import argon_lj
from aiida_mlpot.workflows.active_learning import ActiveLearningWorkChain
from tests.workflows.active_learning.loop_helpers import SMALL, run_loop, validation_error


def test_builder_defaults_and_refusals(codes, argon):
    def builder(**kwargs):
        return ActiveLearningWorkChain.get_builder_from_protocol(
            argon, argon_lj(), [90.0], protocol='fast', overrides=SMALL, codes=codes, **kwargs
        )

    default = builder()
    assert default.random_baseline.value and not default.validate.value  # on for the classical oracle
    assert 'validation_protocol' not in default
    assert builder(validate=True).validation_protocol.value == 'fast'
    bad = builder(validate=True)
    bad.validation_protocol = 'quick'
    assert "`validation_protocol`: unknown protocol 'quick'" in validation_error(bad)


@pytest.mark.e2e
def test_random_baseline_at_the_same_label_budget_both_validated(codes, argon, tmp_path):
    """Both potentials: as many training configurations, errors on the same final test set, both validated."""
    results, node = run_loop(argon, argon_lj(), [90.0], codes, random_baseline=True, validate=True)
    assert node.is_finished_ok, node.exit_message
    baseline = results['random_baseline']
    assert len(baseline['training_set']) == len(results['training_set'])  # equal label budgets
    selection = baseline['selection'].get_dict()
    assert selection['n_budget'] == selection['n_drawn'] == len(results['training_set'])
    for name in ('metrics', 'active_learning_metrics'):
        overall = baseline[name].get_dict()['overall']
        assert overall['forces']['rmse'] > 0 and overall['energy_per_atom']['rmse'] >= 0
        assert (
            overall['forces']['count']
            == baseline['active_learning_metrics'].get_dict()['overall']['forces']['count']
        )  # the same held-out set
    n_test_atoms = sum(len(atoms) for atoms in results['test_set'].to_ase())
    assert baseline['metrics'].get_dict()['overall']['forces']['count'] in (n_test_atoms, 3 * n_test_atoms)
    assert baseline['potential'].uuid != results['potential'].uuid

    validation = results['validation']
    assert set(validation) == {'active_learning', 'random_baseline'}
    for which, outputs in validation.items():
        figures = outputs['validation'].get_dict()
        assert outputs['verdict'].value == figures['verdict'], which
        pair = figures['state_points']['T90_V1']['md']['structure']['pairs']['Ar-Ar']
        assert pair['delta_g'] >= 0.0 and pair['verdict'] in ('pass', 'fail', 'inconclusive'), pair
        assert figures['rerun']['errors']['overall']['forces']['rmse'] > 0.0, figures['rerun']
        with outputs['rdf_plots_T90_V1'].open(mode='rb') as handle:
            assert handle.read(8) == b'\x89PNG\r\n\x1a\n'
    assert validation_verdicts(node) == {
        which: outputs['verdict'].value for which, outputs in validation.items()
    }
    status = CliRunner().invoke(status_command, [str(node.pk)])
    assert status.exit_code == 0, status.output
    assert 'validation of the active learning potential' in status.output
    assert 'validation of the random baseline potential' in status.output
    report = CliRunner().invoke(report_command, [str(node.pk), '--out', str(tmp_path)])
    assert report.exit_code == 0, report.output
    for which in ('active_learning', 'random_baseline'):
        assert (tmp_path / f'validation_{which}_rdf_plots_T90_V1.png').is_file(), sorted(tmp_path.iterdir())
