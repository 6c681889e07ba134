"""The pure state-point helpers of the sampling stage (aiida_mlpot.inputs.sampling)."""

from __future__ import annotations

import pytest

from aiida_mlpot.inputs.sampling import (
    MD_PARAMETERS_SHARED,
    state_point_grid,
    state_point_key,
    state_point_parameters,
    validate_md_parameters_shared,
    validate_state_point,
)
from aiida_mlpot.potentials.lammps_input import validate_md_parameters

SHARED = {
    'timestep_fs': 2.0,
    'equilibration_steps': 10,
    'production_steps': 100,
    'dump_interval': 10,
    'seed': 7,
}


def test_grid_npt_and_nvt():
    """Temperatures are the outer loop; NPT points carry pressure_bar, NVT points volume_scale."""
    assert state_point_grid([1100, 1400.0], pressures_bar=[1.0, 1000]) == [
        {'temperature_K': 1100.0, 'pressure_bar': 1.0},
        {'temperature_K': 1100.0, 'pressure_bar': 1000.0},
        {'temperature_K': 1400.0, 'pressure_bar': 1.0},
        {'temperature_K': 1400.0, 'pressure_bar': 1000.0},
    ]
    assert state_point_grid([1400.0], volume_scales=[0.95, 1.05]) == [
        {'temperature_K': 1400.0, 'volume_scale': 0.95},
        {'temperature_K': 1400.0, 'volume_scale': 1.05},
    ]
    assert state_point_grid([300.0]) == [{'temperature_K': 300.0, 'volume_scale': 1.0}]
    assert state_point_grid([], pressures_bar=[1.0]) == []
    with pytest.raises(ValueError, match='not both'):
        state_point_grid([300.0], pressures_bar=[1.0], volume_scales=[1.0])


@pytest.mark.parametrize(
    ('point', 'key'),
    [
        ({'temperature_K': 1400.0, 'pressure_bar': 1.0}, 'T1400_P1'),
        ({'temperature_K': 1400.0, 'volume_scale': 0.95}, 'T1400_V0p95'),
        ({'temperature_K': 87.5, 'pressure_bar': -500.0}, 'T87p5_Pm500'),
        ({'temperature_K': 1.0e7, 'volume_scale': 1.0}, 'T1e07_V1'),
    ],
)
def test_state_point_key(point, key):
    assert state_point_key(point) == key
    assert key.isidentifier()  # a valid link label


@pytest.mark.parametrize(
    ('point', 'match'),
    [
        ({'temperature_K': 300.0, 'pressure': 1.0}, 'unknown state point key `pressure`'),
        ({'temperature_K': 300.0}, 'exactly one of'),
        ({'pressure_bar': 1.0}, 'has no `temperature_K`'),
        ({'temperature_K': True, 'pressure_bar': 1.0}, '`temperature_K` of the state point'),
        ([300.0, 1.0], 'must be a dictionary'),
    ],
)
def test_validate_state_point(point, match):
    assert match in validate_state_point(point)


def test_state_point_parameters():
    """A state point plus the shared settings make valid LammpsMdCalculation parameters; seeds differ by index."""
    npt = state_point_parameters(
        {'temperature_K': 1400.0, 'pressure_bar': 1.0}, SHARED | {'taup_fs': 500.0}, 0
    )
    assert npt == {
        'ensemble': 'npt',
        'temperature_K': 1400.0,
        'pressure_bar': 1.0,
        **SHARED,
        'taup_fs': 500.0,
    }
    assert validate_md_parameters(npt) is None
    # the NPT-only settings are left out of NVT state points
    nvt = state_point_parameters(
        {'temperature_K': 1400.0, 'volume_scale': 0.9}, SHARED | {'taup_fs': 500.0}, 3
    )
    assert nvt == {'ensemble': 'nvt', 'temperature_K': 1400.0, 'volume_scale': 0.9, **SHARED, 'seed': 10}
    assert validate_md_parameters(nvt) is None


def test_validate_md_parameters_shared():
    assert validate_md_parameters_shared(SHARED) is None
    assert 'unknown key `temperature_K`' in validate_md_parameters_shared(SHARED | {'temperature_K': 1.0})
    assert "miss the keys ['seed']" in validate_md_parameters_shared(
        {k: v for k, v in SHARED.items() if k != 'seed'}
    )
    assert set(MD_PARAMETERS_SHARED) == {
        'timestep_fs',
        'equilibration_steps',
        'production_steps',
        'dump_interval',
        'seed',
        'taut_fs',
        'taup_fs',
        'pressure_coupling',
    }
