"""`aiida-mlpot lineage PK`: where every training configuration of a potential came from."""

from __future__ import annotations

import json

import click

#: Columns of the table: (header, row key or a function of the row).
COLUMNS = (
    ('#', 'index'),
    ('iter', 'iteration'),
    ('MD calculation', lambda row: _node(row, 'md')),
    ('step', 'md_step'),
    ('frame', 'md_frame'),
    ('selected from', lambda row: _pool(row)),
    ('selection', lambda row: _node(row, 'selection')),
    ('oracle', lambda row: _node(row, 'oracle')),
)


def _node(row: dict, prefix: str) -> str | None:
    if row.get(f'{prefix}_pk') is not None:
        return f'{row[f"{prefix}_process"]}<{row[f"{prefix}_pk"]}>'
    uuid = row.get(f'{prefix}_uuid')
    return f'{uuid[:8]} (not in this profile)' if uuid else None


def _pool(row: dict) -> str | None:
    if row.get('pool_pk') is None:
        return f'{row["pool_uuid"][:8]} (not in this profile)' if row.get('pool_uuid') else None
    return f'DatasetData<{row["pool_pk"]}>[{row["pool_index"]}] ({row["pool_origin"]})'


def format_table(rows: list[dict]) -> str:
    """Return the rows of :func:`aiida_mlpot.tools.lineage.lineage` as a plain-text table."""
    cells = [[header for header, _ in COLUMNS]]
    for row in rows:
        values = [key(row) if callable(key) else row.get(key) for _, key in COLUMNS]
        cells.append(['-' if value is None else str(value) for value in values])
    widths = [max(len(line[k]) for line in cells) for k in range(len(COLUMNS))]
    return '\n'.join(
        '  '.join(text.ljust(width) for text, width in zip(line, widths)).rstrip() for line in cells
    )


@click.command('lineage')
@click.argument('identifier')
@click.option(
    '--json', 'as_json', is_flag=True, help='Print the rows as JSON (one object per configuration).'
)
def lineage_command(identifier, as_json):
    """Where every training configuration of a potential came from.

    IDENTIFIER is the PK or UUID of a GapPotentialData, or of a process that returned one (an
    ActiveLearningWorkChain, a GapFitWorkChain). One row per configuration of the training set: the MD
    calculation and frame it came from, the dataset it was selected from, the process that selected it, the
    oracle calculation that labelled it and the active-learning iteration that added it (0: the initial set).
    """
    from aiida import get_profile, load_profile, orm
    from aiida.common.exceptions import MultipleObjectsError, NotExistent

    from aiida_mlpot.tools.lineage import lineage

    if get_profile() is None:
        load_profile()
    try:
        node = orm.load_node(identifier)
    except (NotExistent, MultipleObjectsError) as exception:
        raise click.ClickException(str(exception)) from exception
    try:
        rows = lineage(node)
    except ValueError as exception:
        raise click.ClickException(str(exception)) from exception
    if as_json:
        click.echo(json.dumps(rows, indent=2))
        return
    click.echo(format_table(rows))
    missing = sum(1 for row in rows if row['oracle_pk'] is None)
    iterations = sorted({row['iteration'] for row in rows})
    click.echo(
        f'{len(rows)} training configurations; iterations {iterations}; '
        f'{len(rows) - missing} with an oracle calculation' + (f', {missing} without' if missing else '')
    )
