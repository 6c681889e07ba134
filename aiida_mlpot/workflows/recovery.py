"""`StoredOutputsMixin`: a work chain continued from its checkpoint keeps the outputs an earlier worker stored.

A daemon worker that dies (SIGKILL, a lost node) while a finishing work chain stores its outputs leaves some or all
of them linked in the database, the process state unchanged and the checkpoint from before the last step. The
worker that continues the work chain runs that step again. aiida-core's ``BaseRestartWorkChain._attach_outputs``
(2.9.4) skips an output already linked to the node, so the continued process does not hold it, its output
validation fails and it finishes with ``ERROR_MISSING_OUTPUT`` (11), although every output is on the node. Seen
once in CI: the scale-out crash test's ``Cp2kLabelWorkChain`` finished with 11 after the daemon was killed, its
``Cp2kCalculation`` finished ok; reproduced step by step in tests/workflows/test_recovery.py.

Every work chain of this package therefore takes back, before its outputs are validated, each output linked to its
node that the process does not hold. Nothing is linked twice: aiida-core's ``update_outputs`` links only labels
the node does not have.
"""

from __future__ import annotations

from aiida.common.links import LinkType
from aiida.engine.processes.ports import PORT_NAMESPACE_SEPARATOR

__all__ = ('StoredOutputsMixin',)


class StoredOutputsMixin:
    """Before the outputs are validated at the end, hold every output already linked to the node (see the module)."""

    def on_finish(self, result, successful: bool) -> None:
        """Take back the outputs linked to the node but not held, then finish as the process class does."""
        if successful:
            held = self._flat_outputs()
            separator = self.spec().namespace_separator
            for link in self.node.base.links.get_outgoing(link_type=LinkType.RETURN).all():
                if link.link_label not in held:
                    self.out(link.link_label.replace(PORT_NAMESPACE_SEPARATOR, separator), link.node)
        super().on_finish(result, successful)
