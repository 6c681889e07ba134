"""Helpers shared by the ML-MD tests: a small GAP fitted with the real ``gap_fit`` on the reference NaCl frames."""

from __future__ import annotations

import json
import pathlib
import shutil
import subprocess

from ase import Atoms

from aiida_mlpot.data.extxyz import write_frames

#: gap_fit descriptors of the test GAP: 2-body + SOAP (n_max 4, l_max 3, cutoff 5 Å), 100 CUR sparse points.
GAP_STRING = (
    '{distance_2b cutoff=5.0 covariance_type=ard_se delta=0.5 theta_uniform=1.0 sparse_method=uniform '
    'n_sparse=20 : soap n_max=4 l_max=3 cutoff=5.0 atom_sigma=0.5 cutoff_transition_width=1.0 delta=0.2 '
    'zeta=4 covariance_type=dot_product sparse_method=cur_points n_sparse=100}'
)


def split_reference_frames(frames: list[Atoms], n_train: int = 40) -> tuple[list[Atoms], list[Atoms]]:
    """Return (training, held-out) 1400 K frames: every other of the first 2 * n_train, and the rest."""
    hot = [atoms for atoms in frames if atoms.info.get('config_type') == 'T1400']
    training = hot[: 2 * n_train : 2]
    held_out = [atoms for k, atoms in enumerate(hot) if k >= 2 * n_train or k % 2]
    return training, held_out


def fit_test_gap(training: list[Atoms], folder: pathlib.Path, gap_fit: str = 'gap_fit') -> pathlib.Path:
    """Fit the test GAP with the real ``gap_fit`` in ``folder`` (reused when already there); return the XML path."""
    folder.mkdir(parents=True, exist_ok=True)
    xml, done = folder / 'gap.xml', folder / 'fit.done'
    if done.is_file():
        return xml
    with open(folder / 'train.xyz', 'w') as handle:
        write_frames(training, handle)
    command = [
        gap_fit,
        'at_file=train.xyz',
        f'gap={GAP_STRING}',
        'default_sigma={0.002 0.05 0.05 0.0}',
        'energy_parameter_name=energy',
        'force_parameter_name=forces',
        'virial_parameter_name=virial',
        'e0_method=average',
        'sparse_jitter=1e-8',
        'rnd_seed=1',
        'gap_file=gap.xml',
    ]
    result = subprocess.run(command, cwd=folder, capture_output=True, text=True)
    if result.returncode != 0 or not xml.is_file():
        raise RuntimeError(f'gap_fit failed:\n{result.stdout[-3000:]}\n{result.stderr[-3000:]}')
    done.write_text('ok\n')
    return xml


def run_driver_and_kill(workdir: pathlib.Path, n_frames: int, timeout: float = 60.0) -> int:
    """Run the real driver (``python -m aiida_mlpot.engines.ml_md input.json``) in ``workdir`` and SIGKILL it.

    The driver is killed as soon as its ``progress.json`` reports ``n_frames`` written frames, the way a
    scheduler kills a job at its walltime (no chance to write ``summary.json``). stdout and stderr go to
    ``driver.out`` and ``driver.err`` as in an MlMdCalculation. Return the driver's return code (-9).
    """
    import json
    import os
    import signal
    import sys
    import time

    progress = workdir / 'progress.json'
    with open(workdir / 'driver.out', 'w') as stdout, open(workdir / 'driver.err', 'w') as stderr:
        process = subprocess.Popen(
            [sys.executable, '-m', 'aiida_mlpot.engines.ml_md', 'input.json'],
            cwd=workdir,
            stdout=stdout,
            stderr=stderr,
        )
        deadline = time.monotonic() + timeout
        try:
            while time.monotonic() < deadline and process.poll() is None:
                if progress.is_file() and json.loads(progress.read_text())['n_dumped'] >= n_frames:
                    break
                time.sleep(0.02)
            else:
                raise RuntimeError(
                    f'the driver did not write {n_frames} frames (return code {process.poll()})'
                )
        finally:
            if process.poll() is None:
                os.kill(process.pid, signal.SIGKILL)
            process.wait()
    return process.returncode


def prepare(workdir, gap, structure, parameters, training=None):
    """Write a driver input in ``workdir`` and return the config."""
    workdir.mkdir(parents=True, exist_ok=True)
    for path in gap.files:
        shutil.copy(path, workdir / path.name)
    with open(workdir / 'structure.xyz', 'w') as handle:
        write_frames([structure], handle)
    config = {'structure': 'structure.xyz', 'potential': {'xml': 'gap.xml'}, 'parameters': parameters}
    if training is not None:
        with open(workdir / 'training.xyz', 'w') as handle:
            write_frames(training, handle)
        config['training'] = 'training.xyz'
    (workdir / 'input.json').write_text(json.dumps(config))
    return config
