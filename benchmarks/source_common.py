"""Shared set-up of the `source_*.py` scripts that reproduce the figures of the source methods (docs/source_methods.md).

Each script runs real AiiDA processes (real ``lmp``, ``gap_fit`` and the ML-MD driver) on a profile of its own
in a cache folder (default ``/tmp/source``): ``AIIDA_PATH`` is pointed there before AiiDA is imported, and the
profile, the ``localhost`` computer and the codes are made by ``aiida-mlpot setup``'s own function, so the
user's configuration is never touched. What a script has run is recorded (node UUIDs) in a JSON file of the
cache folder; a second call reuses it, so a script can be stopped and rerun, and the figures remade from the
stored nodes without recomputing anything.
"""

from __future__ import annotations

import json
import os
import pathlib
import time

ROOT = pathlib.Path(__file__).resolve().parents[1]
#: Where the plots and numbers committed with the docs go.
DOCS = ROOT / 'docs' / 'source'
#: Charges of the Tosi-Fumi teacher (the Coulomb baseline of a Δ-learning fit would use them).
NACL = {'Na': 32, 'Cl': 32}
#: Model density of the Tosi-Fumi melt at 1400 K and 1 bar (docs/topics/reference-values.md), g/cm³.
DENSITY_1400K = 1.30


def open_profile(
    cache: pathlib.Path, name: str, folder: str | None = None, copy: tuple[str, list] | None = None
) -> dict:
    """Point AiiDA at ``cache/aiida_<folder>``, create (or reuse) the profile ``name`` and the codes; return them.

    Must run before anything imports aiida. One profile per process: the profiles use SQLite storage, which two
    processes writing at once lock ("database is locked"), so processes that run side by side get a profile each.
    ``copy = (profile, uuids)``: nodes of another profile of the same folder to bring over first (exported to an
    archive and imported, UUIDs kept; skipped when the first of them is already there).
    """
    cache.mkdir(parents=True, exist_ok=True)
    os.environ['AIIDA_PATH'] = str(cache / f'aiida_{folder or name}')
    from aiida_mlpot.cli.setup import setup

    archive = None
    if copy is not None:
        from aiida import load_profile, orm
        from aiida.tools.archive import create_archive

        archive = cache / f'{copy[0]}_to_{name}.aiida'
        load_profile(f'source-{copy[0]}', allow_switch=True)
        if not archive.exists():
            # not the calling workflows: a loop that still runs is not sealed and cannot be exported
            nodes = [orm.load_node(uuid) for uuid in copy[1]]
            create_archive(nodes, filename=archive, call_calc_backward=False, call_work_backward=False)
    for _ in range(
        3
    ):  # setup probes every executable (120 s at most): on a loaded machine a probe can time out
        result = setup(profile=f'source-{name}', workdir=str(cache / f'scratch_{name}'), echo=print)
        if {'lmp', 'gap_fit', 'python'} <= set(result['codes']):
            break
    if archive is not None:
        from aiida import load_profile, orm
        from aiida.common.exceptions import NotExistent
        from aiida.tools.archive import import_archive

        load_profile(result['profile'], allow_switch=True)
        try:
            orm.load_node(copy[1][0])
        except NotExistent:
            import_archive(archive)
    from aiida import load_profile, orm

    load_profile(result['profile'], allow_switch=True)
    if os.environ.get('PYTHONPATH'):  # a run of another checkout (a snapshot of main): its drivers too
        computer = orm.load_computer(result['computer'])
        computer.set_prepend_text(f'export PYTHONPATH={os.environ["PYTHONPATH"]}')
    labels = {'lammps': 'lmp', 'gap_fit': 'gap_fit', 'python': 'python'}
    return {key: orm.load_code(f'{label}@{result["computer"]}') for key, label in labels.items()}


class Record:
    """A JSON file of named results (node UUIDs and numbers) that survives reruns of a script."""

    def __init__(self, path: pathlib.Path):
        self.path = path
        self.data = json.loads(path.read_text()) if path.exists() else {}

    def __contains__(self, key: str) -> bool:
        return key in self.data

    def __getitem__(self, key: str):
        return self.data[key]

    def set(self, key: str, value) -> None:
        """Record ``key``, merged into what the file holds now (another process may have added keys)."""
        if self.path.exists():
            self.data = {**json.loads(self.path.read_text()), **self.data}
        self.data[key] = value
        temporary = self.path.with_suffix('.tmp')
        temporary.write_text(json.dumps(self.data, indent=1, sort_keys=True))
        temporary.replace(self.path)

    def node(self, key: str):
        from aiida import orm

        return orm.load_node(self.data[key])


def run_checked(builder_or_process, what: str, allowed: tuple[int, ...] = (0,), **inputs):
    """Run a process in this interpreter; return (results, node, wall seconds); raise unless its exit status is allowed."""
    from aiida.engine import run_get_node

    start = time.perf_counter()
    results, node = run_get_node(builder_or_process, **inputs)
    elapsed = time.perf_counter() - start
    print(
        f'{what}: {node.process_label}<{node.pk}> exit status {node.exit_status} in {elapsed:.0f} s',
        flush=True,
    )
    if node.exit_status not in allowed:
        raise RuntimeError(f'{what} failed: {node.exit_status} {node.exit_message}')
    return results, node, elapsed


def audit_errors(learning_curve: dict) -> dict | None:
    """The audit errors (force eV/Å, energy meV/atom) of the last iteration of a ``learning_curve`` that has them."""
    for row in reversed(learning_curve.get('iterations', [])):
        if row.get('n_audited'):
            return {
                'iteration': row['iteration'],
                'force_rmse': row['audit_force_rmse'],
                'energy_rmse': row['audit_energy_rmse'],
                'n_audited': row['n_audited'],
            }
    return None


def load_average() -> float:
    return os.getloadavg()[0]
