"""`expose_closed`: the inputs of a sub-process exposed under a namespace that refuses unknown keys."""

from __future__ import annotations

__all__ = ('expose_closed',)


def expose_closed(spec, process_class, namespace: str, **kwargs) -> None:
    """Expose the inputs of ``process_class`` under ``namespace`` (``kwargs`` as for ``spec.expose_inputs``) and
    close the namespace.

    Exposing gives the namespace the process's ``valid_type``, which turns it dynamic (a plumpy quirk): closed
    again, an unknown key is refused at launch and by the protocol's override check.
    """
    spec.expose_inputs(process_class, namespace=namespace, **kwargs)
    spec.inputs[namespace].dynamic = False
