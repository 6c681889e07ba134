"""Tests of the text parsers of LAMMPS output on recorded real outputs (Debian `lmp`, 29 Sep 2021).

Fixtures (tests/parsers/lammps/fixtures, with the input script that produced them):
- md_npt_tri: 32-atom NaCl, Tosi-Fumi + Ewald, NPT with triclinic coupling, 3 dumped frames;
- md_lost_atoms: NVT at 1e7 K with 5 fs steps, stopped by `ERROR: Lost atoms`;
- input_error: `fix npt ... tri` on an orthogonal box (an input error reported by LAMMPS);
- rerun: single points of an 8-atom rock-salt cell and a 32-atom skewed melt in one job.
"""

from __future__ import annotations

import pathlib

import numpy as np
import pytest

from aiida_mlpot.parsers.parse_raw.lammps import (
    box_to_cell,
    parse_columns_file,
    parse_dump,
    parse_log,
    virial_pressure_tensor,
)
from aiida_mlpot.potentials.lammps_input import LABEL_COLUMNS, THERMO_COLUMNS
from tests.potentials.nacl_reference import rocksalt_energy_per_pair

FIXTURES = pathlib.Path(__file__).parent / 'fixtures'


def read(*parts: str) -> str:
    return FIXTURES.joinpath(*parts).read_text()


def test_parse_md_dump_and_thermo():
    frames = parse_dump(read('md_npt_tri', 'mlpot.dump'))
    thermo = parse_columns_file(read('md_npt_tri', 'mlpot.thermo'), THERMO_COLUMNS)
    assert [frame['step'] for frame in frames] == [0, 50, 100]
    assert list(thermo['step']) == [0, 50, 100]
    for row, frame in enumerate(frames):
        assert frame['natoms'] == 32 and frame['pbc'] == [True, True, True]
        columns = frame['columns']
        assert list(columns['id']) == list(range(1, 33))  # dump_modify sort id
        # the triclinic bounding box converted to the cell reproduces LAMMPS' own volume
        assert abs(np.linalg.det(frame['cell'])) == pytest.approx(thermo['vol'][row], rel=1e-10)
        assert frame['cell'][1, 0] != 0.0  # tilt factors are kept
        # per-atom energies sum to the potential energy
        assert columns['c_mlpot_pe_atom'].sum() == pytest.approx(thermo['pe'][row], rel=1e-9)
        forces = np.column_stack([columns['fx'], columns['fy'], columns['fz']])
        assert np.abs(forces.sum(axis=0)).max() < 1e-3


def test_box_to_cell_orthogonal_and_triclinic():
    bounds = np.array([[0.0, 10.0], [1.0, 12.0], [-1.0, 9.0]])
    np.testing.assert_allclose(box_to_cell(bounds, None), np.diag([10.0, 11.0, 10.0]))
    # LAMMPS writes bounding-box bounds: xlo_bound = xlo + min(0, xy, xz, xy + xz), ...
    xy, xz, yz = 2.0, -1.0, 0.5
    tilted = np.array(
        [[0.0 + min(0, xy, xz, xy + xz), 10.0 + max(0, xy, xz, xy + xz)], [0.0, 11.5], [0.0, 10.0]]
    )
    cell = box_to_cell(tilted, (xy, xz, yz))
    np.testing.assert_allclose(cell, [[10.0, 0, 0], [2.0, 11.0, 0], [-1.0, 0.5, 10.0]])


def test_virial_pressure_tensor_order():
    table = parse_columns_file('# step ...\n0 1 2 3 4 5 6 7 8 9 10 11 12\n', THERMO_COLUMNS)
    tensor = virial_pressure_tensor(table, 0)  # columns pxx pyy pzz pxy pxz pyz = 7 8 9 10 11 12
    np.testing.assert_allclose(tensor, [[7, 10, 11], [10, 8, 12], [11, 12, 9]])


def test_parse_rerun_outputs():
    frames = parse_dump(read('rerun', 'mlpot.dump'))
    labels = parse_columns_file(read('rerun', 'mlpot.labels'), LABEL_COLUMNS)
    assert [frame['natoms'] for frame in frames] == [8, 32]
    assert list(labels['index']) == [0, 1] and list(labels['natoms']) == [8, 32]
    # the rock-salt crystal (a = 5.621 Å, 6 Å cutoff): the Ewald + Born-Mayer sum of the reference helper
    # (about -8.04 eV per NaCl pair), no forces, isotropic virial
    lattice_constant = labels['vol'][0] ** (1.0 / 3.0)
    assert lattice_constant == pytest.approx(5.621)
    assert labels['pe'][0] / 4 == pytest.approx(
        rocksalt_energy_per_pair(lattice_constant, cutoff=6.0), abs=1e-4
    )
    crystal = frames[0]['columns']
    assert np.abs(np.column_stack([crystal['fx'], crystal['fy'], crystal['fz']])).max() < 1e-8
    tensor = virial_pressure_tensor(labels, 0)
    np.testing.assert_allclose(np.diag(tensor), tensor[0, 0], rtol=1e-10)
    for row, frame in enumerate(frames):
        assert frame['columns']['c_mlpot_pe_atom'].sum() == pytest.approx(labels['pe'][row], rel=1e-9)
        assert abs(np.linalg.det(frame['cell'])) == pytest.approx(labels['vol'][row], rel=1e-10)


def test_parse_log_completed():
    log = parse_log(read('md_npt_tri', 'lammps.out'))
    assert log['completed'] and not log['errors'] and not log['lost_atoms'] and log['unstable'] is None
    assert log['lammps_version'].startswith('29 Sep 2021')
    assert log['steps_per_second'] > 0
    # equilibration and production: two runs; the last thermo line is the production's last step
    assert log['runs_started'] == 2 and log['last_thermo_step'] == 100


def test_parse_log_lost_atoms():
    """Lost atoms are unstable dynamics; the log says in which run and after which thermo output."""
    log = parse_log(read('md_lost_atoms', 'lammps.out'))
    assert log['lost_atoms'] and not log['completed']
    assert log['errors'][0].startswith('ERROR: Lost atoms: original 32 current')
    assert log['unstable'] == log['errors'][0]
    assert log['runs_started'] == 1 and log['last_thermo_step'] == 0


def test_parse_log_input_error():
    """An input error is an error, not unstable dynamics."""
    log = parse_log(read('input_error', 'lammps.out'))
    assert not log['lost_atoms'] and not log['completed'] and log['unstable'] is None
    assert 'non-triclinic box' in log['errors'][0]
    assert log['runs_started'] == 0 and log['last_thermo_step'] is None


@pytest.mark.parametrize(
    'line',
    [
        'ERROR: Non-numeric pressure - simulation unstable (src/fix_nh.cpp:1060)',
        'ERROR: Non-numeric atom coords - simulation unstable (src/domain.cpp:538)',
        'ERROR: Out of range atoms - cannot compute PPPM (src/KSPACE/pppm.cpp:1920)',
    ],
)
def test_parse_log_other_instabilities(line):
    """Other LAMMPS messages of blown-up dynamics are unstable too (no lost atoms)."""
    lost = 'ERROR: Lost atoms: original 32 current 28 (src/thermo.cpp:439)'
    text = read('md_lost_atoms', 'lammps.out')
    assert lost in text
    log = parse_log(text.replace(lost, line))
    assert log['unstable'] == line and not log['lost_atoms']


@pytest.mark.parametrize(
    'text',
    [
        'ITEM: TIMESTEP\n0\nITEM: NUMBER OF ATOMS\n2\nITEM: BOX BOUNDS pp pp pp\n0 1\n0 1\n0 1\n'
        'ITEM: ATOMS id x\n1 0.5\n',
        'garbage\n',
    ],
)
def test_parse_dump_rejects_truncated(text):
    with pytest.raises(ValueError):
        parse_dump(text)


def test_parse_columns_file_rejects_wrong_width():
    with pytest.raises(ValueError, match='expected 13'):
        parse_columns_file('0 1 2\n', THERMO_COLUMNS)
