"""Stage 4: fit a GAP to the labelled configurations and measure its errors on held-out ones.

The labelled set is split at random (``split_dataset``, 20 % test, seed 1); ``GapFitWorkChain`` fits the
training part with the ``fast`` protocol (2b + SOAP n4 l3, energies, forces AND virials), then evaluates the
potential on the test part on the compute node (``EvaluateCalculation``, run by the ``python`` code) and
compares (``compute_error_metrics``).
For ionic melts a fixed-charge Coulomb baseline (Δ-learning) is far more accurate: pass
``overrides={'gap_fit': {'parameters': {'baseline': {'type': 'coulomb', 'charges': {'Na': 1.0, 'Cl': -1.0}}}}}``
(see docs/fitting.md).
"""

from __future__ import annotations

from aiida.engine import run_get_node
from aiida.orm import Dict

from aiida_mlpot.calculations.functions.selection import split_dataset
from aiida_mlpot.workflows.gap_fit import GapFitWorkChain

SPLIT = {'method': 'random', 'test_fraction': 0.2, 'seed': 1}
PROTOCOL = 'fast'


def run(ctx: dict) -> dict:
    """Split ``ctx['labelled']``, fit with the fast protocol and evaluate on the test part with
    ``ctx['codes']['python']``; add ``train``, ``test``, ``gap``, ``metrics``."""
    split = split_dataset(ctx['labelled'], Dict(SPLIT))
    train, test = split['train'], split['test']
    print(f'split_dataset: {train.n_configs} training / {test.n_configs} test configurations')

    builder = GapFitWorkChain.get_builder_from_protocol(
        ctx['codes']['gap_fit'],
        train,
        protocol=PROTOCOL,
        test_dataset=test,
        python_code=ctx['codes']['python'],
    )
    results, node = run_get_node(builder)
    if not node.is_finished_ok:
        raise RuntimeError(f'GapFitWorkChain<{node.pk}> failed: {node.exit_status} {node.exit_message}')
    diagnostics = results['diagnostics'].get_dict()
    metrics = results['metrics']
    gap = results['potential']
    print(
        f'GapFitWorkChain<{node.pk}> ({PROTOCOL}): GapPotentialData<{gap.pk}>, {diagnostics["n_sparse_total"]} '
        f'sparse points, fit {diagnostics["wall_time_s"]:.1f} s, gap_fit memory estimate '
        f'{diagnostics["memory_peak_estimate_mb"]:.0f} MB'
    )
    overall = metrics.get_dict()['overall']
    print(
        f'  test RMSE: energy {overall["energy_per_atom"]["rmse"]:.2f} meV/atom, forces '
        f'{overall["forces"]["rmse"]:.3f} eV/Å (max {overall["forces"]["max"]:.3f}), virial '
        f'{overall["virial_per_atom"]["rmse"]:.2f} meV/atom'
    )
    print(f'  parity plot: SinglefileData<{results["parity_plot"].pk}> ({results["parity_plot"].filename})')
    return {'train': train, 'test': test, 'gap': gap, 'metrics': metrics}
