"""The crystal analysis with a LAMMPS teacher through ASE's LAMMPS calculator: gold, Debian's Au_u3.eam (e2e).

The same functions that measure a GAP measure the EAM teacher of the gold benchmark. Known answer: Foiles,
Baskes and Daw (Phys. Rev. B 33, 7983 (1986)) fitted this u3 potential to gold's lattice constant 4.08 Å,
bulk modulus 1.67 and elastic constants C11 = 1.83, C12 = 1.59, C44 = 0.45 (10^12 dyn/cm² = 100 GPa).
"""

import pathlib

import pytest
from ase.build import bulk

from aiida_mlpot.analysis.solids import elastic_constants, equation_of_state
from tests.conftest import executable, requires

pytestmark = [pytest.mark.e2e, requires('lmp')]

POTENTIAL = pathlib.Path('/usr/share/lammps/potentials/Au_u3.eam')


@pytest.fixture
def eam_gold(tmp_path, monkeypatch):
    if not POTENTIAL.is_file():
        pytest.skip(f'{POTENTIAL} is not installed (Debian lammps-data)')
    from ase.calculators.lammpsrun import LAMMPS

    monkeypatch.setenv('ASE_LAMMPSRUN_COMMAND', executable('lmp'))

    def make():
        return LAMMPS(
            pair_style='eam',
            pair_coeff=[f'* * {POTENTIAL}'],
            files=[str(POTENTIAL)],
            specorder=['Au'],
            tmp_dir=str(tmp_path),
        )

    return make


def test_gold_eam_lattice_bulk_and_elastic_constants(eam_gold):
    eos = equation_of_state(bulk('Au', 'fcc', a=4.05, cubic=True), eam_gold())
    a0 = eos['cell_lengths'][0]
    assert a0 == pytest.approx(4.08, abs=0.002)  # measured 4.0800 Å
    assert eos['bulk_modulus_gpa'] == pytest.approx(167, rel=0.01)  # measured 166.6 GPa
    elastic = elastic_constants(bulk('Au', 'fcc', a=a0, cubic=True), eam_gold(), relax_positions=False)
    # measured 183.2, 158.9, 44.7 GPa
    assert (elastic['C11'], elastic['C12'], elastic['C44']) == pytest.approx((183, 159, 45), rel=0.01)
    assert elastic['bulk_modulus_gpa'] == pytest.approx(eos['bulk_modulus_gpa'], rel=0.01)


def test_teacher_calculator_of_a_coulombic_potential_reproduces_lammps_labels(
    nacl_reference_frames, tmp_path
):
    """The engine's LAMMPS calculator of a classical dictionary (charges per species, Ewald after the pair lines)
    gives the energies, forces and virials LAMMPS itself wrote for the reference frames (same cutoff 6.5 Å)."""
    import numpy as np

    from aiida_mlpot.common.units import stress_to_virial
    from aiida_mlpot.engines.solids import lammps_calculator
    from aiida_mlpot.presets import nacl_tosi_fumi

    calculator = lammps_calculator(nacl_tosi_fumi(cutoff=6.5), ['Na', 'Cl'], executable('lmp'), tmp_path)
    for frame in nacl_reference_frames[::60]:
        atoms = frame.copy()
        atoms.calc = calculator
        assert atoms.get_potential_energy() == pytest.approx(frame.info['energy'], abs=1e-3)
        assert np.abs(atoms.get_forces() - frame.arrays['forces']).max() < 1e-3
        virial = stress_to_virial(atoms.get_stress(), atoms.get_volume())
        assert np.abs(virial - np.reshape(frame.info['virial'], (3, 3))).max() < 1e-2
