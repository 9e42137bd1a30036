"""Find where a resource rendered by a Kustomize overlay comes from, and write its fix there.

A finding names a resource as an overlay renders it (the scanner read the overlay directory, or
the cluster). `KustomizeIndex` builds every kustomization of the repository with the reader of
`bot.locate.kustomize_build`, which traces each rendered field to the base document or patch
that sets it. `KustomizeTarget` writes each edit where the value comes from: into the patch that
sets the field (a strategic-merge patch, or a JSON6902 operation's ``value``; a patch written
inline in a kustomization is edited inside its block, `bot.locate.kustomize_inline`); else into
the base document when no other overlay patches that field (every overlay inherits the fix);
else into a new strategic-merge patch of the finding's overlay (inline when the overlay writes
its patches inline, else a file listed in its kustomization). Views
and verification use the real engine (``kubectl kustomize``) when the machine has one, else the
reader; every overlay whose files an edit touches must still build.

subprocess and difflib are imported where an overlay is built or diffed: a plan without
kustomizations never needs them (``remedy plan`` start-up).
"""

from __future__ import annotations

import copy
import functools
import hashlib
import os
import re
import shutil
import tempfile
import threading
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path, PurePosixPath
from typing import Any

import yaml

from bot import regressions
from bot.errors import RepositoryError
from bot.locate.base import FileOverlay
from bot.locate.gitops import (
    KUSTOMIZATION_FILES,
    DeployedFolder,
    deployed_paths,
    reread_deployment,
)
from bot.locate.kustomize_build import (
    MERGE_KEYS,
    KustomizeError,
    KustomizeReader,
    LogicalPath,
    PatchSource,
    Rendered,
    Touch,
    deployed_images,
    field_paths,
    find_kustomization,
    kustomization_dirs,
    logical_path,
    named_path,
    physical_path,
)
from bot.locate.kustomize_inline import (
    PLACEHOLDER,
    edit_inline,
    inline_patches,
    inline_text,
    own_inline_patch,
    own_inline_patches,
    write_new_inline,
    writes_inline_patches,
)
from bot.model import Location
from fixers.edits import EditError, apply_edits, load_documents, render_manifest
from fixers.memo import Memo
from fixers.model import (
    AnyEdit,
    AppendUnique,
    CreateManifest,
    Edit,
    Finding,
    Remove,
    Set,
    YamlPath,
)
from fixers.view import (
    POD_SPEC_PATHS,
    ManifestPodView,
    PodView,
    lookup,
    policies_selecting,
    policy_selector,
    reselected,
)

ENGINE_ENV = "REMEDY_KUSTOMIZE_ENGINE"
"""``reader`` forces the built-in reader even where ``kubectl`` is installed."""
BUILD_TIMEOUT = 60
PATCH_PREFIX = "remedy-patch-"
MAX_REPLACEMENT_HOPS = 8
"""How many replacements a field may be copied through before it is left to a person."""


_OUTPUT_SEPARATOR = re.compile(r"^---[ \t]*\n", re.M)
_OUTPUT_DOCUMENTS: Memo[str, list[Any]] = Memo(4096)
"""The data of each document text kubectl kustomize printed lately: every build after an edit
prints the overlay's other documents (CRDs of hundreds of kilobytes) unchanged."""
_OUTPUT_LOCK = threading.Lock()


def _output_documents(text: str) -> list[Any]:
    """The documents of ``kubectl kustomize``'s output, each parsed once per distinct text
    (kustomize prints one document after each ``---`` line, with no directive, anchor or
    document end). The data are shared between builds: callers never change them."""
    if "\n..." in text or text.startswith(("%", "...")):
        return load_documents(text)  # not kustomize's plain form: parse it whole
    # (anchors and aliases never cross documents: each document parses alone alike)
    out: list[Any] = []
    for part in _OUTPUT_SEPARATOR.split(text):
        if not part.strip():
            continue
        with _OUTPUT_LOCK:
            docs = _OUTPUT_DOCUMENTS.get(part)
        if docs is None:
            docs = load_documents(part)
            with _OUTPUT_LOCK:
                _OUTPUT_DOCUMENTS.put(part, docs)
        out += docs
    return out


class Engine:
    """Builds a kustomization directory of the repository with pending edits applied."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.kubectl = None if os.environ.get(ENGINE_ENV) == "reader" else shutil.which("kubectl")
        self._mirror: Path | None = None
        self._written: dict[str, str | None] = {}
        self._files: dict[str, frozenset[str]] = {}
        self._builds: dict[tuple[str, str], list[dict[str, Any]] | str] = {}

    @property
    def name(self) -> str:
        return "kubectl kustomize" if self.kubectl else "kube-remedy's kustomize reader"

    def build(
        self, folder: str, overlay: FileOverlay, deployment: DeployedFolder | None = None
    ) -> list[dict[str, Any]] | str:
        """The documents ``folder`` renders (with the patches and images ``deployment`` adds,
        as Argo CD or Flux add them to its kustomization), or the one-line reason it does not
        build. Builds are remembered by the pending edits of the files the kustomization
        reads, so re-reading a workload after each edit builds each state once."""
        key = self._key(folder, overlay, deployment)
        if isinstance(key, str):
            return key
        if key not in self._builds:
            self._builds[key] = self._build(folder, overlay, deployment)
        return self._builds[key]

    def build_many(
        self, folders: Sequence[tuple[str, DeployedFolder | None]], overlay: FileOverlay
    ) -> None:
        """Build the (folder, deployment) pairs not built yet with the overlay's edits, the
        kubectl processes side by side (each edit of a shared base rebuilds every overlay
        that reads it); `build` then answers from what they built."""
        todo: list[tuple[str, DeployedFolder | None, tuple[str, str]]] = []
        for folder, deployment in folders:
            key = self._key(folder, overlay, deployment)
            if (
                isinstance(key, tuple)
                and key not in self._builds
                and key not in (k for *_, k in todo)
            ):
                todo.append((folder, deployment, key))
        if self.kubectl is None or len(todo) < 2:
            return
        self._sync(overlay)
        from concurrent.futures import ThreadPoolExecutor

        with ThreadPoolExecutor(max_workers=min(len(todo), os.cpu_count() or 1, 8)) as pool:
            built = list(pool.map(lambda item: self._build(item[0], overlay, item[1]), todo))
        for (_, _, key), result in zip(todo, built, strict=True):
            self._builds[key] = result

    def _key(
        self, folder: str, overlay: FileOverlay, deployment: DeployedFolder | None
    ) -> tuple[str, str] | str:
        """A build's memo key (its folder and the pending edits of the files it reads), or
        why the folder's files cannot be listed."""
        if folder not in self._files:
            try:
                self._files[folder] = frozenset(
                    KustomizeReader(FileOverlay(self.root)).files(folder)
                )
            except RepositoryError as exc:
                return f"{folder or '.'} does not build: {exc}"
        files = self._files[folder]
        digest = hashlib.sha256()
        for change in overlay.changes():
            # new files an edited kustomization lists lie in its own folder
            if change.path in files or PurePosixPath(change.path).parent.as_posix() == (
                folder or "."
            ):
                digest.update(f"{change.path}\0{change.after}\0".encode())
        if deployment is not None:
            digest.update(repr((deployment.patches, deployment.images)).encode())
        return (folder, digest.hexdigest())

    def _build(
        self, folder: str, overlay: FileOverlay, deployment: DeployedFolder | None
    ) -> list[dict[str, Any]] | str:
        reader = KustomizeReader(overlay)
        try:  # the reader refuses remote resources and plugins before the engine runs
            rendered = (
                reader.build(folder) if deployment is None else reader.deploy(folder, deployment)
            )
        except RepositoryError as exc:
            return f"{folder or '.'} does not build: {exc}"
        if self.kubectl is None:
            if reader.untraced:
                return (
                    f"{folder or '.'}: kube-remedy's reader cannot trace "
                    f"{'; '.join(reader.untraced)}; build it with kubectl (install kubectl)"
                )
            return [r.doc for r in rendered]
        mirror = self._sync(overlay)
        if deployment is None:
            return self._kubectl(self.kubectl, mirror, folder, mirror / folder)
        # a copy of the folder beside it (relative paths still hold) with the deployment's
        # patches and images added to its kustomization, as Argo CD and Flux add them
        copy_dir = (mirror / folder).parent / f".{(mirror / folder).name}.remedy-deployed"
        shutil.rmtree(copy_dir, ignore_errors=True)
        shutil.copytree(mirror / folder, copy_dir, symlinks=True)
        try:
            kust_file = next(copy_dir / n for n in KUSTOMIZATION_FILES if (copy_dir / n).is_file())
            kust = yaml.safe_load(kust_file.read_text(encoding="utf-8")) or {}
            kust["patches"] = [*(kust.get("patches") or []), *map(dict, deployment.patches)]
            kust["images"] = deployed_images(kust.get("images") or [], deployment.images)
            kust_file.write_text(yaml.safe_dump(kust, sort_keys=False), encoding="utf-8")
            return self._kubectl(self.kubectl, mirror, folder, copy_dir)
        finally:
            shutil.rmtree(copy_dir, ignore_errors=True)

    @staticmethod
    def _kubectl(kubectl: str, mirror: Path, folder: str, path: Path) -> list[dict[str, Any]] | str:
        import subprocess

        proc = subprocess.run(
            [kubectl, "kustomize", str(path)],
            capture_output=True,
            text=True,
            timeout=BUILD_TIMEOUT,
            check=False,
            env={"PATH": os.environ.get("PATH", ""), "HOME": str(mirror)},
        )
        if proc.returncode != 0:
            error = proc.stderr.strip().replace(str(mirror) + "/", "").splitlines()
            return f"{folder or '.'} does not build: {(error or ['kubectl failed'])[-1]}"
        try:
            docs = _output_documents(proc.stdout)
        except EditError as exc:
            return f"{folder or '.'}: kubectl kustomize printed YAML that does not parse: {exc}"
        return [d for d in docs if isinstance(d, dict)]

    def _sync(self, overlay: FileOverlay) -> Path:
        """A private copy of the repository holding the overlay's pending files."""
        if self._mirror is None:
            self._mirror = Path(tempfile.mkdtemp(prefix="remedy-kustomize-"))
            shutil.copytree(
                self.root,
                self._mirror / "repo",
                symlinks=True,
                ignore=shutil.ignore_patterns(".git"),
            )
            _drop_escaping_links(self._mirror / "repo")
        mirror = self._mirror / "repo"
        wanted: dict[str, str | None] = {c.path: c.after for c in overlay.changes()}
        for path in set(self._written) - set(wanted):
            original = overlay.original(path)
            target = mirror / path
            if original is None:
                target.unlink(missing_ok=True)
            else:
                target.write_text(original, encoding="utf-8", newline="")
            del self._written[path]
        for path, text in wanted.items():
            if self._written.get(path) != text:
                target = mirror / path
                target.parent.mkdir(parents=True, exist_ok=True)
                if text is None:
                    target.unlink(missing_ok=True)
                else:
                    target.write_text(text, encoding="utf-8", newline="")
                self._written[path] = text
        return mirror

    def close(self) -> None:
        if self._mirror is not None:
            shutil.rmtree(self._mirror, ignore_errors=True)
            self._mirror = None

    def __del__(self) -> None:
        self.close()


def _drop_escaping_links(mirror: Path) -> None:
    """Remove the copy's symlinks that lead outside it (or dangle): kubectl never reads a
    file outside the repository through one (a generator's ``files:`` would)."""
    inside = mirror.resolve()
    for dirpath, dirnames, filenames in os.walk(mirror):
        for name in [*dirnames, *filenames]:
            path = Path(dirpath, name)
            if path.is_symlink():
                target = Path(os.path.realpath(path))
                if not target.exists() or (target != inside and inside not in target.parents):
                    path.unlink()


@dataclass
class KustomizeIndex:
    """Every kustomization of a repository, built once from the files as they are."""

    root: Path
    engine: Engine
    overlays: list[str] = field(default_factory=list)
    """Kustomization directories that build on their own (Components excluded)."""
    built: dict[str, list[Rendered]] = field(default_factory=dict)
    unreadable: dict[str, str] = field(default_factory=dict)
    files: dict[str, set[str]] = field(default_factory=dict)
    """overlay -> every repository file its build reads."""
    deployed: dict[str, DeployedFolder] = field(default_factory=dict)
    """Overlays an Argo CD Application or Flux Kustomization deploys -> how it deploys them."""
    adds: set[str] = field(default_factory=set)
    """Overlays whose deployment adds patches or images that apply: they are built with them."""
    patches: dict[str, str] = field(default_factory=dict)
    """A file a kustomization applies as a patch -> that kustomization's folder: a fragment,
    never an object of its own."""

    @classmethod
    def build(cls, root: Path) -> KustomizeIndex:
        index = cls(root, Engine(root), deployed=deployed_paths(root))
        reader = KustomizeReader(FileOverlay(root))
        for folder in kustomization_dirs(root):
            try:
                _, kust = reader.kustomization(folder)
                index._note_patches(reader, folder, kust)
                if kust.get("kind") == "Component":
                    continue
                index.overlays.append(folder)
                index.built[folder] = index._as_deployed(reader, folder)
                index.files[folder] = reader.files(folder)
            except RepositoryError as exc:
                index.unreadable[folder] = str(exc)
        return index

    def _note_patches(self, reader: KustomizeReader, folder: str, kust: Mapping[str, Any]) -> None:
        """Remember the files ``folder`` applies as patches; a patch path that leaves the
        repository or is remote names no file here (its build reports it)."""
        try:
            patches = reader.patch_files(folder, kust)
        except RepositoryError:
            return
        for patch in sorted(patches):
            self.patches.setdefault(patch, folder)

    def _as_deployed(self, reader: KustomizeReader, folder: str) -> list[Rendered]:
        """``folder``'s resources with the patches and images its Argo CD Application or Flux
        Kustomization adds (what the cluster runs); as the folder builds them alone when the
        deployment adds none, or when its additions do not apply (its source may not be
        this repository)."""
        deployment = self.deployed.get(folder)
        if deployment is not None and (deployment.patches or deployment.images):
            try:
                built = reader.deploy(folder, deployment)
            except RepositoryError:
                return reader.build(folder)
            self.adds.add(folder)
            return built
        return reader.build(folder)

    def deployment(self, folder: str, overlay: FileOverlay) -> DeployedFolder | None:
        """The patches and images ``folder``'s deployment adds, as its manifest declares them
        with the overlay's pending edits (None when it adds none that apply)."""
        deployment = self.deployed.get(folder)
        if deployment is None or folder not in self.adds:
            return None
        text = overlay.read(deployment.manifest)
        if text == overlay.original(deployment.manifest):
            return deployment
        again = reread_deployment(deployment, text or "")
        if again is None:
            raise KustomizeError(f"{deployment.manifest} no longer declares the deployment")
        return again

    def render_many(self, folders: Sequence[str], overlay: FileOverlay) -> None:
        """Build ``folders`` with the overlay's edits side by side (see `Engine.build_many`);
        `render` then answers from those builds."""
        wanted: list[tuple[str, DeployedFolder | None]] = []
        for folder in folders:
            try:
                wanted.append((folder, self.deployment(folder, overlay)))
            except RepositoryError:
                continue  # `render` says why
        self.engine.build_many(wanted, overlay)

    def render(self, folder: str, overlay: FileOverlay) -> list[dict[str, Any]] | str:
        """``folder``'s objects as the cluster gets them (with its deployment's additions),
        the overlay's edits applied; or why they cannot be built."""
        try:
            deployment = self.deployment(folder, overlay)
        except RepositoryError as exc:
            return str(exc)
        return self.engine.build(folder, overlay, deployment)

    def label(self, folder: str) -> str:
        """An overlay for the plan: its folder, and the deployment adding to it if any."""
        if folder in self.adds:
            return f"{folder or '.'} (as the {self.deployed[folder].what} deploys it)"
        return folder or "."

    def patch_of(self, hint: str) -> str | None:
        """The folder whose kustomization applies the scanner's path as a patch, or None
        (the path may be relative to wherever the scanner ran)."""
        parts = [p for p in PurePosixPath(hint.replace("\\", "/")).parts if p not in ("/", ".")]
        for start in range(len(parts)):
            folder = self.patches.get("/".join(parts[start:]))
            if folder is not None:
                return folder
        return None

    def overlay_of(self, hint: str) -> str | None:
        """The deepest overlay directory holding the scanner's path (run from anywhere)."""
        parts = [p for p in PurePosixPath(hint.replace("\\", "/")).parts if p not in ("/", ".")]
        if ".." in parts:
            return None
        known = set(self.overlays) | set(self.unreadable)
        for start in range(len(parts)):
            for end in range(len(parts), start, -1):
                folder = "/".join(parts[start:end])
                if folder in known:
                    return folder
        return "" if "" in known else None

    def affected(self, changed: Sequence[str]) -> list[str]:
        """Overlays whose build reads one of the ``changed`` files."""
        paths = set(changed)
        return [
            folder
            for folder in self.overlays
            if self.files.get(folder, set()) & paths
            or any(PurePosixPath(p).parent.as_posix() == (folder or ".") for p in paths)
            or (folder in self.adds and self.deployed[folder].manifest in paths)
        ]

    def changed_outputs(self, overlay: FileOverlay) -> list[str]:
        """Overlays whose rendered output differs once the overlay's edits are applied."""
        changed = [c.path for c in overlay.changes()]
        base = FileOverlay(self.root)
        folders = self.affected(changed)
        self.render_many(folders, overlay)
        self.render_many(folders, base)
        return [
            folder
            for folder in folders
            if self.render(folder, overlay) != self.render(folder, base)
        ]


def _matches(res: Rendered, finding: Finding, deployment: DeployedFolder | None = None) -> bool:
    """Is ``res`` the finding's resource? For a cluster's finding, the name and namespace are
    those the deployment gives it (Argo CD's kustomize name prefix, suffix and namespace); a
    resource left without a namespace is in the deployment's, or, with no deployment known,
    in any."""
    meta = res.doc.get("metadata") or {}
    wanted = finding.resource
    name = meta.get("name")
    namespace = meta.get("namespace")
    if finding.source.path is None and deployment is not None:
        name = deployment.name(str(name))
        namespace = (namespace and deployment.forced_namespace) or namespace
        namespace = namespace or deployment.namespace
    if res.kind != wanted.kind:
        return False
    if _scanned_as_written(res, finding):
        return True
    if name != wanted.name:
        return False
    return (wanted.namespace or "default") == (namespace or "default") or (
        namespace is None and finding.source.path is None
    )


def _scanned_as_written(res: Rendered, finding: Finding) -> bool:
    """Whether a scan of ``res``'s own file names it as that file writes it: a file scanner
    reports the namespace the document sets (none: ``default``), not the one the
    kustomization gives it, and the document is still this resource."""
    hint = (finding.source.path or "").replace("\\", "/")
    if not hint or not (hint == res.origin or hint.endswith("/" + res.origin)):
        return False
    meta = res.original.get("metadata") or {}
    wanted = finding.resource
    return res.original.get("kind") == wanted.kind and (
        str(meta.get("name")) == wanted.name
        and (wanted.namespace or "default") == str(meta.get("namespace") or "default")
    )


def locate_kustomize(finding: Finding, index: KustomizeIndex) -> KustomizeTarget | str | None:
    """The target for a finding on a resource an overlay renders; None when no overlay
    renders it (another locator may know the resource), or the reason it cannot be fixed."""
    patched = index.patch_of(finding.source.path) if finding.source.path else None
    if patched is not None:
        return (
            f"{finding.source.path} is a kustomize patch that {patched or '.'} applies to "
            f"{finding.resource.kind} {finding.resource.name}, not an object of its own: the "
            "scanner read the fragment alone; scan what the overlay builds (kubectl kustomize "
            f"{patched or '.'}) to check the {finding.resource.kind} as deployed"
        )
    folder = index.overlay_of(finding.source.path) if finding.source.path else None
    # Checkov's kustomize framework names the kustomization file of the folder it built,
    # relative to wherever it ran: no folder of this repository then, but one of its overlays.
    built_somewhere = PurePosixPath(finding.source.path or "").name in KUSTOMIZATION_FILES
    if finding.source.path and (folder is not None or not built_somewhere):
        if folder is None:
            return None
        if folder in index.unreadable:
            # a scan of the plain files of a folder kube-remedy cannot build: the file it is
            if PurePosixPath(finding.source.path).suffix in (".yaml", ".yml"):
                return None
            return index.unreadable[folder]
        candidates = [folder]
    else:

        def renders(folder: str) -> bool:
            deployment = index.deployed.get(folder)
            return any(_matches(r, finding, deployment) for r in index.built.get(folder, ()))

        # What Argo CD or Flux deploys is what the cluster runs; other overlays only if none.
        candidates = [f for f in index.overlays if f in index.deployed and renders(f)]
        candidates = candidates or [f for f in index.overlays if renders(f)]
        if not candidates:
            return None
        # An overlay that puts the resource in the finding's namespace beats one that leaves
        # the namespace open (a base nothing deploys).
        placed = [
            f
            for f in candidates
            if any(
                _matches(r, finding, index.deployed.get(f))
                and (r.namespace or (f in index.deployed and index.deployed[f].namespace))
                for r in index.built.get(f, ())
            )
        ]
        candidates = placed or candidates
        if len(candidates) > 1:
            return (
                f"{finding.resource} is rendered by several kustomize overlays "
                f"({', '.join(candidates[:4])}); the report must name the overlay it scanned"
            )
    folder = candidates[0]
    deployment = index.deployed.get(folder)
    found = [r for r in index.built.get(folder, ()) if _matches(r, finding, deployment)]
    if not found:
        if finding.source.path and PurePosixPath(finding.source.path).suffix in (".yaml", ".yml"):
            # a scan of the file itself (not of the overlay's build) names what it says
            return None
        return f"the kustomize overlay {folder or '.'} renders no {finding.resource}"
    if len(found) > 1:
        return f"the kustomize overlay {folder or '.'} renders {finding.resource} twice"
    return KustomizeTarget.load(index, folder, found[0], finding)


@dataclass(frozen=True)
class _Place:
    """Where an edit is written: a document of a file, or of a patch written inline in one."""

    file: str
    document: int
    path: YamlPath
    inline: YamlPath | None = None
    """Where the patch text sits in the file, for an inline patch."""
    holder: int = 0
    """The document of ``file`` holding an inline patch."""


@dataclass
class KustomizeTarget:
    """A workload as one overlay renders it; edits go to the file that sets each field."""

    location: Location
    view: PodView
    index: KustomizeIndex
    overlay_dir: str
    origin: tuple[str, int]
    resource: tuple[str, str, str | None]
    """Kind, name and namespace as the overlay renders them."""
    names: tuple[str, ...] = ()
    """Every name the resource had while the overlay built it (a patch target names one)."""
    deployment: DeployedFolder | None = None
    """The Argo CD Application or Flux Kustomization deploying the overlay, if any: its own
    images and patches are part of what the cluster runs."""

    @classmethod
    def load(
        cls, index: KustomizeIndex, folder: str, rendered: Rendered, finding: Finding
    ) -> KustomizeTarget | str:
        why = (
            f"rendered by the kustomize overlay {folder or '.'} from {rendered.origin}"
            f" (built with {index.engine.name})"
        )
        deployment = index.deployed.get(folder)
        if deployment is not None and folder in index.adds:
            added = " and ".join(
                w
                for w, on in (("images", deployment.images), ("patches", deployment.patches))
                if on
            )
            why += f"; deployed by the {deployment.what}, which adds its own {added}"
        target = cls(
            Location("manifest", rendered.origin, rendered.index, why=why),
            view=None,  # type: ignore[arg-type]
            index=index,
            overlay_dir=folder,
            origin=(rendered.origin, rendered.index),
            resource=(rendered.kind, rendered.name, rendered.namespace),
            names=tuple(rendered.names),
            deployment=deployment,
        )
        view = target.reread(FileOverlay(index.root))
        if isinstance(view, str):
            return view
        if finding.container and finding.container not in {c.name for c in view.containers}:
            return f"{finding.resource} as {folder or '.'} renders it has no container {finding.container!r}"
        target.view = view
        return target

    def _document(self, overlay: FileOverlay) -> dict[str, Any] | str:
        """The resource as the cluster gets it: the overlay's build, with the images and
        patches its Argo CD Application or Flux Kustomization adds."""
        built = self.index.render(self.overlay_dir, overlay)
        if isinstance(built, str):
            return built
        kind, name, namespace = self.resource
        found = [
            d
            for d in built
            if d.get("kind") == kind
            and (d.get("metadata") or {}).get("name") == name
            and ((d.get("metadata") or {}).get("namespace") or None) == namespace
        ]
        if len(found) != 1:
            return f"{self.overlay_dir or '.'} no longer renders {kind}/{name} once"
        return found[0]

    def reread(self, overlay: FileOverlay) -> PodView | str:
        document = self._document(overlay)
        if isinstance(document, str):
            return document
        view = ManifestPodView.from_document(document)
        if view is None:
            return f"{self.resource[0]}/{self.resource[1]} is not a workload with a pod spec"
        return view

    # ------------------------------------------------------------------ writing

    def write(self, edits: Sequence[AnyEdit], overlay: FileOverlay) -> None:
        """Write each edit where its field comes from; when that (shared) place would make
        another overlay's output worse, write them as a patch in the finding's overlay."""
        trial = overlay.fork()
        self._write(edits, trial, in_place=True)
        worse = self._worse_elsewhere(trial)
        if worse:
            trial = overlay.fork()
            self._write(edits, trial, in_place=False)
            if self._worse_elsewhere(trial):
                raise KustomizeError(worse)
        overlay.adopt(trial)

    def _write(self, edits: Sequence[AnyEdit], overlay: FileOverlay, in_place: bool) -> None:
        document = self._document(overlay)
        if isinstance(document, str):
            raise KustomizeError(document)
        rendered = self._traced(overlay)
        by_file: dict[_Place, list[Edit]] = {}
        new_patch: list[tuple[LogicalPath, Edit]] = []
        for edit in edits:
            if isinstance(edit, CreateManifest):
                self._create(edit, overlay)
                continue
            logical = logical_path(document, edit.path)
            place = self._place(rendered, logical, overlay) if in_place else None
            if place is None:
                new_patch.append((logical, _for_patch(edit, logical, document)))
            else:
                where = place.path
                by_file.setdefault(replace(place, path=()), []).append(replace(edit, path=where))
        for place, moved in by_file.items():
            text = overlay.read(place.file)
            if text is None:
                raise KustomizeError(f"{place.file} no longer exists")
            try:
                if place.inline is None:
                    overlay.write(place.file, _apply(text, moved, place.document))
                else:
                    patch = functools.partial(_apply, edits=moved, doc_index=place.document)
                    overlay.write(place.file, edit_inline(text, place.inline, patch, place.holder))
            except EditError as exc:
                raise KustomizeError(f"{place.file}: {exc}") from None
        if new_patch:
            self._write_patch(rendered, new_patch, overlay)
        self._check_builds(overlay)

    def _check_builds(self, overlay: FileOverlay) -> None:
        """Every overlay reading an edited file still builds (else the edit is refused)."""
        changed = [c.path for c in overlay.changes()]
        folders = self.index.affected(changed)
        self.index.render_many(folders, overlay)
        for folder in folders:
            built = self.index.render(folder, overlay)
            if isinstance(built, str):
                raise KustomizeError(built)

    def _worse_elsewhere(self, overlay: FileOverlay) -> str | None:
        """Why the edits make another overlay's output worse (a control or schema failure its
        rendering did not have, or a setting of its own changed: see
        `regressions.overridden`), or None. The finding's own output is `bot.verify`'s job."""
        changed = [c.path for c in overlay.changes()]
        unedited = FileOverlay(self.index.root)
        mine = self._document(unedited)
        folders = [f for f in self.index.affected(changed) if f != self.overlay_dir]
        self.index.render_many(folders, overlay)
        self.index.render_many(folders, unedited)
        for folder in folders:
            after = self.index.render(folder, overlay)
            before = self.index.render(folder, unedited)
            if isinstance(after, str):
                return after
            previous = [] if isinstance(before, str) else before
            failures = regressions.new_failures(previous, after)
            if isinstance(mine, dict):
                failures += regressions.overridden(previous, after, mine)
            if failures:
                return regressions.describe(f"overlay {folder or '.'}", failures)
        return None

    def _create(self, edit: CreateManifest, overlay: FileOverlay) -> None:
        """A new object (a NetworkPolicy) as a resource beside the workload's base document,
        so every overlay using that base gets it through its own transformers (namespace,
        prefix, labels) as the workload does; in the finding's overlay when the base is not a
        kustomization listing the document or its pod template has no labels."""
        rendered = self._traced(overlay)
        document = copy.deepcopy(dict(edit.document))
        meta = dict(document.get("metadata") or {})
        file_name = f"{edit.name}.yaml"
        base_dir = _listing_kustomization(KustomizeReader(overlay), rendered.origin)
        # The keys the fixer chose (`policy_selector`), with the base document's values (an
        # overlay may add labels or change values of its own); the same rule on the base
        # document when it has none of them.
        chosen = lookup(document, ("spec", "podSelector", "matchLabels"))
        chosen = chosen if isinstance(chosen, Mapping) else {}
        labels = {k: v for k, v in _template_labels(rendered.original).items() if k in chosen}
        base_view = ManifestPodView.from_document(rendered.original)
        if not labels and base_view is not None:
            labels = policy_selector(base_view)
        spec = document.get("spec")
        # Policies add up: in an overlay that already selects these pods with a stricter
        # policy, one more from the base would widen it. Then only this overlay gets it.
        shared = not self._policed_elsewhere(rendered)
        if base_dir is not None and labels and isinstance(spec, dict) and shared:
            folder = base_dir
            seen, original = self.resource[1], rendered.names[0]
            meta["name"] = str(meta.get("name", "")).replace(seen, original, 1)
            file_name = f"{edit.name.replace(seen, original, 1)}.yaml"
            namespace = (rendered.original.get("metadata") or {}).get("namespace")
            if namespace:
                meta["namespace"] = namespace
            else:
                meta.pop("namespace", None)
            document["spec"] = reselected(spec, {"matchLabels": labels})
        else:
            folder = self.overlay_dir
            prefix = str(KustomizeReader(overlay).kustomization(folder)[1].get("namePrefix") or "")
            name = str(meta.get("name", ""))
            if prefix and name.startswith(prefix):  # the overlay adds it again
                meta["name"] = name.removeprefix(prefix)
        document["metadata"] = meta
        kust = find_kustomization(self.index.root, folder, overlay)
        if kust is None:
            raise KustomizeError(f"{folder or '.'} has no kustomization.yaml")
        relpath = f"{folder}/{file_name}" if folder else file_name
        content = render_manifest(document, edit.comment)
        existing = overlay.read(relpath)
        if existing is not None and existing != content:
            raise KustomizeError(f"{relpath} already exists with other content; not overwriting it")
        overlay.write(relpath, content)
        text = overlay.read(kust) or ""
        try:
            overlay.write(kust, apply_edits(text, [AppendUnique(("resources",), file_name)]))
        except EditError as exc:
            raise KustomizeError(f"{kust}: {exc}") from None

    def _policed_elsewhere(self, rendered: Rendered) -> list[str]:
        """The other overlays that build this workload's document and already render a
        NetworkPolicy selecting its pods there."""
        out = []
        for folder, resources in self.index.built.items():
            if folder == self.overlay_dir:
                continue
            same = [
                r for r in resources if (r.origin, r.index) == (rendered.origin, rendered.index)
            ]
            if not same:
                continue
            policies = [r.doc for r in resources if r.kind == "NetworkPolicy"]
            labels = _template_labels(same[0].doc)
            if policies and policies_selecting(policies, labels, same[0].namespace):
                out.append(folder)
        return out

    def _built(self, overlay: FileOverlay) -> list[Rendered]:
        """The overlay's resources as the reader builds and the deployment changes them."""
        reader = KustomizeReader(overlay)
        deployment = self.index.deployment(self.overlay_dir, overlay)
        if deployment is None:
            return reader.build(self.overlay_dir)
        return reader.deploy(self.overlay_dir, deployment)

    def _traced(self, overlay: FileOverlay) -> Rendered:
        """The resource as the reader builds and the deployment changes it, with the patch
        (of the overlay, or of the deployment) that sets each field."""
        found = [r for r in self._built(overlay) if (r.origin, r.index) == self.origin]
        kind, name, _ = self.resource
        found = [r for r in found if r.kind == kind and r.name == name] or found
        if len(found) != 1:
            raise KustomizeError(f"cannot trace {kind}/{name} in {self.overlay_dir or '.'}")
        return found[0]

    def _place(
        self, rendered: Rendered, logical: LogicalPath, overlay: FileOverlay, depth: int = 0
    ) -> _Place | None:
        """Where to write the field; None for a new patch in the overlay."""
        field_name = ".".join(logical)
        touch = rendered.source_of(logical)
        if touch is not None:
            source = touch.source
            if source.kind == "replacement":
                return self._place_source(touch, logical, overlay, depth)
            if touch.where is None:
                raise KustomizeError(
                    f"{field_name} is deleted by a patch in {source.file}; change it by hand"
                )
            inline = source.key if source.inline else None
            patch_doc = _document_of(overlay, source.file, source.document, inline, source.holder)
            value = lookup(patch_doc, touch.where)
            rest = physical_path(value, logical[len(touch.path) :])
            if rest is None:
                raise KustomizeError(f"cannot trace {field_name} inside {_patch_name(source)}")
            return _Place(
                source.file, source.document, (*touch.where, *rest), inline, source.holder
            )
        below = rendered.touched_below(logical)
        if below:
            raise KustomizeError(
                f"{field_name} is partly set by {_patch_name(below[0].source)}; change it by hand"
            )
        own_base = _listing_kustomization(
            KustomizeReader(FileOverlay(self.index.root)), rendered.origin
        )
        if own_base != self.overlay_dir and self._patched_elsewhere(rendered, logical):
            return None
        original = rendered.original
        where = physical_path(original, logical)
        if where is None:
            return None
        return _Place(rendered.origin, rendered.index, where)

    def _place_source(
        self, touch: Touch, logical: LogicalPath, overlay: FileOverlay, depth: int
    ) -> _Place:
        """Where to write a field a ``replacements`` entry copies from another field: at that
        source field (the replacement would overwrite an edit of the copy)."""
        field_name = ".".join(logical)
        source = touch.source
        if source.copies is None or depth >= MAX_REPLACEMENT_HOPS:
            raise KustomizeError(
                f"{field_name} is set by a replacement in {source.file} from a part of another "
                "field; a fix here would be overwritten: change its source by hand"
            )
        kind, name, field_path = source.copies
        found = [r for r in self._built(overlay) if r.kind == kind and name in r.names]
        paths = field_paths(found[0].doc, field_path) if len(found) == 1 else []
        if len(paths) != 1:
            raise KustomizeError(
                f"cannot trace the source {kind} {name} {field_path} of {field_name}"
            )
        copied = (*named_path(found[0].doc, paths[0]), *logical[len(touch.path) :])
        place = self._place(found[0], copied, overlay, depth + 1)
        if place is None:
            raise KustomizeError(
                f"{field_name} is copied by a replacement in {source.file} from {kind} {name} "
                f"{field_path}, which other overlays patch differently; change it by hand"
            )
        return place

    def _patched_elsewhere(self, rendered: Rendered, logical: LogicalPath) -> bool:
        """Does another overlay using the same base document patch this field (so a fix in
        the base would not reach every overlay alike)?"""
        for folder, resources in self.index.built.items():
            if folder == self.overlay_dir:
                continue
            for other in resources:
                if (other.origin, other.index) != (rendered.origin, rendered.index):
                    continue
                for touch in other.touches:
                    n = min(len(touch.path), len(logical))
                    if touch.path[:n] == logical[:n] and touch not in rendered.touches:
                        return True
        return False

    def _write_patch(
        self, rendered: Rendered, edits: list[tuple[LogicalPath, Edit]], overlay: FileOverlay
    ) -> None:
        """A new strategic-merge patch in the finding's overlay, written as the overlay writes
        its patches: inline in its kustomization when every patch it has is inline, else a
        file beside it."""
        kind, _, _ = self.resource
        seen_name = rendered.names[0]
        folder = self.overlay_dir
        kust = find_kustomization(self.index.root, folder, overlay)
        if kust is None:
            raise KustomizeError(f"{folder or '.'} has no kustomization.yaml")
        comment = (
            f"kube-remedy: fields only the {folder or '.'} overlay changes "
            "(other overlays patch them differently)"
        )
        new_body: dict[str, Any] = {
            "apiVersion": rendered.doc.get("apiVersion"),
            "kind": kind,
            "metadata": {"name": seen_name},
        }
        text = overlay.read(kust) or ""
        target = {"kind": kind, "name": seen_name}
        try:
            if writes_inline_patches(text):
                overlay.write(
                    kust, self._inline_patch(kust, text, target, new_body, edits, comment, overlay)
                )
                return
            file_name = f"{PATCH_PREFIX}{kind.lower()}-{seen_name}.yaml"
            relpath = f"{folder}/{file_name}" if folder else file_name
            existing = overlay.read(relpath)
            if existing is not None and relpath not in {c.path for c in overlay.changes()}:
                raise KustomizeError(f"{relpath} already exists; not overwriting it")
            body = load_documents(existing)[0] if existing else new_body
            for logical, edit in edits:
                _put(body, logical, _patch_value(edit))
            overlay.write(relpath, render_manifest(body, comment))
            entry = {"path": file_name, "target": target}
            overlay.write(kust, apply_edits(text, [AppendUnique(("patches",), entry, key="path")]))
        except EditError as exc:
            raise KustomizeError(f"{kust}: {exc}") from None

    @staticmethod
    def _inline_patch(
        kust: str,
        text: str,
        target: Mapping[str, str],
        body: dict[str, Any],
        edits: list[tuple[LogicalPath, Edit]],
        comment: str,
        overlay: FileOverlay,
    ) -> str:
        """The kustomization with the edits in an inline patch of its ``patches`` (the one
        this change set already added for ``target``, else a new one at the end)."""
        mine = own_inline_patch(text, target, comment)
        if mine is not None:
            if mine in own_inline_patches(overlay.original(kust), comment):
                raise KustomizeError(f"{kust} already has kube-remedy's patch {mine}")
            body = load_documents(inline_text(text, ("patches", mine, "patch")))[0]
        for logical, edit in edits:
            _put(body, logical, _patch_value(edit))
        if mine is not None:
            rendered = render_manifest(body, comment)
            return edit_inline(text, ("patches", mine, "patch"), lambda _: rendered)
        entry = {"target": dict(target), "patch": PLACEHOLDER}
        text = apply_edits(text, [AppendUnique(("patches",), entry)])
        return write_new_inline(text, "patches", body, comment)

    def network_policies(self, overlay: FileOverlay) -> list[Mapping[str, Any]]:
        """The NetworkPolicies the overlay renders (they count as already in the repository)."""
        built = self.index.render(self.overlay_dir, overlay)
        if isinstance(built, str):
            return []
        return [d for d in built if d.get("kind") == "NetworkPolicy"]

    def neighbours(self, overlay: FileOverlay) -> list[Mapping[str, Any]]:
        """Every document the overlay renders (the workload's neighbours as deployed)."""
        built = self.index.render(self.overlay_dir, overlay)
        return [] if isinstance(built, str) else list(built)


def _patch_value(edit: Edit) -> Any:
    """The value a patch writes for an edit (null deletes the field)."""
    return None if isinstance(edit, Remove) else getattr(edit, "value", None)


def _listing_kustomization(reader: KustomizeReader, origin: str) -> str | None:
    """The folder of ``origin`` when its kustomization lists it as a resource, else None."""
    folder = PurePosixPath(origin).parent.as_posix()
    folder = "" if folder == "." else folder
    try:
        _, kust = reader.kustomization(folder)
    except RepositoryError:
        return None
    listed = kust.get("resources") or []
    if kust.get("kind") == "Component" or PurePosixPath(origin).name not in listed:
        return None
    return folder


def _template_labels(document: Mapping[str, Any]) -> dict[str, str]:
    """The pod labels a workload document writes itself (what a NetworkPolicy selects)."""
    kind = document.get("kind")
    base = POD_SPEC_PATHS.get(str(kind))
    if base is None:
        return {}
    where = ("metadata", "labels") if kind == "Pod" else (*base[:-1], "metadata", "labels")
    labels = lookup(document, where)
    return {str(k): str(v) for k, v in labels.items()} if isinstance(labels, Mapping) else {}


def _document_of(
    overlay: FileOverlay, path: str, index: int, inline: YamlPath | None = None, holder: int = 0
) -> Any:
    """Document ``index`` of a file, or of the patch written inline at ``inline`` in its
    document ``holder``."""
    text = overlay.read(path)
    if text is None:
        raise KustomizeError(f"{path} does not exist")
    try:
        if inline is not None:
            text = inline_text(text, inline, holder)
        return load_documents(text.removeprefix("\ufeff"))[index]
    except (EditError, IndexError) as exc:
        raise KustomizeError(f"{path} does not parse: {exc}") from None


def _patch_name(source: PatchSource) -> str:
    """Where a patch is written, for a reason: its file, or its place in a kustomization."""
    if not source.inline:
        return source.file
    return f"the inline patch {'.'.join(map(str, source.key))} of {source.file}"


def _apply(text: str, edits: Sequence[Edit], doc_index: int) -> str:
    """`apply_edits`, also inside one item of a JSON6902 patch (a YAML list of operations):
    the item is cut out as a mapping, edited, and put back at its indentation."""
    if doc_index != 0 or not edits or any(not isinstance(e.path[0], int) for e in edits):
        return apply_edits(text, edits, doc_index)
    items = {e.path[0] for e in edits}
    if len(items) != 1:
        for item in sorted(items):
            text = _apply(text, [e for e in edits if e.path[0] == item], doc_index)
        return text
    node = yaml.compose(text.removeprefix("\ufeff"))
    (item,) = items
    if not isinstance(node, yaml.SequenceNode) or not 0 <= int(item) < len(node.value):
        raise EditError(f"operation {item} is not in the patch")
    op = node.value[int(item)]
    if not isinstance(op, yaml.MappingNode) or op.flow_style:
        raise EditError(f"operation {item} is not a block mapping")
    lines = text.splitlines(keepends=True)
    first, column = op.start_mark.line, op.start_mark.column
    last = op.end_mark.line if op.end_mark.column == 0 else op.end_mark.line + 1
    part = lines[first:last]
    prefix = part[0][:column]
    body = [part[0][column:]]
    for line in part[1:]:
        if line.strip() and not line.startswith(" " * column):
            raise EditError(f"operation {item} is not indented consistently")
        body.append(line[column:] if line.strip() else line.lstrip(" "))
    moved = [replace(e, path=e.path[1:]) for e in edits]
    edited = apply_edits("".join(body), moved).splitlines(keepends=True)
    out = [prefix + edited[0]] + [(" " * column + ln) if ln.strip() else ln for ln in edited[1:]]
    return "".join(lines[:first] + out + lines[last:])


def _for_patch(edit: Edit, logical: LogicalPath, document: Mapping[str, Any]) -> Edit:
    """The edit as a strategic-merge patch states it: a list without a merge key is replaced
    whole, so an appended item is written with the list it joins."""
    if isinstance(edit, AppendUnique):
        current = lookup(document, edit.path) or []
        if logical and logical[-1] in MERGE_KEYS:
            return Set(edit.path, [edit.value], edit.comment)
        present = edit.value in current or (
            edit.key is not None
            and any(
                isinstance(c, Mapping) and c.get(edit.key) == edit.value.get(edit.key)
                for c in current
            )
        )
        return Set(edit.path, list(current) if present else [*current, edit.value], edit.comment)
    return edit


def _put(body: dict[str, Any], logical: LogicalPath, value: Any) -> None:
    """Set ``logical`` in a patch body, creating mappings and merge-keyed list items."""
    node: Any = body
    for n, step in enumerate(logical):
        last = n == len(logical) - 1
        if step.startswith("[") and "=" in step:
            key, _, wanted = step[1:-1].partition("=")
            item = next((i for i in node if str(i.get(key)) == wanted), None)
            if item is None:
                item = {key: _scalar(wanted)}
                node.append(item)
            node = item
            continue
        if last:
            node[step] = copy.deepcopy(value)
            return
        nxt = logical[n + 1]
        default: Any = [] if nxt.startswith("[") else {}
        node = node.setdefault(step, default)


def _scalar(text: str) -> Any:
    loaded = yaml.safe_load(text)
    return loaded if isinstance(loaded, (int, str)) else text


OVERLAYS_META = "kustomize-overlays"
"""ChangeSet meta key: the overlays whose rendered output the change set changes."""
DIFF_META = "kustomize-diff"
"""ChangeSet meta key: the rendered diff of each of those overlays (bounded)."""
MAX_DIFF_LINES = 400
INLINE_META = "kustomize-inline-patches"
"""ChangeSet meta key: patches written inline in a kustomization that the change set edits or
adds (the file list shows only the kustomization)."""


def overlays_note(index: KustomizeIndex | None, overlay: FileOverlay) -> dict[str, str]:
    """``{OVERLAYS_META: "a, b", DIFF_META: diff}`` for a change set touching kustomize
    files, else empty. The diff compares each overlay's rendered objects before and after;
    an overlay whose Argo CD Application or Flux Kustomization adds patches or images is
    compared as deployed, and listed with that deployment. The patches edited inline are
    named under `INLINE_META`."""
    if index is None or not index.overlays:
        return {}
    changed = index.changed_outputs(overlay)
    if not changed:
        return {}
    lines: list[str] = []
    for folder in changed:
        before = index.render(folder, FileOverlay(index.root))
        after = index.render(folder, overlay)
        name = f"{folder or '.'} as deployed" if folder in index.adds else folder or "."
        lines += _rendered_diff(name, before, after)
    if len(lines) > MAX_DIFF_LINES:
        lines = [*lines[:MAX_DIFF_LINES], f"... {len(lines) - MAX_DIFF_LINES} more lines"]
    note = {
        OVERLAYS_META: ", ".join(index.label(f) for f in changed),
        DIFF_META: "\n".join(lines),
    }
    inline = inline_patches_changed(overlay, index.deployed.values())
    if inline:
        note[INLINE_META] = inline
    return note


def inline_patches_changed(overlay: FileOverlay, deployments: Iterable[DeployedFolder] = ()) -> str:
    """The patches written inline in kustomization files (or in the ``deployments``'
    manifests) that the overlay's edits change or add, e.g.
    ``overlays/staging/kustomization.yaml: patches[0] edited, patches[2] new``."""
    out = []
    for change in overlay.changes():
        if PurePosixPath(change.path).name in KUSTOMIZATION_FILES:
            before, after = inline_patches(change.before), inline_patches(change.after)
        else:
            before, after = {}, {}
            for deployment in deployments:
                if deployment.manifest == change.path:
                    before |= _deployment_patches(deployment, change.before)
                    after |= _deployment_patches(deployment, change.after)
        said = [
            f"{where} {'edited' if where in before else 'new'}"
            for where, text in after.items()
            if before.get(where) != text
        ]
        if said:
            out.append(f"{change.path}: {', '.join(said)}")
    return "; ".join(out)


def _deployment_patches(deployment: DeployedFolder, text: str | None) -> dict[str, str]:
    """``spec.source.kustomize.patches[n]`` -> each patch a deployment's manifest adds."""
    again = reread_deployment(deployment, text) if text else None
    where = ".".join(map(str, (*deployment.options, "patches")))
    return {f"{where}[{n}]": repr(item) for n, item in enumerate(again.patches if again else ())}


def _rendered_diff(
    folder: str, before: list[dict[str, Any]] | str, after: list[dict[str, Any]] | str
) -> list[str]:
    import difflib

    identity = regressions.identity

    def text(docs: list[dict[str, Any]] | str, keep: set[regressions.Identity]) -> list[str]:
        if isinstance(docs, str):
            return [f"# {docs}"]
        changed = [d for d in docs if identity(d) in keep]
        return yaml.dump_all(changed, Dumper=_DUMPER, sort_keys=False).splitlines()

    old = {} if isinstance(before, str) else {identity(d): d for d in before}
    new = {} if isinstance(after, str) else {identity(d): d for d in after}
    keep = {k for k in old.keys() | new.keys() if old.get(k) != new.get(k)}
    return list(
        difflib.unified_diff(
            text(before, keep),
            text(after, keep),
            f"{folder} (rendered, before)",
            f"{folder} (rendered, after)",
            n=2,
            lineterm="",
        )
    )


_DUMPER: Any = getattr(yaml, "CSafeDumper", yaml.SafeDumper)
