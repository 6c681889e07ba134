"""Bad inputs of the calculations (LammpsMd, LammpsRerun, GapFit, MlMd, Evaluate): refused at launch, naming them.

Every row launches the calculation with the real code of the test fixtures; none may reach the code: the
process spec refuses the inputs with a ``ValueError`` naming the bad value and no process node is created.
"""

from __future__ import annotations

import math

import pytest
from aiida import orm
from ase import Atoms

from tests.bad_input.conftest import (
    charged,
    labelled,
    molecule_box,
    nacl,
    overlapping,
    refused,
    with_potassium,
)

OPTIONS = {'resources': {'num_machines': 1, 'num_mpiprocs_per_machine': 1}, 'max_wallclock_seconds': 600}
MD = {
    'ensemble': 'nvt',
    'temperature_K': 1400.0,
    'timestep_fs': 2.0,
    'equilibration_steps': 10,
    'production_steps': 20,
    'dump_interval': 10,
    'seed': 1,
}
NPT = {**MD, 'ensemble': 'npt', 'pressure_bar': 1.0}
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
SILICON_SW = {'pair_style': 'sw', 'pair_coeff': ['* * Si.sw Si'], 'files': ['Si.sw']}


def _edit(base: dict, path: str, value) -> dict:
    """Return a deep copy of ``base`` with ``path`` (dotted, list indices as digits) set to ``value``."""
    import copy

    result = copy.deepcopy(base)
    *parents, last = path.split('.')
    target = result
    for key in parents:
        target = target[int(key)] if isinstance(target, list) else target[key]
    if isinstance(target, list):
        target[int(last)] = value
    else:
        target[last] = value
    return result


def _hybrid(potential: dict, substyle: str) -> dict:
    """``potential`` under ``hybrid/overlay``, its pair_coeff lines naming ``substyle``."""
    lines = [' '.join([*line.split()[:2], substyle, *line.split()[2:]]) for line in potential['pair_coeff']]
    return {**potential, 'pair_style': f'hybrid/overlay {potential["pair_style"]} zero', 'pair_coeff': lines}


# --- LammpsMdCalculation ------------------------------------------------------------------------------------
def lammps_md(m, parameters=None, atoms=None, potential=None, **extra) -> dict:
    return {
        'code': m.lmp,
        'structure': m.structure(atoms),
        'potential': orm.Dict(potential if potential is not None else m.potential),
        'parameters': orm.Dict(parameters if parameters is not None else MD),
        'metadata': {'options': OPTIONS},
        **extra,
    }


def _no_cl_cl(m) -> dict:
    potential = dict(
        m.potential, pair_coeff=[line for line in m.potential['pair_coeff'] if 'Cl Cl' not in line]
    )
    return potential


LAMMPS_MD_CASES = [
    ('unknown parameter key', lambda m: lammps_md(m, {**MD, 'temperature': 300}), '`temperature`'),
    (
        'unknown potential key',
        lambda m: lammps_md(m, potential={**m.potential, 'pair_styles': 'x'}),
        'pair_styles',
    ),
    ('zero temperature', lambda m: lammps_md(m, _edit(MD, 'temperature_K', 0.0)), 'temperature_K.*0'),
    (
        'negative temperature',
        lambda m: lammps_md(m, _edit(MD, 'temperature_K', -300.0)),
        'temperature_K.*-300',
    ),
    ('NaN temperature', lambda m: lammps_md(m, _edit(MD, 'temperature_K', math.nan)), 'temperature_K.*nan'),
    (
        'infinite temperature',
        lambda m: lammps_md(m, _edit(MD, 'temperature_K', math.inf)),
        'temperature_K.*inf',
    ),
    (
        'temperature as a string',
        lambda m: lammps_md(m, _edit(MD, 'temperature_K', '300')),
        'temperature_K.*300',
    ),
    ('zero timestep', lambda m: lammps_md(m, _edit(MD, 'timestep_fs', 0.0)), 'timestep_fs.*0'),
    ('NaN timestep', lambda m: lammps_md(m, _edit(MD, 'timestep_fs', math.nan)), 'timestep_fs.*nan'),
    (
        'zero production steps',
        lambda m: lammps_md(m, _edit(MD, 'production_steps', 0)),
        'production_steps.*0',
    ),
    (
        'negative steps',
        lambda m: lammps_md(m, _edit(MD, 'equilibration_steps', -5)),
        'equilibration_steps.*-5',
    ),
    (
        'fractional steps',
        lambda m: lammps_md(m, _edit(MD, 'production_steps', 20.5)),
        'production_steps.*20.5',
    ),
    (
        'steps as a string',
        lambda m: lammps_md(m, _edit(MD, 'production_steps', 'many')),
        'production_steps.*many',
    ),
    ('boolean seed', lambda m: lammps_md(m, _edit(MD, 'seed', True)), 'seed.*True'),
    ('NaN pressure', lambda m: lammps_md(m, _edit(NPT, 'pressure_bar', math.nan)), 'pressure_bar.*nan'),
    ('zero damping', lambda m: lammps_md(m, {**MD, 'taut_fs': 0.0}), 'taut_fs.*0'),
    ('unknown ensemble', lambda m: lammps_md(m, _edit(MD, 'ensemble', 'nve')), "ensemble.*'nve'"),
    ('pressure in NVT', lambda m: lammps_md(m, {**MD, 'pressure_bar': 1.0}), 'pressure_bar'),
    ('NPT on a non-periodic box', lambda m: lammps_md(m, NPT, atoms=molecule_box()), 'NPT.*periodic'),
    ('overlapping atoms', lambda m: lammps_md(m, atoms=overlapping()), '0.300 Å apart'),
    (
        'NaN coordinates',
        lambda m: lammps_md(m, atoms=_nan_position()),
        r'non-finite coordinates \(atoms \[2\]\)',
    ),
    (
        'no atoms',
        lambda m: {**lammps_md(m), 'structure': orm.StructureData(cell=[[5, 0, 0], [0, 5, 0], [0, 0, 5]])},
        'no atoms',
    ),
    (
        'zero-volume cell',
        lambda m: lammps_md(
            m,
            atoms=Atoms(
                'NaCl',
                positions=[[0, 0, 0], [2.8, 0, 0]],
                cell=[[5, 0, 0], [0, 5, 0], [0, 0, 0]],
                pbc=[True, True, False],
            ),
        ),
        'volume',
    ),
    ('species absent from the potential', lambda m: lammps_md(m, atoms=with_potassium()), 'K'),
    ('non-neutral cell with Ewald', lambda m: lammps_md(m, atoms=charged()), 'total charge of -2'),
    ('pair missing from pair_coeff', lambda m: lammps_md(m, potential=_no_cl_cl(m)), 'Cl-Cl'),
    (
        'coulombic without charges',
        lambda m: lammps_md(m, potential={k: v for k, v in m.potential.items() if k != 'charges'}),
        'charges.*Cl',
    ),
    (
        'potential file named but not given',
        lambda m: lammps_md(m, atoms=_silicon(), potential=SILICON_SW),
        'Si.sw',
    ),
    (
        'potential file in pair_coeff but not in `files`',
        lambda m: lammps_md(
            m, atoms=_silicon(), potential={'pair_style': 'sw', 'pair_coeff': ['* * Si.sw Si']}
        ),
        'Si.sw',
    ),
    (
        'potential file by absolute path',
        lambda m: lammps_md(
            m,
            atoms=_silicon(),
            potential={'pair_style': 'sw', 'pair_coeff': ['* * /usr/share/lammps/potentials/Si.sw Si']},
        ),
        '/usr/share/lammps/potentials/Si.sw',
    ),
    (
        'duplicate pair_coeff line',
        lambda m: lammps_md(
            m,
            potential={
                **m.potential,
                'pair_coeff': [*m.potential['pair_coeff'], 'Cl Na 1.0 0.3 0.0 1.0 1.0'],
            },
        ),
        'Cl.*Na.*more than once',
    ),
    (
        'unknown pair style (a typo)',
        lambda m: lammps_md(m, potential={**m.potential, 'pair_style': 'born/coul/lnog 9.0'}),
        '`born/coul/lnog` is not a LAMMPS pair style; did you mean born/coul/long',
    ),
    (
        'unknown sub-style of a hybrid style',
        lambda m: lammps_md(m, potential=_hybrid(m.potential, 'bron/coul/long')),
        '`bron/coul/long` is not a LAMMPS pair style',
    ),
    (
        'negative cutoff in pair_style',
        lambda m: lammps_md(m, potential={**m.potential, 'pair_style': 'born/coul/long -9.0'}),
        'pair_style.*-9.0',
    ),
    (
        'NaN in pair_coeff',
        lambda m: lammps_md(
            m,
            potential={
                **m.potential,
                'pair_coeff': ['Na Na nan 0.317 0.0 1.05 -0.499', *m.potential['pair_coeff'][1:]],
            },
        ),
        'pair_coeff.*nan',
    ),
    (
        'NaN kspace accuracy',
        lambda m: lammps_md(m, potential={**m.potential, 'kspace_style': 'ewald nan'}),
        'kspace_style.*nan',
    ),
    (
        'parameters of the wrong type',
        lambda m: {**lammps_md(m), 'parameters': orm.List([1, 2])},
        'parameters',
    ),
    (
        'a gap_fit code as the LAMMPS code',
        lambda m: {**lammps_md(m), 'code': m.gap_fit},
        'gap_fit.*mlpot.gap_fit',
    ),
    ('a CP2K code as the LAMMPS code', lambda m: {**lammps_md(m), 'code': m.cp2k}, 'cp2k'),
    (
        'code whose executable does not exist',
        lambda m: {**lammps_md(m), 'code': m.broken('missing', 'mlpot.lammps.md')},
        '/nonexistent/bin/lmp.*does not exist',
    ),
    ('no code', lambda m: {k: v for k, v in lammps_md(m).items() if k != 'code'}, 'code'),
]


def _nan_position():
    atoms = nacl()
    atoms.positions[2, 1] = math.nan
    return atoms


def _silicon():
    from ase.build import bulk

    return bulk('Si', 'diamond', a=5.43, cubic=True)


@pytest.mark.parametrize(('case', 'make', 'match'), LAMMPS_MD_CASES, ids=[c[0] for c in LAMMPS_MD_CASES])
def test_lammps_md(m, case, make, match):
    from aiida_mlpot.calculations.lammps import LammpsMdCalculation

    refused(LammpsMdCalculation, make(m), match)


# --- LammpsRerunCalculation ---------------------------------------------------------------------------------
def rerun(m, atoms_list=None, potential=None, **extra) -> dict:
    atoms_list = atoms_list if atoms_list is not None else [nacl()]
    return {
        'code': m.lmp,
        'structures': {f'config_{i:05d}': m.structure(atoms) for i, atoms in enumerate(atoms_list)},
        'potential': orm.Dict(potential if potential is not None else m.potential),
        'metadata': {'options': OPTIONS},
        **extra,
    }


def _without(inputs: dict, key: str) -> dict:
    return {k: v for k, v in inputs.items() if k != key}


RERUN_CASES = [
    (
        'empty dataset',
        lambda m: {**_without(rerun(m), 'structures'), 'dataset': m.dataset([])},
        'no configurations',
    ),
    ('structures and dataset', lambda m: {**rerun(m), 'dataset': m.dataset()}, 'exactly one of'),
    ('overlapping atoms', lambda m: rerun(m, [nacl(), overlapping()]), 'config_00001.*0.300 Å apart'),
    # a dataset with NaN coordinates cannot be made any more: DatasetData refuses it (test_data_and_cli.py)
    ('species absent from the potential', lambda m: rerun(m, [nacl(), with_potassium()]), 'K'),
    (
        'non-neutral configuration with Ewald',
        lambda m: rerun(m, [nacl(), charged()]),
        'configuration 1.*total charge',
    ),
    (
        'unknown potential key',
        lambda m: rerun(m, potential={**m.potential, 'kspace': 'ewald 1e-6'}),
        "'kspace'",
    ),
    ('potential file named but not given', lambda m: rerun(m, [_silicon()], potential=SILICON_SW), 'Si.sw'),
    ('a python code as the LAMMPS code', lambda m: {**rerun(m), 'code': m.python}, 'mlpot.ml_md'),
]


@pytest.mark.parametrize(('case', 'make', 'match'), RERUN_CASES, ids=[c[0] for c in RERUN_CASES])
def test_lammps_rerun(m, case, make, match):
    from aiida_mlpot.calculations.lammps import LammpsRerunCalculation

    refused(LammpsRerunCalculation, make(m), match)


# --- GapFitCalculation --------------------------------------------------------------------------------------
def gap_fit(m, parameters=None, dataset=None, **extra) -> dict:
    return {
        'code': m.gap_fit,
        'dataset': dataset if dataset is not None else m.dataset(),
        'parameters': orm.Dict(parameters if parameters is not None else FIT),
        'metadata': {'options': OPTIONS},
        **extra,
    }


GAP_FIT_CASES = [
    ('unknown top-level key', lambda m: gap_fit(m, {**FIT, 'sparse_jiter': 1e-8}), '`sparse_jiter`'),
    (
        'unknown descriptor key',
        lambda m: gap_fit(m, _edit(FIT, 'descriptors.1.lmax', 3)),
        r'descriptors\[1\]\.lmax',
    ),
    (
        'unknown sigma key',
        lambda m: gap_fit(m, _edit(FIT, 'default_sigma.forces', 0.1)),
        'default_sigma.forces',
    ),
    (
        'unknown baseline key',
        lambda m: gap_fit(
            m, {**FIT, 'baseline': {'type': 'coulomb', 'charges': {'Na': 1, 'Cl': -1}, 'cut': 9}}
        ),
        'baseline.cut',
    ),
    (
        'unknown descriptor type',
        lambda m: gap_fit(m, _edit(FIT, 'descriptors.0.type', 'distance_3b')),
        'distance_3b',
    ),
    (
        'zero cutoff',
        lambda m: gap_fit(m, _edit(FIT, 'descriptors.0.cutoff', 0.0)),
        r'descriptors\[0\]\.cutoff.*0',
    ),
    (
        'negative cutoff',
        lambda m: gap_fit(m, _edit(FIT, 'descriptors.1.cutoff', -4.0)),
        r'descriptors\[1\]\.cutoff.*-4',
    ),
    (
        'NaN cutoff',
        lambda m: gap_fit(m, _edit(FIT, 'descriptors.1.cutoff', math.nan)),
        r'descriptors\[1\]\.cutoff.*nan',
    ),
    (
        'zero energy sigma',
        lambda m: gap_fit(m, _edit(FIT, 'default_sigma.energy', 0.0)),
        'default_sigma.energy',
    ),
    (
        'negative force sigma',
        lambda m: gap_fit(m, _edit(FIT, 'default_sigma.force', -0.05)),
        'default_sigma.force.*-0.05',
    ),
    (
        'NaN virial sigma',
        lambda m: gap_fit(m, _edit(FIT, 'default_sigma.virial', math.nan)),
        'default_sigma.virial.*nan',
    ),
    (
        'zero n_sparse',
        lambda m: gap_fit(m, _edit(FIT, 'descriptors.1.n_sparse', 0)),
        r'descriptors\[1\]\.n_sparse.*0',
    ),
    (
        'negative n_sparse',
        lambda m: gap_fit(m, _edit(FIT, 'descriptors.0.n_sparse', -10)),
        r'descriptors\[0\]\.n_sparse.*-10',
    ),
    (
        'fractional n_sparse',
        lambda m: gap_fit(m, _edit(FIT, 'descriptors.0.n_sparse', 10.5)),
        r'descriptors\[0\]\.n_sparse.*10.5',
    ),
    (
        'n_sparse as a string',
        lambda m: gap_fit(m, _edit(FIT, 'descriptors.0.n_sparse', '10')),
        r'descriptors\[0\]\.n_sparse.*10',
    ),
    (
        'NaN e0',
        lambda m: gap_fit(m, {**_without(FIT, 'e0_method'), 'e0': {'Na': math.nan, 'Cl': -0.4}}),
        'e0.Na.*nan',
    ),
    (
        'e0 without a species of the dataset',
        lambda m: gap_fit(m, {**_without(FIT, 'e0_method'), 'e0': {'Na': -1.0}}),
        'e0.Cl',
    ),
    (
        'sigma for an absent config_type',
        lambda m: gap_fit(m, {**FIT, 'config_type_sigma': {'T300': FIT['default_sigma']}}),
        'T300',
    ),
    ('empty dataset', lambda m: gap_fit(m, dataset=m.dataset([])), 'dataset.*empty'),
    (
        'dataset without labels',
        lambda m: gap_fit(
            m, dataset=m.dataset([labelled(nacl(), k, energy=False, forces=False) for k in range(3)])
        ),
        'neither energies nor forces',
    ),
    (
        'memory estimate above the declared memory',
        lambda m: {**gap_fit(m), 'metadata': {'options': {**OPTIONS, 'max_memory_kb': 1024}}},
        'exceeds the declared 1 MB',
    ),
    ('a LAMMPS code as the gap_fit code', lambda m: {**gap_fit(m), 'code': m.lmp}, 'lmp.*mlpot.lammps.md'),
    ('zero memory limit', lambda m: gap_fit(m, memory_limit_mb=orm.Int(0)), 'memory_limit_mb.*0'),
    (
        'code whose executable is not executable',
        lambda m: {**gap_fit(m), 'code': m.broken('not executable', 'mlpot.gap_fit')},
        'gap_fit.*is not executable',
    ),
]


@pytest.mark.parametrize(('case', 'make', 'match'), GAP_FIT_CASES, ids=[c[0] for c in GAP_FIT_CASES])
def test_gap_fit(m, case, make, match):
    from aiida_mlpot.calculations.gap_fit import GapFitCalculation

    refused(GapFitCalculation, make(m), match)


# --- MlMdCalculation ----------------------------------------------------------------------------------------
ML = {
    'md': {'temperature_K': 1400.0, 'n_steps': 20, 'dump_interval': 10},
    'extrapolation': {'method': 'gap_variance', 'threshold': 0.1},
}


def ml_md(m, parameters=None, atoms=None, **extra) -> dict:
    return {
        'code': m.python,
        'structure': m.structure(atoms),
        'potential': m.gap,
        'parameters': orm.Dict(parameters if parameters is not None else ML),
        'metadata': {'options': OPTIONS},
        **extra,
    }


ML_MD_CASES = [
    ('unknown section', lambda m: ml_md(m, {**ML, 'thermostat': {}}), '`thermostat`'),
    ('unknown nested key', lambda m: ml_md(m, _edit(ML, 'md.temperature', 300.0)), '`md.temperature`'),
    (
        'unknown SOAP key',
        lambda m: ml_md(
            m, {**ML, 'extrapolation': {'method': 'soap_novelty', 'threshold': 0.1, 'soap': {'rcut': 5}}}
        ),
        'rcut',
    ),
    ('zero temperature', lambda m: ml_md(m, _edit(ML, 'md.temperature_K', 0.0)), 'md.temperature_K.*0'),
    ('NaN temperature', lambda m: ml_md(m, _edit(ML, 'md.temperature_K', math.nan)), 'md.temperature_K.*nan'),
    (
        'infinite temperature',
        lambda m: ml_md(m, _edit(ML, 'md.temperature_K', math.inf)),
        'md.temperature_K.*inf',
    ),
    ('negative timestep', lambda m: ml_md(m, _edit(ML, 'md.timestep_fs', -1.0)), 'md.timestep_fs.*-1'),
    ('zero steps', lambda m: ml_md(m, _edit(ML, 'md.n_steps', 0)), 'md.n_steps.*0'),
    ('fractional steps', lambda m: ml_md(m, _edit(ML, 'md.n_steps', 20.5)), 'md.n_steps.*20.5'),
    (
        'NaN pressure',
        lambda m: ml_md(m, _edit(_edit(ML, 'md.ensemble', 'npt'), 'md.pressure_bar', math.nan)),
        'md.pressure_bar.*nan',
    ),
    (
        'NaN threshold',
        lambda m: ml_md(m, _edit(ML, 'extrapolation.threshold', math.nan)),
        'extrapolation.threshold.*nan',
    ),
    (
        'relative threshold without a training set',
        lambda m: ml_md(m, {**ML, 'extrapolation': {'relative_threshold': 3.0}}),
        'needs the `training`',
    ),
    (
        'NPT on a non-periodic box',
        lambda m: ml_md(m, _edit(ML, 'md.ensemble', 'npt'), atoms=molecule_box()),
        'NPT.*periodic',
    ),
    ('overlapping atoms', lambda m: ml_md(m, atoms=overlapping()), '0.300 Å'),
    ('species absent from the potential', lambda m: ml_md(m, atoms=with_potassium()), "'K'"),
    (
        'restart frame out of range',
        lambda m: {
            **_without(ml_md(m), 'structure'),
            'restart_from': m.dataset(),
            'restart_frame': orm.Int(7),
        },
        'restart_frame.*7',
    ),
    ('a gap_fit code as the driver code', lambda m: {**ml_md(m), 'code': m.gap_fit}, 'mlpot.gap_fit'),
    (
        'a gap_fit code as the LAMMPS code',
        lambda m: {**ml_md(m, _edit(ML, 'md.engine', 'lammps')), 'lammps_code': m.gap_fit},
        'lammps_code.*mlpot.gap_fit',
    ),
]


@pytest.mark.parametrize(('case', 'make', 'match'), ML_MD_CASES, ids=[c[0] for c in ML_MD_CASES])
def test_ml_md(m, case, make, match):
    from aiida_mlpot.calculations.ml_md import MlMdCalculation

    refused(MlMdCalculation, make(m), match)


# --- EvaluateCalculation ------------------------------------------------------------------------------------
def evaluate(m, dataset=None, **extra) -> dict:
    return {
        'code': m.python,
        'potential': m.gap,
        'dataset': dataset if dataset is not None else m.dataset(),
        'metadata': {'options': OPTIONS},
        **extra,
    }


EVALUATE_CASES = [
    (
        'unknown parameter key',
        lambda m: evaluate(m, parameters=orm.Dict({'uncertainity': True})),
        '`parameters.uncertainity`',
    ),
    (
        'parameter of the wrong type',
        lambda m: evaluate(m, parameters=orm.Dict({'uncertainty': 'yes'})),
        "uncertainty.*'yes'",
    ),
    ('empty dataset', lambda m: evaluate(m, m.dataset([])), 'holds no configuration'),
    (
        'species absent from the potential',
        lambda m: evaluate(m, m.dataset([labelled(with_potassium())])),
        'species K',
    ),
    ('a gap_fit code as the driver code', lambda m: {**evaluate(m), 'code': m.gap_fit}, 'mlpot.gap_fit'),
]


@pytest.mark.parametrize(('case', 'make', 'match'), EVALUATE_CASES, ids=[c[0] for c in EVALUATE_CASES])
def test_evaluate(m, case, make, match):
    from aiida_mlpot.calculations.evaluate import EvaluateCalculation

    refused(EvaluateCalculation, make(m), match)
