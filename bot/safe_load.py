"""Bounded readers for untrusted JSON and YAML: size, nesting depth and YAML alias expansion.

Reports, ``.remedy.yaml``, CODEOWNERS, manifests and webhook bodies come from people the bot does
not trust. Each is refused with one line saying what and where when it is larger than its
limit, nested deeper than `MAX_DEPTH`, or (YAML) when its aliases expand to more nodes than the
text could honestly hold (a "billion laughs" document parses in microseconds into shared
objects, and explodes only in whatever walks it next). The parsers themselves stay bounded:
libyaml stops at its own nesting limit, and the recursion of Python's JSON and YAML parsers is
caught; `check_bounds` then walks the result iteratively and stops at its node budget, so no
input costs more than that budget whatever its shape.

Errors are raised as the caller's `RemedyError` subclass (``error=``): `ReportError` for
reports, `ConfigError` for settings, so the CLI exits 2 and the web answers 400.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator, Mapping
from typing import Any

import yaml

from bot.errors import RemedyError
from fixers.yaml_data import FastLoader, constructed, may_alias

MAX_DEPTH = 100
"""Deepest nesting accepted: a Kubernetes object embedded in a report is 20-30 levels deep."""
MIN_NODE_BUDGET = 1_000_000
"""Values a document may expand to whatever its size (aliases included)."""

SCALAR_TYPES = frozenset({str, int, float, bool, type(None), bytes})
"""Value types with no children: what parsers make most of, so walks over parsed data skip
them by their exact type before asking anything else."""
_TOKEN = re.compile(r'"(?:[^"\\]|\\.)*"|[\[\]{}]', re.S)


def node_budget(size: int) -> int:
    """How many values a text of ``size`` characters may expand to: an honest document holds
    fewer values than characters, so only alias expansion can exceed it."""
    return max(MIN_NODE_BUDGET, size)


def _too_big(origin: str, size: int, max_bytes: int, error: type[RemedyError]) -> RemedyError:
    return error(
        f"{origin}: {size / 1048576:.1f} MB, over the limit of {max_bytes / 1048576:.1f} MB"
    )


def check_bounds(
    data: Any,
    origin: str,
    *,
    max_depth: int = MAX_DEPTH,
    max_nodes: int = MIN_NODE_BUDGET,
    error: type[RemedyError] = RemedyError,
    where: str = "",
) -> None:
    """Refuse ``data`` nested deeper than ``max_depth`` or holding more than ``max_nodes``
    values (shared objects are counted at every place they appear, as a walk would meet them).
    Iterative, and stops at the first limit crossed."""
    # Scalars are counted where they are met, never stacked: a document is mostly scalars.
    # Plain dicts and lists (what parsers make) are told by their exact type first: the ABC
    # check is a slow call, and a list is no Mapping.
    stack: list[tuple[Any, int]] = [(data, 1)]
    seen = 0
    scalar = SCALAR_TYPES
    while stack:
        value, depth = stack.pop()
        seen += 1
        kind = type(value)
        if kind is list or kind is dict:
            parts: Any = (value, value.values()) if kind is dict else (value,)
        elif isinstance(value, Mapping):
            parts = (value.keys(), value.values())
        elif isinstance(value, list | tuple):
            parts = (value,)
        else:
            parts = ()
        if parts and value and depth >= max_depth:
            raise error(f"{origin}: nested deeper than {max_depth} levels{where}; refusing it")
        for children in parts:  # a mapping's keys, then its values
            for child in children:
                if type(child) in scalar:
                    seen += 1
                else:
                    stack.append((child, depth + 1))
        if seen > max_nodes:
            raise error(
                f"{origin}: more than {max_nodes} values{where} (YAML aliases expanding like "
                "'billion laughs'?); refusing it"
            )


def _json_deep_at(text: str, max_depth: int) -> str:
    """' at line L, column C' where ``text`` first nests deeper than ``max_depth``."""
    depth = 0
    for match in _TOKEN.finditer(text):
        token = match.group()
        if token in "[{":
            depth += 1
            if depth > max_depth:
                pos = match.start()
                line = text.count("\n", 0, pos) + 1
                return f" at line {line}, column {pos - (text.rfind(chr(10), 0, pos) + 1) + 1}"
        elif token in "]}":
            depth -= 1
    return ""


def load_json(
    text: str | bytes,
    origin: str,
    *,
    max_bytes: int | None = None,
    max_depth: int = MAX_DEPTH,
    error: type[RemedyError] = RemedyError,
) -> Any:
    """`json.loads` within bounds; malformed JSON is one line with its position."""
    if max_bytes is not None and len(text) > max_bytes:
        raise _too_big(origin, len(text), max_bytes, error)
    if isinstance(text, bytes):
        try:
            text = text.decode("utf-8-sig")
        except UnicodeDecodeError:
            raise error(f"{origin}: not UTF-8 text") from None
    try:
        data = json.loads(text)
    except RecursionError:
        where = _json_deep_at(text, max_depth)
        raise error(
            f"{origin}: nested deeper than {max_depth} levels{where}; refusing it"
        ) from None
    except json.JSONDecodeError as exc:
        what = "truncated JSON" if exc.pos >= len(text.rstrip()) else "malformed JSON"
        raise error(
            f"{origin}: {what} at line {exc.lineno}, column {exc.colno}: {exc.msg}"
        ) from None
    try:
        check_bounds(
            data, origin, max_depth=max_depth, max_nodes=node_budget(len(text)), error=error
        )
    except RemedyError:
        where = _json_deep_at(text, max_depth)
        if where:
            raise error(
                f"{origin}: nested deeper than {max_depth} levels{where}; refusing it"
            ) from None
        raise
    return data


def yaml_problem(exc: yaml.YAMLError) -> str:
    """A YAML error as 'line L, column C: problem'."""
    mark = getattr(exc, "problem_mark", None) or getattr(exc, "context_mark", None)
    problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
    where = f"line {mark.line + 1}, column {mark.column + 1}: " if mark is not None else ""
    return f"{where}{problem}"


def yaml_documents(text: str) -> Iterator[Any]:
    """Every document of ``text`` as ``yaml.safe_load_all`` reads it (the C parser where
    PyYAML has it; plain trees built by `fixers.yaml_data`), without bounds: for text the bot
    made itself or a renderer it ran produced."""
    loader = FastLoader(text)
    aliases = may_alias(text)
    try:
        while loader.check_node():
            node = loader.get_node()
            yield None if node is None else constructed(node, aliases, loader)
    finally:
        loader.dispose()


def load_yaml_all(
    text: str,
    origin: str,
    *,
    max_bytes: int | None = None,
    max_depth: int = MAX_DEPTH,
    error: type[RemedyError] = RemedyError,
) -> list[Any]:
    """Every document of ``text`` (``yaml.safe_load_all``) within bounds; a syntax error is
    one line with its position."""
    if max_bytes is not None and len(text) > max_bytes:
        raise _too_big(origin, len(text), max_bytes, error)
    text = text.removeprefix("\ufeff")
    try:
        docs = list(yaml_documents(text))
    except RecursionError:
        raise error(f"{origin}: nested deeper than {max_depth} levels; refusing it") from None
    except yaml.YAMLError as exc:
        problem = yaml_problem(exc)
        if "maximum nesting depth" in problem:
            raise error(f"{origin}: nested deeper than {max_depth} levels at {problem}") from None
        raise error(f"{origin} is not valid YAML: {problem}") from None
    budget = node_budget(len(text))
    for i, doc in enumerate(docs):
        where = f" in document {i + 1}" if len(docs) > 1 else ""
        check_bounds(doc, origin, max_depth=max_depth, max_nodes=budget, error=error, where=where)
    return docs


def load_yaml(
    text: str,
    origin: str,
    *,
    max_bytes: int | None = None,
    max_depth: int = MAX_DEPTH,
    error: type[RemedyError] = RemedyError,
) -> Any:
    """One YAML document (``yaml.safe_load``) within bounds; None for an empty text."""
    docs = load_yaml_all(text, origin, max_bytes=max_bytes, max_depth=max_depth, error=error)
    if len(docs) > 1:
        raise error(f"{origin}: holds {len(docs)} YAML documents, expected one")
    return docs[0] if docs else None
