"""Tests of `Cp2kLabelParser` (entry point mlpot.cp2k) on outputs recorded from the real cp2k.psmp 2023.1."""

from __future__ import annotations

import pathlib

import numpy as np
import pytest
from aiida import orm
from aiida.common.links import LinkType
from aiida.plugins import CalculationFactory, ParserFactory
from ase.build import bulk

from aiida_mlpot.common import units

FIXTURES = pathlib.Path(__file__).parent / 'fixtures'
Cp2kCalculation = CalculationFactory('cp2k')


def _structure_of(case: str):
    """The structure of a recorded case, read back from its input file (cell and &COORD block)."""
    if case == 'pbe_gapw_8atoms':
        atoms = bulk('NaCl', 'rocksalt', a=5.64, cubic=True)
        atoms.positions[0] += [0.1, 0.05, 0.0]
        return atoms
    lines = (FIXTURES / case / 'aiida.inp').read_text().splitlines()
    start = lines.index('    &COORD') + 1
    end = lines.index('    &END COORD')
    symbols = [line.split()[0] for line in lines[start:end]]
    positions = [[float(x) for x in line.split()[1:4]] for line in lines[start:end]]
    from ase import Atoms

    return Atoms(symbols, positions=positions, cell=[5.64] * 3, pbc=True)


def _calc_node(localhost, case: str, files: list[str]):
    """A stored Cp2kCalculation node with the recorded files as its retrieved folder."""
    node = orm.CalcJobNode(computer=localhost, process_type='aiida.calculations:cp2k')
    node.set_option('resources', {'num_machines': 1})
    node.set_option('output_filename', 'aiida.out')
    structure = orm.StructureData(ase=_structure_of(case)).store()
    node.base.links.add_incoming(structure, link_type=LinkType.INPUT_CALC, link_label='structure')
    node.store()
    retrieved = orm.FolderData()
    for name in files:
        retrieved.base.repository.put_object_from_file(str(FIXTURES / case / name), name)
    retrieved.base.links.add_incoming(node, link_type=LinkType.CREATE, link_label='retrieved')
    retrieved.store()
    return node


ALL_FILES = ['aiida.out', 'aiida-forces-1_0.xyz', 'aiida-stress-1_0.stress_tensor']


@pytest.mark.parametrize('case', ['xtb_8atoms', 'pbe_gapw_8atoms'])
def test_parser_success(aiida_localhost, case, data_regression):
    node = _calc_node(aiida_localhost, case, ALL_FILES)
    parser = ParserFactory('mlpot.cp2k')
    results, calcfunction = parser.parse_from_node(node, store_provenance=False)
    assert calcfunction.is_finished_ok, calcfunction.exit_message
    values = results['output_parameters'].get_dict()
    forces = np.array(values['forces'])
    assert forces.shape == (8, 3)
    virial = np.array(values['virial'])
    volume = 5.64**3
    assert np.allclose(virial, -np.array(values['stress']) * volume)
    # 1/3 trace of the CP2K tensor is the pressure; the virial trace is 3 P V
    stress_text = (FIXTURES / case / 'aiida-stress-1_0.stress_tensor').read_text()
    pressure_gpa = float(next(line for line in stress_text.splitlines() if '1/3 Trace' in line).split()[-1])
    assert np.trace(virial) == pytest.approx(
        3 * pressure_gpa * units.GPA_TO_EV_PER_ANGSTROM3 * volume, rel=1e-9
    )
    data_regression.check(
        {
            'energy': round(values['energy'], 6),
            'forces_atom0': [round(float(x), 6) for x in forces[0]],
            'virial_diag': [round(float(x), 5) for x in np.diag(virial)],
            'scf_converged': values['scf_converged'],
            'scf_steps': values['scf_steps'],
        }
    )


def test_parser_scf_not_converged(aiida_localhost):
    """Debian CP2K exits 0 when the SCF did not converge: the parser returns 450 and still reports why."""
    node = _calc_node(aiida_localhost, 'scf_not_converged', ALL_FILES)
    results, calcfunction = ParserFactory('mlpot.cp2k').parse_from_node(node, store_provenance=False)
    assert calcfunction.exit_status == Cp2kCalculation.exit_codes.ERROR_SCF_NOT_CONVERGED.status
    assert results['output_parameters']['scf_converged'] is False


def test_parser_missing_forces_file(aiida_localhost):
    """Forces were requested into a file; without it the output cannot be used as a label."""
    node = _calc_node(aiida_localhost, 'xtb_8atoms', ['aiida.out'])
    _, calcfunction = ParserFactory('mlpot.cp2k').parse_from_node(node, store_provenance=False)
    assert calcfunction.exit_status == Cp2kCalculation.exit_codes.ERROR_OUTPUT_PARSE.status


def test_parser_missing_output(aiida_localhost):
    node = _calc_node(aiida_localhost, 'xtb_8atoms', ['aiida-forces-1_0.xyz'])
    _, calcfunction = ParserFactory('mlpot.cp2k').parse_from_node(node, store_provenance=False)
    assert calcfunction.exit_status == Cp2kCalculation.exit_codes.ERROR_OUTPUT_MISSING.status


def test_parser_truncated_output(aiida_localhost, tmp_path):
    """An output cut before the end (killed job) is ERROR_OUTPUT_INCOMPLETE."""
    node = _calc_node(aiida_localhost, 'xtb_8atoms', ALL_FILES[1:])
    text = (FIXTURES / 'xtb_8atoms' / 'aiida.out').read_text()
    truncated = text[: text.index('ENERGY| Total FORCE_EVAL')]
    node2 = orm.CalcJobNode(computer=aiida_localhost, process_type='aiida.calculations:cp2k')
    node2.set_option('resources', {'num_machines': 1})
    node2.set_option('output_filename', 'aiida.out')
    node2.store()
    retrieved = orm.FolderData()
    retrieved.base.repository.put_object_from_bytes(truncated.encode(), 'aiida.out')
    retrieved.base.links.add_incoming(node2, link_type=LinkType.CREATE, link_label='retrieved')
    retrieved.store()
    _, calcfunction = ParserFactory('mlpot.cp2k').parse_from_node(node2, store_provenance=False)
    assert calcfunction.exit_status == Cp2kCalculation.exit_codes.ERROR_OUTPUT_INCOMPLETE.status
    assert node.is_stored
