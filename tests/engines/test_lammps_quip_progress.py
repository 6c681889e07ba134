"""The driver keeps progress.json up to date after every written frame of the LAMMPS engine, as for the ASE engine."""

from __future__ import annotations

import json
import time

import pytest
from ase.io import read

from aiida_mlpot.engines.ml_md import ProgressWriter
from tests.engines.test_lammps_quip import loop_parameters, requires_lmp, run_teacher, start_atoms


@pytest.mark.e2e
@requires_lmp
def test_segments_write_progress(ml_md_gap, tmp_path):
    """Two segments of the real `lmp` (classical teacher): one progress write per frame, the last at step 40."""
    parameters = loop_parameters(seed=7)
    progress = ProgressWriter(
        tmp_path / 'progress.json', time.perf_counter(), engine='lammps', initial_step=100, steps_requested=40
    )
    result, engine = run_teacher(
        tmp_path, start_atoms(ml_md_gap, 1), parameters, None, initial_step=100, progress=progress
    )
    assert result.outcome == 'completed', result.reason
    assert engine.n_segments == 2 and progress.n_writes == result.n_dumped == 5
    data = json.loads((tmp_path / 'progress.json').read_text())
    assert data['engine'] == 'lammps' and data['initial_step'] == 100
    assert (data['steps_done'], data['last_frame_step'], data['n_dumped']) == (40, 140, 5)
    assert data['max_score'] is None  # no extrapolation measure in this run
    assert read(tmp_path / 'trajectory.xyz', -1).info['step'] == data['last_frame_step']
    assert not (tmp_path / '.progress.json.tmp').exists()
