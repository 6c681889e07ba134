"""`aiida-mlpot launch active-learning`, `status`, `report`, `export` on one real (small) loop.

The loop runs once per module, through the `launch` command itself: liquid argon (32 atoms, Lennard-Jones
teacher), two NPT state points, tiny budgets. Everything else is tested against that finished run.
"""

from __future__ import annotations

import json
import re

import ase.io
import numpy as np
import pytest
import yaml
from aiida import orm
from click.testing import CliRunner

from aiida_mlpot.cli import figures
from aiida_mlpot.cli.al_run import load_run
from aiida_mlpot.cli.main import cli
from aiida_mlpot.presets import argon_lj
from aiida_mlpot.structures import random_box

OVERRIDES = {
    'selection': {'seed': 1, 'steps': [{'method': 'uniform_force', 'n': 10}, {'method': 'fps', 'n': 6}]},
    'split': {'method': 'random', 'test_fraction': 0.34, 'seed': 1},
    'loop': {'target_steps': 100, 'max_iterations': 2, 'max_per_iteration': 2, 'audit_energy_rmse': None},
    'sampling': {'md_parameters': {'equilibration_steps': 200, 'production_steps': 400, 'dump_interval': 40}},
    'exploration': {'md': {'parameters': {'md': {'dump_interval': 10}}}},
}


def _code_options(codes) -> list[str]:
    options = []
    for key, code in codes.items():
        # by UUID: another test of the session may import a code with the same label
        options += ['--code', f'{key}={code.uuid}']
    return options


@pytest.fixture(scope='module')
def inputs(tmp_path_factory):
    """The files a user hands to `launch`: a structure file, a potential file, an overrides file."""
    folder = tmp_path_factory.mktemp('launch')
    ase.io.write(folder / 'argon.xyz', random_box({'Ar': 32}, density=1.35, min_distance=3.0, seed=3))
    (folder / 'argon_lj.json').write_text(json.dumps(argon_lj()))
    (folder / 'overrides.yaml').write_text(yaml.safe_dump(OVERRIDES))
    return folder


@pytest.fixture(scope='module')
def codes(code_lmp, code_gap_fit, code_python):
    return {'lammps': code_lmp, 'gap_fit': code_gap_fit, 'python': code_python}


@pytest.fixture(scope='module')
def launched(inputs, codes):
    """Run the loop once, in process, through `aiida-mlpot launch active-learning`; return (node, output)."""
    arguments = [
        'launch',
        'active-learning',
        str(inputs / 'argon.xyz'),
        '-T',
        '100',
        '-T',
        '120',
        '-P',
        '400',
    ]
    arguments += ['--potential', str(inputs / 'argon_lj.json'), '--overrides', str(inputs / 'overrides.yaml')]
    arguments += [
        '--protocol',
        'fast',
        '--label',
        'cli test argon',
        '--no-random-baseline',
        *_code_options(codes),
    ]
    result = CliRunner().invoke(cli, arguments, catch_exceptions=False)
    match = re.search(r'ActiveLearningWorkChain<(\d+)> finished with exit status', result.output)
    assert match, result.output
    return orm.load_node(int(match.group(1))), result


@pytest.mark.e2e
def test_launch_runs_the_loop_and_prints_the_table(launched):
    node, result = launched
    assert node.process_label == 'ActiveLearningWorkChain' and node.label == 'cli test argon'
    assert 'learning_curve' in node.outputs, node.exit_message
    assert node.exit_status in (0, 410), node.exit_message  # converged, or stopped by max_iterations
    assert result.exit_code == (0 if node.is_finished_ok else 1)
    assert node.inputs.state_points.get_list() == [
        {'temperature_K': 100.0, 'pressure_bar': 400.0},
        {'temperature_K': 120.0, 'pressure_bar': 400.0},
    ]
    assert node.inputs.loop['target_steps'] == 100  # the overrides file was applied
    assert 'iterations (from the learning_curve output)' in result.output
    assert f'aiida-mlpot report {node.pk}' in result.output


def _status_json(pk) -> dict:
    result = CliRunner().invoke(cli, ['status', str(pk), '--json'])
    assert result.exit_code == 0, result.output
    return json.loads(result.output)


@pytest.mark.e2e
def test_status_agrees_with_the_learning_curve(launched):
    """After the run: the table is the output; computed from the graph (the running path) it is the same."""
    node, _ = launched
    curve = node.outputs.learning_curve.get_dict()
    shown = _status_json(node.pk)
    assert shown['iterations'] == curve['iterations'] and shown['source'] == 'learning_curve output'
    run = load_run(node.pk)
    assert run.curve_from_graph() == curve
    assert len(curve['iterations']) == len(run.iterations) >= 1

    result = CliRunner().invoke(cli, ['status', str(node.pk)])
    assert result.exit_code == 0, result.output
    for row in curve['iterations']:
        line = next(
            line for line in result.output.splitlines() if re.match(rf'\s+{row["iteration"]}\s', line)
        )
        assert line.split()[1:3] == [str(row['n_train']), str(row['oracle_calls'])]
        for key in ('test_force_rmse', 'audit_force_rmse'):
            assert (f'{row[key]:.3g}' if row[key] is not None else '-') in line.split()
        for key, replica in row['replicas'].items():
            assert f'{key} {replica["steps"]} {replica["outcome"]}' in result.output
    assert f'stopped by `{node.outputs.stopping["criterion"]}`' in result.output


@pytest.mark.e2e
def test_status_of_a_running_loop_uses_the_finished_iterations(launched):
    """While the last iteration is not yet assessed, its row is missing and it shows as under way."""
    node, _ = launched
    run = load_run(node.pk)
    last = run.iterations[-1]
    for label in (f'iteration_{last:02d}_assess', f'iteration_{last:02d}_grow', 'learning_curve'):
        run.children.pop(label, None)
    curve = node.outputs.learning_curve.get_dict()
    assert run.curve_from_graph()['iterations'] == curve['iterations'][:-1]
    pending = run.pending()
    assert pending['iteration'] == last
    assert set(pending['replicas']) == set(curve['iterations'][-1]['replicas'])


@pytest.mark.e2e
def test_report_writes_readable_figures_and_a_summary(launched, tmp_path):
    node, _ = launched
    result = CliRunner().invoke(cli, ['report', str(node.pk), '--out', str(tmp_path / 'report')])
    assert result.exit_code == 0, result.output
    folder = tmp_path / 'report'
    names = ['learning_curve', 'parity_test', 'exploration_traces', 'volume']
    names += [f'rdf_{key}' for key in node.outputs.learning_curve['iterations'][-1]['replicas']]
    if node.outputs.learning_curve['iterations'][-1]['n_audited']:
        names.append('parity_audit')
    for name in names:
        data = (folder / f'{name}.png').read_bytes()
        assert data[:8] == b'\x89PNG\r\n\x1a\n' and len(data) > 10_000, name
    summary = (folder / 'report.md').read_text()
    potential = node.outputs.potential
    assert f'GapPotentialData<{potential.pk}> on the test set' in summary
    assert f'`{node.outputs.stopping["criterion"]}`' in summary
    for name in names:
        assert f'({name}.png)' in summary
    # the audit errors of the report are those the loop measured (assess output of the last iteration)
    last = node.outputs.learning_curve['iterations'][-1]
    if last['n_audited']:
        row = next(line for line in summary.splitlines() if line.startswith('| audit set'))
        assert float(row.split('|')[3]) == pytest.approx(last['audit_force_rmse'], rel=1e-3)
    metrics = node.outputs.metrics['overall']
    row = next(line for line in summary.splitlines() if line.startswith('| test set'))
    assert float(row.split('|')[3]) == pytest.approx(metrics['forces']['rmse'], rel=1e-3)


@pytest.mark.e2e
def test_export_writes_the_potential_the_snippet_and_the_sets(launched, tmp_path):
    node, _ = launched
    potential = node.outputs.potential
    folder = tmp_path / 'export'
    result = CliRunner().invoke(cli, ['export', str(node.pk), '--out', str(folder)])
    assert result.exit_code == 0, result.output
    for name in potential.filenames:
        assert (folder / name).read_bytes() == potential.base.repository.get_object_content(name, mode='rb')
    snippet = (folder / 'lammps_pair.in').read_text().splitlines()
    assert snippet == potential.lammps_pair_lines()
    assert snippet[0] == '# LAMMPS atom types: 1 = Ar (alphabetical, as in the data files aiida-mlpot writes)'
    for name in ('training_set', 'test_set'):
        frames = ase.io.read(folder / f'{name}.xyz', index=':')
        dataset = node.outputs[name]
        assert len(frames) == len(dataset)
        assert np.allclose(frames[0].get_forces(), dataset[0].arrays['forces'])

    result = CliRunner().invoke(
        cli, ['export', str(node.pk), '--out', str(tmp_path / 'x'), '--type-order', 'Xe']
    )
    assert result.exit_code == 2 and 'Xe' in result.output
    assert not (tmp_path / 'x').exists()


# --- no run needed ----------------------------------------------------------------------------------------------
@pytest.fixture
def count_runs(aiida_profile):
    def count() -> int:
        return orm.QueryBuilder().append(orm.WorkChainNode).count()

    return count


@pytest.mark.parametrize(
    ('arguments', 'named'),
    [
        (['no_such_file.xyz', '-T', '100'], 'no_such_file.xyz'),
        (['argon', '-T', '-5'], '-5'),
        (['argon', '-T', '100', '--oracle', 'dft'], 'dft'),
        (['argon', '-T', '100', '--protocol', 'quick'], 'quick'),
        (['argon', '-T', '100', '--potential', 'lj_nosuch'], 'lj_nosuch'),
        (['argon', '-T', '100', '--code', 'lammps=nosuch@nowhere'], 'nosuch@nowhere'),
        (['argon', '-T', '100', '--code', 'lmp=lmp@localhost'], 'lmp'),
        (['argon', '-T', '100', '--potential-file', 'table'], 'table'),
    ],
)
def test_launch_refuses_bad_values_by_name(arguments, named, count_runs):
    before = count_runs()
    result = CliRunner().invoke(cli, ['launch', 'active-learning', *arguments])
    assert result.exit_code == 2, result.output
    assert named in result.output
    assert count_runs() == before


def test_launch_refuses_a_bad_overrides_file_before_running(
    tmp_path, count_runs, code_lmp, code_gap_fit, code_python
):
    codes = _code_options({'lammps': code_lmp, 'gap_fit': code_gap_fit, 'python': code_python})
    before = count_runs()
    for content, named in (
        ({'loop_settings': {}}, 'loop_settings'),
        ({'loop': {'target_stepz': 3}}, 'target_stepz'),
        ([1, 2], 'must hold a mapping'),
    ):
        path = tmp_path / 'overrides.yaml'
        path.write_text(yaml.safe_dump(content))
        arguments = ['launch', 'active-learning', 'argon', '-T', '100', '--overrides', str(path), *codes]
        result = CliRunner().invoke(cli, arguments)
        assert result.exit_code == 2 and named in result.output, result.output
    assert count_runs() == before


def test_status_refuses_a_node_that_is_not_a_loop(aiida_profile):
    node = orm.Int(5).store()
    result = CliRunner().invoke(cli, ['status', str(node.pk)])
    assert result.exit_code == 2 and 'not an ActiveLearningWorkChain' in result.output


def test_learning_curve_figure_marks_triggers(tmp_path):
    """Synthetic rows with a trigger and an instability: the figure is drawn, hatched bars annotated."""
    rows = [
        {
            'iteration': 1, 'n_train': 10, 'oracle_calls': 14, 'test_force_rmse': 0.2, 'test_energy_rmse': 5.0,
            'audit_force_rmse': None, 'audit_energy_rmse': None, 'n_triggers': 1, 'n_unstable': 1,
            'replicas': {'T1100_V1': {'outcome': 'extrapolation', 'steps': 120},
                         'T1400_V1': {'outcome': 'unstable', 'steps': 40}},
        },
        {
            'iteration': 2, 'n_train': 14, 'oracle_calls': 20, 'test_force_rmse': 0.05, 'test_energy_rmse': 1.0,
            'audit_force_rmse': 0.04, 'audit_energy_rmse': 0.8, 'n_triggers': 0, 'n_unstable': 0,
            'replicas': {'T1100_V1': {'outcome': 'completed', 'steps': 1000},
                         'T1400_V1': {'outcome': 'completed', 'steps': 1000}},
        },
    ]  # fmt: skip
    path = figures.learning_curve_figure(rows, tmp_path / 'curve.png', limits={'audit_force_rmse': 0.05})
    assert path.read_bytes()[:4] == b'\x89PNG'


def test_dataset_list_shows_label_and_creator(aiida_profile):
    from aiida_mlpot.cli.data import dataset
    from aiida_mlpot.data.dataset import DatasetData

    atoms = random_box({'Ar': 4}, density=1.0, min_distance=2.0, seed=1)
    atoms.info['energy'] = -1.0
    node = DatasetData.from_ase([atoms])
    node.label = 'audit_07'
    node.store()
    other = DatasetData.from_ase([atoms]).store()
    result = CliRunner().invoke(dataset, ['list', '-L', 'audit%'])
    assert result.exit_code == 0, result.output
    assert 'Created by' in result.output and 'audit_07' in result.output
    assert re.search(rf'^\s*{node.pk}\s', result.output, re.M)
    assert not re.search(rf'^\s*{other.pk}\s', result.output, re.M)


def test_every_command_is_in_the_reference():
    import pathlib

    reference = (pathlib.Path(__file__).resolve().parents[2] / 'docs' / 'reference' / 'cli.md').read_text()
    names = []
    for name, command in cli.commands.items():
        names += [f'{name} {sub}' for sub in getattr(command, 'commands', {})] or [name]
    for name in names:
        assert f'`aiida-mlpot {name}' in reference, name
