"""The crystal part's inputs: engine settings, the comparison calcfunction on user values, the work chain's checks."""

from __future__ import annotations

import pytest
from aiida import orm
from ase.build import bulk

from aiida_mlpot.calculations.functions.validation import compare_crystal
from aiida_mlpot.engines.solids import SETTINGS, normalise_settings, path_qpoints
from aiida_mlpot.workflows.validation import ValidationWorkChain, validate_inputs
from tests.calculations.ml_md.conftest import gap_potential  # noqa: F401
from tests.engines.conftest import ml_md_gap  # noqa: F401

GOLD = {
    'lattice_constant': 4.08,
    'bulk_modulus_gpa': 167.0,
    'C11': 183.0,
    'C12': 159.0,
    'C44': 45.0,
    'surface_energies_j_m2': {'111': 0.79, '100': 0.91},
    'vacancy_energy': 1.06,
}


def test_settings_refuse_unknown_keys_and_bad_values_by_name():
    assert normalise_settings({})['vacancy_supercell'] == SETTINGS['vacancy_supercell']
    for settings, match in (
        ({'layers': 4}, '`layers`: unknown key'),
        ({'properties': ['eos', 'melting']}, 'unknown property `melting`'),
        ({'phonon_supercell': [2, 2]}, '`phonon_supercell`: three positive integers'),
        ({'surfaces': [[0, 0, 0]]}, '`surfaces`'),
        ({'fmax': 0.0}, '`fmax`'),
    ):
        with pytest.raises(ValueError, match=match):
            normalise_settings(settings)


def test_path_qpoints_include_every_corner():
    qpoints = path_qpoints([(0, 0, 0), (0.5, 0, 0), (0.5, 0.5, 0)], 4)
    assert len(qpoints) == 9
    assert qpoints[4] == [0.5, 0.0, 0.0] and qpoints[-1] == [0.5, 0.5, 0.0]


def test_compare_crystal_judges_what_both_sides_have(aiida_profile):
    ours = {**GOLD, 'C44': 30.0, 'vacancy_energy': 1.30}
    results, node = compare_crystal.run_get_node(orm.Dict(ours), orm.Dict(GOLD))
    assert node.is_finished_ok
    comparison = results['comparison'].get_dict()
    assert comparison['C44']['verdict'] == 'fail'  # -33 %
    assert comparison['vacancy_energy']['error'] == pytest.approx(0.24)
    assert comparison['lattice_constant']['verdict'] == comparison['surface_energy_111']['verdict'] == 'pass'
    assert comparison['verdict'] == 'fail'
    assert 'plot' not in results  # neither E(V) points nor phonons on both sides
    loose = compare_crystal(
        orm.Dict(ours), orm.Dict(GOLD), orm.Dict({'tolerances': {'vacancy_energy_absolute': 0.3}})
    )
    assert loose['comparison']['vacancy_energy']['verdict'] == 'pass'
    _, bad = compare_crystal.run_get_node(orm.Dict(ours), orm.Dict(GOLD), orm.Dict({'tolerance': {}}))
    assert bad.exit_status == 201 and '`tolerance`' in bad.exit_message
    _, empty = compare_crystal.run_get_node(orm.Dict(ours), orm.Dict({'melting_point': 1337.0}))
    assert empty.exit_status == 301 and 'no property' in empty.exit_message


def test_work_chain_needs_a_part_and_one_crystal_reference(
    aiida_profile,
    code_python,
    code_lmp,
    gap_potential,  # noqa: F811
):
    crystal = orm.StructureData(ase=bulk('Au', 'fcc', a=4.08, cubic=True))
    with pytest.raises(ValueError, match='give `state_points`'):
        ValidationWorkChain.get_builder_from_protocol({'python': code_python}, None, potential=gap_potential)
    with pytest.raises(ValueError, match='`teacher` or `crystal_reference`'):
        ValidationWorkChain.get_builder_from_protocol(
            {'python': code_python}, None, potential=gap_potential, crystal=crystal
        )
    builder = ValidationWorkChain.get_builder_from_protocol(
        {'python': code_python, 'lammps': code_lmp}, None, 'fast', potential=gap_potential, crystal=crystal,
        crystal_reference=GOLD,
    )  # fmt: skip
    assert builder.crystal.parameters.get_dict()['surface_layers'] == 4
    assert builder.crystal_reference.properties.get_dict() == GOLD
    assert 'code' not in builder.ml_md.md and 'state_points' not in builder
    inputs = {'crystal': {'structure': crystal}, 'crystal_reference': {}}
    assert 'exactly one of `crystal_reference.properties`' in validate_inputs(inputs, None)
    assert 'give `state_points`' in validate_inputs({}, None)
    inputs['crystal_reference'] = {'classical': orm.Dict({'pair_style': 'eam'})}
    assert 'needs `crystal_reference.lammps_code`' in validate_inputs(inputs, None)
