"""Tests of the CP2K input builder and protocols (pure, no CP2K run)."""

import pathlib

import pytest

from aiida_mlpot.workflows import cp2k_inputs

DATA_DIR = pathlib.Path(cp2k_inputs.DEFAULT_DATA_DIR)
needs_data = pytest.mark.skipif(
    not (DATA_DIR / 'BASIS_MOLOPT').is_file(), reason='cp2k-data is not installed'
)


def test_protocols():
    assert cp2k_inputs.get_protocol_names() == ['pbe', 'stringent', 'xtb']
    assert cp2k_inputs.load_protocol()['name'] == 'xtb'
    stringent = cp2k_inputs.load_protocol('stringent')
    assert stringent['qs_method'] == 'GAPW'
    assert stringent['cutoff'] == 400
    assert stringent['scf']['ot'] is True  # inherited from pbe
    assert stringent['scf']['eps_scf'] == 1.0e-7
    with pytest.raises(ValueError, match='unknown CP2K protocol'):
        cp2k_inputs.load_protocol('nope')
    merged = cp2k_inputs.load_protocol('xtb', {'scf': {'max_scf': 2}})
    assert merged['scf']['max_scf'] == 2
    assert merged['scf']['eps_scf'] == 1.0e-7
    robust = cp2k_inputs.robust_settings(merged)
    assert robust['scf']['max_scf'] == 400
    assert robust['scf']['mixing_alpha'] < merged['scf']['mixing_alpha']


def test_xtb_parameters_have_periodic_ewald():
    parameters = cp2k_inputs.build_cp2k_parameters(cp2k_inputs.load_protocol('xtb'), ['Na', 'Cl'])
    dft = parameters['FORCE_EVAL']['DFT']
    assert dft['QS']['METHOD'] == 'xTB'
    assert dft['QS']['XTB']['DO_EWALD'] is True
    assert dft['POISSON']['EWALD'] == {'EWALD_TYPE': 'SPME', 'ALPHA': 0.35, 'GMAX': 40}
    assert parameters['FORCE_EVAL']['STRESS_TENSOR'] == 'ANALYTICAL'
    assert parameters['FORCE_EVAL']['PRINT']['FORCES']['FILENAME'] == 'forces'
    assert parameters['GLOBAL']['RUN_TYPE'] == 'ENERGY_FORCE'


@needs_data
def test_pbe_parameters_and_data_files():
    settings = cp2k_inputs.load_protocol('pbe')
    parameters = cp2k_inputs.build_cp2k_parameters(settings, ['Na', 'Cl'])
    dft = parameters['FORCE_EVAL']['DFT']
    assert dft['QS']['METHOD'] == 'GAPW'
    assert dft['MGRID']['CUTOFF'] == 300
    assert dft['XC']['VDW_POTENTIAL']['PAIR_POTENTIAL']['TYPE'] == 'DFTD3(BJ)'
    kinds = {kind['_']: kind for kind in parameters['FORCE_EVAL']['SUBSYS']['KIND']}
    assert kinds['Na']['BASIS_SET'] == 'DZVP-MOLOPT-SR-GTH'
    files = cp2k_inputs.extract_data_files(settings, ['Na', 'Cl'])
    assert 'Na DZVP-MOLOPT-SR-GTH' in files['BASIS_MLPOT']
    assert 'Na GTH-PBE-q9' in files['POTENTIAL_MLPOT']
    assert 'Cl GTH-PBE-q7' in files['POTENTIAL_MLPOT']
    assert len(files['BASIS_MLPOT']) < 5000


@needs_data
def test_missing_elements_are_reported():
    settings = cp2k_inputs.load_protocol('pbe')
    assert cp2k_inputs.check_elements(settings, ['Na', 'Cl']) is None
    message = cp2k_inputs.check_elements(settings, ['Na', 'Pu'])
    assert 'Pu: no basis' in message and 'Pu: no pseudo' in message
    assert 'unknown chemical symbols' in cp2k_inputs.check_elements(settings, ['Xx'])
    assert cp2k_inputs.check_elements(cp2k_inputs.load_protocol('xtb'), ['Na', 'Cl']) is None
    assert 'GFN1-xTB' in cp2k_inputs.check_elements(cp2k_inputs.load_protocol('xtb'), ['Na', 'Pu'])
    bad = cp2k_inputs.load_protocol('pbe', {'data_dir': '/nonexistent'})
    assert 'does not exist' in cp2k_inputs.check_elements(bad, ['Na'])
