"""Stage 1: classical MD sampling of molten NaCl (Tosi-Fumi + Ewald) at two temperatures -> candidate pool."""

from __future__ import annotations

from aiida.engine import run_get_node
from aiida.orm import Dict

from aiida_mlpot.presets import nacl_tosi_fumi
from aiida_mlpot.workflows.sampling import SamplingWorkChain, state_point_grid

#: The physics of this system: molten NaCl (melting point of the model near the experimental 1074 K), NVT at
#: the density of the start box, below and above the temperature of the later ML MD.
STATE_POINTS = state_point_grid([1100.0, 1400.0], volume_scales=[1.0])
#: Short runs on top of the `fast` protocol: 1 ps equilibration, 4 ps production, a frame every 0.1 ps.
OVERRIDES = {
    'md_parameters': {'equilibration_steps': 500, 'production_steps': 2000, 'dump_interval': 50, 'seed': 7}
}


def run(ctx: dict) -> dict:
    """Run SamplingWorkChain on ``ctx['structure']`` with ``ctx['codes']['lammps']``; add the potential and pool."""
    potential = Dict(nacl_tosi_fumi('ewald')).store()
    builder = SamplingWorkChain.get_builder_from_protocol(
        ctx['codes']['lammps'],
        ctx['structure'],
        'fast',
        overrides=OVERRIDES,
        potential=potential,
        state_points=STATE_POINTS,
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
    failed = results['failed_state_points'].get_dict()
    if failed:
        print(f'  failed state points: {failed}')
    return {'classical_potential': potential, 'pool': pool}
