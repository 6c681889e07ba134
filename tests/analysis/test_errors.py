"""Error metrics against a case computed by hand."""

from __future__ import annotations

import math

import numpy as np
import pytest
from ase import Atoms

from aiida_mlpot.analysis.errors import compute_errors, error_statistics, parity_plot


def frame(energy, forces, virial, config_type):
    atoms = Atoms('NaCl', positions=[[0, 0, 0], [2.8, 0, 0]], cell=[10, 10, 10], pbc=True)
    atoms.info.update(
        {'energy': energy, 'virial': np.asarray(virial, dtype=float), 'config_type': config_type}
    )
    atoms.arrays['forces'] = np.asarray(forces, dtype=float)
    return atoms


@pytest.fixture
def hand_case():
    """Two 2-atom configurations; errors: energy +0.1 and -0.05 eV/atom; forces 0.3, -0.4 (config a) and 0.2
    (config b) on single components; virial xx +0.2 eV (config a, 0.1 eV/atom)."""
    zero = np.zeros((2, 3))
    reference = [
        frame(1.0, zero, np.zeros((3, 3)), 'a'),
        frame(-2.0, [[1, 0, 0], [-1, 0, 0]], np.eye(3), 'b'),
    ]
    predicted = [
        frame(1.2, [[0.3, 0, 0], [0, -0.4, 0]], np.diag([0.2, 0, 0]), 'a'),
        frame(-2.1, [[1, 0, 0], [-1, 0, 0.2]], np.eye(3), 'b'),
    ]
    return reference, predicted


def test_error_statistics():
    assert error_statistics([3.0, -4.0]) == {'mae': 3.5, 'rmse': math.sqrt(12.5), 'max': 4.0, 'count': 2}
    assert error_statistics([])['count'] == 0


def test_hand_computed_metrics(hand_case):
    metrics = compute_errors(*hand_case)
    assert metrics['n_configs'] == 2 and metrics['n_atoms'] == 4
    overall = metrics['overall']
    energy = overall['energy_per_atom']
    assert energy['unit'] == 'meV/atom' and energy['count'] == 2
    assert energy['mae'] == pytest.approx(75.0)
    assert energy['rmse'] == pytest.approx(math.sqrt((100.0**2 + 50.0**2) / 2))
    assert energy['max'] == pytest.approx(100.0)
    forces = overall['forces']
    assert forces['unit'] == 'eV/Å' and forces['count'] == 12
    assert forces['mae'] == pytest.approx(0.9 / 12)
    assert forces['rmse'] == pytest.approx(math.sqrt(0.29 / 12))
    assert forces['max'] == pytest.approx(0.4)
    vector = overall['forces_vector']
    assert vector['count'] == 4
    assert vector['mae'] == pytest.approx(0.9 / 4)
    assert vector['rmse'] == pytest.approx(math.sqrt(0.29 / 4))
    assert vector['max'] == pytest.approx(0.4)
    virial = overall['virial_per_atom']
    assert virial['count'] == 18
    assert virial['mae'] == pytest.approx(100.0 / 18)
    assert virial['rmse'] == pytest.approx(math.sqrt(100.0**2 / 18))
    assert virial['max'] == pytest.approx(100.0)

    per_type = metrics['per_config_type']
    assert sorted(per_type) == ['a', 'b']
    assert per_type['a']['energy_per_atom']['rmse'] == pytest.approx(100.0)
    assert per_type['a']['forces']['rmse'] == pytest.approx(math.sqrt(0.25 / 6))
    assert per_type['b']['energy_per_atom']['mae'] == pytest.approx(50.0)
    assert per_type['b']['forces_vector']['max'] == pytest.approx(0.2)
    assert per_type['b']['virial_per_atom']['max'] == pytest.approx(0.0)


def test_mismatched_inputs(hand_case):
    reference, predicted = hand_case
    with pytest.raises(ValueError, match='1 predicted'):
        compute_errors(reference, predicted[:1])


def test_parity_plot_is_a_png(hand_case, tmp_path):
    path = tmp_path / 'parity.png'
    parity_plot(*hand_case, path)
    assert path.read_bytes()[:8] == b'\x89PNG\r\n\x1a\n'


def test_calcfunction_on_datasets(aiida_profile, hand_case):
    from aiida_mlpot.calculations.functions.metrics import compute_error_metrics
    from aiida_mlpot.data.dataset import DatasetData

    reference, predicted = hand_case
    result = compute_error_metrics(DatasetData.from_ase(reference), DatasetData.from_ase(predicted))
    overall = result['metrics'].get_dict()['overall']
    assert overall['energy_per_atom']['rmse'] == pytest.approx(math.sqrt((100.0**2 + 50.0**2) / 2))
    assert overall['forces']['max'] == pytest.approx(0.4)
    with result['parity_plot'].open(mode='rb') as handle:
        assert handle.read(4) == b'\x89PNG'


def test_calcfunction_refuses_mismatched_datasets(aiida_profile, hand_case):
    from aiida_mlpot.calculations.functions.metrics import EXIT_CODES, compute_error_metrics
    from aiida_mlpot.data.dataset import DatasetData

    reference, predicted = hand_case
    _, node = compute_error_metrics.run_get_node(
        DatasetData.from_ase(reference), DatasetData.from_ase(predicted[:1])
    )
    assert node.exit_status == EXIT_CODES['ERROR_MISMATCHED_DATASETS'][0] == 213
    assert '2 reference but 1 predicted configurations' in node.exit_message
    _, node = compute_error_metrics.run_get_node(DatasetData.from_ase([]), DatasetData.from_ase([]))
    assert node.exit_status == 211 and node.exit_message == 'the dataset is empty'
