"""Stage 1: classical MD sampling of molten NaCl (Tosi-Fumi + Ewald) at two temperatures -> candidate pool."""

from __future__ import annotations

from aiida.engine import run_get_node
from aiida.orm import Dict

from aiida_mlpot.presets import nacl_tosi_fumi
from aiida_mlpot.workflows.sampling import SamplingWorkChain

#: Short runs of the `fast` protocol: 2 temperatures x 1 density, 4 ps production, a frame every 0.1 ps.
OVERRIDES = {
    'temperatures': [1100.0, 1400.0],
    'volume_scales': [1.0],
    'equilibration_steps': 500,
    'production_steps': 2000,
    'dump_interval': 50,
    'seed': 7,
}


def run(ctx: dict) -> dict:
    """Run SamplingWorkChain on ``ctx['structure']`` with ``ctx['codes']['lammps']``; add the potential and pool."""
    potential = Dict(nacl_tosi_fumi('ewald')).store()
    builder = SamplingWorkChain.get_builder_from_protocol(
        ctx['codes']['lammps'], ctx['structure'], 'fast', overrides=OVERRIDES, potential=potential
    )
    results, node = run_get_node(builder)
    if not node.is_finished_ok:
        raise RuntimeError(f'SamplingWorkChain<{node.pk}> failed: {node.exit_status} {node.exit_message}')
    pool = results['pool']
    print(f'SamplingWorkChain<{node.pk}>: pool {pool}')
    for key, thermo in sorted(results['thermo'].items()):
        summary = thermo.get_dict()
        print(
            f'  {key}: {summary["n_samples"]} frames, T = {summary["temperature_mean"]:.0f} ± '
            f'{summary["temperature_std"]:.0f} K, P = {summary["pressure_mean"]:.0f} ± '
            f'{summary["pressure_std"]:.0f} bar, density {summary["density_mean"]:.3f} g/cm³, '
            f'E_pot/atom {summary["potential_energy_mean"] / len(ctx["structure"].sites):.3f} eV'
        )
    failed = node.base.extras.get('failed_state_points', [])
    if failed:
        print(f'  failed state points: {failed}')
    return {'classical_potential': potential, 'pool': pool}
