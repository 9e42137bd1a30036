"""Flux HelmRelease post-renderers: read them as Flux applies them, write fixes into them.

Flux runs ``spec.postRenderers`` on the chart's rendered manifests, in order: each
``kustomize`` entry applies its ``patchesStrategicMerge``, ``patches`` (strategic merge or
JSON6902, told from the body), ``patchesJson6902`` and ``images`` as kustomize does. The
kustomize reader (`bot.locate.kustomize_build`) applies them here, so a finding is located
and verified on what Flux deploys. A post-renderer of another shape is refused with its
reason (`ChartError`): a render without it would be a wrong answer.

A fix for a field the chart has no values key for is written as a strategic-merge patch of
the rendered resource (`write_patch`): the inline patch kube-remedy or a person already wrote
for that target is extended in place, else a new entry joins the last kustomize
post-renderer's ``patches`` (a post-renderer is created when the release has none).
"""

from __future__ import annotations

import copy
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from bot.errors import ChartError, RepositoryError
from bot.locate.helm_render import DocId, RenderedDoc
from bot.locate.kustomize import _apply as apply_in_patch
from bot.locate.kustomize import _put
from bot.locate.kustomize_build import (
    _ITEM,
    LogicalPath,
    PatchSource,
    Rendered,
    Touch,
    _json6902,
    _parsed,
    _pod_template,
    _selected,
    _strategic_merge,
    set_images,
)
from bot.locate.kustomize_inline import PLACEHOLDER, edit_inline, write_new_inline
from fixers.edits import EditError, apply_edits, load_documents
from fixers.model import AppendUnique, Edit, Set, YamlPath
from fixers.view import lookup

POST_RENDERERS: YamlPath = ("spec", "postRenderers")
KUSTOMIZE_KEYS = frozenset({"patches", "patchesStrategicMerge", "patchesJson6902", "images"})


@dataclass(frozen=True)
class PostRendered:
    """Documents after the post-renderers, and the fields each patch set per document."""

    docs: list[RenderedDoc]
    touches: dict[DocId, list[Touch]] = field(default_factory=dict)


def post_render(
    docs: Sequence[RenderedDoc], renderers: Any, release: str, manifest: str, document: int
) -> PostRendered:
    """``docs`` as Flux's post-renderers ``renderers`` (``spec.postRenderers`` of
    ``release``, document ``document`` of ``manifest``) change them; `ChartError` when one
    cannot be applied."""
    if not renderers:
        return PostRendered(list(docs))
    if not isinstance(renderers, list):
        raise ChartError(
            f"{release}: spec.postRenderers is not a list; kube-remedy cannot apply it"
        )
    shallow = [dict(d.document) for d in docs]
    work = [
        Rendered(s, manifest, document, s, [d.name]) for s, d in zip(shallow, docs, strict=True)
    ]
    for n, renderer in enumerate(renderers):
        where = f"{release} spec.postRenderers[{n}]"
        if not isinstance(renderer, Mapping) or set(renderer) != {"kustomize"}:
            keys = ", ".join(map(str, renderer)) if isinstance(renderer, Mapping) else "?"
            raise ChartError(
                f"{where} ({keys}) is not a kustomize post-renderer; kube-remedy cannot tell "
                "what Flux deploys, so it does not fix this release's resources"
            )
        kust = renderer["kustomize"]
        if not isinstance(kust, Mapping):
            raise ChartError(f"{where}.kustomize is not a mapping; kube-remedy cannot apply it")
        unknown = set(kust) - KUSTOMIZE_KEYS
        if unknown:
            raise ChartError(
                f"{where}.kustomize uses {', '.join(sorted(map(str, unknown)))}, which "
                "kube-remedy does not apply; it does not fix this release's resources"
            )
        try:
            _apply_kustomize(work, kust, (*POST_RENDERERS, n, "kustomize"), manifest, document)
        except (RepositoryError, EditError, TypeError, ValueError) as exc:
            raise ChartError(f"{where} cannot be applied: {exc}") from None
    out: list[RenderedDoc] = []
    touches: dict[DocId, list[Touch]] = {}
    for before, after, was in zip(docs, work, shallow, strict=True):
        changed = after.doc is not was
        doc = RenderedDoc(before.template, before.index, after.doc) if changed else before
        out.append(doc)
        if after.touches:
            touches[doc.ident] = list(after.touches)
    return PostRendered(out, touches)


def _apply_kustomize(
    work: list[Rendered], kust: Mapping[str, Any], key: YamlPath, manifest: str, document: int
) -> None:
    """One kustomize post-renderer, in kustomize's order (strategic merge, patches, JSON6902,
    images); a changed document is copied first (the render cache's are shared)."""

    def chosen(selector: Any) -> list[Rendered]:
        picked = [r for r in work if _selected(r, selector)]
        for res in picked:
            res.doc = copy.deepcopy(res.doc)
        return picked

    def source(kind: str, at: YamlPath, part: int = 0) -> PatchSource:
        return PatchSource(manifest, part, kind, True, (*key, *at), document)  # type: ignore[arg-type]

    for n, patch in enumerate(_items(kust, "patchesStrategicMerge")):
        if not isinstance(patch, Mapping):
            raise ChartError(f"patchesStrategicMerge[{n}] is not a mapping")
        for res in chosen(_own(patch)):
            _strategic_merge(res, patch, source("smp", ("patchesStrategicMerge", n)))
    for n, item in enumerate(_items(kust, "patches")):
        body = item.get("patch") if isinstance(item, Mapping) else None
        if not isinstance(body, str):
            raise ChartError(f"patches[{n}] has no inline patch text (a path is never read)")
        target = item.get("target")
        for m, doc in enumerate(_parsed(body)):
            at = ("patches", n, "patch")
            if isinstance(doc, list):
                if target is None:
                    raise ChartError(f"patches[{n}]: a JSON6902 patch needs a target")
                for res in chosen(target):
                    _json6902(res, doc, source("json6902", at, m))
            elif isinstance(doc, Mapping):
                for res in chosen(target if target is not None else _own(doc)):
                    _strategic_merge(res, doc, source("smp", at, m))
            elif doc is not None:
                raise ChartError(f"patches[{n}] document {m} is neither a mapping nor a list")
    for n, item in enumerate(_items(kust, "patchesJson6902")):
        ops = item.get("patch") if isinstance(item, Mapping) else None
        if isinstance(ops, str):
            ops = load_documents(ops)[0]
        if not isinstance(ops, list) or not isinstance(item.get("target"), Mapping):
            raise ChartError(f"patchesJson6902[{n}] needs a target and a list of operations")
        for res in chosen(item["target"]):
            _json6902(res, ops, source("json6902", ("patchesJson6902", n, "patch")))
    images = _items(kust, "images")
    if images:
        for res in work:
            if _pod_template(res.doc) is None and res.kind != "Pod":
                continue
            before = res.doc
            res.doc = copy.deepcopy(before)
            set_images(res.doc, images)
            if res.doc == before:
                res.doc = before


def _items(kust: Mapping[str, Any], key: str) -> list[Any]:
    value = kust.get(key) or []
    if not isinstance(value, list):
        raise ChartError(f"{key} is not a list")
    return value


def _own(patch: Mapping[str, Any]) -> dict[str, Any]:
    meta = patch.get("metadata") or {}
    return {"kind": patch.get("kind"), "name": meta.get("name"), "namespace": meta.get("namespace")}


# --------------------------------------------------------------------------- writing


def write_in_patch(
    text: str, document: int, at: YamlPath, touch: Touch, rest: YamlPath, value: Any
) -> str:
    """``text`` with the post-renderer patch that sets a field (``touch``) changed to set
    ``value`` at ``rest`` below it; the post-renderers list is at ``at`` in document
    ``document``. Raises `EditError`."""
    source, where = touch.source, touch.where
    if where is None:
        raise EditError("a post-renderer patch deletes the field")
    if value is None and source.kind != "smp":
        raise EditError("a JSON6902 post-renderer patch sets the field; remove it by hand")
    key = (*at, *source.key[len(POST_RENDERERS) :])
    edit = Set((*where, *rest), copy.deepcopy(value))
    if len(key) >= 3 and key[-3] == "patches":  # a patch written as text
        return edit_inline(
            text, key, lambda body: apply_in_patch(body, [edit], source.document), document
        )
    return apply_edits(text, [Set((*key, *edit.path), edit.value)], document)


def write_patch(
    text: str,
    document: int,
    at: YamlPath,
    resource: Mapping[str, Any],
    fields: Sequence[tuple[LogicalPath, Any]],
    comment: str,
) -> str:
    """``text`` with ``fields`` (logical path in ``resource`` -> value, None deletes) set by
    a strategic-merge post-renderer patch targeting ``resource``, in the post-renderers list
    at ``at`` of document ``document``; `EditError` when it cannot be written in place."""
    kind = str(resource.get("kind", ""))
    name = str((resource.get("metadata") or {}).get("name", ""))
    target = {"kind": kind, "name": name}
    docs = load_documents(text.removeprefix("\ufeff"))
    if not 0 <= document < len(docs):
        raise EditError(f"document {document} does not exist")
    renderers = lookup(docs[document], at)
    if renderers is not None and not isinstance(renderers, list):
        raise EditError(f"{'.'.join(map(str, at))} is not a list")
    for i, renderer in enumerate(renderers or []):
        kust = renderer.get("kustomize") if isinstance(renderer, Mapping) else None
        patches = kust.get("patches") if isinstance(kust, Mapping) else None
        for n, item in enumerate(patches if isinstance(patches, list) else []):
            if not _same_target(item, target):
                continue
            inline = (*at, i, "kustomize", "patches", n, "patch")
            return edit_inline(text, inline, lambda body: _extend(body, fields), document)
    body: dict[str, Any] = {
        "apiVersion": resource.get("apiVersion"),
        "kind": kind,
        "metadata": {"name": name},
    }
    for logical, value in fields:
        _put(body, logical, value)
    entry = {"target": target, "patch": PLACEHOLDER}
    kustomizes = [
        i
        for i, r in enumerate(renderers or [])
        if isinstance(r, Mapping) and isinstance(r.get("kustomize"), Mapping)
    ]
    if renderers is None:
        text = apply_edits(text, [Set(at, [{"kustomize": {"patches": [entry]}}])], document)
        key: YamlPath = (*at, 0, "kustomize", "patches")
    elif not kustomizes:
        text = apply_edits(text, [AppendUnique(at, {"kustomize": {"patches": [entry]}})], document)
        key = (*at, len(renderers), "kustomize", "patches")
    else:
        # the last one: Flux runs them in order, a later patch of the same field would win
        last = kustomizes[-1]
        key = (*at, last, "kustomize", "patches")
        if renderers[last]["kustomize"].get("patches") is None:
            text = apply_edits(text, [Set(key, [entry])], document)
        else:
            text = apply_edits(text, [AppendUnique(key, entry)], document)
    return write_new_inline(text, key, body, comment, document)


def _same_target(item: Any, target: Mapping[str, str]) -> bool:
    """A ``patches`` item that is a strategic-merge patch written for exactly ``target``."""
    if not isinstance(item, Mapping) or not isinstance(item.get("patch"), str):
        return False
    own = item.get("target")
    if not isinstance(own, Mapping) or any(own.get(k) != v for k, v in target.items()):
        return False
    if own.get("labelSelector") or own.get("annotationSelector"):
        return False
    try:
        docs = load_documents(item["patch"])
    except EditError:
        return False
    return len(docs) == 1 and isinstance(docs[0], Mapping)


def _extend(body: str, fields: Sequence[tuple[LogicalPath, Any]]) -> str:
    """An existing strategic-merge patch's text with ``fields`` set, spliced."""
    for logical, value in fields:
        doc = load_documents(body)[0]
        body = apply_edits(body, [_edit_into(doc, logical, value)])
    return body


def _edit_into(doc: Mapping[str, Any], logical: LogicalPath, value: Any) -> Edit:
    """The one edit that sets ``logical`` in a patch document, creating what is missing."""
    node: Any = doc
    physical: list[str | int] = []
    for n, step in enumerate(logical):
        match = _ITEM.match(step)
        if match:
            if not isinstance(node, list):
                raise EditError(f"{'.'.join(logical[:n])} is not a list in the patch")
            found = [
                i
                for i, v in enumerate(node)
                if isinstance(v, Mapping) and str(v.get(match[1])) == match[2]
            ]
            if not found:
                holder: dict[str, Any] = {"items": []}
                _put(holder, ("items", *logical[n:]), value)
                return AppendUnique(tuple(physical), holder["items"][0], key=match[1])
            physical.append(found[0])
            node = node[found[0]]
            continue
        if not isinstance(node, Mapping) or step not in node:
            if not isinstance(node, Mapping):
                raise EditError(f"{'.'.join(logical[:n])} is not a mapping in the patch")
            holder = {}
            _put(holder, logical[n:], value)
            return Set((*physical, step), holder[step])
        physical.append(step)
        node = node[step]
    return Set(tuple(physical), copy.deepcopy(value))
