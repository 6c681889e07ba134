"""The documentation names every exit code the package declares (docs/reference/exit_codes.md is generated)."""

from __future__ import annotations

import importlib.util
import pathlib

import pytest

DOCS = pathlib.Path(__file__).resolve().parents[1] / 'docs'


def _generator():
    spec = importlib.util.spec_from_file_location('generate_reference', DOCS / 'generate_reference.py')
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


GENERATOR = _generator()
CODES = [
    (name, status, label)
    for _, name, plugin, process in GENERATOR.processes()
    for status, label, _ in GENERATOR.own_exit_codes(plugin, process)
]


def test_every_process_is_listed():
    names = {name for _, name, _, _ in GENERATOR.processes()}
    assert {'mlpot.ml_md', 'mlpot.gap_fit.base', 'mlpot.labelling', 'mlpot.sampling'} <= names


@pytest.mark.parametrize(('name', 'status', 'label'), CODES)
def test_exit_code_in_table(name, status, label):
    table = (DOCS / 'reference' / 'exit_codes.md').read_text()
    assert f'`{name}` | {status} | `{label}` |' in table, (
        f'{name} {status} {label} is missing from docs/reference/exit_codes.md: run docs/generate_reference.py'
    )


def test_unstable_md_has_one_code():
    """Unstable MD is the same exit code in LAMMPS sampling and in ML MD."""
    unstable = {
        (status, label) for name, status, label in CODES if 'UNSTABLE_MD' in label and 'GAVE_UP' not in label
    }
    assert unstable == {(410, 'ERROR_UNSTABLE_MD')}
