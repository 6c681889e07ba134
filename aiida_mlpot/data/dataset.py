"""`DatasetData`: a set of labelled atomic configurations stored as one extended-XYZ file."""

from __future__ import annotations

import contextlib
import io
import pathlib
from collections.abc import Iterable, Iterator

import numpy as np
from aiida.orm import Data
from ase import Atoms

from aiida_mlpot.data.attributes import attribute
from aiida_mlpot.data.extxyz import (
    ATOM_LABELS,
    CONFIG_LABELS,
    LINEAGE_FIELDS,
    InconsistentDatasetError,
    check_consistency,
    frame_lineage,
    label_presence,
    normalise_frame,
    read_frames,
    write_frames,
)

__all__ = ('DatasetData', 'InconsistentDatasetError', 'lineage_columns', 'lineage_rows')


def lineage_columns(rows: list[dict]) -> dict[str, list]:
    """Return per-configuration lineage dicts as columns ``{field: [value or None, ...]}`` (fields present only)."""
    fields = [field for field in LINEAGE_FIELDS if any(field in row for row in rows)]
    return {field: [row.get(field) for row in rows] for field in fields}


def lineage_rows(columns: dict[str, list], n_configs: int) -> list[dict]:
    """Return the lineage columns of :func:`lineage_columns` as one dict per configuration (``None`` left out)."""
    rows: list[dict] = [{} for _ in range(n_configs)]
    for field, values in columns.items():
        for row, value in zip(rows, values):
            if value is not None:
                row[field] = value
    return rows


class DatasetData(Data):
    """Atomic configurations of any sizes and compositions with their labels, as one extended-XYZ file.

    Labels follow the convention of :mod:`aiida_mlpot.data.extxyz`: ``info['energy']`` (eV),
    ``arrays['forces']`` (eV/Å), ``info['virial']`` (3x3, eV), ``arrays['energies']`` (eV/atom), plus
    free-form ``info`` such as ``config_type``, ``source_uuid`` and ``step``.

    The attributes summarise the content so that datasets can be queried without reading the file:
    ``n_configs``, ``n_atoms_total``, ``n_atoms_min``/``n_atoms_max``, ``species``, ``properties``
    (labels present in every configuration), ``partial_properties`` (present in some only),
    ``info_keys`` and ``config_types``.

    The attribute ``lineage`` records where every configuration came from, derived from the frames' provenance
    ``info`` (:func:`aiida_mlpot.data.extxyz.frame_lineage`) when the node is made, so that every calcfunction
    that carries the info over (selection, labelling, split, growth of a training set) also carries the lineage
    and it can be queried (and survives an archive round trip) without reading the file. It is stored by
    column: ``{field: [value of configuration 0, 1, ...]}`` with ``None`` where a configuration lacks the field,
    only the fields at least one configuration has; the fields (:data:`~aiida_mlpot.data.extxyz.LINEAGE_FIELDS`)
    are ``md_uuid`` and ``md_step`` (the MD calculation and step), ``oracle_uuid`` (the calculation that
    labelled it), ``pool_uuid`` and ``pool_index`` (the dataset a selection chose it from, and its index
    there) and ``iteration`` (the active-learning iteration that chose it). :attr:`lineage` gives one dict
    per configuration.
    """

    filename = 'dataset.xyz'

    def __init__(self, frames: Iterable[Atoms] | None = None, allow_partial: bool = False, **kwargs):
        super().__init__(**kwargs)
        if frames is not None:
            self.set_frames(frames, allow_partial=allow_partial)

    @classmethod
    def from_ase(cls, frames: Iterable[Atoms], allow_partial: bool = False, **kwargs) -> DatasetData:
        """Return a new (unstored) dataset holding ``frames``.

        :param frames: ASE Atoms, labels in ``info``/``arrays`` or in an attached calculator.
        :param allow_partial: accept labels (energy, forces, virial, energies) present in some frames only.
        :raises InconsistentDatasetError: wrong shapes, non-finite labels, partial labels not allowed.
        """
        return cls(frames=frames, allow_partial=allow_partial, **kwargs)

    def set_frames(self, frames: Iterable[Atoms], allow_partial: bool = False) -> None:
        """Replace the content of this (unstored) node with ``frames``."""
        normalised = [normalise_frame(frame, index) for index, frame in enumerate(frames)]
        check_consistency(normalised, allow_partial=allow_partial)
        handle = io.StringIO()
        write_frames(normalised, handle)
        self.base.repository.put_object_from_bytes(handle.getvalue().encode('utf-8'), self.filename)

        presence = label_presence(normalised)
        n_configs = len(normalised)
        natoms = [len(frame) for frame in normalised]
        labels = [*CONFIG_LABELS, *ATOM_LABELS]
        species = sorted({symbol for frame in normalised for symbol in frame.get_chemical_symbols()})
        config_types = sorted({str(f.info['config_type']) for f in normalised if 'config_type' in f.info})
        attributes = {
            'n_configs': n_configs,
            'n_atoms_total': int(sum(natoms)),
            'n_atoms_min': int(min(natoms)) if natoms else 0,
            'n_atoms_max': int(max(natoms)) if natoms else 0,
            'species': species,
            'properties': [key for key in labels if presence.get(key, 0) == n_configs and n_configs],
            'partial_properties': [key for key in labels if 0 < presence.get(key, 0) < n_configs],
            'info_keys': sorted(key for key in presence if key not in labels and key not in ATOM_LABELS),
            'config_types': config_types,
            'lineage': lineage_columns([frame_lineage(frame.info) for frame in normalised]),
        }
        for key, value in attributes.items():
            self.base.attributes.set(key, value)

    # --- summary attributes -------------------------------------------------------------------------------
    n_configs = attribute('n_configs', 0, 'Number of configurations (int).')
    n_atoms_total = attribute('n_atoms_total', 0, 'Total number of atoms over all configurations (int).')
    species = attribute('species', [], 'Sorted chemical symbols present in the dataset (list of str).')
    properties = attribute(
        'properties',
        [],
        'Labels (energy, forces, virial, energies) present in every configuration (list of str).',
    )
    config_types = attribute('config_types', [], 'Distinct ``config_type`` values (list of str).')

    @property
    def lineage(self) -> list[dict]:
        """Per configuration, the lineage fields it has (see the class docstring); ``{}`` where none.

        Nodes stored before the attribute existed have it derived from the frames' info (reads the file).
        """
        columns = self.base.attributes.get('lineage', None)
        if columns is None:
            return [frame_lineage(frame.info) for frame in self.to_ase()]
        return lineage_rows(columns, self.n_configs)

    def has_property(self, name: str) -> bool:
        """Return whether the label ``name`` is present in every configuration."""
        return name in self.properties

    # --- content --------------------------------------------------------------------------------------------
    def __len__(self) -> int:
        return self.n_configs

    def __iter__(self) -> Iterator[Atoms]:
        return iter(self.to_ase())

    def __getitem__(self, index: int) -> Atoms:
        return self.to_ase()[index]

    def to_ase(self) -> list[Atoms]:
        """Return the configurations as ASE Atoms with labels in ``info``/``arrays`` and a calculator."""
        if self.n_configs == 0:
            return []
        with self.base.repository.open(self.filename, 'r') as handle:
            return read_frames(handle)

    def get_content(self) -> str:
        """Return the extended-XYZ text."""
        return self.base.repository.get_object_content(self.filename, mode='r')

    @contextlib.contextmanager
    def get_xyz_path(self) -> Iterator[pathlib.Path]:
        """Context manager yielding a filesystem path to the extended-XYZ file."""
        with self.base.repository.as_path(self.filename) as path:
            yield pathlib.Path(path)

    def get_array(self, key: str) -> list[np.ndarray] | np.ndarray:
        """Return a label of every configuration: a 1D array for ``energy``, a list of arrays otherwise."""
        frames = self.to_ase()
        if key in CONFIG_LABELS and CONFIG_LABELS[key] is None:
            return np.array([frame.info[key] for frame in frames])
        if key in ATOM_LABELS:
            return [frame.arrays[key] for frame in frames]
        return [frame.info[key] for frame in frames]

    def __str__(self) -> str:
        return (
            f'{super().__str__()} ({self.n_configs} configurations, {self.n_atoms_total} atoms, '
            f'species {",".join(self.species)}, properties {",".join(self.properties) or "none"})'
        )
