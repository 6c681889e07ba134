"""GapFitCalculation: inputs refused before submission, and the job files it writes."""

from __future__ import annotations

import numpy as np
import pytest
from ase.build import bulk

VALID = {
    'descriptors': [
        {'type': 'distance_2b', 'cutoff': 4.0, 'n_sparse': 10, 'delta': 1.0},
        {
            'type': 'soap',
            'n_max': 2,
            'l_max': 1,
            'atom_sigma': 0.5,
            'cutoff': 4.0,
            'cutoff_transition_width': 1.0,
            'delta': 0.2,
            'n_sparse': 8,
        },
    ],
    'default_sigma': {'energy': 0.002, 'force': 0.05, 'virial': 0.05, 'hessian': 0.0},
    'e0_method': 'average',
    'seed': 1,
}


@pytest.fixture
def small_dataset(aiida_profile):
    from aiida_mlpot.data.dataset import DatasetData

    frames = []
    rng = np.random.default_rng(3)
    for index in range(3):
        atoms = bulk('NaCl', 'rocksalt', a=5.64, cubic=True)
        atoms.positions += rng.normal(0, 0.05, atoms.positions.shape)
        atoms.info.update({'energy': -25.0 - 0.1 * index, 'virial': np.eye(3), 'config_type': 'rattled'})
        atoms.arrays['forces'] = rng.normal(0, 0.1, (len(atoms), 3))
        frames.append(atoms)
    return DatasetData.from_ase(frames).store()


def make_builder(code, dataset, parameters, **options):
    from aiida import orm

    from aiida_mlpot.calculations.gap_fit import GapFitCalculation

    builder = GapFitCalculation.get_builder()
    builder.code = code
    builder.dataset = dataset
    builder.parameters = orm.Dict(parameters)
    for key, value in options.items():
        builder.metadata.options[key] = value
    return builder


@pytest.mark.parametrize(
    ('change', 'named'),
    [
        ({'n_sparce': 4}, '`n_sparce`'),
        ({'config_type_sigma': {'T9999': {'energy': 0.01, 'force': 0.1}}}, '`config_type_sigma.T9999`'),
        ({'e0_method': None, 'e0': {'Na': -1.0}}, '`e0.Cl`'),
        ({'baseline': {'type': 'coulomb', 'charges': {'Na': 1.0}}}, '`baseline.charges.Cl`'),
    ],
)
def test_invalid_parameters_refused_before_submission(code_gap_fit, small_dataset, change, named):
    from aiida.engine import run_get_node

    parameters = {**VALID, **change}
    parameters = {key: value for key, value in parameters.items() if value is not None}
    with pytest.raises(ValueError, match=named.replace('.', r'\.').replace('[', r'\[')):
        run_get_node(make_builder(code_gap_fit, small_dataset, parameters))


def test_memory_above_declared_is_refused(code_gap_fit, small_dataset):
    from aiida.engine import run_get_node

    with pytest.raises(ValueError, match='exceeds the declared 10 MB'):
        run_get_node(make_builder(code_gap_fit, small_dataset, VALID, max_memory_kb=10 * 1024))


def test_prepare_for_submission(code_gap_fit, small_dataset, tmp_path):
    """Dry run: the command line asks for energies, forces and virials; the memory limit becomes `ulimit -d`."""
    from aiida import orm
    from aiida.engine import run_get_node

    parameters = {**VALID, 'baseline': {'type': 'coulomb', 'charges': {'Na': 1.0, 'Cl': -1.0}}}
    builder = make_builder(code_gap_fit, small_dataset, parameters)
    builder.memory_limit_mb = orm.Int(500)
    builder.metadata.dry_run = True
    builder.metadata.store_provenance = False
    _, node = run_get_node(builder)
    folder = node.dry_run_info['folder']
    script = open(f'{folder}/_aiidasubmit.sh').read()
    assert 'ulimit -d 512000' in script
    assert (
        "'energy_parameter_name=energy' 'force_parameter_name=forces' 'virial_parameter_name=virial'"
        in script
    )
    assert "'at_file=dataset.xyz'" in script and "'gap={distance_2b " in script
    assert 'echo $? > gap_fit.exit_status' in script
    assert 'Coulomb_params' in open(f'{folder}/baseline.xml').read()
