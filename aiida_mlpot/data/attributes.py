"""`attribute`: a read-only property of a data node that returns one of its attributes."""

from __future__ import annotations

import copy
from typing import Any

__all__ = ('attribute',)


def attribute(key: str, default: Any = None, doc: str = '') -> property:
    """Return a read-only property giving the node attribute ``key`` (a copy of ``default`` when it is not set)."""

    def getter(node) -> Any:
        return node.base.attributes.get(key, copy.copy(default))

    return property(getter, doc=doc)
