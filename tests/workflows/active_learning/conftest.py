"""Fixtures of the loop tests."""

from __future__ import annotations

import pytest
from aiida import orm

from aiida_mlpot.structures import random_box


@pytest.fixture
def codes(code_lmp, code_gap_fit, code_python):
    """The codes of a loop with a classical oracle: LAMMPS, gap_fit and the python of the ML-MD driver."""
    return {'lammps': code_lmp, 'gap_fit': code_gap_fit, 'python': code_python}


@pytest.fixture
def argon():
    """Liquid argon: 32 atoms in a random box at 1.40 g/cm³."""
    return orm.StructureData(ase=random_box({'Ar': 32}, density=1.40, min_distance=3.0, seed=1))
