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

from typing import Any

import yaml

_STR_TAG = "tag:yaml.org,2002:str"
_MAP_TAG = "tag:yaml.org,2002:map"
_SEQ_TAG = "tag:yaml.org,2002:seq"
_SAFE = yaml.constructor.SafeConstructor()
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


def _plain_data(node: yaml.Node) -> Any:
    kind = type(node)
    if kind is yaml.ScalarNode:
        if node.tag == _STR_TAG:
            return node.value
        construct = _SCALARS.get(node.tag)
        if construct is None:
            raise _NotPlain
        return construct(_SAFE, node)
    if kind is yaml.MappingNode and node.tag == _MAP_TAG:
        out = {}
        for key_node, value_node in node.value:
            key = _plain_data(key_node)
            if isinstance(key, dict | list):
                raise _NotPlain  # PyYAML refuses it in its own words
            out[key] = _plain_data(value_node)
        return out
    if kind is yaml.SequenceNode and node.tag == _SEQ_TAG:
        return [_plain_data(item) for item in node.value]
    raise _NotPlain


def same_data(a: Any, b: Any) -> bool:
    """Equal with the same types all the way down (``True`` is not ``1``, ``1.0`` is not
    ``1``) and the same string keys in the same order (as JSON Schema sees values)."""
    if a is b:
        return True
    if type(a) is not type(b):
        return False
    if type(a) is dict:
        return list(a) == list(b) and all(
            type(k) is str and same_data(v, b[k]) for k, v in a.items()
        )
    if type(a) is list:
        return len(a) == len(b) and all(map(same_data, a, b))
    return bool(a == b)
