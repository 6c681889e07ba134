"""Fixtures of the loop tests."""

from __future__ import annotations

import pytest


@pytest.fixture
def codes(code_lmp, code_gap_fit, code_python):
    """The codes of a loop with a classical oracle: LAMMPS, gap_fit and the python of the ML-MD driver."""
    return {'lammps': code_lmp, 'gap_fit': code_gap_fit, 'python': code_python}
