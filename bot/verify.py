"""Prove a fix before proposing it: re-read the result and re-check the failing control.

A change that does not verify is not proposed; the finding goes to the unfixable list with the
reason. Checks: the edited file still parses (and a chart still renders: the Helm target's
``reread`` re-renders), the workload still validates against the Kubernetes OpenAPI schema
(offline, from the schemas shipped by ``kubernetes-validate``), every resource request and limit
is a quantity the API server accepts (whatever its source: policy, derived, or the file), and the fixer that proposed the
change now answers AlreadyCompliant for the same finding (the bot's own check for that control).

Schema errors the document already had before the edit are not held against the fix: only the
errors the edit introduces reject it. Kinds without a shipped schema (CRDs) are not validated.
When the caller names the document the edits were written on (already verified, or the
repository's own), only what the edits changed is validated (`changes_validate`); anything that
check cannot vouch for falls back to validating the whole object.
The Kubernetes version is ``REMEDY_KUBERNETES_VERSION`` (e.g. ``1.33``), default
`DEFAULT_KUBERNETES_VERSION`; the newest shipped schema not newer than it is used.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Callable, Mapping
from functools import lru_cache
from importlib import resources
from typing import Any
from urllib.parse import unquote, urldefrag, urljoin

from bot.errors import ConfigError
from bot.locate.base import FileOverlay, Target
from bot.safe_load import SCALAR_TYPES
from fixers.base import Fixer
from fixers.model import AlreadyCompliant, Finding, ResourceRef
from fixers.policy import FixContext
from fixers.registry import all_fixers, run_fixer
from fixers.rules import _quantity
from fixers.rules._capabilities import normalise
from fixers.view import ContainerView, ManifestPodView
from fixers.yaml_data import same_data

DEFAULT_KUBERNETES_VERSION = "1.35"
VERSION_ENV = "REMEDY_KUBERNETES_VERSION"
_VERSION_DIR = re.compile(r"^v(\d+)\.(\d+)\.\d+-local-strict$")


def verify_fix(
    target: Target,
    overlay: FileOverlay,
    fixer: Fixer,
    finding: Finding,
    ctx: FixContext,
    before: Mapping[str, Any] | None = None,
) -> str | None:
    """None when the edited overlay fixes ``finding``; else the one-line reason it does not.

    ``before``: the workload document the edits were written on, either the repository's or
    one this function accepted (so it has no problem the repository's lacks); only what the
    edits changed in it is then validated, with the same verdict as validating everything."""
    view = target.reread(overlay)
    if isinstance(view, str):
        return f"the edited file does not verify: {view}"
    document = workload_document(view)
    if document is not None:
        new = _new_problems(target, overlay, document, before, view)
        if new:
            return f"the edited {finding.resource} is not a valid Kubernetes object: {new[0]}"
    if document is not None and before is not None and target.location.kind != "manifest":
        worse = [c for c in newly_failing(before, document) if c != finding.control_id]
        if worse:
            return (
                f"the edit would make {', '.join(worse)} fail on the deployed "
                f"{finding.resource}, which passed before: what it renders loses settings it "
                "had (a template that renders its own defaults only while the values key is "
                "empty, say)"
            )
    again = run_fixer(fixer, view, finding, ctx)
    if not isinstance(again, AlreadyCompliant):
        detail = getattr(again, "reason", "") or "it proposes more edits"
        return f"{finding.control_id} still fails after the edit ({detail})"
    return None


def workload_document(view: object) -> Mapping[str, Any] | None:
    """The whole Kubernetes object behind a view: the manifest document, or a Helm target's
    rendered resource; None when the view does not expose one."""
    rendered = getattr(view, "rendered", None)
    document = getattr(rendered if rendered is not None else view, "document", None)
    return document if isinstance(document, Mapping) else None


def _new_problems(
    target: Target,
    overlay: FileOverlay,
    document: Mapping[str, Any],
    before: Mapping[str, Any] | None,
    view: object = None,
) -> list[str]:
    """The problems of the edited ``document`` that the unedited repository's object lacks,
    in `object_problems` order; ``view``: the one ``document`` was read into, if any.

    With ``before`` (see `verify_fix`) and no new schema error in what the edits changed
    (`changes_validate`), no schema error can be new: only the other problems are looked at,
    and the repository's object only when ``document`` has one that ``before`` lacks."""
    if before is not None and _once("changes", before, document):
        problems = _once("other", document, view=view)
        if not problems or set(problems) <= set(_once("other", before)):
            return []
    else:
        problems = _once("all", document)
        if not problems:
            return []
    original = _original_problems(target, overlay)
    return [p for p in problems if p not in original]


def _original_problems(target: Target, overlay: FileOverlay) -> list[str]:
    """The same check on the unedited repository, to forgive errors the file already had."""
    before = target.reread(FileOverlay(overlay.root))
    document = None if isinstance(before, str) else workload_document(before)
    if document is None:
        return []
    return list(_once("all", document))


_QUANTITY_MAPS = ("limits", "requests")


def quantity_problems(document: Mapping[str, Any]) -> list[str]:
    """Every resource request or limit of the object that the API server would refuse as a
    quantity, one line each (the schema types them only as string-or-number)."""
    out = []
    # Only mappings and lists are walked (and named): most values of an object are scalars.
    stack: list[tuple[Any, str]] = [(document, "")]
    while stack:
        node, where = stack.pop()
        if type(node) is dict or isinstance(node, Mapping):  # the ABC check is slow
            for key, value in node.items():
                if type(value) in SCALAR_TYPES:
                    continue
                path = f"{where}.{key}" if where else str(key)
                if key == "resources" and isinstance(value, Mapping):
                    for kind in _QUANTITY_MAPS:
                        amounts = value.get(kind)
                        if not isinstance(amounts, Mapping):
                            continue
                        for name, amount in amounts.items():
                            problem = _quantity.problem(amount)
                            if problem:
                                out.append(f"{path}.{kind}.{name}: {problem}")
                stack.append((value, path))
        elif isinstance(node, list):
            stack.extend(
                (item, f"{where}[{i}]")
                for i, item in enumerate(node)
                if type(item) not in SCALAR_TYPES
            )
    return sorted(out)


def kubernetes_version() -> str:
    """The configured target Kubernetes version (``major.minor``)."""
    return _version_of(os.environ.get(VERSION_ENV, ""))


@lru_cache(maxsize=8)
def _version_of(setting: str) -> str:
    # Read once per setting: verification asks for every document it checks.
    value = setting.strip().removeprefix("v") or DEFAULT_KUBERNETES_VERSION
    if not re.fullmatch(r"\d+\.\d+(\.\d+)?", value):
        raise ConfigError(f"{VERSION_ENV}={value!r} is not a Kubernetes version like 1.33")
    return ".".join(value.split(".")[:2])


@lru_cache(maxsize=1)
def _schema_root() -> Any | None:
    try:
        return resources.files("kubernetes_validate").joinpath("kubernetes-json-schema")
    except ModuleNotFoundError:
        return None


@lru_cache(maxsize=8)
def _schema_dir(version: str) -> str | None:
    """The shipped strict schema directory for ``version``: the newest not newer than it."""
    root = _schema_root()
    if root is None:
        return None
    wanted = tuple(int(p) for p in version.split("."))
    shipped: list[tuple[tuple[int, int], str]] = []
    for entry in root.iterdir():
        match = _VERSION_DIR.match(entry.name)
        if match:
            shipped.append(((int(match[1]), int(match[2])), entry.name))
    fitting = sorted(s for s in shipped if s[0] <= wanted)
    if not fitting:
        oldest = min(shipped)[0] if shipped else None
        raise ConfigError(
            f"no Kubernetes schema for {version} (oldest shipped: "
            f"{'.'.join(map(str, oldest)) if oldest else 'none'})"
        )
    return fitting[-1][1]


@lru_cache(maxsize=4)
def _registry(schema_dir: str) -> Any:
    from referencing import Registry, Resource

    root = _schema_root()
    if root is None:  # callers found schema_dir under it first
        raise ConfigError("kubernetes-validate's schemas are not installed")
    definitions = json.loads(root.joinpath(schema_dir, "_definitions.json").read_text())
    return Resource.from_contents(definitions) @ Registry()


@lru_cache(maxsize=256)
def _validator(schema_dir: str, kind: str, api_version: str) -> Any | None:
    """A compiled validator for one kind, or None when no schema ships for it (CRDs)."""
    from jsonschema.validators import Draft202012Validator

    group_version = re.sub(r"^([^./]*)(?:\.[^/]*)?/", r"\1-", api_version)
    name = f"{kind.lower()}-{group_version}.json"
    root = _schema_root()
    if root is None:
        return None
    schema_file = root.joinpath(schema_dir, name)
    if not re.fullmatch(r"[a-z0-9.-]+\.json", name) or not schema_file.is_file():
        return None
    schema = json.loads(schema_file.read_text())
    return Draft202012Validator(schema, registry=_registry(schema_dir))


_checked: dict[tuple[Any, ...], tuple[tuple[Mapping[str, Any], ...], Any]] = {}


def _once(check: str, *documents: Mapping[str, Any], view: object = None) -> Any:
    """A check of `_CHECKS` once per parsed document object (or pair of them): every finding
    of a batch is verified against the same (memoised, never mutated) document, so it is
    validated once, after the batch's last edit, against the schema of its kind. ``view``:
    a manifest's view of the one document, which the "other" check then need not build."""
    key = (check, kubernetes_version(), *map(id, documents))
    hit = _checked.get(key)
    if hit is not None and all(a is b for a, b in zip(hit[0], documents, strict=True)):
        return hit[1]
    if check == "other" and type(view) is ManifestPodView and view.document is documents[0]:
        result = _other_problems(documents[0], view)
    else:
        result = _CHECKS[check](*documents)
    if len(_checked) > 1024:
        _checked.clear()
    _checked[key] = (documents, result)  # holding the documents keeps their ids unique
    return result


def object_problems(document: Mapping[str, Any]) -> tuple[str, ...]:
    """Every quantity, schema and security-context problem of one object, one line each."""
    view = ManifestPodView.from_document(document)
    return (
        *quantity_problems(document),
        *schema_problems(document),
        *security_context_problems(view),
        *request_above_limit_problems(view),
    )


def _other_problems(
    document: Mapping[str, Any], view: ManifestPodView | None = None
) -> tuple[str, ...]:
    """`object_problems` but the schema's, in the same order; ``view``: the document's own
    (`ManifestPodView.from_document` of it), when the caller has it."""
    if view is None:
        view = ManifestPodView.from_document(document)
    return (
        *quantity_problems(document),
        *security_context_problems(view),
        *request_above_limit_problems(view),
    )


def request_above_limit_problems(view: ManifestPodView | None) -> list[str]:
    """Requests above their limit, which the API server refuses ("must be less than or equal
    to ... limit") in the containers of a workload's ``view`` (none without one); quantities
    it cannot read are `quantity_problems`' to report."""
    out = []
    for container in _containers(view):
        requests = container.get("resources", "requests")
        limits = container.get("resources", "limits")
        if not isinstance(requests, Mapping) or not isinstance(limits, Mapping):
            continue
        for name in sorted(set(requests) & set(limits), key=str):
            if _quantity.problem(requests[name]) or _quantity.problem(limits[name]):
                continue
            if _quantity.to_base(requests[name]) > _quantity.to_base(limits[name]):
                out.append(
                    f"container {container.name}: request {name} {requests[name]} is above "
                    f"its limit {limits[name]} (the API server refuses it)"
                )
    return out


def security_context_problems(view: ManifestPodView | None) -> list[str]:
    """Security-context combinations the schema allows but Kubernetes refuses: the API
    server's validation (allowPrivilegeEscalation false with privileged or CAP_SYS_ADMIN) and
    the kubelet's (runAsNonRoot with user 0: the container never starts), in the containers of
    a workload's ``view`` (none without one)."""
    pod = view.get("securityContext", default={}) if view is not None else {}
    pod = pod if isinstance(pod, Mapping) else {}
    out = []
    for container in _containers(view):
        where = f"container {container.name}"
        added = container.get("securityContext", "capabilities", "add")
        added = {normalise(c) for c in added} if isinstance(added, list) else set()
        if container.get("securityContext", "allowPrivilegeEscalation") is False:
            if container.get("securityContext", "privileged") is True:
                out.append(
                    f"{where}: allowPrivilegeEscalation false with privileged true "
                    "(the API server refuses it)"
                )
            if "SYS_ADMIN" in added:
                out.append(
                    f"{where}: allowPrivilegeEscalation false with CAP_SYS_ADMIN added "
                    "(the API server refuses it)"
                )
        non_root = container.get("securityContext", "runAsNonRoot", default=pod.get("runAsNonRoot"))
        user = container.get("securityContext", "runAsUser", default=pod.get("runAsUser"))
        if non_root is True and user == 0:
            out.append(
                f"{where}: runAsNonRoot true with runAsUser 0 (the kubelet will not start it)"
            )
    return out


def _containers(view: ManifestPodView | None) -> list[ContainerView]:
    """The regular and init containers of a workload's view (none without a view)."""
    return [c for c in view.containers if not c.ephemeral] if view is not None else []


def schema_problem(document: Mapping[str, Any], version: str | None = None) -> str | None:
    """The most relevant schema error of a Kubernetes object as one line, or None when it
    validates (or no schema is available for its kind or without the schema package)."""
    problems = schema_problems(document, version)
    return problems[0] if problems else None


def schema_problems(document: Mapping[str, Any], version: str | None = None) -> list[str]:
    """Every schema error of a Kubernetes object as one line each, the most relevant first."""
    kind, api_version = document.get("kind"), document.get("apiVersion")
    if not isinstance(kind, str) or not isinstance(api_version, str):
        return []
    schema_dir = _schema_dir(version or kubernetes_version())
    if schema_dir is None:
        return []
    validator = _validator(schema_dir, kind, api_version)
    if validator is None:
        return []
    from jsonschema.exceptions import relevance

    errors = sorted(validator.iter_errors(document), key=relevance, reverse=True)
    release = ".".join(schema_dir[1:].split(".")[:2])
    out = []
    for error in errors:
        where = ".".join(str(p) for p in error.absolute_path) or "(top level)"
        message = error.message if len(error.message) <= 160 else error.message[:157] + "..."
        out.append(f"{where}: {message} (Kubernetes {release} schema)")
    return out


# Keywords that may sit on the way from an object's root to a changed value without making
# errors elsewhere depend on that value: they check only the type or the keys of their own
# instance, or hand each child to one subschema of its own.
_CONJUNCTIVE = frozenset(
    {"$ref", "$id", "$schema", "description", "type", "required", "properties"}
    | {"additionalProperties", "items"}
)
_ANNOTATIONS = frozenset({"$ref", "$id", "$schema", "description"})
_JSON_TYPES: dict[type, str] = {dict: "object", list: "array"}
_VALID_KEPT = 4096
_VALID_KEPT_CHARS = 2048
"""Verdicts of single places each `_SchemaPlaces` remembers, for values whose repr is at most
this long (at most about 8 MB per kind)."""
_PLAIN_NAME = re.compile(r"[A-Za-z0-9_.$-]+")  # needs no escaping in a URI's JSON pointer


def changes_validate(
    before: Mapping[str, Any], after: Mapping[str, Any], version: str | None = None
) -> bool:
    """Whether ``after`` has no schema error that ``before`` lacks, found by validating only
    what differs, each changed value against the subschema at its place.

    Sound for the Kubernetes schemas, and any schema whose way down to a changed value holds
    only `_CONJUNCTIVE` keywords: a value equal to before's (``True`` is not ``1``), at the
    same place, has the same errors with the same messages, and so have its parents when
    their type and keys are before's, or their keys all allowed and the required ones there.
    True only when every changed value validates; False when in doubt (an error in a changed
    value, a changed kind or root), which the caller settles by validating the whole object."""
    ident = (after.get("kind"), after.get("apiVersion"))
    if ident != (before.get("kind"), before.get("apiVersion")):
        return False
    kind, api_version = ident
    if not isinstance(kind, str) or not isinstance(api_version, str):
        return True  # never validated (`schema_problems`)
    schema_dir = _schema_dir(version or kubernetes_version())
    if schema_dir is None:
        return True
    places = _schema_places(schema_dir, kind, api_version)
    return places is None or places.vouch(places.root, before, after)


@lru_cache(maxsize=256)
def _schema_places(schema_dir: str, kind: str, api_version: str) -> _SchemaPlaces | None:
    validator = _validator(schema_dir, kind, api_version)
    return None if validator is None else _SchemaPlaces(schema_dir, validator.schema)


class _SchemaPlaces:
    """One kind's schema read place by place: the subschema at a URI (``base#pointer``), the
    places of its properties and items, and validators for single places."""

    def __init__(self, schema_dir: str, root: Mapping[str, Any]) -> None:
        self.schema_dir = schema_dir
        self.schema = root
        self.root = f"{root.get('$id', '')}#"
        self._resolved: dict[str, tuple[str, Mapping[str, Any] | None]] = {}
        self._valid: dict[tuple[str, str], bool] = {}

    def vouch(self, uri: str, old: Any, new: Any) -> bool:
        """Whether ``new`` has no error ``old`` lacks at the place ``uri`` (same place in the
        object before and after the edit)."""
        uri, schema = self.resolve(uri)
        kind = _JSON_TYPES.get(type(new))
        if schema is None or kind is None or type(old) is not type(new):
            return self.valid(uri, new)
        types = schema.get("type", kind)
        if kind not in (types if isinstance(types, list) else [types]):
            return self.valid(uri, new)
        if kind == "array":
            if "items" not in schema:
                return True  # nothing checks the items
            if not isinstance(schema["items"], Mapping):
                return self.valid(uri, new)
            items = f"{uri}/items"
            for n, value in enumerate(new):
                if n < len(old) and same_data(old[n], value):
                    continue
                if not (
                    self.vouch(items, old[n], value) if n < len(old) else self.valid(items, value)
                ):
                    return False
            return True
        properties = schema.get("properties", {})
        extra = schema.get("additionalProperties")
        if list(old) != list(new):
            if not all(type(k) is str and _PLAIN_NAME.fullmatch(k) for k in new):
                return self.valid(uri, new)
            if any(k not in new for k in schema.get("required", ())) or (
                extra is False and any(k not in properties for k in new)
            ):
                return self.valid(uri, new)
        for key, value in new.items():
            if key in old and same_data(old[key], value):
                continue
            if not isinstance(key, str) or not _PLAIN_NAME.fullmatch(key):
                return self.valid(uri, new)
            if key in properties:
                child = f"{uri}/properties/{key}"
            elif isinstance(extra, Mapping):
                child = f"{uri}/additionalProperties"
            else:
                continue  # no subschema: the keys alone decide (unchanged, or checked above)
            if not (self.vouch(child, old[key], value) if key in old else self.valid(child, value)):
                return False
        return True

    def resolve(self, uri: str) -> tuple[str, Mapping[str, Any] | None]:
        """The place ``uri``'s $refs lead to and its subschema, None when that holds or passes
        another keyword than `_CONJUNCTIVE` ones (its value is then validated whole)."""
        if uri not in self._resolved:
            self._resolved[uri] = self._resolve(uri)
        return self._resolved[uri]

    def _resolve(self, uri: str) -> tuple[str, Mapping[str, Any] | None]:
        for _hop in range(16):  # a $ref to a $ref ...: bounded
            schema = self._at(uri)
            if not isinstance(schema, Mapping) or not all(
                k in _CONJUNCTIVE or k.startswith("x-kubernetes-") for k in schema
            ):
                return uri, None
            if "$ref" not in schema:
                return uri, schema
            ref = schema["$ref"]
            if not isinstance(ref, str) or not all(
                k in _ANNOTATIONS or k.startswith("x-kubernetes-") for k in schema
            ):
                return uri, None  # keywords beside a $ref apply too: validated whole
            base, pointer = urldefrag(urljoin(uri, ref))
            if pointer and not pointer.startswith("/"):
                return uri, None
            uri = f"{base}#{pointer}"
        return uri, None

    def _at(self, uri: str) -> Any:
        """The subschema at ``uri``, None when it is not there."""
        base, pointer = urldefrag(uri)
        if base == self.schema.get("$id"):
            node: Any = self.schema
        else:
            try:
                node = _registry(self.schema_dir).contents(base)
            except LookupError:
                return None
        for part in unquote(pointer).split("/")[1:]:  # as `referencing` reads a pointer
            part = part.replace("~1", "/").replace("~0", "~")
            if isinstance(node, Mapping) and part in node:
                node = node[part]
            elif isinstance(node, list) and part.isdigit() and int(part) < len(node):
                node = node[int(part)]
            else:
                return None
        return node

    def valid(self, uri: str, value: Any) -> bool:
        """Whether ``value`` has no error against the subschema at ``uri`` (False for a place
        in the kind's own schema, which the registry does not hold: in doubt)."""
        if _without_fragment(uri) == self.schema.get("$id"):
            return False
        # Fixes add the same values to many objects: each is validated once per place. The
        # repr of parsed YAML data tells its values and their types apart (True from 1).
        text = repr(value)
        if len(text) > _VALID_KEPT_CHARS:  # a big value is rarely added twice: not kept
            return self._validates(uri, value)
        key = (uri, text)
        verdict = self._valid.get(key)
        if verdict is None:
            verdict = self._validates(uri, value)
            if len(self._valid) >= _VALID_KEPT:
                self._valid.clear()
            self._valid[key] = verdict
        return verdict

    def _validates(self, uri: str, value: Any) -> bool:
        return next(_subvalidator(self.schema_dir, uri).iter_errors(value), None) is None


@lru_cache(maxsize=1024)
def _without_fragment(uri: str) -> str:
    return urldefrag(uri)[0]


@lru_cache(maxsize=1024)
def _subvalidator(schema_dir: str, uri: str) -> Any:
    """A validator applying the subschema at ``uri`` (refs resolve as in the whole schema)."""
    from jsonschema.validators import Draft202012Validator

    return Draft202012Validator({"$ref": uri}, registry=_registry(schema_dir))


def failing_controls(document: Mapping[str, Any]) -> frozenset[str]:
    """Controls the bot's fixers find failing on one workload object (empty for other kinds)."""
    view = ManifestPodView.from_document(document)
    if view is None:
        return frozenset()
    resource = ResourceRef(
        api_version=str(document.get("apiVersion", "")),
        kind=view.kind,
        namespace=view.namespace or None,
        name=view.name,
    )
    ctx = FixContext()
    failing = set()
    for fixer in all_fixers():
        for control in fixer.controls:
            finding = Finding(control_id=control, resource=resource)
            if not isinstance(run_fixer(fixer, view, finding, ctx), AlreadyCompliant):
                failing.add(control)
    return frozenset(failing)


def newly_failing(before: Mapping[str, Any], after: Mapping[str, Any]) -> tuple[str, ...]:
    """The controls `failing_controls` finds on ``after`` and not on ``before``, sorted. A
    plain manifest's edits set only what they name; a chart or an overlay renders them, and
    may render less than before (defaults a template writes only while the key a fix fills
    is empty, a list a patch replaces): such a fix is no fix. Each document is checked once
    (the one a batch's edits were written on is compared with every change set's)."""
    return tuple(sorted(_once("failing", after) - _once("failing", before)))


_CHECKS: dict[str, Callable[..., Any]] = {
    "failing": failing_controls,
    "all": object_problems,
    "other": _other_problems,
    "changes": changes_validate,
}
