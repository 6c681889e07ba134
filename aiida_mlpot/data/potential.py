"""`GapPotentialData`: a fitted Gaussian Approximation Potential (the gap_fit XML and its sparseX files)."""

from __future__ import annotations

import pathlib
import re
import shutil
import tempfile
import xml.etree.ElementTree as ET
from collections.abc import Iterable, Sequence

from aiida.orm import Data
from ase.data import atomic_numbers, chemical_symbols

__all__ = ('GapPotentialData', 'parse_gap_xml')


def parse_gap_xml(text: str) -> dict:
    """Return what a gap_fit XML declares: label, species, descriptors, cutoff, sparseX files, e0.

    Pure function (no AiiDA): ``text`` is the content of the XML written by ``gap_fit``.
    """
    try:
        root = ET.fromstring(text)
    except ET.ParseError as exc:
        raise ValueError(f'not a valid GAP XML file: {exc}') from exc
    gap_params = root.find('.//GAP_params')
    if gap_params is None:
        raise ValueError('not a GAP XML file: no <GAP_params> element')
    potential = root.find('Potential')
    xml_label = potential.get('label') if potential is not None else gap_params.get('label')
    init_args = potential.get('init_args') if potential is not None else f'IP GAP label={xml_label}'
    descriptors = [(node.text or '').strip() for node in root.iter('descriptor')]
    cutoffs = []
    for descriptor in descriptors:
        match = re.search(r'(?<![_\w])cutoff\s*=\s*([0-9.eEdD+-]+)', descriptor)
        if match:
            cutoffs.append(float(match.group(1).replace('d', 'e').replace('D', 'e')))
    numbers: list[int] = []
    for descriptor in descriptors:
        found = re.findall(r'\b(?:Z|Z1|Z2)\s*=\s*(\d+)', descriptor)
        for group in re.findall(r'species_Z\s*=\s*\{([^}]*)\}', descriptor):
            found += group.split()
        numbers += [int(z) for z in found if int(z) not in numbers]
        numbers = list(dict.fromkeys(numbers))
    e0 = {
        chemical_symbols[int(node.get('Z'))]: float(node.get('value'))
        for node in root.iter('e0')
        if int(node.get('Z')) in numbers
    }
    sparse_files = [node.get('sparseX_filename') for node in root.iter('gpCoordinates')]
    return {
        'xml_label': xml_label,
        'init_args': init_args,
        'descriptors': descriptors,
        'cutoff': max(cutoffs) if cutoffs else None,
        'species': [chemical_symbols[z] for z in numbers],
        'e0': e0,
        'sparse_files': [name for name in sparse_files if name],
        'gap_version': gap_params.get('gap_version'),
    }


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

    @property
    def xml_filename(self) -> str:
        """Name of the XML file in the repository."""
        return self.base.attributes.get('xml_filename')

    @property
    def filenames(self) -> list[str]:
        """Names of all files (XML first)."""
        return self.base.attributes.get('filenames', [])

    @property
    def xml_label(self) -> str:
        """Label of the potential inside the XML (``GAP_...``)."""
        return self.base.attributes.get('xml_label')

    @property
    def species(self) -> list[str]:
        """Chemical symbols the potential knows."""
        return self.base.attributes.get('species', [])

    @property
    def cutoff(self) -> float | None:
        """Largest descriptor cutoff in Å."""
        return self.base.attributes.get('cutoff')

    @property
    def descriptors(self) -> list[str]:
        """Descriptor strings as written in the XML."""
        return self.base.attributes.get('descriptors', [])

    def get_xml(self) -> str:
        """Return the content of the XML file."""
        return self.base.repository.get_object_content(self.xml_filename, mode='r')

    def export(self, folder: str | pathlib.Path, type_order: Sequence[str] | None = None) -> pathlib.Path:
        """Write the XML, its sparseX files and ``lammps_pair.in`` (for a LAMMPS with ML-QUIP) to ``folder``.

        :param type_order: element of each LAMMPS atom type (type 1 first); default: ``species``.
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
        """Return the ``pair_style quip`` / ``pair_coeff`` lines for a LAMMPS built with ML-QUIP."""
        order = list(type_order) if type_order is not None else self.species
        unknown = [symbol for symbol in order if symbol not in self.species]
        if unknown:
            raise ValueError(f'the potential knows {self.species}, not {unknown}')
        numbers = ' '.join(str(atomic_numbers[symbol]) for symbol in order)
        path = xml_path or self.xml_filename
        return ['pair_style quip', f'pair_coeff * * {path} "Potential xml_label={self.xml_label}" {numbers}']

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
