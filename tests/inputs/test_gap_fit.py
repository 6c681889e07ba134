"""The gap_fit parameter dictionary: validation, command line, memory estimate (pure)."""

from __future__ import annotations

import copy

import pytest

from aiida_mlpot.inputs.gap_fit import (
    DatasetStats,
    build_command_line,
    coulomb_baseline_xml,
    estimate_memory,
    plan_memory,
    reduce_sparse_points,
    soap_dimension,
    validate_parameters,
)

VALID = {
    'descriptors': [
        {'type': 'distance_2b', 'cutoff': 5.0, 'n_sparse': 20, 'delta': 1.0, 'cutoff_transition_width': 1.0},
        {
            'type': 'soap',
            'n_max': 6,
            'l_max': 4,
            'atom_sigma': 0.5,
            'cutoff': 5.0,
            'cutoff_transition_width': 1.0,
            'zeta': 4,
            'delta': 0.2,
            'n_sparse': 100,
        },
    ],
    'default_sigma': {'energy': 0.002, 'force': 0.05, 'virial': 0.05, 'hessian': 0.0},
    'config_type_sigma': {'T1100': {'energy': 0.003, 'force': 0.06, 'virial': 0.06}},
    'e0_method': 'average',
    'sparse_jitter': 1e-8,
    'seed': 1,
}

#: The training set of the recorded run tests/parsers/gap_fit/fixtures/nacl_42.log: 42 x 64-atom NaCl in a
#: 13 Å box, energies, forces and virials.
NACL_42 = DatasetStats(
    n_configs=42,
    atoms_per_species={'Na': 1344, 'Cl': 1344},
    number_density=64 / 13.0**3,
    n_energies=42,
    n_force_components=8064,
    n_virial_components=252,
)


def with_change(path: tuple, value):
    parameters = copy.deepcopy(VALID)
    target = parameters
    for key in path[:-1]:
        target = target[key]
    if value is KeyError:
        del target[path[-1]]
    else:
        target[path[-1]] = value
    return parameters


def test_valid_parameters():
    assert validate_parameters(VALID) is None


@pytest.mark.parametrize(
    ('path', 'value', 'named'),
    [
        (('n_sparce',), 10, '`n_sparce`'),
        (('descriptors', 1, 'n_maxx'), 6, '`descriptors[1].n_maxx`'),
        (('descriptors', 1, 'n_max'), 6.5, '`descriptors[1].n_max`'),
        (('descriptors', 1, 'n_max'), KeyError, '`descriptors[1].n_max`'),
        (('descriptors', 0, 'cutoff'), -1.0, '`descriptors[0].cutoff`'),
        (('descriptors', 0, 'n_sparse'), 0, '`descriptors[0].n_sparse`'),
        (('descriptors', 0, 'type'), 'soup', '`descriptors[0].type`'),
        (('descriptors', 1, 'sparse_method'), 'best', '`descriptors[1].sparse_method`'),
        (('descriptors', 1, 'cutoff_transition_width'), 5.0, '`descriptors[1].cutoff_transition_width`'),
        (('default_sigma', 'force'), 0.0, '`default_sigma.force`'),
        (('default_sigma', 'forces'), 0.1, '`default_sigma.forces`'),
        (('default_sigma', 'energy'), 'small', '`default_sigma.energy`'),
        (('config_type_sigma', 'T1100', 'energy'), -0.1, '`config_type_sigma.T1100.energy`'),
        (('e0_method',), 'median', '`e0_method`'),
        (('e0',), -1.0, '`e0`'),
        (('seed',), 1.5, '`seed`'),
        (('sparse_jitter',), -1e-8, '`sparse_jitter`'),
        (('descriptors',), [], '`descriptors`'),
    ],
)
def test_invalid_parameters_name_the_key(path, value, named):
    message = validate_parameters(with_change(path, value))
    assert message is not None
    assert named in message


def test_command_line_uses_energy_forces_virial():
    args = build_command_line(VALID)
    assert 'at_file=dataset.xyz' in args
    assert 'energy_parameter_name=energy' in args
    assert 'force_parameter_name=forces' in args
    assert 'virial_parameter_name=virial' in args
    assert 'default_sigma={0.002 0.05 0.05 0.0}' in args
    assert 'config_type_sigma={T1100:0.003:0.06:0.06:0.0}' in args
    assert 'e0_method=average' in args
    assert 'rnd_seed=1' in args
    gap = next(a for a in args if a.startswith('gap='))
    assert gap.startswith('gap={distance_2b cutoff=5.0 ') and gap.endswith('}')
    assert ' : soap cutoff=5.0 ' in gap
    assert (
        'n_max=6 l_max=4' in gap
        and 'sparse_method=cur_points' in gap
        and 'covariance_type=dot_product' in gap
    )


def test_command_line_e0_and_baseline():
    parameters = with_change(('e0_method',), KeyError)
    parameters['e0'] = {'Na': -1.5, 'Cl': -0.5}
    parameters['baseline'] = {'type': 'coulomb', 'charges': {'Na': 1.0, 'Cl': -1.0}, 'cutoff': 6.0}
    assert validate_parameters(parameters) is None
    args = build_command_line(parameters)
    assert 'e0={Na:-1.5:Cl:-0.5}' in args
    assert 'core_ip_args={IP Coulomb}' in args and 'core_param_file=baseline.xml' in args
    xml = coulomb_baseline_xml(parameters['baseline'])
    assert 'atomic_num="11" charge="1.0"' in xml and 'atomic_num="17" charge="-1.0"' in xml


def test_soap_dimension_matches_gap_fit():
    # gap_fit reports `x 391` for n_max=6, l_max=4 with two species (nacl_42.log)
    assert soap_dimension(6, 4, 2) == 391


def test_memory_estimate_reproduces_gap_fit_report():
    """gap_fit reported for this run: descriptors 1213 MB, covariances 71 MB (260 sparse x 8358 targets)."""
    estimate = estimate_memory(VALID, NACL_42)
    assert estimate['n_sparse_total'] == 3 * 20 + 2 * 100
    assert estimate['n_targets'] == 8358
    assert estimate['descriptors_mb'] == pytest.approx(1213, rel=0.1)
    assert estimate['covariance_mb'] == pytest.approx(71, rel=0.2)
    # measured maximum resident set of that run: 1283 MB; the estimate must not be below it
    assert 1283 <= estimate['total_mb'] < 1.3 * 1283


def test_reduce_sparse_points_and_plan():
    reduced = reduce_sparse_points(VALID, 0.5)
    assert [d['n_sparse'] for d in reduced['descriptors']] == [10, 50]
    assert [d['n_sparse'] for d in VALID['descriptors']] == [20, 100]  # the input is not modified
    assert reduce_sparse_points({'descriptors': [{'n_sparse': 10}, {'n_sparse': 8}]}, 0.5) is None
    many = copy.deepcopy(VALID)
    many['descriptors'][1]['n_sparse'] = 1344
    total = estimate_memory(many, NACL_42)['total_mb']
    planned, note = plan_memory(many, NACL_42, limit_mb=total - 300)
    assert planned['descriptors'][1]['n_sparse'] < 1344 and 'n_sparse reduced' in note
    assert estimate_memory(planned, NACL_42)['total_mb'] <= total - 300
    with pytest.raises(ValueError, match='descriptor arrays'):
        plan_memory(many, NACL_42, limit_mb=500)
