"""``.remedy.yaml``: per-repository settings read from cd-config's default branch.

Like renovate.json: which controls are enabled, how fixes are grouped, limits, labels, the
ignore list with reasons, resource policy defaults and team routing. An invalid file is a
`ConfigError` (shown on the dashboard; nothing is changed).

The models build their validators when a file is first validated, and a repository without one
gets the declared defaults unvalidated (`defaults`): a plan of such a repository builds no
validator (``remedy plan`` start-up, tests/test_cli_startup.py).
"""

from __future__ import annotations

import fnmatch
import re
from collections.abc import Mapping
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from bot.errors import ConfigError
from bot.safe_load import load_yaml
from fixers.model import CONTROL_ID, Finding
from fixers.policy import Policy, ResourceDefaults
from fixers.rules import _quantity

CONFIG_FILE = ".remedy.yaml"
MAX_CONFIG_BYTES = 256 * 1024
MAX_ID = 2**31 - 1
"""Largest user/group id the Kubernetes API accepts."""
_DNS_LABEL = re.compile(r"[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?")

Grouping = Literal["file-family", "file", "family", "resource"]


class IgnoreRule(BaseModel):
    """Do not fix ``control`` on resources matching ``resource`` (a glob on Kind/ns/name)."""

    model_config = ConfigDict(frozen=True, extra="forbid", defer_build=True)

    control: str = "*"
    resource: str = "*"
    reason: str

    def matches(self, finding: Finding) -> bool:
        return fnmatch.fnmatchcase(finding.control_id, self.control) and fnmatch.fnmatchcase(
            finding.resource.key, self.resource
        )


class Limits(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid", defer_build=True)

    max_open: int = Field(default=10, ge=0)
    max_new_per_hour: int = Field(default=5, ge=0)
    schedule: list[str] = Field(default_factory=list)
    """Allowed windows like 'Mon-Fri 08:00-18:00' (UTC); empty = any time."""


class CheckedResources(ResourceDefaults):
    """`ResourceDefaults` whose values are Kubernetes quantities the API server accepts: they
    are written into manifests as they are."""

    limit_to_request_ratio: float = Field(default=2.0, gt=0, le=100)

    @field_validator("cpu_request", "memory_request", "cpu_limit", "memory_limit", mode="before")
    @classmethod
    def _quantity(cls, value: object) -> object:
        problem = _quantity.problem(value, positive=True)
        if problem:
            raise ValueError(problem)
        return str(value)


class CheckedPolicy(Policy):
    """`Policy` with every value checked against what Kubernetes accepts."""

    resources: CheckedResources = Field(default_factory=CheckedResources.model_construct)
    namespace_resources: Mapping[str, CheckedResources] = Field(default_factory=dict)
    run_as_user: int = Field(default=10001, gt=0, le=MAX_ID)
    run_as_group: int = Field(default=10001, gt=0, le=MAX_ID)

    @field_validator("tmp_volume_name")
    @classmethod
    def _volume_name(cls, value: str) -> str:
        if not _DNS_LABEL.fullmatch(value):
            raise ValueError(f"{value!r} is not a volume name (lower-case DNS label)")
        return value

    @field_validator("tmp_mount_path")
    @classmethod
    def _mount_path(cls, value: str) -> str:
        parts = value.split("/")
        if not value.startswith("/") or ".." in parts or ":" in value or not value.isprintable():
            raise ValueError(f"{value!r} is not an absolute mount path without '..' or ':'")
        return value


class RepoConfig(BaseModel):
    """The validated content of ``.remedy.yaml``."""

    model_config = ConfigDict(frozen=True, extra="forbid", defer_build=True)

    enabled: bool = True
    controls: list[str] = Field(default_factory=list)
    """Only these controls (empty = all fixable ones)."""
    disabled_controls: list[str] = Field(default_factory=list)
    grouping: Grouping = "file-family"
    """`file-family` (the default) or `file`: on the shared corpus neither conflicted when its
    MRs were merged one after another (`bench/bench_gitlab.py --siblings`), so the smaller,
    single-purpose MRs win."""
    default_namespace: str = Field(default="default", pattern=r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
    """The namespace of manifests that set none and that no deployment (Argo CD, Flux,
    kustomize) gives one."""
    labels: list[str] = Field(default_factory=lambda: ["security", "kube-remedy"])
    limits: Limits = Field(default_factory=Limits.model_construct)
    ignore: list[IgnoreRule] = Field(default_factory=list)
    policy: CheckedPolicy = Field(default_factory=CheckedPolicy.model_construct)
    teams: dict[str, list[str]] = Field(default_factory=dict)
    """Path glob -> GitLab usernames, used when CODEOWNERS has no owner."""
    network_policies: bool = True
    review_human_mrs: bool = False
    kyverno_policies: bool = False
    """Add an Audit-mode Kyverno ClusterPolicy guarding each fixed control (`bot.kyverno_policies`)."""
    policies_dir: str = "policies"
    """Where in cd-config those policies go."""

    @field_validator("controls", "disabled_controls")
    @classmethod
    def _ids(cls, values: list[str]) -> list[str]:
        bad = [v for v in values if not CONTROL_ID.match(v)]
        if bad:
            raise ValueError(f"not control ids (want C-NNNN): {', '.join(bad)}")
        return values

    def wants(self, control_id: str) -> bool:
        if control_id in self.disabled_controls:
            return False
        return not self.controls or control_id in self.controls

    def ignored(self, finding: Finding) -> IgnoreRule | None:
        return next((rule for rule in self.ignore if rule.matches(finding)), None)


def defaults() -> RepoConfig:
    """The settings of a repository without ``.remedy.yaml``: equal to ``RepoConfig()``, made
    from the declared defaults without validating them."""
    return RepoConfig.model_construct()


def parse_repo_config(text: str | None, origin: str = CONFIG_FILE) -> RepoConfig:
    """Parse ``.remedy.yaml`` text (None or empty = defaults); `ConfigError` when invalid."""
    if not text or not text.strip():
        return defaults()
    data = load_yaml(text, origin, max_bytes=MAX_CONFIG_BYTES, error=ConfigError)
    if data is None:
        return defaults()
    if not isinstance(data, dict):
        raise ConfigError(f"{origin} must be a mapping of settings, not {type(data).__name__}")
    if "policy" in data and isinstance(data["policy"], dict):
        data["policy"] = {"source": origin, **data["policy"]}
    try:
        return RepoConfig.model_validate(data)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"])
        message = first["msg"].removeprefix("Value error, ")
        raise ConfigError(f"{origin}: {where}: {message} ({exc.error_count()} problem(s))") from exc
