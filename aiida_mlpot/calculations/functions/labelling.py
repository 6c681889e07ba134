"""Calcfunctions of the labelling stage: a dataset split into one structure per configuration, the CP2K
basis/pseudopotential entries the elements need, and the merge of per-configuration oracle results into one
labelled dataset with the outlier guard (provenance of every label)."""

from __future__ import annotations

import numpy as np
from aiida import orm
from aiida.engine import calcfunction

from aiida_mlpot.analysis.outliers import DEFAULT_GUARD, find_outliers
from aiida_mlpot.calculations.functions.exit_codes import calcfunction_exit
from aiida_mlpot.common.keys import config_index, config_key
from aiida_mlpot.data.dataset import DatasetData
from aiida_mlpot.data.extxyz import md_source
from aiida_mlpot.inputs import cp2k as cp2k_inputs

__all__ = ('EXIT_CODES', 'collect_labels', 'cp2k_data_files', 'dataset_to_structures')

#: Exit codes of the calcfunctions (label: (status, message)); calcfunctions cannot declare them in a spec.
EXIT_CODES = {
    'ERROR_INVALID_CP2K_SETTINGS': (201, 'the CP2K settings are invalid: {message}'),
    'ERROR_MISSING_CP2K_DATA': (202, 'the CP2K data files lack what the settings name: {message}'),
}

#: Label info keys never copied from a source frame (they are replaced by the oracle's labels).
_LABEL_KEYS = ('energy', 'virial', 'stress', 'free_energy', 'source_uuid', 'label_key')


@calcfunction
def dataset_to_structures(dataset: DatasetData) -> dict:
    """Return one ``StructureData`` per configuration of ``dataset``, keyed ``config_00000``, ...

    :param dataset: configurations (labels, if any, are ignored).
    """
    return {config_key(i): orm.StructureData(ase=atoms) for i, atoms in enumerate(dataset.to_ase())}


@calcfunction
def cp2k_data_files(settings: orm.Dict, elements: orm.List) -> dict:
    """Return the entries of CP2K's basis and pseudopotential files that ``elements`` need, as two files.

    Reads ``data_dir``/``basis_file`` and ``data_dir``/``potential_file`` of the settings on the machine that
    runs it (the AiiDA daemon's; Debian ``cp2k-data`` by default), so the exact data a label was computed with
    are nodes of the graph. Only for ``method: dft``.

    :param settings: the CP2K settings of :mod:`aiida_mlpot.inputs.cp2k` (``data_dir``, ``basis_file``,
        ``potential_file``, ``basis``, ``pseudo`` are read).
    :param elements: the chemical symbols to cover.
    :return: ``basis`` and ``potential`` (SinglefileData named ``BASIS_MLPOT`` / ``POTENTIAL_MLPOT``, as the
        CP2K input refers to them); exit code 201 for settings that are not ``dft`` or invalid, 202 for a
        missing file or entry (the message names them).
    """
    values = settings.get_dict()
    message = cp2k_inputs.validate_settings(values)
    if message is None and values['method'] != 'dft':
        message = f'data files are only needed by `dft`, not `{values["method"]}`'
    if message:
        return calcfunction_exit(EXIT_CODES, 'ERROR_INVALID_CP2K_SETTINGS', message=message)
    symbols = sorted(set(elements.get_list()))
    message = cp2k_inputs.check_data_files(values, symbols)
    if message:
        return calcfunction_exit(EXIT_CODES, 'ERROR_MISSING_CP2K_DATA', message=message)
    files = cp2k_inputs.extract_data_files(values, symbols)
    return {
        'basis': orm.SinglefileData.from_string(
            files[cp2k_inputs.BASIS_FILE], filename=cp2k_inputs.BASIS_FILE
        ),
        'potential': orm.SinglefileData.from_string(
            files[cp2k_inputs.POTENTIAL_FILE], filename=cp2k_inputs.POTENTIAL_FILE
        ),
    }


def _frame_info(atoms) -> dict:
    """Return the free-form info of a source frame to carry over, with the MD calculation it came from as
    ``parent_source_uuid`` (its ``source_uuid``, or its own ``parent_source_uuid`` if an oracle labelled it
    before: :func:`aiida_mlpot.data.extxyz.md_source`)."""
    info = {
        name: value for name, value in atoms.info.items() if name not in (*_LABEL_KEYS, 'parent_source_uuid')
    }
    md_uuid = md_source(atoms.info)
    if md_uuid is not None:
        info['parent_source_uuid'] = md_uuid
    return info


@calcfunction
def collect_labels(guard: orm.Dict, report: orm.Dict, **kwargs) -> dict:
    """Merge per-configuration oracle results into one labelled ``DatasetData``, applying the outlier guard.

    :param guard: outlier-guard settings (see :data:`aiida_mlpot.analysis.outliers.DEFAULT_GUARD`).
    :param report: ``{'failures': {key: reason}, 'retried': [keys]}`` from the work chain.
    :param kwargs: ``structure_<key>`` (StructureData, every configuration), ``result_<key>`` (Dict, the
        ``output_parameters`` of the CP2K calculation that labelled it), optionally ``rerun`` (DatasetData of
        the classical oracle, frames with ``info['label_key']``) and ``source`` (the DatasetData the structures
        were split from by :func:`dataset_to_structures`, e.g. the ``selected`` output of a selection: the
        free-form info of frame ``config_index(key)``, such as ``config_type`` and ``pool_index``, is carried
        over, the MD calculation it came from as ``parent_source_uuid``). Without ``source`` no info is carried
        over. The labelled frames record the calculation that labelled them in ``source_uuid``, which with
        ``parent_source_uuid``, ``step``, ``pool_uuid``/``pool_index`` and ``al_iteration`` is the
        per-configuration lineage of the ``labelled`` dataset (attribute ``lineage``).
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
    for key in sorted(structures):
        if key in failures:
            excluded[key] = failures[key]
            continue
        atoms = structures[key].get_ase()
        index = config_index(key) if source_frames is not None else None
        if index is not None and index < len(source_frames):
            atoms.info.update(_frame_info(source_frames[index]))
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
