"""The layers of docs/architecture.md, checked on the source: no import cycle, pure packages free of AiiDA,
nothing below the work chains importing them, no private name imported across modules.

Imports are read with :mod:`ast` from every module of ``aiida_mlpot``, function-level imports included.
"""

from __future__ import annotations

import ast
import pathlib

import pytest

PACKAGE = pathlib.Path(__file__).resolve().parents[1] / 'aiida_mlpot'
#: Packages that run on compute nodes or are plain algorithms: they must not import AiiDA, even indirectly.
PURE = (
    'common',
    'selection',
    'descriptors',
    'analysis',
    'potentials',
    'engines',
    'inputs',
    'parsers.parse_raw',
)
#: The only packages allowed to import ``aiida_mlpot.workflows``.
ABOVE_WORKFLOWS = ('workflows', 'cli')
AIIDA_ROOTS = ('aiida', 'plumpy', 'aiida_lammps', 'aiida_cp2k', 'kiwipy')


def module_name(path: pathlib.Path) -> str:
    parts = list(path.relative_to(PACKAGE.parent).with_suffix('').parts)
    if parts[-1] == '__init__':
        parts.pop()
    return '.'.join(parts)


def modules() -> dict[str, pathlib.Path]:
    return {module_name(path): path for path in sorted(PACKAGE.rglob('*.py'))}


MODULES = modules()


def imports_of(name: str) -> list[tuple[str, str | None, int]]:
    """Return ``(imported module, imported name or None, line)`` for every import statement of a module."""
    path = MODULES[name]
    tree = ast.parse(path.read_text(), filename=str(path))
    package = name if path.name == '__init__.py' else name.rpartition('.')[0]
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [(alias.name, None, node.lineno) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ''
            if node.level:
                anchor = package.split('.')
                anchor = anchor[: len(anchor) - node.level + 1]
                base = '.'.join([*anchor, base] if base else anchor)
            found += [(base, alias.name, node.lineno) for alias in node.names]
    return found


def internal_edges(name: str) -> list[tuple[str, str | None, int]]:
    """Return ``(target module, private name or None, line)`` of the aiida_mlpot modules ``name`` imports."""
    edges = []
    for module, imported, line in imports_of(name):
        if not module.startswith('aiida_mlpot'):
            continue
        if imported is not None and f'{module}.{imported}' in MODULES:
            edges.append((f'{module}.{imported}', None, line))
        else:
            dunder = imported is not None and imported.startswith('__') and imported.endswith('__')
            private = imported if imported and imported.startswith('_') and not dunder else None
            edges.append((module, private, line))
    return edges


GRAPH = {name: sorted({target for target, _, _ in internal_edges(name)}) for name in MODULES}


def in_package(name: str, package: str) -> bool:
    full = f'aiida_mlpot.{package}'
    return name == full or name.startswith(full + '.')


def test_modules_found():
    assert 'aiida_mlpot.engines' in MODULES and len(MODULES) > 40


def test_no_import_cycle():
    """Tarjan's strongly connected components of the module graph: every component is a single module."""
    index, low, stack, on_stack, cycles = {}, {}, [], set(), []

    def visit(node):
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for target in GRAPH.get(node, []):
            if target not in MODULES:
                continue
            if target not in index:
                visit(target)
                low[node] = min(low[node], low[target])
            elif target in on_stack:
                low[node] = min(low[node], index[target])
        if low[node] == index[node]:
            component = []
            while True:
                item = stack.pop()
                on_stack.discard(item)
                component.append(item)
                if item == node:
                    break
            if len(component) > 1 or node in GRAPH.get(node, []):
                cycles.append(sorted(component))

    for name in MODULES:
        if name not in index:
            visit(name)
    assert not cycles, f'import cycles: {cycles}'


@pytest.mark.parametrize('name', sorted(MODULES))
def test_no_private_import_across_modules(name):
    private = [(target, imported, line) for target, imported, line in internal_edges(name) if imported]
    assert not private, f'{name} imports private names of other modules: {private}'


@pytest.mark.parametrize('name', sorted(MODULES))
def test_workflows_imported_only_from_above(name):
    if any(in_package(name, package) for package in ABOVE_WORKFLOWS):
        return
    bad = [(target, line) for target, _, line in internal_edges(name) if in_package(target, 'workflows')]
    assert not bad, f'{name} imports the workflows layer: {bad}'


def transitive(name: str) -> set[str]:
    seen, todo = set(), [name]
    while todo:
        current = todo.pop()
        for target in GRAPH.get(current, []):
            if target in MODULES and target not in seen:
                seen.add(target)
                todo.append(target)
    return seen


PURE_MODULES = sorted(name for name in MODULES if any(in_package(name, package) for package in PURE))


@pytest.mark.parametrize('name', PURE_MODULES)
def test_pure_modules_import_no_aiida(name):
    """A pure module and every aiida_mlpot module it imports, directly or not, import no AiiDA package."""
    offenders = []
    for module in [name, *sorted(transitive(name))]:
        for imported, _, line in imports_of(module):
            if imported.split('.')[0] in AIIDA_ROOTS:
                offenders.append(f'{module}:{line} imports {imported}')
    assert not offenders, f'{name} is pure but reaches AiiDA: {offenders}'


def test_the_checks_can_fail(tmp_path):
    """The cycle and private-name detection see a planted violation (so the tests above are not vacuous)."""
    global GRAPH
    saved = GRAPH
    GRAPH = {
        **saved,
        'aiida_mlpot.common.units': [*saved['aiida_mlpot.common.units'], 'aiida_mlpot.structures'],
    }
    try:
        with pytest.raises(AssertionError, match='import cycles'):
            test_no_import_cycle()
    finally:
        GRAPH = saved
