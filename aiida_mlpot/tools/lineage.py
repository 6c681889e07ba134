"""Lineage of a potential: where every training configuration came from, from the provenance graph.

One row per configuration of the potential's training set: the MD calculation and frame it came from (LAMMPS
sampling or ML-MD CalcJob), the dataset it was selected from, the selection calcfunction that chose it
(``select_configurations`` for the initial set, ``plan_iteration`` for candidates of the active-learning loop,
or whatever process created the configurations that were labelled), the oracle calculation that labelled it
(CP2K or LAMMPS rerun CalcJob) and the iteration that added it (0 for the initial set).

Only graph queries: the ``lineage`` attribute of :class:`~aiida_mlpot.data.dataset.DatasetData` (UUIDs of the
MD run, the oracle and the pool, MD step, pool index, iteration; derived from the frames' info when a dataset
is made, so every calcfunction that carries the info carries it), the creator of the potential and of the
labelled configurations, and input links. No link label of a work chain is read, so it works for a potential
fitted by ``ActiveLearningWorkChain``, for one fitted stage by stage, for pools a user made from their own
frames, and after a ``verdi archive`` export and import (attributes and links travel with the nodes).
"""

from __future__ import annotations

from aiida import orm
from aiida.common.exceptions import NotExistent
from aiida.common.links import LinkType

from aiida_mlpot.calculations.functions.labelling import dataset_to_structures
from aiida_mlpot.data.dataset import DatasetData
from aiida_mlpot.data.potential import GapPotentialData

__all__ = ('ROW_FIELDS', 'dataset_lineage', 'lineage', 'resolve_potential', 'selection_of', 'training_set')

#: The keys of every row of :func:`lineage` (``None`` where the graph does not say).
ROW_FIELDS = {
    'index': 'index of the configuration in the training set',
    'iteration': 'active-learning iteration that added it (0: the initial set, or a potential fitted stage by stage)',
    'md_pk': 'PK of the MD calculation (LAMMPS sampling or ML-MD CalcJob) the configuration is a frame of',
    'md_uuid': 'its UUID (kept even when that node is not in this profile)',
    'md_process': 'its process label',
    'md_step': 'MD step of the frame',
    'md_dataset_pk': 'PK of the output DatasetData of that calculation holding the frame (the largest that has it)',
    'md_frame': 'index of the frame in that dataset',
    'pool_pk': 'PK of the DatasetData the configuration was selected from',
    'pool_uuid': 'its UUID',
    'pool_index': 'index of the configuration in it',
    'pool_origin': "process label of the pool's creator, or `user dataset` for a dataset made outside a process",
    'selection_pk': 'PK of the process that chose the configuration for labelling',
    'selection_process': 'its process label (select_configurations, plan_iteration, ...)',
    'oracle_pk': 'PK of the calculation that labelled it (CP2K or LAMMPS rerun CalcJob)',
    'oracle_uuid': 'its UUID',
    'oracle_process': 'its process label',
}
#: ``pool_origin`` of a dataset that no process created (made by a user from their own frames).
USER_DATASET = 'user dataset'
#: The process type of the calcfunction that splits a dataset into one StructureData per configuration.
_CONVERSION = dataset_to_structures.process_class.build_process_type()


def resolve_potential(node: orm.Node) -> GapPotentialData:
    """Return the potential ``node`` is, or the one potential a process (e.g. a finished loop) returned.

    A process that returned several (a loop with ``random_baseline``) gives the one of its output ``potential``.

    :raises ValueError: ``node`` is neither, or the process returned no potential, or several and none as
        ``potential``.
    """
    if isinstance(node, GapPotentialData):
        return node
    if isinstance(node, orm.ProcessNode):
        links = node.base.links.get_outgoing(
            node_class=GapPotentialData, link_type=(LinkType.RETURN, LinkType.CREATE)
        ).all()
        potentials = {link.node.pk: link.node for link in links}
        if len(potentials) == 1:
            return next(iter(potentials.values()))
        # A loop with a random baseline returns two: its own is the one under the output port `potential`.
        main = [link.node for link in links if link.link_label == 'potential']
        if len(main) == 1:
            return main[0]
        raise ValueError(
            f'{node.process_label}<{node.pk}> has {len(potentials)} GapPotentialData outputs; give the PK of one'
        )
    raise ValueError(f'node<{node.pk}> is a {type(node).__name__}, not a GapPotentialData or a process')


def training_set(potential: GapPotentialData) -> DatasetData:
    """Return the dataset the potential was fitted to: the DatasetData input of the calculation that made it.

    :raises ValueError: the potential has no creator (made outside a calculation) or it had no dataset input.
    """
    creator = potential.creator
    if creator is None:
        raise ValueError(f'GapPotentialData<{potential.pk}> was not made by a calculation: no training set')
    datasets = {
        link.node.pk: link.node
        for link in creator.base.links.get_incoming(
            node_class=DatasetData, link_type=LinkType.INPUT_CALC
        ).all()
    }
    if len(datasets) != 1:
        raise ValueError(
            f'{creator.process_label}<{creator.pk}> has {len(datasets)} DatasetData inputs, not one'
        )
    return next(iter(datasets.values()))


def selection_of(oracle: orm.ProcessNode) -> orm.ProcessNode | None:
    """Return the process that created the configurations ``oracle`` labelled (the selection), or ``None``.

    The labelled inputs are StructureData or DatasetData; a StructureData made by ``dataset_to_structures``
    stands for the dataset it was split from. ``None`` if the inputs were stored by a user (no creator) or come
    from several processes.
    """
    creators = {}
    for link in oracle.base.links.get_incoming(link_type=LinkType.INPUT_CALC).all():
        node = link.node
        if not isinstance(node, orm.StructureData | DatasetData) or node.creator is None:
            continue
        creator = node.creator
        if creator.process_type == _CONVERSION:
            sources = creator.base.links.get_incoming(
                node_class=DatasetData, link_type=LinkType.INPUT_CALC
            ).all()
            creator = sources[0].node.creator if len(sources) == 1 else None
        if creator is not None:
            creators[creator.pk] = creator
    return next(iter(creators.values())) if len(creators) == 1 else None


class _Graph:
    """Nodes loaded once per UUID, and the per-node answers derived from them."""

    def __init__(self):
        self.nodes: dict[str, orm.Node | None] = {}
        self.frames: dict[str, dict[int, tuple[int, int]]] = {}
        self.selections: dict[str, orm.ProcessNode | None] = {}

    def node(self, uuid: str | None) -> orm.Node | None:
        if uuid is None:
            return None
        if uuid not in self.nodes:
            try:
                self.nodes[uuid] = orm.load_node(uuid)
            except NotExistent:
                self.nodes[uuid] = None
        return self.nodes[uuid]

    def frame(self, md: orm.Node, step: int | None) -> tuple[int | None, int | None]:
        """Return ``(PK of an output dataset of md, index)`` of the frame at ``step``, or ``(None, None)``.

        Among the output datasets of ``md`` holding its frames (e.g. the trajectory and the flagged frames of an
        ML-MD run, which may be scored between two dumps), the largest that has the step.
        """
        if step is None:
            return None, None
        if md.uuid not in self.frames:
            found: dict[int, tuple[int, int]] = {}
            links = md.base.links.get_outgoing(node_class=DatasetData, link_type=LinkType.CREATE).all()
            for dataset in sorted((link.node for link in links), key=lambda node: (len(node), -node.pk)):
                for index, row in enumerate(dataset.lineage):
                    if row.get('md_uuid') == md.uuid and 'md_step' in row:
                        found[int(row['md_step'])] = (dataset.pk, index)  # the larger dataset wins
            self.frames[md.uuid] = found
        return self.frames[md.uuid].get(int(step), (None, None))

    def selection(self, oracle: orm.ProcessNode) -> orm.ProcessNode | None:
        if oracle.uuid not in self.selections:
            self.selections[oracle.uuid] = selection_of(oracle)
        return self.selections[oracle.uuid]


def _label(node: orm.Node | None) -> str | None:
    if node is None:
        return None
    return node.process_label if isinstance(node, orm.ProcessNode) else type(node).__name__


def dataset_lineage(dataset: DatasetData) -> list[dict]:
    """Return one row (keys :data:`ROW_FIELDS`) per configuration of ``dataset``, from its ``lineage``."""
    graph = _Graph()
    rows = []
    for index, entry in enumerate(dataset.lineage):
        row = dict.fromkeys(ROW_FIELDS)
        row['index'] = index
        row['iteration'] = int(entry.get('iteration', 0))
        md = graph.node(entry.get('md_uuid'))
        row['md_uuid'] = entry.get('md_uuid')
        row['md_step'] = entry.get('md_step')
        if md is not None:
            row.update(md_pk=md.pk, md_process=_label(md))
            row['md_dataset_pk'], row['md_frame'] = graph.frame(md, entry.get('md_step'))
        pool = graph.node(entry.get('pool_uuid'))
        row['pool_uuid'] = entry.get('pool_uuid')
        row['pool_index'] = entry.get('pool_index')
        if pool is not None:
            row['pool_pk'] = pool.pk
            row['pool_origin'] = _label(pool.creator) if pool.creator is not None else USER_DATASET
        oracle = graph.node(entry.get('oracle_uuid'))
        row['oracle_uuid'] = entry.get('oracle_uuid')
        if isinstance(oracle, orm.ProcessNode):
            row.update(oracle_pk=oracle.pk, oracle_process=_label(oracle))
            selection = graph.selection(oracle)
            if selection is not None:
                row.update(selection_pk=selection.pk, selection_process=_label(selection))
        rows.append(row)
    return rows


def lineage(potential: orm.Node) -> list[dict]:
    """Return one row per training configuration of ``potential`` (keys :data:`ROW_FIELDS`, ``None`` unknown).

    :param potential: a :class:`GapPotentialData`, or a process that returned one (e.g. an
        ``ActiveLearningWorkChain``): see :func:`resolve_potential`.
    :raises ValueError: no potential, or no training set in the graph (:func:`training_set`).
    """
    return dataset_lineage(training_set(resolve_potential(potential)))
