"""End-to-end tests of SamplingWorkChain with the real Debian `lmp`, and its input validation."""

from __future__ import annotations

import re

import numpy as np
import pytest

from aiida_mlpot.inputs.sampling import state_point_grid, state_point_key
from aiida_mlpot.presets import argon_lj, nacl_tosi_fumi
from aiida_mlpot.structures import random_box


def nacl_box(seed: int = 5):
    return random_box({'Na': 32, 'Cl': 32}, density=1.3, min_distance=2.2, seed=seed)


def builder_for(code, atoms, potential, state_points, protocol='fast', **md_parameters):
    """A builder of the protocol with the given state points and ``md_parameters`` overrides."""
    from aiida import orm

    from aiida_mlpot.workflows.sampling import SamplingWorkChain

    return SamplingWorkChain.get_builder_from_protocol(
        code,
        orm.StructureData(ase=atoms),
        protocol,
        overrides={'md_parameters': md_parameters} if md_parameters else None,
        potential=potential,
        state_points=state_points,
    )


@pytest.fixture(scope='module')
def nacl_grid_run(code_lmp):
    """A 2 x 2 NVT grid (temperatures x volume scales) of 64-atom molten NaCl, 5 frames per state point."""
    from aiida.engine import run_get_node

    builder = builder_for(
        code_lmp,
        nacl_box(),
        nacl_tosi_fumi('ewald'),
        state_point_grid([1200.0, 1600.0], volume_scales=[0.95, 1.05]),
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
    assert results['failed_state_points'].get_dict() == {}  # always attached, empty when none failed
    assert 'failed_state_points' not in node.base.extras  # an output, not an extra
    grid = {state_point_key(point): point for point in node.inputs.state_points.get_list()}
    assert {key: thermo['state_point'] for key, thermo in results['thermo'].items()} == grid


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
    """NPT of the NaCl preset at 1400 K and 1 bar: the model's density (docs/topics/reference-values.md: 1.296
    and 1.299 g/cm³ from 80 ps runs); an 8 ps run of 64 atoms scatters by a few percent, hence the bounds."""
    from aiida.engine import run_get_node

    builder = builder_for(
        code_lmp,
        nacl_box(seed=11),
        nacl_tosi_fumi('ewald'),
        [{'temperature_K': 1400.0, 'pressure_bar': 1.0}],
        equilibration_steps=2000,
        production_steps=4000,
        dump_interval=100,
    )
    results, node = run_get_node(builder)
    assert node.is_finished_ok, node.exit_message
    thermo = results['thermo']['T1400_P1'].get_dict()
    assert thermo['ensemble'] == 'npt' and thermo['state_point'] == {
        'temperature_K': 1400.0,
        'pressure_bar': 1.0,
    }
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
        [{'temperature_K': 90.0, 'volume_scale': 1.0}],
        timestep_fs=5.0,
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
    """A state point whose MD blows up is 410 ERROR_UNSTABLE_MD; the others make the pool; the failure is the
    `failed_state_points` output; all failing is 401 ERROR_SUB_PROCESS_FAILED_SAMPLING, the output still there."""
    from aiida.engine import run_get_node

    from aiida_mlpot.calculations.functions.sampling import collect_failed_state_points
    from aiida_mlpot.calculations.lammps import LammpsMdCalculation
    from aiida_mlpot.workflows.sampling import SamplingWorkChain

    common = {'equilibration_steps': 100, 'production_steps': 100, 'dump_interval': 50, 'timestep_fs': 5.0}
    points = state_point_grid([1400.0, 1.0e7])
    builder = builder_for(code_lmp, nacl_box(), nacl_tosi_fumi(), points, **common)
    results, node = run_get_node(builder)
    assert node.is_finished_ok, node.exit_message
    failed = [child for child in node.called if getattr(child, 'exit_status', 0) != 0]
    assert [child.exit_status for child in failed] == [
        LammpsMdCalculation.exit_codes.ERROR_UNSTABLE_MD.status
    ]
    reasons = results['failed_state_points'].get_dict()
    assert list(reasons) == ['T1e07_V1']
    assert reasons['T1e07_V1'].startswith(
        f'LammpsMdCalculation<{failed[0].pk}> exit 410: the MD became unstable'
    )
    assert 'Lost atoms' in reasons['T1e07_V1']
    assert results['failed_state_points'].creator.process_label == collect_failed_state_points.__name__
    assert results['pool'].config_types == ['T1400_V1']
    assert len(results['pool']) == 3

    builder = builder_for(code_lmp, nacl_box(), nacl_tosi_fumi(), state_point_grid([1.0e7]), **common)
    _, node = run_get_node(builder)
    assert node.exit_status == SamplingWorkChain.exit_codes.ERROR_SUB_PROCESS_FAILED_SAMPLING.status
    assert list(node.outputs.failed_state_points.get_dict()) == ['T1e07_V1']
    assert 'pool' not in node.outputs


def test_collect_failed_state_points(aiida_profile):
    """The calcfunction orders the failures like the state points and refuses a key that is not one of them."""
    from aiida import orm

    from aiida_mlpot.calculations.functions.sampling import collect_failed_state_points

    points = orm.List(state_point_grid([1100.0, 1400.0], pressures_bar=[1.0, 1000.0]))
    failures = orm.Dict({'T1400_P1000': 'exit 410', 'T1100_P1': 'exit 311'})
    assert list(collect_failed_state_points(points, failures).get_dict()) == ['T1100_P1', 'T1400_P1000']
    assert collect_failed_state_points(points, orm.Dict()).get_dict() == {}
    with pytest.raises(ValueError, match='unknown state points'):
        collect_failed_state_points(points, orm.Dict({'T1400_V1': 'x'}))


# --- protocols --------------------------------------------------------------------------------------------------
def test_protocols_hold_no_physics():
    """Every protocol is numerical MD settings and wall time only: no state points, no potential."""
    from aiida_mlpot.workflows.sampling import SamplingWorkChain

    protocols = SamplingWorkChain.get_available_protocols()
    assert set(protocols) == {'fast', 'balanced', 'stringent'}
    assert SamplingWorkChain.get_default_protocol() == 'balanced'
    for name in protocols:
        inputs = SamplingWorkChain.get_protocol_inputs(name)
        assert set(inputs) == {'md', 'md_parameters'}
        assert set(inputs['md_parameters']) <= {
            'timestep_fs',
            'equilibration_steps',
            'production_steps',
            'dump_interval',
            'seed',
        }
        assert inputs['md']['metadata']['options']['max_wallclock_seconds'] > 0


def test_builder_from_protocol(aiida_localhost):
    """The builder: protocol settings, overrides merged into them, options over the protocol's, state points as given."""
    from aiida import orm

    from aiida_mlpot.workflows.sampling import SamplingWorkChain

    code = orm.InstalledCode(
        label='no-lmp-b', computer=aiida_localhost, filepath_executable='/bin/true'
    ).store()
    points = state_point_grid([1100.0], pressures_bar=[1.0, 5000.0])
    builder = SamplingWorkChain.get_builder_from_protocol(
        code,
        orm.StructureData(ase=nacl_box()),
        'stringent',
        overrides={'md_parameters': {'production_steps': 3000}},
        options={'max_wallclock_seconds': 600, 'queue_name': 'debug'},
        potential=nacl_tosi_fumi(),
        state_points=points,
    )
    assert builder.md_parameters.get_dict() == {
        'timestep_fs': 1.0,
        'seed': 1,
        'equilibration_steps': 20000,
        'production_steps': 3000,
        'dump_interval': 500,
    }
    assert builder.state_points.get_list() == points
    options = builder.md.metadata.options
    assert options.max_wallclock_seconds == 600 and options.queue_name == 'debug' and options.withmpi is False
    with pytest.raises(ValueError, match='unknown override key `temperatures`'):
        SamplingWorkChain.get_builder_from_protocol(
            code,
            orm.StructureData(ase=nacl_box()),
            overrides={'temperatures': [1.0]},
            potential=nacl_tosi_fumi(),
            state_points=points,
        )


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
        ({'state_points': []}, 'state_points` is empty'),
        (
            {'state_points': [{'temperature': 1400.0, 'volume_scale': 1.0}]},
            'unknown state point key `temperature`',
        ),
        (
            {'state_points': [{'temperature_K': 1400.0}]},
            'exactly one of `pressure_bar` (NPT) or `volume_scale`',
        ),
        (
            {'state_points': [{'temperature_K': 1400.0, 'pressure_bar': 1.0, 'volume_scale': 1.0}]},
            'exactly one',
        ),
        ({'state_points': [{'volume_scale': 1.0}]}, 'has no `temperature_K`'),
        (
            {'state_points': [{'temperature_K': '1400', 'volume_scale': 1.0}]},
            '`temperature_K` of the state point',
        ),
        (
            {'state_points': state_point_grid([1400.0, 1400.0])},
            "state points ['T1400_V1'] are given more than once",
        ),
        ({'state_points': state_point_grid([-5.0])}, 'temperature_K must be positive'),
        ({'state_points': state_point_grid([1400.0], volume_scales=[0.0])}, 'volume_scale must be positive'),
        ({'timestep_fs': 0.0}, 'timestep_fs must be positive'),
        ({'dump_interval': 5000}, 'dump_interval must be between'),
        ({'timestep': 2.0}, 'unknown key `timestep` in md_parameters'),
        ({'temperature_K': 300.0}, 'unknown key `temperature_K` in md_parameters'),
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
    points = change.pop('state_points', state_point_grid([1400.0]))
    if 'potential' in change:
        potential = _nacl_potential_without(change.pop('potential'))
    structure_case = change.pop('structure', None)
    if structure_case == 'close':
        atoms.positions[1] = atoms.positions[0] + [0.3, 0.0, 0.0]
    elif structure_case == 'npt_cluster':
        atoms.pbc = [True, True, False]
        points = state_point_grid([1400.0], pressures_bar=[1.0])
    # no job is created: a code that would do nothing is enough
    code = orm.InstalledCode(
        label='no-lmp', computer=aiida_localhost, filepath_executable='/bin/true'
    ).store()
    builder = builder_for(code, atoms, potential, points, **change)
    with pytest.raises(ValueError, match=re.escape(match)):
        run(builder)
