"""Patches written inline in a kustomization file, as literal block scalars (``patch: |-``).

Kustomize reads the text of such a patch as its own YAML document; kube-remedy edits it as
text inside the scalar: the patch's lines are cut out without their indentation, edited like a
patch file, and put back at the same indentation. Lines the edit does not change keep every
byte (comments, blank lines, trailing spaces), and so does the rest of the kustomization; the
result is re-parsed and must hold exactly the edited patch. Quoted, plain and folded (``>``)
scalars are refused: their text is not the patch's lines. The module also tells which patches
a kustomization writes inline, and which of them kube-remedy wrote.

difflib is imported where a patch is edited, not on import (``remedy plan`` start-up).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import yaml

from fixers.edits import EditError, compose_text, document_span, load_documents, render_manifest
from fixers.model import YamlPath

PLACEHOLDER = "kube-remedy-inline-patch-being-written"
"""The value an inline patch entry holds between its creation and its text being spliced
in (never left in a file: `write_new_inline` replaces it before returning)."""


def _node_at(text: str, key: YamlPath) -> yaml.Node:
    try:
        node = compose_text(text.removeprefix("\ufeff"))
    except yaml.YAMLError as exc:
        raise EditError(f"the kustomization does not parse: {exc}") from None
    for step in key:
        if isinstance(node, yaml.MappingNode) and isinstance(step, str):
            found = [v for k, v in node.value if isinstance(k, yaml.ScalarNode) and k.value == step]
            if len(found) != 1:
                raise EditError(f"no single {step!r} in the kustomization")
            node = found[0]
        elif isinstance(node, yaml.SequenceNode) and isinstance(step, int):
            if not 0 <= step < len(node.value):
                raise EditError(f"item {step} is not in the kustomization")
            node = node.value[step]
        else:
            raise EditError(f"{_dotted(key)} is not in the kustomization")
    if node is None:
        raise EditError(f"{_dotted(key)} is not in the kustomization")
    return node


def _dotted(key: YamlPath) -> str:
    return ".".join(map(str, key))


def _block_lines(text: str, key: YamlPath) -> tuple[list[str], int, int, int]:
    """The file's lines, the first and past-last line of the scalar's content (trailing blank
    lines excluded: they belong to the file's layout), and the content's indentation."""
    node = _node_at(text, key)
    where = _dotted(key)
    if not isinstance(node, yaml.ScalarNode) or not isinstance(node.value, str):
        raise EditError(f"the inline patch at {where} is not a text")
    if node.style != "|":
        how = {">": "a folded (>) block", "'": "a quoted string", '"': "a quoted string"}
        raise EditError(
            f"the inline patch at {where} is written as {how.get(node.style or '', 'a plain string')}"
            "; only a literal block (|) is edited in place"
        )
    lines = text.splitlines(keepends=True)
    header = lines[node.start_mark.line][node.start_mark.column :]
    indicator = header.split("#", 1)[0].strip()
    if any(c.isdigit() for c in indicator):
        raise EditError(f"the inline patch at {where} has an explicit indentation indicator")
    first = node.start_mark.line + 1
    content = [ln for ln in lines[first:] if ln.strip()]
    if not content:
        raise EditError(f"the inline patch at {where} is empty")
    indent = len(content[0]) - len(content[0].lstrip(" "))
    last = first
    for n in range(first, len(lines)):
        line = lines[n]
        if line.strip() and not line.startswith(" " * indent):
            break
        if line.strip():
            last = n + 1
    body = _dedented(lines[first:last], indent)
    if indent == 0 or _unix(body) != _unix(node.value):
        raise EditError(f"cannot read the inline patch at {where} line by line")
    return lines, first, last, indent


def _unix(text: str) -> str:
    """``text`` as the parser reads a scalar: line breaks as ``\\n``, the final ones aside."""
    return text.replace("\r\n", "\n").rstrip("\n")


def _dedented(lines: list[str], indent: int) -> str:
    return "".join(ln[indent:] if ln.strip() else ln.lstrip(" \t") or "\n" for ln in lines)


def inline_text(text: str, key: YamlPath, document: int = 0) -> str:
    """The text of the inline patch at ``key`` in document ``document`` of a file (a
    kustomization, an Argo CD Application), as kustomize reads it."""
    begin, end = document_span(text, document)
    lines, first, last, indent = _block_lines(text[begin:end], key)
    return _dedented(lines[first:last], indent)


def edit_inline(text: str, key: YamlPath, edit: Callable[[str], str], document: int = 0) -> str:
    """``text`` with the inline patch at ``key`` (in document ``document``) replaced by
    ``edit`` of its text; raises `EditError` when the patch cannot be edited in place."""
    begin, end = document_span(text, document)
    return text[:begin] + _edit_block(text[begin:end], key, edit) + text[end:]


def _edit_block(text: str, key: YamlPath, edit: Callable[[str], str]) -> str:
    lines, first, last, indent = _block_lines(text, key)
    old = lines[first:last]
    body = _dedented(old, indent)
    new_body = edit(body)
    if new_body == body:
        return text
    # the scalar's last line break (or its absence at the end of the file) is the file's
    missing_eol = not old[-1].endswith(("\n", "\r"))
    if missing_eol:
        old = [*old[:-1], old[-1] + "\n"]
    new = new_body.splitlines(keepends=True)
    if new and not new[-1].endswith(("\n", "\r")):
        new[-1] += "\r\n" if old[-1].endswith("\r\n") else "\n"
    pad = " " * indent
    out: list[str] = []
    # lines equal after dedenting are kept as written (trailing spaces, blank-line indents)
    import difflib

    matcher = difflib.SequenceMatcher(a=_dedented_each(old, indent), b=new, autojunk=False)
    for op, a1, a2, b1, b2 in matcher.get_opcodes():
        if op == "equal":
            out += old[a1:a2]
        else:
            out += [pad + ln if ln.strip() else ln for ln in new[b1:b2]]
    edited = "".join(out)
    if missing_eol:
        edited = edited.rstrip("\r\n")
    result = "".join(lines[:first]) + edited + "".join(lines[last:])
    if _unix(inline_text(result, key)) != _unix(new_body):
        raise EditError(f"internal error: the inline patch at {_dotted(key)} did not re-read")
    return result


def _dedented_each(lines: list[str], indent: int) -> list[str]:
    return [_dedented([ln], indent) for ln in lines]


def write_new_inline(
    text: str,
    list_key: str | YamlPath,
    document: Mapping[str, Any],
    comment: str,
    holder: int = 0,
) -> str:
    """``text`` (a file whose list at ``list_key``, in its document ``holder``, ends with an
    entry whose ``patch`` is `PLACEHOLDER`) with that placeholder replaced by ``document`` as
    a literal block."""
    key: YamlPath = (list_key,) if isinstance(list_key, str) else tuple(list_key)
    where = _dotted(key)
    begin, end = document_span(text, holder)
    part = text[begin:end]
    node = _node_at(part, key)
    if not isinstance(node, yaml.SequenceNode) or not node.value:
        raise EditError(f"the file has no {where} list")
    item = node.value[-1]
    found = (
        [v for k, v in item.value if isinstance(k, yaml.ScalarNode) and k.value == "patch"]
        if isinstance(item, yaml.MappingNode)
        else []
    )
    if len(found) != 1 or found[0].value != PLACEHOLDER or item.flow_style:
        raise EditError(f"the new {where} entry was not written as a block mapping")
    scalar = found[0]
    pad = " " * (item.start_mark.column + 2)
    newline = "\r\n" if "\r\n" in text else "\n"
    rendered = render_manifest(document, comment).rstrip("\n").split("\n")
    block = "|-" + newline + newline.join(pad + ln if ln else ln for ln in rendered)
    result = part[: scalar.start_mark.index] + block + part[scalar.end_mark.index :]
    written = inline_text(result, (*key, len(node.value) - 1, "patch"))
    if _unix(written) != "\n".join(rendered):
        raise EditError(f"internal error: the new inline patch in {where} did not re-read")
    return text[:begin] + result + text[end:]


PATCH_LISTS = ("patches", "patchesStrategicMerge", "patchesJson6902")


def patch_items(text: str | None) -> list[tuple[str, int, Any]]:
    """(list, index, item) of every patch a kustomization text lists; none when it does not
    parse."""
    try:
        docs = load_documents(text) if text else []
    except EditError:
        return []
    kust = docs[0] if docs and isinstance(docs[0], Mapping) else {}
    out = []
    for key in PATCH_LISTS:
        items = kust.get(key)
        if isinstance(items, list):
            out += [(key, n, item) for n, item in enumerate(items)]
    return out


def inline_body(item: Any) -> str | None:
    """The text of a patch list item written inline (None for a patch file)."""
    body = item.get("patch") if isinstance(item, Mapping) else item
    if isinstance(body, str) and (isinstance(item, Mapping) or "\n" in body):
        return body
    return None


def writes_inline_patches(text: str) -> bool:
    """Does a kustomization write its patches inline (it has some, and none is a file)?"""
    inline = [inline_body(item) is not None for _, _, item in patch_items(text)]
    return bool(inline) and all(inline)


def own_inline_patches(text: str | None, comment: str) -> list[int]:
    """Items of a kustomization's ``patches`` that kube-remedy wrote inline (its comment)."""
    return [
        n
        for key, n, item in patch_items(text)
        if key == "patches"
        and isinstance(item, Mapping)
        and (inline_body(item) or "").startswith(f"# {comment}")
    ]


def own_inline_patch(text: str, target: Mapping[str, str], comment: str) -> int | None:
    """The item of ``patches`` kube-remedy wrote inline for ``target``, if any."""
    mine = own_inline_patches(text, comment)
    for key, n, item in patch_items(text):
        if key == "patches" and n in mine and item.get("target") == dict(target):
            return n
    return None


def inline_patches(text: str | None) -> dict[str, str]:
    """``patches[n]`` -> text of each patch a kustomization writes inline."""
    out = {}
    for key, n, item in patch_items(text):
        body = inline_body(item)
        if body is not None:
            out[f"{key}[{n}]"] = body
    return out
