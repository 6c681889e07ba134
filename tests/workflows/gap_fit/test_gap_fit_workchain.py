"""GapFitWorkChain end to end with the real gap_fit and the real evaluation driver (the `python` code): the fast
protocol on NaCl, a forced out-of-memory, and the Coulomb baseline."""

from __future__ import annotations

import numpy as np
import pytest

pytestmark = pytest.mark.e2e

#: Acceptance thresholds on the 20 held-out configurations.
FORCE_RMSE_MAX = 0.15  # eV/Å
ENERGY_RMSE_MAX = 5.0  # meV/atom


@pytest.fixture(scope='module')
def fast_fit(code_gap_fit, code_python, nacl_train_test):
    """One fit with the fast protocol on 40 configurations, evaluated on 20 held-out ones (with the GAP std)."""
    from aiida.engine import run_get_node

    from aiida_mlpot.workflows.gap_fit import GapFitWorkChain

    train, test = nacl_train_test
    builder = GapFitWorkChain.get_builder_from_protocol(
        code_gap_fit,
        train,
        protocol='fast',
        test_dataset=test,
        python_code=code_python,
        options={'max_wallclock_seconds': 1800},
        overrides={'evaluate': {'parameters': {'uncertainty': True}}},
    )
    _, node = run_get_node(builder)
    return node


def test_fast_protocol_accuracy(fast_fit):
    assert fast_fit.is_finished_ok, fast_fit.exit_message
    overall = fast_fit.outputs.metrics.get_dict()['overall']
    force_rmse = overall['forces']['rmse']
    energy_rmse = overall['energy_per_atom']['rmse']
    virial_rmse = overall['virial_per_atom']['rmse']
    print(
        f'fast protocol, 20 test configurations: force RMSE {force_rmse:.4f} eV/Å, energy RMSE '
        f'{energy_rmse:.3f} meV/atom, virial RMSE {virial_rmse:.2f} meV/atom'
    )
    assert force_rmse < FORCE_RMSE_MAX
    assert energy_rmse < ENERGY_RMSE_MAX
    assert fast_fit.outputs.metrics.get_dict()['n_configs'] == 20
    assert sorted(fast_fit.outputs.metrics.get_dict()['per_config_type']) == ['T1100', 'T1400']
    with fast_fit.outputs.parity_plot.open(mode='rb') as handle:
        assert handle.read(4) == b'\x89PNG'


def test_evaluation_runs_as_a_calcjob(fast_fit, nacl_train_test):
    """The test set is evaluated by an EvaluateCalculation (on the compute node), then compared by a calcfunction."""
    from aiida_mlpot.calculations.evaluate import EvaluateCalculation

    _, test = nacl_train_test
    evaluations = [node for node in fast_fit.called if node.process_class is EvaluateCalculation]
    assert len(evaluations) == 1 and evaluations[0].is_finished_ok
    evaluation = evaluations[0]
    assert evaluation.inputs.potential.uuid == fast_fit.outputs.potential.uuid
    assert evaluation.inputs.dataset.uuid == test.uuid
    assert fast_fit.outputs.predictions.uuid == evaluation.outputs.predictions.uuid
    metrics = [node for node in fast_fit.called if node.process_label == 'compute_error_metrics']
    assert len(metrics) == 1 and metrics[0].inputs.predicted.uuid == evaluation.outputs.predictions.uuid
    # the GAP predictive std of each test configuration: positive, below 1 eV, one per configuration
    scores = [atoms.info['uncertainty'] for atoms in fast_fit.outputs.predictions.to_ase()]
    assert len(scores) == 20 and all(0 < score < 1.0 for score in scores)


def test_fit_diagnostics_and_virials(fast_fit, nacl_train_test):
    diagnostics = fast_fit.outputs.diagnostics.get_dict()
    train, _ = nacl_train_test
    # gap_fit used energies, forces AND virials of every training configuration
    assert diagnostics['n_targets']['energies'] == train.n_configs
    assert diagnostics['n_targets']['forces'] == 3 * train.n_atoms_total
    assert diagnostics['n_targets']['virials'] == 6 * train.n_configs
    assert diagnostics['n_sparse'] == [15, 15, 15, 100, 100]
    assert diagnostics['memory_peak_estimate_mb'] > 0 and diagnostics['memory_estimate_pre_launch_mb'] > 0
    assert diagnostics['wall_time_s'] > 0
    potential = fast_fit.outputs.potential
    assert sorted(potential.species) == ['Cl', 'Na'] and potential.cutoff == 5.0


def test_calculator_matches_quip(fast_fit, nacl_train_test, tmp_path):
    """The GapPotentialData's calculator and the `quip` program agree within 1e-6 eV on the fitted XML."""

    from aiida_mlpot.common.quip import quip_evaluate

    _, test = nacl_train_test
    frames = test.to_ase()[:3]
    potential = fast_fit.outputs.potential
    calculator = potential.get_calculator()
    ours = []
    for atoms in frames:
        atoms = atoms.copy()
        atoms.calc = calculator
        ours.append(atoms.get_potential_energy())
    reference = quip_evaluate(potential.export(tmp_path / 'export'), frames, tmp_path)
    theirs = [atoms.get_potential_energy() for atoms in reference]
    assert len(theirs) == 3
    assert np.max(np.abs(np.array(ours) - np.array(theirs))) < 1e-6


def test_out_of_memory_is_retried_with_fewer_sparse_points(code_gap_fit, nacl_train_test):
    """gap_fit under a 400 MB data-segment limit: 2 x 640 sparse points fail, 2 x 160 fit.

    The small SOAP (n2 l1) makes the covariance matrices (sparse points x 8000 targets) the bulk of the
    memory, so fewer sparse points really do fit: measured, 1280 sparse points fail at 400 MB, 320 pass.
    """
    from aiida import orm
    from aiida.engine import run_get_node

    from aiida_mlpot.calculations.gap_fit import GapFitCalculation
    from aiida_mlpot.workflows.gap_fit import GapFitWorkChain

    train, _ = nacl_train_test
    parameters = {
        'descriptors': [
            {
                'type': 'soap',
                'n_max': 2,
                'l_max': 1,
                'atom_sigma': 0.5,
                'cutoff': 5.0,
                'cutoff_transition_width': 1.0,
                'zeta': 2,
                'delta': 0.2,
                'sparse_method': 'random',
                'n_sparse': 640,
            }
        ],
        'default_sigma': {'energy': 0.002, 'force': 0.05, 'virial': 0.05, 'hessian': 0.0},
        'e0_method': 'average',
        'seed': 1,
    }
    builder = GapFitWorkChain.get_builder()
    builder.gap_fit.code = code_gap_fit
    builder.gap_fit.dataset = train
    builder.gap_fit.parameters = orm.Dict(parameters)
    builder.gap_fit.memory_limit_mb = orm.Int(400)
    builder.gap_fit.metadata.options.max_wallclock_seconds = 900
    builder.sparse_reduction_factor = orm.Float(0.25)
    _, node = run_get_node(builder)

    assert node.is_finished_ok, node.exit_message
    calcs = sorted(node.called, key=lambda n: n.ctime)
    assert len(calcs) == 2
    assert calcs[0].exit_status == GapFitCalculation.exit_codes.ERROR_OUT_OF_MEMORY.status
    assert 'out of memory' in calcs[0].exit_message
    assert calcs[0].inputs.parameters['descriptors'][0]['n_sparse'] == 640
    assert calcs[1].is_finished_ok
    assert calcs[1].inputs.parameters['descriptors'][0]['n_sparse'] == 160
    assert node.outputs.diagnostics['n_sparse'] == [160, 160]


def test_coulomb_baseline_delta_learning(code_gap_fit, code_python, nacl_train_test, fast_fit):
    """A fixed-charge Coulomb baseline under the GAP (Δ-learning), fitted on half the data, must still beat the
    plain fast fit (all 40 configurations) on forces by far."""
    from aiida.engine import run_get_node

    from aiida_mlpot.data.dataset import DatasetData
    from aiida_mlpot.workflows.gap_fit import GapFitWorkChain

    train, test = nacl_train_test
    # half the training set and test set keep the test short (QUIP's Ewald makes this fit slower)
    train = DatasetData.from_ase(train.to_ase()[:20])
    test = DatasetData.from_ase(test.to_ase()[:10])
    baseline = {'type': 'coulomb', 'charges': {'Na': 1.0, 'Cl': -1.0}, 'cutoff': 6.0}
    builder = GapFitWorkChain.get_builder_from_protocol(
        code_gap_fit,
        train,
        protocol='fast',
        overrides={
            'gap_fit': {'parameters': {'baseline': baseline}},
            'evaluate': {'parameters': {'uncertainty': True}},
        },
        test_dataset=test,
        python_code=code_python,
    )
    _, node = run_get_node(builder)
    assert node.is_finished_ok, node.exit_message
    plain = fast_fit.outputs.metrics.get_dict()['overall']
    delta = node.outputs.metrics.get_dict()['overall']
    print(
        f'Coulomb baseline + fast GAP (20 train), 10 test configurations: force RMSE {delta["forces"]["rmse"]:.4f} eV/Å '
        f'(plain {plain["forces"]["rmse"]:.4f}), energy RMSE {delta["energy_per_atom"]["rmse"]:.3f} meV/atom '
        f'(plain {plain["energy_per_atom"]["rmse"]:.3f}), virial RMSE {delta["virial_per_atom"]["rmse"]:.2f} '
        f'meV/atom (plain {plain["virial_per_atom"]["rmse"]:.2f})'
    )
    assert 'Coulomb' in node.outputs.potential.base.attributes.get('init_args')
    assert delta['forces']['rmse'] < 0.5 * plain['forces']['rmse']
    # the GAP std of the Sum (Coulomb + GAP) potential comes through the evaluation as well
    assert all(atoms.info['uncertainty'] > 0 for atoms in node.outputs.predictions.to_ase())
