"""Bad inputs of ActiveLearningWorkChain: refused by the validation a launch runs, before anything is submitted.

The loop is not launched: an input that is not refused would start the whole loop (sampling MD, labelling,
fits), so each case runs the exact validation of a launch (``launch_message``: pre-processing and the spec's
validators) on a builder from ``get_builder_from_protocol`` with one bad value, unless the builder already
refuses the value when it is set (the same port validators, a ``ValueError``). The structure (overlaps,
non-finite or zero-volume cells, periodicity for NPT) and the state points (finite numbers) are checked by the
loop's own validators, before the stages it exposes would see them at run time.
"""

from __future__ import annotations

import math
import re
import types

import pytest
from aiida import orm
from ase.build import bulk

from tests.bad_input.conftest import launch_message, molecule_box, overlapping


@pytest.fixture
def m(structure, tosi_fumi, code_lmp, code_gap_fit, code_python, code_cp2k):
    return types.SimpleNamespace(
        structure=structure,
        potential=tosi_fumi,
        lmp=code_lmp,
        gap_fit=code_gap_fit,
        python=code_python,
        codes={'lammps': code_lmp, 'gap_fit': code_gap_fit, 'python': code_python},
    )


def builder(m, atoms=None, potential=None, potential_files=None, **kwargs):
    from aiida_mlpot.workflows.active_learning import ActiveLearningWorkChain

    arguments = {'temperatures': [1400.0], 'protocol': 'fast', 'codes': m.codes, **kwargs}
    return ActiveLearningWorkChain.get_builder_from_protocol(
        m.structure(atoms),
        potential if potential is not None else m.potential,
        potential_files=potential_files,
        **arguments,
    )


def _set(b, path: str, value):
    target = b
    *parents, last = path.split('.')
    for key in parents:
        target = target[key]
    target[last] = value
    return b


def _silicon():
    return bulk('Si', 'diamond', a=5.43, cubic=True)


SILICON_SW = {'pair_style': 'sw', 'pair_coeff': ['* * Si.sw Si'], 'files': ['Si.sw']}

CASES = [
    (
        'unknown key in the loop settings',
        lambda m: _set(builder(m), 'loop', orm.Dict({'target_stepz': 3})),
        'target_stepz',
    ),
    (
        'negative audit force limit',
        lambda m: builder(m, overrides={'loop': {'audit_force_rmse': -0.05}}),
        'audit_force_rmse.*-0.05',
    ),
    (
        'unknown selection method',
        lambda m: builder(m, overrides={'selection': {'steps': [{'method': 'best', 'n': 3}]}}),
        "'best'",
    ),
    ('unknown split key', lambda m: builder(m, overrides={'split': {'test_fractoin': 0.2}}), 'test_fractoin'),
    (
        'unknown state point key',
        lambda m: _set(builder(m), 'state_points', orm.List([{'temperature': 1400.0}])),
        'temperature',
    ),
    (
        'pressure as a string',
        lambda m: _set(
            builder(m), 'state_points', orm.List([{'temperature_K': 1400.0, 'pressure_bar': '1'}])
        ),
        'pressure_bar',
    ),
    (
        'unknown key in the exploration parameters',
        lambda m: builder(m, overrides={'exploration': {'md': {'parameters': {'md': {'temprature_K': 1}}}}}),
        'md.temprature_K',
    ),
    (
        'unknown key in the fit parameters',
        lambda m: builder(m, overrides={'fitting': {'gap_fit': {'parameters': {'sparse_jiter': 1e-8}}}}),
        'sparse_jiter',
    ),
    (
        'NaN guard value',
        lambda m: builder(m, overrides={'labelling': {'guard': {'max_force': math.nan}}}),
        'max_force.*nan',
    ),
    (
        'unknown key in the classical potential',
        lambda m: builder(m, potential={**m.potential, 'kspace': 'ewald'}),
        "'kspace'",
    ),
    (
        'coulombic potential without the charge of a species (Δ-learning)',
        lambda m: builder(m, potential={**m.potential, 'charges': {'Na': 1.0}}),
        r"charges.*\['Cl'\]",
    ),
    (
        'a LAMMPS code as the evaluation code',
        lambda m: _set(builder(m), 'fitting.evaluate.code', m.lmp),
        'not for python',
    ),
    (
        'a gap_fit code as the sampling code',
        lambda m: _set(builder(m), 'sampling.md.code', m.gap_fit),
        'not for LAMMPS',
    ),
    pytest.param('overlapping atoms', lambda m: builder(m, atoms=overlapping()), '0.300 Å'),
    pytest.param(
        'NPT state points on a non-periodic box',
        lambda m: builder(m, atoms=molecule_box(), pressures=[1.0]),
        'periodic',
    ),
    pytest.param(
        'pair missing from pair_coeff',
        lambda m: builder(m, potential={**m.potential, 'pair_coeff': m.potential['pair_coeff'][:2]}),
        'Cl-Cl',
    ),
    pytest.param(
        'potential file named but not given',
        lambda m: builder(m, atoms=_silicon(), potential=SILICON_SW),
        'Si.sw',
    ),
    pytest.param('NaN pressure', lambda m: builder(m, pressures=[math.nan]), 'pressure_bar.*nan'),
    pytest.param(
        'infinite temperature',
        lambda m: builder(m, temperatures=[math.inf]),
        'temperature_K.*inf',
    ),
]


def _case_id(case) -> str:
    return case.values[0] if hasattr(case, 'values') else case[0]


@pytest.mark.parametrize(('case', 'make', 'match'), CASES, ids=[_case_id(c) for c in CASES])
def test_active_learning(m, case, make, match):
    from aiida_mlpot.workflows.active_learning import ActiveLearningWorkChain

    try:
        made = make(m)
    except ValueError as exception:  # refused when the value is set on the builder: the port validators
        message = str(exception)
    else:
        message = launch_message(ActiveLearningWorkChain, made)
    assert message is not None, 'not refused: the launch would start the loop'
    assert re.search(match, message), message


def test_the_base_builder_is_valid(m):
    """Without the bad value the builder passes the launch validation: the cases refuse what they say."""
    from aiida_mlpot.workflows.active_learning import ActiveLearningWorkChain

    assert launch_message(ActiveLearningWorkChain, builder(m)) is None
