"""The LAMMPS engine keeps progress.json up to date after every segment, as the ASE engine does per frame."""

from __future__ import annotations

import json
import time

import pytest
from ase.io import read

from aiida_mlpot.engines.ase_md import ProgressWriter
from aiida_mlpot.engines.lammps_quip import run_segmented
from tests.engines.test_lammps_quip import TOSI_FUMI, loop_parameters, requires_lmp, start_atoms


@pytest.mark.e2e
@requires_lmp
def test_segments_write_progress(ml_md_gap, tmp_path):
    """Two segments of the real `lmp` (classical teacher): one progress write per segment, the last at step 40."""
    parameters = loop_parameters(seed=7)
    progress = ProgressWriter(
        tmp_path / 'progress.json', time.perf_counter(), engine='lammps', initial_step=100, steps_requested=40
    )
    result = run_segmented(
        'lmp',
        tmp_path,
        start_atoms(ml_md_gap, 1),
        TOSI_FUMI,
        parameters,
        None,
        initial_step=100,
        create_velocities=True,
        progress=progress,
    )
    assert result.outcome == 'completed', result.reason
    assert progress.n_writes == result.n_segments == 2
    data = json.loads((tmp_path / 'progress.json').read_text())
    assert data['engine'] == 'lammps' and data['initial_step'] == 100
    assert (data['steps_done'], data['last_frame_step'], data['n_dumped']) == (40, 140, 5)
    assert data['max_score'] is None  # no extrapolation measure in this run
    assert read(tmp_path / 'trajectory.xyz', -1).info['step'] == data['last_frame_step']
    assert not (tmp_path / '.progress.json.tmp').exists()
