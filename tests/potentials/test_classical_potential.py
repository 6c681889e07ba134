"""Tests of the classical-potential dictionary: validation and translation into LAMMPS commands."""

from __future__ import annotations

import pytest
from ase.build import bulk

from aiida_mlpot.potentials.classical import (
    mass_lines,
    pair_coeff_lines,
    potential_lines,
    species_order,
    validate_potential,
)
from aiida_mlpot.potentials.lammps_input import (
    MD_PARAMETER_KEYS,
    md_script,
    setup_lines,
    validate_md_parameters,
    write_data_file,
)
from aiida_mlpot.presets import argon_lj, nacl_tosi_fumi


def test_species_order_is_alphabetical():
    assert species_order(['Na', 'Cl', 'Na']) == ['Cl', 'Na']


def test_pair_coeff_translation_nacl():
    lines = pair_coeff_lines(nacl_tosi_fumi(), ['Cl', 'Na'])
    # Cl = type 1, Na = type 2; I <= J is enforced (Na Cl -> 1 2)
    assert lines == [
        'pair_coeff 2 2 424.097 0.317 0.0 1.05 -0.499',
        'pair_coeff 1 2 1256.31 0.317 0.0 7.0 -8.676',
        'pair_coeff 1 1 3488.998 0.317 0.0 72.5 -145.427',
    ]


def test_pair_coeff_absent_species_are_dropped():
    assert pair_coeff_lines(nacl_tosi_fumi(), ['Na']) == ['pair_coeff 1 1 424.097 0.317 0.0 1.05 -0.499']


@pytest.mark.parametrize(
    ('line', 'species', 'expected'),
    [
        ('* * Si.sw Si', ['C', 'Si'], 'pair_coeff * * Si.sw C Si'),
        ('* * eam/alloy NaCl.eam.alloy Na Cl', ['Cl', 'Na'], 'pair_coeff * * eam/alloy NaCl.eam.alloy Cl Na'),
        ('* * 0.0103 3.405', ['Ar'], 'pair_coeff * * 0.0103 3.405'),
        ('Na * 1.0 2.0', ['Cl', 'Na'], 'pair_coeff 2 * 1.0 2.0'),
    ],
)
def test_many_body_and_wildcards(line, species, expected):
    assert pair_coeff_lines({'pair_style': 'x', 'pair_coeff': [line]}, species) == [expected]


def test_potential_lines_order():
    lines = potential_lines(nacl_tosi_fumi('pppm'), ['Cl', 'Na'])
    assert lines[0] == 'pair_style born/coul/long 9.0'
    assert lines[-1] == 'kspace_style pppm 1e-06'
    assert potential_lines(argon_lj(), ['Ar'])[-1] == 'pair_modify shift yes'


def test_masses():
    assert mass_lines(nacl_tosi_fumi(), ['Cl', 'Na']) == ['mass 1 35.45', 'mass 2 22.98976928']
    assert mass_lines({'masses': {'Na': 23.0}}, ['Na']) == ['mass 1 23']


@pytest.mark.parametrize(
    ('potential', 'species', 'match'),
    [
        ({'pair_coeff': ['Na Na 1 1']}, None, 'pair_style'),
        ({'pair_style': 'lj/cut 5', 'pair_coeff': ['1 1 1 1']}, None, 'neither an element symbol'),
        ({'pair_style': 'lj/cut 5', 'pair_coeff': []}, None, 'needs `pair_coeff`'),
        ({'pair_style': 'lj/cut 5', 'pair_coeff': ['Ar Ar 1 1'], 'units': 'real'}, None, 'metal'),
        ({'pair_style': 'lj/cut 5', 'pair_coeff': ['Ar Ar 1 1'], 'kspace_style': 'ewald 1e-6'}, None, 'long'),
        ({'pair_style': 'lj/cut 5', 'pair_coeff': ['Ar Ar 1 1'], 'colour': 1}, None, 'unknown keys'),
        ({'pair_style': 'lj/cut 5', 'pair_coeff': ['Ar Ar 1 1']}, ['Ar', 'Kr'], 'Ar-Kr'),
        ({'pair_style': 'coul/wolf 0.2 9', 'pair_coeff': ['* *']}, ['Na'], 'charges` are missing'),
    ],
)
def test_validate_potential_errors(potential, species, match):
    message = validate_potential(potential, species)
    assert message is not None and match in message


def test_validate_presets():
    for long_range in ('ewald', 'pppm', 'wolf'):
        assert validate_potential(nacl_tosi_fumi(long_range), ['Na', 'Cl']) is None
    assert validate_potential(argon_lj(), ['Ar']) is None
    assert 'Cl-Cl' in validate_potential(argon_lj() | {'pair_coeff': ['* Ar 1 1']}, ['Ar', 'Cl'])


def test_data_file_rotated_cell():
    """A general cell is written in LAMMPS' lower-triangular form; an orthogonal one without tilts."""
    atoms = bulk('NaCl', 'rocksalt', a=5.6)  # primitive fcc cell, not lower triangular
    text, prism = write_data_file(atoms, ['Cl', 'Na'], nacl_tosi_fumi())
    assert 'xy xz yz' in text and 'Atoms # charge' in text
    assert '1 2 1 0 0 0' in text  # Na: type 2, charge +1 at the origin
    lx, ly, lz, *_ = prism.get_lammps_prism()
    assert lx * ly * lz == pytest.approx(atoms.get_volume())
    cubic, _ = write_data_file(bulk('NaCl', 'rocksalt', a=5.6, cubic=True), ['Cl', 'Na'], nacl_tosi_fumi())
    assert 'xy xz yz' not in cubic


def _md(**changes):
    parameters = {
        'ensemble': 'nvt',
        'temperature_K': 1400.0,
        'timestep_fs': 2.0,
        'equilibration_steps': 10,
        'production_steps': 100,
        'dump_interval': 10,
        'seed': 1,
    }
    parameters.update(changes)
    return parameters


@pytest.mark.parametrize(
    ('changes', 'match'),
    [
        ({'temperature_K': 0}, 'temperature_K must be positive'),
        ({'timestep_fs': -1}, 'timestep_fs must be positive'),
        ({'dump_interval': 101}, 'dump_interval'),
        ({'ensemble': 'nve'}, 'ensemble'),
        ({'ensemble': 'npt'}, 'needs `pressure_bar`'),
        ({'ensemble': 'npt', 'pressure_bar': 'high'}, 'pressure_bar must be a number'),
        ({'pressure_bar': 1.0}, '`pressure_bar` applies to NPT runs only'),
        ({'seed': 0}, 'seed'),
        ({'volume_scale': 0}, 'volume_scale'),
        ({'taut_fs': 0}, 'taut_fs must be positive'),
        ({'colour': 1}, 'unknown MD parameter `colour`'),
        ({'temperature': 1400.0}, 'unknown MD parameter `temperature`'),  # the old name is refused
    ],
)
def test_validate_md_parameters(changes, match):
    assert match in validate_md_parameters(_md(**changes))


def test_md_parameter_vocabulary_is_that_of_ml_md():
    """The MD parameters shared with ML MD have the ML-MD names (engines.parameters.DEFAULTS['md'])."""
    from aiida_mlpot.engines.parameters import DEFAULTS

    shared = set(MD_PARAMETER_KEYS) & set(DEFAULTS['md'])
    assert shared == {
        'ensemble',
        'temperature_K',
        'pressure_bar',
        'timestep_fs',
        'taut_fs',
        'taup_fs',
        'seed',
    } | {'dump_interval'}
    sampling_only = set(MD_PARAMETER_KEYS) - set(DEFAULTS['md'])
    assert sampling_only == {'equilibration_steps', 'production_steps', 'volume_scale', 'pressure_coupling'}


def test_md_script_contents():
    assert validate_md_parameters(_md()) is None
    script = md_script(nacl_tosi_fumi(), ['Cl', 'Na'], [True] * 3, _md(volume_scale=0.9), 'd', 'dump', 'th')
    assert 'fix mlpot_integrate all nvt temp 1400.0 1400.0 0.2' in script  # taut_fs: 100 timesteps
    assert 'change_box all x scale 0.965' in script
    assert 'timestep 0.002' in script
    assert 'velocity all create 1400.0 1 ' in script
    assert script.index('run 10') < script.index('dump mlpot_dump') < script.index('run 100')
    npt = md_script(
        nacl_tosi_fumi(), ['Cl', 'Na'], [True] * 3, _md(ensemble='npt', pressure_bar=1.0), 'd', 'x', 'y'
    )
    assert 'iso 1.0 1.0 2' in npt  # taup_fs: 1000 timesteps
    damped = md_script(
        nacl_tosi_fumi(),
        ['Cl', 'Na'],
        [True] * 3,
        _md(ensemble='npt', pressure_bar=500.0, taut_fs=50.0, taup_fs=400.0, pressure_coupling='aniso'),
        'd',
        'x',
        'y',
    )
    assert 'fix mlpot_integrate all npt temp 1400.0 1400.0 0.05 aniso 500.0 500.0 0.4' in damped


def test_setup_lines():
    """The public set-up block: units, data file, masses, potential, the two computes the readers rely on."""
    lines = setup_lines(nacl_tosi_fumi(), ['Cl', 'Na'], (True, True, False), 'x.data')
    assert lines[:5] == [
        'units metal',
        'atom_style charge',
        'atom_modify map yes',
        'boundary p p s',
        'read_data x.data',
    ]
    assert 'pair_style born/coul/long 9.0' in lines and 'kspace_style ewald 1e-06' in lines
    assert lines[-2:] == ['compute mlpot_pe_atom all pe/atom', 'compute mlpot_pvir all pressure NULL virial']


def test_rocksalt_reference_helper():
    """The independent reference of tests/potentials/nacl_reference.py: the Ewald sum gives the rock-salt
    Madelung constant, and the model's 0 K crystal has its minimum near a = 5.621 Å at about -8.06 eV per pair."""
    from ase.build import bulk
    from scipy.optimize import minimize_scalar

    from tests.potentials.nacl_reference import COULOMB_CONSTANT, ewald_energy, rocksalt_energy_per_pair

    a = 5.621
    madelung = -ewald_energy(bulk('NaCl', 'rocksalt', a=a, cubic=True)) / 4 / (COULOMB_CONSTANT / (a / 2))
    assert madelung == pytest.approx(1.747564594633, rel=1e-10)  # the rock-salt Madelung constant
    minimum = minimize_scalar(
        rocksalt_energy_per_pair, bounds=(5.3, 6.0), method='bounded', options={'xatol': 1e-5}
    )
    assert minimum.x == pytest.approx(5.621, abs=1e-3)
    assert minimum.fun == pytest.approx(-8.06, abs=0.01)
