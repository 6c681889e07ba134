"""Calcfunctions of the sampling stage: the pool of the state points' MD frames, the list of failed ones."""

from __future__ import annotations

from aiida import orm
from aiida.engine import calcfunction

from aiida_mlpot.data.dataset import DatasetData
from aiida_mlpot.inputs.sampling import state_point_key

__all__ = ('collect_failed_state_points', 'merge_state_point_pools')


@calcfunction
def merge_state_point_pools(**datasets: DatasetData) -> DatasetData:
    """Merge the frames of every state point into one pool; ``config_type`` of each frame is its state point.

    :param datasets: the ``dataset`` output of each state point's MD run, keyed by the state point label.
    :return: the pool, frames in the order of the state points and, within each, of the MD steps; every frame
        keeps ``source_uuid`` (the MD calculation) and ``step``: ``md_uuid`` and ``md_step`` of the pool's
        ``lineage`` attribute (docs/lineage.md).
    """
    frames = []
    for key, dataset in datasets.items():
        for atoms in dataset.to_ase():
            atoms.info['config_type'] = key
            frames.append(atoms)
    return DatasetData.from_ase(frames)


@calcfunction
def collect_failed_state_points(state_points: orm.List, failures: orm.Dict) -> orm.Dict:
    """Return ``{state point key: reason}`` of the failed state points, in the order of ``state_points``.

    :param state_points: the state points of the sampling run (its ``state_points`` input).
    :param failures: ``{state point key: reason}`` of the MD runs that did not finish ok (empty if none).
    :return: the failures, ordered like the state points; empty when every state point succeeded.
    :raises ValueError: if a key of ``failures`` is not the key of one of the ``state_points``.
    """
    reasons = failures.get_dict()
    keys = [state_point_key(point) for point in state_points.get_list()]
    unknown = sorted(set(reasons) - set(keys))
    if unknown:
        raise ValueError(f'failures of unknown state points: {unknown}')
    return orm.Dict({key: str(reasons[key]) for key in keys if key in reasons})
