"""A driver killed before its end (SIGKILL, as at a walltime): progress.json, complete frames, continuation."""

from __future__ import annotations

import io
import json

import numpy as np
import pytest
from ase import Atoms

from aiida_mlpot.data.extxyz import read_frames, write_frames
from aiida_mlpot.engines.ml_md import complete_frames_text, run
from tests.engines.ml_md_helpers import prepare, run_driver_and_kill
from tests.engines.test_ase_md import start_frame

PARAMETERS = {
    'md': {'temperature_K': 1400.0, 'n_steps': 2000, 'dump_interval': 2, 'seed': 5},
    'extrapolation': {'check_interval': 2, 'threshold': 1.0},
}


def _frames(n: int = 3) -> list[Atoms]:
    rng = np.random.default_rng(1)
    frames = []
    for step in range(n):
        atoms = Atoms('NaClNaCl', positions=rng.random((4, 3)) * 5, cell=np.eye(3) * 5, pbc=True)
        atoms.info.update(energy=-1.5 * step, virial=np.eye(3), step=step, config_type='a b')
        atoms.arrays['forces'] = rng.normal(size=(4, 3))
        atoms.arrays['momenta'] = rng.normal(size=(4, 3))
        frames.append(atoms)
    return frames


def test_complete_frames_text_drops_a_half_written_frame():
    """Cut anywhere inside the last frame: the complete frames are kept, the cut one is dropped."""
    frames, handle = _frames(), io.StringIO()
    write_frames(frames[:2], handle)
    start_last = len(handle.getvalue())  # atom-count line of the third frame
    write_frames(frames[2:], handle)
    text = handle.getvalue()
    assert complete_frames_text(text) == (text, 3, False)
    assert complete_frames_text('') == ('', 0, False)
    for cut in range(start_last + 1, len(text) - 1, 7):  # inside the count line, the header, an atom line
        complete, n_frames, dropped = complete_frames_text(text[:cut])
        assert (n_frames, dropped) == (2, True), cut
        frames = read_frames(io.StringIO(complete))
        assert [frame.info['step'] for frame in frames] == [0, 1]
    # a line with a missing field (fields cut at a space) is not a complete atom line either
    lines = text.split('\n')
    lines[-2] = ' '.join(lines[-2].split()[:-1])
    assert complete_frames_text('\n'.join(lines))[1] == 2


@pytest.mark.e2e
def test_killed_driver_leaves_progress_and_frames_then_continues(ml_md_gap, tmp_path):
    """SIGKILL after 3 frames: no summary, consistent progress.json and frames; the last frame continues."""
    workdir = tmp_path / 'killed'
    prepare(workdir, ml_md_gap, start_frame(ml_md_gap, 2), PARAMETERS)
    assert run_driver_and_kill(workdir, n_frames=3) == -9
    assert not (workdir / 'summary.json').exists() and not (workdir / 'final.xyz').exists()
    progress = json.loads((workdir / 'progress.json').read_text())
    assert progress['outcome'] == 'running' and progress['engine'] == 'ase'
    assert progress['initial_step'] == 0 and progress['steps_requested'] == 2000
    assert progress['n_dumped'] >= 3 and progress['last_frame_step'] == progress['steps_done']
    assert 0 < progress['max_score'] < 1.0 and progress['elapsed_s'] > 0

    complete, n_frames, _ = complete_frames_text((workdir / 'trajectory.xyz').read_text())
    frames = read_frames(io.StringIO(complete))
    assert n_frames == len(frames) >= progress['n_dumped']  # progress is written after its frame is flushed
    assert [frame.info['step'] for frame in frames] == list(range(0, 2 * n_frames, 2))
    assert all('momenta' in frame.arrays and 'uncertainty' in frame.info for frame in frames)

    # continue from the last complete frame: its momenta and its step number
    last = frames[-1]
    last.calc = None
    config = prepare(
        tmp_path / 'continued', ml_md_gap, last, {**PARAMETERS, 'md': {**PARAMETERS['md'], 'n_steps': 4}}
    )
    config['initial_step'] = last.info['step']
    summary = run(config, tmp_path / 'continued')
    assert summary['outcome'] == 'completed' and summary['velocities'] == 'from_structure'
    assert summary['initial_step'] == last.info['step'] and summary['final_step'] == last.info['step'] + 4
    progress = json.loads((tmp_path / 'continued' / 'progress.json').read_text())
    assert progress['last_frame_step'] == summary['final_step'] and progress['n_dumped'] == 3
