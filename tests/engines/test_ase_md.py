"""End-to-end tests of the ML-MD driver with a GAP fitted by the real gap_fit (NaCl, 64 atoms)."""

from __future__ import annotations

import json

import numpy as np
import pytest
from ase.io import read

from aiida_mlpot.engines.ml_md import main, run
from tests.engines.ml_md_helpers import prepare

pytestmark = pytest.mark.e2e


def start_frame(gap, index=0):
    frame = gap.held_out[index]
    atoms = frame.copy()
    atoms.calc = None
    return atoms


def test_nvt_1400K_completes(ml_md_gap, ml_md_reference_score, tmp_path):
    """1400 K NVT with a threshold of 3x the training 99th percentile: no trigger, trajectory labelled."""
    parameters = {
        'md': {'temperature_K': 1400.0, 'n_steps': 40, 'dump_interval': 10, 'seed': 3},
        'extrapolation': {
            'check_interval': 5,
            'relative_threshold': 3.0,
            'reference_score': ml_md_reference_score,
        },
    }
    prepare(tmp_path, ml_md_gap, start_frame(ml_md_gap), parameters)
    assert main([str(tmp_path / 'input.json')]) == 0
    summary = json.loads((tmp_path / 'summary.json').read_text())
    assert summary['outcome'] == 'completed', summary['reason']
    assert summary['steps_done'] == 40
    assert summary['threshold'] == pytest.approx(3.0 * ml_md_reference_score)
    assert 0.0 < summary['max_score'] < summary['threshold']
    assert summary['traces']['step'] == list(range(0, 41, 5))
    frames = read(tmp_path / 'trajectory.xyz', ':')
    assert [atoms.info['step'] for atoms in frames] == [0, 10, 20, 30, 40]
    for atoms in frames:
        assert np.isfinite(atoms.get_potential_energy())
        assert atoms.get_forces().shape == (64, 3)
        assert atoms.info['virial'].size == 9
        assert 0.0 < atoms.info['uncertainty'] <= summary['max_score']
        assert 'momenta' in atoms.arrays
    assert not (tmp_path / 'flagged.xyz').exists()
    # the driver's temperature stays in the physical range of a 64-atom system at 1400 K
    assert 700 < np.mean(summary['traces']['temperature_K']) < 2100


def test_compressed_cell_extrapolates(ml_md_gap, ml_md_reference_score, tmp_path):
    """A cell compressed by 20 % (lengths x 0.8) is outside the training data: outcome `extrapolation`."""
    atoms = start_frame(ml_md_gap, 1)
    atoms.set_cell(atoms.cell * 0.8, scale_atoms=True)
    parameters = {
        'md': {'temperature_K': 1400.0, 'n_steps': 30, 'dump_interval': 10},
        'extrapolation': {
            'check_interval': 5,
            'relative_threshold': 3.0,
            'reference_score': ml_md_reference_score,
            'n_flagged': 3,
        },
    }
    config = prepare(tmp_path, ml_md_gap, atoms, parameters)
    summary = run(config, tmp_path)
    assert summary['outcome'] == 'extrapolation'
    assert summary['triggered_step'] <= 10  # within the first checks
    assert summary['max_score'] > summary['threshold']
    flagged = read(tmp_path / 'flagged.xyz', ':')
    assert 1 <= len(flagged) == summary['n_flagged'] <= 3
    assert flagged[-1].info['step'] == summary['triggered_step']
    assert flagged[-1].info['uncertainty'] == pytest.approx(summary['max_score'])
    final = read(tmp_path / 'final.xyz')
    assert final.info['step'] == summary['triggered_step']


def test_absurd_timestep_is_unstable(ml_md_gap, tmp_path):
    """A 40 fs time step blows the system up: outcome `unstable` (not a crash), with the failed checks."""
    parameters = {
        'md': {'temperature_K': 1400.0, 'n_steps': 50, 'timestep_fs': 40.0, 'dump_interval': 10},
        'extrapolation': {'method': 'none'},
    }
    prepare(tmp_path, ml_md_gap, start_frame(ml_md_gap, 2), parameters)
    assert main([str(tmp_path / 'input.json')]) == 0
    summary = json.loads((tmp_path / 'summary.json').read_text())
    assert summary['outcome'] == 'unstable'
    assert summary['steps_done'] < 50
    assert {check['name'] for check in summary['failed_checks']} & {'temperature', 'min_distance', 'finite'}
    frames = read(tmp_path / 'trajectory.xyz', ':')
    assert frames[-1].info['step'] == summary['triggered_step']


def test_npt_reports_volume_trace(ml_md_gap, ml_md_reference_score, tmp_path):
    """NPT (isotropic MTK barostat) runs and the volume trace moves."""
    parameters = {
        'md': {
            'ensemble': 'npt',
            'temperature_K': 1400.0,
            'n_steps': 30,
            'dump_interval': 10,
            'taup_fs': 200.0,
        },
        'extrapolation': {
            'check_interval': 5,
            'relative_threshold': 5.0,
            'reference_score': ml_md_reference_score,
        },
    }
    config = prepare(tmp_path, ml_md_gap, start_frame(ml_md_gap, 3), parameters)
    summary = run(config, tmp_path)
    assert summary['outcome'] == 'completed', summary['reason']
    assert summary['integrator'] == 'IsotropicMTKNPT'
    volumes = summary['traces']['volume']
    assert len(volumes) == 7
    assert volumes[0] == pytest.approx(summary['initial_volume'])
    assert np.ptp(volumes) > 1.0  # the cell breathes
    cells = [atoms.get_volume() for atoms in read(tmp_path / 'trajectory.xyz', ':')]
    assert cells[-1] == pytest.approx(summary['final_volume'])
    assert summary['volume_trace'] == [
        [step, volume] for step, volume in zip(summary['traces']['step'], volumes)
    ]

    parameters['md'].update(barostat='berendsen', n_steps=10, taup_fs=100.0)
    summary = run(
        prepare(tmp_path / 'berendsen', ml_md_gap, start_frame(ml_md_gap, 3), parameters),
        tmp_path / 'berendsen',
    )
    assert summary['outcome'] == 'completed' and summary['integrator'] == 'NPTBerendsen'
    assert summary['final_volume'] != pytest.approx(summary['initial_volume'], rel=1e-6)


def test_soap_novelty_and_restart(ml_md_gap, tmp_path):
    """SOAP novelty with a relative threshold from the training frames; a restart continues steps and momenta."""
    parameters = {
        'md': {'temperature_K': 1400.0, 'n_steps': 10, 'dump_interval': 5, 'thermostat': 'bussi'},
        'extrapolation': {'method': 'soap_novelty', 'check_interval': 5, 'relative_threshold': 2.0},
    }
    config = prepare(
        tmp_path / 'first', ml_md_gap, start_frame(ml_md_gap, 4), parameters, ml_md_gap.training[::4]
    )
    summary = run(config, tmp_path / 'first')
    assert summary['outcome'] == 'completed', summary['reason']
    assert summary['reference_computed'] and summary['reference_score'] > 0
    assert summary['max_score'] < summary['threshold']

    final = read(tmp_path / 'first' / 'final.xyz')
    config = prepare(tmp_path / 'second', ml_md_gap, final, parameters, ml_md_gap.training[::4])
    config['initial_step'] = final.info['step']
    summary = run(config, tmp_path / 'second')
    assert summary['velocities'] == 'from_structure'
    assert summary['initial_step'] == 10 and summary['final_step'] == 20


def test_driver_error_writes_summary(tmp_path):
    """A broken input gives exit code 1 and an `error` summary."""
    (tmp_path / 'input.json').write_text(
        json.dumps({'structure': 'missing.xyz', 'potential': {'xml': 'gap.xml'}})
    )
    assert main([str(tmp_path / 'input.json')]) == 1
    summary = json.loads((tmp_path / 'summary.json').read_text())
    assert summary['outcome'] == 'error'
