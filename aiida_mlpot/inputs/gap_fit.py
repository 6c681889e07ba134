"""The ``gap_fit`` parameter dictionary: validation, command line, memory estimate and memory planning.

Pure module (no AiiDA import). The structured dictionary accepted by
:class:`~aiida_mlpot.calculations.gap_fit.GapFitCalculation` looks like::

    {
        'descriptors': [
            {'type': 'distance_2b', 'cutoff': 5.0, 'n_sparse': 20, 'delta': 1.0, 'theta_uniform': 1.0,
             'covariance_type': 'ard_se', 'sparse_method': 'uniform'},
            {'type': 'soap', 'n_max': 6, 'l_max': 4, 'atom_sigma': 0.5, 'cutoff': 5.0,
             'cutoff_transition_width': 1.0, 'zeta': 4, 'delta': 0.2, 'covariance_type': 'dot_product',
             'sparse_method': 'cur_points', 'n_sparse': 100},
        ],
        'default_sigma': {'energy': 0.002, 'force': 0.05, 'virial': 0.05, 'hessian': 0.0},
        'config_type_sigma': {'T1400': {'energy': 0.003, 'force': 0.08, 'virial': 0.08, 'hessian': 0.0}},
        'e0_method': 'average',          # or 'e0': -1.2 / {'Na': -1.2, 'Cl': -0.4}
        'sparse_jitter': 1e-8,
        'seed': 1,
        'baseline': {'type': 'coulomb', 'charges': {'Na': 1.0, 'Cl': -1.0}, 'cutoff': 9.0},  # optional
    }

Sigmas are per atom for energy and virial (``sigma_per_atom=T``, the gap_fit default), in eV, eV/Å, eV.
"""

from __future__ import annotations

import dataclasses
import math
import numbers
from collections.abc import Mapping, Sequence

from aiida_mlpot.common.mappings import check_keys

__all__ = (
    'DESCRIPTOR_KEYS',
    'DatasetStats',
    'build_command_line',
    'coulomb_baseline_xml',
    'dataset_stats',
    'descriptor_string',
    'estimate_memory',
    'plan_memory',
    'reduce_sparse_points',
    'soap_dimension',
    'validate_parameters',
)

#: Base memory of a gap_fit process (Python wrapper, quippy, BLAS), MB; measured RSS of a tiny fit: 106 MB.
BASE_MEMORY_MB = 150.0
BYTES_PER_MB = 1024.0**2

SPARSE_METHODS = (
    'random',
    'pivot',
    'cluster',
    'uniform',
    'kmeans',
    'covariance',
    'none',
    'fuzzy',
    'cur_covariance',
    'cur_points',
)
COVARIANCE_TYPES = ('ard_se', 'dot_product', 'pp', 'bond_real_space')

# key -> (kind, required, default); kinds: 'pos_float', 'nonneg_float', 'pos_int', 'nonneg_int', 'bool', or a tuple
# of allowed strings.
_COMMON = {
    'cutoff': ('pos_float', True, None),
    'cutoff_transition_width': ('nonneg_float', False, None),
    'n_sparse': ('pos_int', True, None),
    'delta': ('pos_float', True, None),
    'covariance_type': (COVARIANCE_TYPES, False, None),
    'sparse_method': (SPARSE_METHODS, False, None),
    'add_species': ('bool', False, True),
}
#: Allowed keys of each descriptor type, with their kind, whether they are required and their default.
DESCRIPTOR_KEYS: dict[str, dict[str, tuple]] = {
    'distance_2b': {
        **_COMMON,
        'theta_uniform': ('pos_float', False, 1.0),
        'covariance_type': (COVARIANCE_TYPES, False, 'ard_se'),
        'sparse_method': (SPARSE_METHODS, False, 'uniform'),
    },
    'soap': {
        **_COMMON,
        'n_max': ('pos_int', True, None),
        'l_max': ('nonneg_int', True, None),
        'atom_sigma': ('pos_float', True, None),
        'zeta': ('pos_float', False, 4),
        'central_weight': ('nonneg_float', False, None),
        'covariance_type': (COVARIANCE_TYPES, False, 'dot_product'),
        'sparse_method': (SPARSE_METHODS, False, 'cur_points'),
    },
}
SIGMA_KEYS = ('energy', 'force', 'virial', 'hessian')
TOP_LEVEL_KEYS = (
    'descriptors',
    'default_sigma',
    'config_type_sigma',
    'e0',
    'e0_method',
    'sparse_jitter',
    'seed',
    'sigma_per_atom',
    'baseline',
)
E0_METHODS = ('average', 'isolated')
BASELINE_TYPES = ('coulomb',)


def _is_number(value) -> bool:
    return isinstance(value, numbers.Real) and not isinstance(value, bool) and math.isfinite(value)


def _check_kind(path: str, value, kind) -> str | None:
    """Return an error message if ``value`` is not of ``kind``."""
    if isinstance(kind, tuple):
        if value not in kind:
            return f'`{path}`: must be one of {", ".join(kind)}; got {value!r}'
        return None
    if kind == 'bool':
        if not isinstance(value, bool):
            return f'`{path}`: must be a boolean; got {value!r}'
        return None
    if kind in ('pos_int', 'nonneg_int'):
        if not isinstance(value, numbers.Integral) or isinstance(value, bool):
            return f'`{path}`: must be an integer; got {value!r}'
        if kind == 'pos_int' and value <= 0:
            return f'`{path}`: must be a positive integer; got {value}'
        if value < 0:
            return f'`{path}`: must be a non-negative integer; got {value}'
        return None
    if not _is_number(value):
        return f'`{path}`: must be a finite number; got {value!r}'
    if kind == 'pos_float' and value <= 0:
        return f'`{path}`: must be positive; got {value}'
    if kind == 'nonneg_float' and value < 0:
        return f'`{path}`: must be non-negative; got {value}'
    return None


def _validate_sigma(path: str, sigma) -> str | None:
    if not isinstance(sigma, Mapping):
        return f'`{path}`: must be a dictionary with keys {", ".join(SIGMA_KEYS)}; got {sigma!r}'
    unknown = sorted(set(sigma) - set(SIGMA_KEYS))
    if unknown:
        return f'`{path}.{unknown[0]}`: unknown key; allowed: {", ".join(SIGMA_KEYS)}'
    for key in ('energy', 'force'):
        if key not in sigma:
            return f'`{path}.{key}`: is required'
    for key, value in sigma.items():
        message = _check_kind(f'{path}.{key}', value, 'nonneg_float')
        if message:
            return message
    if sigma['energy'] <= 0 or sigma['force'] <= 0:
        key = 'energy' if sigma['energy'] <= 0 else 'force'
        return f'`{path}.{key}`: must be positive (a zero sigma makes the regularised system singular)'
    return None


def _validate_descriptor(index: int, descriptor) -> str | None:
    path = f'descriptors[{index}]'
    if not isinstance(descriptor, Mapping):
        return f'`{path}`: must be a dictionary; got {descriptor!r}'
    kind = descriptor.get('type')
    if kind not in DESCRIPTOR_KEYS:
        return f'`{path}.type`: must be one of {", ".join(DESCRIPTOR_KEYS)}; got {kind!r}'
    allowed = DESCRIPTOR_KEYS[kind]
    unknown = sorted(set(descriptor) - set(allowed) - {'type'})
    if unknown:
        return f'`{path}.{unknown[0]}`: unknown key for a {kind} descriptor; allowed: {", ".join(sorted(allowed))}'
    for key, (key_kind, required, _) in allowed.items():
        if key not in descriptor:
            if required:
                return f'`{path}.{key}`: is required for a {kind} descriptor'
            continue
        message = _check_kind(f'{path}.{key}', descriptor[key], key_kind)
        if message:
            return message
    width = descriptor.get('cutoff_transition_width')
    if width is not None and width >= descriptor['cutoff']:
        return f'`{path}.cutoff_transition_width`: must be smaller than the cutoff ({descriptor["cutoff"]})'
    if kind == 'soap' and descriptor.get('covariance_type', 'dot_product') != 'dot_product':
        return f'`{path}.covariance_type`: a soap descriptor needs dot_product'
    return None


def validate_parameters(parameters: Mapping) -> str | None:
    """Return an error message naming the offending key, or ``None`` if ``parameters`` is a valid fit setup."""
    message = check_keys(parameters, TOP_LEVEL_KEYS, 'parameters', '`{key}`: unknown key; allowed: {allowed}')
    if message:
        return message
    descriptors = parameters.get('descriptors')
    if not isinstance(descriptors, Sequence) or isinstance(descriptors, str) or not descriptors:
        return '`descriptors`: must be a non-empty list of descriptor dictionaries'
    for index, descriptor in enumerate(descriptors):
        message = _validate_descriptor(index, descriptor)
        if message:
            return message
    if 'default_sigma' not in parameters:
        return '`default_sigma`: is required'
    message = _validate_sigma('default_sigma', parameters['default_sigma'])
    if message:
        return message
    config_type_sigma = parameters.get('config_type_sigma', {})
    if not isinstance(config_type_sigma, Mapping):
        return '`config_type_sigma`: must be a dictionary {config_type: {energy, force, virial, hessian}}'
    for name, sigma in config_type_sigma.items():
        if not isinstance(name, str) or not name or any(c in name for c in ' :{}='):
            return f'`config_type_sigma.{name}`: a config type must be a non-empty name without spaces, :, {{, }}, ='
        message = _validate_sigma(f'config_type_sigma.{name}', sigma)
        if message:
            return message
    if 'e0' in parameters and 'e0_method' in parameters:
        return '`e0`: give either `e0` or `e0_method`, not both'
    if 'e0' in parameters:
        e0 = parameters['e0']
        if isinstance(e0, Mapping):
            for symbol, value in e0.items():
                if not _is_number(value):
                    return f'`e0.{symbol}`: must be a finite number (eV); got {value!r}'
        elif not _is_number(e0):
            return f'`e0`: must be a number or a {{species: energy}} dictionary (eV); got {e0!r}'
    if 'e0_method' in parameters and parameters['e0_method'] not in E0_METHODS:
        return f'`e0_method`: must be one of {", ".join(E0_METHODS)}; got {parameters["e0_method"]!r}'
    for key, kind in (('sparse_jitter', 'pos_float'), ('seed', 'nonneg_int'), ('sigma_per_atom', 'bool')):
        if key in parameters:
            message = _check_kind(key, parameters[key], kind)
            if message:
                return message
    if 'baseline' in parameters:
        return _validate_baseline(parameters['baseline'])
    return None


def _validate_baseline(baseline) -> str | None:
    if not isinstance(baseline, Mapping):
        return '`baseline`: must be a dictionary {type: coulomb, charges: {species: charge}, cutoff: Å}'
    unknown = sorted(set(baseline) - {'type', 'charges', 'cutoff'})
    if unknown:
        return f'`baseline.{unknown[0]}`: unknown key; allowed: type, charges, cutoff'
    if baseline.get('type') not in BASELINE_TYPES:
        return f'`baseline.type`: must be one of {", ".join(BASELINE_TYPES)}; got {baseline.get("type")!r}'
    charges = baseline.get('charges')
    if not isinstance(charges, Mapping) or not charges:
        return '`baseline.charges`: must be a non-empty {species: charge} dictionary'
    for symbol, value in charges.items():
        if not _is_number(value):
            return f'`baseline.charges.{symbol}`: must be a finite number; got {value!r}'
    return _check_kind('baseline.cutoff', baseline.get('cutoff', BASELINE_CUTOFF), 'pos_float')


def _format_value(value) -> str:
    if isinstance(value, bool):
        return 'T' if value else 'F'
    if isinstance(value, float):
        return repr(value)
    return str(value)


def descriptor_string(descriptor: Mapping) -> str:
    """Return the gap_fit descriptor string (``soap n_max=6 l_max=4 ...``) of a validated descriptor."""
    kind = descriptor['type']
    parts = [kind]
    for key, (_, _, default) in DESCRIPTOR_KEYS[kind].items():
        value = descriptor.get(key, default)
        if value is not None:
            parts.append(f'{key}={_format_value(value)}')
    return ' '.join(parts)


def _sigma_values(sigma: Mapping) -> list[float]:
    return [float(sigma.get(key, 0.0)) for key in SIGMA_KEYS]


def build_command_line(
    parameters: Mapping,
    dataset_filename: str = 'dataset.xyz',
    xml_filename: str = 'gap.xml',
    baseline_filename: str = 'baseline.xml',
) -> list[str]:
    """Return the ``gap_fit`` command line arguments (one list item per ``key=value``) of validated ``parameters``.

    Energies, forces and virials are always requested (``energy``, ``forces``, ``virial`` as in
    :class:`~aiida_mlpot.data.dataset.DatasetData`); gap_fit uses each label that the file holds.
    """
    gap = ' : '.join(descriptor_string(d) for d in parameters['descriptors'])
    args = [
        f'at_file={dataset_filename}',
        f'gap={{{gap}}}',
        'default_sigma={{{}}}'.format(' '.join(repr(v) for v in _sigma_values(parameters['default_sigma']))),
        'energy_parameter_name=energy',
        'force_parameter_name=forces',
        'virial_parameter_name=virial',
        'config_type_parameter_name=config_type',
        f'gp_file={xml_filename}',
        'sparse_separate_file=T',
    ]
    config_type_sigma = parameters.get('config_type_sigma') or {}
    if config_type_sigma:
        items = []
        for name, sigma in config_type_sigma.items():
            items.append(':'.join([name, *(repr(v) for v in _sigma_values(sigma))]))
        args.append('config_type_sigma={{{}}}'.format(':'.join(items)))
    if 'e0' in parameters:
        e0 = parameters['e0']
        if isinstance(e0, Mapping):
            args.append('e0={{{}}}'.format(':'.join(f'{s}:{float(v)!r}' for s, v in e0.items())))
        else:
            args.append(f'e0={float(e0)!r}')
    else:
        args.append(f'e0_method={parameters.get("e0_method", "average")}')
    if 'sparse_jitter' in parameters:
        args.append(f'sparse_jitter={float(parameters["sparse_jitter"])!r}')
    if 'seed' in parameters:
        args.append(f'rnd_seed={int(parameters["seed"])}')
    if 'sigma_per_atom' in parameters:
        args.append(f'sigma_per_atom={_format_value(parameters["sigma_per_atom"])}')
    if 'baseline' in parameters:
        args.append(f'core_param_file={baseline_filename}')
        args.append('core_ip_args={IP Coulomb}')
    return args


#: Default real-space cutoff (Å) of the Coulomb baseline's Ewald sum. The sum is exact either way (forces agree
#: to 1e-7 eV/Å between 6 and 9 Å), but QUIP balances real and reciprocal space poorly at short cutoffs: for
#: 64-atom molten NaCl one evaluation took 210 ms at 6 Å and 77 ms at 9 Å (measured 2026-11-29, 1 core).
BASELINE_CUTOFF = 9.0


def coulomb_baseline_xml(baseline: Mapping) -> str:
    """Return the QUIP XML of a fixed-charge Coulomb (Ewald) potential for the ``baseline`` setting."""
    from ase.data import atomic_numbers

    charges = baseline['charges']
    cutoff = float(baseline.get('cutoff', BASELINE_CUTOFF))
    lines = [f'<Coulomb_params n_types="{len(charges)}" cutoff="{cutoff!r}" method="ewald" label="default">']
    for index, (symbol, charge) in enumerate(charges.items()):
        lines.append(
            f'  <per_type_data type="{index + 1}" atomic_num="{atomic_numbers[symbol]}" charge="{charge!r}" />'
        )
    lines.append('</Coulomb_params>')
    return '\n'.join(lines) + '\n'


@dataclasses.dataclass
class DatasetStats:
    """What the memory estimate needs to know about a training set."""

    n_configs: int
    atoms_per_species: dict[str, int]
    number_density: float  # atoms per Å^3, averaged over atoms
    n_energies: int
    n_force_components: int
    n_virial_components: int

    @property
    def n_atoms(self) -> int:
        return sum(self.atoms_per_species.values())

    @property
    def n_targets(self) -> int:
        return self.n_energies + self.n_force_components + self.n_virial_components


def dataset_stats(frames: Sequence) -> DatasetStats:
    """Return the :class:`DatasetStats` of a list of ASE ``Atoms`` labelled with the package conventions.

    Only six virial components count (gap_fit uses the symmetric part).
    """
    species: dict[str, int] = {}
    weighted_density = 0.0
    n_atoms = n_energies = n_forces = n_virials = 0
    for atoms in frames:
        for symbol in atoms.get_chemical_symbols():
            species[symbol] = species.get(symbol, 0) + 1
        n = len(atoms)
        n_atoms += n
        volume = atoms.get_volume() if all(atoms.pbc) else 0.0
        weighted_density += n * (n / volume if volume > 0 else 0.0)
        if 'energy' in atoms.info:
            n_energies += 1
        if 'forces' in atoms.arrays:
            n_forces += 3 * n
        if 'virial' in atoms.info:
            n_virials += 6
    return DatasetStats(
        n_configs=len(frames),
        atoms_per_species=species,
        number_density=weighted_density / n_atoms if n_atoms else 0.0,
        n_energies=n_energies,
        n_force_components=n_forces,
        n_virial_components=n_virials,
    )


def soap_dimension(n_max: int, l_max: int, n_species: int) -> int:
    """Return the length of a gap_fit SOAP vector (power spectrum over species pairs, plus one)."""
    channels = n_species * n_max
    return channels * (channels + 1) // 2 * (l_max + 1) + 1


def _descriptor_blocks(descriptor: Mapping, stats: DatasetStats) -> list[dict]:
    """Return, per gap_fit coordinate that ``descriptor`` expands into, its size: dimension, count, derivatives.

    Counts follow what gap_fit reports ('Number of descriptors', 'Number of partial derivatives'):
    a SOAP vector of a central atom has 9 (1 + neighbours) partial derivative entries, a 2-body
    distance 18. Neighbour numbers come from the mean number density.
    """
    species = sorted(stats.atoms_per_species)
    n_atoms = max(stats.n_atoms, 1)
    fractions = {s: stats.atoms_per_species[s] / n_atoms for s in species}
    sphere = 4.0 / 3.0 * math.pi * descriptor['cutoff'] ** 3
    neighbours = stats.number_density * sphere
    add_species = descriptor.get('add_species', True)
    blocks = []
    if descriptor['type'] == 'soap':
        dim = soap_dimension(descriptor['n_max'], descriptor['l_max'], len(species) if add_species else 1)
        centres = species if add_species else ['all']
        for centre in centres:
            count = stats.atoms_per_species[centre] if add_species else stats.n_atoms
            blocks.append(
                {
                    'dimension': dim,
                    'count': count,
                    'derivatives': 9.0 * count * (1.0 + neighbours),
                    'n_sparse': min(descriptor['n_sparse'], count),
                }
            )
    else:
        pairs = (
            [(a, b) for i, a in enumerate(species) for b in species[i:]] if add_species else [('all', 'all')]
        )
        for a, b in pairs:
            if a == 'all':
                count = stats.n_atoms * neighbours
            elif a == b:
                count = stats.atoms_per_species[a] * neighbours * fractions[a]
            else:
                count = 2.0 * stats.atoms_per_species[a] * neighbours * fractions[b]
            blocks.append(
                {
                    'dimension': 1,
                    'count': count,
                    'derivatives': 18.0 * count,
                    'n_sparse': min(descriptor['n_sparse'], max(int(count), 1)),
                }
            )
    return blocks


def estimate_memory(parameters: Mapping, stats: DatasetStats) -> dict:
    """Return an estimate (MB) of the peak memory of ``gap_fit`` for validated ``parameters`` on ``stats``.

    The model is gap_fit's own memory report, reproduced before launch: descriptor arrays (value and
    gradient of every descriptor: dimension x (count + derivatives) doubles) plus the covariance
    matrices (yY and A twice, yy once: sparse points x targets), plus a fixed process base. Summing
    both parts is conservative (gap_fit frees part of the descriptors before solving). Measured on
    42 x 64-atom NaCl (2b + SOAP n6 l4, 260 sparse points): estimate 1.43 GB, max RSS 1.28 GB.

    :return: ``{'total_mb', 'descriptors_mb', 'covariance_mb', 'base_mb', 'n_sparse_total', 'n_targets'}``.
    """
    descriptors_bytes = 0.0
    n_sparse_total = 0
    for descriptor in parameters['descriptors']:
        for block in _descriptor_blocks(descriptor, stats):
            descriptors_bytes += 8.0 * block['dimension'] * (block['count'] + block['derivatives'])
            n_sparse_total += block['n_sparse']
    n_targets = stats.n_targets
    covariance_bytes = 8.0 * (2 * n_sparse_total * n_targets + n_sparse_total**2)
    covariance_bytes += 8.0 * 2 * n_sparse_total * (n_targets + n_sparse_total)
    descriptors_mb = descriptors_bytes / BYTES_PER_MB
    covariance_mb = covariance_bytes / BYTES_PER_MB
    return {
        'total_mb': float(BASE_MEMORY_MB + descriptors_mb + covariance_mb),
        'descriptors_mb': float(descriptors_mb),
        'covariance_mb': float(covariance_mb),
        'base_mb': BASE_MEMORY_MB,
        'n_sparse_total': int(n_sparse_total),
        'n_targets': int(n_targets),
    }


def reduce_sparse_points(parameters: Mapping, factor: float = 0.5, minimum: int = 10) -> dict | None:
    """Return a copy of ``parameters`` with every descriptor's ``n_sparse`` scaled by ``factor``.

    Returns ``None`` when no descriptor can be reduced any further (all at ``minimum``).
    """
    new = {**parameters, 'descriptors': [dict(d) for d in parameters['descriptors']]}
    changed = False
    for descriptor in new['descriptors']:
        reduced = max(minimum, int(descriptor['n_sparse'] * factor))
        if reduced < descriptor['n_sparse']:
            descriptor['n_sparse'] = reduced
            changed = True
    return new if changed else None


def plan_memory(
    parameters: Mapping, stats: DatasetStats, limit_mb: float | None, factor: float = 0.5
) -> tuple[dict, str]:
    """Return parameters whose estimated peak memory fits ``limit_mb`` and a note of what was changed.

    Sparse points are scaled by ``factor`` until the estimate fits. Raises ``ValueError`` with a clear
    message when it cannot fit (the descriptor arrays alone exceed the limit).
    """
    estimate = estimate_memory(parameters, stats)
    if limit_mb is None or estimate['total_mb'] <= limit_mb:
        return dict(parameters), ''
    original = estimate['total_mb']
    current = parameters
    while estimate['total_mb'] > limit_mb:
        reduced = reduce_sparse_points(current, factor)
        if reduced is None:
            raise ValueError(
                f'the fit needs about {estimate["total_mb"]:.0f} MB even with the fewest sparse points '
                f'(descriptor arrays {estimate["descriptors_mb"]:.0f} MB), more than the {limit_mb:.0f} MB declared: '
                'use fewer configurations or smaller descriptors (n_max, l_max), or declare more memory'
            )
        current = reduced
        estimate = estimate_memory(current, stats)
    counts = [d['n_sparse'] for d in current['descriptors']]
    return current, (
        f'estimated {original:.0f} MB > declared {limit_mb:.0f} MB: n_sparse reduced to {counts} '
        f'(estimate {estimate["total_mb"]:.0f} MB)'
    )
