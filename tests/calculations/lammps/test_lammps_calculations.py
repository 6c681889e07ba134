"""End-to-end tests of LammpsMdCalculation and LammpsRerunCalculation with the real Debian `lmp`."""

from __future__ import annotations

import os
import pathlib

import numpy as np
import pytest
from ase.build import bulk

from aiida_mlpot.common.keys import config_key
from aiida_mlpot.presets import nacl_tosi_fumi
from aiida_mlpot.structures import random_box
from tests.potentials.nacl_reference import rocksalt_energy_per_pair

OPTIONS = {'resources': {'num_machines': 1, 'num_mpiprocs_per_machine': 1}, 'withmpi': False}


def md_parameters(**overrides) -> dict:
    parameters = {
        'ensemble': 'nvt',
        'temperature_K': 1400.0,
        'timestep_fs': 2.0,
        'equilibration_steps': 100,
        'production_steps': 200,
        'dump_interval': 50,
        'seed': 12345,
    }
    parameters.update(overrides)
    return parameters


@pytest.fixture(scope='module')
def nacl_potential():
    return nacl_tosi_fumi('ewald')


@pytest.fixture(scope='module')
def md_run(code_lmp, nacl_potential):
    """A short NVT run of 64-atom molten NaCl (5 frames)."""
    from aiida import orm
    from aiida.engine import run_get_node

    from aiida_mlpot.calculations.lammps import LammpsMdCalculation

    atoms = random_box({'Na': 32, 'Cl': 32}, density=1.3, min_distance=2.2, seed=1)
    inputs = {
        'code': code_lmp,
        'structure': orm.StructureData(ase=atoms),
        'potential': orm.Dict(nacl_potential),
        'parameters': orm.Dict(md_parameters()),
        'metadata': {'options': OPTIONS},
    }
    results, node = run_get_node(LammpsMdCalculation, **inputs)
    assert node.is_finished_ok, (node.exit_status, node.exit_message)
    return results, node


def run_rerun(code_lmp, potential, **inputs):
    from aiida import orm
    from aiida.engine import run_get_node

    from aiida_mlpot.calculations.lammps import LammpsRerunCalculation

    results, node = run_get_node(
        LammpsRerunCalculation,
        code=code_lmp,
        potential=orm.Dict(potential),
        metadata={'options': OPTIONS},
        **inputs,
    )
    assert node.is_finished_ok, (node.exit_status, node.exit_message)
    return results, node


@pytest.mark.e2e
def test_md_frames(md_run):
    """The pool holds every dumped frame with consistent labels and its provenance."""
    results, node = md_run
    dataset = results['dataset']
    frames = dataset.to_ase()
    assert len(frames) == 200 // 50 + 1
    assert [frame.info['step'] for frame in frames] == [0, 50, 100, 150, 200]
    assert set(dataset.properties) >= {'energy', 'forces', 'virial', 'energies'}
    for frame in frames:
        assert frame.info['source_uuid'] == node.uuid
        assert frame.info['temperature_K'] > 0  # named as in ML-MD frames
        # per-atom energies (kspace share included, as LAMMPS distributes it) sum to the potential energy
        assert np.sum(frame.arrays['energies']) == pytest.approx(frame.info['energy'], rel=1e-6)
        assert frame.get_chemical_symbols().count('Na') == 32
        # Newton's third law: the net force vanishes (Ewald accuracy)
        assert np.abs(frame.arrays['forces'].sum(axis=0)).max() < 1e-3
    thermo = results['thermo'].get_dict()
    assert thermo['n_samples'] == 5
    assert 500 < thermo['temperature_mean'] < 3000
    assert thermo['density_mean'] == pytest.approx(1.3, rel=1e-6)  # NVT: the density of the box
    # the dataset links back to the calculation that produced it
    assert dataset.base.links.get_incoming().one().node.uuid == node.uuid


@pytest.mark.e2e
def test_rerun_reproduces_md(md_run, code_lmp, nacl_potential):
    """Single points of the MD frames in one job reproduce the MD energies, forces and virials."""
    md_dataset = md_run[0]['dataset']
    results, node = run_rerun(code_lmp, nacl_potential, dataset=md_dataset)
    reference = md_dataset.to_ase()
    labelled = results['dataset'].to_ase()
    assert len(labelled) == len(reference)
    for index, (ref, new) in enumerate(zip(reference, labelled, strict=True)):
        assert new.info['label_key'] == index
        assert new.info['source_uuid'] == node.uuid
        assert new.info['parent_source_uuid'] == ref.info['source_uuid']
        assert new.info['energy'] == pytest.approx(ref.info['energy'], rel=1e-6)
        # the dump carries 16 significant digits: agreement far below the 1e-5 eV/Å required
        np.testing.assert_allclose(new.arrays['forces'], ref.arrays['forces'], rtol=1e-6, atol=1e-8)
        np.testing.assert_allclose(new.info['virial'], ref.info['virial'], rtol=1e-6, atol=1e-6)
        np.testing.assert_allclose(new.arrays['energies'], ref.arrays['energies'], rtol=1e-6, atol=1e-8)


@pytest.mark.e2e
def test_rerun_varying_cells(code_lmp, nacl_potential):
    """Configurations of different sizes and general (rotated, triclinic) cells in one job."""
    from aiida import orm
    from scipy.spatial.transform import Rotation

    # 8 atoms at the model's 0 K lattice constant (the minimum of tests/potentials/nacl_reference.py)
    crystal = bulk('NaCl', 'rocksalt', a=5.621, cubic=True)
    melt = random_box({'Na': 16, 'Cl': 16}, density=1.3, min_distance=2.2, seed=3)
    rotation = Rotation.from_euler('xyz', [20, 35, -50], degrees=True).as_matrix()
    rotated = melt.copy()
    rotated.set_cell(melt.cell.array @ rotation.T)
    rotated.positions = melt.positions @ rotation.T
    skewed = melt.copy()
    skewed.set_cell(melt.cell.array + [[0, 0, 0], [2.0, 0, 0], [0.5, -1.0, 0]], scale_atoms=True)

    structures = {
        config_key(index): orm.StructureData(ase=atoms)
        for index, atoms in enumerate((melt, crystal, rotated, skewed))
    }
    results, node = run_rerun(code_lmp, nacl_potential, structures=structures)
    frames = results['dataset'].to_ase()
    assert [frame.info['label_key'] for frame in frames] == sorted(structures)
    assert [len(frame) for frame in frames] == [32, 8, 32, 32]

    # the 0 K crystal: the Ewald + Born-Mayer sum of the reference helper (about -8.06 eV per pair), no forces
    assert frames[1].info['energy'] / 4 == pytest.approx(
        rocksalt_energy_per_pair(5.621, cutoff=9.0), abs=1e-4
    )
    assert np.abs(frames[1].arrays['forces']).max() < 1e-6

    # the rotated copy: same energy, rotated forces and virial
    melt_frame, rotated_frame = frames[0], frames[2]
    assert rotated_frame.info['energy'] == pytest.approx(melt_frame.info['energy'], rel=1e-8)
    np.testing.assert_allclose(
        rotated_frame.arrays['forces'], melt_frame.arrays['forces'] @ rotation.T, atol=1e-6
    )
    expected_virial = rotation @ melt_frame.info['virial'] @ rotation.T
    np.testing.assert_allclose(rotated_frame.info['virial'], expected_virial, atol=1e-5)
    np.testing.assert_allclose(rotated_frame.positions, rotated.positions)

    # the skewed cell: energy of the per-atom energies, positions as given
    skewed_frame = frames[3]
    assert np.sum(skewed_frame.arrays['energies']) == pytest.approx(skewed_frame.info['energy'], rel=1e-6)
    np.testing.assert_allclose(skewed_frame.cell.array, skewed.cell.array)


SW_FILE = '/usr/share/lammps/potentials/Si.sw'


def stillinger_weber_diamond_energy(path: str, lattice_constant: float) -> float:
    """Return the Stillinger-Weber energy per atom (eV) of diamond Si, from the parameters of the LAMMPS file.

    At the ideal tetrahedral angle the three-body term vanishes (cos θ = -1/3 = cos θ₀) and only the four
    nearest neighbours (r = a√3/4) are inside the cutoff aσ (the next shell, a/√2, is outside), so the energy
    per atom is 2 φ₂(r) with φ₂(r) = A ε (B (σ/r)^p - (σ/r)^q) exp(σ / (r - aσ)).
    """
    lines = [line.split('#')[0] for line in pathlib.Path(path).read_text().splitlines()]
    values = ' '.join(lines).split()
    start = values.index('Si')
    epsilon, sigma, a, _lambda, _gamma, cos0, big_a, big_b, p, q, _tol = (
        float(v) for v in values[start + 3 : start + 14]
    )
    assert cos0 == pytest.approx(-1.0 / 3.0)
    r = lattice_constant * np.sqrt(3.0) / 4.0
    assert r < a * sigma < lattice_constant / np.sqrt(2.0)
    phi2 = big_a * epsilon * (big_b * (sigma / r) ** p - (sigma / r) ** q) * np.exp(sigma / (r - a * sigma))
    return 2.0 * phi2


@pytest.mark.e2e
@pytest.mark.skipif(not os.path.exists(SW_FILE), reason='LAMMPS potential files are not installed')
def test_rerun_many_body_with_potential_file(code_lmp):
    """A many-body style with a potential file: Stillinger-Weber diamond Si (about -4.3366 eV/atom at a = 5.431 Å)."""
    from aiida import orm

    potential = {'pair_style': 'sw', 'pair_coeff': ['* * Si.sw Si'], 'files': ['Si.sw']}
    crystal = bulk('Si', 'diamond', a=5.431, cubic=True)
    results, _ = run_rerun(
        code_lmp,
        potential,
        structures={'si': orm.StructureData(ase=crystal)},
        potential_files={'sw': orm.SinglefileData(SW_FILE)},
    )
    frame = results['dataset'].to_ase()[0]
    assert frame.info['energy'] / len(frame) == pytest.approx(
        stillinger_weber_diamond_energy(SW_FILE, 5.431), abs=1e-6
    )
    assert frame.info['label_key'] == 'si'


@pytest.mark.e2e
def test_lammps_input_error_exit_code(code_lmp):
    """An error reported by LAMMPS is an exit code of the calculation, with the LAMMPS message."""
    from aiida import orm
    from aiida.engine import run_get_node

    from aiida_mlpot.calculations.lammps import LammpsMdCalculation

    potential = nacl_tosi_fumi('ewald') | {'special': ['kspace_modify mesh not-a-number']}
    atoms = random_box({'Na': 4, 'Cl': 4}, density=1.3, min_distance=2.2, seed=1)
    _, node = run_get_node(
        LammpsMdCalculation,
        code=code_lmp,
        structure=orm.StructureData(ase=atoms),
        potential=orm.Dict(potential),
        parameters=orm.Dict(md_parameters()),
        metadata={'options': OPTIONS},
    )
    assert node.exit_status == LammpsMdCalculation.exit_codes.ERROR_PARSER_DETECTED_LAMMPS_RUN_ERROR.status
    assert 'ERROR' in node.exit_message


def test_potential_files_must_be_given(aiida_localhost):
    """A potential that names files which are not given is refused before submission."""
    from aiida import orm
    from aiida.engine import run

    from aiida_mlpot.calculations.lammps import LammpsRerunCalculation

    code = orm.InstalledCode(
        label='no-lmp', computer=aiida_localhost, filepath_executable='/bin/true'
    ).store()
    potential = {'pair_style': 'sw', 'pair_coeff': ['* * Si.sw Si'], 'files': ['Si.sw']}
    with pytest.raises(ValueError, match='not in `potential_files`'):
        run(
            LammpsRerunCalculation,
            code=code,
            potential=orm.Dict(potential),
            structures={'si': orm.StructureData(ase=bulk('Si', 'diamond', a=5.431))},
            metadata={'options': OPTIONS},
        )
    with pytest.raises(ValueError, match='exactly one of'):
        run(
            LammpsRerunCalculation,
            code=code,
            potential=orm.Dict(nacl_tosi_fumi()),
            metadata={'options': OPTIONS},
        )


def test_exit_codes_unique_and_in_range():
    """No exit status is declared twice; unstable MD is 410 ERROR_UNSTABLE_MD, as in ML MD."""
    from aiida_mlpot.calculations.lammps import LammpsMdCalculation, LammpsRerunCalculation
    from aiida_mlpot.calculations.ml_md import MlMdCalculation
    from aiida_mlpot.workflows.sampling import SamplingWorkChain

    for process in (LammpsMdCalculation, LammpsRerunCalculation, SamplingWorkChain):
        statuses = [code.status for code in process.exit_codes.values()]
        assert len(statuses) == len(set(statuses)), process
    assert SamplingWorkChain.exit_codes.ERROR_SUB_PROCESS_FAILED_SAMPLING.status == 401
    unstable = LammpsMdCalculation.exit_codes.ERROR_UNSTABLE_MD
    assert unstable.status == MlMdCalculation.exit_codes.ERROR_UNSTABLE_MD.status == 410
    assert 'ERROR_UNSTABLE_MD' not in LammpsRerunCalculation.exit_codes  # single points have no dynamics
    for label in ('ERROR_DUMP_MISSING', 'ERROR_INCONSISTENT_OUTPUT', 'ERROR_LAMMPS_NOT_COMPLETED'):
        assert 300 <= LammpsMdCalculation.exit_codes[label].status < 400
    assert 300 <= LammpsRerunCalculation.exit_codes.ERROR_NON_FINITE_VALUES.status < 400


@pytest.mark.e2e
def test_unstable_md_exit_code(code_lmp):
    """MD that loses atoms (1e7 K, 5 fs steps) is 410 ERROR_UNSTABLE_MD with the LAMMPS error and the run."""
    from aiida import orm
    from aiida.engine import run_get_node

    from aiida_mlpot.calculations.lammps import LammpsMdCalculation

    atoms = random_box({'Na': 16, 'Cl': 16}, density=1.3, min_distance=2.2, seed=1)
    parameters = md_parameters(
        temperature_K=1.0e7, timestep_fs=5.0, equilibration_steps=0, production_steps=100
    )
    _, node = run_get_node(
        LammpsMdCalculation,
        code=code_lmp,
        structure=orm.StructureData(ase=atoms),
        potential=orm.Dict(nacl_tosi_fumi('ewald')),
        parameters=orm.Dict(parameters),
        metadata={'options': OPTIONS},
    )
    assert node.exit_status == LammpsMdCalculation.exit_codes.ERROR_UNSTABLE_MD.status == 410
    assert node.exit_message.startswith('the MD became unstable in the production run after step ')
    assert 'ERROR: Lost atoms' in node.exit_message
    assert 'dataset' not in node.outputs


@pytest.mark.parametrize(
    ('changes', 'match'),
    [
        ({'temperature': 1400.0}, 'unknown MD parameter `temperature`'),
        ({'thermostat_damping': 100.0}, 'unknown MD parameter `thermostat_damping`'),
        ({'ensemble': 'npt'}, 'needs `pressure_bar`'),
    ],
)
def test_md_parameters_refused(aiida_localhost, changes, match):
    """Unknown MD parameters (the old names included) are refused, naming the key, before any job."""
    from aiida import orm
    from aiida.engine import run

    from aiida_mlpot.calculations.lammps import LammpsMdCalculation

    code = orm.InstalledCode(
        label='no-lmp', computer=aiida_localhost, filepath_executable='/bin/true'
    ).store()
    atoms = random_box({'Na': 4, 'Cl': 4}, density=1.3, min_distance=2.2, seed=1)
    with pytest.raises(ValueError, match=match):
        run(
            LammpsMdCalculation,
            code=code,
            structure=orm.StructureData(ase=atoms),
            potential=orm.Dict(nacl_tosi_fumi()),
            parameters=orm.Dict(md_parameters(**changes)),
            metadata={'options': OPTIONS},
        )


def test_rerun_data_filenames():
    """The data file of configuration i is named by the one configuration key."""
    from aiida_mlpot.calculations.lammps import LammpsRerunCalculation

    assert LammpsRerunCalculation.data_filename(7) == f'{config_key(7)}.data' == 'config_00007.data'


def test_validate_atoms_min_distance():
    """Atoms closer than MIN_DISTANCE (minimum image, the shared kernel) are refused; others pass."""
    from ase import Atoms

    from aiida_mlpot.calculations.lammps import MIN_DISTANCE, validate_atoms

    pair = Atoms('Na2', positions=[[0.1, 0, 0], [9.8, 0, 0]], cell=[10.0, 10.0, 10.0], pbc=True)
    assert MIN_DISTANCE == 0.5
    assert 'atoms 0.300 Å apart, closer than 0.5 Å' in validate_atoms(pair)
    pair.pbc = False  # without periodicity the two atoms are 9.7 Å apart
    assert validate_atoms(pair) is None
    assert 'zero volume' in validate_atoms(Atoms('Na', positions=[[0, 0, 0]]))
