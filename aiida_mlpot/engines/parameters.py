"""The parameters of the ML-MD driver: defaults, validation, what a run needs (no AiiDA import).

The sections (``md``, ``extrapolation``, ``stability``, ``lammps``) are those of the ``parameters`` input of
:class:`~aiida_mlpot.calculations.ml_md.MlMdCalculation` and of the driver's JSON input
(:mod:`aiida_mlpot.engines.ml_md`); :func:`normalise_parameters` merges them over :data:`DEFAULTS`.
"""

from __future__ import annotations

import copy

import numpy as np

from aiida_mlpot.descriptors.soap import DEFAULT_SOAP

__all__ = ('DEFAULTS', 'REMATCH_RELATIVE_THRESHOLD', 'needs_training', 'normalise_parameters')

#: ``rematch`` without ``critical_similarity`` or ``relative_threshold``: the relative threshold used, i.e. the
#: trigger distance is this many times the ``percentile`` of the training frames' leave-one-out REMatch
#: distances (docs/ml_md.md, "The REMatch trigger": on 64-atom NaCl melts, 2 leaves every held-out 1400 K frame
#: and 1100 K frame untriggered and catches a cell compressed to 0.8 of its volume).
REMATCH_RELATIVE_THRESHOLD = 2.0

#: Default parameters; the input's sections are merged over these.
DEFAULTS: dict = {
    'md': {
        'engine': 'ase',  # ase (ASE + quippy) | lammps (LAMMPS with pair_style quip, segments; see lammps_quip)
        'ensemble': 'nvt',  # nvt | npt
        'thermostat': 'langevin',  # nvt: langevin | bussi
        'barostat': 'mtk',  # npt: mtk (IsotropicMTKNPT) | berendsen (NPTBerendsen)
        'timestep_fs': 2.0,
        'n_steps': 100,
        'temperature_K': 300.0,
        'pressure_bar': 1.0,
        'friction_per_fs': 0.01,  # langevin
        'taut_fs': 100.0,  # bussi, mtk, berendsen
        'taup_fs': 1000.0,  # mtk, berendsen
        'compressibility_per_bar': 4.57e-5,  # berendsen
        'seed': 1,
        'dump_interval': 10,
        'velocities': 'auto',  # auto: momenta of the structure if present, else Maxwell-Boltzmann | maxwell
    },
    'extrapolation': {
        'method': 'gap_variance',  # gap_variance | soap_novelty | rematch | none
        'check_interval': 10,
        'threshold': None,  # absolute threshold on the frame score (eV for gap_variance)
        'relative_threshold': None,  # k: threshold = k x percentile of the training frames' scores
        'percentile': 99.0,
        'reference_score': None,  # precomputed percentile of the training scores (skips the computation)
        'n_flagged': 3,  # frames kept as candidates on a trigger (the triggering one included)
        'soap': {
            **DEFAULT_SOAP,
            'max_environments': 20000,
        },  # soap_novelty, rematch: descriptor of descriptors.soap
        # rematch: trigger when the largest REMatch similarity to a reference is below this (0 < k < 1);
        # None: calibrated, see REMATCH_RELATIVE_THRESHOLD
        'critical_similarity': None,
        'max_references': 50,  # rematch: compare with an FPS subset of this many training frames; None: all
        'rematch_alpha': 0.1,  # rematch: entropic regularisation of the match (dscribe REMatchKernel alpha)
    },
    'stability': {
        'min_distance': 1.0,  # Å; None disables
        'max_temperature_factor': 3.0,  # x target temperature; None disables
        'max_volume_factor': 1.5,  # V/V0 outside [1/f, f]; None disables
        'interval': 1,  # steps between the (cheap) stability checks
    },
    'lammps': {  # md.engine = lammps only
        'command': None,  # LAMMPS command line (e.g. 'lmp' or 'srun lmp_mpi'); None: 'lmp'
        'segment_steps': 100,  # steps per LAMMPS run between two scorings of the dumped frames
    },
}

_CHOICES = {
    ('md', 'engine'): ('ase', 'lammps'),
    ('md', 'ensemble'): ('nvt', 'npt'),
    ('md', 'thermostat'): ('langevin', 'bussi'),
    ('md', 'barostat'): ('mtk', 'berendsen'),
    ('md', 'velocities'): ('auto', 'maxwell'),
    ('extrapolation', 'method'): ('gap_variance', 'soap_novelty', 'rematch', 'none'),
}
_POSITIVE_INT = {
    ('md', 'n_steps'),
    ('md', 'dump_interval'),
    ('extrapolation', 'check_interval'),
    ('extrapolation', 'n_flagged'),
    ('stability', 'interval'),
    ('lammps', 'segment_steps'),
}
_POSITIVE = {
    ('md', 'timestep_fs'),
    ('md', 'temperature_K'),
    ('md', 'friction_per_fs'),
    ('md', 'taut_fs'),
    ('md', 'taup_fs'),
    ('md', 'compressibility_per_bar'),
    ('extrapolation', 'percentile'),
    ('extrapolation', 'rematch_alpha'),
}
_OPTIONAL_POSITIVE_INT = {('extrapolation', 'max_references')}
_OPTIONAL_POSITIVE = {
    ('extrapolation', 'threshold'),
    ('extrapolation', 'relative_threshold'),
    ('extrapolation', 'reference_score'),
    ('stability', 'min_distance'),
    ('stability', 'max_temperature_factor'),
    ('stability', 'max_volume_factor'),
}


def _is_number(value) -> bool:
    return not isinstance(value, bool) and isinstance(value, int | float)


def normalise_parameters(parameters: dict | None) -> dict:
    """Return the parameters merged over :data:`DEFAULTS`, validated.

    :raises ValueError: unknown section or key, wrong type or value.
    """
    parameters = parameters or {}
    result = copy.deepcopy(DEFAULTS)
    for section, values in parameters.items():
        if section not in DEFAULTS:
            raise ValueError(f'unknown parameter section `{section}`; known: {sorted(DEFAULTS)}')
        if not isinstance(values, dict):
            raise ValueError(f'parameter section `{section}` must be a dictionary')
        for key, value in values.items():
            if key not in DEFAULTS[section]:
                raise ValueError(f'unknown parameter `{section}.{key}`; known: {sorted(DEFAULTS[section])}')
            if key == 'soap':
                unknown = set(value or {}) - set(DEFAULTS[section]['soap'])
                if unknown:
                    raise ValueError(f'unknown SOAP parameter(s) {sorted(unknown)}')
                result[section]['soap'].update(value or {})
            else:
                result[section][key] = value
    for (section, key), choices in _CHOICES.items():
        if result[section][key] not in choices:
            raise ValueError(f'`{section}.{key}` must be one of {choices}, got {result[section][key]!r}')
    for section, key in _POSITIVE_INT:
        value = result[section][key]
        if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
            raise ValueError(f'`{section}.{key}` must be a positive integer, got {value!r}')
    for section, key in _OPTIONAL_POSITIVE_INT:
        value = result[section][key]
        if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value <= 0):
            raise ValueError(f'`{section}.{key}` must be a positive integer or None, got {value!r}')
    for section, key in _POSITIVE | _OPTIONAL_POSITIVE:
        value = result[section][key]
        if value is None and (section, key) in _OPTIONAL_POSITIVE:
            continue
        if not _is_number(value) or not np.isfinite(value) or value <= 0:
            raise ValueError(f'`{section}.{key}` must be a positive number, got {value!r}')
    if isinstance(result['md']['seed'], bool) or not isinstance(result['md']['seed'], int):
        raise ValueError('`md.seed` must be an integer')
    if not _is_number(result['md']['pressure_bar']):
        raise ValueError('`md.pressure_bar` must be a number')
    extrapolation = result['extrapolation']
    if extrapolation['threshold'] is not None and extrapolation['relative_threshold'] is not None:
        raise ValueError(
            'give either `extrapolation.threshold` or `extrapolation.relative_threshold`, not both'
        )
    if extrapolation['method'] == 'none' and (
        extrapolation['threshold'] is not None or extrapolation['relative_threshold'] is not None
    ):
        raise ValueError('a threshold was given but `extrapolation.method` is `none`')
    _check_rematch(extrapolation)
    command = result['lammps']['command']
    if command is not None and (not isinstance(command, str) or not command.strip()):
        raise ValueError('`lammps.command` must be a non-empty string or None')
    return result


def _check_rematch(extrapolation: dict) -> None:
    """Check the ``rematch`` settings of the (merged) ``extrapolation`` section; fill its default threshold."""
    critical = extrapolation['critical_similarity']
    if critical is not None:
        if extrapolation['method'] != 'rematch':
            raise ValueError(
                '`extrapolation.critical_similarity` is only used with `extrapolation.method = rematch`'
            )
        if not _is_number(critical) or not 0.0 < critical < 1.0:
            raise ValueError(
                f'`extrapolation.critical_similarity` must be a number in (0, 1), got {critical!r}'
            )
        if extrapolation['relative_threshold'] is not None:
            raise ValueError(
                'give either `extrapolation.critical_similarity` or `extrapolation.relative_threshold`, not both'
            )
    if extrapolation['method'] != 'rematch':
        return
    if extrapolation['threshold'] is not None:
        raise ValueError(
            '`rematch` triggers on a similarity: give `extrapolation.critical_similarity` (or '
            '`relative_threshold`), not `extrapolation.threshold`'
        )
    if critical is None and extrapolation['relative_threshold'] is None:
        extrapolation['relative_threshold'] = REMATCH_RELATIVE_THRESHOLD


def needs_training(parameters: dict) -> bool:
    """Return whether a run with these (normalised) parameters needs the training frames."""
    extrapolation = parameters['extrapolation']
    if extrapolation['method'] in ('soap_novelty', 'rematch'):
        return True
    return extrapolation['relative_threshold'] is not None and extrapolation['reference_score'] is None
