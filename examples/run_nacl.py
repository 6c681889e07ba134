#!/usr/bin/env python
"""The main job of aiida-mlpot: the molten-NaCl pipeline on the default (embedded) AiiDA profile.

Run it with `bash scripts/run-example.sh` (sets everything up first) or, once set up, with
`python examples/run_nacl.py`. It runs, in order, every stage in `examples/nacl/stage_<k>_<name>.py`
(sample -> select -> label -> fit -> ML MD), each taking and extending a context dict, and prints what
each stage produced. Every node it creates is in the profile's provenance graph.
"""

from __future__ import annotations

import argparse
import importlib.util
import pathlib
import sys
import time

STAGES = pathlib.Path(__file__).parent / 'nacl'


def load_stages(only: list[str] | None = None):
    """Return the stage modules in order (``stage_<k>_<name>.py``), optionally only the named ones."""
    modules = []
    for path in sorted(STAGES.glob('stage_*.py')):
        name = path.stem.split('_', 2)[2]
        if only and name not in only:
            continue
        spec = importlib.util.spec_from_file_location(f'nacl_{path.stem}', path)
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        modules.append((name, module))
    return modules


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--profile', default=None, help='AiiDA profile (default: the default profile)')
    parser.add_argument('--computer', default='localhost', help='computer the codes are on')
    parser.add_argument('--stages', nargs='*', default=None, help='run only these stages (by name)')
    args = parser.parse_args(argv)

    from aiida import load_profile
    from aiida.orm import load_code

    profile = load_profile(args.profile)
    print(f'== aiida-mlpot NaCl example on profile `{profile.name}`')
    ctx: dict = {'codes': {}}
    for label in ('lmp', 'cp2k', 'gap_fit', 'python'):
        key = 'lammps' if label == 'lmp' else label
        ctx['codes'][key] = load_code(f'{label}@{args.computer}')
    for name, module in load_stages(args.stages):
        print(f'\n== stage {name}')
        start = time.perf_counter()
        ctx.update(module.run(ctx) or {})
        print(f'== stage {name} done in {time.perf_counter() - start:.1f} s')
    return ctx


if __name__ == '__main__':
    main(sys.argv[1:])
