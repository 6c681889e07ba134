"""The classical-potential dictionary: validation and translation into LAMMPS input lines (pure, no AiiDA).

A classical potential is a plain dictionary (stored as an AiiDA ``Dict``), in LAMMPS ``metal`` units::

    {
        'pair_style': 'born/coul/long 9.0',            # any pair style the LAMMPS binary supports
        'pair_coeff': [                                # species named by ELEMENT SYMBOL, or '*'
            'Na Na 424.097 0.317 0.0 1.05 -0.499',
            'Na Cl 1256.31 0.317 0.0 7.0 -8.676',
            'Cl Cl 3488.998 0.317 0.0 72.5 -145.427',
        ],
        'kspace_style': 'ewald 1e-06',                 # optional
        'charges': {'Na': 1.0, 'Cl': -1.0},            # required when the pair style is coulombic
        'special': ['pair_modify shift yes'],          # optional LAMMPS commands after pair_coeff
        'files': ['Si.sw'],                            # optional: potential files the lines refer to
        'masses': {'Na': 22.99},                       # optional overrides of the ASE masses (amu)
        'units': 'metal',                              # optional; only 'metal' is accepted
        'description': '...', 'references': ['...'],  # optional, free-form
    }

LAMMPS atom types are derived from the structure: the species present, sorted alphabetically, are types 1, 2,
... (see :func:`species_order`). Each ``pair_coeff`` line is translated by replacing the two leading element
symbols by their type numbers (swapped if needed so that I <= J); lines naming a species that is absent from
the structure are dropped. For many-body styles written as ``* * <args> <elements>`` (e.g.
``* * Si.sw Si``, ``* * eam/alloy NaCl.eam.alloy Na Cl``), the trailing element symbols are replaced by the
element of every type, in type order, so the same dictionary works for any composition.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from ase.data import atomic_masses, atomic_numbers

from aiida_mlpot.potentials.lammps_styles import unknown_pair_style

__all__ = (
    'is_coulombic',
    'mass_lines',
    'pair_coeff_lines',
    'potential_lines',
    'species_order',
    'validate_potential',
)

ALLOWED_KEYS = frozenset(
    {
        'pair_style',
        'pair_coeff',
        'kspace_style',
        'charges',
        'special',
        'files',
        'masses',
        'units',
        'description',
        'references',
    }
)


def species_order(symbols: Iterable[str]) -> list[str]:
    """Return the element symbols present, in LAMMPS type order (alphabetical; type 1 is the first)."""
    return sorted(set(symbols))


def is_coulombic(potential: dict) -> bool:
    """Return whether the potential needs atomic charges (a ``coul`` pair style or a kspace solver)."""
    return 'coul' in str(potential.get('pair_style', '')) or bool(potential.get('kspace_style'))


def _pair_coeff_list(potential: dict) -> list[str]:
    pair_coeff = potential.get('pair_coeff', [])
    if isinstance(pair_coeff, str):
        return [pair_coeff]
    return list(pair_coeff)


def _is_element(token: str) -> bool:
    return token in atomic_numbers and token != 'X'


def _unknown_styles(pair_style: str, lines: list[str]) -> str | None:
    """Return an error naming a pair style that LAMMPS does not have: the ``pair_style`` itself, or under a
    ``hybrid`` style the sub-style that a ``pair_coeff`` line names (its third word)."""
    style = pair_style.split()[0]
    message = unknown_pair_style(style)
    if message:
        return f'pair_style: {message}'
    if style.startswith('hybrid'):
        for line in lines:
            tokens = line.split()
            message = unknown_pair_style(tokens[2]) if len(tokens) > 2 else None
            if message:
                return f'pair_coeff line {line!r}: {message}'
    return None


def validate_potential(potential: dict, species: Sequence[str] | None = None) -> str | None:
    """Validate a classical-potential dictionary, optionally against the species of a structure.

    :param potential: the classical-potential dictionary.
    :param species: element symbols the potential must cover (all pairs), or ``None`` to check only the
        dictionary itself.
    :return: an error message, or ``None`` if the dictionary is valid.
    """
    if not isinstance(potential, dict):
        return f'the potential must be a dictionary, got {type(potential).__name__}'
    unknown = set(potential) - ALLOWED_KEYS
    if unknown:
        return f'unknown keys in the potential dictionary: {sorted(unknown)}; allowed: {sorted(ALLOWED_KEYS)}'
    pair_style = potential.get('pair_style')
    if not isinstance(pair_style, str) or not pair_style.strip():
        return 'the potential needs a non-empty `pair_style` string'
    if potential.get('units', 'metal') != 'metal':
        return f'only LAMMPS `metal` units are supported, got units={potential["units"]!r}'

    lines = _pair_coeff_list(potential)
    if not lines or not all(isinstance(line, str) for line in lines):
        return 'the potential needs `pair_coeff`: a string or a list of strings'
    for line in lines:
        tokens = line.split()
        if len(tokens) < 2:
            return f'pair_coeff line {line!r} must start with two species (element symbols or *)'
        for token in tokens[:2]:
            if token != '*' and not _is_element(token):
                return f'pair_coeff line {line!r}: {token!r} is neither an element symbol nor *'
    message = _unknown_styles(pair_style, lines)
    if message:
        return message

    kspace = potential.get('kspace_style')
    if kspace is not None:
        if not isinstance(kspace, str) or not kspace.strip():
            return '`kspace_style` must be a non-empty string'
        if 'long' not in pair_style and 'msm' not in pair_style:
            return f'kspace_style {kspace!r} needs a */long or */msm pair style, got {pair_style!r}'

    charges = potential.get('charges')
    if charges is not None:
        if not isinstance(charges, dict) or not all(_is_element(key) for key in charges):
            return '`charges` must map element symbols to charges'
        try:
            [float(value) for value in charges.values()]
        except (TypeError, ValueError):
            return f'`charges` values must be numbers, got {charges}'

    masses = potential.get('masses')
    if masses is not None and (
        not isinstance(masses, dict) or not all(_is_element(k) and float(v) > 0 for k, v in masses.items())
    ):
        return '`masses` must map element symbols to positive masses in amu'

    for key in ('special', 'files', 'references'):
        value = potential.get(key)
        if value is not None and (not isinstance(value, list) or not all(isinstance(v, str) for v in value)):
            return f'`{key}` must be a list of strings'

    if species is None:
        return None

    species = species_order(species)
    bad = [symbol for symbol in species if not _is_element(symbol)]
    if bad:
        return f'the structure contains species that are not elements: {bad}'

    if is_coulombic(potential):
        missing = [symbol for symbol in species if symbol not in (charges or {})]
        if missing:
            return f'pair style {pair_style!r} is coulombic but `charges` are missing for species {missing}'

    covered = set()
    for line in lines:
        first, second = line.split()[:2]
        for a in species if first == '*' else [first]:
            for b in species if second == '*' else [second]:
                covered.add(frozenset((a, b)))
    for index, a in enumerate(species):
        for b in species[index:]:
            if frozenset((a, b)) not in covered:
                return f'no pair_coeff line covers the species pair {a}-{b}'
    return None


def pair_coeff_lines(potential: dict, species: Sequence[str]) -> list[str]:
    """Return the ``pair_coeff`` commands with element symbols replaced by LAMMPS type numbers.

    :param potential: the classical-potential dictionary.
    :param species: element symbols in type order (see :func:`species_order`).
    """
    types = {symbol: index + 1 for index, symbol in enumerate(species)}
    result = []
    for line in _pair_coeff_list(potential):
        tokens = line.split()
        first, second, rest = tokens[0], tokens[1], tokens[2:]
        if (first != '*' and first not in types) or (second != '*' and second not in types):
            continue  # a pair of species that is not in this structure
        if first == '*' and second == '*':
            trailing = 0
            while trailing < len(rest) and _is_element(rest[-1 - trailing]):
                trailing += 1
            if trailing and trailing < len(rest):
                rest = rest[: len(rest) - trailing] + list(species)
        left = '*' if first == '*' else types[first]
        right = '*' if second == '*' else types[second]
        if left != '*' and right != '*' and left > right:
            left, right = right, left
        result.append(' '.join(['pair_coeff', str(left), str(right), *rest]))
    return result


def mass_lines(potential: dict, species: Sequence[str]) -> list[str]:
    """Return the ``mass`` commands of every type (ASE masses, unless the dictionary overrides them)."""
    overrides = potential.get('masses') or {}
    lines = []
    for index, symbol in enumerate(species):
        mass = float(overrides.get(symbol, atomic_masses[atomic_numbers[symbol]]))
        lines.append(f'mass {index + 1} {mass:.10g}')
    return lines


def potential_lines(potential: dict, species: Sequence[str]) -> list[str]:
    """Return the LAMMPS commands that define the interactions: pair_style, pair_coeff, kspace, special."""
    lines = [f'pair_style {potential["pair_style"]}']
    lines += pair_coeff_lines(potential, species)
    if potential.get('kspace_style'):
        lines.append(f'kspace_style {potential["kspace_style"]}')
    lines += list(potential.get('special') or [])
    return lines


def charges_of(potential: dict, symbols: Sequence[str]) -> list[float]:
    """Return the per-atom charges of atoms with ``symbols`` (0 for species without a charge)."""
    charges = potential.get('charges') or {}
    return [float(charges.get(symbol, 0.0)) for symbol in symbols]
