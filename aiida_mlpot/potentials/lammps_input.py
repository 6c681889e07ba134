"""LAMMPS data files and input scripts for classical MD and single points (pure, no AiiDA).

Everything is in LAMMPS ``metal`` units. Cells are passed to LAMMPS in its lower-triangular (rotated) form
through :class:`ase.calculators.lammps.Prism`; single-point results are rotated back into the frame of the
input structure, MD frames are kept in the LAMMPS frame (identical to the input for orthorhombic cells).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from ase import Atoms
from ase.calculators.lammps import Prism

from aiida_mlpot.common.mappings import check_keys
from aiida_mlpot.potentials.classical import charges_of, mass_lines, potential_lines

__all__ = (
    'DUMP_COLUMNS',
    'THERMO_COLUMNS',
    'LABEL_COLUMNS',
    'MD_PARAMETER_KEYS',
    'md_script',
    'rerun_script',
    'setup_lines',
    'validate_md_parameters',
    'write_data_file',
)

#: Per-atom columns of every dump written by aiida-mlpot.
DUMP_COLUMNS = ('id', 'type', 'x', 'y', 'z', 'fx', 'fy', 'fz', 'c_mlpot_pe_atom')
#: Columns of the thermo file of an MD run (pressure components are the virial-only pressure, bar).
THERMO_COLUMNS = (
    'step',
    'temp',
    'pe',
    'ke',
    'press',
    'vol',
    'density',
    'pxx',
    'pyy',
    'pzz',
    'pxy',
    'pxz',
    'pyz',
)
#: Columns of the labels file of a rerun (one line per configuration).
LABEL_COLUMNS = ('index', 'natoms', 'pe', 'vol', 'pxx', 'pyy', 'pzz', 'pxy', 'pxz', 'pyz')

_DUMP_ID = 'mlpot_dump'
_FLOAT = '%.16g'


def boundary_line(pbc: Sequence[bool]) -> str:
    """Return the LAMMPS ``boundary`` command: periodic or shrink-wrapped per direction."""
    return 'boundary ' + ' '.join('p' if periodic else 's' for periodic in pbc)


def write_data_file(
    atoms: Atoms, species: Sequence[str], potential: dict, triclinic: bool = False
) -> tuple[str, Prism]:
    """Return the text of a LAMMPS data file (``atom_style charge``) of ``atoms`` and its :class:`Prism`.

    :param atoms: the configuration.
    :param species: element symbols in LAMMPS type order.
    :param potential: the classical-potential dictionary (for the charges).
    :param triclinic: write tilt factors even for an orthogonal cell (needed by ``fix npt ... tri``).
    """
    prism = Prism(np.asarray(atoms.cell), pbc=atoms.pbc)
    lx, ly, lz, xy, xz, yz = prism.get_lammps_prism()
    positions = prism.vector_to_lammps(atoms.positions, wrap=True)
    types = {symbol: index + 1 for index, symbol in enumerate(species)}
    charges = charges_of(potential, atoms.get_chemical_symbols())

    lines = [
        'LAMMPS data file written by aiida-mlpot',
        '',
        f'{len(atoms)} atoms',
        f'{len(species)} atom types',
        '',
        f'0.0 {lx:.16g} xlo xhi',
        f'0.0 {ly:.16g} ylo yhi',
        f'0.0 {lz:.16g} zlo zhi',
        *([f'{xy:.16g} {xz:.16g} {yz:.16g} xy xz yz'] if triclinic or prism.is_skewed() else []),
        '',
        'Atoms # charge',
        '',
    ]
    for index, (symbol, charge, position) in enumerate(
        zip(atoms.get_chemical_symbols(), charges, positions, strict=True)
    ):
        x, y, z = position
        lines.append(f'{index + 1} {types[symbol]} {charge:.10g} {x:.16g} {y:.16g} {z:.16g}')
    return '\n'.join(lines) + '\n', prism


def setup_lines(
    potential: dict, species: Sequence[str], pbc: Sequence[bool], data_filename: str
) -> list[str]:
    """Return the LAMMPS commands that set up a system: units, the data file, masses, the potential, computes.

    Defines ``compute mlpot_pe_atom`` (per-atom energies) and ``compute mlpot_pvir`` (virial-only pressure).
    """
    lines = [
        'units metal',
        'atom_style charge',
        'atom_modify map yes',
        boundary_line(pbc),
        f'read_data {data_filename}',
        *mass_lines(potential, species),
        *potential_lines(potential, species),
        'neighbor 2.0 bin',
        'neigh_modify every 1 delay 0 check yes',
        'compute mlpot_pe_atom all pe/atom',
        'compute mlpot_pvir all pressure NULL virial',
    ]
    return lines


_THERMO_KEYWORDS = ('step', 'temp', 'pe', 'ke', 'press', 'vol', 'density')
_PVIR = ' '.join(f'c_mlpot_pvir[{i}]' for i in range(1, 7))


def md_script(
    potential: dict,
    species: Sequence[str],
    pbc: Sequence[bool],
    parameters: dict,
    data_filename: str,
    dump_filename: str,
    thermo_filename: str,
) -> str:
    """Return the LAMMPS input script of an NVT or NPT run (Nosé-Hoover chains, ``fix nvt`` / ``fix npt``).

    :param parameters: the MD parameters, named as in ML MD (:mod:`aiida_mlpot.engines`): ``ensemble``
        ('nvt'|'npt'), ``temperature_K``, ``pressure_bar`` (NPT), ``timestep_fs``, ``equilibration_steps``
        (not dumped), ``production_steps``, ``dump_interval``, ``seed`` (initial velocities), optional
        ``volume_scale`` (volume factor applied to the cell before the run), ``taut_fs`` and ``taup_fs``
        (thermostat and barostat damping times; default 100 and 1000 timesteps), ``pressure_coupling``
        ('iso'|'aniso'|'tri', default 'iso'). See :data:`MD_PARAMETER_KEYS`.
    """
    temperature = float(parameters['temperature_K'])
    timestep_fs = float(parameters['timestep_fs'])
    timestep_ps = timestep_fs / 1000.0
    dump_interval = int(parameters['dump_interval'])
    t_damp = float(parameters.get('taut_fs', 100 * timestep_fs)) / 1000.0
    p_damp = float(parameters.get('taup_fs', 1000 * timestep_fs)) / 1000.0
    seed = int(parameters['seed'])

    lines = ['# aiida-mlpot classical MD', *setup_lines(potential, species, pbc, data_filename)]
    scale = float(parameters.get('volume_scale', 1.0))
    if scale != 1.0:
        linear = scale ** (1.0 / 3.0)
        factors = ' '.join(f'{axis} scale {linear:.12g}' for axis in 'xyz')
        lines.append(f'change_box all {factors} remap')
    lines += [
        f'timestep {timestep_ps:.12g}',
        'thermo_style custom step temp pe ke etotal press vol density ' + _PVIR,
        f'thermo_modify format float {_FLOAT}',
        f'thermo {dump_interval}',
        f'velocity all create {temperature} {seed} mom yes rot no dist gaussian',
    ]
    if parameters['ensemble'] == 'npt':
        pressure = float(parameters['pressure_bar'])
        coupling = parameters.get('pressure_coupling', 'iso')
        lines.append(
            f'fix mlpot_integrate all npt temp {temperature} {temperature} {t_damp:.12g} '
            f'{coupling} {pressure} {pressure} {p_damp:.12g}'
        )
    else:
        lines.append(f'fix mlpot_integrate all nvt temp {temperature} {temperature} {t_damp:.12g}')
    equilibration = int(parameters.get('equilibration_steps', 0))
    if equilibration > 0:
        lines.append(f'run {equilibration}')
    lines += [
        'reset_timestep 0',
        *(f'variable mlpot_{name} equal {name}' for name in _THERMO_KEYWORDS),
        *(f'variable mlpot_p{i} equal c_mlpot_pvir[{i}]' for i in range(1, 7)),
        f'fix mlpot_thermo all print {dump_interval} "'
        + ' '.join(f'${{mlpot_{name}}}' for name in _THERMO_KEYWORDS)
        + ' '
        + ' '.join(f'${{mlpot_p{i}}}' for i in range(1, 7))
        + f'" file {thermo_filename} screen no title "# {" ".join(THERMO_COLUMNS)}"',
        f'dump {_DUMP_ID} all custom {dump_interval} {dump_filename} {" ".join(DUMP_COLUMNS)}',
        f'dump_modify {_DUMP_ID} sort id format float {_FLOAT}',
        f'run {int(parameters["production_steps"])}',
    ]
    return '\n'.join(lines) + '\n'


def rerun_script(
    potential: dict,
    species: Sequence[str],
    pbcs: Sequence[Sequence[bool]],
    data_filenames: Sequence[str],
    dump_filename: str,
    labels_filename: str,
) -> str:
    """Return a LAMMPS script that computes single points of many configurations in one job.

    Each configuration is read from its own data file (so cells, sizes and compositions may differ), evaluated
    with ``run 0``; its per-atom forces and energies are appended to ``dump_filename`` and its energy and
    virial-only pressure tensor to ``labels_filename`` (one line per configuration, columns
    :data:`LABEL_COLUMNS`). ``clear`` resets LAMMPS between configurations.
    """
    lines = ['# aiida-mlpot single points (classical oracle)']
    for index, (pbc, data_filename) in enumerate(zip(pbcs, data_filenames, strict=True)):
        lines += [
            f'# configuration {index}',
            *setup_lines(potential, species, pbc, data_filename),
            'thermo_style custom step pe vol ' + _PVIR,
            f'thermo_modify format float {_FLOAT}',
            f'dump {_DUMP_ID} all custom 1 {dump_filename} {" ".join(DUMP_COLUMNS)}',
            f'dump_modify {_DUMP_ID} sort id format float {_FLOAT}' + (' append yes' if index else ''),
            'run 0',
            'variable mlpot_pe equal pe',
            'variable mlpot_vol equal vol',
            'variable mlpot_natoms equal atoms',
            *(f'variable mlpot_p{i} equal c_mlpot_pvir[{i}]' for i in range(1, 7)),
            f'print "{index} ${{mlpot_natoms}} ${{mlpot_pe}} ${{mlpot_vol}} '
            + ' '.join(f'${{mlpot_p{i}}}' for i in range(1, 7))
            + f'" append {labels_filename} screen no',
            f'undump {_DUMP_ID}',
            'clear',
        ]
    return '\n'.join(lines) + '\n'


#: Keys of the MD parameters (:func:`md_script`), with their meaning. The names shared with ML MD
#: (``ensemble``, ``temperature_K``, ``pressure_bar``, ``timestep_fs``, ``taut_fs``, ``taup_fs``, ``seed``,
#: ``dump_interval``) mean the same there.
MD_PARAMETER_KEYS: dict[str, str] = {
    'ensemble': 'nvt or npt (Nosé-Hoover chains)',
    'temperature_K': 'target temperature and that of the initial velocities (K)',
    'pressure_bar': 'target pressure of an NPT run (bar)',
    'timestep_fs': 'MD timestep (fs)',
    'equilibration_steps': 'steps run before the production run, not dumped (default 0)',
    'production_steps': 'steps of the production run',
    'dump_interval': 'steps between two dumped frames of the production run',
    'seed': 'seed of the initial velocities (positive 32-bit integer)',
    'volume_scale': 'factor applied to the cell volume before the run (default 1)',
    'taut_fs': 'thermostat damping time (fs; default 100 timesteps)',
    'taup_fs': 'barostat damping time (fs; default 1000 timesteps)',
    'pressure_coupling': 'iso, aniso or tri (NPT; default iso)',
}
_REQUIRED_KEYS = ('ensemble', 'temperature_K', 'timestep_fs', 'production_steps', 'dump_interval', 'seed')


def validate_md_parameters(parameters: dict) -> str | None:
    """Return an error message if the MD ``parameters`` (see :func:`md_script`) are invalid, else ``None``."""
    message = check_keys(
        parameters, MD_PARAMETER_KEYS, 'MD parameters', 'unknown MD parameter `{key}`; known: {allowed}'
    )
    if message:
        return message
    missing = [key for key in _REQUIRED_KEYS if key not in parameters]
    if missing:
        return f'the MD parameters miss the keys {missing}'
    ensemble = parameters['ensemble']
    if ensemble not in ('nvt', 'npt'):
        return f'ensemble must be `nvt` or `npt`, got {ensemble!r}'
    try:
        temperature = float(parameters['temperature_K'])
        timestep = float(parameters['timestep_fs'])
        production = int(parameters['production_steps'])
        equilibration = int(parameters.get('equilibration_steps', 0))
        dump_interval = int(parameters['dump_interval'])
        seed = int(parameters['seed'])
        scale = float(parameters.get('volume_scale', 1.0))
        dampings = {key: float(parameters[key]) for key in ('taut_fs', 'taup_fs') if key in parameters}
    except (TypeError, ValueError) as exception:
        return f'invalid MD parameter value: {exception}'
    if not temperature > 0:
        return f'temperature_K must be positive, got {temperature}'
    if not timestep > 0:
        return f'timestep_fs must be positive, got {timestep}'
    if production <= 0 or equilibration < 0:
        return f'production_steps must be > 0 and equilibration_steps >= 0, got {production}, {equilibration}'
    if dump_interval <= 0 or dump_interval > production:
        return f'dump_interval must be between 1 and production_steps={production}, got {dump_interval}'
    if not 0 < seed < 2**31:
        return f'the seed must be a positive 32-bit integer, got {seed}'
    if not scale > 0:
        return f'volume_scale must be positive, got {scale}'
    for key, value in dampings.items():
        if not value > 0:
            return f'{key} must be positive, got {value}'
    if ensemble == 'npt':
        if 'pressure_bar' not in parameters:
            return 'an NPT run needs `pressure_bar`'
        try:
            float(parameters['pressure_bar'])
        except (TypeError, ValueError):
            return f'pressure_bar must be a number, got {parameters["pressure_bar"]!r}'
        if parameters.get('pressure_coupling', 'iso') not in ('iso', 'aniso', 'tri'):
            return f'pressure_coupling must be iso, aniso or tri, got {parameters["pressure_coupling"]!r}'
    else:
        extra = [key for key in ('pressure_bar', 'taup_fs', 'pressure_coupling') if key in parameters]
        if extra:
            return f'`{extra[0]}` applies to NPT runs only; this run is {ensemble}'
    return None
