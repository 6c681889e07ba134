"""Bad inputs of the stage work chains (Sampling, Labelling, GapFit, MlMd): refused before any job is submitted.

Each row is launched with ``run_get_node`` and the real codes of the test fixtures. Most are refused by the
process spec at launch (``refused``: a ``ValueError`` naming the bad value, no node created); what only a step
can find (a CP2K data file without the basis of an element, a fit that cannot fit in the declared memory) ends
with a dedicated 2xx exit code and no CalcJob (``exits``).
"""

from __future__ import annotations

import copy
import math

import pytest
from aiida import orm
from ase.build import bulk

from tests.bad_input.conftest import (
    charged,
    exits,
    labelled,
    molecule_box,
    nacl,
    overlapping,
    refused,
    with_potassium,
)

OPTIONS = {'resources': {'num_machines': 1, 'num_mpiprocs_per_machine': 1}, 'max_wallclock_seconds': 600}
SHARED = {
    'timestep_fs': 2.0,
    'equilibration_steps': 10,
    'production_steps': 20,
    'dump_interval': 10,
    'seed': 1,
}
NVT_POINT = {'temperature_K': 1400.0, 'volume_scale': 1.0}
NPT_POINT = {'temperature_K': 1400.0, 'pressure_bar': 1.0}
SILICON_SW = {'pair_style': 'sw', 'pair_coeff': ['* * Si.sw Si'], 'files': ['Si.sw']}
FIT = {
    'descriptors': [
        {'type': 'distance_2b', 'cutoff': 5.0, 'n_sparse': 10, 'delta': 1.0, 'covariance_type': 'ard_se'},
        {
            'type': 'soap',
            'n_max': 2,
            'l_max': 1,
            'atom_sigma': 0.5,
            'cutoff': 4.0,
            'n_sparse': 20,
            'delta': 0.2,
        },
    ],
    'default_sigma': {'energy': 0.002, 'force': 0.05, 'virial': 0.05, 'hessian': 0.0},
    'e0_method': 'average',
}
ML = {
    'md': {'temperature_K': 1400.0, 'n_steps': 20, 'dump_interval': 10},
    'extrapolation': {'threshold': 0.1},
}


def _with(base: dict, path: str, value) -> dict:
    """Return a deep copy of ``base`` with the dotted ``path`` set to ``value``."""
    result = copy.deepcopy(base)
    *parents, last = path.split('.')
    target = result
    for key in parents:
        target = target[key]
    target[last] = value
    return result


def _silicon():
    return bulk('Si', 'diamond', a=5.43, cubic=True)


# --- SamplingWorkChain --------------------------------------------------------------------------------------
def sampling(m, points=None, shared=None, atoms=None, potential=None, **extra) -> dict:
    return {
        'md': {'code': m.lmp, 'metadata': {'options': OPTIONS}},
        'structure': m.structure(atoms),
        'potential': orm.Dict(potential if potential is not None else m.potential),
        'state_points': orm.List(points if points is not None else [NVT_POINT]),
        'md_parameters': orm.Dict(shared if shared is not None else SHARED),
        **extra,
    }


SAMPLING_CASES = [
    (
        'unknown state point key',
        lambda m: sampling(m, [{'temperature': 1400.0, 'volume_scale': 1.0}]),
        '`temperature`',
    ),
    (
        'unknown md_parameters key',
        lambda m: sampling(m, shared={**SHARED, 'temperature_K': 300.0}),
        '`temperature_K`',
    ),
    ('state point that is not a dictionary', lambda m: sampling(m, [1400.0]), '1400'),
    ('empty state points', lambda m: sampling(m, []), '`state_points` is empty'),
    ('state point given twice', lambda m: sampling(m, [NVT_POINT, NVT_POINT]), 'T1400_V1.*more than once'),
    ('zero temperature', lambda m: sampling(m, [_with(NVT_POINT, 'temperature_K', 0.0)]), 'temperature_K.*0'),
    (
        'negative temperature',
        lambda m: sampling(m, [_with(NVT_POINT, 'temperature_K', -10.0)]),
        'temperature_K.*-10',
    ),
    (
        'NaN temperature',
        lambda m: sampling(m, [_with(NVT_POINT, 'temperature_K', math.nan)]),
        'temperature_K.*nan',
    ),
    (
        'infinite temperature',
        lambda m: sampling(m, [_with(NVT_POINT, 'temperature_K', math.inf)]),
        'temperature_K.*inf',
    ),
    (
        'NaN pressure',
        lambda m: sampling(m, [_with(NPT_POINT, 'pressure_bar', math.nan)]),
        'pressure_bar.*nan',
    ),
    ('zero volume scale', lambda m: sampling(m, [_with(NVT_POINT, 'volume_scale', 0.0)]), 'volume_scale.*0'),
    ('zero timestep', lambda m: sampling(m, shared=_with(SHARED, 'timestep_fs', 0.0)), 'timestep_fs.*0'),
    (
        'NaN timestep',
        lambda m: sampling(m, shared=_with(SHARED, 'timestep_fs', math.nan)),
        'timestep_fs.*nan',
    ),
    (
        'negative production steps',
        lambda m: sampling(m, shared=_with(SHARED, 'production_steps', -20)),
        'production_steps.*-20',
    ),
    (
        'fractional dump interval',
        lambda m: sampling(m, shared=_with(SHARED, 'dump_interval', 2.5)),
        'dump_interval.*2.5',
    ),
    ('seed as a string', lambda m: sampling(m, shared=_with(SHARED, 'seed', 'one')), "seed.*'one'"),
    ('overlapping atoms', lambda m: sampling(m, atoms=overlapping()), '0.300 Å apart'),
    ('NPT on a non-periodic box', lambda m: sampling(m, [NPT_POINT], atoms=molecule_box()), 'NPT.*periodic'),
    ('species absent from the potential', lambda m: sampling(m, atoms=with_potassium()), 'K'),
    ('non-neutral cell with Ewald', lambda m: sampling(m, atoms=charged()), 'total charge of -2'),
    (
        'pair missing from pair_coeff',
        lambda m: sampling(m, potential={**m.potential, 'pair_coeff': m.potential['pair_coeff'][:2]}),
        'Cl-Cl',
    ),
    ('unknown potential key', lambda m: sampling(m, potential={**m.potential, 'charge': {}}), "'charge'"),
    (
        'potential file named but not given',
        lambda m: sampling(m, atoms=_silicon(), potential=SILICON_SW),
        'Si.sw',
    ),
    (
        'potential file keyed by its file name',
        lambda m: sampling(
            m,
            atoms=_silicon(),
            potential=SILICON_SW,
            potential_files={'Si.sw': orm.SinglefileData.from_string('', 'Si.sw')},
        ),
        '`Si.sw` is not a valid link label.*Si_sw',
    ),
    (
        'a gap_fit code as the LAMMPS code',
        lambda m: _with(sampling(m), 'md.code', m.gap_fit),
        'mlpot.gap_fit',
    ),
    ('no LAMMPS code', lambda m: _with(sampling(m), 'md', {'metadata': {'options': OPTIONS}}), 'code'),
    (
        'unknown input in the md namespace',
        lambda m: _with(sampling(m), 'md.parameters', orm.Dict(SHARED)),
        'parameters',
    ),
]


@pytest.mark.parametrize(('case', 'make', 'match'), SAMPLING_CASES, ids=[c[0] for c in SAMPLING_CASES])
def test_sampling(m, case, make, match):
    from aiida_mlpot.workflows.sampling import SamplingWorkChain

    refused(SamplingWorkChain, make(m), match)


# --- LabellingWorkChain -------------------------------------------------------------------------------------
def classical(m, atoms_list=None, potential=None, **extra) -> dict:
    atoms_list = atoms_list if atoms_list is not None else [nacl()]
    return {
        'structures': {f'config_{i:05d}': m.structure(atoms) for i, atoms in enumerate(atoms_list)},
        'classical': {
            'code': m.lmp,
            'potential': orm.Dict(potential if potential is not None else m.potential),
        },
        **extra,
    }


def cp2k(m, atoms_list=None, protocol='xtb', **changes) -> dict:
    from aiida_mlpot.workflows.labelling import LabellingWorkChain

    atoms_list = atoms_list if atoms_list is not None else [nacl()]
    settings = LabellingWorkChain.get_protocol_inputs(protocol)['cp2k']['settings']
    settings.update(changes)
    return {
        'structures': {f'config_{i:05d}': m.structure(atoms) for i, atoms in enumerate(atoms_list)},
        'cp2k': {'code': m.cp2k, 'settings': orm.Dict(settings)},
    }


def _lanthanum():
    atoms = nacl()
    symbols = atoms.get_chemical_symbols()
    symbols[0] = 'La'
    atoms.set_chemical_symbols(symbols)
    return atoms


LABELLING_CASES = [
    ('classical: species absent from the potential', lambda m: classical(m, [nacl(), with_potassium()]), 'K'),
    (
        'classical: pair missing from pair_coeff',
        lambda m: classical(m, potential={**m.potential, 'pair_coeff': m.potential['pair_coeff'][1:]}),
        'Na-Na',
    ),
    (
        'classical: potential file named but not given',
        lambda m: classical(m, [_silicon()], SILICON_SW),
        'Si.sw',
    ),
    (
        'classical: coulombic without charges',
        lambda m: classical(m, potential={k: v for k, v in m.potential.items() if k != 'charges'}),
        'charges.*Cl',
    ),
    (
        'classical: non-neutral cell with Ewald',
        lambda m: classical(m, [nacl(), charged()]),
        'config_00001.*total charge',
    ),
    ('every configuration overlapping', lambda m: classical(m, [overlapping(), overlapping()]), '0.300 Å'),
    (
        'empty dataset',
        lambda m: {**classical(m), 'structures': {}, 'dataset': m.dataset([])},
        'dataset.*no configuration',
    ),
    ('unknown guard key', lambda m: classical(m, guard=orm.Dict({'max_forces': 10.0})), '`max_forces`'),
    (
        'guard value of the wrong type',
        lambda m: classical(m, guard=orm.Dict({'max_force': '10'})),
        "max_force.*'10'",
    ),
    ('NaN guard value', lambda m: classical(m, guard=orm.Dict({'max_force': math.nan})), 'max_force.*nan'),
    (
        'negative guard distance',
        lambda m: classical(m, guard=orm.Dict({'min_distance': -1.0})),
        'min_distance.*-1',
    ),
    ('unknown option', lambda m: classical(m, options=orm.Dict({'walltime': 600})), '`walltime`'),
    (
        'NaN success fraction',
        lambda m: classical(m, min_success_fraction=orm.Float(math.nan)),
        'min_success_fraction',
    ),
    (
        'a CP2K code as the LAMMPS code',
        lambda m: _with(classical(m), 'classical.code', m.cp2k),
        'cp2k.*not for LAMMPS',
    ),
    (
        'a LAMMPS code as the CP2K code',
        lambda m: _with(cp2k(m), 'cp2k.code', m.lmp),
        'mlpot.lammps.md.*not for CP2K',
    ),
    (
        'a CP2K code whose executable does not exist',
        lambda m: _with(cp2k(m), 'cp2k.code', m.broken('missing', 'cp2k')),
        'cp2k.code.*/nonexistent/bin/lmp.*does not exist',
    ),
    (
        'cp2k: unknown settings key',
        lambda m: cp2k(m, scf={'eps_scf': 1e-6, 'max_scf': 50, 'max_sfc': 5}),
        '`scf.max_sfc`',
    ),
    ('cp2k: unknown top-level settings key', lambda m: cp2k(m, cutof=300), '`cutof`'),
    ('cp2k: element beyond xTB', lambda m: cp2k(m, [_plutonium()]), 'GFN1-xTB has no parameters.*Pu'),
    (
        'cp2k: per-configuration override with an unknown key',
        lambda m: _with(cp2k(m), 'cp2k.config_overrides', orm.Dict({'config_00000': {'scf': {'nope': 1}}})),
        '`scf.nope`',
    ),
    (
        'cp2k: zero max_concurrent',
        lambda m: _with(cp2k(m), 'cp2k.max_concurrent', orm.Int(0)),
        'max_concurrent',
    ),
    ('no oracle', lambda m: {'structures': {'a': m.structure()}}, 'exactly one oracle'),
    (
        'structure key that is not a label',
        lambda m: {**classical(m), 'structures': {'a-1': m.structure()}},
        '`a-1`',
    ),
]


def _plutonium():
    atoms = nacl()
    symbols = atoms.get_chemical_symbols()
    symbols[0] = 'Pu'
    atoms.set_chemical_symbols(symbols)
    return atoms


@pytest.mark.parametrize(('case', 'make', 'match'), LABELLING_CASES, ids=[c[0] for c in LABELLING_CASES])
def test_labelling(m, case, make, match):
    from aiida_mlpot.workflows.labelling import LabellingWorkChain

    refused(LabellingWorkChain, make(m), match)


def test_labelling_cp2k_basis_missing_for_an_element(m):
    """PBE with the MOLOPT-SR basis, which CP2K's data lacks for La: exit 201 before any CP2K job, naming La."""
    from aiida_mlpot.workflows.labelling import LabellingWorkChain

    node = exits(LabellingWorkChain, cp2k(m, [_lanthanum()], protocol='pbe'), r'\bLa\b', status=201)
    assert 'labelled' not in node.outputs


# --- GapFitWorkChain ----------------------------------------------------------------------------------------
def fit(m, parameters=None, dataset=None, **extra) -> dict:
    return {
        'gap_fit': {
            'code': m.gap_fit,
            'dataset': dataset if dataset is not None else m.dataset(),
            'parameters': orm.Dict(parameters if parameters is not None else FIT),
            'metadata': {'options': OPTIONS},
        },
        **extra,
    }


def _sodium_only():
    return labelled(bulk('Na', 'bcc', a=4.23, cubic=True))


GAP_FIT_CASES = [
    ('unknown parameter key', lambda m: fit(m, {**FIT, 'sparse_jiter': 1e-8}), '`sparse_jiter`'),
    (
        'unknown nested parameter key',
        lambda m: fit(m, _with(FIT, 'default_sigma.forces', 0.1)),
        'default_sigma.forces',
    ),
    ('zero sigma', lambda m: fit(m, _with(FIT, 'default_sigma.force', 0.0)), 'default_sigma.force'),
    ('empty training set', lambda m: fit(m, dataset=m.dataset([])), 'empty'),
    (
        'training set without labels',
        lambda m: fit(
            m, dataset=m.dataset([labelled(nacl(), k, energy=False, forces=False) for k in range(2)])
        ),
        'neither energies nor forces',
    ),
    (
        'training set with one species, test set with two',
        lambda m: fit(
            m, dataset=m.dataset([_sodium_only()]), test_dataset=m.dataset(), evaluate={'code': m.python}
        ),
        'test_dataset.*Cl',
    ),
    ('test set without the evaluation code', lambda m: fit(m, test_dataset=m.dataset()), 'evaluate.code'),
    (
        'evaluation code without a test set',
        lambda m: fit(m, evaluate={'code': m.python}),
        'without a `test_dataset`',
    ),
    (
        'zero sparse reduction factor',
        lambda m: fit(m, sparse_reduction_factor=orm.Float(0.0)),
        'sparse_reduction_factor.*0',
    ),
    (
        'sparse reduction factor above 1',
        lambda m: fit(m, sparse_reduction_factor=orm.Float(1.5)),
        'sparse_reduction_factor.*1.5',
    ),
    ('NaN walltime factor', lambda m: fit(m, walltime_factor=orm.Float(math.nan)), 'walltime_factor.*nan'),
    ('walltime factor below 1', lambda m: fit(m, walltime_factor=orm.Float(0.5)), 'walltime_factor.*0.5'),
    (
        'unknown input in the gap_fit namespace',
        lambda m: _with(fit(m), 'gap_fit.potential', orm.Dict({})),
        'potential',
    ),
    (
        'a LAMMPS code as the gap_fit code',
        lambda m: _with(fit(m), 'gap_fit.code', m.lmp),
        'mlpot.lammps.md.*not for gap_fit',
    ),
    (
        'a gap_fit code as the evaluation code',
        lambda m: fit(m, test_dataset=m.dataset(), evaluate={'code': m.gap_fit}),
        'mlpot.gap_fit.*not for python',
    ),
]


@pytest.mark.parametrize(('case', 'make', 'match'), GAP_FIT_CASES, ids=[c[0] for c in GAP_FIT_CASES])
def test_gap_fit(m, case, make, match):
    from aiida_mlpot.workflows.gap_fit import GapFitWorkChain

    refused(GapFitWorkChain, make(m), match)


def test_gap_fit_cannot_fit_in_the_declared_memory(m):
    """1 MB declared: the sparse points cannot be reduced enough; exit 202 before gap_fit runs, naming the limit."""
    from aiida_mlpot.workflows.gap_fit import GapFitWorkChain

    inputs = _with(fit(m), 'gap_fit.metadata.options', {**OPTIONS, 'max_memory_kb': 1024})
    node = exits(GapFitWorkChain, inputs, 'max_memory_kb', status=202)
    assert 'potential' not in node.outputs


# --- MlMdWorkChain ------------------------------------------------------------------------------------------
def ml_md(m, parameters=None, atoms=None, **extra) -> dict:
    return {
        'md': {
            'code': m.python,
            'structure': m.structure(atoms),
            'potential': m.gap,
            'parameters': orm.Dict(parameters if parameters is not None else ML),
            'metadata': {'options': OPTIONS},
        },
        **extra,
    }


ML_MD_CASES = [
    ('unknown parameter key', lambda m: ml_md(m, _with(ML, 'md.temprature_K', 300.0)), '`md.temprature_K`'),
    ('NaN temperature', lambda m: ml_md(m, _with(ML, 'md.temperature_K', math.nan)), 'md.temperature_K.*nan'),
    ('zero timestep', lambda m: ml_md(m, _with(ML, 'md.timestep_fs', 0.0)), 'md.timestep_fs.*0'),
    ('negative steps', lambda m: ml_md(m, _with(ML, 'md.n_steps', -1)), 'md.n_steps.*-1'),
    ('unknown unstable policy', lambda m: ml_md(m, unstable_policy='retry'), '`retry`'),
    (
        'NPT on a non-periodic box',
        lambda m: ml_md(m, _with(ML, 'md.ensemble', 'npt'), atoms=molecule_box()),
        'NPT.*periodic',
    ),
    ('overlapping atoms', lambda m: ml_md(m, atoms=overlapping()), '0.300 Å'),
    ('species absent from the potential', lambda m: ml_md(m, atoms=with_potassium()), "'K'"),
    (
        'relative threshold without a training set',
        lambda m: ml_md(m, {**ML, 'extrapolation': {'relative_threshold': 3.0}}),
        'training',
    ),
    (
        'a LAMMPS code as the driver code',
        lambda m: _with(ml_md(m), 'md.code', m.lmp),
        'mlpot.lammps.md.*not for python',
    ),
    ('zero max_iterations', lambda m: ml_md(m, max_iterations=orm.Int(0)), 'max_iterations'),
    (
        'a driver code whose executable is not executable',
        lambda m: _with(ml_md(m), 'md.code', m.broken('not executable', 'mlpot.ml_md')),
        'is not executable',
    ),
]


@pytest.mark.parametrize(('case', 'make', 'match'), ML_MD_CASES, ids=[c[0] for c in ML_MD_CASES])
def test_ml_md(m, case, make, match):
    from aiida_mlpot.workflows.ml_md import MlMdWorkChain

    refused(MlMdWorkChain, make(m), match)
