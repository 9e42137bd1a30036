"""The one applier: write `Set` / `Ensure` / `Remove` / `AppendUnique` edits into YAML text.

It splices text into the original at the positions a parse gives (PyYAML's composer, the C one
when available), so every byte outside the edited lines stays identical: comments, blank lines,
key order, quoting, document markers and CRLF line endings. ``bench/bench_apply.py`` compares it
with a ruamel.yaml round trip, which reformats untouched lines and is several times slower.
Only the edited document of a multi-document file is parsed.

Behaviour worth knowing (the tests in ``tests/test_edits.py`` pin each one):

- Edits are applied in order, each to the text the ones before it wrote. Several are written
  from one parse when none could change what another sees (unrelated paths, changes a whole
  line apart, or new keys at the end of one mapping), and edits that all go below one
  top-level key are parsed and checked on that entry's lines alone (a big values file is not
  re-parsed whole per edit). The bytes are those of one edit per parse (`_apply_all`), which
  also decides every refusal.
- Style is detected from the document (the most common form): mapping indent width and whether
  block sequences are indented under their key (``key:\\n  - a``) or not (``key:\\n- a``);
  defaults 2 / indented.
- Non-empty flow collections (``[a, b]``, ``{a: 1, b: 2,}``) are edited inside, in flow style.
  Empty ones (``{}``, ``[]``) and nulls (``key:``, ``key: null``) that receive content become block
  style: the new lines go right under the key and comment lines below it (helm-create's
  commented ``# limits:`` hints) stay where they are.
- Replacing a string keeps the old scalar's quoting style when the new string allows it.
- ``Set`` with a value equal to the current one, ``Ensure`` on a present value and
  ``AppendUnique`` on a present item change nothing, byte for byte. An explicit null counts as
  absent (``Ensure`` fills it; a path through it is created).
- ``Remove`` of an absent key or index is a no-op. Removing the last key of a mapping leaves
  ``key: {}`` and the last item of a sequence ``key: []``: the parent key always stays (a
  Helm template may reference it), nothing is removed that the edit did not name.
- ``Edit.comment`` becomes a ``# comment`` line above inserted lines, or a trailing comment on a
  line changed in place (when that line has nothing after the value).
- Before returning, the result is re-read and compared with the intended data (the edits
  applied to the parsed document): any mismatch is an `EditError`, never a wrong file.
- A document with any anchor or alias is refused (`EditError`): an edit could silently change
  every place that shares the node. So is a document that is not a mapping, a path through a
  scalar, or a sequence index that does not exist (except for ``Remove``).
"""

from __future__ import annotations

import dataclasses
import functools
import json
import re
from collections import Counter
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import yaml

from fixers.memo import Memo
from fixers.model import AppendUnique, Edit, Ensure, Remove, Set, YamlPath
from fixers.yaml_data import (
    FastComposer,
    FastLoader,
    constructed,
    may_alias,
    plain_tag,
    same_data,
)

__all__ = ["EditError", "apply_edits", "load_documents", "render_manifest"]


class EditError(Exception):
    """An edit that cannot be applied safely; the message says what and where (the path)."""


# --------------------------------------------------------------------------- loading


def _syntax_error(exc: yaml.YAMLError) -> EditError:
    mark = getattr(exc, "problem_mark", None) or getattr(exc, "context_mark", None)
    problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
    where = f"line {mark.line + 1}, column {mark.column + 1}" if mark is not None else "?"
    return EditError(f"YAML syntax error at {where}: {problem}")


def load_documents(text: str) -> list[Any]:
    """Plain Python data of every YAML document in ``text`` (None for an empty document), as
    `yaml.safe_load_all` reads them (plain trees built by `fixers.yaml_data`)."""
    loader = FastLoader(text)
    aliases = may_alias(text)
    try:
        docs = []
        while loader.check_node():
            node = loader.get_node()
            docs.append(None if node is None else constructed(node, aliases, loader))
        return docs
    except yaml.YAMLError as exc:
        raise _syntax_error(exc) from None
    finally:
        loader.dispose()


_DOC_MARKER = re.compile(r"^(?:---|\.\.\.)(?:[ \t\r]|$)|^%", re.M)
_CONTENT = re.compile(r"^[ \t]*[^\s#]", re.M)


_DOCUMENTS_KEPT = 1024
"""Documents whose data and style are remembered (the texts being planned at a time)."""
_STARTS: Memo[str, tuple[int, ...] | None] = Memo(64)


def _document_starts(text: str) -> tuple[int, ...] | None:
    """Offsets of the line where each document begins (0 for the first), None for a text
    without a document marker (one document); memoised: a file's documents are looked up many
    times while it is planned, and the applier knows the starts of the text it writes.

    In valid YAML a line starting with ``---`` and a blank is always a document start (the
    scanner ends scalars there), so a regex finds them without parsing the other documents;
    files with %-directives take the parser's word instead.
    """
    if text in _STARTS:
        return _STARTS.get(text)
    return _STARTS.put(text, _starts_in(text) if _has_marker(text) else None)


def _lines_starting(text: str, prefix: str) -> Iterator[int]:
    """Offsets of the lines of ``text`` that start with ``prefix`` (``str.find``: a regex
    anchored at line starts tries every offset of the text)."""
    if text.startswith(prefix):
        yield 0
    needle = "\n" + prefix
    found = text.find(needle)
    while found >= 0:
        yield found + 1
        found = text.find(needle, found + 1)


_MARKER_ENDS = ("", " ", "\t", "\r", "\n")
"""What may follow ``---`` or ``...`` for the line to be a document marker."""


def _marker_lines(text: str, marker: str) -> Iterator[int]:
    """The lines of ``text`` that are a document start (``---``) or end (``...``) marker:
    the marker, then a blank or the line's end."""
    return (at for at in _lines_starting(text, marker) if text[at + 3 : at + 4] in _MARKER_ENDS)


def _has_marker(text: str) -> bool:
    """Whether a line of ``text`` is a document marker or a directive (`_DOC_MARKER`)."""
    return any(
        next(lines, None) is not None  # an offset, maybe 0
        for lines in (
            _lines_starting(text, "%"),
            _marker_lines(text, "---"),
            _marker_lines(text, "..."),
        )
    )


def _starts_in(text: str) -> tuple[int, ...]:
    if text.startswith("%") or "\n%" in text:
        return tuple(_document_starts_parsed(text))
    starts = list(_marker_lines(text, "---"))
    first = starts[0] if starts else len(text)
    if _CONTENT.search(text, 0, first):  # an implicit first document before any `---`
        starts.insert(0, 0)
    if starts:
        starts[0] = 0
    return tuple(starts)


def _document_starts_parsed(text: str) -> list[int]:
    starts: list[int] = []
    loader = FastLoader(text)
    try:
        while loader.check_event():
            event = loader.get_event()
            if isinstance(event, yaml.DocumentStartEvent):
                starts.append(text.rfind("\n", 0, event.start_mark.index) + 1)  # type: ignore[union-attr]  # a parsed event always has its start mark
    except yaml.YAMLError as exc:
        raise _syntax_error(exc) from None
    finally:
        loader.dispose()
    if len(starts) > 1:
        raise EditError("multi-document files with %-directives are not supported")
    return [0] if starts else []


def _document_span(text: str, index: int) -> tuple[int, int]:
    """Start and end offsets of document ``index``: from its ``---`` line (the file's start
    for the first) up to the next document's ``---`` line."""
    if index < 0:
        raise EditError(f"document index {index} is negative")
    starts = _document_starts(text)
    if starts is None:
        if index != 0:
            raise EditError(f"document index {index} out of range (the file has 1 document)")
        return 0, len(text)
    if index >= len(starts):
        raise EditError(f"document index {index} out of range (the file has {len(starts)})")
    end = len(text) if index + 1 >= len(starts) else starts[index + 1]
    return starts[index], end


_NULL_TAG = "tag:yaml.org,2002:null"
_STR_TAG = "tag:yaml.org,2002:str"
_MAP_TAG = "tag:yaml.org,2002:map"
_SEQ_TAG = "tag:yaml.org,2002:seq"


@functools.lru_cache(maxsize=16)
def compose_text(text: str) -> yaml.Node | None:
    """The node tree of one document's text by the C parser when built with libyaml (the
    same nodes and marks as `yaml.SafeLoader`'s), memoised: the applier composes the text the
    planner has just loaded (`load_document_text`), and every change set of a big values file
    starts from the same text. Raises `yaml.YAMLError`; callers must not change nodes."""
    return yaml.compose(text, Loader=FastComposer)  # type: ignore[arg-type]  # PyYAML's stubs accept only its own Loader classes


def _compose(text: str) -> yaml.Node | None:
    try:
        return compose_text(text)
    except yaml.YAMLError as exc:
        raise _syntax_error(exc) from None


@functools.lru_cache(maxsize=16)
def _has_anchors(text: str) -> bool:
    if "&" not in text and "*" not in text:
        return False
    try:
        for event in yaml.parse(text, Loader=FastLoader):  # type: ignore[arg-type]  # PyYAML's stubs accept only its own Loader classes
            if isinstance(event, yaml.AliasEvent) or getattr(event, "anchor", None):
                return True
    except yaml.YAMLError as exc:
        raise _syntax_error(exc) from None
    return False


# --------------------------------------------------------------------------- rendering

# a plain scalar must not start with an indicator (`@`, `>`, `|`, ...) nor hold `#`, `,` or
# brackets (flow context); the resolver then decides whether it still reads as a string
_PLAIN_SAFE = re.compile(r"^[A-Za-z0-9_./~^+=$()\\<-][A-Za-z0-9_./@~^+=$()\\<>: -]*$")


def _plain_ok(value: str) -> bool:
    """Whether ``value`` can be written unquoted and still read back as the same string."""
    if not value or value != value.strip() or not _PLAIN_SAFE.match(value):
        return False
    if ": " in value or value.endswith(":") or value.startswith(("- ", "? ")) or value == "-":
        return False
    return plain_tag(value) == _STR_TAG


def _scalar(value: Any, quote: str | None = None) -> str:
    """One scalar in YAML; strings keep ``quote`` ("'" or '"') when given and possible."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        return yaml.safe_dump(value, default_flow_style=True).split("\n", 1)[0]
    if isinstance(value, str):
        if quote == "'" and "\n" not in value and value.isprintable():
            return "'" + value.replace("'", "''") + "'"
        if quote != '"' and _plain_ok(value):
            return value
        return json.dumps(value, ensure_ascii=False)
    raise EditError(f"cannot write a {type(value).__name__} value in YAML: {value!r}")


def _flow(value: Any, quote: str | None = None) -> str:
    if isinstance(value, Mapping):
        return "{" + ", ".join(f"{_key(k)}: {_flow(v, quote)}" for k, v in value.items()) + "}"
    if isinstance(value, list | tuple):
        return "[" + ", ".join(_flow(v, quote) for v in value) + "]"
    return _scalar(value, quote)


def _key(key: Any) -> str:
    if not isinstance(key, str):
        raise EditError(f"mapping keys must be strings, got {key!r}")
    return _scalar(key)


def _is_block(value: Any) -> bool:
    return isinstance(value, Mapping | list | tuple) and len(value) > 0


@dataclass(frozen=True)
class _Style:
    indent: int = 2  # mapping indent width
    seq_indent: int = 2  # columns from a key to the `-` of its block sequence (0 = indentless)


def _block(value: Any, col: int, style: _Style) -> list[str]:
    """Lines (no line breaks) of a non-empty mapping or sequence starting at column ``col``."""
    pad = " " * col
    lines: list[str] = []
    if isinstance(value, Mapping):
        for k, v in value.items():
            if isinstance(v, Mapping) and v:
                lines.append(f"{pad}{_key(k)}:")
                lines += _block(v, col + style.indent, style)
            elif isinstance(v, list | tuple) and v:
                lines.append(f"{pad}{_key(k)}:")
                lines += _block(v, col + style.seq_indent, style)
            else:
                lines.append(f"{pad}{_key(k)}: {_flow(v)}")
        return lines
    for item in value:
        if _is_block(item):
            sub = _block(item, col + 2, style)
            sub[0] = f"{pad}- {sub[0][col + 2 :]}"
            lines += sub
        else:
            lines.append(f"{pad}- {_flow(item)}")
    return lines


def render_manifest(document: Mapping[str, Any], comment: str | None = None) -> str:
    """A new manifest file: block style, 2-space indent (sequences indented under their key),
    keys in the given order, ``comment`` as leading ``# `` lines."""
    if not isinstance(document, Mapping) or not document:
        raise EditError("a new manifest must be a non-empty mapping")
    header = [f"# {line}".rstrip() for line in comment.splitlines()] if comment else []
    return "\n".join([*header, *_block(document, 0, _Style())]) + "\n"


# --------------------------------------------------------------------------- the document


def _where(path: Sequence[str | int]) -> str:
    out = ""
    for step in path:
        out += f"[{step}]" if isinstance(step, int) else (f".{step}" if out else str(step))
    return out or "<root>"


def _is_null(node: yaml.Node) -> bool:
    return isinstance(node, yaml.ScalarNode) and node.tag == _NULL_TAG


def _is_empty(node: yaml.Node) -> bool:
    """A null or an empty flow collection: a value that a new block replaces."""
    if _is_null(node):
        return True
    return isinstance(node, yaml.MappingNode | yaml.SequenceNode) and not node.value


@dataclass
class _Slot:
    """Where a value node sits: under a key of a mapping, at an index of a sequence, or root."""

    node: yaml.Node
    parent: yaml.Node | None = None
    key: yaml.Node | None = None
    index: int | None = None


def _style_of(root: yaml.Node) -> _Style:
    """The document's own habits: the most common mapping indent and sequence offset
    (ties go to what comes first in the document)."""
    indents: Counter[int] = Counter()
    seqs: Counter[int] = Counter()
    stack: list[yaml.Node] = [root]
    while stack:
        node = stack.pop()
        children: list[yaml.Node] = []
        if isinstance(node, yaml.MappingNode):
            for k, v in node.value:
                if isinstance(v, yaml.MappingNode | yaml.SequenceNode) and v.value:
                    if not v.flow_style and v.start_mark.line > k.start_mark.line:
                        delta = v.start_mark.column - k.start_mark.column
                        if isinstance(v, yaml.MappingNode) and delta > 0:
                            indents[delta] += 1
                        elif isinstance(v, yaml.SequenceNode) and delta >= 0:
                            seqs[delta] += 1
                    children.append(v)
        elif isinstance(node, yaml.SequenceNode):
            children = list(node.value)
        stack.extend(reversed(children))  # document order
    indent = indents.most_common(1)[0][0] if indents else 2
    seq = seqs.most_common(1)[0][0] if seqs else 2
    return _Style(indent, seq)


_STYLES: Memo[str, _Style] = Memo(_DOCUMENTS_KEPT)


def _detected_style(text: str, root: yaml.Node) -> _Style:
    """`_style_of` the document ``text`` (composed as ``root``), memoised on the text: every
    change set of a document starts from the same text."""
    style = _STYLES.get(text)
    return _STYLES.put(text, _style_of(root)) if style is None else style


class _Doc:
    """One parsed document and the text it was parsed from."""

    def __init__(self, text: str, newline: str, style: _Style | None = None) -> None:
        self.text = text
        self.nl = newline
        root = _compose(text)
        if not isinstance(root, yaml.MappingNode):
            found = "empty" if root is None else type(root).__name__.removesuffix("Node").lower()
            raise EditError(f"the document is not a mapping ({found})")
        self.root = root
        self.style = style or _detected_style(text, root)

    @functools.cached_property
    def aliases(self) -> bool:
        """Whether the text can hold an alias (`may_alias`), looked at once per parse."""
        return may_alias(self.text)

    # ---- text positions

    def line_start(self, pos: int) -> int:
        return self.text.rfind("\n", 0, pos) + 1

    def line_end(self, pos: int) -> int:
        """Offset just after the line break of the line holding ``pos`` (or the end)."""
        nl = self.text.find("\n", pos)
        return len(self.text) if nl < 0 else nl + 1

    def colon(self, key: yaml.Node) -> int:
        """Offset of the ``:`` after a simple key."""
        pos = key.end_mark.index
        while pos < len(self.text) and self.text[pos] in " \t":
            pos += 1
        if pos >= len(self.text) or self.text[pos] != ":":
            raise EditError(f"unsupported complex key at line {key.start_mark.line + 1}")
        return pos

    def end(self, node: yaml.Node, key: yaml.Node | None = None) -> int:
        """Offset just after the last character of ``node``'s own content (PyYAML's end marks of
        block collections reach over trailing blank and comment lines)."""
        if isinstance(node, yaml.ScalarNode):
            if node.start_mark.index == node.end_mark.index and key is not None:
                return self.colon(key) + 1  # `key:` with nothing after it
            if node.style in ("|", ">"):
                header = self.text[node.start_mark.index : self.line_end(node.start_mark.index)]
                if "+" in header.split("#", 1)[0]:
                    # keep chomping: trailing blank lines are content; stop at the last break
                    end = node.end_mark.index
                    if self.text[end - 1 : end] == "\n":
                        end -= 2 if self.text[end - 2 : end] == "\r\n" else 1
                    return end
                return len(self.text[: node.end_mark.index].rstrip())
            return node.end_mark.index
        if node.flow_style or not node.value:  # type: ignore[attr-defined]  # a collection node here
            return node.end_mark.index
        if isinstance(node, yaml.MappingNode):
            last_key, last_value = node.value[-1]
            return self.end(last_value, last_key)
        return self.end(node.value[-1])

    def dash(self, item: yaml.Node) -> int:
        """Offset of the ``-`` in front of a block sequence item."""
        pos = self.text.rfind("-", 0, item.start_mark.index)
        if pos < 0:
            raise EditError(f"malformed sequence item at line {item.start_mark.line + 1}")
        return pos

    def column(self, pos: int) -> int:
        return pos - self.line_start(pos)

    # ---- navigation

    def find(self, path: YamlPath, *, create: bool) -> tuple[list[_Slot], int]:
        """Slots along ``path`` as far as they exist, and how many steps were found."""
        slots = [_Slot(self.root)]

        def here(i: int) -> str:
            return _where(path[:i]) if i else "the document root"

        for i, step in enumerate(path):
            node = slots[-1].node
            # A string step into a mapping (most steps) goes straight to the key search.
            if not (type(step) is str and type(node) is yaml.MappingNode):
                if isinstance(step, int) and not isinstance(step, bool):
                    if not isinstance(node, yaml.SequenceNode):
                        if create or not _is_null(node):
                            raise EditError(f"expected a sequence at {here(i)} for index {step}")
                        return slots, i
                    if not -len(node.value) <= step < len(node.value):
                        if create:
                            raise EditError(f"index {step} out of range at {_where(path[: i + 1])}")
                        return slots, i
                    idx = step % len(node.value)
                    slots.append(_Slot(node.value[idx], node, None, idx))
                    continue
                if not isinstance(step, str):
                    raise EditError(
                        f"path steps must be str or int, got {step!r} in {_where(path)}"
                    )
                if _is_null(node):
                    return slots, i
                if isinstance(node, yaml.ScalarNode):
                    raise EditError(f"path {_where(path)} goes through a scalar at {here(i)}")
                if not isinstance(node, yaml.MappingNode):
                    raise EditError(f"expected a mapping at {here(i)}, found a sequence")
            for pair in reversed(node.value):  # the last of repeated keys is what loads
                if type(pair[0]) is yaml.ScalarNode and pair[0].value == step:
                    break
            else:
                return slots, i
            slots.append(_Slot(pair[1], node, pair[0], None))
        return slots, len(path)

    def data(self, node: yaml.Node) -> Any:
        return constructed(node, self.aliases)

    # ---- splicing: each returns the new document text

    def splice(self, start: int, end: int, new: str) -> str:
        return self.text[:start] + new + self.text[end:]

    def insert_lines(self, pos: int, lines: list[str], comment: str | None, col: int) -> str:
        """Insert whole lines at the start of the line after ``pos``."""
        if comment:
            lines = [" " * col + f"# {_one_line(comment)}", *lines]
        at = self.line_end(pos)
        body = self.nl.join(lines)
        if at == len(self.text) and not self.text.endswith("\n"):
            return self.text + self.nl + body
        return self.splice(at, at, body + self.nl)

    def trailing(self, text: str, pos: int, comment: str | None) -> str:
        """``text`` with `` # comment`` at the end of the line holding ``pos``, when that line
        has nothing after ``pos``."""
        if not comment:
            return text
        eol = text.find("\n", pos)
        eol = len(text) if eol < 0 else eol
        if eol > pos and text[eol - 1] == "\r":
            eol -= 1
        if text[pos:eol].strip():
            return text
        return text[:pos] + f"  # {_one_line(comment)}" + text[eol:]

    def replace(self, slot: _Slot, value: Any, comment: str | None) -> str:
        """Put ``value`` in ``slot`` instead of the node there."""
        node, parent = slot.node, slot.parent
        quote = (
            node.style if isinstance(node, yaml.ScalarNode) and node.style in ("'", '"') else None
        )
        in_flow = parent is not None and bool(parent.flow_style)  # type: ignore[attr-defined]  # a collection node here
        if in_flow or not _is_block(value):
            text = _flow(value, quote) if in_flow else _scalar_or_empty(value, quote)
            if slot.key is not None and node.start_mark.index == node.end_mark.index:
                at = self.colon(slot.key) + 1  # `key:` with no value yet
                new = self.splice(at, at, " " + text)
                return self.trailing(new, at + 1 + len(text), comment)
            start, stop = node.start_mark.index, self.end(node, slot.key)
            block = isinstance(node, yaml.MappingNode | yaml.SequenceNode) and not node.flow_style
            if block and slot.key is not None:  # block collection -> inline value after the key
                start = self.colon(slot.key) + 1
                text = " " + text
            new = self.splice(start, stop, text)
            return self.trailing(new, start + len(text), comment)
        # a non-empty mapping or sequence, in block style
        if slot.key is not None:
            key_col = slot.key.start_mark.column
            if (
                isinstance(node, yaml.MappingNode | yaml.SequenceNode)
                and node.value
                and not node.flow_style
            ):
                col = (
                    node.start_mark.column
                    if isinstance(node, yaml.MappingNode)
                    else self.column(self.dash(node.value[0]))
                )
                if isinstance(value, Mapping) != isinstance(node, yaml.MappingNode):
                    col = key_col + (
                        self.style.indent if isinstance(value, Mapping) else self.style.seq_indent
                    )
                lines = _block(value, col, self.style)
                if comment:
                    lines = [" " * col + f"# {_one_line(comment)}", *lines]
                start = self.line_start(node.start_mark.index)
                return self.splice(start, self.end(node, slot.key), self.nl.join(lines))
            col = key_col + (
                self.style.indent if isinstance(value, Mapping) else self.style.seq_indent
            )
            lines = _block(value, col, self.style)
            colon = self.colon(slot.key)
            stop = self.end(node, slot.key)
            rest = self.text[stop : self.line_end(stop)]
            if (
                node.start_mark.line > slot.key.start_mark.line
                and not self.text[
                    self.line_start(node.start_mark.index) : node.start_mark.index
                ].strip()
                and not rest.strip()
            ):
                # `key:\n  {}` (helm create): the `{}` line becomes the block
                doc = _Doc.__new__(_Doc)
                doc.text = self.splice(
                    self.line_start(node.start_mark.index), self.line_end(stop), ""
                )
                doc.nl = self.nl
                return doc.insert_lines(colon, lines, comment, col)
            gap = colon + 1
            doc = _Doc.__new__(_Doc)
            doc.text = self.splice(gap, stop, "")
            doc.nl = self.nl
            return doc.insert_lines(gap, lines, comment, col)
        if slot.index is not None:  # an item of a block sequence: first line after the dash
            col = self.column(node.start_mark.index)
            lines = _block(value, col, self.style)
            lines[0] = lines[0][col:]
            new = self.splice(node.start_mark.index, self.end(node), self.nl.join(lines))
            return self.trailing(new, node.start_mark.index + len(lines[0]), comment)
        # the document root (an empty `{}` document, or one whose last key was removed)
        lines = _block(value, 0, self.style)
        start = node.start_mark.index
        lead = self.nl if self.text[self.line_start(start) : start].strip() else ""
        return self.splice(start, self.end(node), lead + self.nl.join(lines))

    def add_key(self, slot: _Slot, key: str, value: Any, comment: str | None) -> str:
        """Add ``key: value`` to the mapping (or null / empty flow mapping) in ``slot``."""
        node = slot.node
        if _is_empty(node):
            return self.replace(slot, {key: value}, comment)
        assert isinstance(node, yaml.MappingNode)
        last_key, last_value = node.value[-1]
        stop = self.end(last_value, last_key)
        if node.flow_style:
            quote = last_key.style if last_key.style in ("'", '"') else None
            entry = f"{_scalar(key, quote)}: {_flow(value, quote)}"
            return self.flow_append(node, stop, last_key, entry, comment)
        col = node.start_mark.column
        if isinstance(value, Mapping | list | tuple) and value:
            step = self.style.indent if isinstance(value, Mapping) else self.style.seq_indent
            lines = [f"{' ' * col}{_key(key)}:", *_block(value, col + step, self.style)]
        else:
            lines = [f"{' ' * col}{_key(key)}: {_flow(value)}"]
        return self.insert_lines(stop, lines, comment, col)

    def append_item(self, slot: _Slot, value: Any, comment: str | None) -> str:
        node = slot.node
        if _is_empty(node):
            return self.replace(slot, [value], comment)
        assert isinstance(node, yaml.SequenceNode)
        last = node.value[-1]
        stop = self.end(last)
        if node.flow_style:
            quote = (
                last.style
                if isinstance(last, yaml.ScalarNode) and last.style in ("'", '"')
                else None
            )
            return self.flow_append(node, stop, last, _flow(value, quote), comment)
        col = self.column(self.dash(node.value[0]))
        return self.insert_lines(stop, _block([value], col, self.style), comment, col)

    def flow_append(
        self, node: yaml.Node, stop: int, last: yaml.Node, text: str, comment: str | None
    ) -> str:
        """Add ``text`` as the last entry of a non-empty flow collection."""
        after = stop
        while after < len(self.text) and self.text[after] in " \t":
            after += 1
        comma = after < len(self.text) and self.text[after] == ","
        closing = node.end_mark.index - 1
        if node.end_mark.line > last.start_mark.line:  # one entry per line: add a line
            col = last.start_mark.column
            if comma:
                return self.splice(after + 1, after + 1, f"{self.nl}{' ' * col}{text},")
            return self.splice(stop, stop, f",{self.nl}{' ' * col}{text}")
        new = self.splice(stop, stop, f", {text}")
        return self.trailing(new, closing + len(text) + 3, comment)

    def remove(self, slot: _Slot) -> str:
        """Delete the entry holding ``slot.node`` from its parent."""
        parent = slot.parent
        assert parent is not None
        entries = parent.value
        if slot.key is not None:
            i = next(n for n, (k, _v) in enumerate(entries) if k is slot.key)
            begin = slot.key.start_mark.index
        else:
            assert slot.index is not None
            i = slot.index
            begin = entries[i].start_mark.index
        if len(entries) == 1:
            grand = self._slot_of(parent)
            return self.replace(grand, {} if isinstance(parent, yaml.MappingNode) else [], None)
        stop = self.end(slot.node, slot.key)

        def start_of(n: int) -> int:
            e = entries[n]
            return (e[0] if isinstance(e, tuple) else e).start_mark.index  # type: ignore[no-any-return]  # Mark.index is untyped

        if parent.flow_style:  # type: ignore[attr-defined]  # a collection node here
            if i + 1 < len(entries):
                return self.splice(start_of(i), start_of(i + 1), "")
            prev = entries[i - 1]
            prev_stop = self.end(prev[1], prev[0]) if isinstance(prev, tuple) else self.end(prev)
            return self.splice(prev_stop, stop, "")
        if slot.key is None:
            begin = self.dash(slot.node)
        prefix = self.text[self.line_start(begin) : begin]
        if prefix.strip() == "":
            return self.splice(self.line_start(begin), self.line_end(stop), "")
        if prefix.strip().strip("-").strip() == "" and i + 1 < len(entries):
            # first key of a sequence item (`- name: x`): the next key moves up after the dash
            return self.splice(begin, start_of(i + 1), "")
        raise EditError(f"cannot remove the entry at line {slot.node.start_mark.line + 1}")

    def _slot_of(self, target: yaml.Node) -> _Slot:
        stack: list[_Slot] = [_Slot(self.root)]
        while stack:
            slot = stack.pop()
            node = slot.node
            if node is target:
                return slot
            if isinstance(node, yaml.MappingNode):
                stack.extend(_Slot(v, node, k, None) for k, v in node.value)
            elif isinstance(node, yaml.SequenceNode):
                stack.extend(_Slot(v, node, None, n) for n, v in enumerate(node.value))
        raise EditError("internal error: node not found")  # pragma: no cover


def _scalar_or_empty(value: Any, quote: str | None) -> str:
    if isinstance(value, Mapping):
        return "{}"
    if isinstance(value, list | tuple):
        return "[]"
    return _scalar(value, quote)


def _one_line(comment: str) -> str:
    return " ".join(comment.split())


def _nest(rest: Sequence[str | int], value: Any, path: YamlPath) -> Any:
    for step in reversed(rest):
        if not isinstance(step, str):
            raise EditError(f"cannot create sequence index {step} at {_where(path)}")
        value = {step: value}
    return value


# --------------------------------------------------------------------------- applying


def _apply_one(doc: _Doc, edit: Edit) -> str | None:
    """The document text after ``edit``, or None when it changes nothing."""
    path = tuple(edit.path)
    if isinstance(edit, Remove):
        if not path:
            raise EditError("cannot remove the document root")
        slots, found = doc.find(path, create=False)
        if found < len(path):
            return None
        return doc.remove(slots[-1])
    if not path:
        raise EditError(f"{type(edit).__name__} needs a non-empty path")
    append = isinstance(edit, AppendUnique)
    value = [edit.value] if append else edit.value
    slots, found = doc.find(path, create=True)
    slot = slots[-1]
    if found < len(path):
        rest = path[found:]
        step = rest[0]
        if isinstance(step, int):
            raise EditError(f"cannot create sequence index {step} at {_where(path[: found + 1])}")
        return doc.add_key(slot, step, _nest(rest[1:], value, path), edit.comment)
    node = slot.node
    if isinstance(edit, Ensure):
        if not _is_null(node):
            return None
        return doc.replace(slot, value, edit.comment)
    if isinstance(edit, Set):
        if not _is_null(node) and doc.data(node) == _plain(value):
            return None
        return doc.replace(slot, value, edit.comment)
    if isinstance(edit, AppendUnique):
        if isinstance(node, yaml.MappingNode) or (
            isinstance(node, yaml.ScalarNode) and not _is_null(node)
        ):
            raise EditError(f"expected a sequence at {_where(path)}")
        items = [] if _is_null(node) else doc.data(node)
        if _holds(edit, items):
            return None
        return doc.append_item(slot, edit.value, edit.comment)
    raise EditError(f"unknown edit {edit!r}")


def _plain(value: Any) -> Any:
    if isinstance(value, Mapping):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    return value


def apply_edits(text: str, edits: Sequence[Edit], document_index: int = 0) -> str:
    """``text`` with ``edits`` applied in order to document ``document_index``; raises
    `EditError` (nothing changed) when an edit cannot be applied safely."""
    if not edits:
        return text
    begin, end = _document_span(text, document_index)
    part = text[begin:end]
    if _has_anchors(part):
        raise EditError(
            f"document {document_index} uses YAML anchors/aliases; refusing to edit shared nodes"
        )
    newline = "\r\n" if "\r\n" in text else "\n"
    try:
        whole = _Doc(part, newline)
    except EditError as exc:
        raise EditError(f"document {document_index}: {exc}") from None
    try:
        after = _apply_batched(whole, edits)
    except EditError:
        after = None  # applying the edits one by one gives the authoritative answer and message
    if after is None:
        after = _apply_all(whole, edits)
        if after != part:
            _DOCUMENTS.put(after, _check(part, after, edits))
    if after == part:
        return text
    edited = text[:begin] + after + text[end:]
    _remember_starts_after_edit(text, edited, document_index, part, after)
    return edited


def _remember_starts_after_edit(text: str, edited: str, index: int, part: str, after: str) -> None:
    """Memoise the document starts of ``edited`` (``text`` with document ``index``, ``part``,
    written as ``after``): the later documents' shifted by the change in length, when
    ``after`` has the same first line marker and no other marker line (the applier writes
    none; otherwise they are found again when asked)."""
    if (
        bool(_DOC_MARKER.match(after)) != bool(_DOC_MARKER.match(part))
        or after.startswith("---") != part.startswith("---")
        or any(marker in after for marker in ("\n---", "\n...", "\n%"))
    ):
        return
    starts = _document_starts(text)
    if starts is not None:
        delta = len(after) - len(part)
        starts = (*starts[: index + 1], *(start + delta for start in starts[index + 1 :]))
    _STARTS.put(edited, starts)


def _apply_all(doc: _Doc, edits: Sequence[Edit]) -> str:
    """The text of ``doc`` with ``edits`` applied in turn, re-parsed between edits (the style
    detected from the original is kept)."""
    text = doc.text
    for number, edit in enumerate(edits, 1):
        try:
            new = _apply_one(doc, edit)
        except EditError as exc:
            raise EditError(f"{type(edit).__name__} {_where(edit.path)}: {exc}") from None
        if new is not None and new != text:
            text = new
            if number < len(edits):
                doc = _Doc(text, doc.nl, doc.style)
    return text


def _apply_batched(whole: _Doc, edits: Sequence[Edit]) -> str | None:
    """`_apply_all`'s text, checked, written with fewer parses: several edits from one parse
    (`_round`), and when every edit goes below one top-level key (`_edited_entry`) only that
    entry's lines parsed and checked after the first round; the data of the entry before the
    edits and of the whole result are then taken from the whole document's (everything outside
    the entry is the same bytes). None when an edit reaches outside that entry; any refusal
    here is decided again by `_apply_all`."""
    text = whole.text
    entry = _edited_entry(whole, edits)
    data = load_document_text(text) if entry is not None else None
    if entry is None or not isinstance(data, dict):
        after = _in_rounds(whole, edits)
        if after != text:
            _DOCUMENTS.put(after, _check(text, after, edits))
        return after
    start, stop = entry
    result = _in_rounds(whole, edits, entry)
    stop_after = stop + len(result) - len(text)
    if result[:start] != text[:start] or result[stop_after:] != text[stop:]:
        return None
    before, after = text[start:stop], result[start:stop_after]
    if after == before:
        return text
    head = edits[0].path[0]
    _DOCUMENTS.put(before, {head: data[head]})
    _DOCUMENTS.put(result, {**data, head: _check(before, after, edits)[head]})
    return result


def _in_rounds(doc: _Doc, edits: Sequence[Edit], window: tuple[int, int] | None = None) -> str:
    """The text of ``doc`` with ``edits`` applied in order, a `_round` per parse. ``window``:
    the offsets of the lines every edit stays in; after the first round only they are parsed
    (`EditError` when an edit wrote outside them)."""
    pending = _without_repeats(edits)
    head = tail = ""
    while True:
        done, text = _round(doc, pending)
        pending = pending[done:]
        if not pending:
            return head + text + tail
        if window is not None:  # cut once, after the first round (the window may be all)
            start, stop = window
            window = None
            stop += len(text) - len(doc.text)
            head, tail = text[:start], text[stop:]
            if head != doc.text[:start] or tail != doc.text[len(doc.text) - len(tail) :]:
                raise EditError("an edit wrote outside its top-level entry")
            text = text[start:stop]
        doc = _Doc(text, doc.nl, doc.style)


def _without_repeats(edits: Sequence[Edit]) -> list[Edit]:
    """``edits`` without a repeat of an earlier edit that no edit in between could undo (one
    at a related path, or any `Remove`) and that changes nothing when written again
    (`_again_changes_nothing`)."""
    out: list[Edit] = []
    for edit in edits:
        if not _again_changes_nothing(edit):
            out.append(edit)
            continue
        for earlier in reversed(out):
            if earlier == edit:
                break
            if isinstance(earlier, Remove) or _related(earlier.path, edit.path):
                out.append(edit)
                break
        else:
            out.append(edit)
    return out


def _again_changes_nothing(edit: Edit) -> bool:
    """Whether writing ``edit`` right after itself changes nothing: not so for removing a
    sequence item (the next one goes), ensuring a null (written again, with its comment) or
    appending an item `AppendUnique` cannot find (by a key the item lacks)."""
    if isinstance(edit, Remove):
        return not _removes_item(edit)
    if isinstance(edit, Ensure):
        return edit.value is not None
    if isinstance(edit, AppendUnique) and edit.key is not None:
        value = _plain(edit.value)
        return isinstance(value, Mapping) and edit.key in value
    return True


def _related(a: YamlPath, b: YamlPath) -> bool:
    """Whether one path is a prefix of the other (one edit could change what the other sees)."""
    n = min(len(a), len(b))
    return tuple(a[:n]) == tuple(b[:n])


def _round(doc: _Doc, edits: Sequence[Edit]) -> tuple[int, str]:
    """How many of ``edits``, from the first, are written from this one parse, and the text
    with them written: each changes its own span of the text, computed on this parse, that no
    edit before it in the round could have changed (paths not related, spans a whole line
    apart, no removed sequence item before it), except new keys added at the end of one
    existing block mapping and new items at the end of one existing block sequence, written
    there in edit order, and edits below a key an earlier edit of the round creates, written
    into its new lines (`_grown`). The first edit always is (`EditError` from it)."""
    text = doc.text
    spans: list[_Span] = []
    paths: list[YamlPath] = []
    appended: dict[YamlPath, list[Any]] = {}  # lists only appended to in this round: items
    done = 0
    for edit in edits:
        path = tuple(edit.path)
        # a new item for a list only appended to so far in the round joins it, unless the
        # one-by-one writing would find it among the items appended before it
        joins = isinstance(edit, AppendUnique) and path in appended
        if done and (
            _removes_item(edit)
            or any(_related(p, path) and not (joins and p == path) for p in paths)
            or (isinstance(edit, AppendUnique) and joins and _holds(edit, appended[path]))
        ):
            break
        try:
            new = _apply_one(doc, edit)
        except EditError as exc:
            if done:
                break
            raise EditError(f"{type(edit).__name__} {_where(edit.path)}: {exc}") from None
        if new is not None and new != text:
            span = _span_of(doc, edit, new, len(spans))
            clashes = [n for n, other in enumerate(spans) if not span.apart(other, text)]
            if clashes:
                # An edit below a key an earlier edit of the round creates is written into
                # that edit's new lines, as it would be once they are there.
                grown = _grown(doc, edit, span, spans, clashes)
                if grown is None:
                    break
                spans[clashes[0]] = grown
            else:
                spans.append(span)
        if isinstance(edit, AppendUnique) and (joins or path not in paths):
            appended.setdefault(path, []).append(_plain(edit.value))
        else:
            appended.pop(path, None)
        paths.append(path)
        done += 1
        if _removes_item(edit):
            break  # later paths count the sequence's items after the removal
    out: list[str] = []
    pos = 0
    for span in sorted(spans, key=lambda s: s.order_key):
        out += (text[pos : span.start], span.new)
        pos = span.end
    out.append(text[pos:])
    return done, "".join(out)


@dataclass(frozen=True)
class _Span:
    """The text one edit changes: ``text[start:end]`` becomes ``new``."""

    start: int
    end: int
    new: str
    order: int
    adds: tuple[int, object] | None = None
    """For a new key at the end of an existing block mapping (the edit's own key or the first
    missing parent of its path): that mapping's start offset and the key; for a new item at
    the end of an existing block sequence: the sequence's start offset and the edit's order
    (`_round` admits only items the one-by-one writing would find new)."""
    depth: int = -1
    """For a new key at the end of a mapping: its place in the edit's path (what the lines
    written there hold starts at that key)."""

    def apart(self, other: _Span, text: str) -> bool:
        """Whether both can be written from one parse: different new keys at the end of the
        same mapping, different new items at the end of the same sequence, or either at the
        end of nested collections that end together (written inner first, then in edit
        order), or spans with at least one whole unchanged line between them."""
        if self.adds is not None and other.adds is not None and self.start == other.start:
            return self.adds != other.adds
        first, second = (self, other) if self.start <= other.start else (other, self)
        return text.count("\n", first.end, second.start) >= 2

    @property
    def order_key(self) -> tuple[int, int, int]:
        """Where it is written: by offset; at one offset, new keys of an inner mapping before
        those of the mapping around it (whose end comes after them), then in edit order."""
        return (self.start, -self.adds[0] if self.adds else 0, self.order)


def _span_of(doc: _Doc, edit: Edit, new: str, order: int) -> _Span:
    """The span ``edit`` changed in ``doc.text`` to give ``new``."""
    text = doc.text
    grown = len(new) - len(text)
    path = tuple(edit.path)
    if not isinstance(edit, Remove) and grown > 0:
        slots, found = doc.find(path, create=False)
        parent = slots[-1].node
        if (
            found < len(path)
            and isinstance(path[found], str)
            and isinstance(parent, yaml.MappingNode)
            and parent.value
            and not parent.flow_style
        ):
            last_key, last_value = parent.value[-1]
            at = doc.line_end(doc.end(last_value, last_key))
            if new[:at] == text[:at] and new[at + grown :] == text[at:]:
                key = (parent.start_mark.index, str(path[found]))
                return _Span(at, at, new[at : at + grown], order, key, found)
    if isinstance(edit, AppendUnique) and grown > 0:
        node = doc.find(path, create=False)[0][-1].node
        if isinstance(node, yaml.SequenceNode) and node.value and not node.flow_style:
            at = doc.line_end(doc.end(node.value[-1]))
            if new[:at] == text[:at] and new[at + grown :] == text[at:]:
                item = (node.start_mark.index, ("item", order))  # `_round` saw it is new
                return _Span(at, at, new[at : at + grown], order, item)
    start = _common_prefix(text, new)
    tail = _common_prefix(text[start:][::-1], new[start:][::-1])
    return _Span(start, len(text) - tail, new[start : len(new) - tail], order)


def _holds(edit: AppendUnique, items: Iterable[Any]) -> bool:
    """Whether one of ``items``, already in the list, makes ``edit`` change nothing: by the
    edit's key when it has one, else by the whole item (`_intended` models the same rule)."""
    value = _plain(edit.value)
    if edit.key is None:
        return any(item == value for item in items)
    if not isinstance(value, Mapping):
        return False
    return any(
        isinstance(item, Mapping) and edit.key in item and item.get(edit.key) == value.get(edit.key)
        for item in items
    )


def _grown(
    doc: _Doc, edit: Edit, span: _Span, spans: list[_Span], clashes: list[int]
) -> _Span | None:
    """The span that created the first missing key of ``edit``'s path in this round, with
    ``edit`` written into its new lines (parsed on their own, the document's style kept);
    None when ``span`` clashes with another span too, or those lines do not take the edit."""
    if len(clashes) != 1 or span.depth < 0:
        return None
    host = spans[clashes[0]]
    if host.adds != span.adds or host.depth != span.depth:
        return None
    inner = dataclasses.replace(edit, path=tuple(edit.path)[span.depth :])
    try:
        new = _apply_one(_Doc(host.new, doc.nl, doc.style), inner)
    except EditError:
        return None
    return host if new is None else dataclasses.replace(host, new=new)


def _removes_item(edit: Edit) -> bool:
    """Whether ``edit`` removes a sequence item (the items after it move up)."""
    return isinstance(edit, Remove) and bool(edit.path) and isinstance(edit.path[-1], int)


def _common_prefix(a: str, b: str) -> int:
    """The length of the longest common prefix of ``a`` and ``b`` (by halving: string
    comparisons run in C)."""
    low, high = 0, min(len(a), len(b))
    while low < high:
        mid = (low + high + 1) // 2
        if a[low:mid] == b[low:mid]:
            low = mid
        else:
            high = mid - 1
    return low


def _edited_entry(doc: _Doc, edits: Sequence[Edit]) -> tuple[int, int] | None:
    """Offsets of the lines of the one top-level entry that every edit goes into, when those
    lines can be edited as a document of their own: a big values file is then re-parsed and
    checked one section at a time instead of whole after every edit. None otherwise.

    Safe when the entry's key is a plain string that occurs once among the top-level keys,
    its value is a non-empty block collection, every edit goes below it, and the document has
    no directives and no merge keys (anchors are refused before this)."""
    heads = {edit.path[0] for edit in edits}
    if len(heads) != 1 or any(len(edit.path) < 2 for edit in edits):
        return None
    (head,) = heads
    root = doc.root
    if not isinstance(head, str) or root.flow_style or "<<" in doc.text:
        return None
    if "%" in doc.text[: root.start_mark.index]:
        return None
    keys = [key for key, _ in root.value]
    if not all(isinstance(key, yaml.ScalarNode) and key.tag == _STR_TAG for key in keys):
        return None
    found = [i for i, key in enumerate(keys) if key.value == head]
    if len(found) != 1:
        return None
    (i,) = found
    key, value = root.value[i]
    if not isinstance(value, yaml.MappingNode | yaml.SequenceNode) or value.flow_style:
        return None
    start = key.start_mark.index
    if not value.value or doc.line_start(start) != start:
        return None
    if i + 1 == len(keys):
        return start, len(doc.text)
    stop = keys[i + 1].start_mark.index
    return (start, stop) if doc.line_start(stop) == stop else None


def _check(before: str, after: str, edits: Sequence[Edit]) -> Any:
    """Our own output must parse and hold exactly the intended data: a splicing bug must never
    reach a merge request. Returns the data of ``after``: the intended data, whose mappings
    and lists off the edits' paths are ``before``'s own objects (a later check of what changed
    stops at them), when ``after`` holds it with the same types and key order along every
    edit's path; else ``after``'s parsed data."""
    try:
        intended = load_document_text(before)
        owned: dict[int, Any] = {}
        for edit in edits:
            intended = _intended(intended, edit, owned)
        result = load_document_text(after)
    except (KeyError, IndexError, TypeError, AttributeError) as exc:
        raise EditError(f"internal error: cannot check the edits ({exc!r})") from None
    except yaml.YAMLError as exc:
        raise EditError(
            f"internal error: edits produced invalid YAML ({_syntax_error(exc)})"
        ) from None
    if result != intended:
        raise EditError("internal error: the edited text does not hold the intended data")
    if all(_same_along(result, intended, edit.path) for edit in edits):
        return intended
    return result


def _same_along(result: Any, intended: Any, path: YamlPath) -> bool:
    """Whether equal data (``==``) are the same at ``path`` and on the way there: the same
    types (``True`` is not ``1``) and the same keys in the same order."""
    for step in path:
        if type(result) is not type(intended) or (
            type(result) is dict and list(result) != list(intended)
        ):
            return False
        try:
            result, intended = result[step], intended[step]
        except (KeyError, IndexError, TypeError):
            return True  # absent from both: the data are equal
    return same_data(result, intended)


def _own(value: Any, owned: dict[int, Any]) -> Any:
    """``value`` if `_intended` made it, else a shallow copy of a mapping or list it may
    change (recorded in ``owned``, which keeps each alive so that ids stay unique)."""
    if id(value) in owned:
        return value
    if type(value) is dict:
        copy: Any = dict(value)
    elif type(value) is list:
        copy = list(value)
    else:
        return value
    owned[id(copy)] = copy
    return copy


def _intended(data: Any, edit: Edit, owned: dict[int, Any]) -> Any:
    """What the document's data must be after ``edit`` (the semantics, on plain data):
    ``data`` with the mappings and lists on the edit's path copied (once per check:
    ``owned``), the rest shared; ``data`` itself is never changed."""
    *parents, last = edit.path
    data = node = _own(data, owned)
    for step in parents:
        if isinstance(step, int):
            if not isinstance(node, list) or not -len(node) <= step < len(node):
                return data  # an absent index: only Remove gets this far
        elif node.get(step) is None:
            if isinstance(edit, Remove):
                return data
            node[step] = {}
        node[step] = node = _own(node[step], owned)
    if isinstance(edit, Remove):
        if isinstance(last, int):
            if isinstance(node, list) and -len(node) <= last < len(node):
                del node[last]
        elif isinstance(node, dict):
            node.pop(last, None)
    elif isinstance(edit, Set):
        node[last] = _plain(edit.value)
    elif isinstance(edit, Ensure):
        current = node[last] if isinstance(last, int) else node.get(last)
        if current is None:
            node[last] = _plain(edit.value)
    elif isinstance(edit, AppendUnique):
        items = node[last] if isinstance(last, int) else node.get(last)
        value = _plain(edit.value)
        for item in () if items is None else items:
            if edit.key is None:
                if item == value:
                    return data
            elif (
                isinstance(item, dict)
                and edit.key in item
                and item[edit.key] == value.get(edit.key)
            ):
                return data
        node[last] = items = [] if items is None else _own(items, owned)
        items.append(value)
    return data


_DOCUMENTS: Memo[str, Any] = Memo(_DOCUMENTS_KEPT)
"""The data of each document text met lately; the applier also tells it the data of a text
it has spliced into a document it checked."""


def load_document_text(text: str) -> Any:
    """The data of one document's text, memoised: the planner re-reads a document after every
    edit and the applier checks it, so each distinct text is constructed once. Callers must not
    mutate the result."""
    if text in _DOCUMENTS:
        return _DOCUMENTS.get(text)
    if "<<" in text:  # merge keys: constructing flattens the nodes in place, never share them
        data = yaml.load(text, Loader=FastLoader)  # type: ignore[arg-type]  # PyYAML's stubs accept only its own Loader classes
    else:
        node = compose_text(text)
        data = None if node is None else constructed(node, may_alias(text))
    return _DOCUMENTS.put(text, data)


def forget_documents() -> None:
    """Drop every memoised parse (a benchmark's repeats each start as a fresh run)."""
    _DOCUMENTS.clear()
    _STYLES.clear()
    _STARTS.clear()
    compose_text.cache_clear()
    _has_anchors.cache_clear()


def document_span(text: str, index: int) -> tuple[int, int]:
    """Start and end offsets of document ``index`` in a multi-document file (``EditError``
    when the index is out of range): a caller may parse just that document."""
    return _document_span(text, index)
