"""Tests of the pure CP2K input builder (aiida_mlpot.inputs.cp2k): settings checks, data files, parameters."""

import copy
import pathlib

import pytest

from aiida_mlpot.inputs import cp2k as cp2k_inputs

DATA_DIR = pathlib.Path(cp2k_inputs.DEFAULT_DATA_DIR)
needs_data = pytest.mark.skipif(
    not (DATA_DIR / 'BASIS_MOLOPT').is_file(), reason='cp2k-data is not installed'
)

XTB = {
    'method': 'xtb',
    'xtb': {'ewald_alpha': 0.35, 'ewald_gmax': 40},
    'scf': {'eps_scf': 1.0e-7, 'max_scf': 100, 'mixing_alpha': 0.4, 'mixing_nbuffer': 8},
    'robust': {'scf': {'max_scf': 400, 'mixing_alpha': 0.2}},
    'robust_retry': True,
    'wavefunction_restarts': 0,
}
PBE = {
    'method': 'dft',
    'xc': 'PBE',
    'dispersion': 'DFTD3(BJ)',
    'qs_method': 'GAPW',
    'cutoff': 300,
    'rel_cutoff': 50,
    'basis_file': 'BASIS_MOLOPT',
    'potential_file': 'GTH_POTENTIALS',
    'basis': {'default': 'DZVP-MOLOPT-SR-GTH'},
    'pseudo': {'default': 'GTH-PBE'},
    'scf': {'eps_scf': 1.0e-6, 'max_scf': 50, 'ot': True},
}


def _with(settings: dict, path: str, value) -> dict:
    result = copy.deepcopy(settings)
    *parents, last = path.split('.')
    target = result
    for name in parents:
        target = target[name]
    target[last] = value
    return result


def test_valid_settings():
    assert cp2k_inputs.validate_settings(XTB) is None
    assert cp2k_inputs.validate_settings(PBE) is None
    assert cp2k_inputs.validate_settings(_with(PBE, 'dispersion', None)) is None


@pytest.mark.parametrize(
    ('settings', 'message'),
    [
        (_with(XTB, 'cutof', 300), 'unknown key `cutof`'),
        (_with(XTB, 'scf.max_sfc', 3), 'unknown key `scf.max_sfc`'),
        (_with(XTB, 'robust.scf.mixing_alfa', 0.1), 'unknown key `robust.scf.mixing_alfa`'),
        (_with(XTB, 'robust.method', 'dft'), 'cannot change the `method`'),
        (_with(XTB, 'scf.max_scf', 'many'), "`scf.max_scf` must be an integer, got 'many'"),
        (_with(XTB, 'robust_retry', 1), '`robust_retry` must be true or false, got 1'),
        (_with(XTB, 'scf.max_scf', True), '`scf.max_scf` must be an integer, got True'),
        (_with(XTB, 'method', 'hf'), '`method` must be one of'),
        (_with(XTB, 'wavefunction_restarts', -1), 'at least 0'),
        (_with(PBE, 'basis', {'Na': 3}), '`basis` must map elements'),
        ({k: v for k, v in PBE.items() if k != 'cutoff'}, 'lack `cutoff`'),
        (_with(XTB, 'scf', {'max_scf': 3}), 'lack `scf.eps_scf`'),
        ([1, 2], 'must be a dictionary'),
    ],
)
def test_invalid_settings_name_the_problem(settings, message):
    assert message in cp2k_inputs.validate_settings(settings)


def test_check_elements_reads_no_file():
    """Element checks from the settings alone: a data_dir that does not exist does not matter here."""
    pbe = _with(PBE, 'data_dir', '/nonexistent')
    assert cp2k_inputs.check_elements(pbe, ['Na', 'Cl']) is None
    explicit = _with(pbe, 'basis', {'Na': 'DZVP-MOLOPT-SR-GTH'})
    assert cp2k_inputs.check_elements(explicit, ['Na', 'Cl']) == 'Cl: no basis named in the settings'
    assert 'unknown chemical symbols' in cp2k_inputs.check_elements(XTB, ['Xx'])
    assert cp2k_inputs.check_elements(XTB, ['Na', 'Rn']) is None  # Z = 86, the last with GFN1 parameters
    assert 'GFN1-xTB has no parameters' in cp2k_inputs.check_elements(XTB, ['Na', 'Fr'])


def test_xtb_parameters_have_periodic_ewald():
    parameters = cp2k_inputs.build_cp2k_parameters(XTB, ['Na', 'Cl'])
    dft = parameters['FORCE_EVAL']['DFT']
    assert dft['QS']['METHOD'] == 'xTB'
    assert dft['QS']['XTB']['DO_EWALD'] is True
    assert dft['POISSON']['EWALD'] == {'EWALD_TYPE': 'SPME', 'ALPHA': 0.35, 'GMAX': 40}
    assert dft['SCF']['MIXING'] == {'METHOD': 'BROYDEN_MIXING', 'ALPHA': 0.4, 'NBUFFER': 8}
    assert parameters['FORCE_EVAL']['STRESS_TENSOR'] == 'ANALYTICAL'
    assert parameters['FORCE_EVAL']['PRINT']['FORCES']['FILENAME'] == 'forces'
    assert parameters['GLOBAL']['RUN_TYPE'] == 'ENERGY_FORCE'


def test_pbe_parameters():
    parameters = cp2k_inputs.build_cp2k_parameters(PBE, ['Na', 'Cl'])
    dft = parameters['FORCE_EVAL']['DFT']
    assert dft['QS']['METHOD'] == 'GAPW'
    assert dft['MGRID']['CUTOFF'] == 300
    assert dft['BASIS_SET_FILE_NAME'] == cp2k_inputs.BASIS_FILE
    assert dft['XC']['VDW_POTENTIAL']['PAIR_POTENTIAL']['TYPE'] == 'DFTD3(BJ)'
    assert dft['SCF']['OT']['MINIMIZER'] == 'DIIS'
    kinds = {kind['_']: kind for kind in parameters['FORCE_EVAL']['SUBSYS']['KIND']}
    assert kinds['Na']['BASIS_SET'] == 'DZVP-MOLOPT-SR-GTH'
    assert kinds['Cl']['POTENTIAL'] == 'GTH-PBE'
    no_d3 = cp2k_inputs.build_cp2k_parameters(_with(PBE, 'dispersion', None), ['Na'])
    assert 'VDW_POTENTIAL' not in no_d3['FORCE_EVAL']['DFT']['XC']


@needs_data
def test_data_files():
    assert cp2k_inputs.check_data_files(PBE, ['Na', 'Cl']) is None
    files = cp2k_inputs.extract_data_files(PBE, ['Na', 'Cl'])
    assert 'Na DZVP-MOLOPT-SR-GTH' in files['BASIS_MLPOT']
    assert 'Na GTH-PBE-q9' in files['POTENTIAL_MLPOT']
    assert 'Cl GTH-PBE-q7' in files['POTENTIAL_MLPOT']
    assert len(files['BASIS_MLPOT']) < 5000


@needs_data
def test_missing_data_are_reported():
    message = cp2k_inputs.check_data_files(PBE, ['Na', 'Pu'])
    assert 'Pu: no basis' in message and 'Pu: no pseudo' in message
    assert 'Na:' not in message
    assert 'does not exist' in cp2k_inputs.check_data_files(_with(PBE, 'data_dir', '/nonexistent'), ['Na'])
    assert cp2k_inputs.check_data_files(XTB, ['Na', 'Cl']) is None  # xTB needs no data file
