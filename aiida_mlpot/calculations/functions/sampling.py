"""Calcfunctions of the sampling stage: the merge of the state points' MD frames into one pool."""

from __future__ import annotations

from aiida.engine import calcfunction

from aiida_mlpot.data.dataset import DatasetData

__all__ = ('merge_state_point_pools',)


@calcfunction
def merge_state_point_pools(**datasets: DatasetData) -> DatasetData:
    """Merge the frames of every state point into one pool; ``config_type`` of each frame is its state point.

    :param datasets: the ``dataset`` output of each state point's MD run, keyed by the state point label.
    :return: the pool, frames in the order of the state points and, within each, of the MD steps; every frame
        keeps ``source_uuid`` (the MD calculation) and ``step``.
    """
    frames = []
    for key, dataset in datasets.items():
        for atoms in dataset.to_ase():
            atoms.info['config_type'] = key
            frames.append(atoms)
    return DatasetData.from_ase(frames)
