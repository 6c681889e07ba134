"""Read an `ActiveLearningWorkChain` run from the provenance graph, finished or still running.

Everything here is a graph query on the run's called processes (call link labels ``sampling``, ``fit_initial``,
``iteration_NN_explore_<key>``, ``iteration_NN_plan``, ``_label``, ``_assess``, ``_grow``, ``_fit``; see
:func:`~aiida_mlpot.workflows.active_learning.call_label`) and their inputs and outputs:
nothing is read from the work chain's context, so it works through the daemon, while the run goes on, and
after a `verdi archive` round trip.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from aiida import orm
from aiida.common.links import LinkType

from aiida_mlpot.analysis.convergence import audit_pairs
from aiida_mlpot.calculations.functions.active_learning import learning_curve
from aiida_mlpot.workflows.active_learning import call_label

__all__ = (
    'ActiveLearningRun',
    'load_run',
)

#: ``process_type`` of the work chain (its entry point).
PROCESS_TYPE = 'aiida.workflows:mlpot.active_learning'
_EXPLORE = re.compile(r'^iteration_(\d+)_explore_(.+)$')


class NotAnActiveLearningRun(ValueError):
    """The node is not an `ActiveLearningWorkChain`."""


def load_run(identifier) -> ActiveLearningRun:
    """Return the run of ``identifier`` (PK, UUID or node) or raise :class:`NotAnActiveLearningRun`."""
    node = identifier if isinstance(identifier, orm.Node) else orm.load_node(identifier)
    if not isinstance(node, orm.WorkChainNode) or node.process_type != PROCESS_TYPE:
        kind = getattr(node, 'process_label', None) or type(node).__name__
        raise NotAnActiveLearningRun(f'node {node.pk} is a {kind}, not an ActiveLearningWorkChain')
    return ActiveLearningRun(node)


@dataclass
class ActiveLearningRun:
    """An `ActiveLearningWorkChain` node and its called processes, by call link label."""

    node: orm.WorkChainNode
    children: dict[str, orm.ProcessNode] = field(init=False)

    def __post_init__(self):
        self.refresh()

    def refresh(self) -> None:
        """Read the called processes again (a running work chain calls more)."""
        links = self.node.base.links.get_outgoing(link_type=(LinkType.CALL_CALC, LinkType.CALL_WORK)).all()
        children = {}
        for link in sorted(links, key=lambda link: link.node.pk):
            children[link.link_label] = link.node  # a label used twice: the latest call
        self.children = children

    # --- what the run did --------------------------------------------------------------------------------------
    def child(self, label: str) -> orm.ProcessNode | None:
        """Return the called process with call link ``label`` (None if it has not been called)."""
        return self.children.get(label)

    @property
    def iterations(self) -> list[int]:
        """Iterations whose exploration was launched, in order."""
        return sorted({int(match.group(1)) for label in self.children if (match := _EXPLORE.match(label))})

    def replicas(self, iteration: int) -> dict[str, orm.WorkChainNode]:
        """Exploration replicas (``MlMdWorkChain``) of ``iteration`` by state-point key."""
        found = {}
        for label, node in self.children.items():
            match = _EXPLORE.match(label)
            if match and int(match.group(1)) == iteration:
                found[match.group(2)] = node
        return dict(sorted(found.items()))

    def record(self, iteration: int) -> dict[str, orm.Node] | None:
        """Return the nodes the work chain hands to ``learning_curve`` for ``iteration`` (None if not assessed).

        The same nodes as its ``results`` step: ``decision`` (plan), ``verdict`` and ``audit`` (assess),
        ``metrics`` of the potential that explored (the fit before the iteration), ``train`` its training set.
        """
        plan, assess = self.child(call_label(iteration, 'plan')), self.child(call_label(iteration, 'assess'))
        fit = self.child(call_label(iteration - 1, 'fit'))
        if plan is None or assess is None or not assess.is_finished_ok or fit is None:
            return None
        if 'metrics' not in fit.outputs or 'verdict' not in assess.outputs:
            return None
        record = {
            'decision': plan.outputs.decision,
            'verdict': assess.outputs.verdict,
            'metrics': fit.outputs.metrics,
            'train': plan.inputs.training,
        }
        if 'audit' in assess.outputs:
            record['audit'] = assess.outputs.audit
        return record

    def curve_from_graph(self) -> dict:
        """Return the learning curve of the assessed iterations, computed from the graph.

        It runs the work chain's own ``learning_curve`` calcfunction on the same nodes without storing it, so
        the rows are those the ``learning_curve`` output has (or will have) for these iterations.
        """
        nodes = {}
        for iteration in self.iterations:
            record = self.record(iteration)
            if record is None:
                continue
            nodes.update({f'{name}_{iteration:02d}': node for name, node in record.items()})
        if not nodes:
            return {'iterations': [], 'units': {}}
        return learning_curve(metadata={'store_provenance': False}, **nodes).get_dict()

    def curve(self) -> tuple[dict, str]:
        """Return the learning curve and where it comes from: the ``learning_curve`` output, or the graph."""
        if 'learning_curve' in self.node.outputs:
            return self.node.outputs.learning_curve.get_dict(), 'learning_curve output'
        return self.curve_from_graph(), 'graph: the iterations assessed so far'

    def pending(self) -> dict | None:
        """Return the iteration under way (launched, not assessed) and the state of its replicas, or None."""
        for iteration in reversed(self.iterations):
            if self.record(iteration) is None:
                replicas = {}
                for key, node in self.replicas(iteration).items():
                    summary = node.outputs.summary.get_dict() if 'summary' in node.outputs else {}
                    replicas[key] = {
                        'state': node.process_state.value if node.process_state else 'created',
                        'outcome': summary.get('outcome'),
                        'steps': summary.get('steps_done'),
                    }
                return {'iteration': iteration, 'replicas': replicas}
            break
        return None

    def latest(self) -> tuple[str, orm.ProcessNode] | None:
        """Return the most recently called process and its call link label."""
        if not self.children:
            return None
        label = max(self.children, key=lambda name: self.children[name].pk)
        return label, self.children[label]

    # --- the final model ---------------------------------------------------------------------------------------
    def potential(self):
        """Return the final potential (output), or the latest fitted one while the run goes on (None if none)."""
        if 'potential' in self.node.outputs:
            return self.node.outputs.potential
        for fit in reversed(self.fits()):
            if 'potential' in fit.outputs:
                return fit.outputs.potential
        return None

    def fits(self) -> list[orm.WorkChainNode]:
        """Return the fits (``fit_initial``, ``iteration_NN_fit``) in the order they were called."""
        labels = [call_label(0, 'fit'), *(call_label(iteration, 'fit') for iteration in self.iterations)]
        return [self.children[label] for label in labels if label in self.children]

    def fit_of(self, potential) -> orm.WorkChainNode | None:
        """Return the ``GapFitWorkChain`` (a ``fit_initial`` or ``iteration_NN_fit`` child) that returned ``potential``."""
        for node in self.fits():
            if 'potential' in node.outputs and node.outputs.potential.pk == potential.pk:
                return node
        return None

    def explored_with(self, potential) -> list[int]:
        """Return the iterations whose replicas ran with ``potential``."""
        found = []
        for iteration in self.iterations:
            replicas = self.replicas(iteration).values()
            if any(node.inputs.md.potential.pk == potential.pk for node in replicas):
                found.append(iteration)
        return found

    def audit_frames(self, iteration: int) -> tuple[list, list]:
        """Return the audited frames of ``iteration``: the oracle's labels and the ML predictions, paired."""
        plan, labelling = (
            self.child(call_label(iteration, 'plan')),
            self.child(call_label(iteration, 'label')),
        )
        if (
            plan is None
            or labelling is None
            or 'to_label' not in plan.outputs
            or 'labelled' not in labelling.outputs
        ):
            return [], []
        return audit_pairs(plan.outputs.to_label.to_ase(), labelling.outputs.labelled.to_ase())

    # --- the MD ------------------------------------------------------------------------------------------------
    def sampling_frames(self, key: str) -> list:
        """Return the classical sampling frames of state point ``key`` (``T1400_V1``) from the pool."""
        pool = self.node.outputs.pool if 'pool' in self.node.outputs else None
        if pool is None:
            sampling = self.child('sampling')
            pool = sampling.outputs.pool if sampling is not None and 'pool' in sampling.outputs else None
        if pool is None:
            return []
        return [atoms for atoms in pool.to_ase() if str(atoms.info.get('config_type', '')) == key]
