"""Fixtures of the GAP fitting tests: a localhost computer and gap_fit code shared by a module, and the
train/test split of ~60 reference NaCl frames (two temperatures) from the real LAMMPS."""

from __future__ import annotations

import pathlib
import shutil
import sys

import pytest


def executable(name: str) -> str | None:
    """Return the path of ``name`` in this environment's bin folder or on the PATH."""
    candidate = pathlib.Path(sys.executable).parent / name
    return str(candidate) if candidate.is_file() else shutil.which(name)


@pytest.fixture(scope='module')
def gap_fit_code(aiida_profile, tmp_path_factory):
    """`gap_fit` on a localhost computer (module scope, so that one fit can serve several tests)."""
    from aiida import orm

    path = executable('gap_fit')
    if path is None:
        pytest.skip('`gap_fit` is not installed')
    label = f'localhost-gapfit-{tmp_path_factory.getbasetemp().name}'
    computer = orm.Computer(
        label=label,
        hostname='localhost',
        transport_type='core.local',
        scheduler_type='core.direct',
        workdir=str(tmp_path_factory.mktemp('gapfit_work')),
    ).store()
    computer.set_minimum_job_poll_interval(0.0)
    computer.configure()
    code = orm.InstalledCode(
        label='gap_fit', computer=computer, filepath_executable=path, default_calc_job_plugin='mlpot.gap_fit'
    )
    return code.store()


@pytest.fixture(scope='module')
def nacl_train_test(aiida_profile, nacl_reference_frames):
    """60 configurations (30 per temperature, every third frame) split at random into 40 train / 20 test."""
    from aiida import orm

    from aiida_mlpot.calculations.functions.selection import split_dataset
    from aiida_mlpot.data.dataset import DatasetData

    per_type: dict[str, list] = {}
    for atoms in nacl_reference_frames:
        per_type.setdefault(atoms.info['config_type'], []).append(atoms)
    frames = [atoms for group in per_type.values() for atoms in group[::3][:30]]
    assert len(frames) == 60
    result = split_dataset(
        DatasetData.from_ase(frames), orm.Dict({'method': 'random', 'n_test': 20, 'seed': 1})
    )
    return result['train'], result['test']
