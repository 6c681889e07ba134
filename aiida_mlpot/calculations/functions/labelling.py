"""Calcfunctions of the labelling stage: a dataset split into one structure per configuration, and the merge of
per-configuration oracle results into one labelled dataset with the outlier guard (provenance of every label)."""

from __future__ import annotations

import numpy as np
from aiida import orm
from aiida.engine import calcfunction

from aiida_mlpot.analysis.outliers import DEFAULT_GUARD, find_outliers
from aiida_mlpot.data.dataset import DatasetData

__all__ = ('collect_labels', 'config_key', 'dataset_to_structures')

#: Label info keys never copied from a source frame (they are replaced by the oracle's labels).
_LABEL_KEYS = ('energy', 'virial', 'stress', 'free_energy', 'source_uuid', 'label_key')


def config_key(index: int) -> str:
    """Return the key of configuration ``index`` (``config_00000``, ...), as the labelling stage names them."""
    return f'config_{index:05d}'


@calcfunction
def dataset_to_structures(dataset: DatasetData) -> dict:
    """Return one ``StructureData`` per configuration of ``dataset``, keyed ``config_00000``, ...

    :param dataset: configurations (labels, if any, are ignored).
    """
    return {config_key(i): orm.StructureData(ase=atoms) for i, atoms in enumerate(dataset.to_ase())}


def _info_from_creator(structure: orm.StructureData, cache: dict) -> dict:
    """Return the free-form info (``config_type``, ``pool_index``, ...) of the frame a structure was made from.

    A structure returned by a selection calcfunction as ``structures__<key>`` next to a ``selected``
    DatasetData (``aiida_mlpot.calculations.functions.selection.select_configurations``) is frame ``k`` of
    that dataset, ``k`` being the position of ``<key>`` among the sorted keys. Anything else has no info.
    ``cache`` maps a creator's pk to its frames, so each dataset is read once.
    """
    from aiida.common.links import LinkType

    creator = structure.creator
    if creator is None or 'selected' not in creator.outputs:
        return {}
    links = creator.base.links.get_outgoing(link_type=LinkType.CREATE).all()
    keys = sorted(link.link_label for link in links if link.link_label.startswith('structures__'))
    mine = [link.link_label for link in links if link.node.pk == structure.pk]
    if not mine or mine[0] not in keys:
        return {}
    if creator.pk not in cache:
        cache[creator.pk] = creator.outputs.selected.to_ase()
    frames = cache[creator.pk]
    if len(frames) != len(keys):
        return {}
    info = dict(frames[keys.index(mine[0])].info)
    if 'source_uuid' in info:
        info['parent_source_uuid'] = info.pop('source_uuid')
    return info


@calcfunction
def collect_labels(guard: orm.Dict, report: orm.Dict, **kwargs) -> dict:
    """Merge per-configuration oracle results into one labelled ``DatasetData``, applying the outlier guard.

    :param guard: outlier-guard settings (see :data:`aiida_mlpot.analysis.outliers.DEFAULT_GUARD`).
    :param report: ``{'failures': {key: reason}, 'retried': [keys]}`` from the work chain.
    :param kwargs: ``structure_<key>`` (StructureData, every configuration), ``result_<key>`` (Dict, the
        ``output_parameters`` of the CP2K calculation that labelled it), optionally ``rerun`` (DatasetData of
        the classical oracle, frames with ``info['label_key']``) and ``source`` (the input DatasetData whose
        free-form info such as ``config_type`` is carried over).
    :return: ``labelled`` (DatasetData, sorted keys; absent if nothing was labelled), ``excluded`` (Dict
        key -> reason) and ``counts`` (Dict).
    """
    guard_options = {**DEFAULT_GUARD, **guard.get_dict()}
    failures = dict(report.get_dict().get('failures', {}))
    structures = {k[len('structure_') :]: v for k, v in kwargs.items() if k.startswith('structure_')}
    results = {k[len('result_') :]: v for k, v in kwargs.items() if k.startswith('result_')}
    source_frames = kwargs['source'].to_ase() if 'source' in kwargs else None
    rerun = {}
    if 'rerun' in kwargs:
        rerun_uuid = kwargs['rerun'].creator.uuid if kwargs['rerun'].creator else None
        for atoms in kwargs['rerun'].to_ase():
            atoms.info.setdefault('source_uuid', rerun_uuid)
            rerun[str(atoms.info['label_key'])] = atoms

    excluded: dict[str, str] = {}
    candidates: list[tuple[str, object]] = []
    creator_frames: dict[int, list] = {}
    for key in sorted(structures):
        if key in failures:
            excluded[key] = failures[key]
            continue
        atoms = structures[key].get_ase()
        if source_frames is not None and key.startswith('config_'):
            info = source_frames[int(key.split('_')[-1])].info
        else:
            info = _info_from_creator(structures[key], creator_frames)
        for name, value in info.items():
            if name not in _LABEL_KEYS:
                atoms.info[name] = value
        if key in results:
            values = results[key].get_dict()
            atoms.info['energy'] = float(values['energy'])
            atoms.arrays['forces'] = np.array(values['forces'], dtype=float)
            if values.get('virial') is not None:
                atoms.info['virial'] = np.array(values['virial'], dtype=float)
            atoms.info['source_uuid'] = results[key].creator.uuid
        elif key in rerun:
            labelled = rerun[key]
            if not np.allclose(labelled.positions, atoms.positions, atol=1e-5):
                excluded[key] = 'the classical oracle returned other positions for this configuration'
                continue
            atoms.info['energy'] = float(labelled.info['energy'])
            atoms.arrays['forces'] = np.array(labelled.arrays['forces'], dtype=float)
            if 'virial' in labelled.info:
                atoms.info['virial'] = np.array(labelled.info['virial'], dtype=float)
            if 'energies' in labelled.arrays:
                atoms.arrays['energies'] = np.array(labelled.arrays['energies'], dtype=float)
            atoms.info['source_uuid'] = labelled.info['source_uuid']
        else:
            excluded[key] = 'no label was produced for this configuration'
            continue
        atoms.info['label_key'] = key
        candidates.append((key, atoms))

    outliers = find_outliers([atoms for _, atoms in candidates], **guard_options)
    frames = []
    for index, (key, atoms) in enumerate(candidates):
        if index in outliers:
            excluded[key] = f'outlier guard: {outliers[index]}'
        else:
            frames.append(atoms)

    n_input = len(structures)
    counts = {
        'n_input': n_input,
        'n_labelled': len(frames),
        'n_excluded': len(excluded),
        'n_oracle_failures': sum(1 for k in failures if k in structures),
        'n_outliers': len(outliers),
        'n_retried': len(report.get_dict().get('retried', [])),
        'success_fraction': len(frames) / n_input if n_input else 0.0,
    }
    outputs = {'excluded': orm.Dict(dict(sorted(excluded.items()))), 'counts': orm.Dict(counts)}
    if frames:
        outputs['labelled'] = DatasetData.from_ase(frames)
    return outputs
