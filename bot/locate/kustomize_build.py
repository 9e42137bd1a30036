"""A reader of the Kustomize subset GitOps repositories use, tracing rendered fields to files.

It builds a kustomization directory the way ``kustomize build`` does for: ``resources`` (files
and directories, ``bases``), ``components``, ``patches`` / ``patchesStrategicMerge`` /
``patchesJson6902`` (files or inline, with ``target`` selectors), ``namePrefix`` /
``nameSuffix``, ``namespace``, ``images``, ``commonLabels`` / ``labels``, ``replacements``
(whole values, ``delimiter`` / ``index``, ``create``) and ``vars``; and the images and patches
an Argo CD Application or Flux Kustomization adds (`KustomizeReader.deploy`). Generators
produce no workloads and are skipped. Every rendered resource remembers the base document it
came from and the patches and replacements applied to it, so a field can be traced to the file
that sets it (`Rendered.source_of`); what it cannot apply is named in `KustomizeReader.untraced`. Remote resources and Helm chart inflation are refused: nothing is
fetched. `bot.locate.kustomize` uses the real engine (``kubectl kustomize``) to build and
verify when the machine has one; this reader is the fallback and the tracer.
"""

from __future__ import annotations

import copy
import re
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field, replace
from functools import lru_cache
from pathlib import Path, PurePosixPath
from typing import Any, Literal

from bot.errors import RepositoryError
from bot.locate.base import FileOverlay
from bot.locate.gitops import KUSTOMIZATION_FILES, DeployedFolder
from fixers.edits import EditError, load_documents
from fixers.model import YamlPath
from fixers.view import lookup

MERGE_KEYS: Mapping[str, str] = {
    "containers": "name",
    "initContainers": "name",
    "ephemeralContainers": "name",
    "volumes": "name",
    "volumeMounts": "mountPath",
    "env": "name",
    "ports": "containerPort",
    "imagePullSecrets": "name",
}
"""Lists a strategic-merge patch merges item by item (the key identifying an item)."""

CLUSTER_SCOPED = frozenset(
    {
        "Namespace",
        "ClusterRole",
        "ClusterRoleBinding",
        "CustomResourceDefinition",
        "PersistentVolume",
        "StorageClass",
        "PriorityClass",
        "ClusterIssuer",
        "GatewayClass",
        "ValidatingWebhookConfiguration",
        "MutatingWebhookConfiguration",
    }
)
MAX_DEPTH = 32
"""How deep kustomizations may nest (a loop or a runaway tree is refused)."""

LogicalPath = tuple[str, ...]
"""A field path whose items of merge-keyed lists are named ``[key=value]``, not numbered."""


class KustomizeError(RepositoryError):
    """A kustomization this reader cannot build (with the file and why)."""


@dataclass(frozen=True)
class PatchSource:
    """One patch as written: the file holding it (the kustomization itself when inline)."""

    file: str
    document: int
    kind: Literal["smp", "json6902", "replacement"]
    inline: bool = False
    key: YamlPath = ()
    """For an inline patch: where its text sits in the file (a kustomization, or the Argo CD
    Application / Flux Kustomization adding it)."""
    holder: int = 0
    """For an inline patch: the document of ``file`` holding its text."""
    copies: tuple[str, str, str] | None = None
    """For a replacement that copies a whole value: the kind, name and field path of its
    source (None when it copies a part of a delimited string)."""


@dataclass(frozen=True)
class Touch:
    """A field a patch sets on a resource, and where in the patch file that value is written."""

    path: LogicalPath
    source: PatchSource
    where: YamlPath | None
    """Path inside the patch document (None when the value cannot be edited in place)."""


@dataclass
class Rendered:
    """A resource as a kustomization renders it, with its history."""

    doc: dict[str, Any]
    origin: str
    """Repository path of the file defining the resource."""
    index: int
    """Document index in that file."""
    original: dict[str, Any]
    names: list[str] = field(default_factory=list)
    """Every name the resource had, the original first."""
    touches: list[Touch] = field(default_factory=list)

    @property
    def kind(self) -> str:
        return str(self.doc.get("kind", ""))

    @property
    def name(self) -> str:
        return str((self.doc.get("metadata") or {}).get("name", ""))

    @property
    def namespace(self) -> str | None:
        ns = (self.doc.get("metadata") or {}).get("namespace")
        return str(ns) if ns else None

    def source_of(self, path: LogicalPath) -> Touch | None:
        """The last patch that sets ``path`` or a field above it; None when the base does."""
        for touch in reversed(self.touches):
            if path[: len(touch.path)] == touch.path:
                return touch
        return None

    def touched_below(self, path: LogicalPath) -> list[Touch]:
        """Patches that set a field strictly under ``path``."""
        return [t for t in self.touches if len(t.path) > len(path) and t.path[: len(path)] == path]


def logical_path(doc: Any, physical: Sequence[str | int]) -> LogicalPath:
    """``physical`` (list items by index) in ``doc`` as a `LogicalPath`."""
    out: list[str] = []
    node = doc
    parent_key = ""
    for step in physical:
        if isinstance(step, int):
            item = node[step] if isinstance(node, list) and -len(node) <= step < len(node) else None
            key = MERGE_KEYS.get(parent_key)
            if key is None or not isinstance(item, Mapping) or key not in item:
                raise KustomizeError(f"cannot name item {step} of {'.'.join(out)}")
            out.append(f"[{key}={item[key]}]")
            node = item
        else:
            out.append(step)
            node = node.get(step) if isinstance(node, Mapping) else None
            parent_key = step
    return tuple(out)


_ITEM = re.compile(r"^\[([^=\]]+)=(.*)\]$")


def physical_path(doc: Any, path: LogicalPath) -> YamlPath | None:
    """``path`` in ``doc`` with list items by index; None when an item is not in ``doc``."""
    out: list[str | int] = []
    node = doc
    for step in path:
        match = _ITEM.match(step)
        if match:
            if not isinstance(node, list):
                return None
            key, value = match[1], match[2]
            found = [
                i for i, v in enumerate(node) if isinstance(v, Mapping) and str(v.get(key)) == value
            ]
            if len(found) != 1:
                return None
            out.append(found[0])
            node = node[found[0]]
        else:
            out.append(step)
            node = node.get(step) if isinstance(node, Mapping) else None
    return tuple(out)


def find_kustomization(root: Path, folder: str, overlay: FileOverlay | None = None) -> str | None:
    """The kustomization file of ``folder`` (repository paths), or None."""
    for name in KUSTOMIZATION_FILES:
        rel = f"{folder}/{name}" if folder else name
        if overlay is not None:
            if overlay.read(rel) is not None:
                return rel
        elif (root / rel).is_file():
            return rel
    return None


def _join(folder: str, ref: str) -> str:
    """``ref`` relative to ``folder``, normalised; refused when it leaves the repository."""
    if "://" in ref or ref.startswith(("github.com/", "git@", "gitlab.com/")) or "?ref=" in ref:
        raise KustomizeError(f"{folder or '.'}: remote resource {ref!r}; refusing to fetch it")
    parts: list[str] = [p for p in PurePosixPath(folder).parts if p != "."]
    for part in PurePosixPath(ref).parts:
        if part in (".", ""):
            continue
        if part == "..":
            if not parts:
                raise KustomizeError(f"{folder or '.'}: {ref!r} leaves the repository; refusing it")
            parts.pop()
        elif part == "/":
            raise KustomizeError(f"{folder or '.'}: absolute path {ref!r}; refusing it")
        else:
            parts.append(part)
    return "/".join(parts)


@dataclass
class KustomizeReader:
    """Builds kustomization directories of one repository state (pending edits included)."""

    overlay: FileOverlay
    untraced: list[str] = field(default_factory=list)
    """Fields set by what the reader saw but does not apply (a replacement option it does not
    know): its render may differ from kustomize's there, so only the real engine may build
    such an overlay."""
    _cache: dict[str, list[Rendered]] = field(default_factory=dict)

    @property
    def root(self) -> Path:
        return self.overlay.root

    def _load(self, relpath: str) -> list[Any]:
        text = self.overlay.read(relpath)
        if text is None:
            raise KustomizeError(f"{relpath} does not exist")
        try:
            return list(_parsed(text.removeprefix("\ufeff")))
        except EditError as exc:
            raise KustomizeError(f"{relpath} does not parse: {exc}") from None

    def kustomization(self, folder: str) -> tuple[str, Mapping[str, Any]]:
        """The kustomization file of ``folder`` and its content."""
        path = find_kustomization(self.root, folder, self.overlay)
        if path is None:
            raise KustomizeError(f"{folder or '.'} has no kustomization.yaml")
        docs = self._load(path)
        if len(docs) != 1 or not isinstance(docs[0], Mapping):
            raise KustomizeError(f"{path} is not one YAML mapping")
        return path, docs[0]

    def files(self, folder: str, _depth: int = 0) -> set[str]:
        """Every repository file the build of ``folder`` reads (to know what an edit affects)."""
        if _depth > MAX_DEPTH:
            raise KustomizeError(f"{folder}: kustomizations nest deeper than {MAX_DEPTH}")
        path, kust = self.kustomization(folder)
        out = {path}
        for ref in _list(kust, "resources") + _list(kust, "bases") + _list(kust, "components"):
            target = _join(folder, ref)
            if find_kustomization(self.root, target, self.overlay) is not None:
                out |= self.files(target, _depth + 1)
            else:
                out.add(target)
        out |= self.patch_files(folder, kust)
        for item in kust.get("replacements") or []:
            replacement = item.get("path") if isinstance(item, Mapping) else item
            if isinstance(replacement, str) and "\n" not in replacement:
                out.add(_join(folder, replacement))
        for key in ("configMapGenerator", "secretGenerator"):  # ``files: [key=]path``
            for gen in kust.get(key) or []:
                for item in (gen.get("files") or []) if isinstance(gen, Mapping) else []:
                    try:
                        out.add(_join(folder, str(item).rpartition("=")[2]))
                    except KustomizeError:
                        continue  # outside the repository: kube-remedy never reads it
        return out

    def patch_files(self, folder: str, kust: Mapping[str, Any] | None = None) -> set[str]:
        """The files ``folder``'s own kustomization applies as patches (not resources)."""
        if kust is None:
            kust = self.kustomization(folder)[1]
        out = set()
        for key in ("patchesStrategicMerge", "patches", "patchesJson6902"):
            items = kust.get(key) or []
            for item in items if isinstance(items, list) else []:
                patch_file = item.get("path") if isinstance(item, Mapping) else item
                if isinstance(patch_file, str) and "\n" not in patch_file:
                    out.add(_join(folder, patch_file))
        return out

    def build(self, folder: str) -> list[Rendered]:
        """The resources ``folder``'s kustomization renders, in order (copies: safe to edit)."""
        return [_copy(r) for r in self._build(folder, 0)]

    def _build(
        self, folder: str, depth: int, deployment: DeployedFolder | None = None
    ) -> list[Rendered]:
        if deployment is None and folder in self._cache:
            return self._cache[folder]
        if depth > MAX_DEPTH:
            raise KustomizeError(f"{folder}: kustomizations nest deeper than {MAX_DEPTH}")
        path, kust = self.kustomization(folder)
        if kust.get("kind") == "Component":
            raise KustomizeError(f"{folder} is a Component; it is built by the overlays using it")
        for unsupported in (
            "helmCharts",
            "helmChartInflationGenerator",
            "generators",
            "transformers",
            "validators",
            "configurations",
            "openapi",
        ):
            if kust.get(unsupported):
                raise KustomizeError(f"{path}: {unsupported} is not supported; refusing to build")
        resources = self._resources(folder, kust, depth)
        for ref in _list(kust, "components"):
            resources = self._component(_join(folder, ref), resources, depth + 1)
        resources = self._transform(folder, path, kust, resources, deployment)
        _substitute_vars(path, kust.get("vars") or [], resources)
        seen: set[tuple[str, str | None, str]] = set()
        for res in resources:
            ident = (res.kind, res.namespace, res.name)
            if ident in seen:
                raise KustomizeError(
                    f"{folder or '.'}: {res.kind} {res.name} is defined twice (kustomize refuses "
                    "a resource with an already registered id)"
                )
            seen.add(ident)
        if deployment is None:
            self._cache[folder] = resources
        return resources

    def _resources(self, folder: str, kust: Mapping[str, Any], depth: int) -> list[Rendered]:
        out: list[Rendered] = []
        for ref in _list(kust, "resources") + _list(kust, "bases"):
            target = _join(folder, ref)
            if find_kustomization(self.root, target, self.overlay) is not None:
                out.extend(_copy(r) for r in self._build(target, depth + 1))
                continue
            for i, doc in enumerate(self._load(target)):
                if isinstance(doc, Mapping) and doc.get("kind"):
                    if str(doc["kind"]).endswith("List") and isinstance(doc.get("items"), list):
                        raise KustomizeError(f"{target}: List documents are not supported")
                    name = str((doc.get("metadata") or {}).get("name", ""))
                    out.append(Rendered(copy.deepcopy(dict(doc)), target, i, dict(doc), [name]))
        return out

    def _component(self, folder: str, resources: list[Rendered], depth: int) -> list[Rendered]:
        if depth > MAX_DEPTH:
            raise KustomizeError(f"{folder}: kustomizations nest deeper than {MAX_DEPTH}")
        path, kust = self.kustomization(folder)
        resources = [*resources, *self._resources(folder, kust, depth)]
        for ref in _list(kust, "components"):
            resources = self._component(_join(folder, ref), resources, depth + 1)
        return self._transform(folder, path, kust, resources)

    # ------------------------------------------------------------------ transformers

    def _transform(
        self,
        folder: str,
        path: str,
        kust: Mapping[str, Any],
        resources: list[Rendered],
        deployment: DeployedFolder | None = None,
    ) -> list[Rendered]:
        # kustomize's order: strategic-merge patches, patches, namespace / names / labels,
        # then JSON6902 patches (their targets name resources as renamed), images, replacements
        for n, item in enumerate(kust.get("patchesStrategicMerge") or []):
            self._patch(folder, path, item, None, resources, ("patchesStrategicMerge", n), "smp")
        self._patch_list(folder, path, kust, "patches", None, resources)
        images = kust.get("images") or []
        if deployment is not None:
            self._deployment_patches(folder, deployment, resources)
            images = deployed_images(images, deployment.images)
        namespace = kust.get("namespace")
        prefix, suffix = str(kust.get("namePrefix") or ""), str(kust.get("nameSuffix") or "")
        labels = dict(kust.get("commonLabels") or {})
        template_labels: dict[str, Any] = dict(labels)
        for entry in kust.get("labels") or []:
            if isinstance(entry, Mapping):
                pairs = dict(entry.get("pairs") or {})
                labels.update(pairs)
                if entry.get("includeTemplates") or entry.get("includeSelectors"):
                    template_labels.update(pairs)
        for res in resources:
            meta = res.doc.setdefault("metadata", {})
            if namespace and res.kind not in CLUSTER_SCOPED:
                meta["namespace"] = str(namespace)
            if (prefix or suffix) and res.kind not in ("Namespace", "CustomResourceDefinition"):
                meta["name"] = f"{prefix}{meta.get('name', '')}{suffix}"
                res.names.append(meta["name"])
            if labels:
                meta["labels"] = {**(meta.get("labels") or {}), **labels}
            template = _pod_template(res.doc)
            if template_labels and template is not None:
                tmeta = template.setdefault("metadata", {})
                tmeta["labels"] = {**(tmeta.get("labels") or {}), **template_labels}
        self._patch_list(folder, path, kust, "patchesJson6902", "json6902", resources)
        for res in resources:
            set_images(res.doc, images)
        self._replacements(folder, path, kust, resources)
        return resources

    def _patch_list(
        self,
        folder: str,
        path: str,
        kust: Mapping[str, Any],
        field_name: str,
        form: Literal["json6902"] | None,
        resources: list[Rendered],
    ) -> None:
        """Apply the items of ``patches`` (either form, told from the body) or
        ``patchesJson6902``."""
        for n, item in enumerate(kust.get(field_name) or []):
            if not isinstance(item, Mapping):
                raise KustomizeError(f"{path}: {field_name} item {n} is not a mapping")
            self._patch(
                folder,
                path,
                item.get("path") or item.get("patch"),
                item.get("target"),
                resources,
                (field_name, n, "patch"),
                form,
                bool(item.get("patch")),
            )

    def _replacements(
        self, folder: str, path: str, kust: Mapping[str, Any], resources: list[Rendered]
    ) -> None:
        """Apply the kustomization's ``replacements`` (inline or files), each target field
        recorded as set by its replacement; what the reader cannot apply is named in
        `untraced`."""
        for n, item in enumerate(kust.get("replacements") or []):
            if not isinstance(item, Mapping):
                raise KustomizeError(f"{path}: replacements item {n} is not a mapping")
            if isinstance(item.get("path"), str):
                file = _join(folder, item["path"])
                for d, doc in enumerate(self._load(file)):
                    specs = doc if isinstance(doc, list) else [doc]
                    for m, spec in enumerate(specs):
                        source = PatchSource(file, d, "replacement", key=(m,))
                        self._replace(spec, source, resources)
            else:
                source = PatchSource(path, 0, "replacement", key=("replacements", n))
                self._replace(item, source, resources)

    def _replace(self, spec: Any, source: PatchSource, resources: list[Rendered]) -> None:
        where = f"{source.file} replacement {_dotted(source.key)}"
        if not isinstance(spec, Mapping) or not isinstance(spec.get("source"), Mapping):
            raise KustomizeError(f"{where}: a replacement needs a source")
        origin = spec["source"]
        found = [r for r in resources if _selected(r, origin)]
        if len(found) != 1:
            raise KustomizeError(f"{where}: its source selects {len(found)} resources, not one")
        field_path = str(origin.get("fieldPath") or "metadata.name")
        values = [lookup(found[0].doc, p) for p in field_paths(found[0].doc, field_path)]
        if len(values) != 1:
            raise KustomizeError(f"{where}: {field_path} is missing in its source")
        value = _delimited(values[0], origin.get("options"), where)
        copied = (found[0].kind, found[0].name, field_path)
        for target in spec.get("targets") or []:
            if not isinstance(target, Mapping):
                raise KustomizeError(f"{where}: a target is not a mapping")
            options = target.get("options") or {}
            rejects = target.get("reject") or []
            chosen = [
                r
                for r in resources
                if _selected(r, target.get("select") or {})
                and not any(_selected(r, x) for x in rejects)
            ]
            unknown = set(options) - {"delimiter", "index", "create"}
            # a part of a delimited string is not the source's value: no field to trace back
            whole = not _has_delimiter(origin) and not _has_delimiter(target)
            setter = replace(source, kind="replacement", copies=copied if whole else None)
            for res in chosen:
                for fp in target.get("fieldPaths") or []:
                    if unknown:
                        self.untraced.append(
                            f"{res.kind} {res.name} {fp} (set by {where} with options "
                            f"{', '.join(sorted(unknown))})"
                        )
                        continue
                    for physical in field_paths(res.doc, str(fp), bool(options.get("create"))):
                        _set_field(res.doc, physical, value, options)
                        res.touches.append(Touch(named_path(res.doc, physical), setter, None))

    def _patch(
        self,
        folder: str,
        kust_path: str,
        body: Any,
        target: Any,
        resources: list[Rendered],
        key: YamlPath,
        kind: Literal["smp", "json6902"] | None,
        inline: bool = False,
        holder: int = 0,
    ) -> None:
        if not isinstance(body, str):
            raise KustomizeError(f"{kust_path}: a patch at {_dotted(key)} has no path or text")
        if (
            inline
            or "\n" in body
            or (kind == "smp" and body.lstrip().startswith(("{", "apiVersion")))
        ):
            try:
                docs = load_documents(body)
            except EditError as exc:
                raise KustomizeError(f"{kust_path}: inline patch does not parse: {exc}") from None
            file, inline = kust_path, True
        else:
            file = _join(folder, body)
            docs = self._load(file)
        for i, doc in enumerate(docs):
            if doc is None:
                continue
            doc_kind = kind or ("json6902" if isinstance(doc, list) else "smp")
            source = PatchSource(file, i, doc_kind, inline, key if inline else (), holder)
            if doc_kind == "json6902":
                if not isinstance(doc, list):
                    raise KustomizeError(f"{file}: a JSON6902 patch must be a list of operations")
                chosen = [r for r in resources if _selected(r, target)]
                if target is None:
                    raise KustomizeError(f"{kust_path}: a JSON6902 patch needs a target")
                for res in chosen:
                    _json6902(res, doc, source)
            else:
                if not isinstance(doc, Mapping):
                    raise KustomizeError(f"{file}: a strategic-merge patch must be a mapping")
                selector = target if target is not None else _own_selector(doc)
                for res in resources:
                    if _selected(res, selector):
                        _strategic_merge(res, doc, source)

    def deploy(self, folder: str, deployment: DeployedFolder) -> list[Rendered]:
        """``folder``'s resources as a deployment creates them: the patches and images an
        Argo CD Application's ``kustomize:`` options or a Flux Kustomization add join the
        folder's own kustomization (as both tools add them), traced to the deployment's
        manifest."""
        return [_copy(r) for r in self._build(folder, 0, deployment)]

    def _deployment_patches(
        self, folder: str, deployment: DeployedFolder, resources: list[Rendered]
    ) -> None:
        for n, item in enumerate(deployment.patches):
            if not isinstance(item, Mapping):
                raise KustomizeError(f"{deployment.manifest}: patch {n} is not a mapping")
            self._patch(
                folder,
                deployment.manifest,
                item.get("path") or item.get("patch"),
                item.get("target"),
                resources,
                (*deployment.options, "patches", n, "patch"),
                None,
                bool(item.get("patch")),
                deployment.document,
            )


def deployed_images(own: Sequence[Any], added: Sequence[Mapping[str, str]]) -> list[Any]:
    """A kustomization's ``images`` once a deployment sets its own: an entry for the same
    image name replaces the kustomization's (``kustomize edit set image``), others join."""
    names = {entry.get("name") for entry in added}
    kept = [e for e in own if not (isinstance(e, Mapping) and e.get("name") in names)]
    return [*kept, *(dict(e) for e in added)]


@lru_cache(maxsize=1024)
def _parsed(text: str) -> tuple[Any, ...]:
    """The documents of a file, parsed once per text (callers copy before changing them)."""
    return tuple(load_documents(text))


_VAR_FIELDS = ("command", "args")


def _substitute_vars(path: str, declared: Sequence[Any], resources: list[Rendered]) -> None:
    """Kustomize's deprecated ``vars``: ``$(NAME)`` in containers' command, args and env
    values becomes a field of the object the var names (``metadata.name`` by default)."""
    values: dict[str, str] = {}
    for var in declared:
        if not isinstance(var, Mapping) or not isinstance(var.get("objref"), Mapping):
            raise KustomizeError(f"{path}: a var needs a name and an objref")
        ref = var["objref"]
        fieldpath = str((var.get("fieldref") or {}).get("fieldpath") or "metadata.name")
        found = [r for r in resources if r.kind == ref.get("kind") and ref.get("name") in r.names]
        if len(found) != 1:
            raise KustomizeError(f"{path}: var {var.get('name')} names no single object")
        value = lookup(found[0].doc, tuple(fieldpath.split(".")))
        if not isinstance(value, (str, int)):
            raise KustomizeError(f"{path}: var {var.get('name')}: {fieldpath} is not a scalar")
        values[f"$({var.get('name')})"] = str(value)
    if not values:
        return

    def replaced(text: str) -> str:
        for token, value in values.items():
            text = text.replace(token, value)
        return text

    for res in resources:
        for container in _all_containers(res.doc):
            for key in _VAR_FIELDS:
                items = container.get(key)
                if isinstance(items, list):
                    container[key] = [replaced(i) if isinstance(i, str) else i for i in items]
            for env in container.get("env") or []:
                if isinstance(env, dict) and isinstance(env.get("value"), str):
                    env["value"] = replaced(env["value"])


def named_path(doc: Any, physical: YamlPath) -> LogicalPath:
    """``physical`` as a `LogicalPath` as far as its list items have merge keys, by index
    after that."""
    for n in range(len(physical), -1, -1):
        try:
            return (*logical_path(doc, physical[:n]), *map(str, physical[n:]))
        except KustomizeError:
            continue
    return tuple(map(str, physical))


def _split_field_path(field_path: str) -> list[str]:
    """``spec.containers.[name=a.b].image`` -> ``["spec", "containers", "[name=a.b]", "image"]``."""
    steps, current, depth = [], "", 0
    for char in field_path:
        if char == "." and depth == 0:
            steps.append(current)
            current = ""
            continue
        depth += {"[": 1, "]": -1}.get(char, 0)
        current += char
    steps.append(current)
    if any(not step for step in steps):
        raise KustomizeError(f"field path {field_path!r} has an empty step")
    return steps


def field_paths(doc: Any, field_path: str, create: bool = False) -> list[YamlPath]:
    """Every physical path a replacement's field path names in ``doc`` (``*`` and ``[k=v]``
    pick list items); missing mappings are created when ``create``."""

    def walk(node: Any, steps: list[str]) -> list[list[str | int]]:
        if not steps:
            return [[]]
        step, rest = steps[0], steps[1:]
        if isinstance(node, list):
            match = _ITEM.match(step)
            if match:
                items = [
                    i
                    for i, v in enumerate(node)
                    if isinstance(v, Mapping) and str(v.get(match[1])) == match[2]
                ]
            elif step == "*":
                items = list(range(len(node)))
            elif step.isdigit() and int(step) == len(node) and create and not rest:
                node.append(None)  # kustomize appends an item one past the end
                items = [len(node) - 1]
            else:
                items = [int(step)] if step.isdigit() and int(step) < len(node) else []
            return [[i, *p] for i in items for p in walk(node[i], rest)]
        if isinstance(node, dict):
            if step not in node:
                if not create or step == "*" or _ITEM.match(step):
                    return []
                node[step] = {} if rest else None
            return [[step, *p] for p in walk(node[step], rest)]
        return []

    return [tuple(p) for p in walk(doc, _split_field_path(field_path))]


def _has_delimiter(spec: Mapping[str, Any]) -> bool:
    options = spec.get("options")
    return isinstance(options, Mapping) and bool(options.get("delimiter"))


def _delimited(value: Any, options: Any, where: str) -> Any:
    """A replacement source's value, or one part of it (``options.delimiter`` and ``index``)."""
    if not isinstance(options, Mapping) or not options.get("delimiter"):
        return copy.deepcopy(value)
    parts = str(value).split(str(options["delimiter"]))
    index = int(options.get("index") or 0)
    if not 0 <= index < len(parts):
        raise KustomizeError(f"{where}: source index {index} is out of range")
    return parts[index]


def _set_field(doc: Any, physical: YamlPath, value: Any, options: Mapping[str, Any]) -> None:
    parent = lookup(doc, physical[:-1]) if physical[:-1] else doc
    last = physical[-1]
    delimiter = options.get("delimiter")
    current = parent[last]
    if delimiter and (not isinstance(current, str | None) or isinstance(value, Mapping | list)):
        raise KustomizeError("a replacement's delimiter option can only be used with scalar nodes")
    if delimiter and isinstance(current, str):
        parts = current.split(str(delimiter))
        index = int(options.get("index") or 0)
        if index >= len(parts):
            parts.append(str(value))
        elif index < 0:
            parts.insert(0, str(value))
        else:
            parts[index] = str(value)
        value = str(delimiter).join(parts)
    parent[last] = copy.deepcopy(value)


def _list(kust: Mapping[str, Any], key: str) -> list[str]:
    value = kust.get(key) or []
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise KustomizeError(f"kustomization {key} must be a list of paths")
    return list(value)


def _copy(res: Rendered) -> Rendered:
    return Rendered(
        copy.deepcopy(res.doc),
        res.origin,
        res.index,
        res.original,
        list(res.names),
        list(res.touches),
    )


def _dotted(path: Sequence[str | int]) -> str:
    return ".".join(map(str, path))


def _pod_template(doc: Mapping[str, Any]) -> dict[str, Any] | None:
    spec = doc.get("spec")
    if not isinstance(spec, dict):
        return None
    if doc.get("kind") == "CronJob":
        job = (spec.get("jobTemplate") or {}).get("spec")
        spec = job if isinstance(job, dict) else {}
    template = spec.get("template")
    return template if isinstance(template, dict) else None


def set_images(doc: dict[str, Any], images: Sequence[Any]) -> None:
    if not images:
        return
    for container in _all_containers(doc):
        image = container.get("image")
        if not isinstance(image, str):
            continue
        name = re.split(r"[@:]", image.rsplit("/", 1)[-1])[0]
        repo = image.split("@")[0]
        repo = repo.rsplit(":", 1)[0] if ":" in repo.rsplit("/", 1)[-1] else repo
        for entry in images:
            if not isinstance(entry, Mapping) or entry.get("name") not in (repo, name):
                continue
            new_repo = str(entry.get("newName") or repo)
            if entry.get("digest"):
                container["image"] = f"{new_repo}@{entry['digest']}"
            elif entry.get("newTag"):
                container["image"] = f"{new_repo}:{entry['newTag']}"
            else:
                tail = image[len(repo) :]
                container["image"] = f"{new_repo}{tail}"


def _all_containers(doc: Mapping[str, Any]) -> Iterator[dict[str, Any]]:
    template = _pod_template(doc)
    spec = template.get("spec") if template is not None else doc.get("spec")
    if doc.get("kind") != "Pod" and template is None:
        return
    if not isinstance(spec, dict):
        return
    for key in ("initContainers", "containers"):
        for c in spec.get(key) or []:
            if isinstance(c, dict):
                yield c


def _own_selector(doc: Mapping[str, Any]) -> dict[str, Any]:
    meta = doc.get("metadata") or {}
    return {"kind": doc.get("kind"), "name": meta.get("name"), "namespace": meta.get("namespace")}


def _selected(res: Rendered, selector: Any) -> bool:
    """Does a patch selector (kind, name regex, namespace, labelSelector) pick ``res``?"""
    if not isinstance(selector, Mapping):
        return False
    if selector.get("kind") and selector["kind"] != res.kind:
        return False
    if selector.get("group") is not None or selector.get("version") is not None:
        api = str(res.doc.get("apiVersion", ""))
        group, _, version = api.rpartition("/")
        if selector.get("group") is not None and selector["group"] != group:
            return False
        if selector.get("version") and selector["version"] != version:
            return False
    name = selector.get("name")
    if name and not any(re.fullmatch(str(name), n) for n in res.names):
        return False
    namespace = selector.get("namespace")
    if namespace and not re.fullmatch(str(namespace), res.namespace or "default"):
        return False
    labels = selector.get("labelSelector")
    if labels:
        own = (res.doc.get("metadata") or {}).get("labels") or {}
        for term in str(labels).split(","):
            k, _, v = term.strip().partition("=")
            if own.get(k) != v:
                return False
    annotations = selector.get("annotationSelector")
    if annotations:
        own = (res.doc.get("metadata") or {}).get("annotations") or {}
        for term in str(annotations).split(","):
            k, _, v = term.strip().partition("=")
            if own.get(k) != v:
                return False
    return True


# ---------------------------------------------------------------------- strategic merge


def _strategic_merge(res: Rendered, patch: Mapping[str, Any], source: PatchSource) -> None:
    body = {k: v for k, v in patch.items() if k not in ("apiVersion", "kind", "metadata")}
    meta = patch.get("metadata") or {}
    merged_meta = {k: v for k, v in meta.items() if k not in ("name", "namespace")}
    if merged_meta:
        body["metadata"] = merged_meta
    touches: list[Touch] = []
    res.doc = _merge(res.doc, body, (), (), touches, source)
    res.touches.extend(touches)


def _merge(
    base: Any,
    patch: Any,
    logical: LogicalPath,
    where: YamlPath,
    touches: list[Touch],
    source: PatchSource,
) -> Any:
    if not isinstance(patch, Mapping) or not isinstance(base, Mapping):
        touches.append(Touch(logical, source, where))
        return copy.deepcopy(patch)
    if patch.get("$patch") == "replace":
        touches.append(Touch(logical, source, where))
        return {k: copy.deepcopy(v) for k, v in patch.items() if k != "$patch"}
    out = dict(base)
    for key, value in patch.items():
        if key.startswith("$"):
            continue
        sub, at = (*logical, str(key)), (*where, key)
        if value is None:
            out.pop(key, None)
            touches.append(Touch(sub, source, at))
        elif key in MERGE_KEYS and isinstance(value, list) and isinstance(out.get(key), list):
            out[key] = _merge_list(out[key], value, MERGE_KEYS[key], sub, at, touches, source)
        elif isinstance(value, Mapping) and isinstance(out.get(key), Mapping):
            out[key] = _merge(out[key], value, sub, at, touches, source)
        else:
            out[key] = copy.deepcopy(value)
            touches.append(Touch(sub, source, at))
    return out


def _merge_list(
    base: list[Any],
    patch: list[Any],
    key: str,
    logical: LogicalPath,
    where: YamlPath,
    touches: list[Touch],
    source: PatchSource,
) -> list[Any]:
    out = list(base)
    for n, item in enumerate(patch):
        if not isinstance(item, Mapping) or key not in item:
            touches.append(Touch(logical, source, where))
            return copy.deepcopy(patch)
        found = [i for i, v in enumerate(out) if isinstance(v, Mapping) and v.get(key) == item[key]]
        sub, at = (*logical, f"[{key}={item[key]}]"), (*where, n)
        if item.get("$patch") == "delete":
            out = [v for i, v in enumerate(out) if i not in found]
            touches.append(Touch(sub, source, None))
        elif found:
            out[found[0]] = _merge(out[found[0]], item, sub, at, touches, source)
        else:
            out.append({k: copy.deepcopy(v) for k, v in item.items() if not k.startswith("$")})
            touches.append(Touch(sub, source, at))
    return out


# ---------------------------------------------------------------------- JSON 6902


def _pointer(path: Any) -> list[str]:
    if not isinstance(path, str) or not path.startswith("/"):
        raise KustomizeError(f"JSON patch path {path!r} is not a JSON pointer")
    return [p.replace("~1", "/").replace("~0", "~") for p in path[1:].split("/")]


def _json6902(res: Rendered, ops: list[Any], source: PatchSource) -> None:
    for n, op in enumerate(ops):
        if not isinstance(op, Mapping) or op.get("op") not in ("add", "replace", "remove", "test"):
            raise KustomizeError(
                f"{source.file}: operation {n} is not supported (add/replace/remove)"
            )
        if op["op"] == "test":
            continue
        steps = _pointer(op.get("path"))
        parent: Any = res.doc
        physical: list[str | int] = []
        for step in steps[:-1]:
            if isinstance(parent, list):
                if not step.isdigit() or int(step) >= len(parent):
                    raise KustomizeError(f"{source.file}: op {n} path {op['path']} not found")
                physical.append(int(step))
                parent = parent[int(step)]
            elif isinstance(parent, dict):
                if step not in parent:
                    raise KustomizeError(f"{source.file}: op {n} path {op['path']} not found")
                physical.append(step)
                parent = parent[step]
            else:
                raise KustomizeError(f"{source.file}: op {n} path {op['path']} not found")
        last = steps[-1]
        value = copy.deepcopy(op.get("value"))
        if isinstance(parent, list):
            index = len(parent) if last == "-" else int(last) if last.isdigit() else -1
            if not 0 <= index <= len(parent) - (op["op"] != "add"):
                raise KustomizeError(f"{source.file}: op {n} index {last} out of range")
            if op["op"] == "add":
                parent.insert(index, value)
            elif op["op"] == "replace":
                parent[index] = value
            else:
                del parent[index]
            physical.append(index)
        elif isinstance(parent, dict):
            if op["op"] == "remove":
                parent.pop(last, None)
            else:
                parent[last] = value
            physical.append(last)
        else:
            raise KustomizeError(f"{source.file}: op {n} path {op['path']} not found")
        try:
            logical = logical_path(res.doc, physical) if op["op"] != "remove" else None
        except KustomizeError:
            logical = None
        if logical is None:
            try:
                logical = (*logical_path(res.doc, physical[:-1]), str(physical[-1]))
            except KustomizeError:
                logical = tuple(map(str, physical))
        where = (n, "value") if op["op"] != "remove" else None
        res.touches.append(Touch(logical, source, where))


def kustomization_dirs(root: Path, skip: Sequence[str] = (".git",)) -> list[str]:
    """Repository folders holding a kustomization file (Components included), sorted."""
    out = []
    for name in KUSTOMIZATION_FILES:
        for path in root.rglob(name):
            rel = path.relative_to(root)
            if any(part in skip or part.startswith(".") for part in rel.parts[:-1]):
                continue
            if path.is_symlink():
                continue
            folder = rel.parent.as_posix()
            out.append("" if folder == "." else folder)
    return sorted(set(out))


def is_component(reader: KustomizeReader, folder: str) -> bool:
    try:
        _, kust = reader.kustomization(folder)
    except KustomizeError:
        return False
    return kust.get("kind") == "Component"
