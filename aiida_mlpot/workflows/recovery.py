"""`RecoveryMixin`: what a work chain continued from its checkpoint by a new daemon worker sets right.

A daemon worker that dies (SIGKILL, a lost node) leaves each work chain it ran at its last checkpoint, the one
saved when the work chain entered the step it was in; the worker that continues it runs that step again. Two
things the dead worker was doing in that step are left half done, and aiida-core 2.9.4 sets neither right:

* **A process function called by the step** (every calcfunction of this package runs inline, in the worker of
  its work chain) stays ``running`` for ever, and the rerun step calls it anew. On load from the checkpoint, each
  process function the work chain called that has not terminated is marked ``killed``, with a process status
  saying why: nothing can still run it. Seen in a run of ``.ci/run``: a ``collect_labels`` of the
  scale-out labelling crash test, killed while its ``LabellingWorkChain`` ran it, stayed ``running``.
* **The outputs of a finishing work chain**: some or all of them are linked to the node, its process state is
  unchanged. aiida-core's ``BaseRestartWorkChain._attach_outputs`` skips an output already linked, so the
  continued process does not hold it, its output validation fails and it finishes with ``ERROR_MISSING_OUTPUT``
  (11) although every output is on the node. Seen in CI: a ``Cp2kLabelWorkChain`` of the scale-out crash test
  finished with 11, its ``Cp2kCalculation`` ok. Before the outputs are validated, each output linked to the node
  that the process does not hold is taken back; nothing is linked twice (aiida-core's ``update_outputs`` links
  only labels the node does not have).

Both are reproduced step by step in tests/workflows/test_recovery.py. The first assumes what the daemon
guarantees when its broker is healthy: a work chain is loaded from its checkpoint only when no live worker runs it
(RabbitMQ hands its task to one consumer at a time; a worker whose connection was dropped while alive is
aiida-core's duplicate-run problem, which no plugin can repair).
"""

from __future__ import annotations

from aiida import orm
from aiida.common.links import LinkType
from aiida.engine.processes.ports import PORT_NAMESPACE_SEPARATOR
from plumpy.process_states import ProcessState

__all__ = ('RecoveryMixin',)


class RecoveryMixin:
    """Set right what a dead daemon worker left half done in a work chain's last step (see the module)."""

    def load_instance_state(self, saved_state, load_context) -> None:
        """Load the checkpoint as the process class does; mark process functions left running as killed."""
        super().load_instance_state(saved_state, load_context)
        called = self.node.base.links.get_outgoing(link_type=(LinkType.CALL_CALC, LinkType.CALL_WORK)).all()
        for link in called:
            child = link.node
            if isinstance(child, (orm.CalcFunctionNode, orm.WorkFunctionNode)) and not child.is_terminated:
                child.set_process_state(ProcessState.KILLED)
                child.set_process_status(
                    f'killed with the daemon worker that ran it; {self.node.process_label}<{self.node.pk}> '
                    'continued from its checkpoint and ran the step again'
                )
                child.seal()
                self.report(
                    f'{child.process_label}<{child.pk}> was left running by a dead daemon worker: killed'
                )

    def on_finish(self, result, successful: bool) -> None:
        """Take back the outputs linked to the node but not held, then finish as the process class does."""
        if successful:
            held = self._flat_outputs()
            separator = self.spec().namespace_separator
            for link in self.node.base.links.get_outgoing(link_type=LinkType.RETURN).all():
                if link.link_label not in held:
                    self.out(link.link_label.replace(PORT_NAMESPACE_SEPARATOR, separator), link.node)
        super().on_finish(result, successful)
