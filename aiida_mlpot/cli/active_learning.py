"""`aiida-mlpot launch active-learning`, `status`, `report` and `export`: the active-learning loop from a shell.

* ``launch active-learning STRUCTURE -T 1100 -T 1400``: build the loop with
  ``ActiveLearningWorkChain.get_builder_from_protocol`` and run it here (its report lines as progress) or
  ``--submit`` it to the daemon. Every value is checked before anything runs.
* ``status PK``: the iteration table, from the ``learning_curve`` output once there is one, otherwise from the
  finished ``iteration_NN_plan`` / ``iteration_NN_assess`` calcfunctions and fits of the running loop.
* ``report PK --out DIR``: PNG figures and ``report.md``.
* ``export PK --out DIR``: the GAP (XML, sparseX, a ``pair_style quip`` snippet) and the training and test sets.
"""

from __future__ import annotations

import json
import pathlib

import click

__all__ = ('export_command', 'launch', 'report_command', 'status_command')

#: Starting structures by name: a random box of the composition at the density, and the matching preset
#: potential of :mod:`aiida_mlpot.presets` (the README's molten NaCl; liquid argon).
STRUCTURE_PRESETS = {
    'nacl': {
        'composition': {'Na': 32, 'Cl': 32},
        'density': 1.35,
        'min_distance': 2.3,
        'potential': 'nacl_tosi_fumi',
        'description': 'molten NaCl, 64 atoms in a random box at 1.35 g/cm³ (Tosi-Fumi)',
    },
    'argon': {
        'composition': {'Ar': 64},
        'density': 1.35,
        'min_distance': 3.0,
        'potential': 'argon_lj',
        'description': 'liquid argon, 64 atoms in a random box at 1.35 g/cm³ (Lennard-Jones)',
    },
}
CODE_KEYS = ('lammps', 'cp2k', 'gap_fit', 'python')


def _load_profile(profile: str | None) -> None:
    from aiida import load_profile
    from aiida.manage import get_manager

    if profile is not None:
        load_profile(profile, allow_switch=True)
    elif get_manager().get_profile() is None:
        load_profile()


def _profile_option(function):
    return click.option(
        '--profile', default=None, help='AiiDA profile (default: the loaded, else the default profile).'
    )(function)


def _load_run(pk: str):
    from aiida.common.exceptions import MultipleObjectsError, NotExistent

    from aiida_mlpot.cli.al_run import NotAnActiveLearningRun, load_run

    try:
        return load_run(int(pk) if pk.isdigit() else pk)
    except (NotExistent, MultipleObjectsError, NotAnActiveLearningRun) as exception:
        raise click.BadParameter(str(exception), param_hint='PK') from exception


# --- launch ---------------------------------------------------------------------------------------------------
@click.group('launch')
def launch():
    """Launch a workflow of aiida-mlpot."""


def _read_mapping(path: pathlib.Path, what: str, param_hint: str) -> dict:
    import yaml

    try:
        values = yaml.safe_load(path.read_text())  # YAML is a superset of JSON
    except (OSError, yaml.YAMLError) as exception:
        raise click.BadParameter(
            f'cannot read {what} `{path}`: {exception}', param_hint=param_hint
        ) from exception
    if not isinstance(values, dict):
        raise click.BadParameter(
            f'{what} `{path}` must hold a mapping, got {type(values).__name__}', param_hint=param_hint
        )
    return values


def _structure(value: str, seed: int):
    """Return (ASE Atoms, description, preset potential name or None) of a structure file or preset."""
    from aiida_mlpot.structures import random_box

    if value in STRUCTURE_PRESETS:
        preset = STRUCTURE_PRESETS[value]
        atoms = random_box(preset['composition'], preset['density'], preset['min_distance'], seed=seed)
        return atoms, preset['description'], preset['potential']
    path = pathlib.Path(value)
    if not path.is_file():
        raise click.BadParameter(
            f'`{value}` is neither a file nor a preset ({", ".join(STRUCTURE_PRESETS)})',
            param_hint='STRUCTURE',
        )
    import ase.io

    try:
        atoms = ase.io.read(path)
    except Exception as exception:  # ASE raises many kinds for an unreadable file
        raise click.BadParameter(
            f'ASE cannot read `{value}`: {exception}', param_hint='STRUCTURE'
        ) from exception
    if len(atoms) == 0 or not all(atoms.pbc) or atoms.cell.rank != 3:
        raise click.BadParameter(
            f'`{value}` must hold a periodic cell (pbc in 3 directions) with atoms', param_hint='STRUCTURE'
        )
    return atoms, f'{atoms.get_chemical_formula()} from {path.name}', None


def _potential(value: str | None, default: str | None) -> tuple[dict, str]:
    from aiida_mlpot import presets

    names = list(presets.__all__)
    value = value or default
    if value is None:
        raise click.BadParameter(
            f'give the classical potential: a preset ({", ".join(names)}) or a JSON/YAML file',
            param_hint='--potential',
        )
    if value in names:
        return getattr(presets, value)(), f'preset {value}'
    path = pathlib.Path(value)
    if not path.is_file():
        raise click.BadParameter(
            f'`{value}` is neither a preset ({", ".join(names)}) nor a file', param_hint='--potential'
        )
    return _read_mapping(path, 'classical potential', '--potential'), str(path)


def _pairs(values: tuple[str, ...], option: str, keys: tuple[str, ...] | None = None) -> dict[str, str]:
    result = {}
    for item in values:
        key, sep, value = item.partition('=')
        if not sep or not key or not value:
            raise click.BadParameter(f'`{item}`: expected KEY=VALUE', param_hint=option)
        if keys is not None and key not in keys:
            raise click.BadParameter(f'`{key}`: unknown key; known: {", ".join(keys)}', param_hint=option)
        result[key] = value
    return result


def _codes(values: tuple[str, ...]) -> dict:
    from aiida_mlpot.calculations.ports import load_code_by_label

    codes = {}
    for key, label in _pairs(values, '--code', CODE_KEYS).items():
        try:
            codes[key] = load_code_by_label(label)
        except ValueError as exception:
            raise click.BadParameter(f'`{label}`: {exception}', param_hint='--code') from exception
    return codes


def _protocols() -> list[str]:
    from aiida_mlpot.workflows.active_learning import ActiveLearningWorkChain

    return list(ActiveLearningWorkChain.get_available_protocols())


def _validate(process_class, builder) -> str | None:
    """Validate ``builder`` as the process will at launch (defaults filled, empty namespaces pruned)."""
    from aiida.engine.processes.utils import prune_mapping

    inputs = process_class.spec().inputs
    error = inputs.validate(inputs.pre_process(prune_mapping(dict(builder))))
    return None if error is None else str(error)


def _choice(name: str, choices: tuple[str, ...], default: str, help_text: str):
    """An option with a fixed set of values and a default shown in the help."""
    return click.option(name, type=click.Choice(choices), default=default, show_default=True, help=help_text)


@launch.command('active-learning')
@click.argument('structure')
@click.option(
    '-T',
    '--temperature',
    'temperatures',
    type=click.FloatRange(min=0, min_open=True),
    multiple=True,
    required=True,
    help='Temperature (K) where the potential will be used; repeat for several.',
)
@click.option(
    '-P',
    '--pressure',
    'pressures',
    type=float,
    multiple=True,
    help='Pressure (bar): NPT at every temperature and pressure; without it NVT at the volume of STRUCTURE.',
)
@click.option(
    '--potential',
    default=None,
    help='Classical potential: a preset of aiida_mlpot.presets (nacl_tosi_fumi, argon_lj) or a JSON/YAML file of '
    'the classical-potential dictionary. Default: that of a STRUCTURE preset.',
)
@click.option(
    '--potential-file',
    'potential_files',
    multiple=True,
    metavar='KEY=PATH',
    help='A file the potential refers to by KEY in its `files` (e.g. an EAM table); repeat for several.',
)
@_choice(
    '--oracle',
    ('classical', 'cp2k-xtb', 'cp2k-pbe'),
    'classical',
    'Who labels: the classical potential itself, CP2K GFN1-xTB (a fast fixed-cell test oracle) or CP2K PBE.',
)
@_choice(
    '--protocol',
    ('fast', 'balanced', 'stringent'),
    'balanced',
    'Budgets and settings of every stage (see docs/active_learning.md).',
)
@click.option(
    '--overrides',
    type=click.Path(exists=True, dir_okay=False, path_type=pathlib.Path),
    default=None,
    help='YAML/JSON file of inputs keyed like the ports (loop, selection, sampling, fitting, ...).',
)
@click.option(
    '--code',
    'codes',
    multiple=True,
    metavar='KEY=LABEL',
    help='Code for lammps, cp2k, gap_fit or python (default: those `aiida-mlpot setup` registers on localhost).',
)
@click.option(
    '--random-baseline/--no-random-baseline',
    default=None,
    help='At the end, also fit a potential on as many pool configurations drawn at random, and test both on '
    'the same held-out set (default: on for the classical oracle, off for CP2K).',
)
@click.option(
    '--validate',
    is_flag=True,
    help='At the end, validate the final potential(s) against the classical teacher (ValidationWorkChain; '
    'classical oracle only).',
)
@click.option('--seed', type=int, default=2024, show_default=True, help='Seed of a preset random box.')
@click.option('--label', default=None, help='Label of the run (default: what it runs).')
@click.option(
    '--submit', is_flag=True, help='Submit to the daemon and return; default: run here until it ends.'
)
@_profile_option
def launch_active_learning(
    structure, temperatures, pressures, potential, potential_files, oracle, protocol, overrides, codes,
    random_baseline, validate, seed, label, submit, profile,
):  # fmt: skip
    """Learn a GAP by active learning for STRUCTURE (a file ASE reads, or a preset: nacl, argon).

    Sample the state points with the classical potential, label a first set with the oracle, fit, then explore
    with ML MD, audit and refit until every replica runs its target steps without a trigger and the audited
    error is small. Without --submit it runs in this process and prints the report line of each stage, then
    the iteration table.
    """
    if protocol not in _protocols():
        raise click.BadParameter(f'`{protocol}`: unknown protocol', param_hint='--protocol')
    atoms, description, default_potential = _structure(structure, seed)
    classical, potential_source = _potential(potential, default_potential)
    files = _pairs(potential_files, '--potential-file')
    for key, path in files.items():
        if not pathlib.Path(path).is_file():
            raise click.BadParameter(f'`{key}={path}`: no such file', param_hint='--potential-file')
    override_values = _read_mapping(overrides, 'overrides', '--overrides') if overrides else None

    _load_profile(profile)
    from aiida import orm
    from aiida.common.exceptions import NotExistent

    from aiida_mlpot.workflows.active_learning import ActiveLearningWorkChain

    code_nodes = _codes(codes)
    structure_node = orm.StructureData(ase=atoms)
    structure_node.label = description
    file_nodes = {key: orm.SinglefileData(pathlib.Path(path).resolve()) for key, path in files.items()}
    try:
        builder = ActiveLearningWorkChain.get_builder_from_protocol(
            structure_node, classical, temperatures=list(temperatures), pressures=list(pressures) or None,
            oracle=oracle, protocol=protocol, overrides=override_values, codes=code_nodes,
            potential_files=file_nodes or None, random_baseline=random_baseline, validate=validate,
        )  # fmt: skip
    except NotExistent as exception:
        raise click.UsageError(
            f'{exception}; run `aiida-mlpot setup` or give --code KEY=LABEL'
        ) from exception
    except (ValueError, TypeError, KeyError) as exception:
        raise click.UsageError(str(exception)) from exception
    error = _validate(ActiveLearningWorkChain, builder)
    if error is not None:
        raise click.UsageError(f'invalid inputs: {error}')
    points = ', '.join(f'{t:g}' for t in temperatures) + ' K'
    builder.metadata.label = label or f'active learning: {description}'
    click.echo(
        f'{builder.metadata.label}; potential: {potential_source}; oracle {oracle}; protocol {protocol}; '
        f'temperatures {points}'
        + (f'; pressures {", ".join(f"{p:g}" for p in pressures)} bar' if pressures else ' (NVT)')
    )
    if submit:
        from aiida.engine import submit as submit_process
        from aiida.engine.daemon.client import get_daemon_client

        node = submit_process(builder)
        click.echo(
            f'submitted ActiveLearningWorkChain<{node.pk}>; follow it with `aiida-mlpot status {node.pk}`'
        )
        if not get_daemon_client().is_daemon_running:
            click.echo('warning: the daemon is not running; start it with `verdi daemon start`', err=True)
        return
    from aiida.engine import run_get_node

    _, node = run_get_node(builder)
    click.echo(f'\nActiveLearningWorkChain<{node.pk}> finished with exit status {node.exit_status}')
    _print_status(_load_run(str(node.pk)))
    click.echo(
        f'next: aiida-mlpot report {node.pk} --out report_{node.pk}; aiida-mlpot export {node.pk} --out gap_{node.pk}'
    )
    if not node.is_finished_ok:
        raise SystemExit(1)


# --- status ---------------------------------------------------------------------------------------------------
def _number(value, digits: int = 3) -> str:
    return '-' if value is None else f'{value:.{digits}g}'


def _cell(value) -> str | None:
    """A table cell of a number (None stays None: tabulate shows `-` and keeps the column numeric)."""
    return None if value is None else f'{value:.3g}'


#: Columns of the iteration table: (header, function of a learning-curve row).
COLUMNS = (
    ('it', lambda row: row['iteration']),
    ('train', lambda row: row.get('n_train')),
    ('oracle\ncalls', lambda row: row.get('oracle_calls')),
    ('test F\neV/Å', lambda row: _cell(row.get('test_force_rmse'))),
    ('test E\nmeV/atom', lambda row: _cell(row.get('test_energy_rmse'))),
    ('audit F\neV/Å', lambda row: _cell(row.get('audit_force_rmse'))),
    ('audit E\nmeV/atom', lambda row: _cell(row.get('audit_energy_rmse'))),
    (
        'steps per replica',
        lambda row: '\n'.join(
            f'{key} {item.get("steps")} {item.get("outcome")}'
            for key, item in sorted(row.get('replicas', {}).items())
        ),
    ),  # fmt: skip
    ('triggers/\nunstable', lambda row: f'{row.get("n_triggers", 0)}/{row.get("n_unstable", 0)}'),
    ('new', lambda row: row.get('n_candidates')),
    ('verdict', lambda row: row.get('verdict')),
)


def iteration_table(rows: list[dict]) -> str:
    """Return the rows of a learning curve as a text table (one row per iteration)."""
    from tabulate import tabulate

    cells = [[get(row) for _, get in COLUMNS] for row in rows]
    headers = [header for header, _ in COLUMNS]
    return tabulate(cells, headers=headers, missingval='-', maxcolwidths=[None] * 10 + [34])


def baseline_rows(node) -> list[dict]:
    """Return the active-learning and random potentials side by side (same final test set), [] without a baseline."""
    if 'random_baseline' not in node.outputs or 'metrics' not in node.outputs.random_baseline:
        return []
    baseline = node.outputs.random_baseline
    rows = []
    for name, potential, train, metrics in (
        (
            'active learning',
            node.outputs.potential,
            node.outputs.training_set,
            baseline.active_learning_metrics,
        ),
        ('random', baseline.potential, baseline.training_set, baseline.metrics),
    ):
        overall = metrics.get_dict()['overall']
        rows.append(
            {
                'selection': name,
                'potential': potential.pk,
                'n_train': len(train),
                'n_test': metrics.get_dict().get('n_configs'),
                **{
                    f'{key}_{stat}': (overall.get(label) or {}).get(stat)
                    for key, label in (
                        ('force', 'forces'),
                        ('energy', 'energy_per_atom'),
                        ('virial', 'virial_per_atom'),
                    )
                    for stat in ('rmse', 'max')
                },
            }
        )
    return rows


def baseline_table(rows: list[dict]) -> str:
    """Return :func:`baseline_rows` as a text table."""
    from tabulate import tabulate

    headers = ['selection', 'potential', 'train', 'force RMSE\neV/Å', 'force max\neV/Å', 'energy RMSE\nmeV/atom',
               'virial RMSE\nmeV/atom']  # fmt: skip
    cells = [
        [row['selection'], row['potential'], row['n_train'], _cell(row['force_rmse']), _cell(row['force_max']),
         _cell(row['energy_rmse']), _cell(row['virial_rmse'])]
        for row in rows
    ]  # fmt: skip
    return tabulate(cells, headers=headers, missingval='-')


def validation_verdicts(node) -> dict[str, str]:
    """Return the validation verdict of each validated potential (``active_learning``, ``random_baseline``)."""
    if 'validation' not in node.outputs:
        return {}
    return {
        which: outputs.verdict.value
        for which, outputs in node.outputs.validation.items()
        if 'verdict' in outputs
    }


def _print_status(run) -> None:
    node = run.node
    state = node.process_state.value if node.process_state else 'created'
    exit_text = f' [{node.exit_status}]' if node.exit_status is not None else ''
    click.echo(f'ActiveLearningWorkChain<{node.pk}> {node.label!r}: {state}{exit_text}')
    points = node.inputs.state_points.get_list()
    loop = node.inputs.loop.get_dict()
    click.echo(
        'state points: '
        + ', '.join(
            f'{p["temperature_K"]:g} K'
            + (f' {p["pressure_bar"]:g} bar (NPT)' if p.get('pressure_bar') is not None else ' (NVT)')
            for p in points
        )
        + f'; target {loop["target_steps"]} steps, audit force RMSE < {loop["audit_force_rmse"]} eV/Å'
        + (
            f', energy < {loop["audit_energy_rmse"]} meV/atom'
            if loop.get('audit_energy_rmse') is not None
            else ''
        )
    )
    curve, source = run.curve()
    click.echo(f'iterations (from the {source}):')
    click.echo(iteration_table(curve['iterations']) if curve['iterations'] else '  none assessed yet')
    pending = run.pending()
    if pending is not None and not node.is_terminated:
        replicas = ', '.join(
            f'{key} {item["state"]}'
            + (f' ({item["outcome"]} after {item["steps"]} steps)' if item['outcome'] else '')
            for key, item in pending['replicas'].items()
        )
        click.echo(f'iteration {pending["iteration"]} under way: {replicas}')
    latest = run.latest()
    if latest is not None and not node.is_terminated:
        label, child = latest
        child_state = child.process_state.value if child.process_state else 'created'
        click.echo(f'latest step: {label} {child.process_label}<{child.pk}> {child_state}')
    if 'stopping' in node.outputs:
        stopping = node.outputs.stopping.get_dict()
        click.echo(f'stopped by `{stopping["criterion"]}`: {stopping["reason"]}')
    if 'potential' in node.outputs:
        overall = node.outputs.metrics.get_dict()['overall']
        click.echo(
            f'final potential GapPotentialData<{node.outputs.potential.pk}>: {len(node.outputs.training_set)} '
            f'training configurations; test force RMSE {_number(overall["forces"]["rmse"], 4)} eV/Å, energy RMSE '
            f'{_number(overall["energy_per_atom"]["rmse"], 4)} meV/atom (test set at its fit)'
        )
    elif node.is_terminated:
        click.echo(f'no potential: {node.exit_message}')
    rows = baseline_rows(node)
    if rows:
        click.echo(
            f'active learning vs random selection at the same label budget, on the final test set '
            f'({len(node.outputs.test_set)} configurations):'
        )
        click.echo(baseline_table(rows))
    for which, verdict in validation_verdicts(node).items():
        click.echo(f'validation of the {which.replace("_", " ")} potential: {verdict}')


@click.command('status')
@click.argument('pk')
@click.option('--json', 'as_json', is_flag=True, help='Print the learning-curve rows as JSON.')
@_profile_option
def status_command(pk, as_json, profile):
    """The iteration table of the active-learning run PK, while it runs and after.

    Per iteration: training-set size, cumulative oracle calls, test and audit errors of the potential that
    explored, steps each replica reached and how it ended, triggers/instabilities, new training
    configurations, the verdict. A finished run's table is its `learning_curve` output; a running one's is
    computed the same way from its finished iterations.
    """
    _load_profile(profile)
    run = _load_run(pk)
    if as_json:
        curve, source = run.curve()
        click.echo(json.dumps({**curve, 'source': source, 'state': run.node.process_state.value}, indent=1))
        return
    _print_status(run)


# --- export ---------------------------------------------------------------------------------------------------
def _out_option(help_text: str):
    """The ``--out FOLDER`` option of `export` and `report`."""
    return click.option(
        '--out',
        'folder',
        required=True,
        type=click.Path(file_okay=False, path_type=pathlib.Path),
        help=help_text,
    )


@click.command('export')
@click.argument('pk')
@_out_option('Folder to write to (created).')
@click.option(
    '--type-order',
    default=None,
    help='Elements of the LAMMPS atom types, comma-separated (default: alphabetical).',
)
@_profile_option
def export_command(pk, folder, type_order, profile):
    """Write the final GAP of run PK (XML, sparseX, `pair_style quip` snippet) and its training and test sets.

    Files: the gap_fit XML and sparseX files, `lammps_pair.in` (for a LAMMPS built with ML-QUIP; a comment
    names the element of each atom type), `training_set.xyz` and `test_set.xyz` (extended XYZ, eV, Å, eV/Å).
    """
    _load_profile(profile)
    from aiida_mlpot.cli.data import write_potential

    run = _load_run(pk)
    node = run.node
    if 'potential' not in node.outputs:
        state = node.process_state.value if node.process_state else 'created'
        raise click.UsageError(
            f'ActiveLearningWorkChain<{node.pk}> has no potential output ({state}): nothing to export'
        )
    potential = node.outputs.potential
    try:
        message = write_potential(potential, folder, type_order)
    except ValueError as exception:
        raise click.BadParameter(str(exception), param_hint='--type-order') from exception
    click.echo(message)
    for name in ('training_set', 'test_set'):
        dataset = node.outputs[name]
        (folder / f'{name}.xyz').write_text(dataset.get_content())
        click.echo(f'wrote {name}.xyz: {len(dataset)} configurations (DatasetData<{dataset.pk}>)')
    if not node.is_finished_ok:
        click.echo(f'note: the run did not converge: {node.exit_message}', err=True)


# --- report ---------------------------------------------------------------------------------------------------
def _last_exploration(run) -> tuple[int | None, dict]:
    """Return the last iteration whose replicas all have a summary, and those replicas by key."""
    for iteration in reversed(run.iterations):
        replicas = run.replicas(iteration)
        if replicas and all('summary' in node.outputs for node in replicas.values()):
            return iteration, replicas
    return None, {}


def _rdfs(run, replicas: dict, n_bins: int) -> tuple[dict, dict, float | None]:
    """Partial RDFs of each replica's ML-MD frames and of the sampling frames at the same state point."""
    from aiida_mlpot.analysis.rdf import max_rdf_cutoff, partial_rdfs

    frames = {}
    for key, node in replicas.items():
        ml = node.outputs.trajectory.to_ase() if 'trajectory' in node.outputs else []
        reference = run.sampling_frames(key)
        if ml and reference:
            frames[key] = (ml, reference)
    if not frames:
        return {}, {}, None
    r_max = min(max_rdf_cutoff(atoms) for ml, reference in frames.values() for atoms in (*ml, *reference))
    r_max = min(r_max, 10.0)
    ml_rdfs, reference_rdfs = {}, {}
    for key, (ml, reference) in frames.items():
        ml_rdfs[key] = partial_rdfs(ml, r_max, n_bins=n_bins)
        reference_rdfs[key] = partial_rdfs(reference, r_max, n_bins=n_bins)
    return ml_rdfs, reference_rdfs, r_max


def write_report(run, folder: pathlib.Path, rdf_bins: int = 100) -> dict:
    """Write the figures and ``report.md`` of ``run`` to ``folder``; return ``{figure name: (path, title)}``."""
    import numpy as np

    from aiida_mlpot.analysis.errors import compute_errors, parity_plot
    from aiida_mlpot.analysis.rdf import rdf_overlay_plot, short_range_artefacts
    from aiida_mlpot.cli import figures
    from aiida_mlpot.workflows.state_points import exploration_key

    folder.mkdir(parents=True, exist_ok=True)
    node = run.node
    loop = node.inputs.loop.get_dict()
    points = {}
    for point in node.inputs.state_points.get_list():
        points[exploration_key(point)] = point
    written, notes = {}, []
    curve, source = run.curve()
    rows = curve['iterations']
    name = f'ActiveLearningWorkChain<{node.pk}>'

    if rows:
        title = f'{name}: learning curve'
        figures.learning_curve_figure(rows, folder / 'learning_curve.png', limits=loop, title=title)
        written['learning curve'] = (folder / 'learning_curve.png', title)
    else:
        notes.append('no iteration assessed yet: no learning curve')

    potential = run.potential()
    errors = {}
    if potential is not None:
        label = f'GapPotentialData<{potential.pk}>'
        fit = run.fit_of(potential)
        if fit is not None and 'predictions' in fit.outputs and 'test_dataset' in fit.inputs:
            references, predictions = fit.inputs.test_dataset.to_ase(), fit.outputs.predictions.to_ase()
            title = f'{label} on the test set ({len(references)} configurations held out at its fit)'
            parity_plot(references, predictions, folder / 'parity_test.png', title=title)
            written['parity, test set'] = (folder / 'parity_test.png', title)
            errors['test set'] = (len(references), compute_errors(references, predictions)['overall'])
        explored = run.explored_with(potential)
        references, predictions = run.audit_frames(explored[-1]) if explored else ([], [])
        if references:
            title = (
                f'{label} on its audit set (iteration {explored[-1]}: {len(references)} frames its ML MD visited, '
                'ML predictions made during the MD)'
            )
            parity_plot(references, predictions, folder / 'parity_audit.png', title=title)
            written['parity, audit set'] = (folder / 'parity_audit.png', title)
            errors[f'audit set (iteration {explored[-1]})'] = (
                len(references), compute_errors(references, predictions)['overall']
            )  # fmt: skip
        else:
            notes.append('no audited frame labelled with the final potential: no audit parity plot')
    else:
        notes.append('no potential fitted yet: no parity plot')

    iteration, replicas = _last_exploration(run)
    if iteration is not None:
        summaries = {key: replica.outputs.summary.get_dict() for key, replica in replicas.items()}
        traces = {key: summary.get('traces') or {} for key, summary in summaries.items()}
        method = next(iter(summaries.values())).get('extrapolation_method', 'gap_variance')
        title = f'{name}: ML-MD exploration of iteration {iteration}'
        written['exploration traces'] = (folder / 'exploration_traces.png', title)
        figures.traces_figure(
            traces,
            folder / 'exploration_traces.png',
            thresholds={key: summary.get('threshold') for key, summary in summaries.items()},
            method=method,
            temperatures={key: points[key]['temperature_K'] for key in traces if key in points},
            title=title,
        )
        npt = {key: trace for key, trace in traces.items() if summaries[key].get('ensemble') == 'npt'}
        if npt:
            reference = {}
            for key in npt:
                sampled = run.sampling_frames(key)
                if sampled:
                    reference[key] = float(np.mean([atoms.get_volume() for atoms in sampled]))
            title = f'{name}: cell volume under NPT, iteration {iteration}'
            figures.volume_figure(npt, folder / 'volume.png', reference=reference, title=title)
            written['volume (NPT)'] = (folder / 'volume.png', title)
        ml_rdfs, reference_rdfs, r_max = _rdfs(run, replicas, rdf_bins)
        for key in ml_rdfs:
            path = folder / f'rdf_{key}.png'
            title = f'{name}, {key}: partial RDFs of the ML MD (iteration {iteration}) and of the classical sampling'
            labels = (f'ML MD, iteration {iteration}', 'classical sampling')
            rdf_overlay_plot(ml_rdfs[key], reference_rdfs[key], path, labels=labels, title=title)
            written[f'partial RDFs {key}'] = (path, f'{title} (r_max {r_max:.2f} Å)')
            for pair, found in short_range_artefacts(ml_rdfs[key], reference_rdfs[key]).items():
                notes.append(
                    f'{key}: short-range artefact in g {pair[0]}-{pair[1]}: the ML MD has g = {found["g_peak"]:.2f} '
                    f'at {found["r_peak"]:.2f} Å where the sampling has none (onset {found["r_onset_reference"]:.2f} Å)'
                )
        if not ml_rdfs:
            notes.append('no ML-MD or sampling frames for the RDFs')
    else:
        notes.append('no finished exploration yet: no traces, volume or RDF figure')

    written.update(_validation_figures(node, folder))
    _write_markdown(folder / 'report.md', run, rows, source, written, errors, notes, loop)
    return written


def _validation_figures(node, folder: pathlib.Path) -> dict:
    """Copy the PNGs of the validation outputs to ``folder``; return them like ``write_report``'s figures."""
    from aiida import orm

    written = {}
    if 'validation' not in node.outputs:
        return written
    for which, outputs in node.outputs.validation.items():
        for name, item in sorted(outputs.items()):
            if isinstance(item, orm.SinglefileData) and item.filename.endswith('.png'):
                path = folder / f'validation_{which}_{name}.png'
                path.write_bytes(item.get_content(mode='rb'))
                title = f'{name} of the validation of the {which.replace("_", " ")} potential (ValidationWorkChain)'
                written[f'validation, {which.replace("_", " ")}: {name}'] = (path, title)
    return written


def _write_markdown(path, run, rows, source, written, errors, notes, loop) -> None:
    node = run.node
    state = node.process_state.value if node.process_state else 'created'
    lines = [f'# Active-learning run {node.pk}: {node.label}', '']
    lines.append(
        f'ActiveLearningWorkChain<{node.pk}> (uuid {node.uuid}), {state}'
        + (f', exit status {node.exit_status}' if node.exit_status is not None else '')
        + f'; {len(rows)} iteration(s) assessed (table from the {source}).'
    )
    lines.append('')
    lines.append('## Stopping criterion')
    lines.append('')
    if 'stopping' in node.outputs:
        stopping = node.outputs.stopping.get_dict()
        lines.append(
            f'`{stopping["criterion"]}` after iteration {stopping.get("iteration")} and '
            f'{stopping.get("oracle_calls")} oracle calls: {stopping["reason"]}.'
        )
    else:
        lines.append('The run has not stopped yet.')
    lines.append(
        f'Criteria: every replica runs {loop["target_steps"]} steps without a trigger or an instability, audit '
        f'force RMSE < {loop["audit_force_rmse"]} eV/Å'
        + (
            f' and energy RMSE < {loop["audit_energy_rmse"]} meV/atom'
            if loop.get('audit_energy_rmse')
            else ''
        )
        + f'; hard limits {loop["max_iterations"]} iterations, {loop["max_oracle_calls"]} oracle calls.'
    )
    lines += [
        '',
        '## Final errors' if node.is_terminated else '## Errors of the latest potential (the run goes on)',
        '',
    ]
    potential = run.potential()
    if potential is not None:
        lines.append(f'Potential: GapPotentialData<{potential.pk}> (uuid {potential.uuid}).')
        lines.append('')
        lines.append(
            '| set | configurations | force RMSE (eV/Å) | energy RMSE (meV/atom) | virial RMSE (meV/atom) |'
        )
        lines.append('|---|---|---|---|---|')
        for name, (count, overall) in errors.items():
            cells = [
                _number((overall.get(key) or {}).get('rmse'), 4)
                for key in ('forces', 'energy_per_atom', 'virial_per_atom')
            ]
            lines.append(f'| {name} | {count} | ' + ' | '.join(cells) + ' |')
    else:
        lines.append('No potential yet.')
    if rows:
        last = rows[-1]
        lines += ['', '## Iterations', '', '```', iteration_table(rows), '```']
        lines.append('')
        lines.append(
            f'Last iteration: {last.get("n_triggers", 0)} trigger(s), {last.get("n_unstable", 0)} unstable run(s), '
            f'{last.get("n_train")} training configurations, {last.get("oracle_calls")} oracle calls in all.'
        )
    comparison = baseline_rows(node)
    if comparison:
        lines += ['', '## Active learning vs random selection', '']
        lines.append(
            'The same label budget (training configurations), both potentials on the final test set (the initial '
            f'test split and every audit, {len(node.outputs.test_set)} configurations); the random ones were drawn '
            'from the sampling pool, the held-out configurations excluded.'
        )
        lines += ['', '```', baseline_table(comparison), '```']
    verdicts = validation_verdicts(node)
    if verdicts:
        lines += ['', '## Validation (ValidationWorkChain, against the classical teacher)', '']
        lines += [f'- {which.replace("_", " ")} potential: {verdict}' for which, verdict in verdicts.items()]
    lines += ['', '## Figures', '']
    for name, (figure, title) in written.items():
        lines.append(f'- {name}: [{figure.name}]({figure.name}): {title}')
    for note in notes:
        lines.append(f'- ({note})')
    lines.append('')
    path.write_text('\n'.join(lines))


@click.command('report')
@click.argument('pk')
@_out_option('Folder for the PNG figures and report.md (created).')
@click.option(
    '--rdf-bins', type=click.IntRange(min=10), default=100, show_default=True, help='Bins of the RDFs.'
)
@_profile_option
def report_command(pk, folder, rdf_bins, profile):
    """Figures and a summary of the active-learning run PK (finished, or so far).

    PNGs: the learning curve; parity plots of the final potential on its test set and on its audit set
    (eV/atom, eV/Å); the extrapolation score (GAP std) and temperature of the last exploration; the cell volume
    under NPT; partial RDFs of the last ML MD against the classical sampling at the same state point. report.md
    lists them with the stopping criterion and the final errors.
    """
    _load_profile(profile)
    run = _load_run(pk)
    written = write_report(run, folder, rdf_bins=rdf_bins)
    for name, (path, _) in written.items():
        click.echo(f'{name}: {path}')
    click.echo(f'summary: {folder / "report.md"}')
