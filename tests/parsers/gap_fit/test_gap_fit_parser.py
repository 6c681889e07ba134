"""GapFitParser on recorded real gap_fit outputs, attached to a CalcJobNode built by hand."""

from __future__ import annotations

import pathlib

import pytest

FIXTURES = pathlib.Path(__file__).parent / 'fixtures'


@pytest.fixture
def make_node(aiida_profile, localhost):
    """Return a factory of a stored GapFitCalculation node with a retrieved folder of the given files."""
    from aiida import orm
    from aiida.common.links import LinkType
    from ase.io import read

    from aiida_mlpot.data.dataset import DatasetData

    dataset = DatasetData.from_ase(read(FIXTURES / 'success_dataset.xyz', index=':')).store()

    def factory(files: dict[str, pathlib.Path | str], memory_limit_mb: int | None = None):
        node = orm.CalcJobNode(computer=localhost, process_type='aiida.calculations:mlpot.gap_fit')
        node.set_option('resources', {'num_machines': 1, 'num_mpiprocs_per_machine': 1})
        node.base.links.add_incoming(dataset, LinkType.INPUT_CALC, 'dataset')
        parameters = orm.Dict(
            {
                'descriptors': [{'type': 'distance_2b', 'cutoff': 5.0, 'n_sparse': 10, 'delta': 1.0}],
                'default_sigma': {'energy': 0.002, 'force': 0.05},
            }
        ).store()
        node.base.links.add_incoming(parameters, LinkType.INPUT_CALC, 'parameters')
        if memory_limit_mb is not None:
            node.base.links.add_incoming(
                orm.Int(memory_limit_mb).store(), LinkType.INPUT_CALC, 'memory_limit_mb'
            )
        node.store()
        retrieved = orm.FolderData()
        for name, content in files.items():
            if isinstance(content, pathlib.Path):
                retrieved.base.repository.put_object_from_file(str(content), name)
            else:
                retrieved.base.repository.put_object_from_bytes(content.encode(), name)
        retrieved.base.links.add_incoming(node, LinkType.CREATE, 'retrieved')
        retrieved.store()
        return node

    return factory


def parse(node):
    from aiida_mlpot.parsers.gap_fit import GapFitParser

    return GapFitParser.parse_from_node(node, store_provenance=False)


def test_success(make_node):
    files = {path.name: path for path in (FIXTURES / 'success').iterdir()}
    results, calcfunction = parse(make_node(files))
    assert calcfunction.is_finished_ok, calcfunction.exit_message
    potential = results['potential']
    assert potential.xml_filename == 'gap.xml' and len(potential.filenames) == 6
    assert sorted(potential.species) == ['Cl', 'Na']
    diagnostics = results['diagnostics'].get_dict()
    assert diagnostics['n_sparse'] == [10, 10, 10, 8, 8] and diagnostics['n_sparse_total'] == 46
    assert diagnostics['n_targets']['virials'] == 24 and diagnostics['exit_status'] == 0
    assert diagnostics['n_configs'] == 4


def test_out_of_memory_under_limit(make_node):
    node = make_node({'gap_fit.log': FIXTURES / 'out_of_memory.log', 'gap_fit.exit_status': '1\n'}, 420)
    _, calcfunction = parse(node)
    assert calcfunction.exit_status == 410
    assert 'Error allocating' in calcfunction.exit_message and '420 MB' in calcfunction.exit_message


def test_abort(make_node):
    _, calcfunction = parse(make_node({'gap_fit.log': FIXTURES / 'abort.log', 'gap_fit.exit_status': '1\n'}))
    assert calcfunction.exit_status == 310
    assert 'failed to parse gap string' in calcfunction.exit_message


def test_crash_without_message(make_node):
    log = (FIXTURES / 'success.log').read_text().split('Started CUR decomposition')[0]
    _, calcfunction = parse(make_node({'gap_fit.log': log, 'gap_fit.exit_status': '139\n'}))
    assert calcfunction.exit_status == 311


def test_missing_log_and_missing_sparse_files(make_node):
    _, calcfunction = parse(make_node({'gap_fit.exit_status': '0\n'}))
    assert calcfunction.exit_status == 301
    files = {'gap_fit.log': FIXTURES / 'success.log', 'gap.xml': FIXTURES / 'success' / 'gap.xml'}
    _, calcfunction = parse(make_node(files))
    assert calcfunction.exit_status == 303
