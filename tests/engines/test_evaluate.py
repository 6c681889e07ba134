"""The evaluation driver (pure, no AiiDA): predictions against the quippy calculator used directly.

The GAP is the recorded gap_fit output of tests/parsers/gap_fit/fixtures/success (2b + SOAP on four 64-atom NaCl
configurations, the ones of success_dataset.xyz).
"""

from __future__ import annotations

import json
import pathlib
import shutil
import subprocess
import sys

import numpy as np
import pytest
from ase.io import read

FIXTURES = pathlib.Path(__file__).parents[1] / 'parsers' / 'gap_fit' / 'fixtures'


@pytest.fixture
def workdir(tmp_path) -> pathlib.Path:
    """A working directory as the calculation prepares it: the GAP files, the dataset and ``input.json``."""
    for path in (FIXTURES / 'success').glob('gap.xml*'):
        shutil.copy(path, tmp_path / path.name)
    from aiida_mlpot.data.extxyz import read_frames, write_frames

    with open(FIXTURES / 'success_dataset.xyz') as handle:
        frames = read_frames(handle)
    for index, atoms in enumerate(frames):
        atoms.info['config_type'] = f'T{index % 2}'
        atoms.info['pool_index'] = 10 + index
        atoms.info['not_kept'] = 'x'
    frames[1].rattle(0.1, seed=3)  # one configuration away from the training set
    with open(tmp_path / 'dataset.xyz', 'w') as handle:
        write_frames(frames, handle)
    config = {'dataset': 'dataset.xyz', 'potential': {'xml': 'gap.xml'}, 'uncertainty': True}
    (tmp_path / 'input.json').write_text(json.dumps(config))
    return tmp_path


def reference_labels(xml: pathlib.Path, frames: list) -> list[dict]:
    """Energy, forces, virial and GAP std of each frame from quippy used the ordinary ASE way (one property
    per call, the variance from a separate calculator)."""
    from quippy.potential import Potential

    plain = Potential(param_filename=str(xml))
    variance = Potential(param_filename=str(xml), calc_args='local_gap_variance')
    labels = []
    for frame in frames:
        atoms = frame.copy()
        atoms.calc = plain
        energy = atoms.get_potential_energy()
        forces = atoms.get_forces()
        virial = -atoms.get_stress(voigt=False) * atoms.get_volume()
        variance.calculate(atoms.copy(), properties=['energy'])
        std = np.sqrt(variance.extra_results['atoms']['local_gap_variance']).max()
        labels.append({'energy': energy, 'forces': forces, 'virial': virial, 'std': std})
    return labels


def test_predictions_match_quippy(workdir):
    from aiida_mlpot.data.extxyz import read_frames
    from aiida_mlpot.engines.evaluate import main

    assert main([str(workdir / 'input.json')]) == 0
    summary = json.loads((workdir / 'summary.json').read_text())
    assert summary['outcome'] == 'completed' and summary['n_configs'] == 4 and summary['n_atoms'] == 256
    with open(workdir / 'dataset.xyz') as handle:
        frames = read_frames(handle)
    with open(workdir / 'predictions.xyz') as handle:
        predicted = read_frames(handle)
    expected = reference_labels(workdir / 'gap.xml', frames)
    for frame, prediction, reference in zip(frames, predicted, expected):
        assert np.allclose(prediction.positions, frame.positions, atol=0, rtol=0)
        assert prediction.info['energy'] == pytest.approx(reference['energy'], abs=1e-9)
        assert np.allclose(prediction.arrays['forces'], reference['forces'], atol=1e-9)
        assert np.allclose(prediction.info['virial'], reference['virial'], atol=1e-8)
        assert prediction.info['uncertainty'] == pytest.approx(reference['std'], rel=1e-9)
        # provenance info kept, other info and the reference labels not carried over
        assert prediction.info['pool_index'] == frame.info['pool_index']
        assert prediction.info['config_type'] == frame.info['config_type']
        assert 'not_kept' not in prediction.info and 'c_pe' not in prediction.arrays
    # the labels are the GAP's, not the dataset's: the rattled configuration is predicted differently
    assert abs(predicted[1].info['energy'] - frames[1].info['energy']) > 1e-3
    # an environment away from the training set is more uncertain than a training configuration
    assert predicted[1].info['uncertainty'] > 1.3 * predicted[0].info['uncertainty']  # measured: 1.58x


def test_one_calculation_per_frame_and_no_uncertainty_by_default(workdir):
    """Energy, forces and stress from one calculate() call per frame; the variance only when asked for."""
    from quippy.potential import Potential

    from aiida_mlpot.engines.evaluate import predict_frames

    frames = read(workdir / 'dataset.xyz', index=':')
    calculator = Potential(param_filename=str(workdir / 'gap.xml'))
    calls = []
    original = calculator.calculate

    def counting(atoms=None, properties=None, *args, **kwargs):
        calls.append(tuple(properties))
        return original(atoms, properties, *args, **kwargs)

    calculator.calculate = counting
    plain = predict_frames(calculator, frames)
    assert calls == [('energy', 'forces', 'stress')] * len(frames)
    assert all('uncertainty' not in atoms.info for atoms in plain)
    with_std = predict_frames(calculator, frames, uncertainty=True)
    assert len(calls) == 2 * len(frames)
    assert calculator.calc_args == ''  # restored after the call
    for a, b in zip(plain, with_std):
        assert a.info['energy'] == b.info['energy'] and np.array_equal(a.arrays['forces'], b.arrays['forces'])
        assert b.info['uncertainty'] > 0


def test_driver_runs_as_a_module_and_reports_errors(workdir):
    """``python -m aiida_mlpot.engines.evaluate`` as the calculation runs it; a missing file is an error summary."""
    config = json.loads((workdir / 'input.json').read_text())
    config['uncertainty'] = False
    (workdir / 'input.json').write_text(json.dumps(config))
    command = [sys.executable, '-m', 'aiida_mlpot.engines.evaluate', 'input.json']
    result = subprocess.run(command, cwd=workdir, capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stderr
    assert 'outcome: completed' in result.stdout
    assert 'uncertainty' not in read(workdir / 'predictions.xyz', index=0).info

    (workdir / 'summary.json').unlink()
    (workdir / 'dataset.xyz').unlink()
    result = subprocess.run(command, cwd=workdir, capture_output=True, text=True, check=False)
    assert result.returncode == 1
    summary = json.loads((workdir / 'summary.json').read_text())
    assert summary['outcome'] == 'error' and 'dataset.xyz' in summary['reason']
