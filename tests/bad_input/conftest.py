"""The bad-input battery: helpers that launch a process with bad inputs and check how it was refused.

Every case must end BEFORE any CalcJob is submitted, with a message naming the bad value: either a
``ValueError`` from the process spec at launch (:func:`refused`) or a dedicated 2xx exit code (:func:`exits`).
Neither leaves a CalcJob node; :func:`refused` also leaves no process node at all. The codes are the real ones
of the test fixtures (``code_lmp``, ``code_cp2k``, ``code_gap_fit``, ``code_python``): nothing here runs them.
"""

from __future__ import annotations

import pathlib
import re

import numpy as np
import pytest
from ase import Atoms
from ase.build import bulk

#: A real GAP for NaCl recorded from gap_fit (tiny: 2b + SOAP n2 l1); only ever an input here.
RECORDED_GAP = pathlib.Path(__file__).parents[1] / 'parsers' / 'gap_fit' / 'fixtures' / 'success' / 'gap.xml'


def _count(node_class) -> int:
    from aiida import orm

    return orm.QueryBuilder().append(node_class).count()


def refused(process_class, inputs: dict, match: str) -> str:
    """Launch ``process_class`` with ``inputs``: it must be refused at launch with a ``ValueError`` matching
    ``match`` (a regular expression), and no process node of any kind may be created. Return the message.

    ``process_class`` may also be a process builder (``inputs`` then updates it).
    """
    from aiida import orm
    from aiida.engine import ProcessBuilder, run_get_node

    before = _count(orm.ProcessNode)
    with pytest.raises(ValueError, match=match) as info:
        if isinstance(process_class, ProcessBuilder):
            process_class._update(inputs)
            run_get_node(process_class)
        else:
            run_get_node(process_class, **inputs)
    assert _count(orm.ProcessNode) == before, 'a refused launch left a process node'
    return str(info.value)


def launch_message(process_class, inputs) -> str | None:
    """Return the message with which launching ``process_class`` with ``inputs`` would be refused, or None.

    The same validation as a launch (the inputs pre-processed: defaults, serializers; then the spec's
    validators) without starting anything: for processes where an input that is NOT refused would start a long
    run (the active-learning loop), so that an xfail case costs nothing.
    """
    from aiida.engine import ProcessBuilder

    if isinstance(inputs, ProcessBuilder):
        inputs = inputs._inputs(prune=True)
    spec = process_class.spec()
    processed = spec.inputs.pre_process(dict(inputs))
    error = spec.inputs.validate(processed)
    return None if error is None else str(error)


def exits(process_class, inputs: dict, match: str, status: int | None = None):
    """Run ``process_class``: it must finish (not except) with a 2xx exit code whose message matches ``match``,
    without any CalcJob among its descendants. Return the process node."""
    from aiida import orm
    from aiida.engine import run_get_node

    before = _count(orm.CalcJobNode)
    _, node = run_get_node(process_class, **inputs)
    assert not node.is_excepted, f'the process excepted: {node.exception}'
    assert node.is_finished, node.process_state
    assert 200 <= node.exit_status < 300, f'exit status {node.exit_status}: {node.exit_message}'
    if status is not None:
        assert node.exit_status == status, node.exit_message
    assert re.search(match, node.exit_message or ''), node.exit_message
    calcjobs = [child for child in node.called_descendants if isinstance(child, orm.CalcJobNode)]
    assert not calcjobs, f'CalcJobs were submitted: {calcjobs}'
    assert _count(orm.CalcJobNode) == before
    return node


def nacl(a: float = 5.64) -> Atoms:
    """The 8-atom rock-salt NaCl cell."""
    return bulk('NaCl', 'rocksalt', a=a, cubic=True)


def overlapping() -> Atoms:
    """NaCl with two atoms 0.3 Å apart."""
    atoms = nacl()
    atoms.positions[1] = atoms.positions[0] + [0.3, 0.0, 0.0]
    return atoms


def molecule_box() -> Atoms:
    """NaCl cell that is not periodic (a cluster in a box)."""
    atoms = nacl()
    atoms.pbc = False
    return atoms


def with_potassium() -> Atoms:
    """NaCl with one Na replaced by K: a species that the NaCl potentials do not know."""
    atoms = nacl()
    symbols = atoms.get_chemical_symbols()
    symbols[0] = 'K'
    atoms.set_chemical_symbols(symbols)
    return atoms


def charged() -> Atoms:
    """NaCl with one Na replaced by Cl: a total charge of -2 e with the Tosi-Fumi charges."""
    atoms = nacl()
    symbols = atoms.get_chemical_symbols()
    symbols[symbols.index('Na')] = 'Cl'
    atoms.set_chemical_symbols(symbols)
    return atoms


def labelled(atoms: Atoms, seed: int = 0, energy: bool = True, forces: bool = True) -> Atoms:
    """``atoms`` rattled, with energy and forces set (inputs only: never fitted here)."""
    atoms = atoms.copy()
    rng = np.random.default_rng(seed)
    atoms.positions += rng.normal(scale=0.05, size=atoms.positions.shape)
    if energy:
        atoms.info['energy'] = -27.0 + 0.01 * seed
    if forces:
        atoms.arrays['forces'] = rng.normal(scale=0.1, size=(len(atoms), 3))
    atoms.info['config_type'] = 'T1400'
    return atoms


@pytest.fixture
def structure(aiida_profile):
    """Return a function: ``StructureData`` of the given atoms (default: 8-atom NaCl)."""
    from aiida import orm

    def factory(atoms: Atoms | None = None):
        return orm.StructureData(ase=atoms if atoms is not None else nacl())

    return factory


@pytest.fixture
def dataset(aiida_profile):
    """Return a function: a ``DatasetData`` of ``n`` labelled NaCl frames (or of the given frames)."""
    from aiida_mlpot.data.dataset import DatasetData

    def factory(frames: list[Atoms] | None = None, n: int = 4):
        return DatasetData.from_ase(frames if frames is not None else [labelled(nacl(), k) for k in range(n)])

    return factory


@pytest.fixture(scope='module')
def gap(aiida_profile):
    """The recorded NaCl GAP (species Na, Cl) as a stored ``GapPotentialData``."""
    from aiida_mlpot.data.potential import GapPotentialData

    return GapPotentialData.from_files(RECORDED_GAP).store()


@pytest.fixture
def tosi_fumi():
    """The Tosi-Fumi NaCl potential dictionary (a fresh copy)."""
    from aiida_mlpot.presets import nacl_tosi_fumi

    return nacl_tosi_fumi()


@pytest.fixture(scope='module')
def broken_code(localhost, tmp_path_factory):
    """Return a function: a code on the local test computer whose executable is missing or not executable.

    A user's mistake (``verdi code create`` with a wrong path), not a stand-in for a real code: it must be
    refused before anything is submitted.
    """
    from aiida import orm

    folder = tmp_path_factory.mktemp('broken_code')
    not_executable = folder / 'gap_fit'
    not_executable.write_text('#!/bin/sh\n')
    not_executable.chmod(0o644)
    paths = {'missing': '/nonexistent/bin/lmp', 'not executable': str(not_executable)}
    made = {}

    def factory(kind: str, plugin: str):
        if (kind, plugin) not in made:
            made[kind, plugin] = orm.InstalledCode(
                label=f'broken-{len(made)}',
                computer=localhost,
                filepath_executable=paths[kind],
                default_calc_job_plugin=plugin,
            ).store()
        return made[kind, plugin]

    return factory


@pytest.fixture
def m(structure, dataset, gap, tosi_fumi, code_lmp, code_gap_fit, code_python, code_cp2k, broken_code):
    """Everything a case needs to build its inputs (one namespace shared by the battery's files)."""
    import types

    return types.SimpleNamespace(
        broken=broken_code,
        structure=structure,
        dataset=dataset,
        gap=gap,
        potential=tosi_fumi,
        lmp=code_lmp,
        gap_fit=code_gap_fit,
        python=code_python,
        cp2k=code_cp2k,
        codes={'lammps': code_lmp, 'cp2k': code_cp2k, 'gap_fit': code_gap_fit, 'python': code_python},
    )
