"""The data of composed YAML nodes, as `yaml.SafeLoader` gives it, built fast where it can be.

PyYAML's constructor is generic (a dispatch per node, two passes per mapping, a memo for
aliases) and costs several times the C parser's composing. Most documents the bot reads
(manifests, values files, rendered templates, the applier's self-check) are plain trees:
mappings, sequences and core scalars without anchors. `constructed` builds those directly,
with PyYAML's own scalar constructors, and hands anything else to PyYAML, which also raises
its own errors (tests/test_edits.py compares both on every corpus file and on tricky
scalars, tags, aliases and unhashable keys).
"""

from __future__ import annotations

import functools
from typing import Any

import yaml

_STR_TAG = "tag:yaml.org,2002:str"
_MAP_TAG = "tag:yaml.org,2002:map"
_SEQ_TAG = "tag:yaml.org,2002:seq"
_SAFE = yaml.constructor.SafeConstructor()

_resolver = yaml.resolver.Resolver()


_MEMO_SCALARS_UP_TO = 256
"""Plain scalars longer than this are resolved each time, never held by the memo: the texts
read are untrusted and a scalar may be megabytes long."""


def plain_tag(value: str) -> str:
    """The tag `yaml.SafeLoader` resolves a plain scalar's text to (memoised for short ones,
    which are nearly all of them)."""
    if len(value) > _MEMO_SCALARS_UP_TO:
        return _resolved(value)
    return _memo_tag(value)


def _resolved(value: str) -> str:
    return _resolver.resolve(yaml.ScalarNode, value, (True, False))  # type: ignore[no-untyped-call,no-any-return]  # untyped in PyYAML's stubs


_memo_tag = functools.lru_cache(maxsize=16384)(_resolved)


class FastResolver:
    """PyYAML's resolver with its answers for plain scalars memoised: it costs more than the
    C parser itself, and manifests repeat the same few values. Same tags as `SafeLoader`
    (no path resolvers are registered there). `FastComposer` composes with it, `FastLoader`
    also constructs like `yaml.SafeLoader` (the C parser where PyYAML has libyaml)."""

    def resolve(self, kind: type, value: Any, implicit: tuple[bool, bool]) -> str:
        if kind is yaml.ScalarNode:
            if not implicit[0]:
                return _STR_TAG
            # `plain_tag`, inline: this runs for every scalar of every text read
            return _memo_tag(value) if len(value) <= _MEMO_SCALARS_UP_TO else _resolved(value)
        return _MAP_TAG if kind is yaml.MappingNode else _SEQ_TAG

    def descend_resolver(self, current_node: Any, current_index: Any) -> None:
        return None

    def ascend_resolver(self) -> None:
        return None


try:
    from yaml.cyaml import CParser as _CParser  # type: ignore[attr-defined]  # re-exported from yaml._yaml
except ImportError:  # pragma: no cover - PyYAML built without libyaml
    _CParser = None  # type: ignore[assignment,misc]  # PyYAML built without libyaml

if _CParser is not None:

    class FastComposer(FastResolver, _CParser):
        pass

    class FastLoader(FastResolver, _CParser, yaml.constructor.SafeConstructor):
        def __init__(self, stream: str) -> None:
            _CParser.__init__(self, stream)
            yaml.constructor.SafeConstructor.__init__(self)

else:  # pragma: no cover - PyYAML built without libyaml

    class FastComposer(  # type: ignore[no-redef]
        FastResolver,
        yaml.reader.Reader,
        yaml.scanner.Scanner,
        yaml.parser.Parser,
        yaml.composer.Composer,
    ):
        def __init__(self, stream: str) -> None:
            yaml.reader.Reader.__init__(self, stream)
            yaml.scanner.Scanner.__init__(self)
            yaml.parser.Parser.__init__(self)
            yaml.composer.Composer.__init__(self)

    class FastLoader(FastComposer, yaml.constructor.SafeConstructor):  # type: ignore[no-redef]
        def __init__(self, stream: str) -> None:
            FastComposer.__init__(self, stream)
            yaml.constructor.SafeConstructor.__init__(self)


_SCALARS = {
    f"tag:yaml.org,2002:{name}": yaml.constructor.SafeConstructor.yaml_constructors[
        f"tag:yaml.org,2002:{name}"
    ]
    for name in ("null", "bool", "int", "float", "binary", "timestamp")
}


class _NotPlain(Exception):
    """A node tree `_plain_data` leaves to PyYAML's constructor."""


def may_alias(text: str) -> bool:
    """Whether ``text`` can hold an anchor (and so aliases sharing nodes): asked once per text,
    not per document or node of it."""
    return "&" in text


def constructed(
    node: yaml.Node, aliases: bool, constructor: yaml.constructor.SafeConstructor | None = None
) -> Any:
    """``yaml.SafeLoader``'s data of ``node``: built directly when its text can hold no alias
    (``aliases``: `may_alias` of that text) and the tree only plain mappings, sequences and
    core scalars; else by ``constructor`` (a loader's own, or a new `SafeConstructor`)."""
    if not aliases:
        try:
            return _plain_data(node)
        except _NotPlain:
            pass
    return (constructor or yaml.constructor.SafeConstructor()).construct_document(node)


_Scalar = yaml.ScalarNode


def _plain_data(node: yaml.Node) -> Any:
    kind = type(node)
    if kind is _Scalar:
        if node.tag == _STR_TAG:
            return node.value
        construct = _SCALARS.get(node.tag)
        if construct is None:
            raise _NotPlain
        return construct(_SAFE, node)
    # Strings, most keys and values, are taken here rather than by a call each.
    if kind is yaml.MappingNode and node.tag == _MAP_TAG:
        out = {}
        for key_node, value_node in node.value:
            if type(key_node) is _Scalar and key_node.tag == _STR_TAG:
                key = key_node.value
            else:
                key = _plain_data(key_node)
                if isinstance(key, dict | list):
                    raise _NotPlain  # PyYAML refuses it in its own words
            if type(value_node) is _Scalar and value_node.tag == _STR_TAG:
                out[key] = value_node.value
            else:
                out[key] = _plain_data(value_node)
        return out
    if kind is yaml.SequenceNode and node.tag == _SEQ_TAG:
        return [
            item.value if type(item) is _Scalar and item.tag == _STR_TAG else _plain_data(item)
            for item in node.value
        ]
    raise _NotPlain


def same_data(a: Any, b: Any) -> bool:
    """Equal with the same types all the way down (``True`` is not ``1``, ``1.0`` is not
    ``1``) and the same string keys in the same order (as JSON Schema sees values)."""
    if a is b:
        return True
    if type(a) is not type(b):
        return False
    if type(a) is dict:
        if len(a) != len(b):
            return False
        # One pass over both in order; strings, most values, compared without a call.
        for (key, value), (other_key, other) in zip(a.items(), b.items(), strict=True):
            if type(key) is not str or key != other_key:
                return False
            if value is other:
                continue
            if type(value) is str:
                if type(other) is not str or value != other:
                    return False
            elif not same_data(value, other):
                return False
        return True
    if type(a) is list:
        return len(a) == len(b) and all(map(same_data, a, b))
    return bool(a == b)
