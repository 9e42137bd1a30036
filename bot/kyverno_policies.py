"""Opt-in Kyverno ClusterPolicies that keep a fixed setting fixed.

With ``kyverno_policies: true`` in ``.remedy.yaml``, a change set that fixes a control also adds
the Audit-mode ClusterPolicy guarding that control (``bot/data/kyverno_policies.yaml``) as
``<policies_dir>/<policy name>.yaml``, unless that file already exists in cd-config. Several
change sets may add the same policy file with identical content; whichever merges first adds
it, and git merges the others' identical addition cleanly.
"""

from __future__ import annotations

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

CONTROLS_ANNOTATION = "kube-remedy.io/controls"


@cache
def policies() -> tuple[Mapping[str, Any], ...]:
    """Every shipped ClusterPolicy document."""
    text = resources.files("bot").joinpath("data", "kyverno_policies.yaml").read_text()
    return tuple(doc for doc in yaml.safe_load_all(text) if doc)


@cache
def policies_by_control() -> dict[str, tuple[str, ...]]:
    """Control id -> names of the policies that guard it."""
    out: dict[str, list[str]] = {}
    for policy in policies():
        meta = policy["metadata"]
        for control in str(meta["annotations"][CONTROLS_ANNOTATION]).split(","):
            out.setdefault(control.strip(), []).append(meta["name"])
    return {control: tuple(names) for control, names in out.items()}


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
    """The new policy files a change set adds: none unless the repository opted in, and only
    those absent from the repository (and from the change set's own files)."""
    if not config.kyverno_policies:
        return ()
    out = []
    for name in policy_names(fixes):
        path = _policy_path(config, name)
        if overlay.read(path) is not None:
            continue
        comment = (
            "Added by kube-remedy (kyverno_policies in .remedy.yaml): audits regressions of the "
            "setting this merge request fixes."
        )
        out.append(FileChange(path, None, render_manifest(dict(policy(name)), comment)))
    return tuple(out)
