"""Find the manifest document in cd-config that defines a finding's resource."""

from __future__ import annotations

import os
import re
from collections.abc import Iterator, Mapping, Sequence
from collections.abc import Set as AbstractSet
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path, PurePosixPath
from typing import Any

import yaml

from bot.errors import RepositoryError, YamlEditError
from bot.locate.base import FileOverlay, read_exact, real_relpath, safe_relpath
from bot.locate.gitops import Namespaces, deployed_namespaces
from bot.locate.kustomize_build import find_kustomization
from bot.model import Location
from bot.safe_load import check_bounds, node_budget
from fixers.edits import (
    EditError,
    apply_edits,
    document_span,
    load_document_text,
    load_documents,
    render_manifest,
)
from fixers.model import AnyEdit, AppendUnique, CreateManifest, Finding
from fixers.view import (
    POD_SPEC_PATHS,
    ManifestPodView,
    Neighbourhood,
    PodView,
    bound_service_accounts,
    list_items,
    lookup,
)

YAML_SUFFIXES = (".yaml", ".yml")
SKIP_DIRS = frozenset({".git", "node_modules", ".venv", "__pycache__"})


BOM = "\ufeff"
MAX_MANIFEST_BYTES = 16 * 1024 * 1024


@lru_cache(maxsize=128)
def parsed_documents(text: str) -> tuple[Any, ...]:
    """`load_documents`, memoised on the text: a file is re-read after every edit of a change
    set, and most reads see a text that was already parsed (the documents are never mutated).
    A leading UTF-8 byte order mark is not part of the YAML."""
    return tuple(load_documents(text.removeprefix(BOM)))


@lru_cache(maxsize=512)
def parsed_document(text: str, index: int) -> Any:
    """Document ``index`` of a multi-document file, parsing only that document's text."""
    text = text.removeprefix(BOM)
    begin, end = document_span(text, index)
    try:
        return load_document_text(text[begin:end])
    except yaml.YAMLError:
        raise EditError(f"document {index} does not parse") from None


@lru_cache(maxsize=512)
def parsed_view(text: str, index: int) -> ManifestPodView | None:
    """The workload view of `parsed_document` (None when it is not a workload with a pod
    spec), built once per text: the planner re-reads a target for every finding it verifies."""
    return ManifestPodView.from_document(parsed_document(text, index))


def iter_yaml_files(root: Path) -> Iterator[str]:
    """Repository-relative POSIX paths of YAML files outside Helm chart directories."""
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = sorted(d for d in dirnames if d not in SKIP_DIRS and not d.startswith("."))
        if "Chart.yaml" in filenames:
            dirnames[:] = []  # a chart: its templates are not manifests; the Helm locator owns it
            continue
        for name in sorted(filenames):
            if name.endswith(YAML_SUFFIXES):
                yield (Path(dirpath) / name).relative_to(root).as_posix()


@dataclass(frozen=True)
class DocumentRef:
    path: str
    index: int
    kind: str
    name: str
    namespace: str | None
    containers: tuple[str, ...] | None = None
    """Container names of a workload (None: not a workload)."""


def _container_names(doc: Mapping[str, Any]) -> tuple[str, ...] | None:
    spec = lookup(doc, POD_SPEC_PATHS.get(str(doc.get("kind")), ("-",)))
    if not isinstance(spec, Mapping):
        return None
    return tuple(
        str(c.get("name"))
        for key in ("initContainers", "containers")
        for c in spec.get(key) or ()
        if isinstance(c, Mapping)
    )


@dataclass
class ManifestIndex:
    """Every Kubernetes object defined in the repository's plain manifests."""

    root: Path
    documents: list[DocumentRef] = field(default_factory=list)
    unreadable: dict[str, str] = field(default_factory=dict)
    """path -> why it could not be read: it does not parse (with the line), it is over the
    bounds, or it is a symlink the bot refuses to follow (reported per finding, never fatal)."""
    links: dict[str, str] = field(default_factory=dict)
    """symlink path -> the repository file it points at (documents are indexed there)."""
    network_policies: list[Mapping[str, Any]] = field(default_factory=list)
    neighbourhood: Neighbourhood = field(default_factory=Neighbourhood)
    """The workloads, RBAC-bound ServiceAccounts and Services a new NetworkPolicy meets."""
    namespaces: Namespaces = field(default_factory=Namespaces)
    """The namespaces deployments give manifests that set none (Argo CD, Flux, kustomize)."""
    _by_name: dict[tuple[str, str], list[DocumentRef]] = field(default_factory=dict, repr=False)
    _indexed: set[str] = field(default_factory=set, repr=False)
    _targets: dict[DocumentRef, ManifestTarget | str] = field(default_factory=dict, repr=False)

    @classmethod
    def build(
        cls,
        root: Path,
        paths: Sequence[str] | None = None,
        default_namespace: str = "default",
        skip: AbstractSet[str] = frozenset(),
    ) -> ManifestIndex:
        """The index of ``paths`` (default: every YAML file outside charts) but ``skip``
        (files that are no manifests: kustomize patches)."""
        index = cls(root=root, namespaces=deployed_namespaces(root, default_namespace))
        for relpath in paths if paths is not None else iter_yaml_files(root):
            if relpath not in skip:
                index.add_file(relpath)
        return index

    def real_path(self, relpath: str) -> str | None:
        """The file ``relpath`` stands for (a symlink's target in the repository), or None when
        it is refused (the reason is in `unreadable`)."""
        if relpath in self.unreadable:
            return None
        if not relpath.isprintable():
            # A forge never writes such a name (bot.forge.base.check_repo_path): refuse the
            # finding here, alone, instead of failing the whole run at commit time.
            self.unreadable[relpath] = (
                f"{relpath!r} has control characters in its path; refusing it (rename it)"
            )
            return None
        if relpath not in self.links:
            try:
                self.links[relpath] = real_relpath(self.root, relpath)
            except RepositoryError as exc:
                self.unreadable[relpath] = str(exc)
                return None
        return self.links[relpath]

    def add_file(self, relpath: str) -> None:
        real = self.real_path(relpath)
        if real is None or real in self._indexed:
            return
        self._indexed.add(real)
        relpath = real
        try:
            path = safe_relpath(self.root, relpath)
            if path.stat().st_size > MAX_MANIFEST_BYTES:
                raise RepositoryError(
                    f"{relpath} is over the limit of {MAX_MANIFEST_BYTES // 1048576} MB "
                    "for a manifest; refusing it"
                )
            text = read_exact(path)
            docs = parsed_documents(text)
            budget = node_budget(len(text))
            for i, doc in enumerate(docs):
                check_bounds(
                    doc, relpath, max_nodes=budget, where=f" in document {i}", error=RepositoryError
                )
        except EditError as exc:
            self.unreadable[relpath] = _does_not_parse(relpath, str(exc))
            return
        except UnicodeDecodeError:
            self.unreadable[relpath] = f"{relpath} is not UTF-8 text"
            return
        except (RepositoryError, OSError) as exc:
            self.unreadable[relpath] = str(exc)
            return
        for i, doc in enumerate(docs):
            if isinstance(doc, Mapping) and doc.get("kind") == "NetworkPolicy":
                self.network_policies.append(doc)
            if isinstance(doc, Mapping):
                self.neighbourhood.add(doc)
                self._bind_where_deployed(relpath, doc)
            if isinstance(doc, Mapping) and "kind" in doc:
                meta = doc.get("metadata") or {}
                if isinstance(meta, Mapping) and meta.get("name"):
                    namespace = str(meta["namespace"]) if meta.get("namespace") else None
                    kind, name = str(doc["kind"]), str(meta["name"])
                    ref = DocumentRef(relpath, i, kind, name, namespace, _container_names(doc))
                    self.documents.append(ref)
                    self._by_name.setdefault((ref.kind, ref.name), []).append(ref)

    def _bind_where_deployed(self, relpath: str, doc: Mapping[str, Any]) -> None:
        """A binding's subjects without a namespace of their own are in the namespace its
        deployment gives it (Argo CD, Flux, kustomize), which may not be the one it writes."""
        meta = doc.get("metadata")
        own = meta.get("namespace") if isinstance(meta, Mapping) else None
        bound = [name for ns, name in bound_service_accounts(doc) if ns == own]
        if bound:
            self.neighbourhood.api_accounts += [
                (ns, name)
                for ns in sorted(self.namespaces.of(relpath, str(own) if own else None))
                for name in bound
            ]

    def deployed_accounts(
        self, relpath: str, namespace: str | None, accounts: Sequence[tuple[str | None, str]]
    ) -> tuple[tuple[str | None, str], ...]:
        """``accounts`` and, for a document at ``relpath`` writing ``namespace``, those bound
        in a namespace its deployment gives it, as if in ``namespace``: the pod's view keeps
        the namespace it writes (`fixers.view.calls_the_api` compares with it)."""
        deployed = self.namespaces.of(relpath, namespace)
        extra = [
            (namespace, name)
            for ns, name in accounts
            if ns in deployed and (ns or "default") != (namespace or "default")
        ]
        return tuple(dict.fromkeys([*accounts, *extra]))

    def find(self, finding: Finding) -> list[DocumentRef]:
        """Documents that are the finding's resource: same kind and name, same namespace
        (`namespace_matches`) and, when the finding names a container, one of that name."""
        res = finding.resource
        return [
            ref
            for ref in self._by_name.get((res.kind, res.name), ())
            if self.namespace_matches(ref, finding)
            and (not finding.container or finding.container in (ref.containers or ()))
        ]

    def namespace_matches(self, ref: DocumentRef, finding: Finding) -> bool:
        """Is the document in the namespace the finding names?

        A cluster scan names the namespace the deployment gives the document (`Namespaces`);
        a scan of files names the document's own namespace (``default`` or none when unset)."""
        wanted = finding.resource.namespace
        if wanted is None:
            return ref.namespace in (None, "default")
        if finding.source.path is not None and wanted == (ref.namespace or "default"):
            return True  # a file scanner reports the file as written
        return wanted in self.namespaces.of(ref.path, ref.namespace)

    def target(self, ref: DocumentRef) -> ManifestTarget | str:
        """The target for a document, built once per index."""
        if ref not in self._targets:
            self._targets[ref] = ManifestTarget.load(self.root, ref)
        return self._targets[ref]


@lru_cache(maxsize=4096)
def _hint_candidates(root: Path, hint: str) -> tuple[str, ...]:
    """Repository paths a scanner's source path may refer to (scans often ran from elsewhere)."""
    hint = (
        hint.replace("\\", "/").split(":", 1)[0]
        if ":" in hint and not hint.startswith("/")
        else hint
    )
    parts = [p for p in PurePosixPath(hint).parts if p not in ("/", ".")]
    if ".." in parts:
        raise RepositoryError(f"report path {hint!r} escapes the repository; refusing it")
    out = []
    for start in range(len(parts)):
        candidate = "/".join(parts[start:])
        if candidate and ((root / candidate).is_file() or (root / candidate).is_symlink()):
            out.append(candidate)
    return tuple(out)


def _does_not_parse(relpath: str, error: str) -> str:
    """'path:line:column: does not parse: problem' from an `EditError` message."""
    found = re.search(r"at line (\d+), column (\d+): (.*)", error)
    if found is None:
        return f"{relpath} does not parse: {error}"
    return f"{relpath}:{found[1]}:{found[2]}: does not parse: {found[3]}"


def locate_manifest(finding: Finding, index: ManifestIndex) -> ManifestTarget | str:
    """The manifest target for a finding, or the reason it cannot be found."""
    res = finding.resource
    matches = index.find(finding)
    refused: list[str] = []
    hinted: list[DocumentRef] = []
    if finding.source.path:
        try:
            candidates = _hint_candidates(index.root, finding.source.path)
        except RepositoryError as exc:
            return str(exc)
        real = {index.real_path(c) for c in candidates}
        refused = [index.unreadable[c] for c in candidates if c in index.unreadable]
        refused += [index.unreadable[r] for r in real if r is not None and r in index.unreadable]
        hinted = [m for m in matches if m.path in real]
        if finding.source.document_index is not None:
            exact = [m for m in hinted if m.index == finding.source.document_index]
            hinted = exact or hinted
        if hinted:
            matches = hinted
    if len(matches) > 1 and finding.source.line is not None:
        matches = _at_line(index.root, matches, finding.source.line) or matches
    if refused and not hinted:  # the file the scanner read is refused: never another copy
        return f"{refused[0]} (it should define {res})"
    if not matches:
        unread = "; ".join(list(index.unreadable.values())[:3])
        unread = f"; not read: {unread}" if unread else ""
        return f"not in this repository: {_mismatch(finding, index)}{unread}"
    if len(matches) > 1:
        places = ", ".join(f"{m.path}#{m.index}" for m in matches[:4])
        return f"{res} is defined in several places ({places}); refusing to guess which one"
    return index.target(matches[0])


def _mismatch(finding: Finding, index: ManifestIndex) -> str:
    """Why no document is the finding's resource, naming the near misses."""
    res = finding.resource
    where = f" (scanner said {finding.source.path})" if finding.source.path else ""
    same_name = index._by_name.get((res.kind, res.name), [])
    if not same_name:
        return f"no manifest defines {res}{where}"
    in_ns = [r for r in same_name if index.namespace_matches(r, finding)]
    if not in_ns:
        found = ", ".join(
            f"{r.path} ({'/'.join(sorted(index.namespaces.of(r.path, r.namespace)))})"
            for r in same_name[:3]
        )
        return f"no manifest defines {res}{where}; same name in another namespace: {found}"
    found = ", ".join(f"{r.path} ({', '.join(r.containers or ()) or 'none'})" for r in in_ns[:3])
    return f"{res} has no container {finding.container!r}{where}; containers: {found}"


def _at_line(root: Path, matches: list[DocumentRef], line: int) -> list[DocumentRef]:
    """The one document of a file that holds ``line`` (1-based), when the candidates are
    documents of that one file (a file repeating an object, as Checkov reports it by line)."""
    if len({m.path for m in matches}) != 1:
        return []
    text = read_exact(safe_relpath(root, matches[0].path)).removeprefix(BOM)
    found = []
    for match in matches:
        try:
            begin, end = document_span(text, match.index)
        except EditError:
            continue
        first = text.count("\n", 0, begin) + 1
        last = first + text.count("\n", begin, end)
        if first <= line <= last:
            found.append(match)
    return found if len(found) == 1 else []


@dataclass
class ManifestTarget:
    """A workload document in a plain manifest file."""

    location: Location
    root: Path

    @classmethod
    def load(
        cls, root: Path, ref: DocumentRef, overlay: FileOverlay | None = None
    ) -> ManifestTarget | str:
        """The target of ``ref``, or why its document is not a workload that can be fixed."""
        target = cls(Location("manifest", ref.path, ref.index), root)
        if overlay is None and ref.containers is not None:
            return target  # the index read it from the repository: a workload with a pod spec
        view = target.reread(overlay or FileOverlay(root))
        return view if isinstance(view, str) else target

    @property
    def view(self) -> PodView:
        """The document's view as it is in the repository, parsed again on each use: a big
        report holds a target per workload for the whole plan, and holding every parsed
        document would cost several times the report's size."""
        view = self.reread(FileOverlay(self.root))
        if isinstance(view, str):
            raise RepositoryError(view)
        return view

    def write(self, edits: Sequence[AnyEdit], overlay: FileOverlay) -> None:
        yaml_edits = [e for e in edits if not isinstance(e, CreateManifest)]
        if yaml_edits:
            text = overlay.read(self.location.path)
            if text is None:
                raise RepositoryError(f"{self.location.path} no longer exists")
            bom = BOM if text.startswith(BOM) else ""  # kept byte for byte
            try:
                new = apply_edits(text.removeprefix(BOM), yaml_edits, self.location.document_index)
            except EditError as exc:
                raise YamlEditError(f"{self.location.path}: {exc}") from exc
            overlay.write(self.location.path, bom + new)
        for edit in edits:
            if isinstance(edit, CreateManifest):
                self._create(edit, overlay)

    def _create(self, edit: CreateManifest, overlay: FileOverlay) -> None:
        folder = PurePosixPath(self.location.path).parent
        relpath = (folder / f"{edit.name}.yaml").as_posix()
        content = render_manifest(edit.document, edit.comment)
        existing = overlay.read(relpath)
        if existing is not None and existing != content:
            raise RepositoryError(
                f"{relpath} already exists with other content; not overwriting it"
            )
        overlay.write(relpath, content)
        self._list_beside(relpath, overlay)

    def _list_beside(self, relpath: str, overlay: FileOverlay) -> None:
        """List the new file ``relpath`` in the kustomization beside it when that lists the
        workload's own file: unlisted, it would never be deployed (refused when it cannot)."""
        folder = PurePosixPath(relpath).parent.as_posix()
        own, name = PurePosixPath(self.location.path).name, PurePosixPath(relpath).name
        kust = find_kustomization(overlay.root, "" if folder == "." else folder, overlay)
        text = overlay.read(kust) if kust is not None else None
        if kust is None or text is None:
            return
        try:
            docs = load_documents(text)
            listed = docs[0].get("resources") if docs and isinstance(docs[0], dict) else None
            entries = [os.path.normpath(str(e)) for e in list_items(listed)]
            if own in entries:
                overlay.write(kust, apply_edits(text, [AppendUnique(("resources",), name)]))
        except EditError as exc:
            raise RepositoryError(
                f"{kust} may list {own}, but {name} cannot be listed beside it ({exc}); "
                "refusing to add a file it would not deploy"
            ) from None

    def reread(self, overlay: FileOverlay) -> PodView | str:
        text = overlay.read(self.location.path)
        if text is None:
            return f"{self.location.path} does not exist"
        try:
            view = parsed_view(text, self.location.document_index)
        except EditError as exc:
            return f"{self.location.path} no longer parses: {exc}"
        if view is None:
            return f"{self.location.path}#{self.location.document_index} is not a workload with a pod spec"
        return view


def document_at(overlay: FileOverlay, path: str, index: int) -> Any:
    text = overlay.read(path)
    return None if text is None else load_documents(text.removeprefix(BOM))[index]
