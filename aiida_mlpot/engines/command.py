"""The command line shared by the drivers that run on compute nodes: ``python -m <driver> input.json`` (no AiiDA).

Each driver (:mod:`aiida_mlpot.engines.ml_md`; the test-set evaluation can use it too) is a function
``run(config, workdir) -> summary``; :func:`run_command` reads the JSON input, runs it and always writes the
summary, atomically (:func:`write_json_atomic`), so that the parser finds either a complete summary or none.
"""

from __future__ import annotations

import json
import os
import pathlib
import sys
import traceback
from collections.abc import Callable

import numpy as np

__all__ = ('run_command', 'write_json_atomic')


def write_json_atomic(path: str | pathlib.Path, data: dict) -> None:
    """Write ``data`` as JSON to ``path`` through a temporary file renamed over it (never half-written).

    numpy integers, floats and arrays are written as JSON numbers and lists.
    """
    path = pathlib.Path(path)
    temporary = path.with_name(f'.{path.name}.tmp')
    temporary.write_text(json.dumps(data, indent=1, default=_json_default))
    os.replace(temporary, path)


def _json_default(value):
    if isinstance(value, np.integer):
        return int(value)
    if isinstance(value, np.floating):
        return float(value)
    if isinstance(value, np.ndarray):
        return value.tolist()
    raise TypeError(f'cannot serialise {type(value).__name__}')


def run_command(
    run: Callable[[dict, pathlib.Path], dict],
    module: str,
    argv: list[str] | None = None,
    summary_name: str = 'summary.json',
) -> int:
    """Run ``run(config, workdir)`` on the JSON input named in ``argv``; write its summary; return the exit code.

    The working directory is the folder of the input; the summary goes to ``config['summary']`` (default
    ``summary_name``) there, also when the run fails: ``outcome: error`` with the exception as ``reason`` (the
    traceback goes to stderr). Returns 0 when ``run`` returned (whatever its outcome), 1 on an error and 2
    on a wrong command line (``module`` names the driver in the usage message).
    """
    argv = sys.argv[1:] if argv is None else argv
    if len(argv) != 1:
        print(f'usage: python -m {module} input.json', file=sys.stderr)
        return 2
    input_path = pathlib.Path(argv[0])
    workdir = input_path.parent
    try:
        config = json.loads(input_path.read_text())
        summary_name = config.get('summary', summary_name)
        summary = run(config, workdir)
        code = 0
    except Exception as exception:
        traceback.print_exc()
        summary = {'outcome': 'error', 'reason': f'{type(exception).__name__}: {exception}'}
        code = 1
    write_json_atomic(workdir / summary_name, summary)
    print(f'outcome: {summary["outcome"]} {summary.get("reason", "")}'.strip())
    return code
