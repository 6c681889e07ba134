"""Every `mlpot.*` entry point loads, and every process declares each exit status once, in the plugin range."""

from importlib.metadata import entry_points

import pytest
from aiida.engine import Process
from aiida.orm import Data
from aiida.parsers import Parser
from aiida.plugins import CalculationFactory, DataFactory, ParserFactory, WorkflowFactory

GROUPS = {
    'aiida.data': DataFactory,
    'aiida.calculations': CalculationFactory,
    'aiida.parsers': ParserFactory,
    'aiida.workflows': WorkflowFactory,
}
NAMES = [
    (group, ep.name) for group in GROUPS for ep in entry_points(group=group) if ep.name.startswith('mlpot.')
]


def test_all_groups_have_entry_points():
    assert {group for group, _ in NAMES} == set(GROUPS)


@pytest.mark.parametrize(('group', 'name'), NAMES)
def test_entry_point_loads(group, name):
    plugin = GROUPS[group](name)
    process = plugin if isinstance(plugin, type) else plugin.process_class  # calcfunctions: their Process
    expected = {'aiida.data': Data, 'aiida.parsers': Parser}.get(group, Process)
    assert isinstance(process, type) and issubclass(process, expected), (
        f'{group} entry point {name} loads {plugin!r}, not a {expected.__name__}'
    )
    assert getattr(plugin, '__module__', '').startswith('aiida_mlpot.'), f'{name} is not ours: {plugin!r}'
    if isinstance(process, type) and issubclass(process, Process):
        exit_codes = dict(process.spec().exit_codes.items())
        statuses = [code.status for code in exit_codes.values()]
        assert len(statuses) == len(set(statuses)), (
            f'{name}: an exit status is declared twice: {sorted(statuses)}'
        )
        # codes inherited from aiida-core or an upstream plugin (aiida-lammps, aiida-cp2k) are theirs
        upstream = [
            base
            for base in process.__mro__[1:]
            if isinstance(base, type)
            and issubclass(base, Process)
            and not base.__module__.startswith('aiida_mlpot')
        ]
        core = {label for base in upstream for label, _ in base.spec().exit_codes.items()}
        for label, code in exit_codes.items():
            if code.status >= 100 and label not in core:
                assert code.status < 1000, f'{name}: {label} has status {code.status} outside 100-999'
                assert label.startswith('ERROR_'), (
                    f'{name}: exit code {label} ({code.status}) is not ERROR_...'
                )
