"""`check_keys`: the first check of every dictionary input: is it a dictionary, and are its keys known?"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

__all__ = ('check_keys',)


def check_keys(value, allowed: Iterable[str], what: str, unknown: str) -> str | None:
    """Return why ``value`` is not a dictionary whose keys are all in ``allowed``, or None.

    :param what: the dictionary as named in the message (``the {what} must be a dictionary``).
    :param unknown: the message for an unknown key, formatted with ``key`` (the first unknown key in sorted
        order) and ``allowed`` (the allowed keys, comma-separated, in their order).
    """
    if not isinstance(value, Mapping):
        return f'the {what} must be a dictionary'
    allowed = list(allowed)
    extra = sorted(set(value) - set(allowed))
    if extra:
        return unknown.format(key=extra[0], allowed=', '.join(allowed))
    return None
