"""Flux HelmReleases as Kustomize overlays deploy them, and where their values come from.

A HelmRelease kept in a kustomize base is deployed by the overlays that build it: each overlay
may patch its ``spec.values``, its name or its namespace. Read from its file alone, the release
says what the base says, and a fix verified on that would not reach an overlay whose patch
sets the same values. So every HelmRelease an overlay builds becomes its own deployment
(`OverlayRelease`), whose values are re-read from the overlay's build with the pending edits.
A base that only other kustomizations include is not a deployment itself.

Flux merges a release's values in this order, the later winning: the chart's values files,
each ``valuesFrom`` source in turn, then ``spec.values``. A ``valuesFrom`` ConfigMap is read
when the repository holds it: made by a ``configMapGenerator`` of a kustomization the overlay
builds (its values file is edited in place), or written as a ConfigMap manifest (edited
inside its data block only where that is safe). Secrets are never read nor written: values they
may hold are overridden in ``spec.values``.

Where a fix of ``spec.values`` goes (`OverlayRelease.place`): into the overlay patch that sets
the key (strategic merge or JSON6902, from a file); else into the base document when no other
overlay patches the key (every overlay inherits it); else into a strategic-merge patch of the
finding's overlay (an existing one for this release, or a new file listed in its
kustomization). Every overlay whose chart render changes is re-checked (`bot.regressions`):
when a shared place would make another overlay worse, the fix goes into the finding's overlay
instead. Comments on the values these files set count as the reasons a person gave for them.
"""

from __future__ import annotations

import dataclasses
import hashlib
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import PurePosixPath
from typing import Any

import yaml

from bot.errors import ChartError, RepositoryError
from bot.locate.base import FileOverlay
from bot.locate.gitops import HelmApp, flux_app
from bot.locate.helm_render import deep_merge, load_values_text
from bot.locate.kustomize import KustomizeIndex
from bot.locate.kustomize import _apply as apply_in_patch
from bot.locate.kustomize_build import (
    KustomizeReader,
    LogicalPath,
    Rendered,
    find_kustomization,
    kustomization_dirs,
    logical_path,
    physical_path,
)
from fixers.edits import (
    EditError,
    apply_edits,
    document_span,
    load_document_text,
    load_documents,
    render_manifest,
)
from fixers.intent import Comment, comments_of
from fixers.model import AppendUnique, Edit, YamlPath
from fixers.view import lookup

_VALUES: YamlPath = ("spec", "values")
_POST_RENDERERS: LogicalPath = ("spec", "postRenderers")
PATCH_PREFIX = "remedy-patch-helmrelease-"
DEFAULT_VALUES_KEY = "values.yaml"

Placement = tuple[str, YamlPath, int, str]
"""(repository file, path of the edit in its document, document index, why)."""


@dataclass(frozen=True)
class ValuesSource:
    """One ``valuesFrom`` entry kube-remedy read, as Flux merges it."""

    label: str
    """What it is, for reasons: ``ConfigMap podinfo-values (apps/base/podinfo/values.yaml)``."""
    text: str
    """The ConfigMap key's text."""
    file: str | None
    """The repository file holding it (None: not writable, see ``why_not``)."""
    document: int = 0
    prefix: YamlPath = ()
    """Where the text sits in that document (``("data", key)``: inside a data block)."""
    why_not: str = ""
    values: Mapping[str, Any] = field(default_factory=dict)
    position: int = 0
    """Its place in ``valuesFrom``."""


@dataclass(frozen=True)
class _Read:
    """What one state of the files says about a release: its build and its values sources."""

    release: Rendered
    sources: tuple[ValuesSource, ...]
    unread: tuple[tuple[int, str], ...]
    """The entries not read: (place in ``valuesFrom``, what and why)."""


@dataclass(frozen=True)
class OverlayRelease(HelmApp):
    """A HelmRelease as one kustomization directory builds it (see the module docstring)."""

    overlay_dir: str = ""
    kustomize: KustomizeIndex | None = field(default=None, compare=False, repr=False)
    own_patch: bool = field(default=False, compare=False)
    """Write ``spec.values`` fixes into a patch of this overlay, never into shared files."""
    _reads: dict[str, _Read] = field(default_factory=dict, compare=False, repr=False, hash=False)

    @property
    def where(self) -> str:
        return self.overlay_dir or "."

    # ------------------------------------------------------------------ reading

    def read(self, overlay: FileOverlay) -> _Read:
        """The release and its values sources as the overlay's files (pending edits
        included) build them; read once per state of the files."""
        digest = hashlib.sha256()
        for change in overlay.changes():
            digest.update(f"{change.path}\0{change.after}\0".encode())
        key = digest.hexdigest()
        if key not in self._reads:
            reader = KustomizeReader(overlay)
            index = self.kustomize
            if not overlay.changes() and index is not None and self.overlay_dir in index.built:
                built = index.built[self.overlay_dir]  # the repository as the index built it
            else:
                built = reader.build(self.overlay_dir)
            found = [
                r for r in built if (r.origin, r.index) == (self.manifest, self.document_index)
            ]
            if len(found) != 1:
                raise RepositoryError(f"{self.where} no longer builds HelmRelease {self.name}")
            sources, unread = self._sources(found[0], reader, built)
            self._reads[key] = _Read(found[0], tuple(sources), tuple(unread))
        return self._reads[key]

    def spec_values(self, overlay: FileOverlay) -> dict[str, Any]:
        """``spec.values`` as the overlay renders it."""
        values = lookup(self.read(overlay).release.doc, _VALUES)
        return dict(values) if isinstance(values, Mapping) else {}

    def values(self, overlay: FileOverlay) -> dict[str, Any]:
        """What Flux gives Helm on top of the chart's values files: each ``valuesFrom``
        source in order, then ``spec.values``."""
        merged: dict[str, Any] = {}
        for source in self.read(overlay).sources:
            merged = deep_merge(merged, source.values)
        return deep_merge(merged, self.spec_values(overlay))

    def comments(self, overlay: FileOverlay) -> dict[YamlPath, Comment]:
        """Values key -> the comment on it in the files this release's values come from
        (its values sources, the base's spec.values, then the overlay's strategic-merge
        patches: the later wins, as in the merge)."""
        read = self.read(overlay)
        found: dict[YamlPath, Comment] = {}
        for source in read.sources:
            text = overlay.read(source.file) if source.file and not source.prefix else None
            if text:
                found.update(comments_of(text))
        files = [(self.manifest, self.document_index)]
        files += [
            (t.source.file, t.source.document)
            for t in read.release.touches
            if t.source.kind == "smp" and not t.source.inline
        ]
        for relpath, document in dict.fromkeys(files):
            text = overlay.read(relpath)
            for path, comment in (comments_of(text, document) if text else {}).items():
                if path[: len(_VALUES)] == _VALUES and len(path) > len(_VALUES):
                    found[path[len(_VALUES) :]] = comment
        return found

    def _sources(
        self, release: Rendered, reader: KustomizeReader, built: list[Rendered]
    ) -> tuple[list[ValuesSource], list[tuple[int, str]]]:
        """The ``valuesFrom`` entries read, in Flux's order, and those not read (why)."""
        entries = lookup(release.doc, ("spec", "valuesFrom"))
        read: list[ValuesSource] = []
        unread: list[tuple[int, str]] = []
        for position, entry in enumerate(entries if isinstance(entries, list) else []):
            if not isinstance(entry, Mapping):
                continue
            kind, name = str(entry.get("kind")), str(entry.get("name"))
            key = str(entry.get("valuesKey") or DEFAULT_VALUES_KEY)
            if kind != "ConfigMap":
                unread.append(
                    (position, f"{kind} {name} (kube-remedy never reads a {kind}'s data)")
                )
                continue
            found = self._config_map(reader, built, name, key)
            if found is None:
                if not entry.get("optional"):
                    unread.append((position, f"ConfigMap {name} (not in the repository)"))
                continue
            if isinstance(found, str):
                unread.append((position, f"ConfigMap {name} ({found})"))
                continue
            target = entry.get("targetPath")
            try:
                if target:
                    # the key holds one flat value, typed the way `helm --set` types it
                    values = _at_path(str(target), yaml.safe_load(found.text))
                    why = f"its key {key} is merged at targetPath {target}"
                    found = dataclasses.replace(found, file=None, why_not=why)
                else:
                    values = load_values_text(found.text, found.label)
            except (ChartError, yaml.YAMLError) as exc:
                unread.append((position, f"ConfigMap {name} ({str(exc).splitlines()[0]})"))
                continue
            read.append(dataclasses.replace(found, values=values, position=position))
        return read, unread

    def _config_map(
        self, reader: KustomizeReader, built: list[Rendered], name: str, key: str
    ) -> ValuesSource | str | None:
        """The ConfigMap ``name``'s ``key``: from a generator of the overlay's kustomizations
        (the outermost wins), else a ConfigMap manifest the overlay builds; a string says
        why it is not read."""
        generated: tuple[str, str] | None = None
        literal = False
        for folder in _chain(reader, self.overlay_dir):
            _, kust = reader.kustomization(folder)
            for gen in kust.get("configMapGenerator") or []:
                if not isinstance(gen, Mapping) or gen.get("name") != name:
                    continue
                for item in gen.get("files") or []:
                    file_key, _, path = str(item).rpartition("=")
                    if (file_key or PurePosixPath(path).name) != key:
                        continue
                    try:
                        generated = (folder, _normal(f"{folder}/{path}".lstrip("/")))
                    except RepositoryError:
                        return f"its file {path} lies outside the repository"
                literal = literal or any(
                    str(item).partition("=")[0] == key for item in gen.get("literals") or []
                )
        if generated is not None:
            folder, relpath = generated
            text = reader.overlay.read(relpath)
            if text is None:
                return f"its file {relpath} does not exist"
            label = f"ConfigMap {name} ({relpath}, configMapGenerator of {folder or '.'})"
            return ValuesSource(label, text, relpath)
        if literal:
            return f"its key {key} is a generator literal, which kube-remedy does not edit"
        for res in built:
            if res.kind == "ConfigMap" and name in res.names:
                return _manifest_source(res, key, reader.overlay)
        return None

    # ------------------------------------------------------------------ writing

    def place(
        self,
        path: YamlPath,
        overlay: FileOverlay,
        file_depth: int,
        vendored: bool,
        depth: Callable[[Any, YamlPath], int],
    ) -> Placement | None:
        """Where the fix of values key ``path`` goes, or None when a values file of the chart
        holds more of ``path`` than every source of this release (the files decide)."""
        read = self.read(overlay)
        sources, unread = read.sources, read.unread
        spec = self.spec_values(overlay)
        layers: list[tuple[int, int, ValuesSource | None]] = [
            (depth(s.values, path), n, s) for n, s in enumerate(sources)
        ]
        layers.append((depth(spec, path), len(sources), None))
        best, _, source = max(layers, key=lambda item: item[:2])
        if best and best >= file_depth:
            if source is None:
                return self._spec_place(path, overlay, "")
            later = [w for n, w in unread if n > source.position]
            if later:
                why = f"{', '.join(later)} may override it (valuesFrom, merged after it)"
                return self._spec_place(
                    path, overlay, f"{source.label} sets this key but {why}; spec.values wins"
                )
            if source.file is not None and not self.own_patch:
                why = f"{source.label} sets this key and wins over the chart's values files"
                return source.file, (*source.prefix, *path), source.document, why
            why = source.why_not or "the overlay must not change a shared file"
            return self._spec_place(
                path, overlay, f"{source.label} sets this key but {why}; spec.values wins over it"
            )
        if unread:
            return self._spec_place(
                path,
                overlay,
                f"spec.values wins over {', '.join(w for _, w in unread)}, merged through "
                "valuesFrom",
            )
        if vendored:
            return self._spec_place(
                path,
                overlay,
                "the chart's own files are not edited (vendored or remote); spec.values "
                "overrides them",
            )
        return None

    def _spec_place(self, path: YamlPath, overlay: FileOverlay, why: str) -> Placement:
        rendered = self.read(overlay).release
        try:
            logical = logical_path(rendered.doc, (*_VALUES, *path))
        except RepositoryError:
            logical = tuple(str(s) for s in (*_VALUES, *path))
        said = f"{why}; " if why else ""
        if self.own_patch:
            return self._own_patch(rendered, path, overlay, said)
        touch = rendered.source_of(logical)
        if touch is not None:
            if touch.where is None or touch.source.inline:
                raise ChartError(
                    f"{'.'.join(logical)} of HelmRelease {self.name} is set by a patch in "
                    f"{touch.source.file} that cannot be edited in place (inline or a delete); "
                    "edit it by hand"
                )
            doc = _document(overlay, touch.source.file, touch.source.document)
            rest = physical_path(lookup(doc, touch.where), logical[len(touch.path) :])
            if rest is None:
                raise ChartError(f"cannot trace {'.'.join(logical)} inside {touch.source.file}")
            why = f"{said}the values patch {touch.source.file} sets it for the {self.where} overlay"
            return touch.source.file, (*touch.where, *rest), touch.source.document, why
        self._refuse_partly_patched(rendered, logical)
        others = self._patched_elsewhere(rendered, logical)
        if others:
            why = f"{said}overlays {', '.join(others)} patch it differently"
            return self._own_patch(rendered, path, overlay, f"{why}; ")
        why = (
            f"{said}the base {self.manifest} sets spec.values for every overlay that builds it "
            "(none patches this key)"
        )
        return self.manifest, (*_VALUES, *path), self.document_index, why

    def post_render_place(self, overlay: FileOverlay) -> Placement:
        """Where a Flux post-renderer patch of this release goes (the file, the path of its
        ``spec.postRenderers`` there, the document, why): where the overlay's build takes the
        list from, the base when every overlay inherits it, else a patch of this overlay."""
        rendered = self.read(overlay).release
        field_path: LogicalPath = _POST_RENDERERS
        if self.own_patch:
            return self._own_post_render(rendered, overlay, "")
        touch = rendered.source_of(field_path)
        if touch is not None:
            if touch.where is None or touch.source.inline or touch.path != field_path:
                raise ChartError(
                    f"spec.postRenderers of HelmRelease {self.name} is set by a patch in "
                    f"{touch.source.file} that cannot be edited in place; edit it by hand"
                )
            why = f"the patch {touch.source.file} sets its post-renderers for the {self.where} overlay"
            return touch.source.file, touch.where, touch.source.document, why
        self._refuse_partly_patched(rendered, field_path)
        others = self._patched_elsewhere(rendered, field_path)
        if others:
            why = f"overlays {', '.join(others)} patch its post-renderers differently; "
            return self._own_post_render(rendered, overlay, why)
        why = (
            f"the base {self.manifest} holds the post-renderers of every overlay that builds it "
            "(none patches them)"
        )
        return self.manifest, _POST_RENDERERS, self.document_index, why

    def _own_post_render(self, rendered: Rendered, overlay: FileOverlay, why: str) -> Placement:
        """A patch of this overlay holding the release's post-renderers; refused when the
        base has some the patch would replace (a list is replaced whole)."""
        relpath, at, document, said = self._own_patch(rendered, (), overlay, why, _POST_RENDERERS)
        touch = rendered.source_of(_POST_RENDERERS)
        inherited = lookup(rendered.doc, _POST_RENDERERS) is not None and (
            touch is None or touch.source.file != relpath
        )
        if inherited:
            raise ChartError(
                f"HelmRelease {self.name} takes spec.postRenderers from {self.manifest}; a patch "
                f"of the {self.where} overlay would replace them all; add the fix by hand"
            )
        return relpath, at, document, said

    def _refuse_partly_patched(self, rendered: Rendered, logical: LogicalPath) -> None:
        """`ChartError` when a patch sets a field below ``logical``: no one file holds the
        value to edit."""
        below = rendered.touched_below(logical)
        if below:
            raise ChartError(
                f"{'.'.join(logical)} of HelmRelease {self.name} is partly set by a patch in "
                f"{below[0].source.file}; edit it by hand"
            )

    def _patched_elsewhere(self, rendered: Rendered, logical: LogicalPath) -> list[str]:
        """Other kustomizations building this release whose patches set ``logical``, a field
        above it or below it (a fix in the base would not reach them alike)."""
        out = []
        index = self.kustomize
        for folder, resources in (index.built if index else {}).items():
            if folder == self.overlay_dir:
                continue
            for other in resources:
                if (other.origin, other.index) != (self.manifest, self.document_index):
                    continue
                for touch in other.touches:
                    n = min(len(touch.path), len(logical))
                    if touch.path[:n] == logical[:n] and touch not in rendered.touches:
                        out.append(folder or ".")
                        break
        return sorted(set(out))

    def _own_patch(
        self,
        rendered: Rendered,
        path: YamlPath,
        overlay: FileOverlay,
        why: str,
        under: YamlPath = _VALUES,
    ) -> Placement:
        """A strategic-merge patch of this overlay for the release: one of its own that
        already patches the release, else a new file listed in its kustomization."""
        folder = self.overlay_dir
        name = rendered.names[0]
        kust_file, kust = KustomizeReader(overlay).kustomization(folder)
        for touch in rendered.touches:
            source = touch.source
            if (
                source.kind == "smp"
                and not source.inline
                and PurePosixPath(source.file).parent.as_posix() == (folder or ".")
                and _patches_only(kust, PurePosixPath(source.file).name, name)
            ):
                return (
                    source.file,
                    (*under, *path),
                    source.document,
                    f"{why}the fix extends the {self.where} overlay's patch {source.file}",
                )
        file_name = f"{PATCH_PREFIX}{name}.yaml"
        relpath = f"{folder}/{file_name}" if folder else file_name
        if overlay.read(relpath) is None:
            body: dict[str, Any] = {
                "apiVersion": rendered.doc.get("apiVersion"),
                "kind": "HelmRelease",
                "metadata": {"name": name},
                "spec": {under[-1]: {} if under == _VALUES else []},
            }
            what = "values" if under == _VALUES else "post-renderers"
            comment = f"kube-remedy: {what} only the {self.where} overlay changes"
            overlay.write(relpath, render_manifest(body, comment))
            entry = {"path": file_name, "target": {"kind": "HelmRelease", "name": name}}
            try:
                text = apply_edits(
                    overlay.read(kust_file) or "", [AppendUnique(("patches",), entry, key="path")]
                )
            except EditError as exc:
                raise ChartError(f"{kust_file}: {exc}") from None
            overlay.write(kust_file, text)
        why = f"{why}the fix goes into a patch of the {self.where} overlay ({relpath})"
        return relpath, (*under, *path), 0, why


# --------------------------------------------------------------------------- building


def overlay_releases(
    root: Any, apps: Sequence[HelmApp], kustomize: KustomizeIndex | None = None
) -> list[HelmApp]:
    """``apps`` with each HelmRelease that kustomize overlays build replaced by one
    `OverlayRelease` per deploying overlay; ``kustomize``: the repository's index, when the
    caller has built it already."""
    releases = {(a.manifest, a.document_index): a for a in apps if a.kind == "HelmRelease"}
    if not releases:
        return list(apps)
    if kustomize is None:
        if not kustomization_dirs(root):
            return list(apps)
        kustomize = KustomizeIndex.build(root)
    own_file = {f: find_kustomization(kustomize.root, f) for f in kustomize.built}
    built: dict[str, list[HelmApp]] = {}
    replaced: set[tuple[str, int]] = set()
    for folder, rendered in kustomize.built.items():
        for res in rendered:
            if res.kind != "HelmRelease" or (res.origin, res.index) not in releases:
                continue
            app = flux_app(res.origin, res.index, res.doc)
            if app is None:
                continue
            release = OverlayRelease(
                **{f.name: getattr(app, f.name) for f in dataclasses.fields(HelmApp)},
                overlay_dir=folder,
                kustomize=kustomize,
            )
            try:
                unread = [w for _, w in release.read(FileOverlay(kustomize.root)).unread]
            except RepositoryError as exc:
                unread = [f"its values sources ({exc})"]
            release = dataclasses.replace(
                release,
                name=f"{app.name} (kustomize overlay {folder or '.'})",
                inline_path=None,
                read_only_why=f"the kustomize overlay {folder or '.'}",
                unread_values=tuple(unread),
            )
            built.setdefault(folder, []).append(release)
            replaced.add((res.origin, res.index))
    # a base other kustomizations include is not deployed on its own (unless Flux or Argo CD
    # points at it)
    included = {
        f
        for f in built
        if any(own_file[f] in files for g, files in kustomize.files.items() if g != f)
    }
    deploying = set(kustomize.deployed) | (set(built) - included)
    out = [a for a in apps if (a.manifest, a.document_index) not in replaced]
    for folder in sorted(built):
        if folder in deploying:
            out.extend(built[folder])
    return out


# --------------------------------------------------------------------------- checking


def changed_overlays(
    apps: Sequence[HelmApp],
    overlay: FileOverlay,
    render: Callable[[HelmApp, FileOverlay], list[dict[str, Any]]],
    new_failures: Callable[[list[dict[str, Any]], list[dict[str, Any]]], list[str]],
) -> tuple[list[str], str | None]:
    """The overlays among ``apps`` whose render changes with the overlay's edits, and why
    one of them gets worse (None when none does)."""
    unedited = FileOverlay(overlay.root)
    changed: list[str] = []
    for app in apps:
        if not isinstance(app, OverlayRelease):
            continue
        try:
            before = render(app, unedited)
        except RepositoryError:
            before = []
        after = render(app, overlay)
        if before == after:
            continue
        changed.append(app.where)
        failures = new_failures(before, after)
        if failures:
            more = f" (and {len(failures) - 1} more)" if len(failures) > 1 else ""
            return changed, f"the edit would make overlay {app.where} worse: {failures[0]}{more}"
    return changed, None


# --------------------------------------------------------------------------- editing


def apply_values_edits(text: str, edits: Sequence[Edit], document_index: int = 0) -> str:
    """`apply_edits`, also inside a JSON6902 patch (a list of operations) and inside a
    ConfigMap's literal data block holding values (edited as its own YAML text, refused where
    the block is not one plain ``|`` scalar)."""
    if "ConfigMap" not in text and "op:" not in text:  # a values file or manifest: as ever
        return apply_edits(text, edits, document_index)
    doc = _document_data(text, document_index)
    inner: dict[YamlPath, list[Edit]] = {}
    plain: list[Edit] = []
    for edit in edits:
        cut = _string_at(doc, edit.path)
        if cut is None:
            plain.append(edit)
        else:
            inner.setdefault(edit.path[:cut], []).append(
                dataclasses.replace(edit, path=edit.path[cut:])
            )
    for where, moved in inner.items():
        text = _edit_block(text, document_index, where, moved)
    if plain:
        if isinstance(doc, list):
            text = apply_in_patch(text, plain, document_index)
        else:
            text = apply_edits(text, plain, document_index)
    return text


def _document_data(text: str, document_index: int) -> Any:
    """The data of one document of ``text``, parsed once per distinct document text (a big
    values file is edited once per change set, and the applier's check parses it too)."""
    try:
        begin, end = document_span(text, document_index)
    except EditError:
        raise EditError(f"document {document_index} does not exist") from None
    try:
        return load_document_text(text[begin:end].removeprefix("\ufeff"))
    except yaml.YAMLError:
        load_documents(text)  # raises the syntax error, located in the whole file
        raise


def _string_at(doc: Any, path: YamlPath) -> int | None:
    """2 when ``path`` goes into the values text of a ConfigMap's data key, else None."""
    if not isinstance(doc, Mapping) or doc.get("kind") != "ConfigMap" or len(path) < 3:
        return None
    data = doc.get("data")
    text = data.get(path[1]) if path[0] == "data" and isinstance(data, Mapping) else None
    return 2 if isinstance(text, str) else None


def _edit_block(text: str, document_index: int, where: YamlPath, edits: Sequence[Edit]) -> str:
    """Edit the YAML text held by the literal block scalar at ``where``; refused (EditError)
    unless the block is ``|`` with one indentation and the result reads back as intended."""
    node = _node_at(text, document_index, where)
    if not isinstance(node, yaml.ScalarNode) or node.style != "|":
        raise EditError(f"{'.'.join(map(str, where))} is not a literal block (|) of values")
    lines = text.splitlines(keepends=True)
    header = lines[node.start_mark.line]
    if header[node.start_mark.column :].strip() != "|":
        raise EditError(f"{'.'.join(map(str, where))}: only a plain | block is edited")
    first = node.start_mark.line + 1
    last = node.end_mark.line if node.end_mark.column == 0 else node.end_mark.line + 1
    body = lines[first:last]
    while body and not body[-1].strip():
        body.pop()
    indent = min((len(ln) - len(ln.lstrip(" ")) for ln in body if ln.strip()), default=0)
    if not body or indent == 0 or any("\t" in ln[:indent] for ln in body):
        raise EditError(f"{'.'.join(map(str, where))}: the block's indentation is not plain")
    inner = "".join(ln[indent:] if ln.strip() else ln.lstrip(" ") for ln in body)
    if inner != node.value:
        raise EditError(f"{'.'.join(map(str, where))}: the block does not read back as written")
    edited = apply_edits(inner, edits)
    out = [(" " * indent + ln) if ln.strip() else ln for ln in edited.splitlines(keepends=True)]
    result = "".join([*lines[:first], *out, *lines[first + len(body) :]])
    if lookup(load_documents(result)[document_index], where) != edited:
        raise EditError(f"{'.'.join(map(str, where))}: the edited block does not read back")
    return result


def _node_at(text: str, document_index: int, where: YamlPath) -> yaml.Node | None:
    try:
        nodes = list(yaml.compose_all(text.removeprefix("\ufeff"), Loader=yaml.SafeLoader))
    except yaml.YAMLError as exc:
        raise EditError(str(exc)) from None
    node: yaml.Node | None = nodes[document_index] if document_index < len(nodes) else None
    for step in where:
        if isinstance(node, yaml.MappingNode):
            node = next((v for k, v in node.value if k.value == step), None)
        elif isinstance(node, yaml.SequenceNode) and isinstance(step, int):
            node = node.value[step] if 0 <= step < len(node.value) else None
        else:
            return None
    return node


# --------------------------------------------------------------------------- helpers


def _chain(reader: KustomizeReader, folder: str, depth: int = 0) -> list[str]:
    """``folder`` and every kustomization its build includes, innermost first."""
    if depth > 32:
        raise RepositoryError(f"{folder}: kustomizations nest too deep")
    _, kust = reader.kustomization(folder)
    out: list[str] = []
    for key in ("resources", "bases", "components"):
        for ref in kust.get(key) or []:
            if not isinstance(ref, str) or "://" in ref:
                continue
            target = _normal(f"{folder}/{ref}".lstrip("/"))
            if find_kustomization(reader.root, target, reader.overlay) is not None:
                out.extend(f for f in _chain(reader, target, depth + 1) if f not in out)
    return [*out, folder]


def _normal(relpath: str) -> str:
    parts: list[str] = []
    for part in PurePosixPath(relpath).parts:
        if part == "..":
            if not parts:
                raise RepositoryError(f"{relpath} leaves the repository")
            parts.pop()
        elif part not in (".", "/"):
            parts.append(part)
    return "/".join(parts)


def _manifest_source(res: Rendered, key: str, overlay: FileOverlay) -> ValuesSource | str:
    """A ConfigMap manifest's data key as a values source: writable only when it is a plain
    literal block no patch sets."""
    data = res.doc.get("data")
    text = data.get(key) if isinstance(data, Mapping) else None
    if not isinstance(text, str):
        return f"its data has no key {key}"
    label = f"ConfigMap {res.name} ({res.origin}, data key {key})"
    why_not = ""
    if res.source_of(("data", key)) or res.touched_below(("data", key)):
        why_not = "a kustomize patch sets its data"
    else:
        try:
            node = _node_at(overlay.read(res.origin) or "", res.index, ("data", key))
        except EditError:
            node = None
        if not isinstance(node, yaml.ScalarNode) or node.style != "|":
            why_not = f"its data key {key} is not a literal block (|) kube-remedy can edit safely"
    return ValuesSource(
        label, text, None if why_not else res.origin, res.index, ("data", key), why_not
    )


def _patches_only(kust: Mapping[str, Any], file_name: str, name: str) -> bool:
    """Whether the kustomization applies its patch file ``file_name`` to the release ``name``
    alone (its own metadata, or a target naming it): extending it changes nothing else."""
    for key in ("patches", "patchesStrategicMerge"):
        for item in kust.get(key) or []:
            path = item.get("path") if isinstance(item, Mapping) else item
            if path != file_name and not (isinstance(path, str) and path.endswith(f"/{file_name}")):
                continue
            target = item.get("target") if isinstance(item, Mapping) else None
            return target is None or (
                isinstance(target, Mapping)
                and target.get("name") == name
                and not target.get("labelSelector")
                and not target.get("annotationSelector")
            )
    return False


def _at_path(target: str, value: Any) -> dict[str, Any]:
    """``value`` set at a dotted ``targetPath``."""
    steps = target.split(".")
    out: dict[str, Any] = {}
    node = out
    for step in steps[:-1]:
        node = node.setdefault(step, {})
    node[steps[-1]] = value
    return out


def _document(overlay: FileOverlay, path: str, index: int) -> Any:
    text = overlay.read(path)
    if text is None:
        raise ChartError(f"{path} does not exist")
    try:
        return load_documents(text.removeprefix("\ufeff"))[index]
    except (EditError, IndexError) as exc:
        raise ChartError(f"{path} does not parse: {exc}") from None
