"""The loop with the CP2K GFN1-xTB oracle: the quantum path end to end, an SCF failure excluded and never trained on.

Crystalline NaCl, 8 atoms (the rock-salt cubic cell at the Tosi-Fumi lattice constant, 5.62 Å), NVT at 600 K:
the classical Tosi-Fumi potential samples the pool, CP2K GFN1-xTB labels it (fixed cell; xTB is a TEST oracle
for NaCl, docs/labelling.md), and the same ``get_builder_from_protocol`` as for every other system builds the
loop (the ``fast`` protocol, small budgets as overrides, no code change).

The forced SCF failure: ``labelling.cp2k.config_overrides`` apply to one position of every labelling that has it;
``config_00011`` gets two SCF steps and no robust retry. The initial labelling has 12 configurations and a later
one at most ``audit_per_replica + max_per_iteration`` = 6, so the failure hits a configuration of the initial set
only and can never be a candidate of an exploration. (A previous attempt failed ``config_00001``: whenever an
iteration had fewer than two audit frames, e.g. a trigger after 20 steps and no audit frame, that position was the
triggering candidate, the loop lost its trigger and did not converge.)

Settings suited to xTB on 8 atoms, and why (measured on this case, 2026-11-30):

* ``fitting.gap_fit.parameters.default_sigma.virial`` = 100 eV (the virial is not fitted): GFN1-xTB's analytical
  stress on this cell is about -40 GPa (virial ≈ -43 eV per cell, off-diagonal terms up to 6 eV), far from the
  Tosi-Fumi volume. Fitted with the protocol's 0.05 eV per atom, the virial dominates the fit: test force RMSE
  0.154 eV/Å on 8 training configurations, against 0.084 eV/Å without it (same data, same descriptors). At fixed
  cell (NVT) nothing uses the virial.
* ``delta_learning`` off: the Δ baseline carries the charges of the CLASSICAL potential (Tosi-Fumi ±1), a model
  of the teacher, not of xTB.
* Audit limits: the RMS force component of the xTB labels at 600 K is 0.20-0.28 eV/Å (8-atom cells, forces
  files of the labels). ``audit_force_rmse`` 0.1 eV/Å asks the GAP to explain at least ~80 % of the force variance
  on the frames its MD visits; the energy limit, 10 meV/atom, is about twice the first fit's test error.

Measured with these settings (2026-11-30, machine load ~28): the loop ends with the hard limit, 410
ERROR_MAX_ITERATIONS, after 6 iterations and 31 oracle calls: the replica triggered after 20-60 steps in
iterations 1-5 and completed its 200 steps in iteration 6, whose audit force RMSE was 0.129 eV/Å (> 0.1) and
energy RMSE 5.7 meV/atom; test force RMSE of the first fit 0.084 eV/Å, of the last 0.105. The test accepts that
documented outcome (every output attached, the criterion named) or convergence. 469 s of CPU in all (every
process, CalcJobs included), 62 min of wall time on the loaded machine. The test runs at most 3 iterations
(half that cost in CI); with these limits the expected outcome is then the same hard limit, 410.
* ``omp_num_threads`` 1 and two CP2K jobs at a time: an 8-atom xTB single point needs ~2 s of CPU; two OpenMP
  threads per job on a loaded 2-core machine only add spinning.
"""

from __future__ import annotations

import numpy as np
import pytest
from aiida.common.links import LinkType

from aiida_mlpot.presets import nacl_tosi_fumi
from aiida_mlpot.workflows.active_learning import ActiveLearningWorkChain
from tests.workflows.active_learning.loop_helpers import SMALL, assert_converged, nacl_crystal_8, run_loop

FAILING = 'config_00011'
N_INITIAL = 12
LOOP = {
    **SMALL['loop'],
    'audit_per_replica': 2,
    'max_per_iteration': 4,
    'audit_force_rmse': 0.1,
    'audit_energy_rmse': 10.0,
    'max_iterations': 3,
}
OVERRIDES = {
    **SMALL,
    'delta_learning': False,
    'selection': {
        'seed': 1,
        'steps': [{'method': 'uniform_force', 'n': 24}, {'method': 'fps', 'n': N_INITIAL}],
    },
    'sampling': {
        'md_parameters': {'equilibration_steps': 500, 'production_steps': 2000, 'dump_interval': 50}
    },
    'labelling': {
        'cp2k': {
            'max_concurrent': 2,
            'settings': {'omp_num_threads': 1},
            'config_overrides': {FAILING: {'scf': {'max_scf': 2}, 'robust_retry': False}},
        }
    },
    'fitting': {
        'gap_fit': {
            'parameters': {'default_sigma': {'energy': 0.002, 'force': 0.05, 'virial': 100.0, 'hessian': 0.0}}
        }
    },
    'loop': LOOP,
}


def _contains(frames, positions) -> bool:
    return any(len(frame) == len(positions) and np.allclose(frame.positions, positions) for frame in frames)


@pytest.mark.e2e
@pytest.mark.slow
def test_loop_with_the_cp2k_xtb_oracle_excludes_an_scf_failure(codes, code_cp2k):
    """8-atom NaCl crystal, NVT at 600 K, labelled by CP2K GFN1-xTB; one configuration fails its SCF on purpose."""
    # the failing position exists in the initial labelling only (see the module docstring)
    assert LOOP['audit_per_replica'] + LOOP['max_per_iteration'] <= int(FAILING.split('_')[1]) < N_INITIAL
    results, node = run_loop(
        nacl_crystal_8(),
        nacl_tosi_fumi('ewald'),
        [600.0],
        {**codes, 'cp2k': code_cp2k},
        oracle='cp2k-xtb',
        overrides=OVERRIDES,
    )
    # a documented outcome: converged, or a hard limit with its own exit code and every output attached
    hard_limits = {
        ActiveLearningWorkChain.exit_codes.ERROR_MAX_ITERATIONS.status: 'max_iterations',
        ActiveLearningWorkChain.exit_codes.ERROR_MAX_ORACLE_CALLS.status: 'max_oracle_calls',
    }
    curve = results['learning_curve'].get_dict()['iterations']
    print(f'exit status {node.exit_status}; learning curve: {curve}')
    if node.exit_status in hard_limits:
        assert {'potential', 'training_set', 'test_set', 'metrics', 'learning_curve', 'stopping'} <= set(
            results
        )
        stopping = results['stopping'].get_dict()
        assert stopping['criterion'] == hard_limits[node.exit_status] and not stopping['converged'], stopping
    else:
        assert_converged(results, node)

    labellings = {
        link.link_label: link.node
        for link in node.base.links.get_outgoing(link_type=LinkType.CALL_WORK).all()
        if link.node.process_label == 'LabellingWorkChain'
    }
    initial = labellings.pop('label_initial')
    excluded = initial.outputs.excluded.get_dict()
    assert set(excluded) == {FAILING}, excluded
    reason = excluded[FAILING]
    assert 'SCF not converged' in reason and 'exit status 450' in reason, reason
    counts = initial.outputs.counts.get_dict()
    assert counts['n_input'] == N_INITIAL and counts['n_labelled'] == N_INITIAL - 1, counts
    failed = initial.inputs.dataset.to_ase()[int(FAILING.split('_')[1])]
    assert not _contains(initial.outputs.labelled.to_ase(), failed.positions)

    # the quantum path: every other configuration, in every labelling, was labelled by CP2K
    assert labellings, 'no iteration labelled anything'
    for label, labelling in labellings.items():
        assert labelling.is_finished_ok and not labelling.outputs.excluded.get_dict(), label
    for labelling in (initial, *labellings.values()):
        jobs = [c for c in labelling.called_descendants if c.process_label == 'Cp2kCalculation']
        assert len(jobs) >= labelling.outputs.counts.get_dict()['n_input'], 'a configuration without CP2K job'
    failing = [
        link.node
        for link in initial.base.links.get_outgoing(link_type=LinkType.CALL_WORK).all()
        if link.link_label == f'label_{FAILING}'
    ]
    assert len(failing) == 1 and not failing[0].is_finished_ok  # its one CP2K job (no robust retry) failed
    assert [c.exit_status for c in failing[0].called if c.process_label == 'Cp2kCalculation'] == [450]

    # excluded and never trained on (nor tested on): not in the final training or test set
    training, test = results['training_set'].to_ase(), results['test_set'].to_ase()
    labelled = counts['n_labelled'] + sum(
        lab.outputs.counts.get_dict()['n_labelled'] for lab in labellings.values()
    )
    assert counts['n_labelled'] <= len(training) + len(test) <= labelled  # only labelled frames (the last
    # iteration's candidates join the training set of a refit, which a stopped loop does not run)
    assert not _contains(training, failed.positions) and not _contains(test, failed.positions)
