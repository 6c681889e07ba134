"""Fixtures of the MlMdWorkChain tests: small labelled MD frames, fake finished calculations, the test GAP.

The handler tests run on fake child nodes (a finished ``CalcJobNode`` with the outputs an
:class:`~aiida_mlpot.calculations.ml_md.MlMdCalculation` attaches); the end-to-end tests use the GAP fitted by
the real gap_fit (shared with tests/engines and tests/calculations/ml_md) and the real python driver.
"""

from __future__ import annotations

import pathlib

import numpy as np
import pytest
from ase import Atoms
from ase.build import bulk

from tests.calculations.ml_md.conftest import gap_potential, ml_md_inputs, training_dataset  # noqa: F401
from tests.engines.conftest import ml_md_gap  # noqa: F401

#: A real GAP for NaCl recorded from gap_fit (tiny: 2b + SOAP n2 l1), enough for inputs that are never run.
RECORDED_GAP = pathlib.Path(__file__).parents[2] / 'parsers' / 'gap_fit' / 'fixtures' / 'success' / 'gap.xml'


def md_frames(
    steps: list[int], timestep_fs: float = 2.0, first_step: int | None = None, tag: str = ''
) -> list[Atoms]:
    """Return 8-atom NaCl MD frames at ``steps`` with energy, forces, virial, momenta, ``step`` and ``time_fs``.

    ``time_fs`` counts from the first frame (as the driver counts it from the start of each run); ``tag`` is
    written to ``info['segment']`` so a test can tell which segment a joined frame came from.
    """
    rng = np.random.default_rng(sum(steps) + len(tag))
    start = steps[0] if first_step is None else first_step
    frames = []
    for step in steps:
        atoms = bulk('NaCl', 'rocksalt', a=5.64, cubic=True)
        atoms.positions += rng.normal(scale=0.05, size=atoms.positions.shape)
        atoms.info.update(
            energy=-27.0 + 0.01 * step,
            virial=np.eye(3),
            step=step,
            time_fs=(step - start) * timestep_fs,
            segment=tag,
        )
        atoms.arrays['forces'] = rng.normal(size=(len(atoms), 3))
        atoms.arrays['momenta'] = rng.normal(size=(len(atoms), 3))
        frames.append(atoms)
    return frames


@pytest.fixture(scope='module')
def recorded_potential(aiida_profile):
    """The recorded tiny NaCl GAP as a stored GapPotentialData (for inputs only: never run)."""
    from aiida_mlpot.data.potential import GapPotentialData

    return GapPotentialData.from_files(RECORDED_GAP).store()


@pytest.fixture
def fake_calculation(aiida_profile, localhost):
    """Return a function making a finished MlMdCalculation node with the given exit code and outputs."""
    from aiida import orm
    from aiida.common.links import LinkType
    from aiida.engine import ProcessState

    from aiida_mlpot.data.dataset import DatasetData

    def factory(
        exit_status: int,
        parameters: dict,
        frames: list[Atoms] | None = None,
        summary: dict | None = None,
        **outputs,
    ):
        node = orm.CalcJobNode(computer=localhost, process_type='aiida.calculations:mlpot.ml_md')
        node.set_option('resources', {'num_machines': 1, 'num_mpiprocs_per_machine': 1})
        node.set_process_state(ProcessState.FINISHED)
        node.set_exit_status(exit_status)
        node.base.links.add_incoming(orm.Dict(parameters).store(), LinkType.INPUT_CALC, 'parameters')
        node.store()
        if frames is not None:
            outputs['trajectory'] = DatasetData.from_ase(frames)
            last = frames[-1].copy()
            last.calc = None
            outputs['final_structure'] = orm.StructureData(ase=last)
        if summary is not None:
            outputs['summary'] = orm.Dict(summary)
        for label, output in outputs.items():
            output.base.links.add_incoming(node, LinkType.CREATE, label)
            output.store()
        return node

    return factory
