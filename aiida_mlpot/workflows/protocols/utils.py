"""One protocol mechanism for every work chain of aiida-mlpot, in the style of aiida-quantumespresso.

A protocol file (``protocols/<name>.yaml``) has one schema::

    default_inputs: {...}          # inputs shared by every protocol, keyed like the work chain's ports
    default_protocol: balanced
    protocols:
      fast:
        description: one line saying what the protocol is for
        inherit: balanced          # optional: start from another protocol of the file
        ...                        # inputs, keyed like the ports, merged over default_inputs

:meth:`ProtocolMixin.get_protocol_inputs` merges ``default_inputs``, the (inherited) protocol and the
caller's ``overrides`` with one recursive merge (:func:`recursive_merge`; a list replaces a list). Override
keys are checked against the process's ports (:func:`check_overrides`): an unknown key is a ``ValueError``
naming it, before any builder is made. Protocols hold numerical settings only; system-specific physics
(temperatures, pressures, charges) comes from the caller.
"""

from __future__ import annotations

import copy
import functools
import pathlib
from collections.abc import Mapping

import yaml

__all__ = ('ProtocolMixin', 'check_overrides', 'load_protocol_file', 'populate_builder', 'recursive_merge')

_RESERVED = ('description', 'inherit')


def recursive_merge(left: Mapping, right: Mapping) -> dict:
    """Return a deep copy of ``left`` with ``right`` merged into it (mappings merge, anything else replaces)."""
    result = copy.deepcopy(dict(left))
    for key, value in right.items():
        if isinstance(value, Mapping) and isinstance(result.get(key), Mapping):
            result[key] = recursive_merge(result[key], value)
        else:
            result[key] = copy.deepcopy(value)
    return result


@functools.cache
def _read(path: str) -> dict:
    content = yaml.safe_load(pathlib.Path(path).read_text())
    for key in ('default_inputs', 'default_protocol', 'protocols'):
        if key not in content:
            raise ValueError(f'protocol file {path} lacks `{key}`')
    for name, protocol in content['protocols'].items():
        if not isinstance(protocol, Mapping) or not protocol.get('description'):
            raise ValueError(f'protocol `{name}` of {path} has no `description`')
    if content['default_protocol'] not in content['protocols']:
        raise ValueError(f'the default protocol of {path} is not one of its protocols')
    return content


def load_protocol_file(path: str | pathlib.Path) -> dict:
    """Return the (validated, cached) content of a protocol file; a deep copy, safe to modify."""
    return copy.deepcopy(_read(str(path)))


def check_overrides(namespace, overrides: Mapping, path: str = '') -> None:
    """Raise ``ValueError`` naming the first key of ``overrides`` that is not a port of ``namespace``.

    Nested mappings are checked against nested port namespaces; below a port that is not a namespace (a
    ``Dict`` input, for example) the content is the business of that port's own validator. A dynamic
    namespace accepts any key.
    """
    from plumpy.ports import PortNamespace

    for key, value in overrides.items():
        if key not in namespace:
            if getattr(namespace, 'dynamic', False):
                continue
            known = ', '.join(sorted(name for name in namespace if not name.startswith('_')))
            raise ValueError(f'unknown override key `{path}{key}`; known here: {known}')
        port = namespace[key]
        if isinstance(port, PortNamespace) and isinstance(value, Mapping):
            check_overrides(port, value, f'{path}{key}.')


def populate_builder(builder, inputs: Mapping, namespace=None) -> None:
    """Set ``inputs`` (plain Python values keyed like the ports) on ``builder``, converting values to nodes.

    A port namespace receives a mapping recursively (``metadata.options`` included); a value for a port with a
    serializer is converted by it; a mapping for a ``Dict`` port becomes an ``orm.Dict``; a list for a
    ``List`` port an ``orm.List``. Nodes are set as they are.

    :param namespace: the port namespace of ``builder`` (default: the inputs of its process class).
    """
    from aiida import orm
    from plumpy.ports import PortNamespace

    if namespace is None:
        namespace = builder.process_class.spec().inputs
    for key, value in inputs.items():
        port = namespace.get(key) if key in namespace else None
        if isinstance(port, PortNamespace) and isinstance(value, Mapping) and not port.dynamic:
            populate_builder(builder[key], value, port)
            continue
        if isinstance(port, PortNamespace) and isinstance(value, Mapping):
            builder[key] = dict(value)
            continue
        valid_type = getattr(port, 'valid_type', None)
        valid = valid_type if isinstance(valid_type, tuple) else (valid_type,)
        takes_nodes = any(isinstance(item, type) and issubclass(item, orm.Data) for item in valid)
        if isinstance(value, orm.Data) or port is None or getattr(port, 'non_db', False) or not takes_nodes:
            builder[key] = value  # a node, a metadata value (non-db port), or a port of plain values
            continue
        if getattr(port, 'serializer', None) is not None:
            builder[key] = port.serializer(value)
        elif orm.Dict in valid and isinstance(value, Mapping):
            builder[key] = orm.Dict(dict(value))
        elif orm.List in valid and isinstance(value, list | tuple):
            builder[key] = orm.List(list(value))
        else:
            builder[key] = orm.to_aiida_type(value)


class ProtocolMixin:
    """Protocol methods of a work chain; the subclass names its YAML file in ``_protocol_file``."""

    #: path of the protocol file, set by the subclass
    _protocol_file: pathlib.Path

    @classmethod
    def get_protocol_filepath(cls) -> pathlib.Path:
        """Return the path of the protocol file of this work chain."""
        return pathlib.Path(cls._protocol_file)

    @classmethod
    def _load_protocol_file(cls) -> dict:
        return load_protocol_file(cls.get_protocol_filepath())

    @classmethod
    def get_default_protocol(cls) -> str:
        """Return the name of the default protocol."""
        return cls._load_protocol_file()['default_protocol']

    @classmethod
    def get_available_protocols(cls) -> dict[str, dict]:
        """Return ``{name: {'description': ...}}`` of every protocol."""
        protocols = cls._load_protocol_file()['protocols']
        return {name: {'description': protocol['description']} for name, protocol in protocols.items()}

    @classmethod
    def get_protocol_inputs(cls, protocol: str | None = None, overrides: Mapping | None = None) -> dict:
        """Return the inputs of ``protocol`` (default: the file's default) with ``overrides`` merged in.

        :raises ValueError: unknown protocol, or an override key that is not a port of this process.
        """
        content = cls._load_protocol_file()
        name = protocol or content['default_protocol']
        protocols = content['protocols']
        if name not in protocols:
            raise ValueError(f'unknown protocol `{name}`; choose from {", ".join(protocols)}')
        chain, current = [], name
        while current is not None:
            if current in chain:
                raise ValueError(f'protocol `{name}` inherits in a circle: {" -> ".join([*chain, current])}')
            if current not in protocols:
                raise ValueError(f'protocol `{chain[-1]}` inherits from unknown protocol `{current}`')
            chain.append(current)
            current = protocols[current].get('inherit')
        inputs = copy.deepcopy(content['default_inputs'])
        for item in reversed(chain):
            body = {key: value for key, value in protocols[item].items() if key not in _RESERVED}
            inputs = recursive_merge(inputs, body)
        if overrides:
            check_overrides(cls.spec().inputs, overrides)
            inputs = recursive_merge(inputs, overrides)
        return inputs
