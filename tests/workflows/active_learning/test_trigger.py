"""`loop.trigger`: the GAP variance (default) or the REMatch similarity drives the replicas' extrapolation."""

from __future__ import annotations

import pytest

from aiida_mlpot.presets import argon_lj
from aiida_mlpot.workflows.active_learning import ActiveLearningWorkChain, trigger_extrapolation
from tests.workflows.active_learning.loop_helpers import SMALL, run_loop, validation_error


def test_rematch_drops_the_thresholds_of_the_variance():
    variance = {'method': 'gap_variance', 'relative_threshold': 3.0, 'percentile': 99.0, 'check_interval': 10}
    assert trigger_extrapolation(variance, 'variance') == variance
    assert trigger_extrapolation(variance, 'rematch') == {
        'method': 'rematch',
        'percentile': 99.0,
        'check_interval': 10,
    }
    own = {'method': 'rematch', 'relative_threshold': 1.5}  # the caller's rematch settings stay
    assert trigger_extrapolation(own, 'rematch') == own


def test_trigger_is_checked_by_name(codes, argon):
    def builder(loop, exploration=None):
        overrides = {'loop': loop, **({'exploration': exploration} if exploration else {})}
        return ActiveLearningWorkChain.get_builder_from_protocol(
            argon, argon_lj(), [90.0], protocol='fast', overrides=overrides, codes=codes
        )

    assert validation_error(builder({'trigger': 'rematch'})) is None
    with pytest.raises(ValueError, match="`loop.trigger`: unknown trigger 'soap'"):
        builder({'trigger': 'soap'})
    rematch = {'md': {'parameters': {'extrapolation': {'method': 'rematch', 'relative_threshold': 2.0}}}}
    assert '`exploration.md.parameters.extrapolation.method`' in validation_error(builder({}, rematch))
    assert validation_error(builder({'trigger': 'rematch'}, rematch)) is None


@pytest.mark.e2e
def test_loop_with_the_rematch_trigger(codes, argon):
    """Liquid argon, 32 atoms at 90 K: every replica ran the REMatch trigger, calibrated from its training set."""
    overrides = {**SMALL, 'loop': {**SMALL['loop'], 'trigger': 'rematch'}}
    results, node = run_loop(argon, argon_lj(), [90.0], codes, overrides=overrides)
    assert 'learning_curve' in results and 'stopping' in results, node.exit_message
    assert node.exit_status in (0, 410, 411), node.exit_message  # it finished: converged or a hard limit
    replicas = [child for child in node.called if child.process_label == 'MlMdWorkChain']
    assert replicas
    for replica in replicas:
        extrapolation = replica.inputs.md.parameters['extrapolation']
        assert extrapolation['method'] == 'rematch' and 'relative_threshold' not in extrapolation
        assert 'training' in replica.inputs.md
        summary = replica.outputs.summary.get_dict()
        assert summary['extrapolation_method'] == 'rematch', summary
        assert 0 < summary['critical_similarity'] < 1, summary
