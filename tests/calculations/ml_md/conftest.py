"""Fixtures of the MlMdCalculation tests: the test GAP (shared with tests/engines) as AiiDA nodes."""

from __future__ import annotations

import pytest

from tests.engines.conftest import ml_md_gap  # noqa: F401  (fitted once per session, cached on disk)


@pytest.fixture(scope='module')
def gap_potential(aiida_profile, ml_md_gap):  # noqa: F811
    """The test GAP as a stored GapPotentialData."""
    from aiida_mlpot.data.potential import GapPotentialData

    return GapPotentialData.from_files(ml_md_gap.xml).store()


@pytest.fixture(scope='module')
def training_dataset(aiida_profile, ml_md_gap):  # noqa: F811
    """The 40 training frames of the test GAP as a stored DatasetData."""
    from aiida_mlpot.data.dataset import DatasetData

    return DatasetData.from_ase(ml_md_gap.training).store()


@pytest.fixture
def ml_md_inputs(code_python, gap_potential, ml_md_gap):  # noqa: F811
    """Return a function building MlMdCalculation inputs from a start frame index and parameters."""
    from aiida import orm

    def factory(parameters: dict, index: int = 0, scale: float = 1.0, **extra):
        atoms = ml_md_gap.held_out[index].copy()
        atoms.calc = None
        atoms.set_cell(atoms.cell * scale, scale_atoms=True)
        inputs = {
            'code': code_python,
            'structure': orm.StructureData(ase=atoms),
            'potential': gap_potential,
            'parameters': orm.Dict(parameters),
            'metadata': {'options': {'max_wallclock_seconds': 600}},
        }
        inputs.update(extra)
        return inputs

    return factory
