"""End-to-end tests of SamplingWorkChain with the real Debian `lmp`, and its input validation."""

from __future__ import annotations

import numpy as np
import pytest

from aiida_mlpot.presets import argon_lj, nacl_tosi_fumi
from aiida_mlpot.structures import random_box


def nacl_box(seed: int = 5):
    return random_box({'Na': 32, 'Cl': 32}, density=1.3, min_distance=2.2, seed=seed)


def builder_for(code, atoms, potential, protocol='fast', **overrides):
    from aiida import orm

    from aiida_mlpot.workflows.sampling import SamplingWorkChain

    return SamplingWorkChain.get_builder_from_protocol(
        code, orm.StructureData(ase=atoms), protocol, overrides=overrides, potential=potential
    )


@pytest.fixture(scope='module')
def nacl_grid_run(code_lmp):
    """A 2 x 2 NVT grid (temperatures x volume scales) of 64-atom molten NaCl, 5 frames per state point."""
    from aiida.engine import run_get_node

    builder = builder_for(
        code_lmp,
        nacl_box(),
        nacl_tosi_fumi('ewald'),
        temperatures=[1200.0, 1600.0],
        volume_scales=[0.95, 1.05],
        equilibration_steps=100,
        production_steps=200,
        dump_interval=50,
    )
    results, node = run_get_node(builder)
    assert node.is_finished_ok, (node.exit_status, node.exit_message)
    return results, node


@pytest.mark.e2e
def test_grid_pool(nacl_grid_run):
    """The pool has 4 state points x 5 frames, consistent labels and one config_type per state point."""
    results, node = nacl_grid_run
    pool = results['pool']
    frames = pool.to_ase()
    assert len(frames) == 4 * 5
    expected_types = {'T1200_V0p95', 'T1200_V1p05', 'T1600_V0p95', 'T1600_V1p05'}
    assert set(pool.config_types) == expected_types
    assert set(results['thermo']) == expected_types
    for frame in frames:
        assert np.sum(frame.arrays['energies']) == pytest.approx(frame.info['energy'], rel=1e-6)
    densities = {key: results['thermo'][key]['density_mean'] for key in expected_types}
    assert densities['T1200_V0p95'] == pytest.approx(1.3 / 0.95, rel=1e-6)
    assert densities['T1600_V1p05'] == pytest.approx(1.3 / 1.05, rel=1e-6)
    assert node.base.extras.get('failed_state_points') == []


@pytest.mark.e2e
def test_pool_provenance(nacl_grid_run):
    """Every frame traces back through the graph to the LAMMPS calculation that produced it."""
    from aiida.common.links import LinkType
    from aiida.orm import CalcJobNode, load_node

    results, node = nacl_grid_run
    pool = results['pool']
    merge = pool.creator
    merged_inputs = {n.uuid for n in merge.base.links.get_incoming().all_nodes()}
    children = {child.uuid for child in node.called}
    for frame in pool.to_ase():
        calc = load_node(frame.info['source_uuid'])
        assert isinstance(calc, CalcJobNode) and calc.process_type.endswith('mlpot.lammps.md')
        assert calc.uuid in children
        assert calc.outputs.dataset.uuid in merged_inputs
        call = calc.base.links.get_incoming(link_type=LinkType.CALL_CALC).one()
        assert call.node.uuid == node.uuid
        assert call.link_label == f'md_{frame.info["config_type"]}'


@pytest.mark.e2e
def test_pool_matches_single_points(nacl_grid_run, code_lmp):
    """Forces, energy and virial of pool frames agree with a separate LAMMPS single-point run."""
    from aiida import orm
    from aiida.engine import run_get_node

    from aiida_mlpot.calculations.lammps import LammpsRerunCalculation

    frames = nacl_grid_run[0]['pool'].to_ase()
    chosen = [frames[3], frames[17]]
    structures = {f'config_{i:04d}': orm.StructureData(ase=atoms) for i, atoms in enumerate(chosen)}
    results, node = run_get_node(
        LammpsRerunCalculation,
        code=code_lmp,
        potential=orm.Dict(nacl_tosi_fumi('ewald')),
        structures=structures,
        metadata={'options': {'resources': {'num_machines': 1, 'num_mpiprocs_per_machine': 1}}},
    )
    assert node.is_finished_ok, node.exit_message
    for reference, single in zip(chosen, results['dataset'].to_ase(), strict=True):
        np.testing.assert_allclose(single.arrays['forces'], reference.arrays['forces'], atol=1e-5)
        assert single.info['energy'] == pytest.approx(reference.info['energy'], rel=1e-6)
        np.testing.assert_allclose(single.info['virial'], reference.info['virial'], rtol=1e-6, atol=1e-4)


@pytest.mark.e2e
def test_npt_density(code_lmp):
    """NPT of the NaCl preset at 1400 K and 1 bar: the model's density (DESIGN.md: about 1.29-1.30 g/cm³)."""
    from aiida.engine import run_get_node

    builder = builder_for(
        code_lmp,
        nacl_box(seed=11),
        nacl_tosi_fumi('ewald'),
        ensemble='npt',
        temperatures=[1400.0],
        pressures=[1.0],
        equilibration_steps=2000,
        production_steps=4000,
        dump_interval=100,
    )
    results, node = run_get_node(builder)
    assert node.is_finished_ok, node.exit_message
    thermo = results['thermo']['T1400_P1'].get_dict()
    density, spread = thermo['density_mean'], thermo['density_std']
    print(f'NPT 1400 K, 1 bar, 64 atoms, 8 ps: density {density:.4f} +- {spread:.4f} g/cm3')
    assert len(results['pool']) == 41
    assert 1.24 < density < 1.35


@pytest.mark.e2e
def test_argon(code_lmp):
    """The argon preset runs through the same workchain (no charges, no kspace)."""
    from aiida.engine import run_get_node

    atoms = random_box({'Ar': 64}, density=1.4, min_distance=3.0, seed=2)
    builder = builder_for(
        code_lmp,
        atoms,
        argon_lj(),
        temperatures=[90.0],
        volume_scales=[1.0],
        timestep=5.0,
        equilibration_steps=200,
        production_steps=200,
        dump_interval=100,
    )
    results, node = run_get_node(builder)
    assert node.is_finished_ok, node.exit_message
    frames = results['pool'].to_ase()
    assert len(frames) == 3 and results['pool'].species == ['Ar']
    for frame in frames:
        assert np.sum(frame.arrays['energies']) == pytest.approx(frame.info['energy'], rel=1e-6)
        assert -0.1 < frame.info['energy'] / len(frame) < 0.0  # ε = 0.0103 eV: bound liquid


@pytest.mark.e2e
def test_failed_state_point(code_lmp):
    """A state point that loses atoms is an exit code; the others make the pool; all failing is a 4xx."""
    from aiida.engine import run_get_node

    from aiida_mlpot.calculations.lammps import LammpsMdCalculation
    from aiida_mlpot.workflows.sampling import SamplingWorkChain

    common = {'equilibration_steps': 100, 'production_steps': 100, 'dump_interval': 50, 'timestep': 5.0}
    common['volume_scales'] = [1.0]
    builder = builder_for(code_lmp, nacl_box(), nacl_tosi_fumi(), temperatures=[1400.0, 1.0e7], **common)
    results, node = run_get_node(builder)
    assert node.is_finished_ok, node.exit_message
    assert node.base.extras.get('failed_state_points') == ['T1e07_V1']
    failed = [child for child in node.called if not child.is_finished_ok]
    assert [child.exit_status for child in failed] == [LammpsMdCalculation.exit_codes.ERROR_LOST_ATOMS.status]
    assert results['pool'].config_types == ['T1400_V1']
    assert len(results['pool']) == 3

    builder = builder_for(code_lmp, nacl_box(), nacl_tosi_fumi(), temperatures=[1.0e7], **common)
    _, node = run_get_node(builder)
    assert node.exit_status == SamplingWorkChain.exit_codes.ERROR_SUB_PROCESS_FAILED_SAMPLING.status


# --- validation before any job ------------------------------------------------------------------------------
def _nacl_potential_without(key):
    potential = nacl_tosi_fumi()
    if key == 'charges':
        potential.pop('charges')
    elif key == 'pair':
        potential['pair_coeff'] = [line for line in potential['pair_coeff'] if not line.startswith('Cl Cl')]
    return potential


@pytest.mark.parametrize(
    ('change', 'match'),
    [
        ({'temperatures': []}, 'temperatures` is empty'),
        ({'volume_scales': []}, 'volume_scales` is empty'),
        ({'temperatures': [-5.0]}, 'temperature must be positive'),
        ({'timestep': 0.0}, 'timestep must be positive'),
        ({'dump_interval': 5000}, 'dump_interval must be between'),
        ({'ensemble': 'npt', 'pressures': []}, 'non-empty list of `pressures`'),
        ({'potential': 'charges'}, 'charges` are missing'),
        ({'potential': 'pair'}, 'no pair_coeff line covers the species pair Cl-Cl'),
        ({'structure': 'close'}, 'closer than 0.5'),
        ({'structure': 'npt_cluster'}, 'periodic in all three'),
    ],
)
def test_invalid_inputs(aiida_localhost, change, match):
    """Bad input is refused with a message before any job is created."""
    from aiida import orm
    from aiida.engine import run

    change = dict(change)
    atoms = nacl_box()
    potential = nacl_tosi_fumi()
    if 'potential' in change:
        potential = _nacl_potential_without(change.pop('potential'))
    structure_case = change.pop('structure', None)
    if structure_case == 'close':
        atoms.positions[1] = atoms.positions[0] + [0.3, 0.0, 0.0]
    elif structure_case == 'npt_cluster':
        atoms.pbc = [True, True, False]
        change.update({'ensemble': 'npt', 'pressures': [1.0]})
    # no job is created: a code that would do nothing is enough
    code = orm.InstalledCode(
        label='no-lmp', computer=aiida_localhost, filepath_executable='/bin/true'
    ).store()
    builder = builder_for(code, atoms, potential, **change)
    with pytest.raises(ValueError, match=match):
        run(builder)
