"""Waivers as code: one change set per repository that records the findings declined by
workload intent, for security reviewers to approve like any other change.

It always adds an ``ignore:`` entry (control, resource, reason) to ``.remedy.yaml``, written
with ruamel.yaml's round trip so the file's comments and key order stay (the bot owns the
whole small file). Where the repository already keeps them, it also adds Kubescape exceptions
(to the JSON file that holds them) and a Kyverno PolicyException (next to the existing ones).
"""

from __future__ import annotations

import io
import json
import os
import re
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from bot import controls as catalog
from bot.locate.base import FileOverlay
from bot.model import ChangeSet, FileChange, Unfixable
from bot.repo_config import CONFIG_FILE
from fixers.intent import Evidence
from fixers.model import Finding, Risk

if TYPE_CHECKING:
    from ruamel.yaml import YAML

WAIVER_KEY = "waivers/remedy-yaml"
KYVERNO_FILE = "kube-remedy-waivers.yaml"
_SKIP_DIRS = {".git", "node_modules", ".venv", "vendor"}
_MAX_FILES = 5000


@dataclass(frozen=True)
class Waiver:
    """A finding declined by intent, with the reason and the evidence behind it."""

    finding: Finding
    reason: str
    evidence: tuple[Evidence, ...] = ()

    @property
    def resource(self) -> str:
        """The ``.remedy.yaml`` resource pattern: Kind/namespace/name (glob characters escaped)."""
        return re.sub(r"([*?\[])", r"[\1]", self.finding.resource.key)


def _one_line(text: str, limit: int = 400) -> str:
    text = " ".join(str(text).split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _entries(waivers: Sequence[Waiver]) -> list[Waiver]:
    """One waiver per control and resource (containers of one pod share an ignore rule)."""
    seen: dict[tuple[str, str], Waiver] = {}
    for w in waivers:
        seen.setdefault((w.finding.control_id, w.finding.resource.key), w)
    return sorted(seen.values(), key=lambda w: (w.finding.resource.key, w.finding.control_id))


def _yaml() -> YAML:
    # ruamel.yaml is imported when a waiver is written: a plan without waivers never needs it.
    from ruamel.yaml import YAML

    yaml = YAML()
    yaml.preserve_quotes = True
    yaml.width = 4096
    return yaml


def _sequence_indent(text: str) -> tuple[int, int]:
    """(sequence indent, dash offset) as the file writes its block sequences."""
    match = re.search(r"^( *)\S[^\n]*:\s*\n( *)- ", text, re.M)
    if match is None:
        return 4, 2
    offset = max(len(match.group(2)) - len(match.group(1)), 0)
    return offset + 2, offset


def remedy_yaml(before: str | None, waivers: Sequence[Waiver]) -> str | None:
    """``.remedy.yaml`` with an ignore entry per waiver (None when all are already there).
    Raises `YAMLError` / `ValueError` on a file it cannot round-trip."""
    from ruamel.yaml.comments import CommentedMap, CommentedSeq

    yaml = _yaml()
    text = before or ""
    data = yaml.load(text) if text.strip() else None
    if data is None:
        data = CommentedMap()
    if not isinstance(data, CommentedMap):
        raise ValueError(f"{CONFIG_FILE} is not a mapping")
    ignore = data.get("ignore")
    if ignore is None:
        ignore = CommentedSeq()
        data["ignore"] = ignore
    if not isinstance(ignore, list):
        raise ValueError(f"{CONFIG_FILE}: ignore is not a list")
    present = {
        (str(i.get("control", "*")), str(i.get("resource", "*")))
        for i in ignore
        if isinstance(i, Mapping)
    }
    added = 0
    for w in _entries(waivers):
        if (w.finding.control_id, w.resource) in present:
            continue
        entry = CommentedMap()
        entry["control"] = w.finding.control_id
        entry["resource"] = w.resource
        entry["reason"] = _one_line(f"kube-remedy waiver: {w.reason}")
        ignore.append(entry)
        added += 1
    if not added:
        return None
    seq, offset = _sequence_indent(text)
    yaml.indent(mapping=2, sequence=seq, offset=offset)
    out = io.StringIO()
    if not text.strip():
        out.write("# kube-remedy settings for this repository (see the kube-remedy README).\n")
    yaml.dump(data, out)
    return out.getvalue()


def _repo_files(root: Path, suffixes: tuple[str, ...]) -> Iterator[str]:
    count = 0
    for base, dirs, names in os.walk(root):
        dirs[:] = sorted(d for d in dirs if d not in _SKIP_DIRS and not d.startswith("."))
        for name in sorted(names):
            if name.endswith(suffixes):
                count += 1
                if count > _MAX_FILES:
                    return
                path = Path(base) / name
                if not path.is_symlink():
                    yield path.relative_to(root).as_posix()


def _kubescape_exception(w: Waiver) -> dict[str, Any]:
    res = w.finding.resource
    attributes = {"kind": res.kind, "name": res.name}
    if res.namespace:
        attributes["namespace"] = res.namespace
    slug = re.sub(r"[^a-z0-9]+", "-", f"{w.finding.control_id}-{res.key}".lower()).strip("-")
    return {
        "name": f"kube-remedy-waiver-{slug}",
        "policyType": "postureExceptionPolicy",
        "actions": ["alertOnly"],
        "resources": [{"designatorType": "Attributes", "attributes": attributes}],
        "posturePolicies": [{"controlID": w.finding.control_id}],
    }


def kubescape_exceptions(
    overlay: FileOverlay, root: Path, waivers: Sequence[Waiver]
) -> list[FileChange]:
    """New exceptions appended to the repository's Kubescape exceptions file, if it has one."""
    for relpath in _repo_files(root, (".json",)):
        text = overlay.read(relpath) or ""
        if "postureExceptionPolicy" not in text:
            continue
        try:
            data = json.loads(text)
        except ValueError:
            continue
        if not isinstance(data, list):
            continue
        names = {e.get("name") for e in data if isinstance(e, Mapping)}
        new = [e for e in map(_kubescape_exception, _entries(waivers)) if e["name"] not in names]
        if not new:
            return []
        after = json.dumps([*data, *new], indent=2, ensure_ascii=False) + "\n"
        return [FileChange(relpath, text, after)]
    return []


def _kyverno_policy_exception(waivers: Sequence[Waiver], namespace: str) -> dict[str, Any] | None:
    from bot.kyverno_policies import policies_by_control, policy

    exceptions: list[dict[str, Any]] = []
    resources: list[dict[str, Any]] = []
    for w in _entries(waivers):
        for name in policies_by_control().get(w.finding.control_id, ()):
            rules = [r["name"] for r in policy(name)["spec"]["rules"]]
            # Kyverno autogen rules for Pod controllers carry the autogen- prefix.
            rules += [f"autogen-{r}" for r in rules] + [f"autogen-cronjob-{r}" for r in rules]
            item = {"policyName": name, "ruleNames": rules}
            if item not in exceptions:
                exceptions.append(item)
        res = w.finding.resource
        match: dict[str, Any] = {"kinds": [res.kind, "Pod"], "names": [f"{res.name}*"]}
        if res.namespace:
            match["namespaces"] = [res.namespace]
        if {"resources": match} not in resources:
            resources.append({"resources": match})
    if not exceptions:
        return None
    return {
        "apiVersion": "kyverno.io/v2",
        "kind": "PolicyException",
        "metadata": {
            "name": "kube-remedy-waivers",
            "namespace": namespace,
            "annotations": {
                "kube-remedy.io/controls": ", ".join(
                    sorted({w.finding.control_id for w in waivers})
                )
            },
        },
        "spec": {"exceptions": exceptions, "match": {"any": resources}},
    }


def kyverno_exception(
    overlay: FileOverlay, root: Path, waivers: Sequence[Waiver]
) -> list[FileChange]:
    """A PolicyException beside the repository's own PolicyExceptions, if it keeps any."""
    from fixers.edits import EditError, load_documents, render_manifest

    for relpath in _repo_files(root, (".yaml", ".yml")):
        text = overlay.read(relpath) or ""
        if "PolicyException" not in text:
            continue
        try:
            docs = load_documents(text)
        except EditError:
            continue
        found = next(
            (d for d in docs if isinstance(d, Mapping) and d.get("kind") == "PolicyException"),
            None,
        )
        if found is None:
            continue
        namespace = str((found.get("metadata") or {}).get("namespace") or "kyverno")
        doc = _kyverno_policy_exception(waivers, namespace)
        target = f"{relpath.rsplit('/', 1)[0]}/{KYVERNO_FILE}" if "/" in relpath else KYVERNO_FILE
        if doc is None or overlay.read(target) is not None:
            return []
        return [
            FileChange(
                target,
                None,
                render_manifest(doc, "kube-remedy waivers: see .remedy.yaml for the reasons"),
            )
        ]
    return []


def waiver_change_set(root: Path, waivers: Sequence[Waiver]) -> ChangeSet | str | None:
    """The repository's waiver change set, None when there is nothing to record, or a one-line
    reason why it cannot be written (an unreadable ``.remedy.yaml``)."""
    if not waivers:
        return None
    from ruamel.yaml.error import YAMLError

    overlay = FileOverlay(root)
    before = overlay.read(CONFIG_FILE)
    try:
        after = remedy_yaml(before, waivers)
    except (YAMLError, ValueError) as exc:
        first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        return f"waivers not proposed: {CONFIG_FILE} cannot be rewritten ({first})"
    if after is None:
        return None
    files = [FileChange(CONFIG_FILE, before, after)]
    files += kubescape_exceptions(overlay, root, waivers)
    files += kyverno_exception(overlay, root, waivers)
    controls = sorted({w.finding.control_id for w in waivers})
    resources = sorted({str(w.finding.resource) for w in waivers})
    subject = resources[0] if len(resources) == 1 else f"{len(resources)} workloads"
    return ChangeSet(
        key=WAIVER_KEY,
        title=f"kube-remedy: waive {', '.join(controls)} for {subject} (their purpose needs it)",
        family="waiver",
        risk=Risk.LOW,
        fixes=(),
        files=tuple(sorted(files, key=lambda f: f.path)),
        unresolved=tuple(Unfixable(w.finding, w.reason, "needs-human") for w in waivers),
        meta={"kind": "waiver", "evidence": json.dumps(_evidence(waivers))},
    )


def _evidence(waivers: Sequence[Waiver]) -> list[dict[str, str]]:
    """The evidence behind the waivers, once each, as plain data (kept in the change set)."""
    out: list[dict[str, str]] = []
    for w in waivers:
        for e in w.evidence:
            item = {"source": e.source, "detail": e.detail, "reference": e.reference}
            if item not in out:
                out.append(item)
    return out


def describe_waiver(change_set: ChangeSet, *, marker: str) -> str:
    """The waiver merge request's description (``bot/templates/waiver.md.j2``, built-in only:
    every value escaped by the Markdown environment)."""
    from bot.markdown import Md
    from bot.render import environment, unified_diff

    rows = []
    for u in change_set.unresolved:
        control = catalog.get(u.finding.control_id)
        rows.append(
            {
                "control_id": u.finding.control_id,
                "control_name": control.name if control else "",
                "resource": str(u.finding.resource),
                "container": u.finding.container,
                "reason": u.reason,
            }
        )
    evidence = json.loads(change_set.meta.get("evidence", "[]"))
    what = {
        CONFIG_FILE: "an ignore entry with the reason per waived control and resource",
    }
    files = [
        {
            "path": c.path,
            "new": c.is_new,
            "what": what.get(
                c.path,
                "Kubescape exceptions" if c.path.endswith(".json") else "a Kyverno PolicyException",
            ),
        }
        for c in change_set.files
    ]
    diffs = [{"path": c.path, "new": c.is_new, "diff": unified_diff(c)} for c in change_set.files]
    template = environment().get_template("waiver.md.j2")
    return template.render(
        waivers=rows, evidence=evidence, files=files, diffs=diffs, marker=Md(marker)
    )
