"""Process helpers shared by the tests that start services or daemons of their own."""

from __future__ import annotations

import os
import signal
from collections.abc import Iterable


def kill_leftovers(pids: Iterable[int]) -> list[int]:
    """SIGKILL those of ``pids`` (processes a fixture started) that still run; return them."""
    killed = []
    for pid in pids:
        try:
            os.kill(pid, signal.SIGKILL)
            killed.append(pid)
        except ProcessLookupError:
            pass
    return killed
