"""Crystal properties of a potential on the compute node: a GAP (quippy) or a LAMMPS teacher (ASE's ``LAMMPS``).

Run as ``python -m aiida_mlpot.engines.solids input.json`` (what
:class:`~aiida_mlpot.calculations.solids.SolidPropertiesCalculation` does with the ``python`` code); no AiiDA.
The physics is :func:`aiida_mlpot.analysis.validation.solid_properties` (ASE, matscipy, phonopy); this module
only builds the ASE calculator and reads and writes files. The JSON input::

    {
        "structure": "structure.xyz",        # the crystal, in the cell the Miller indices refer to (cubic)
        "calculator": {"gap": {"xml": "gap.xml"}}
                  or {"lammps": {"command": "lmp", "potential": {...}}},  # a classical-potential dictionary
        "settings": {...},                   # keys of SETTINGS (defaults there)
        "properties": "properties.json",     # output file names (these are the defaults)
        "summary": "summary.json"
    }

The LAMMPS teacher runs through :class:`ase.calculators.lammpsrun.LAMMPS` (one ``lmp`` process per
evaluation: no LAMMPS Python module is needed on the node); its interaction lines come from
:func:`aiida_mlpot.potentials.classical.potential_lines`, the files the potential names are read from the
working directory, and a coulombic potential gets its charges per species.

Outputs in the working directory: ``properties.json`` (the dict of ``solid_properties``: lattice constant, bulk
modulus, C11, C12, C44, surface energies, vacancy energy, phonon frequencies along ``phonon_qpoints``, the
lowest frequency on the mesh, and the E(V) points of the equation of state) and ``summary.json``
(``outcome``, ``calculator``, ``n_atoms``, ``wall_time_s``).
"""

from __future__ import annotations

import pathlib
import sys
import time

from ase import Atoms

from aiida_mlpot.analysis.validation import SOLID_PROPERTIES, solid_properties
from aiida_mlpot.data.extxyz import read_frames
from aiida_mlpot.engines.command import run_command, write_json_atomic
from aiida_mlpot.potentials.classical import charges_of, is_coulombic, potential_lines, species_order

__all__ = ('DEFAULT_FILES', 'SETTINGS', 'lammps_calculator', 'main', 'normalise_settings', 'run')

#: Default file names of the JSON input.
DEFAULT_FILES = {'properties': 'properties.json', 'summary': 'summary.json'}
#: Γ - X - M - Γ - R of the simple-cubic reciprocal cell (the cubic cell as given is the phonon cell).
CUBIC_PATH = ((0.0, 0.0, 0.0), (0.5, 0.0, 0.0), (0.5, 0.5, 0.0), (0.0, 0.0, 0.0), (0.5, 0.5, 0.5))

#: Keys of ``settings`` with their defaults (the keyword arguments of ``solid_properties``), and ``path_points``:
#: q-points per segment of ``phonon_path`` (the phonon frequencies are compared along it).
SETTINGS: dict = {
    'properties': list(SOLID_PROPERTIES),
    'surfaces': [[1, 1, 1], [1, 0, 0]],
    'surface_layers': 6,
    'vacancy_supercell': [2, 2, 2],
    'phonon_supercell': [2, 2, 2],
    'phonon_path': [list(q) for q in CUBIC_PATH],
    'path_points': 8,
    'phonon_mesh': [8, 8, 8],
    'fmax': 1e-3,
}


def normalise_settings(settings: dict | None) -> dict:
    """Return ``settings`` merged over :data:`SETTINGS`.

    :raises ValueError: an unknown key or property (named), or a value of the wrong shape.
    """
    settings = dict(settings or {})
    unknown = sorted(set(settings) - set(SETTINGS))
    if unknown:
        raise ValueError(f'`{unknown[0]}`: unknown key; known: {", ".join(SETTINGS)}')
    merged = {**SETTINGS, **settings}
    wrong = sorted(set(merged['properties']) - set(SOLID_PROPERTIES))
    if wrong:
        raise ValueError(f'`properties`: unknown property `{wrong[0]}`; known: {", ".join(SOLID_PROPERTIES)}')
    for key in ('vacancy_supercell', 'phonon_supercell', 'phonon_mesh'):
        value = merged[key]
        if len(value) != 3 or not all(
            isinstance(n, int) and not isinstance(n, bool) and n > 0 for n in value
        ):
            raise ValueError(f'`{key}`: three positive integers, got {value!r}')
    for key in ('surface_layers', 'path_points'):
        if not isinstance(merged[key], int) or merged[key] < 2:
            raise ValueError(f'`{key}`: an integer of at least 2, got {merged[key]!r}')
    if not all(len(m) == 3 and any(m) for m in merged['surfaces']):
        raise ValueError(
            f'`surfaces`: Miller indices (three integers, not all zero), got {merged["surfaces"]!r}'
        )
    if len(merged['phonon_path']) < 2 or not all(len(q) == 3 for q in merged['phonon_path']):
        raise ValueError('`phonon_path`: at least two q-points of three reduced coordinates')
    if not 0.0 < float(merged['fmax']) < 1.0:
        raise ValueError(f'`fmax`: in (0, 1) eV/Å, got {merged["fmax"]!r}')
    return merged


def path_qpoints(corners, points_per_segment: int) -> list[list[float]]:
    """Return ``points_per_segment`` q-points per segment between consecutive ``corners``, both ends included."""
    import numpy as np

    qpoints = [list(map(float, corners[0]))]
    for start, end in zip(corners[:-1], corners[1:]):
        for t in np.linspace(0.0, 1.0, points_per_segment + 1)[1:]:
            qpoints.append((np.asarray(start, float) + t * (np.subtract(end, start))).tolist())
    return qpoints


def lammps_calculator(potential: dict, symbols, command: str, workdir: pathlib.Path):
    """Return ASE's file-based ``LAMMPS`` calculator of the classical-potential dictionary for ``symbols``.

    The species are LAMMPS types in :func:`~aiida_mlpot.potentials.classical.species_order`; ``kspace_style``
    and the ``special`` lines follow the pair coefficients; a coulombic potential runs with ``atom_style
    charge`` and the charges of its ``charges`` per species (set on every configuration it evaluates).
    """
    from ase.calculators.lammpsrun import LAMMPS

    species = species_order(symbols)
    lines = potential_lines(potential, species)
    pair_style = lines[0].split(None, 1)[1]
    pair_coeff = [line.split(None, 1)[1] for line in lines if line.startswith('pair_coeff ')]
    post = [f'{line}\n' for line in lines[1:] if not line.startswith('pair_coeff ')]
    files = [str(workdir / name) for name in potential.get('files') or []]
    parameters = {
        'pair_style': pair_style,
        'pair_coeff': pair_coeff,
        'model_post': post,
        'specorder': species,
        'files': files,
        'command': command,
        'tmp_dir': str(workdir / 'lammps'),
    }
    if not is_coulombic(potential):
        return LAMMPS(**parameters)

    class ChargedLAMMPS(LAMMPS):
        """LAMMPS with the potential's charges per species on every configuration (``atom_style charge``)."""

        def calculate(self, atoms=None, properties=None, system_changes=None):
            if atoms is not None:
                atoms.set_initial_charges(charges_of(potential, atoms.get_chemical_symbols()))
            return super().calculate(atoms, properties, system_changes)

    return ChargedLAMMPS(atom_style='charge', **parameters)


def make_calculator(spec: dict, symbols, workdir: pathlib.Path):
    """Return ``(calculator, name)`` of the ``calculator`` entry of the input: ``gap`` or ``lammps``."""
    if set(spec) == {'gap'}:
        from quippy.potential import Potential

        return Potential(param_filename=str(workdir / spec['gap']['xml'])), 'gap'
    if set(spec) == {'lammps'}:
        entry = spec['lammps']
        return lammps_calculator(entry['potential'], symbols, entry.get('command', 'lmp'), workdir), 'lammps'
    raise ValueError(f'`calculator` must have exactly one of `gap` and `lammps`, got {sorted(spec)}')


def run(config: dict, workdir: str | pathlib.Path = '.') -> dict:
    """Compute the crystal properties of ``config`` (the parsed JSON input) in ``workdir``; return the summary."""
    workdir = pathlib.Path(workdir)
    start = time.perf_counter()
    settings = normalise_settings(config.get('settings'))
    with open(workdir / config['structure']) as handle:
        frames = read_frames(handle)
    if len(frames) != 1:
        raise ValueError(f'the structure file holds {len(frames)} configurations, not one')
    atoms = Atoms(numbers=frames[0].numbers, positions=frames[0].positions, cell=frames[0].cell, pbc=True)
    calculator, name = make_calculator(config['calculator'], atoms.get_chemical_symbols(), workdir)
    qpoints = path_qpoints(settings['phonon_path'], settings['path_points'])
    properties = solid_properties(
        atoms,
        calculator,
        properties=settings['properties'],
        surfaces=settings['surfaces'],
        surface_layers=settings['surface_layers'],
        vacancy_supercell=settings['vacancy_supercell'],
        phonon_supercell=settings['phonon_supercell'],
        phonon_qpoints=qpoints,
        phonon_mesh=settings['phonon_mesh'],
        fmax=settings['fmax'],
    )
    properties['phonon_path'] = settings['phonon_path']
    write_json_atomic(workdir / config.get('properties', DEFAULT_FILES['properties']), properties)
    return {
        'outcome': 'completed',
        'calculator': name,
        'n_atoms': len(atoms),
        'properties': sorted(settings['properties']),
        'wall_time_s': time.perf_counter() - start,
    }


def main(argv: list[str] | None = None) -> int:
    """Command line entry point: ``python -m aiida_mlpot.engines.solids input.json`` (0 done, 1 error, 2 usage)."""
    return run_command(run, 'aiida_mlpot.engines.solids', argv, summary_name=DEFAULT_FILES['summary'])


if __name__ == '__main__':
    sys.exit(main())
