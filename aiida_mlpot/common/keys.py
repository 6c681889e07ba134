"""Names shared by the stages (pure): the key of a configuration in namespaces, labels and file names."""

from __future__ import annotations

__all__ = ('config_key', 'config_index')

_PREFIX = 'config_'


def config_key(index: int) -> str:
    """Return the key of configuration ``index``: ``config_00000``, ... (a valid link label, sorts in order)."""
    return f'{_PREFIX}{int(index):05d}'


def config_index(key: str) -> int | None:
    """Return the index of a key made by :func:`config_key`, or None for any other key."""
    if key.startswith(_PREFIX) and key[len(_PREFIX) :].isdigit():
        return int(key[len(_PREFIX) :])
    return None
