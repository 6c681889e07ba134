"""Calcfunctions that select configurations from a pool and split datasets, with provenance.

The algorithms live in :mod:`aiida_mlpot.selection` (pure, no AiiDA); these wrappers only convert nodes.
"""

from __future__ import annotations

from aiida import orm
from aiida.engine import ExitCode, calcfunction

from aiida_mlpot.calculations.functions.exit_codes import calcfunction_exit
from aiida_mlpot.common.keys import config_key
from aiida_mlpot.data.dataset import DatasetData
from aiida_mlpot.selection import (
    EmptyPoolError,
    MissingPropertyError,
    SelectionError,
    TooFewConfigurationsError,
    run_selection,
    split_indices,
    validate_selection_spec,
    validate_split_spec,
)

__all__ = ('EXIT_CODES', 'select_configurations', 'split_dataset')

#: Exit codes of the calcfunctions (label: (status, message)); calcfunctions cannot declare them in a spec.
EXIT_CODES = {
    'ERROR_INVALID_SPEC': (201, 'the spec is invalid: {message}'),
    'ERROR_EMPTY_POOL': (202, 'the input dataset is empty: {message}'),
    'ERROR_TOO_FEW_CONFIGURATIONS': (203, 'the input dataset holds too few configurations: {message}'),
    'ERROR_MISSING_PROPERTY': (204, 'the input dataset lacks a property the method needs: {message}'),
    'ERROR_SELECTION_FAILED': (205, 'the selection failed: {message}'),
}


def _exit_for(exception: SelectionError) -> ExitCode:
    if isinstance(exception, EmptyPoolError):
        return calcfunction_exit(EXIT_CODES, 'ERROR_EMPTY_POOL', message=str(exception))
    if isinstance(exception, TooFewConfigurationsError):
        return calcfunction_exit(EXIT_CODES, 'ERROR_TOO_FEW_CONFIGURATIONS', message=str(exception))
    if isinstance(exception, MissingPropertyError):
        return calcfunction_exit(EXIT_CODES, 'ERROR_MISSING_PROPERTY', message=str(exception))
    return calcfunction_exit(EXIT_CODES, 'ERROR_SELECTION_FAILED', message=str(exception))


def _allow_partial(dataset: DatasetData) -> bool:
    return bool(dataset.base.attributes.get('partial_properties', []))


@calcfunction
def select_configurations(pool: DatasetData, spec: orm.Dict) -> dict:
    """Select configurations of ``pool`` to label, in steps (e.g. ``uniform_force`` then ``fps``).

    :param pool: the candidate configurations, labelled with what the methods need (``energy``,
        ``forces``, per-atom ``energies``).
    :param spec: ``{'seed': int, 'allow_fewer': bool, 'steps': [{'method': ..., 'n': ..., ...}, ...]}``; see
        :mod:`aiida_mlpot.selection.compose`.
    :return: ``selected`` (DatasetData of the selected configurations, in pool order; each frame keeps its
        info, e.g. ``source_uuid`` and ``step``, and gets ``pool_index`` and ``pool_uuid``, which are also its
        ``pool_index``/``pool_uuid`` in the ``lineage`` attribute of the dataset; docs/lineage.md), ``structures``
        (namespace of one StructureData per selected configuration, ``config_00000`` being frame 0 of
        ``selected``), and ``record`` (Dict: seed, pool size, and per step the method, n, seed and the pool
        indices it kept).
    """
    spec_dict = spec.get_dict()
    message = validate_selection_spec(spec_dict)
    if message:
        return calcfunction_exit(EXIT_CODES, 'ERROR_INVALID_SPEC', message=message)
    frames = pool.to_ase()
    try:
        result = run_selection(frames, spec_dict)
    except SelectionError as exception:
        return _exit_for(exception)

    selected_frames = []
    structures = {}
    for k, index in enumerate(result.indices):
        atoms = frames[int(index)]
        atoms.info['pool_index'] = int(index)
        atoms.info['pool_uuid'] = pool.uuid
        selected_frames.append(atoms)
        structure = orm.StructureData(ase=atoms)
        structure.label = config_key(k)
        details = ', '.join(
            f'{key}={atoms.info[key]}' for key in ('source_uuid', 'step', 'config_type') if key in atoms.info
        )
        structure.description = f'pool configuration {int(index)} of DatasetData {pool.uuid}' + (
            f' ({details})' if details else ''
        )
        structures[config_key(k)] = structure

    record = {
        'seed': spec_dict.get('seed'),
        'n_pool': len(frames),
        'n_selected': len(result.indices),
        'pool_indices': [int(i) for i in result.indices],
        'steps': result.steps,
    }
    return {
        'selected': DatasetData.from_ase(selected_frames, allow_partial=_allow_partial(pool)),
        'structures': structures,
        'record': orm.Dict(record),
    }


@calcfunction
def split_dataset(dataset: DatasetData, spec: orm.Dict) -> dict:
    """Split ``dataset`` into a training and a test set, at random or by ``config_type``.

    :param dataset: the labelled configurations.
    :param spec: ``{'method': 'random', 'test_fraction': 0.1, 'seed': 1}`` (or ``'n_test'``) or
        ``{'method': 'config_type', 'test_config_types': ['T1400']}``.
    :return: ``train`` and ``test`` (DatasetData, both non-empty, in dataset order; each frame gets
        ``info['split_index']``, its index in ``dataset``).
    """
    spec_dict = spec.get_dict()
    message = validate_split_spec(spec_dict)
    if message:
        return calcfunction_exit(EXIT_CODES, 'ERROR_INVALID_SPEC', message=message)
    frames = dataset.to_ase()
    config_types = [str(atoms.info.get('config_type', '')) for atoms in frames]
    try:
        train, test = split_indices(spec_dict, len(frames), config_types)
    except SelectionError as exception:
        return _exit_for(exception)
    for index, atoms in enumerate(frames):
        atoms.info['split_index'] = index
    partial = _allow_partial(dataset)
    return {
        'train': DatasetData.from_ase([frames[i] for i in train], allow_partial=partial),
        'test': DatasetData.from_ase([frames[i] for i in test], allow_partial=partial),
    }
