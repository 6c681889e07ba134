"""The loop's memory plan: refuse a fit before launching when even GapFitWorkChain's reductions cannot fit it."""

from __future__ import annotations

import pytest

from aiida_mlpot.inputs.gap_fit import DatasetStats, estimate_memory, plan_memory, reduce_sparse_points
from aiida_mlpot.workflows.active_learning import (
    ActiveLearningWorkChain,
    check_fit_memory,
    largest_fitting_size,
)
from aiida_mlpot.workflows.gap_fit import GapFitWorkChain

#: 64-atom molten NaCl: 0.0315 atoms/Å^3 (1.35 g/cm^3), energy, forces and virial in every configuration.
DENSITY = 0.0315


def _stats(n_configs: int) -> DatasetStats:
    return DatasetStats(
        n_configs=n_configs,
        atoms_per_species={'Na': 32 * n_configs, 'Cl': 32 * n_configs},
        number_density=DENSITY,
        n_energies=n_configs,
        n_force_components=192 * n_configs,
        n_virial_components=6 * n_configs,
    )


@pytest.fixture
def parameters():
    """The fit parameters of the fast protocol (the loop's default)."""
    return GapFitWorkChain.get_protocol_inputs('fast')['gap_fit']['parameters']


def test_fits_when_nothing_is_declared_or_the_memory_suffices(parameters):
    assert check_fit_memory(parameters, _stats(400), None) is None
    needed = estimate_memory(parameters, _stats(100))['total_mb']
    assert check_fit_memory(parameters, _stats(100), needed * 1.01) is None


def test_fits_after_the_sparse_reductions_gap_fit_would_apply(parameters):
    """Above the full estimate but within reach of plan_memory's reductions: the loop launches the fit."""
    stats = _stats(100)
    full = estimate_memory(parameters, stats)['total_mb']
    fewest = parameters
    while (reduced := reduce_sparse_points(fewest)) is not None:
        fewest = reduced
    floor = estimate_memory(fewest, stats)['total_mb']
    assert floor < full
    limit = (floor + full) / 2
    _, note = plan_memory(parameters, stats, limit)
    assert note  # GapFitWorkChain will reduce the sparse points ...
    assert check_fit_memory(parameters, stats, limit) is None  # ... so the loop does not refuse
    assert check_fit_memory(parameters, stats, floor * 0.99) is not None  # below the floor it refuses


def test_refuses_and_says_what_to_change(parameters):
    limit = 2000.0  # MB
    largest = largest_fitting_size(parameters, _stats(10), limit)
    assert 10 < largest < 1000
    assert check_fit_memory(parameters, _stats(largest), limit) is None
    message = check_fit_memory(parameters, _stats(largest + 1), limit, 'metadata.options.max_memory_kb')
    assert message is not None
    for needed in (
        f'{largest + 1} configurations',
        'metadata.options.max_memory_kb',
        '`fitting.gap_fit.metadata.options.max_memory_kb`',
        'n_sparse',
        f'at most {largest} configurations',
        '`loop.max_per_iteration`',
    ):
        assert needed in message, (needed, message)


def test_largest_fitting_size_grows_with_memory(parameters):
    sizes = [largest_fitting_size(parameters, _stats(50), limit) for limit in (500.0, 2000.0, 8000.0)]
    assert sizes[0] < sizes[1] < sizes[2]
    assert largest_fitting_size(parameters, _stats(50), 10.0) == 0  # below the process base: nothing fits


def test_exit_code_is_declared():
    exit_code = ActiveLearningWorkChain.exit_codes.ERROR_REFIT_EXCEEDS_MEMORY
    assert exit_code.status == 412 and '{message}' in exit_code.message
