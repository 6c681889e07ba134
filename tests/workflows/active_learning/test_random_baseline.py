"""The random baseline at the end of the loop, on liquid argon; the builder's defaults for it and the validation.

The validation (``validate``) is not run end to end here: two ValidationWorkChain runs (ML MD and the teacher's MD
per potential) cost more than the CI budget allows; ValidationWorkChain has its own end-to-end test.
"""

from __future__ import annotations

import pytest

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
def test_random_baseline_at_the_same_label_budget(codes, argon):
    """Both potentials: as many training configurations, errors on the same final test set."""
    results, node = run_loop(argon, argon_lj(), [90.0], codes, random_baseline=True)
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
    assert 'validation' not in results
