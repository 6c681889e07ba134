"""Input ports that several processes declare: one definition, one validator and one help text each."""

from __future__ import annotations

from aiida import orm

from aiida_mlpot.potentials.classical import validate_potential

__all__ = ('define_potential_ports', 'define_structures_port', 'validate_potential_port')


def validate_potential_port(value, _) -> str | None:
    """Validate a classical-potential dictionary (``pair_style``, ``pair_coeff``, ...): unknown keys are refused."""
    if value is not None:
        return validate_potential(value.get_dict())
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
        help='Files the potential refers to (e.g. `Si.sw`), written with their own filename.',
    )


def define_structures_port(spec, help: str) -> None:
    """Declare the dynamic ``structures`` namespace: one ``StructureData`` per configuration, sorted by key."""
    spec.input_namespace('structures', valid_type=orm.StructureData, dynamic=True, required=False, help=help)
