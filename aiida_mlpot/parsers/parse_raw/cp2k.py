"""Text -> dict parsing of CP2K single-point outputs (energy, forces, stress, SCF convergence).

Pure Python + numpy; no AiiDA import. Units are converted with :mod:`aiida_mlpot.common.units`:

* energy: ``ENERGY| Total FORCE_EVAL ( QS ) energy [a.u.]`` (Hartree) -> eV;
* forces: ``ATOMIC FORCES in [a.u.]`` block (Hartree/Bohr), read from the ``PRINT FORCES`` file
  when it exists, else from the main output -> eV/Å;
* stress: ``STRESS| Analytical stress tensor [GPa]`` (or ``[bar]``) block, read from the
  ``PRINT STRESS_TENSOR`` file when it exists, else from the main output. CP2K prints the
  *pressure-like* tensor (positive when the system pushes outwards, its 1/3 trace is the pressure),
  i.e. minus the ASE stress. We return ``stress`` in the ASE convention (eV/Å³) and the virial
  ``-stress * volume`` (eV), which is CP2K's tensor times the volume. The sign was checked against a
  finite-difference strain derivative of the CP2K energy (see tests/workflows/labelling).
"""

from __future__ import annotations

import re

import numpy as np

from aiida_mlpot.common import units

_ENERGY_RE = re.compile(
    r'ENERGY\|\s+Total FORCE_EVAL \(\s*\w+\s*\) energy \[(a\.u\.|hartree)\]:\s+(\S+)', re.I
)
_SCF_CONVERGED_RE = re.compile(r'\*\*\* SCF run converged in\s+(\d+) steps \*\*\*')
_SCF_NOT_CONVERGED_RE = re.compile(r'SCF run NOT converged')
_VERSION_RE = re.compile(r'CP2K\|\s+version string:\s+(.+)')
_WALLTIME_RE = re.compile(r'^\s*CP2K\s+\d+\s+\S+\s+\S+\s+\S+\s+\S+\s+(\S+)\s*$', re.M)
_STRESS_HEADER_RE = re.compile(r'STRESS\|\s+Analytical stress tensor \[(GPa|bar)\]')
_STRESS_NUMERIC_HEADER_RE = re.compile(r'STRESS\|\s+Numerical stress tensor \[(GPa|bar)\]')

#: Conversion of the pressure units CP2K may print to eV/Å³.
_PRESSURE_UNITS = {'GPa': units.GPA_TO_EV_PER_ANGSTROM3, 'bar': units.BAR_TO_EV_PER_ANGSTROM3}


class Cp2kParseError(ValueError):
    """Raised when a CP2K output lacks a block that was requested."""


def parse_energy(text: str) -> float | None:
    """Return the last total FORCE_EVAL energy of a CP2K output in eV, or None if absent."""
    matches = _ENERGY_RE.findall(text)
    if not matches:
        return None
    return float(matches[-1][1]) * units.HARTREE_TO_EV


def parse_forces(text: str) -> np.ndarray | None:
    """Return the last ``ATOMIC FORCES in [a.u.]`` block as an (N, 3) array in eV/Å, or None.

    Works on the main output and on the file written by ``&PRINT &FORCES FILENAME ...``.
    """
    blocks = text.split('ATOMIC FORCES in [a.u.]')
    if len(blocks) < 2:
        return None
    rows = []
    for line in blocks[-1].splitlines():
        fields = line.split()
        if not fields or fields[0] == '#':
            continue
        if fields[0] == 'SUM':
            break
        if len(fields) == 6 and fields[0].isdigit():
            rows.append([float(v) for v in fields[3:6]])
        elif rows:
            break
    if not rows:
        return None
    return np.array(rows) * units.HARTREE_PER_BOHR_TO_EV_PER_ANGSTROM


def parse_cp2k_stress(text: str) -> np.ndarray | None:
    """Return the last analytical (or numerical) stress tensor block as printed by CP2K, in eV/Å³.

    The returned tensor keeps CP2K's sign convention (pressure-like: 1/3 trace = pressure).
    """
    matches = list(_STRESS_HEADER_RE.finditer(text)) or list(_STRESS_NUMERIC_HEADER_RE.finditer(text))
    if not matches:
        return None
    last = matches[-1]
    factor = _PRESSURE_UNITS[last.group(1)]
    rows = []
    for line in text[last.end() :].splitlines()[1:]:
        fields = line.split()
        if len(fields) == 5 and fields[0] == 'STRESS|' and fields[1] in ('x', 'y', 'z'):
            rows.append([float(v) for v in fields[2:5]])
            if len(rows) == 3:
                break
        elif fields[:2] == ['STRESS|', 'x'] or (fields and fields[0] == 'STRESS|' and len(fields) == 4):
            continue
    if len(rows) != 3:
        return None
    return np.array(rows) * factor


def parse_scf(text: str) -> dict:
    """Return SCF information: ``scf_converged`` (bool), ``scf_steps`` (list of int per converged SCF)."""
    converged_steps = [int(n) for n in _SCF_CONVERGED_RE.findall(text)]
    not_converged = bool(_SCF_NOT_CONVERGED_RE.search(text))
    return {
        'scf_converged': bool(converged_steps) and not not_converged,
        'scf_steps': converged_steps,
        'scf_not_converged_warnings': len(_SCF_NOT_CONVERGED_RE.findall(text)),
    }


def parse_cp2k_single_point(
    output: str,
    forces_file: str | None = None,
    stress_file: str | None = None,
    volume: float | None = None,
) -> dict:
    """Parse a CP2K ENERGY_FORCE output into a JSON-serialisable dictionary.

    :param output: text of the main CP2K output (``aiida.out``).
    :param forces_file: text of the ``PRINT FORCES`` file, if retrieved; preferred over ``output``.
    :param stress_file: text of the ``PRINT STRESS_TENSOR`` file, if retrieved; preferred over ``output``.
    :param volume: cell volume in Å³; when given the virial (eV) is added.
    :return: dict with ``energy`` (eV), ``forces`` (N x 3, eV/Å), ``stress`` (3 x 3, eV/Å³, ASE sign),
        ``virial`` (3 x 3, eV), ``scf_converged``, ``scf_steps``, ``completed`` (CP2K reached its end),
        ``aborted``, ``cp2k_version``, ``warnings``. Absent quantities are None.
    """
    result: dict = {}
    result['energy'] = parse_energy(output)
    forces = parse_forces(forces_file) if forces_file else None
    if forces is None:
        forces = parse_forces(output)
    result['forces'] = forces.tolist() if forces is not None else None

    cp2k_stress = parse_cp2k_stress(stress_file) if stress_file else None
    if cp2k_stress is None:
        cp2k_stress = parse_cp2k_stress(output)
    if cp2k_stress is not None:
        stress = -cp2k_stress
        result['stress'] = stress.tolist()
        result['virial'] = units.stress_to_virial(stress, volume).tolist() if volume else None
    else:
        result['stress'] = None
        result['virial'] = None

    result.update(parse_scf(output))
    result['completed'] = 'PROGRAM ENDED AT' in output or 'PROGRAM STOPPED IN' in output
    result['aborted'] = 'ABORT' in output
    result['out_of_walltime'] = 'exceeded requested execution time' in output
    version = _VERSION_RE.search(output)
    result['cp2k_version'] = version.group(1).strip() if version else None
    walltime = _WALLTIME_RE.findall(output)
    result['walltime_s'] = float(walltime[-1]) if walltime else None
    result['warnings'] = sorted({line.strip() for line in output.splitlines() if '*** WARNING' in line})
    return result
