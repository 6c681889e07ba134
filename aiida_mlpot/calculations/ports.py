"""Input ports that several processes declare: one definition, one validator and one help text each."""

from __future__ import annotations

import math
import os
import re
from collections.abc import Callable, Mapping

from aiida import orm

from aiida_mlpot.potentials.classical import validate_potential

__all__ = (
    'CODE_PLUGINS',
    'check_options',
    'check_potential_lines',
    'code_validator',
    'define_potential_ports',
    'define_structures_port',
    'executable_message',
    'load_code_by_label',
    'missing_code_message',
    'required_files_message',
    'validate_keys_are_labels',
    'validate_potential_port',
)

#: Calculation plugins (entry points; a trailing ``.`` is a prefix) a code may be registered for, by program.
#: A code whose ``default_calc_job_plugin`` is set to something else was registered for another program.
CODE_PLUGINS = {
    'LAMMPS': ('mlpot.lammps.', 'lammps.'),
    'gap_fit': ('mlpot.gap_fit',),
    'python': ('mlpot.ml_md', 'mlpot.evaluate', 'mlpot.solid_properties'),
    'CP2K': ('cp2k',),
}
#: Pair styles under which several pair_coeff lines for the same pair of species are meaningful.
_OVERLAY_STYLES = ('hybrid/overlay', 'hybrid/scaled')
_IDENTIFIER = re.compile(r'[A-Za-z_][A-Za-z0-9_]*')


def code_validator(program: str, port: str = 'code') -> Callable:
    """Return the validator of a code port that runs ``program`` (a key of :data:`CODE_PLUGINS`).

    A code registered for the calculation plugin of another program (``default_calc_job_plugin``, as
    ``aiida-mlpot setup`` and ``verdi code create`` record it) is refused, naming the code and its plugin; a code
    without a default plugin cannot be told apart and is accepted.
    """
    accepted = CODE_PLUGINS[program]

    def validator(code, _) -> str | None:
        if code is None:
            return None
        message = executable_message(code, port)
        if message:
            return message
        plugin = getattr(code, 'default_calc_job_plugin', None)
        if plugin is None or any(plugin == p or (p.endswith('.') and plugin.startswith(p)) for p in accepted):
            return None
        return (
            f'`{port}`: the code `{code.full_label}` is registered for the calculation plugin `{plugin}`, '
            f'not for {program} (plugins {", ".join(accepted)}): give the {program} code'
        )

    return validator


def executable_message(code, port: str = 'code') -> str | None:
    """Return an error if ``code`` runs on this machine (a ``core.local`` computer) and its executable is missing
    or not executable; codes on other computers are not checked (that would need a connection)."""
    path = getattr(code, 'filepath_executable', None)
    computer = getattr(code, 'computer', None)
    if path is None or computer is None or computer.transport_type != 'core.local':
        return None
    if not os.path.isfile(path) or not os.access(path, os.X_OK):
        state = 'is not executable' if os.path.isfile(path) else 'does not exist'
        return (
            f'`{port}`: the executable `{path}` of the code `{code.full_label}` {state} on `{computer.label}`: '
            'fix the code (verdi code show / aiida-mlpot setup)'
        )
    return None


def load_code_by_label(identifier: str):
    """Return the code ``identifier`` (a label, ``label@computer``, a pk or a UUID), as ``orm.load_code`` does,
    but say clearly when a label is ambiguous.

    After ``verdi archive import`` of a run, the profile can hold two codes with the same label on computers of
    the same label (the imported ones and those ``aiida-mlpot setup`` registered): aiida-core then raises a bare
    ``MultipleObjectsError``. Here the error lists every match (pk, UUID, executable, creation time and user) and
    says how to choose: by pk or UUID, or by relabelling one of them.

    :raises ValueError: no code or several codes match (the message says which and what to do).
    """
    from aiida.common.exceptions import MultipleObjectsError, NotExistent

    try:
        return orm.load_code(identifier)
    except NotExistent as exception:
        raise ValueError(
            f'no code `{identifier}`: {exception} (`verdi code list`; `aiida-mlpot setup`)'
        ) from None
    except MultipleObjectsError:
        pass
    label, _, computer = str(identifier).partition('@')
    builder = orm.QueryBuilder().append(orm.AbstractCode, tag='code', filters={'label': label}, project='*')
    if computer:
        builder.append(orm.Computer, filters={'label': computer}, with_node='code')
    lines = [
        f'  pk {code.pk}  uuid {code.uuid}  {code.get_executable()}  created {code.ctime:%Y-%m-%d %H:%M} by '
        f'{code.user.email}'
        for (code,) in sorted(builder.all(), key=lambda row: row[0].pk)
    ]
    message = (
        f'{len(lines)} codes are labelled `{identifier}` (after `verdi archive import` of a run, the imported codes '
        'keep their labels):\n' + '\n'.join(lines) + '\ngive the code by pk or UUID instead of its label, or '
        f'relabel one of them (`verdi code relabel <pk> {label}-imported`)'
    )
    raise ValueError(message)


def missing_code_message(inputs, program: str, port: str = 'code') -> str | None:
    """Return an error if ``inputs`` (a namespace being launched) has no code; CalcJob's own ``code`` port is
    optional (for imports), and a missing code would otherwise end as an AttributeError inside aiida-core."""
    if inputs.get('code') is None:
        return f'no `{port}` was given: the {program} code that runs this calculation is required'
    return None


def check_options(options) -> None:
    """Raise ``ValueError`` naming the first key of ``options`` that is not a CalcJob ``metadata.options`` port.

    For the ``options`` argument of ``get_builder_from_protocol``, before it is merged into a builder (where an
    unknown key would be an ``AttributeError`` of the builder).
    """
    from aiida.engine import CalcJob

    if options is None:
        return
    if not isinstance(options, Mapping):
        raise ValueError(f'`options` must be a dictionary of metadata.options, got {options!r}')
    known = CalcJob.spec().inputs['metadata']['options']
    unknown = sorted(set(options) - set(known))
    if unknown:
        raise ValueError(f'unknown key `{unknown[0]}` in `options`; known: {", ".join(sorted(known))}')


def _number(token: str) -> float | None:
    try:
        return float(token)
    except ValueError:
        return None


def _is_filename(token: str) -> bool:
    """Whether a pair_coeff argument names a file: a dotted name that is not a number (``Si.sw``), or a path."""
    return _number(token) is None and ('.' in token or token.startswith('/'))


def check_potential_lines(potential: dict) -> str | None:
    """Return what is wrong in the LAMMPS lines of a (structurally valid) classical-potential dictionary.

    Checks what :func:`~aiida_mlpot.potentials.classical.validate_potential` leaves to LAMMPS: negative or
    non-finite numbers in ``pair_style`` and ``kspace_style``; non-finite numbers in ``pair_coeff``; the same
    pair of species given twice (outside hybrid/overlay and hybrid/scaled, where LAMMPS silently keeps the last
    line); and every file a ``pair_coeff`` line names must be a plain file name listed in ``files`` (so that it
    is a ``potential_files`` input, recorded in the graph, and not found by LAMMPS in its own potentials folder).
    """
    style = str(potential['pair_style'])
    for key in ('pair_style', 'kspace_style'):
        text = potential.get(key)
        if not text:
            continue
        for token in str(text).split()[1:]:
            value = _number(token)
            if value is None:
                continue
            if not math.isfinite(value) or (value < 0 and not style.startswith('hybrid/scaled')):
                return f'`{key}` {text!r}: the argument {token} must be a finite, non-negative number'
    pair_coeff = potential['pair_coeff']
    lines = [pair_coeff] if isinstance(pair_coeff, str) else list(pair_coeff)
    files = set(potential.get('files') or [])
    seen = {}
    for line in lines:
        tokens = line.split()
        for token in tokens[2:]:
            value = _number(token)
            if value is not None and not math.isfinite(value):
                return f'pair_coeff line {line!r}: the value {token} is not a finite number'
            if value is None and _is_filename(token):
                if '/' in token:
                    return (
                        f'pair_coeff line {line!r} names the file by the path `{token}`: give the file as a '
                        f'`potential_files` input, list it in `files` and name it by its file name only'
                    )
                if token not in files:
                    return (
                        f'pair_coeff line {line!r} names the file `{token}`, which is not listed in `files`: '
                        'list it there and give it as a `potential_files` input'
                    )
        if '*' in tokens[:2] or style.startswith(_OVERLAY_STYLES):
            continue
        pair = frozenset(tokens[:2])
        if pair in seen:
            return (
                f'pair_coeff: the pair {tokens[0]}-{tokens[1]} is given more than once ({seen[pair]!r} and '
                f'{line!r}); LAMMPS would silently use the last line'
            )
        seen[pair] = line
    return None


def validate_potential_port(value, _) -> str | None:
    """Validate a classical-potential dictionary (``pair_style``, ``pair_coeff``, ...): unknown keys are refused."""
    if value is not None:
        potential = value.get_dict()
        return validate_potential(potential) or check_potential_lines(potential)
    return None


def validate_keys_are_labels(value, _) -> str | None:
    """Keys of a namespace of nodes become link labels: they must be identifiers (the file keeps its name)."""
    for key in value or {}:
        if not _IDENTIFIER.fullmatch(key):
            suggestion = re.sub(r'\W', '_', key)
            return (
                f'the key `{key}` is not a valid link label: use an identifier such as `{suggestion}` (a file is '
                'written with its own file name whatever its key)'
            )
    return None


def define_potential_ports(
    spec,
    namespace: str = '',
    name: str = 'potential',
    help: str = 'The classical-potential dictionary (pair_style, pair_coeff with element symbols, ...).',
) -> None:
    """Declare the classical potential ``<namespace>.<name>`` (a ``Dict``) and ``<namespace>.potential_files``.

    The files are the ``SinglefileData`` the potential reads (e.g. ``Si.sw``, ``Cu_u3.eam``), written next to the
    LAMMPS input with their own filename.
    """
    prefix = f'{namespace}.' if namespace else ''
    spec.input(f'{prefix}{name}', valid_type=orm.Dict, validator=validate_potential_port, help=help)
    spec.input_namespace(
        f'{prefix}potential_files',
        valid_type=orm.SinglefileData,
        required=False,
        validator=validate_keys_are_labels,
        help='Files the potential refers to (e.g. `Si.sw`, keyed e.g. `Si_sw`), written with their own filename.',
    )


def define_structures_port(spec, help: str) -> None:
    """Declare the dynamic ``structures`` namespace: one ``StructureData`` per configuration, sorted by key."""
    spec.input_namespace(
        'structures',
        valid_type=orm.StructureData,
        dynamic=True,
        required=False,
        validator=validate_keys_are_labels,
        help=help,
    )


def required_files_message(potential: dict, potential_files: dict) -> str | None:
    """Return an error if a file the potential lists in ``files`` is not among the ``potential_files`` nodes."""
    provided = {node.filename for node in (potential_files or {}).values()}
    missing = sorted(set(potential.get('files') or []) - provided)
    if missing:
        return f'the potential refers to files that are not in `potential_files`: {missing}'
    return None
