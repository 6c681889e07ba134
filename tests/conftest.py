"""Shared fixtures: a temporary AiiDA profile (SQLite + ZeroMQ broker), codes for the real executables,
and a reference set of molten-NaCl frames produced by the real Debian LAMMPS."""

from __future__ import annotations

import os
import pathlib
import secrets
import shutil
import subprocess
import sys
import tempfile

import numpy as np
import pytest
from ase import Atoms
from ase.build import bulk

from aiida_mlpot.common.units import density_g_cm3, pressure_bar_to_virial

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1] / 'scripts' / 'services'))

import aiida_setup  # noqa: E402  (scripts/services/aiida_setup.py: the computers and codes of the scripts too)

pytest_plugins = ['aiida.tools.pytest_fixtures']

VENV_BIN = pathlib.Path(sys.executable).parent
FAST_TMP = pathlib.Path('/dev/shm') if os.access('/dev/shm', os.W_OK) else None


def executable(name: str) -> str | None:
    """Return the path of ``name`` from the environment's bin folder or the PATH, or None."""
    candidate = VENV_BIN / name
    return str(candidate) if candidate.is_file() else shutil.which(name)


def requires(name: str):
    """Mark a test as needing the executable ``name``; it is skipped with a clear reason where it is absent."""
    return pytest.mark.skipif(executable(name) is None, reason=f'`{name}` is not installed')


@pytest.fixture(scope='session')
def aiida_config(aiida_config_factory):
    """The temporary AiiDA configuration, on a RAM-backed folder where there is one (SQLite commits are slow)."""
    folder = pathlib.Path(tempfile.mkdtemp(prefix='mlpot-aiida-', dir=FAST_TMP))
    with aiida_config_factory(folder / secrets.token_hex(8)) as config:
        yield config
    shutil.rmtree(folder, ignore_errors=True)


@pytest.fixture(scope='session')
def aiida_profile(aiida_config, aiida_profile_factory):
    """A temporary profile with SQLite storage and the ZeroMQ broker, so ``submit_and_await`` works."""
    with aiida_profile_factory(aiida_config, broker_backend='core.zeromq') as profile:
        yield profile


@pytest.fixture(scope='session')
def localhost(aiida_profile, tmp_path_factory):
    """A `localhost` computer (core.local, core.direct) for the whole session, so expensive runs can be shared."""
    from aiida.common.exceptions import NotExistent
    from aiida.orm import load_computer

    try:
        return load_computer('localhost-mlpot')
    except NotExistent:  # as `aiida-mlpot setup` configures it: no safe interval, no login shell
        return aiida_setup.direct_computer('localhost-mlpot', tmp_path_factory.mktemp('aiida_work'))


def _installed_code(computer, label: str, name: str, default_plugin: str | None = None):
    from aiida.common.exceptions import NotExistent
    from aiida.orm import InstalledCode, load_code

    path = executable(name)
    if path is None:
        pytest.skip(f'`{name}` is not installed')
    try:
        return load_code(f'{label}@{computer.label}')
    except NotExistent:
        code = InstalledCode(
            label=label,
            computer=computer,
            filepath_executable=path,
            default_calc_job_plugin=default_plugin,
            with_mpi=False,
        )
        return code.store()


@pytest.fixture(scope='session')
def code_lmp(localhost):
    """The real Debian LAMMPS (`lmp`)."""
    return _installed_code(localhost, 'lmp', 'lmp', 'mlpot.lammps.md')


@pytest.fixture(scope='session')
def code_cp2k(localhost):
    """The real Debian CP2K (`cp2k.psmp`), run with OpenMP threads (no MPI)."""
    return _installed_code(localhost, 'cp2k', 'cp2k.psmp', 'cp2k')


@pytest.fixture(scope='session')
def code_gap_fit(localhost):
    """`gap_fit` from the quippy-ase wheel in this environment."""
    return _installed_code(localhost, 'gap_fit', 'gap_fit', 'mlpot.gap_fit')


@pytest.fixture(scope='session')
def code_python(localhost):
    """This environment's python; it runs the ML-MD driver on the compute node."""
    return _installed_code(localhost, 'python', 'python', 'mlpot.ml_md')


# --- reference NaCl frames from the real LAMMPS -------------------------------------------------------------
#: Tosi-Fumi NaCl in LAMMPS `born` (types 1 Na, 2 Cl): A (eV), rho (Å), sigma (Å), C (eV Å^6), D (eV Å^8).
#: D is negative because LAMMPS adds +D/r^8 and the dipole-quadrupole term is attractive
#: (docs/topics/reference-values.md).
_TOSI_FUMI = {(1, 1): (424.097, 0.317, 0.0, 1.05, -0.499), (1, 2): (1256.31, 0.317, 0.0, 7.0, -8.676)}
_TOSI_FUMI[(2, 2)] = (3488.998, 0.317, 0.0, 72.5, -145.427)
#: (temperature K, density g/cm^3): the model's own NPT densities at 1 bar, measured by
#: benchmarks/nacl_reference_density.sh (docs/topics/reference-values.md).
REFERENCE_STATES = ((1100, 1.445), (1400, 1.295))


def nacl_rocksalt_box(density: float) -> Atoms:
    """Return the 64-atom rock-salt NaCl box (2x2x2 conventional cells) scaled to ``density`` g/cm³."""
    atoms = bulk('NaCl', 'rocksalt', a=5.64, cubic=True).repeat((2, 2, 2))
    length = (atoms.get_volume() * density_g_cm3(atoms.get_masses(), atoms.get_volume()) / density) ** (
        1.0 / 3.0
    )
    atoms.set_cell(np.eye(3) * length, scale_atoms=True)
    return atoms


def _write_lammps_data(atoms: Atoms, path: pathlib.Path) -> None:
    types = {'Na': 1, 'Cl': 2}
    charges = {'Na': 1.0, 'Cl': -1.0}
    lx, ly, lz = (float(x) for x in atoms.cell.lengths())
    lines = ['NaCl reference', '', f'{len(atoms)} atoms', '2 atom types', '']
    lines += [f'0 {lx!r} xlo xhi', f'0 {ly!r} ylo yhi', f'0 {lz!r} zlo zhi', '', 'Masses', '']
    lines += ['1 22.98976928', '2 35.453', '', 'Atoms # charge', '']
    for i, (symbol, pos) in enumerate(zip(atoms.get_chemical_symbols(), atoms.positions), start=1):
        lines.append(f'{i} {types[symbol]} {charges[symbol]} ' + ' '.join(repr(float(x)) for x in pos))
    path.write_text('\n'.join(lines) + '\n')


def _read_dump(path: pathlib.Path) -> dict[int, dict]:
    frames = {}
    lines = path.read_text().splitlines()
    i = 0
    while i < len(lines):
        step = int(lines[i + 1])
        natoms = int(lines[i + 3])
        bounds = np.array([[float(x) for x in lines[i + 5 + k].split()[:2]] for k in range(3)])
        columns = lines[i + 8].split()[2:]
        data = np.array([[float(x) for x in line.split()] for line in lines[i + 9 : i + 9 + natoms]])
        data = data[np.argsort(data[:, columns.index('id')])]
        frames[step] = {'bounds': bounds, 'data': data, 'columns': columns}
        i += 9 + natoms
    return frames


def _read_thermo(path: pathlib.Path) -> dict[int, dict]:
    rows, header = {}, None
    for line in path.read_text().splitlines():
        fields = line.split()
        if fields[:1] == ['Step']:
            header = fields
            continue
        if header is None:
            continue
        if fields[:2] == ['Loop', 'time']:
            header = None
            continue
        try:
            values = [float(x) for x in fields]
        except ValueError:
            continue
        if len(values) == len(header):
            rows[int(values[0])] = dict(zip(header, values))
    return rows


def run_lammps_nacl_nvt(
    workdir: pathlib.Path,
    temperature: float,
    density: float,
    seed: int,
    n_equil: int = 2000,
    n_prod: int = 2000,
    interval: int = 20,
) -> list[Atoms]:
    """Run Tosi-Fumi + Ewald NaCl NVT MD with the real `lmp` and return labelled frames (test reference)."""
    lmp = executable('lmp')
    if lmp is None:
        pytest.skip('`lmp` is not installed')
    workdir.mkdir(parents=True, exist_ok=True)
    start = nacl_rocksalt_box(density)
    _write_lammps_data(start, workdir / 'data.lmp')
    pair_coeffs = '\n'.join(
        f'pair_coeff {i} {j} ' + ' '.join(map(str, p)) for (i, j), p in _TOSI_FUMI.items()
    )
    script = f"""units metal
atom_style charge
boundary p p p
read_data data.lmp
pair_style born/coul/long 6.5
{pair_coeffs}
kspace_style ewald 1.0e-6
neighbor 2.0 bin
timestep 0.002
velocity all create {2 * temperature} {seed} dist gaussian
fix nvt all nvt temp {temperature} {temperature} 0.1
compute pea all pe/atom
compute vir all pressure NULL virial
thermo_style custom step temp pe c_vir[1] c_vir[2] c_vir[3] c_vir[4] c_vir[5] c_vir[6] vol
thermo_modify format float %.16g
thermo {interval}
run {n_equil}
dump traj all custom {interval} dump.lammpstrj id type x y z fx fy fz c_pea
dump_modify traj format float %.16g
run {n_prod}
"""
    (workdir / 'in.lammps').write_text(script)
    subprocess.run(
        [lmp, '-in', 'in.lammps', '-log', 'log.lammps'], cwd=workdir, check=True, capture_output=True
    )
    thermo = _read_thermo(workdir / 'log.lammps')
    symbols = np.array(['Na', 'Cl'])
    frames = []
    for step, frame in sorted(_read_dump(workdir / 'dump.lammpstrj').items()):
        data, columns = frame['data'], frame['columns']
        col = {name: k for k, name in enumerate(columns)}
        lengths = frame['bounds'][:, 1] - frame['bounds'][:, 0]
        atoms = Atoms(
            symbols=symbols[data[:, col['type']].astype(int) - 1],
            positions=data[:, [col['x'], col['y'], col['z']]] - frame['bounds'][:, 0],
            cell=np.diag(lengths),
            pbc=True,
        )
        row = thermo[step]
        volume = float(np.prod(lengths))
        pressure = np.array([row[f'c_vir[{k}]'] for k in range(1, 7)])  # xx yy zz xy xz yz (bar)
        xx, yy, zz, xy, xz, yz = pressure
        atoms.info['energy'] = row['PotEng']
        atoms.info['virial'] = pressure_bar_to_virial(
            np.array([[xx, xy, xz], [xy, yy, yz], [xz, yz, zz]]), volume
        )
        atoms.info['config_type'] = f'T{int(temperature)}'
        atoms.info['step'] = step
        atoms.arrays['forces'] = data[:, [col['fx'], col['fy'], col['fz']]]
        atoms.arrays['energies'] = data[:, col['c_pea']]
        frames.append(atoms)
    return frames


@pytest.fixture(scope='session')
def nacl_reference_frames(tmp_path_factory) -> list[Atoms]:
    """64-atom molten-NaCl frames from the real `lmp` (Tosi-Fumi + Ewald), NVT at 1100 K and 1400 K.

    101 frames per temperature (every 20 steps of 2 fs after 4 ps equilibration), labelled with energy,
    forces, virial and per-atom energies; ``config_type`` is ``T1100`` or ``T1400``.
    """
    frames = []
    for k, (temperature, density) in enumerate(REFERENCE_STATES):
        workdir = tmp_path_factory.mktemp(f'nacl_ref_{temperature}')
        frames += run_lammps_nacl_nvt(workdir, temperature, density, seed=4242 + k)
    return frames


@pytest.fixture
def nacl_structure() -> Atoms:
    """A 64-atom rock-salt NaCl box at the model's 1400 K density (1.295 g/cm³), slightly rattled."""
    atoms = nacl_rocksalt_box(1.295)
    atoms.rattle(0.05, seed=7)
    return atoms
