"""State points of the explorations and validations: ``{temperature_K}`` (NVT) or ``{temperature_K, pressure_bar}``.

Shared by :class:`~aiida_mlpot.workflows.active_learning.ActiveLearningWorkChain` and
:class:`~aiida_mlpot.workflows.validation.ValidationWorkChain`.
"""

from __future__ import annotations

import math
from collections.abc import Mapping

from aiida_mlpot.inputs.sampling import state_point_key


def validate_state_points(node, _) -> str | None:
    """Each state point is ``{temperature_K}`` (NVT at the structure's volume) or ``{temperature_K, pressure_bar}``."""
    points = node.get_list()
    if not points:
        return '`state_points`: empty; give at least one {temperature_K[, pressure_bar]}'
    for index, point in enumerate(points):
        if not isinstance(point, dict):
            return f'`state_points[{index}]`: must be a dictionary, got {point!r}'
        unknown = sorted(set(point) - {'temperature_K', 'pressure_bar'})
        if unknown:
            return f'`state_points[{index}].{unknown[0]}`: unknown key; known: temperature_K, pressure_bar'
        temperature = point.get('temperature_K')
        if (
            isinstance(temperature, bool)
            or not isinstance(temperature, int | float)
            or not (math.isfinite(temperature) and temperature > 0)
        ):
            return f'`state_points[{index}].temperature_K`: must be a positive finite number, got {temperature!r}'
        pressure = point.get('pressure_bar')
        if pressure is not None and (
            isinstance(pressure, bool) or not isinstance(pressure, int | float) or not math.isfinite(pressure)
        ):
            return f'`state_points[{index}].pressure_bar`: must be a finite number, got {pressure!r}'
    if len({exploration_key(point) for point in points}) != len(points):
        return '`state_points`: a state point is given twice'
    return None


def sampling_point(point: Mapping, volume_scale: float = 1.0) -> dict:
    """Return the sampling state point of an exploration state point (NVT: at ``volume_scale``)."""
    if point.get('pressure_bar') is not None:
        return {'temperature_K': point['temperature_K'], 'pressure_bar': point['pressure_bar']}
    return {'temperature_K': point['temperature_K'], 'volume_scale': float(volume_scale)}


def exploration_key(point: Mapping) -> str:
    """Return the label of an exploration state point, ``T1400_P1`` (NPT) or ``T1400_V1`` (NVT): that of the
    sampling state point whose last frame starts its exploration."""
    return state_point_key(sampling_point(point))
