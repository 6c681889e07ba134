"""ValidationWorkChain's crystal part end to end on fcc gold: a small GAP fitted by the real gap_fit to labels of
the EAM teacher (Debian's Au_u3.eam in the real LAMMPS), against that teacher, with the real python driver.

Small cells (tests): 4-atom cubic cell, 4-layer slabs, 32-atom vacancy and phonon supercells. The point is that
every crystal check runs and gives a verdict and the PNG; the figures are printed (``-s``) for the record.
"""

from __future__ import annotations

import json
import pathlib

import numpy as np
import pytest
from aiida import orm
from aiida.engine import run_get_node
from ase.build import bulk, surface

from aiida_mlpot.data.extxyz import write_frames
from aiida_mlpot.engines.solids import lammps_calculator
from tests.conftest import executable, requires

POTENTIAL = pathlib.Path('/usr/share/lammps/potentials/Au_u3.eam')
#: The EAM teacher as a classical-potential dictionary (its file is the `potential_files` input).
TEACHER = {
    'pair_style': 'eam',
    'pair_coeff': ['* * Au_u3.eam'],
    'files': ['Au_u3.eam'],
    'description': 'Au, Foiles-Baskes-Daw u3 EAM (Debian lammps-data)',
}
#: gap_fit descriptors of the gold test GAP: 2-body + SOAP (n_max 4, l_max 3, cutoff 5 Å), 60 CUR sparse points.
GAP_STRING = (
    '{distance_2b cutoff=5.0 covariance_type=ard_se delta=0.5 theta_uniform=1.0 sparse_method=uniform '
    'n_sparse=20 : soap n_max=4 l_max=3 cutoff=5.0 atom_sigma=0.5 cutoff_transition_width=1.0 delta=0.2 '
    'zeta=4 covariance_type=dot_product sparse_method=cur_points n_sparse=60}'
)
VERDICTS = {'pass', 'fail', 'inconclusive'}


def gold_training_frames(calculator, seed: int = 3) -> list:
    """36 configurations labelled by the teacher: strained and rattled 32-atom fcc cells, vacancies, (100) slabs."""
    rng = np.random.default_rng(seed)
    base = bulk('Au', 'fcc', a=4.08, cubic=True)
    frames = []
    for scale in np.linspace(0.96, 1.04, 9):  # the equation of state
        atoms = base.repeat(2)
        atoms.set_cell(atoms.cell * scale, scale_atoms=True)
        frames.append(atoms)
    for _ in range(12):  # elastic constants: random small strains
        atoms = base.repeat(2)
        strain = rng.uniform(-0.02, 0.02, (3, 3))
        atoms.set_cell(atoms.cell @ (np.eye(3) + 0.5 * (strain + strain.T)), scale_atoms=True)
        frames.append(atoms)
    for _ in range(6):  # phonons and the vacancy
        atoms = base.repeat(2)
        del atoms[int(rng.integers(len(atoms)))]
        frames.append(atoms)
    for _ in range(5):
        frames.append(base.repeat(2))
    for miller in ((1, 0, 0), (1, 1, 1)) * 2:  # the surfaces
        frames.append(surface(base, miller, 4, vacuum=6.0, periodic=True))
    for atoms in frames:
        atoms.rattle(0.06, seed=int(rng.integers(1 << 30)))
        atoms.calc = calculator
        atoms.info['energy'] = atoms.get_potential_energy()
        atoms.info['virial'] = -atoms.get_stress(voigt=False) * atoms.get_volume()
        atoms.arrays['forces'] = atoms.get_forces()
        atoms.calc = None
    return frames


@pytest.fixture(scope='module')
def gold_gap(aiida_profile, tmp_path_factory):
    """The gold test GAP (GapPotentialData), fitted by the real gap_fit to 36 teacher-labelled frames."""
    import subprocess

    from aiida_mlpot.data.potential import GapPotentialData

    gap_fit, lmp = executable('gap_fit'), executable('lmp')
    if gap_fit is None or lmp is None or not POTENTIAL.is_file():
        pytest.skip('needs gap_fit, lmp and Debian lammps-data (Au_u3.eam)')
    folder = tmp_path_factory.mktemp('gold_gap')
    (folder / POTENTIAL.name).write_bytes(POTENTIAL.read_bytes())
    frames = gold_training_frames(lammps_calculator(TEACHER, ['Au'], lmp, folder))
    with open(folder / 'train.xyz', 'w') as handle:
        write_frames(frames, handle)
    command = [
        gap_fit, 'at_file=train.xyz', f'gap={GAP_STRING}', 'default_sigma={0.001 0.03 0.02 0.0}',
        'energy_parameter_name=energy', 'force_parameter_name=forces', 'virial_parameter_name=virial',
        'e0_method=average', 'sparse_jitter=1e-8', 'rnd_seed=1', 'gap_file=gap.xml',
    ]  # fmt: skip
    result = subprocess.run(command, cwd=folder, capture_output=True, text=True)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    return GapPotentialData.from_files(folder / 'gap.xml').store()


def gold_builder(codes, gap, protocol='fast', **kwargs):
    from aiida_mlpot.workflows.validation import ValidationWorkChain

    teacher_files = {'Au_u3_eam': orm.SinglefileData(POTENTIAL)}
    crystal = orm.StructureData(ase=bulk('Au', 'fcc', a=4.07, cubic=True))
    return ValidationWorkChain.get_builder_from_protocol(
        codes,
        None,
        protocol,
        potential=gap,
        teacher=TEACHER,
        teacher_files=teacher_files,
        crystal=crystal,
        **kwargs,
    )


@pytest.mark.e2e
@requires('lmp')
def test_gold_crystal_validation_against_the_teacher(code_python, code_lmp, gold_gap):
    """Lattice constant, bulk modulus, C11/C12/C44, (111) and (100) surfaces, vacancy and phonons: GAP vs EAM."""
    builder = gold_builder({'python': code_python, 'lammps': code_lmp}, gold_gap)
    results, node = run_get_node(builder)
    assert node.is_finished_ok, (node.exit_status, node.exit_message)
    validation = results['validation'].get_dict()
    crystal = validation['crystal']
    printable = {k: v for k, v in crystal.items() if k != 'phonon_frequencies'}
    printable['phonon_frequencies'] = {k: crystal['phonon_frequencies'][k] for k in ('error', 'verdict')}
    print(json.dumps(printable, indent=1))
    expected = {'lattice_constant', 'bulk_modulus_gpa', 'C11', 'C12', 'C44', 'surface_energy_111'}
    expected |= {'surface_energy_100', 'vacancy_energy', 'phonon_frequencies', 'phonon_stability'}
    assert expected <= set(crystal)
    for name in expected:
        assert crystal[name]['verdict'] in VERDICTS
    assert results['verdict'].value == validation['verdict'] == crystal['verdict']
    assert validation['state_points'] == {}
    # the teacher's own figures (Foiles, Baskes and Daw 1986: 4.08 Å, 167 GPa) come out of the EAM side
    assert crystal['lattice_constant']['reference'] == pytest.approx(4.08, abs=0.002)
    assert crystal['bulk_modulus_gpa']['reference'] == pytest.approx(167, rel=0.01)
    with results['crystal_plot'].open(mode='rb') as handle:
        assert handle.read(8) == b'\x89PNG\r\n\x1a\n'
