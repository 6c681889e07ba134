"""Lossless extended-XYZ writing and normalised reading of labelled configurations (no AiiDA import).

Label convention of aiida-mlpot on an :class:`ase.Atoms`:

* ``atoms.info['energy']``: total potential energy (eV);
* ``atoms.arrays['forces']``: forces, shape (N, 3) (eV/Å);
* ``atoms.info['virial']``: virial tensor, shape (3, 3) (eV), ``virial = -stress * volume``;
* ``atoms.arrays['energies']``: per-atom energies, shape (N,) (eV);
* free-form ``info`` entries (``config_type``, ``source_uuid``, ``step``, ``frame``, ...).

Provenance ``info`` keys written by the plugin's calculations and calcfunctions (the per-configuration lineage,
see :func:`frame_lineage`):

* ``source_uuid``: the calculation that produced the frame's labels: the MD calculation (LAMMPS sampling or ML
  MD) for an MD frame, the oracle calculation (CP2K or LAMMPS rerun) for a frame labelled by an oracle;
* ``label_key``: set on frames labelled by an oracle (the key of the configuration in the labelling);
* ``parent_source_uuid``: on a frame labelled by an oracle, the MD calculation the configuration came from;
* ``step``: the MD step of the frame;
* ``pool_uuid`` and ``pool_index``: the dataset a selection (``select_configurations``) chose the frame from,
  and its index there;
* ``al_iteration``: the active-learning iteration that chose the frame for labelling.

Floats are written with :func:`repr` (shortest string that round-trips), so a frame written and read
back is identical bit for bit. The file can be read by ``gap_fit`` with
``energy_parameter_name=energy force_parameter_name=forces virial_parameter_name=virial``.
"""

from __future__ import annotations

import io
from collections.abc import Iterable, Mapping

import numpy as np
from ase import Atoms
from ase.calculators.singlepoint import SinglePointCalculator

from aiida_mlpot.common.units import full_3x3, stress_to_virial, virial_to_stress

#: Per-configuration scalar/tensor labels and their expected shapes (None: scalar).
CONFIG_LABELS = {'energy': None, 'virial': (3, 3)}
#: Per-atom labels and the trailing shape of their arrays.
ATOM_LABELS = {'forces': (3,), 'energies': ()}
#: Arrays that are part of the structure itself, not labels.
_STRUCTURE_ARRAYS = ('numbers', 'positions')
_RESERVED_INFO = ('Lattice', 'Properties', 'pbc')

#: The per-configuration lineage fields that :func:`frame_lineage` derives from a frame's ``info``.
LINEAGE_FIELDS = {
    'md_uuid': 'UUID of the MD calculation (LAMMPS sampling or ML-MD CalcJob) whose trajectory the configuration '
    'is a frame of',
    'md_step': 'MD step of that frame',
    'oracle_uuid': 'UUID of the calculation that labelled the configuration (CP2K or LAMMPS rerun CalcJob)',
    'pool_uuid': 'UUID of the DatasetData a selection chose the configuration from',
    'pool_index': 'index of the configuration in that DatasetData',
    'iteration': 'active-learning iteration that chose the configuration for labelling',
}


def is_oracle_labelled(info: Mapping) -> bool:
    """Return whether a frame's labels come from an oracle (``label_key`` or ``parent_source_uuid`` is set)."""
    return 'label_key' in info or 'parent_source_uuid' in info


def md_source(info: Mapping) -> str | None:
    """Return the UUID of the MD calculation a frame came from: ``parent_source_uuid`` of an oracle-labelled
    frame, ``source_uuid`` of any other frame, ``None`` if the frame does not say.

    A labelling calculation or calcfunction records it as ``parent_source_uuid`` of the frames it labels, so a
    configuration relabelled twice still names its MD run, not the first oracle.
    """
    key = 'parent_source_uuid' if is_oracle_labelled(info) else 'source_uuid'
    value = info.get(key)
    return None if value is None else str(value)


def frame_lineage(info: Mapping) -> dict:
    """Return the lineage fields (:data:`LINEAGE_FIELDS`) that a frame's ``info`` gives; absent ones are left out."""
    lineage = {}
    md_uuid = md_source(info)
    if md_uuid is not None:
        lineage['md_uuid'] = md_uuid
        if info.get('step') is not None:
            lineage['md_step'] = int(info['step'])
    if is_oracle_labelled(info) and info.get('source_uuid') is not None:
        lineage['oracle_uuid'] = str(info['source_uuid'])
    if info.get('pool_uuid') is not None:
        lineage['pool_uuid'] = str(info['pool_uuid'])
        if info.get('pool_index') is not None:
            lineage['pool_index'] = int(info['pool_index'])
    if info.get('al_iteration') is not None:
        lineage['iteration'] = int(info['al_iteration'])
    return lineage


class InconsistentDatasetError(ValueError):
    """Raised when a list of configurations cannot form a consistent dataset."""


def normalise_frame(atoms: Atoms, index: int = 0) -> Atoms:
    """Return a copy of ``atoms`` with labels moved from a calculator into ``info``/``arrays`` and checked.

    Energies, forces, stress (converted to the virial) and per-atom energies of an attached
    calculator are taken unless the same label is already in ``info``/``arrays``.
    """
    if not isinstance(atoms, Atoms):
        raise InconsistentDatasetError(f'configuration {index} is a {type(atoms).__name__}, not an ase.Atoms')
    frame = Atoms(
        numbers=atoms.numbers.copy(),
        positions=atoms.positions.copy(),
        cell=atoms.cell.array.copy(),
        pbc=atoms.pbc,
    )
    for key, value in atoms.info.items():
        if key not in _RESERVED_INFO:
            frame.info[key] = value.copy() if isinstance(value, np.ndarray) else value
    for key, value in atoms.arrays.items():
        if key not in _STRUCTURE_ARRAYS:
            frame.arrays[key] = np.array(value, copy=True)
    results = getattr(atoms.calc, 'results', None) or {}
    if 'energy' in results and 'energy' not in frame.info:
        frame.info['energy'] = float(results['energy'])
    if 'forces' in results and 'forces' not in frame.arrays:
        frame.arrays['forces'] = np.array(results['forces'], dtype=float)
    if 'energies' in results and 'energies' not in frame.arrays:
        frame.arrays['energies'] = np.array(results['energies'], dtype=float)
    if 'stress' in results and 'virial' not in frame.info:
        frame.info['virial'] = stress_to_virial(results['stress'], atoms.get_volume())
    _check_labels(frame, index)
    return frame


def _check_labels(frame: Atoms, index: int) -> None:
    natoms = len(frame)
    if natoms == 0:
        raise InconsistentDatasetError(f'configuration {index} has no atoms')
    if not np.all(np.isfinite(frame.positions)):
        raise InconsistentDatasetError(f'configuration {index}: the positions contain non-finite values')
    if not np.all(np.isfinite(frame.cell.array)):
        raise InconsistentDatasetError(f'configuration {index}: the cell contains non-finite values')
    if 'energy' in frame.info:
        try:
            frame.info['energy'] = float(frame.info['energy'])
        except (TypeError, ValueError) as exc:
            raise InconsistentDatasetError(f'configuration {index}: energy must be a number') from exc
    if 'virial' in frame.info:
        try:
            frame.info['virial'] = full_3x3(frame.info['virial'])
        except ValueError as exc:
            raise InconsistentDatasetError(f'configuration {index}: virial: {exc}') from exc
    for key, trailing in ATOM_LABELS.items():
        if key in frame.arrays:
            array = np.asarray(frame.arrays[key], dtype=float)
            if array.shape != (natoms, *trailing):
                raise InconsistentDatasetError(
                    f'configuration {index}: {key} has shape {array.shape}, expected {(natoms, *trailing)} '
                    f'for {natoms} atoms'
                )
            frame.arrays[key] = array
    for key in ('energy', 'virial'):
        if key in frame.info and not np.all(np.isfinite(frame.info[key])):
            raise InconsistentDatasetError(f'configuration {index}: {key} is not finite')
    for key in ATOM_LABELS:
        if key in frame.arrays and not np.all(np.isfinite(frame.arrays[key])):
            raise InconsistentDatasetError(f'configuration {index}: {key} contains non-finite values')


def label_presence(frames: list[Atoms]) -> dict[str, int]:
    """Return, for every label and info/array key, in how many frames it is present."""
    counts: dict[str, int] = {}
    for frame in frames:
        for key in set(frame.info) | (set(frame.arrays) - set(_STRUCTURE_ARRAYS)):
            counts[key] = counts.get(key, 0) + 1
    return counts


def check_consistency(frames: list[Atoms], allow_partial: bool = False) -> None:
    """Raise :class:`InconsistentDatasetError` if a label is present in some frames only (unless allowed)."""
    if allow_partial:
        return
    presence = label_presence(frames)
    for key in [*CONFIG_LABELS, *ATOM_LABELS]:
        count = presence.get(key, 0)
        if 0 < count < len(frames):
            missing = [i for i, f in enumerate(frames) if key not in f.info and key not in f.arrays]
            raise InconsistentDatasetError(
                f'property `{key}` is present in {count} of {len(frames)} configurations only '
                f'(missing in configuration(s) {missing[:10]}{"..." if len(missing) > 10 else ""}); '
                'pass allow_partial=True to accept a partially labelled dataset'
            )


def _float(value: float) -> str:
    """Return the shortest round-trip text of ``value`` that ASE reads as a float (it always has a '.')."""
    text = repr(float(value))
    if '.' in text or not text[-1].isdigit():  # fast path; also 'inf' and 'nan'
        return text
    mantissa, _, exponent = text.partition('e')
    return f'{mantissa}.0' + (f'e{exponent}' if exponent else '')


def _format_value(value) -> str:
    if isinstance(value, bool | np.bool_):
        return 'T' if value else 'F'
    if isinstance(value, int | np.integer):
        return str(int(value))
    if isinstance(value, float | np.floating):
        return _float(value)
    if isinstance(value, np.ndarray | list | tuple):
        array = np.asarray(value)
        if array.dtype.kind == 'b':
            return '"' + ' '.join('T' if v else 'F' for v in array.ravel()) + '"'
        if array.dtype.kind in 'iu':
            return '"' + ' '.join(str(int(v)) for v in array.ravel()) + '"'
        if array.dtype.kind == 'f':
            # ASE reads 9 numbers as a 3x3 matrix in Fortran order
            flat = array.ravel(order='F') if array.shape == (3, 3) else array.ravel()
            return '"' + ' '.join(_float(v) for v in flat) + '"'
        raise InconsistentDatasetError(f'cannot write an info array of dtype {array.dtype} to extended XYZ')
    text = str(value)
    if any(c in text for c in '"\n'):
        raise InconsistentDatasetError(f'info value {text!r} contains a quote or a newline')
    return '"' + text + '"' if (not text or any(c in text for c in ' =,')) else text


def _check_key(key: str) -> str:
    if not key or any(c in key for c in ' ="\n,:'):
        raise InconsistentDatasetError(f'info/array key {key!r} cannot be written to extended XYZ')
    return key


def write_frames(frames: Iterable[Atoms], handle: io.TextIOBase) -> None:
    """Write normalised frames to ``handle`` as extended XYZ, floats at full (round-trip) precision."""
    for frame in frames:
        columns = [('species', 'S', 1, frame.get_chemical_symbols()), ('pos', 'R', 3, frame.positions)]
        for key, value in frame.arrays.items():
            if key in _STRUCTURE_ARRAYS:
                continue
            array = np.asarray(value)
            width = 1 if array.ndim == 1 else int(np.prod(array.shape[1:]))
            kind = {'f': 'R', 'i': 'I', 'u': 'I', 'b': 'L'}.get(array.dtype.kind, 'S')
            columns.append((_check_key(key), kind, width, array.reshape(len(frame), -1)))
        header = [
            'Lattice="' + ' '.join(_float(v) for v in frame.cell.array.ravel()) + '"',
            'Properties=' + ':'.join(f'{name}:{kind}:{width}' for name, kind, width, _ in columns),
        ]
        for key, value in frame.info.items():
            header.append(f'{_check_key(key)}={_format_value(value)}')
        header.append('pbc="' + ' '.join('T' if p else 'F' for p in frame.pbc) + '"')
        handle.write(f'{len(frame)}\n{" ".join(header)}\n')
        cells = [_column_text(name, kind, data, len(frame)) for name, kind, _, data in columns]
        handle.write('\n'.join(' '.join(row) for row in zip(*cells)) + '\n')


def _column_text(name: str, kind: str, data, natoms: int) -> list[str]:
    """Return one string per atom for a column (several space-separated fields for vector columns)."""
    if name == 'species':
        return list(data)
    values = np.asarray(data).reshape(natoms, -1).tolist()
    if kind == 'R':
        return [' '.join(_float(v) for v in row) for row in values]
    if kind == 'L':
        return [' '.join('T' if v else 'F' for v in row) for row in values]
    return [' '.join(str(v) for v in row) for row in values]


def read_frames(handle: io.TextIOBase, index: str | int | slice = ':') -> list[Atoms]:
    """Read extended-XYZ frames and return them with labels in ``info``/``arrays`` plus a calculator.

    A text ASE cannot read (truncated, not extended XYZ) raises :class:`InconsistentDatasetError` saying so.
    ASE's reader moves ``energy``, ``forces`` and ``energies`` into a calculator; they are put back,
    the virial is reshaped to 3x3, and a :class:`SinglePointCalculator` holding energy, forces,
    per-atom energies and the stress is attached for convenience.
    """
    from ase.io import read

    try:
        frames = read(handle, index=index, format='extxyz')
    except (
        Exception
    ) as exception:  # ASE raises XYZError, ValueError, IndexError... for a truncated or bad file
        raise InconsistentDatasetError(
            f'the extended-XYZ text cannot be read (truncated or not extended XYZ?): {exception}'
        ) from exception
    if isinstance(frames, Atoms):
        frames = [frames]
    return [attach_calculator(_restore_labels(frame)) for frame in frames]


def _restore_labels(frame: Atoms) -> Atoms:
    results = dict(getattr(frame.calc, 'results', None) or {})
    frame.calc = None
    if 'energy' in results:
        frame.info['energy'] = float(results['energy'])
    for key in ATOM_LABELS:
        if key in results:
            frame.arrays[key] = np.asarray(results[key], dtype=float)
    if 'stress' in results and 'virial' not in frame.info:
        frame.info['virial'] = stress_to_virial(results['stress'], frame.get_volume())
    if 'virial' in frame.info:
        frame.info['virial'] = full_3x3(frame.info['virial'])
    return frame


def attach_calculator(frame: Atoms) -> Atoms:
    """Attach a :class:`SinglePointCalculator` carrying the frame's labels (energy, forces, stress, energies)."""
    results = {}
    if 'energy' in frame.info:
        results['energy'] = frame.info['energy']
    for key in ATOM_LABELS:
        if key in frame.arrays:
            results[key] = frame.arrays[key]
    if 'virial' in frame.info and frame.cell.rank == 3:
        results['stress'] = virial_to_stress(frame.info['virial'], frame.get_volume())
    if results:
        frame.calc = SinglePointCalculator(frame, **results)
    return frame
