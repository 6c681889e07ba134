"""Exit codes of calcfunctions: one table per module, one helper to return them.

A calcfunction cannot declare exit codes in a spec; each module declares its table
``{label: (status, message template)}`` and returns ``calcfunction_exit(TABLE, label, **kwargs)``.
:func:`check_exit_code_table` states the rules of the package (``ERROR_`` labels, statuses unique and in
the 200-499 range of input and sub-process failures); the modules' tests call it.
"""

from __future__ import annotations

from collections.abc import Mapping

from aiida.engine import ExitCode

__all__ = ('ExitCodeTable', 'calcfunction_exit', 'check_exit_code_table')

#: ``{label: (status, message template with {placeholders})}``
ExitCodeTable = Mapping[str, tuple[int, str]]


def calcfunction_exit(table: ExitCodeTable, label: str, **kwargs) -> ExitCode:
    """Return the :class:`ExitCode` ``label`` of ``table`` with its message formatted with ``kwargs``.

    The node records the status and the message (an ``ExitCode`` has no label field: its third field is
    ``invalidates_cache``, left at its default).
    """
    status, template = table[label]
    return ExitCode(status, template.format(**kwargs))


def check_exit_code_table(table: ExitCodeTable) -> str | None:
    """Return what is wrong with ``table`` (a label not ``ERROR_...``, a status out of range or twice), or None."""
    seen: dict[int, str] = {}
    for label, (status, _) in table.items():
        if not label.startswith('ERROR_'):
            return f'`{label}`: an exit code label starts with ERROR_'
        if not 200 <= status < 500:
            return f'`{label}`: status {status} is outside 200-499'
        if status in seen:
            return f'`{label}`: status {status} is already `{seen[status]}`'
        seen[status] = label
    return None
