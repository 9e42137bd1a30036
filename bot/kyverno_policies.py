"""Opt-in Kyverno ClusterPolicies that keep a fixed setting fixed.

With ``kyverno_policies: true`` in ``.remedy.yaml``, a change set that fixes a control also adds
the Audit-mode ClusterPolicies guarding that control (``bot/data/kyverno_policies.yaml``) as
``<policies_dir>/<policy name>.yaml``, unless that file already exists in cd-config. Several
change sets may add the same policy file with identical content; whichever merges first adds
it, and git merges the others' identical addition cleanly.

The repository's ignores (and the waivers, which are ignores once merged) hold for the guards
too: a policy guarding an ignored control comes with a Kyverno PolicyException
(``<policies_dir>/<policy name>-exception.yaml``, namespace `EXCEPTION_NAMESPACE`) exempting the
ignored resources and the Pods they run from the policy's rules and their auto-generated
variants. An exception, not an ``exclude`` block: Kyverno generates no rules for pod
controllers from a rule whose match or exclude names resources, so an exclude by name would
stop the policy from auditing Deployments at all. The bot owns that file and rewrites it when
the ignores change.
"""

from __future__ import annotations

import fnmatch
from collections.abc import Iterable, Mapping
from functools import cache
from importlib import resources
from pathlib import PurePosixPath
from typing import Any

import yaml

from bot.errors import ConfigError
from bot.locate.base import FileOverlay
from bot.model import FileChange, PlannedFix
from bot.repo_config import RepoConfig
from fixers.edits import render_manifest

# Shipped data, trusted: the C parser when PyYAML has it (start-up time of every command).
_DATA_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)

CONTROLS_ANNOTATION = "kube-remedy.io/controls"
IGNORES_ANNOTATION = "kube-remedy.io/ignored"
EXCEPTION_API_VERSION = "kyverno.io/v2"
EXCEPTION_NAMESPACE = "kyverno"
"""Where the PolicyExceptions go: Kyverno's own namespace, where ``--exceptionNamespace``
usually points."""
POD_CONTROLLERS = frozenset(
    {
        "Deployment",
        "StatefulSet",
        "DaemonSet",
        "Job",
        "CronJob",
        "ReplicaSet",
        "ReplicationController",
    }
)
_POLICY_COMMENT = (
    "Added by kube-remedy (kyverno_policies in .remedy.yaml): audits regressions of the "
    "setting this merge request fixes."
)
_EXCEPTION_COMMENT = (
    "Written by kube-remedy from the ignore list of .remedy.yaml (kyverno_policies): the "
    "ignored resources are not audited by {policy}. Edit .remedy.yaml, not this file."
)


@cache
def policies() -> tuple[Mapping[str, Any], ...]:
    """Every shipped ClusterPolicy document."""
    text = resources.files("bot").joinpath("data", "kyverno_policies.yaml").read_text()
    return tuple(doc for doc in yaml.load_all(text, Loader=_DATA_LOADER) if doc)


@cache
def policies_by_control() -> dict[str, tuple[str, ...]]:
    """Control id -> names of the policies that guard it."""
    out: dict[str, list[str]] = {}
    for policy in policies():
        meta = policy["metadata"]
        for control in str(meta["annotations"][CONTROLS_ANNOTATION]).split(","):
            out.setdefault(control.strip(), []).append(meta["name"])
    return {control: tuple(names) for control, names in out.items()}


def guarded_controls(name: str) -> tuple[str, ...]:
    """The controls policy ``name`` guards."""
    raw = str(policy(name)["metadata"]["annotations"][CONTROLS_ANNOTATION])
    return tuple(c.strip() for c in raw.split(","))


def policy(name: str) -> Mapping[str, Any]:
    for doc in policies():
        if doc["metadata"]["name"] == name:
            return doc
    raise KeyError(name)


def policy_names(fixes: Iterable[PlannedFix]) -> list[str]:
    """The policies guarding the controls ``fixes`` fix, sorted by name."""
    by_control = policies_by_control()
    return sorted({n for fix in fixes for n in by_control.get(fix.finding.control_id, ())})


def _policy_path(config: RepoConfig, name: str) -> str:
    folder = PurePosixPath(config.policies_dir.strip("/") or ".")
    if folder.is_absolute() or ".." in folder.parts:
        raise ConfigError(
            f".remedy.yaml: policies_dir {config.policies_dir!r} must stay inside cd-config"
        )
    return (folder / f"{name}.yaml").as_posix()


def policy_files(
    config: RepoConfig, fixes: Iterable[PlannedFix], overlay: FileOverlay
) -> tuple[FileChange, ...]:
    """The policy files a change set adds: none unless the repository opted in; each policy
    absent from the repository (and from the change set's own files), and the PolicyException
    of each such policy whose controls ``.remedy.yaml`` ignores somewhere (added, or rewritten
    when the ignores changed)."""
    if not config.kyverno_policies:
        return ()
    out = []
    for name in policy_names(fixes):
        path = _policy_path(config, name)
        if overlay.read(path) is None:
            out.append(FileChange(path, None, render_manifest(dict(policy(name)), _POLICY_COMMENT)))
        exception = policy_exception(config, name)
        if exception is None:
            continue
        path = _policy_path(config, f"{name}-exception")
        text = render_manifest(exception, _EXCEPTION_COMMENT.format(policy=name))
        before = overlay.read(path)
        if before != text:
            out.append(FileChange(path, before, text))
    return tuple(out)


def policy_exception(config: RepoConfig, name: str) -> dict[str, Any] | None:
    """The PolicyException exempting what ``.remedy.yaml`` ignores from policy ``name`` (and
    from the rules Kyverno generates for pod controllers), or None when no ignore concerns the
    controls it guards."""
    controls = guarded_controls(name)
    rules = [r for r in config.ignore if any(fnmatch.fnmatchcase(c, r.control) for c in controls)]
    if not rules:
        return None
    filters: list[dict[str, Any]] = []
    for rule in rules:
        for found in _filters(rule.resource, config.default_namespace):
            if found not in filters:
                filters.append(found)
    rule_names = [
        variant
        for rule in policy(name)["spec"]["rules"]
        for variant in (rule["name"], f"autogen-{rule['name']}", f"autogen-cronjob-{rule['name']}")
    ]
    reasons = "\n".join(f"{r.control} {r.resource}: {r.reason}" for r in rules)
    return {
        "apiVersion": EXCEPTION_API_VERSION,
        "kind": "PolicyException",
        "metadata": {
            "name": f"{name}-remedy-ignores",
            "namespace": EXCEPTION_NAMESPACE,
            "annotations": {IGNORES_ANNOTATION: reasons},
        },
        "spec": {
            "exceptions": [{"policyName": name, "ruleNames": rule_names}],
            "match": {"any": filters},
        },
    }


def _filters(pattern: str, default_namespace: str) -> list[dict[str, Any]]:
    """Kyverno resource filters for an ignore's ``Kind/namespace/name`` glob: the resource
    itself and, for a pod controller, the Pods (and Jobs, ReplicaSets) it names ``<name>-*``.

    A glob of another shape is read as ``Kind/.../name``: its middle is any namespace."""
    parts = pattern.split("/")
    if len(parts) == 3:
        kind, namespace, name = parts
    elif len(parts) == 1:
        kind, namespace, name = "*", "*", parts[0]
    else:
        kind, namespace, name = parts[0], "*", parts[-1]
    namespace = namespace or default_namespace  # a manifest without one lands there

    def resources(kinds: list[str], names: str) -> dict[str, Any]:
        found: dict[str, Any] = {"kinds": kinds}
        if namespace != "*":
            found["namespaces"] = [namespace]
        if names not in ("*", "*-*"):
            found["names"] = [names]
        return {"resources": found}

    out = [resources([kind or "*"], name)]
    controls_pods = kind in POD_CONTROLLERS or any(
        fnmatch.fnmatchcase(k, kind) for k in POD_CONTROLLERS
    )
    if controls_pods:
        out.append(resources(["Pod", "Job", "ReplicaSet"], f"{name}-*"))
    return out
