"""Selection of configurations to label; pure numpy, no AiiDA import.

Every selector has the signature ``select_x(pool, n, *, seed=..., allow_fewer=False, ...) -> indices``
where ``pool`` is a list of labelled ASE Atoms or arrays extracted beforehand.
"""

from aiida_mlpot.selection.base import (
    EmptyPoolError,
    MissingPropertyError,
    PerAtomValues,
    SelectionError,
    TooFewConfigurationsError,
    check_count,
    energy_per_atom,
    per_atom_energies,
    per_atom_force_magnitudes,
)
from aiida_mlpot.selection.basic import select_random, select_temporal
from aiida_mlpot.selection.compose import SELECTORS, SelectionResult, run_selection, validate_selection_spec
from aiida_mlpot.selection.fps import farthest_point_sampling, select_fps
from aiida_mlpot.selection.split import split_indices, validate_split_spec
from aiida_mlpot.selection.uniform import (
    select_uniform_atomic_energy,
    select_uniform_energy,
    select_uniform_force,
    select_uniform_values,
)

__all__ = (
    'EmptyPoolError',
    'MissingPropertyError',
    'PerAtomValues',
    'SELECTORS',
    'SelectionError',
    'SelectionResult',
    'TooFewConfigurationsError',
    'check_count',
    'energy_per_atom',
    'farthest_point_sampling',
    'per_atom_energies',
    'per_atom_force_magnitudes',
    'run_selection',
    'select_fps',
    'select_random',
    'select_temporal',
    'select_uniform_atomic_energy',
    'select_uniform_energy',
    'select_uniform_force',
    'select_uniform_values',
    'split_indices',
    'validate_selection_spec',
    'validate_split_spec',
)
