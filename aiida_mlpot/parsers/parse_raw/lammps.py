"""Parse LAMMPS output written by aiida-mlpot's scripts: dumps, thermo and label files, the log (no AiiDA)."""

from __future__ import annotations

import re

import numpy as np

__all__ = ('box_to_cell', 'parse_columns_file', 'parse_dump', 'parse_log', 'virial_pressure_tensor')

_LOST_ATOMS = re.compile(r'ERROR.*Lost atoms', re.IGNORECASE)
#: LAMMPS errors that mean the dynamics blew up (atoms lost or out of range, non-numeric coordinates or
#: pressure, a box deformed too far in one step), as opposed to errors in the input.
_UNSTABLE = re.compile(
    r'ERROR.*(Lost atoms|simulation unstable|Out of range atoms|too far from equilibrium)', re.IGNORECASE
)
_PERFORMANCE = re.compile(r'Performance:.*?([0-9.]+)\s+timesteps/s')
_WALL_TIME = re.compile(r'Total wall time:\s*(\d+):(\d+):(\d+)')


def box_to_cell(bounds: np.ndarray, tilts: np.ndarray | None) -> np.ndarray:
    """Return the 3x3 cell (rows are vectors) of LAMMPS dump box bounds.

    :param bounds: (3, 2) array of lo/hi bounds; for a triclinic box these are the bounding-box bounds that
        LAMMPS writes (``xlo_bound xhi_bound`` ...).
    :param tilts: ``(xy, xz, yz)`` or ``None`` for an orthogonal box.
    """
    (xlo, xhi), (ylo, yhi), (zlo, zhi) = np.asarray(bounds, dtype=float)
    xy = xz = yz = 0.0
    if tilts is not None:
        xy, xz, yz = (float(t) for t in tilts)
        xlo -= min(0.0, xy, xz, xy + xz)
        xhi -= max(0.0, xy, xz, xy + xz)
        ylo -= min(0.0, yz)
        yhi -= max(0.0, yz)
    return np.array([[xhi - xlo, 0.0, 0.0], [xy, yhi - ylo, 0.0], [xz, yz, zhi - zlo]])


def parse_dump(text: str) -> list[dict]:
    """Parse a LAMMPS text dump of ``custom`` style with one or more frames.

    :return: one dictionary per frame: ``step`` (int), ``natoms`` (int), ``cell`` ((3, 3) array), ``pbc``
        (three bools, from the boundary flags), ``columns`` (dict column name -> array, rows in file order).
    :raises ValueError: if the text is truncated or malformed.
    """
    lines = text.splitlines()
    frames = []
    index = 0
    while index < len(lines):
        if not lines[index].startswith('ITEM: TIMESTEP'):
            if lines[index].strip():
                raise ValueError(f'unexpected line {index + 1} in dump: {lines[index]!r}')
            index += 1
            continue
        try:
            step = int(lines[index + 1].split()[0])
            natoms = int(lines[index + 3].split()[0])
            box_header = lines[index + 4].split()
            triclinic = 'xy' in box_header
            flags = box_header[-3:]
            box = np.array([[float(v) for v in lines[index + 5 + k].split()] for k in range(3)])
            header = lines[index + 8].split()
            if header[:2] != ['ITEM:', 'ATOMS']:
                raise ValueError(f'expected "ITEM: ATOMS" on line {index + 9}')
            names = header[2:]
            rows = lines[index + 9 : index + 9 + natoms]
            if len(rows) != natoms:
                raise ValueError(f'frame at step {step} is truncated: {len(rows)} of {natoms} atoms')
            data = np.array([[float(v) for v in row.split()] for row in rows], dtype=float).reshape(
                natoms, len(names)
            )
        except (IndexError, ValueError) as exception:
            raise ValueError(f'malformed dump frame starting at line {index + 1}: {exception}') from exception
        cell = box_to_cell(box[:, :2], box[:, 2] if triclinic else None)
        frames.append(
            {
                'step': step,
                'natoms': natoms,
                'cell': cell,
                'pbc': [flag.startswith('p') for flag in flags],
                'columns': {name: data[:, k] for k, name in enumerate(names)},
            }
        )
        index += 9 + natoms
    return frames


def parse_columns_file(text: str, columns: tuple[str, ...]) -> dict[str, np.ndarray]:
    """Parse a whitespace-separated table (``#`` comments) with the given column names into arrays.

    :raises ValueError: if a row does not have ``len(columns)`` numbers.
    """
    rows = []
    for number, line in enumerate(text.splitlines(), start=1):
        stripped = line.strip()
        if not stripped or stripped.startswith('#'):
            continue
        values = stripped.split()
        if len(values) != len(columns):
            raise ValueError(f'line {number} has {len(values)} values, expected {len(columns)}: {line!r}')
        rows.append([float(v) for v in values])
    data = np.array(rows, dtype=float).reshape(len(rows), len(columns))
    return {name: data[:, k] for k, name in enumerate(columns)}


def virial_pressure_tensor(table: dict[str, np.ndarray], row: int) -> np.ndarray:
    """Return the 3x3 virial-only pressure tensor (bar) of one row of a thermo/labels table.

    LAMMPS orders the six components of ``compute pressure`` as xx, yy, zz, xy, xz, yz.
    """
    xx, yy, zz, xy, xz, yz = (float(table[key][row]) for key in ('pxx', 'pyy', 'pzz', 'pxy', 'pxz', 'pyz'))
    return np.array([[xx, xy, xz], [xy, yy, yz], [xz, yz, zz]])


def parse_log(text: str) -> dict:
    """Parse the screen output / log of a LAMMPS run.

    :return: ``errors`` (list of str), ``warnings`` (list of str), ``lost_atoms`` (bool), ``unstable`` (the
        first error that means the dynamics blew up: lost atoms, non-numeric coordinates or pressure, atoms
        out of range; or ``None``), ``runs_started`` (number of ``run`` commands that started),
        ``last_thermo_step`` (step of the last thermo line printed, or ``None``), ``completed`` (bool: LAMMPS
        printed its total wall time), ``wall_time_seconds`` and ``steps_per_second`` (last run) when present,
        ``lammps_version``.
    """
    result: dict = {
        'errors': [],
        'warnings': [],
        'lost_atoms': False,
        'unstable': None,
        'runs_started': 0,
        'last_thermo_step': None,
        'completed': False,
    }
    in_thermo = False
    for line in text.splitlines():
        stripped = line.strip()
        if stripped.startswith('ERROR'):
            in_thermo = False
            result['errors'].append(stripped)
            if _LOST_ATOMS.search(stripped):
                result['lost_atoms'] = True
            if result['unstable'] is None and _UNSTABLE.search(stripped):
                result['unstable'] = stripped
        elif stripped.startswith('WARNING') and stripped not in result['warnings']:
            result['warnings'].append(stripped)
        elif stripped.startswith('LAMMPS (') and 'lammps_version' not in result:
            result['lammps_version'] = stripped[len('LAMMPS (') :].rstrip(')')
        elif stripped.startswith('Setting up Verlet run'):
            result['runs_started'] += 1
        elif stripped.startswith('Step '):
            in_thermo = True
        elif stripped.startswith('Loop time'):
            in_thermo = False
        elif in_thermo and stripped.split(maxsplit=1)[0].isdigit():
            result['last_thermo_step'] = int(stripped.split(maxsplit=1)[0])
        match = _PERFORMANCE.search(stripped)
        if match:
            result['steps_per_second'] = float(match.group(1))
        match = _WALL_TIME.search(stripped)
        if match:
            hours, minutes, seconds = (int(g) for g in match.groups())
            result['wall_time_seconds'] = 3600 * hours + 60 * minutes + seconds
            result['completed'] = True
    return result
