"""`verdi data mlpot.dataset` and `verdi data mlpot.gap_potential` (through the `aiida.cmdline.data` entry point)."""

from __future__ import annotations

import pathlib

import click
from aiida.cmdline.groups import VerdiCommandGroup
from aiida.cmdline.params import arguments, types
from aiida.cmdline.utils import decorators, echo


def list_options(command):
    """Add the options of a ``list`` command: ``--past-days`` and ``--limit``."""
    command = click.option('-l', '--limit', type=int, default=None, help='At most this many nodes.')(command)
    return click.option(
        '-p', '--past-days', type=int, default=None, help='Only nodes created in the past N days.'
    )(command)


def node_argument(entry_point: str):
    """Return the ``DATUM`` argument restricted to the data plugin ``entry_point``: a node of another type (or a
    missing one) is a usage error naming it, not a traceback."""
    return arguments.DATUM(type=types.DataParamType(sub_classes=(f'aiida.data:{entry_point}',)))


def _list_nodes(
    cls, columns: list[str], past_days: int | None, limit: int | None, label: str | None = None, creator=False
) -> None:
    from aiida.orm import QueryBuilder
    from tabulate import tabulate

    filters = {}
    if label:
        filters['label'] = {'like': label}
    if past_days:
        import datetime

        from aiida.common import timezone

        filters['ctime'] = {'>': timezone.now() - datetime.timedelta(days=past_days)}
    builder = QueryBuilder().append(cls, filters=filters, project=['id', 'ctime', 'label', 'attributes'])
    builder.order_by({cls: {'id': 'asc'}})
    if limit:
        builder.limit(limit)
    rows = []
    found = builder.all()
    creators = _creators(cls, [row[0] for row in found]) if creator else {}
    for pk, ctime, node_label, attributes in found:
        rows.append(
            [pk, ctime.strftime('%Y-%m-%d %H:%M'), node_label, *[_short(attributes.get(c)) for c in columns]]
            + ([creators.get(pk, '')] if creator else [])
        )
    echo.echo(
        tabulate(rows, headers=['PK', 'Created', 'Label', *columns] + (['Created by'] if creator else []))
    )


def _creators(cls, pks: list[int]) -> dict[int, str]:
    """Return ``{pk: 'process_label<pk>'}`` of the calculation that created each node (absent: none)."""
    from aiida.orm import CalculationNode, QueryBuilder

    if not pks:
        return {}
    builder = QueryBuilder().append(cls, filters={'id': {'in': pks}}, project=['id'], tag='data')
    builder.append(
        CalculationNode,
        with_outgoing='data',
        edge_filters={'type': 'create'},
        project=['id', 'attributes.process_label'],
    )
    return {pk: f'{label}<{creator}>' for pk, creator, label in builder.all()}


def _short(value) -> str:
    if isinstance(value, list):
        return ','.join(str(v) for v in value)
    return '' if value is None else str(value)


def _show_attributes(node, keys: list[str]) -> None:
    echo.echo(f'{node.__class__.__name__}<{node.pk}> {node.uuid}  label: {node.label!r}')
    for key in keys:
        echo.echo(f'  {key:<20} {_short(node.base.attributes.get(key))}')


@click.group('mlpot.dataset', cls=VerdiCommandGroup)
def dataset():
    """Inspect and export `DatasetData` nodes (labelled configurations)."""


@dataset.command('list')
@list_options
@click.option(
    '-L', '--label', default=None, help="Only datasets whose label matches (SQL LIKE: 'audit%', 'train')."
)
@decorators.with_dbenv()
def dataset_list(past_days, limit, label):
    """List the stored datasets: label (the role the loop gave it: pool, selected, train, test, audit_NN...),
    size, species, labels, and the calculation that created it."""
    from aiida_mlpot.data.dataset import DatasetData

    _list_nodes(
        DatasetData,
        ['n_configs', 'n_atoms_total', 'species', 'properties', 'config_types'],
        past_days,
        limit,
        label=label,
        creator=True,
    )


@dataset.command('show')
@node_argument('mlpot.dataset')
@click.option('-n', '--frames', type=int, default=3, show_default=True, help='Per-frame lines to print.')
@decorators.with_dbenv()
def dataset_show(datum, frames):
    """Show a dataset's summary and its first frames."""
    _show_attributes(
        datum,
        [
            'n_configs',
            'n_atoms_total',
            'n_atoms_min',
            'n_atoms_max',
            'species',
            'properties',
            'partial_properties',
        ]
        + ['info_keys', 'config_types'],
    )
    for index, atoms in enumerate(datum.to_ase()[:frames]):
        energy = atoms.info.get('energy')
        energy_text = f'{energy / len(atoms):.6f} eV/atom' if energy is not None else 'no energy'
        extra = {k: atoms.info[k] for k in ('config_type', 'step', 'source_uuid') if k in atoms.info}
        echo.echo(f'  [{index}] {atoms.get_chemical_formula()} {energy_text} {extra}')


@dataset.command('export')
@node_argument('mlpot.dataset')
@click.argument('output', type=click.Path(dir_okay=False, path_type=pathlib.Path))
@click.option('-f', '--force', is_flag=True, help='Overwrite an existing file.')
@decorators.with_dbenv()
def dataset_export(datum, output, force):
    """Write a dataset to an extended-XYZ file."""
    if output.exists() and not force:
        echo.echo_critical(f'{output} exists; use --force to overwrite')
    if not output.parent.is_dir():
        echo.echo_critical(f'the directory {output.parent} of {output} does not exist')
    output.write_text(datum.get_content())
    echo.echo_success(f'wrote {datum.n_configs} configurations to {output}')


@click.group('mlpot.gap_potential', cls=VerdiCommandGroup)
def gap_potential():
    """Inspect and export `GapPotentialData` nodes (fitted GAP potentials)."""


@gap_potential.command('list')
@list_options
@decorators.with_dbenv()
def gap_potential_list(past_days, limit):
    """List the stored GAP potentials."""
    from aiida_mlpot.data.potential import GapPotentialData

    _list_nodes(GapPotentialData, ['xml_label', 'species', 'cutoff'], past_days, limit)


@gap_potential.command('show')
@node_argument('mlpot.gap_potential')
@decorators.with_dbenv()
def gap_potential_show(datum):
    """Show a GAP potential: label, species, cutoff, descriptors, files."""
    _show_attributes(datum, ['xml_label', 'species', 'cutoff', 'gap_version', 'filenames'])
    for descriptor in datum.descriptors:
        echo.echo(f'  descriptor: {descriptor}')


@gap_potential.command('export')
@node_argument('mlpot.gap_potential')
@click.argument('folder', type=click.Path(file_okay=False, path_type=pathlib.Path))
@click.option(
    '--type-order', default=None, help='Elements of the LAMMPS atom types, comma-separated (Na,Cl).'
)
@decorators.with_dbenv()
def gap_potential_export(datum, folder, type_order):
    """Write the XML, its sparseX files and a `pair_style quip` snippet (lammps_pair.in) to FOLDER."""
    try:
        message = write_potential(datum, folder, type_order)
    except ValueError as exception:
        raise click.BadParameter(str(exception), param_hint='--type-order') from exception
    echo.echo_success(message)


def write_potential(potential, folder: pathlib.Path, type_order: str | None = None) -> str:
    """Write the XML of ``potential``, its sparseX files and ``lammps_pair.in`` to ``folder``; return a summary.

    :param type_order: elements of the LAMMPS atom types, comma-separated (default: alphabetical, the order of
        the data files aiida-mlpot writes); the snippet names each type in a comment.
    :raises ValueError: if ``type_order`` names an element the potential does not know.
    """
    order = [symbol.strip() for symbol in type_order.split(',')] if type_order else None
    if order is not None:
        potential.lammps_pair_lines(type_order=order)  # refuses an unknown element before writing anything
    xml_path = potential.export(folder, type_order=order)
    types = potential.lammps_pair_lines(type_order=order)[0].lstrip('# ')
    return f'wrote {len(potential.filenames)} files and lammps_pair.in to {folder} (XML: {xml_path.name}; {types})'
