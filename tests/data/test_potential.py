"""Tests for :class:`aiida_mlpot.data.potential.GapPotentialData` on a GAP fitted by the real `gap_fit`."""

import subprocess

import numpy as np
import pytest
from aiida.orm import load_node

from aiida_mlpot.common.quip import quip_evaluate
from aiida_mlpot.data.dataset import DatasetData
from aiida_mlpot.data.potential import GapPotentialData
from aiida_mlpot.parsers.parse_raw.gap_fit import parse_gap_xml
from tests.conftest import executable, requires

pytestmark = [pytest.mark.e2e, requires('gap_fit'), requires('lmp')]

GAP_ARGS = (
    'gap={distance_2b cutoff=5.0 n_sparse=15 covariance_type=ard_se delta=1.0 theta_uniform=1.0 '
    'sparse_method=uniform : soap n_max=3 l_max=2 atom_sigma=0.5 cutoff=5.0 cutoff_transition_width=1.0 '
    'delta=0.2 covariance_type=dot_product zeta=2 n_sparse=30 sparse_method=cur_points} '
    'default_sigma={0.005 0.1 0.1 0.0} e0_method=average energy_parameter_name=energy '
    'force_parameter_name=forces virial_parameter_name=virial rnd_seed=7'
)


@pytest.fixture(scope='module')
def tiny_gap(nacl_reference_frames, tmp_path_factory):
    """A tiny GAP (2b + SOAP) fitted by the real gap_fit to 8 reference NaCl frames; returns (folder, frames)."""
    folder = tmp_path_factory.mktemp('tiny_gap')
    frames = nacl_reference_frames[::25]
    with DatasetData.from_ase(frames).get_xyz_path() as path:
        (folder / 'train.xyz').write_bytes(path.read_bytes())
    command = [executable('gap_fit'), 'at_file=train.xyz', 'gp_file=gap.xml', *GAP_ARGS.split(' ')]
    # gap_fit takes `key={a b c}` values as single arguments: join the brace groups back together
    joined, buffer = [], []
    for token in command:
        buffer.append(token)
        if token.count('{') == token.count('}') and sum(t.count('{') - t.count('}') for t in buffer) == 0:
            joined.append(' '.join(buffer))
            buffer = []
    subprocess.run(joined, cwd=folder, check=True, capture_output=True)
    return folder, frames


def test_parse_xml(tiny_gap):
    folder, _ = tiny_gap
    info = parse_gap_xml((folder / 'gap.xml').read_text())
    assert info['species'] == ['Na', 'Cl']
    assert info['cutoff'] == 5.0
    # gap_fit expands each descriptor per species (pair): 3 distance_2b + 2 soap
    assert [d.split()[0] for d in info['descriptors']] == ['distance_2b'] * 3 + ['soap'] * 2
    assert set(info['e0']) == {'Na', 'Cl'}
    assert info['xml_label'].startswith('GAP_')
    assert len(info['sparse_files']) >= 2 and all((folder / name).is_file() for name in info['sparse_files'])
    # one gpCoordinates per descriptor, each with its sparse points and sparseX file
    coordinates = info['coordinates']
    assert [c['sparseX_filename'] for c in coordinates] == info['sparse_files']
    assert len(coordinates) == 5 and all(c['n_sparse'] > 0 and c['dimensions'] > 0 for c in coordinates)


def test_potential_node_and_calculator_match_quip(tiny_gap, tmp_path):
    """The node keeps the XML and sparseX files; its calculator gives quip's energies within 1e-6 eV."""
    folder, frames = tiny_gap
    node = GapPotentialData.from_files(folder / 'gap.xml').store()
    node = load_node(node.pk)
    assert node.species == ['Na', 'Cl'] and node.cutoff == 5.0
    assert node.filenames[0] == 'gap.xml' and len(node.filenames) == 1 + len(
        parse_gap_xml(node.get_xml())['sparse_files']
    )

    calculator = node.get_calculator()
    energies, forces = [], []
    for atoms in frames[:4]:
        atoms = atoms.copy()
        atoms.calc = calculator
        energies.append(atoms.get_potential_energy())
        forces.append(atoms.get_forces())

    reference = quip_evaluate(node.export(tmp_path / 'export'), frames[:4], tmp_path)
    assert len(reference) == 4
    for ours, theirs, our_forces in zip(energies, reference, forces):
        assert abs(ours - theirs.get_potential_energy()) < 1e-6
        assert np.allclose(our_forces, theirs.arrays['force'], atol=1e-6)  # quip writes its forces as `force`


def test_export_writes_lammps_snippet(tiny_gap, tmp_path):
    folder, _ = tiny_gap
    node = GapPotentialData.from_files(folder / 'gap.xml')
    node.export(tmp_path, type_order=['Cl', 'Na'])
    snippet = (tmp_path / 'lammps_pair.in').read_text().splitlines()
    assert snippet[0] == '# LAMMPS atom types: 1 = Cl, 2 = Na (given)'
    assert snippet[1] == 'pair_style quip'
    assert snippet[2] == f'pair_coeff * * gap.xml "Potential xml_label={node.xml_label}" 17 11'
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted([*node.filenames, 'lammps_pair.in'])
    with pytest.raises(ValueError, match='not'):
        node.lammps_pair_lines(type_order=['Ar'])


def test_missing_sparse_file_is_refused(tiny_gap, tmp_path):
    folder, _ = tiny_gap
    (tmp_path / 'gap.xml').write_text((folder / 'gap.xml').read_text())
    with pytest.raises(FileNotFoundError, match='sparseX file'):
        GapPotentialData.from_files(tmp_path / 'gap.xml')


def test_not_a_gap_xml(tmp_path):
    (tmp_path / 'x.xml').write_text('<foo/>')
    with pytest.raises(ValueError, match='not a GAP XML'):
        GapPotentialData.from_files(tmp_path / 'x.xml')


def test_default_snippet_matches_the_plugins_data_files(tiny_gap):
    """Type k of the snippet is the element of type k in the LAMMPS data files the plugin writes (no swap)."""
    from ase.build import bulk
    from ase.data import atomic_numbers

    from aiida_mlpot.potentials.classical import species_order
    from aiida_mlpot.potentials.lammps_input import write_data_file
    from aiida_mlpot.presets import nacl_tosi_fumi

    folder, _ = tiny_gap
    node = GapPotentialData.from_files(folder / 'gap.xml')
    atoms = bulk('NaCl', 'rocksalt', a=5.64, cubic=True)
    text, _ = write_data_file(atoms, species_order(atoms.get_chemical_symbols()), nacl_tosi_fumi('ewald'))
    lines = text.splitlines()
    start = lines.index('Atoms # charge') + 2
    element_of_charge = {1.0: 'Na', -1.0: 'Cl'}  # the preset's charges
    element_of_type = {
        int(line.split()[1]): element_of_charge[float(line.split()[2])] for line in lines[start:] if line
    }
    snippet = node.lammps_pair_lines()
    numbers = [int(x) for x in snippet[2].split('"')[-1].split()]
    for lammps_type, number in enumerate(numbers, start=1):
        assert atomic_numbers[element_of_type[lammps_type]] == number, (lammps_type, number, element_of_type)
    assert numbers == [atomic_numbers['Cl'], atomic_numbers['Na']]
    assert (
        snippet[0]
        == '# LAMMPS atom types: 1 = Cl, 2 = Na (alphabetical, as in the data files aiida-mlpot writes)'
    )
