"""The `aiida-mlpot` command line."""

from __future__ import annotations

import click

from aiida_mlpot import __version__
from aiida_mlpot.cli.active_learning import export_command, launch, report_command, status_command
from aiida_mlpot.cli.lineage import lineage_command


@click.group(context_settings={'help_option_names': ['-h', '--help']})
@click.version_option(__version__, prog_name='aiida-mlpot')
def cli():
    """aiida-mlpot: machine-learned potentials (GAP) built with AiiDA provenance."""


@cli.command('setup')
@click.option(
    '--profile', default=None, help='Profile to use or create (default: the default profile, or `mlpot`).'
)
@click.option(
    '--computer', default='localhost', show_default=True, help='Label of the computer for the codes.'
)
@click.option('--workdir', default=None, help='Scratch folder of a newly created computer.')
@click.option(
    '--email', default='mlpot@localhost', show_default=True, help='Email of a new profile default user.'
)
@click.option('--lmp', 'lmp', default=None, help='LAMMPS executable (default: `lmp` on the PATH).')
@click.option('--cp2k', 'cp2k', default=None, help='CP2K executable (default: `cp2k.psmp` on the PATH).')
@click.option('--gap-fit', 'gap_fit', default=None, help="gap_fit executable (default: the environment's).")
@click.option(
    '--python', 'python', default=None, help='Python that runs the ML-MD driver (default: this one).'
)
def setup_command(profile, computer, workdir, email, lmp, cp2k, gap_fit, python):
    """Create (or reuse) the AiiDA profile, the computer and the codes. Idempotent.

    Without a configured profile it creates `mlpot` with SQLite storage and the ZeroMQ broker shipped with
    aiida-core (no service to install; `run`, `submit` and the daemon work). It registers the computer
    (core.local, core.direct) and the codes `lmp`, `cp2k`, `gap_fit` and `python` on it.
    """
    from aiida_mlpot.cli.setup import SetupError, default_code_specs, setup

    try:
        result = setup(
            profile=profile,
            computer=computer,
            workdir=workdir,
            email=email,
            codes=default_code_specs(lmp=lmp, cp2k=cp2k, gap_fit=gap_fit, python=python),
            echo=click.echo,
        )
    except SetupError as exception:
        raise click.BadParameter(str(exception)) from exception
    click.echo('changed: ' + ('yes' if result['changed'] else 'nothing (everything already existed)'))
    click.echo(
        f'profile {result["profile"]}; computer {result["computer"]}; codes: '
        + ', '.join(result['codes'].values())
    )


for command in (launch, status_command, report_command, export_command):
    cli.add_command(command)
cli.add_command(lineage_command)

if __name__ == '__main__':
    cli()
