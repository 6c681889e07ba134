"""Pure input builders of the sampling stage (no AiiDA): state points, their labels and MD parameters.

A state point is ``{'temperature_K': ..., 'pressure_bar': ...}`` (NPT) or ``{'temperature_K': ...,
'volume_scale': ...}`` (NVT: the cell volume is multiplied by the factor before the run). The MD settings
shared by every state point (``md_parameters``) are named as in ``potentials.lammps_input.MD_PARAMETER_KEYS``,
the vocabulary of ML MD too. ``SamplingWorkChain`` (``mlpot.sampling``) runs them.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from aiida_mlpot.potentials.lammps_input import MD_PARAMETER_KEYS

__all__ = (
    'MD_PARAMETERS_SHARED',
    'STATE_POINT_KEYS',
    'state_point_grid',
    'state_point_key',
    'state_point_parameters',
    'validate_md_parameters_shared',
    'validate_state_point',
)

#: Keys of one state point: ``temperature_K`` with ``pressure_bar`` (NPT) or ``volume_scale`` (NVT).
STATE_POINT_KEYS = ('temperature_K', 'pressure_bar', 'volume_scale')
#: Keys of ``md_parameters``: the MD settings shared by every state point (see ``MD_PARAMETER_KEYS``).
MD_PARAMETERS_SHARED = tuple(key for key in MD_PARAMETER_KEYS if key not in ('ensemble', *STATE_POINT_KEYS))
#: Shared settings that apply to NPT state points only.
_NPT_ONLY = ('taup_fs', 'pressure_coupling')


def _format_number(number: float) -> str:
    return f'{float(number):g}'.replace('.', 'p').replace('-', 'm').replace('+', '')


def state_point_key(state_point: Mapping) -> str:
    """Return the label of a state point: ``T1400_P1`` (NPT, bar) or ``T1400_V0p95`` (NVT volume scale).

    It is a valid link label and is used as ``config_type`` of the state point's frames.
    """
    if 'pressure_bar' in state_point:
        value, letter = state_point['pressure_bar'], 'P'
    else:
        value, letter = state_point['volume_scale'], 'V'
    return f'T{_format_number(state_point["temperature_K"])}_{letter}{_format_number(value)}'


def state_point_grid(
    temperatures_K: Sequence[float],
    pressures_bar: Sequence[float] | None = None,
    volume_scales: Sequence[float] | None = None,
) -> list[dict]:
    """Return the state points of a grid: temperatures × pressures (NPT) or temperatures × volume scales (NVT).

    :param temperatures_K: temperatures (K), the outer loop.
    :param pressures_bar: pressures (bar) of an NPT grid.
    :param volume_scales: volume factors of an NVT grid; with neither argument, ``[1.0]`` (NVT at the volume
        of the starting structure).
    :return: ``[{'temperature_K': ..., 'pressure_bar': ...}, ...]`` or ``[{'temperature_K': ...,
        'volume_scale': ...}, ...]``, temperatures outer, pressures / volume scales inner.
    :raises ValueError: if both ``pressures_bar`` and ``volume_scales`` are given.
    """
    if pressures_bar is not None and volume_scales is not None:
        raise ValueError('give `pressures_bar` (NPT grid) or `volume_scales` (NVT grid), not both')
    if pressures_bar is not None:
        name, values = 'pressure_bar', pressures_bar
    else:
        name, values = 'volume_scale', [1.0] if volume_scales is None else volume_scales
    return [{'temperature_K': float(t), name: float(v)} for t in temperatures_K for v in values]


def validate_state_point(state_point) -> str | None:
    """Return an error message if ``state_point`` is not ``{temperature_K, pressure_bar | volume_scale}``."""
    if not isinstance(state_point, Mapping):
        return f'a state point must be a dictionary, got {state_point!r}'
    unknown = [key for key in state_point if key not in STATE_POINT_KEYS]
    if unknown:
        return f'unknown state point key `{unknown[0]}`; known: {", ".join(STATE_POINT_KEYS)}'
    if 'temperature_K' not in state_point:
        return f'the state point {dict(state_point)} has no `temperature_K`'
    if ('pressure_bar' in state_point) == ('volume_scale' in state_point):
        return (
            f'the state point {dict(state_point)} needs exactly one of `pressure_bar` (NPT) or '
            '`volume_scale` (NVT)'
        )
    for key, value in state_point.items():
        if isinstance(value, bool) or not isinstance(value, int | float):
            return f'`{key}` of the state point {dict(state_point)} must be a number'
    return None


def state_point_parameters(state_point: Mapping, md_parameters: Mapping, index: int) -> dict:
    """Return the parameters of the ``LammpsMdCalculation`` of a state point.

    :param state_point: ``{'temperature_K', 'pressure_bar'}`` (NPT) or ``{'temperature_K', 'volume_scale'}``.
    :param md_parameters: the shared MD settings (:data:`MD_PARAMETERS_SHARED`); ``taup_fs`` and
        ``pressure_coupling`` are passed to NPT state points only.
    :param index: position of the state point; its velocity seed is ``md_parameters['seed'] + index``.
    """
    npt = 'pressure_bar' in state_point
    parameters = {'ensemble': 'npt' if npt else 'nvt'}
    parameters.update({key: float(value) for key, value in state_point.items()})
    for key, value in md_parameters.items():
        if npt or key not in _NPT_ONLY:
            parameters[key] = value
    parameters['seed'] = int(md_parameters['seed']) + index
    return parameters


def validate_md_parameters_shared(md_parameters) -> str | None:
    """Return an error message if the shared ``md_parameters`` have an unknown key or lack a required one."""
    if not isinstance(md_parameters, Mapping):
        return 'md_parameters must be a dictionary'
    unknown = [key for key in md_parameters if key not in MD_PARAMETERS_SHARED]
    if unknown:
        return f'unknown key `{unknown[0]}` in md_parameters; known: {", ".join(MD_PARAMETERS_SHARED)}'
    missing = [
        key
        for key in ('timestep_fs', 'production_steps', 'dump_interval', 'seed')
        if key not in md_parameters
    ]
    if missing:
        return f'md_parameters miss the keys {missing}'
    return None
