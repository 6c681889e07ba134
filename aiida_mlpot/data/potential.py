"""`GapPotentialData`: a fitted Gaussian Approximation Potential (the gap_fit XML and its sparseX files)."""

from __future__ import annotations

import pathlib
import shutil
import tempfile
from collections.abc import Iterable, Sequence

from aiida.orm import Data
from ase.data import atomic_numbers

from aiida_mlpot.data.attributes import attribute
from aiida_mlpot.parsers.parse_raw.gap_fit import parse_gap_xml
from aiida_mlpot.potentials.classical import species_order

__all__ = ('GapPotentialData',)


class GapPotentialData(Data):
    """A fitted GAP: the XML written by ``gap_fit`` plus its ``sparseX`` files, in the node's repository.

    Attributes: ``xml_filename``, ``filenames`` (all files), ``xml_label``, ``init_args``, ``species``,
    ``cutoff`` (largest descriptor cutoff, Å), ``descriptors`` (descriptor strings), ``e0`` (eV per
    species), ``gap_version``.
    """

    def __init__(self, xml_path: str | pathlib.Path | None = None, extra_paths: Iterable = (), **kwargs):
        super().__init__(**kwargs)
        if xml_path is not None:
            self.set_files(xml_path, extra_paths)

    @classmethod
    def from_files(
        cls, xml_path: str | pathlib.Path, extra_paths: Iterable = (), **kwargs
    ) -> GapPotentialData:
        """Return a new (unstored) potential from the gap_fit XML and its sparseX files.

        The sparseX files the XML names are looked up next to the XML when not in ``extra_paths``;
        a missing one is an error, since the potential cannot be evaluated without it.
        """
        return cls(xml_path=xml_path, extra_paths=extra_paths, **kwargs)

    def set_files(self, xml_path: str | pathlib.Path, extra_paths: Iterable = ()) -> None:
        """Store the XML and sparseX files in the (unstored) node and set the attributes."""
        xml_path = pathlib.Path(xml_path)
        info = parse_gap_xml(xml_path.read_text())
        extra = {pathlib.Path(p).name: pathlib.Path(p) for p in extra_paths}
        for name in info['sparse_files']:
            if name not in extra:
                candidate = xml_path.parent / name
                if not candidate.is_file():
                    raise FileNotFoundError(f'sparseX file `{name}` named in {xml_path.name} not found')
                extra[name] = candidate
        self.base.repository.put_object_from_file(str(xml_path), xml_path.name)
        for name, path in extra.items():
            self.base.repository.put_object_from_file(str(path), name)
        self.base.attributes.set('xml_filename', xml_path.name)
        self.base.attributes.set('filenames', [xml_path.name, *sorted(extra)])
        for key in ('xml_label', 'init_args', 'species', 'cutoff', 'descriptors', 'e0', 'gap_version'):
            self.base.attributes.set(key, info[key])

    xml_filename = attribute('xml_filename', doc='Name of the XML file in the repository (str).')
    filenames = attribute('filenames', [], 'Names of all files, XML first (list of str).')
    xml_label = attribute('xml_label', doc='Label of the potential inside the XML (``GAP_...``).')
    species = attribute('species', [], 'Chemical symbols the potential knows (list of str).')
    cutoff = attribute('cutoff', doc='Largest descriptor cutoff in Å (float or None).')
    descriptors = attribute('descriptors', [], 'Descriptor strings as written in the XML (list of str).')

    def get_xml(self) -> str:
        """Return the content of the XML file."""
        return self.base.repository.get_object_content(self.xml_filename, mode='r')

    def export(self, folder: str | pathlib.Path, type_order: Sequence[str] | None = None) -> pathlib.Path:
        """Write the XML, its sparseX files and ``lammps_pair.in`` (for a LAMMPS with ML-QUIP) to ``folder``.

        :param type_order: element of each LAMMPS atom type (type 1 first); default: alphabetical, the order of
            the data files aiida-mlpot writes (see :meth:`lammps_pair_lines`).
        :return: path of the XML file in ``folder``.
        """
        folder = pathlib.Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        for name in self.filenames:
            with self.base.repository.open(name, 'rb') as source, open(folder / name, 'wb') as target:
                shutil.copyfileobj(source, target)
        (folder / 'lammps_pair.in').write_text(
            '\n'.join(self.lammps_pair_lines(type_order=type_order)) + '\n'
        )
        return folder / self.xml_filename

    def lammps_pair_lines(
        self, type_order: Sequence[str] | None = None, xml_path: str | None = None
    ) -> list[str]:
        """Return the ``pair_style quip`` / ``pair_coeff`` lines for a LAMMPS built with ML-QUIP.

        ``pair_coeff * * gap.xml "..." Z1 Z2 ...`` maps LAMMPS atom type k to the atomic number Zk, so the type
        order must be that of the data file the lines are used with. The default is the order of every data
        file aiida-mlpot writes (:func:`aiida_mlpot.potentials.classical.species_order`: alphabetical, so Cl is
        type 1 and Na type 2 for NaCl); a comment line names each type, so that a swap cannot go unnoticed.

        :param type_order: element of each LAMMPS atom type (type 1 first); default: alphabetical.
        """
        order = list(type_order) if type_order is not None else species_order(self.species)
        unknown = [symbol for symbol in order if symbol not in self.species]
        if unknown:
            raise ValueError(f'the potential knows {self.species}, not {unknown}')
        numbers = ' '.join(str(atomic_numbers[symbol]) for symbol in order)
        path = xml_path or self.xml_filename
        types = ', '.join(f'{index} = {symbol}' for index, symbol in enumerate(order, start=1))
        source = (
            'given' if type_order is not None else 'alphabetical, as in the data files aiida-mlpot writes'
        )
        return [
            f'# LAMMPS atom types: {types} ({source})',
            'pair_style quip',
            f'pair_coeff * * {path} "Potential xml_label={self.xml_label}" {numbers}',
        ]

    def get_calculator(self, **kwargs):
        """Return a quippy ``Potential`` ASE calculator for this GAP.

        ``kwargs`` go to :class:`quippy.potential.Potential` (e.g. ``calc_args='local_gap_variance'``).
        The files are written to a temporary folder that lives as long as the calculator.
        """
        from quippy.potential import Potential

        folder = tempfile.TemporaryDirectory(prefix='mlpot-gap-')
        xml_path = self.export(folder.name)
        kwargs.setdefault('param_filename', str(xml_path))
        calculator = Potential(**kwargs)
        calculator._mlpot_folder = folder  # keep the files for as long as quippy may read them
        return calculator
