"""Kubescape operator results: the ``WorkloadConfigurationScan`` objects (and their
``WorkloadConfigurationScanSummary``) that the in-cluster operator keeps through kubescape/storage's
aggregated API, ``spdx.softwarecomposition.kubescape.io/v1beta1``, one per scanned workload.

Read from a file (``kubectl get workloadconfigurationscans -A -o json``, one object or a ``List``,
JSON or YAML) or from a live cluster (`bot.sources.fetch_from_cluster`, page by page). The shape
is kubescape/storage's ``pkg/apis/softwarecomposition/v1beta1/scan_types.go``:

- the workload is named by the labels ``kubescape.io/workload-{api-group,api-version,kind,name,
  namespace}`` (the kind is sometimes lower-case; cluster-scoped kinds have no namespace label)
  and by the ``kubescape.io/wlid`` annotation (``wlid://cluster-C/namespace-N/kind-name``);
- ``spec.controls`` maps a control id to ``{controlID, name, severity: {severity, scoreFactor},
  status: {status, subStatus, info}, rules: [{name, status: {status, subStatus}, paths:
  [{failedPath, fixPath, fixPathValue, fixCommand}]}]}``; a summary has no name and no rules.

Each object becomes one result of a Kubescape JSON report and goes through the same reader
(`bot.sources.kubescape.build_report`), so findings, hints and control ids are the same as from
``kubescape scan``. The operator keeps no source file paths (the locator finds the workload in
cd-config by kind, namespace and name) and no embedded object (container names are unknown: hints
keep the container index). Framework scores are not stored by the operator either: they are
computed here with Kubescape's compliance formula (`bot.score`) from the per-workload control
statuses, with framework membership from the control catalog.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Iterable, Iterator, Mapping
from typing import Annotated, Any

from pydantic import Field, PlainValidator

from bot import controls
from bot.cluster import CustomResource
from bot.errors import ReportError
from bot.sources._payload import (
    ListOrEmpty,
    ObjectsOnly,
    OrEmpty,
    OrNone,
    Payload,
    Raw,
    Text,
    empty,
)
from bot.sources.base import KNOWN_KINDS, Report, Skipped, one_or_list
from bot.sources.kubescape import build_report, status_of
from fixers.model import Severity

FORMAT = "kubescape-operator"

GROUP = "spdx.softwarecomposition.kubescape.io"
VERSION = "v1beta1"
SCANS = CustomResource(GROUP, VERSION, "workloadconfigurationscans")
SUMMARIES = CustomResource(GROUP, VERSION, "workloadconfigurationscansummaries")
CLUSTER_RESOURCES = (SCANS,)
"""What `bot.sources.fetch_from_cluster` lists: the scans (the summaries repeat them, pathless)."""
_KINDS = frozenset({"WorkloadConfigurationScan", "WorkloadConfigurationScanSummary"})

_WLID = re.compile(r"^wlid://cluster-[^/]*/namespace-(?P<ns>[^/]*)/(?P<kind>[a-z]+)-(?P<name>.+)$")


def _is_scan(item: Any) -> bool:
    return (
        isinstance(item, Mapping)
        and str(item.get("apiVersion", "")).startswith(f"{GROUP}/")
        and str(item.get("kind")) in _KINDS
    )


def sniff(data: Any) -> bool:
    """One scan object, or a kubectl ``List`` of them."""
    return one_or_list(data, _is_scan)


# --------------------------------------------------------------------------- conversion


def _mapping(value: Any) -> Mapping[str, Any]:
    return value if isinstance(value, Mapping) else {}


def _text(value: Any) -> str:
    return value.strip() if isinstance(value, str) else ""


Trimmed = Annotated[str, PlainValidator(_text)]
"""A string, stripped; ``""`` for anything else."""


class _Labels(Payload):
    kind: Trimmed = Field("", alias="kubescape.io/workload-kind")
    name: Trimmed = Field("", alias="kubescape.io/workload-name")
    namespace: Trimmed = Field("", alias="kubescape.io/workload-namespace")
    group: Trimmed = Field("", alias="kubescape.io/workload-api-group")
    version: Trimmed = Field("", alias="kubescape.io/workload-api-version")


class _Annotations(Payload):
    wlid: Trimmed = Field("", alias="kubescape.io/wlid")


class _Metadata(Payload):
    name: Trimmed = ""
    labels: Annotated[_Labels, OrEmpty] = empty(_Labels)
    annotations: Annotated[_Annotations, OrEmpty] = empty(_Annotations)


class _Path(Payload):
    failedPath: Trimmed = ""
    fixPath: Trimmed = ""
    fixPathValue: Raw = None


class _Rule(Payload):
    name: Trimmed = ""
    status: Raw = None
    paths: Annotated[list[_Path], ObjectsOnly] = []


class _Severity(Payload):
    severity: Raw = None
    scoreFactor: Raw = None


class _Control(Payload):
    """One entry of ``spec.controls``."""

    controlID: Trimmed = ""
    name: Trimmed = ""
    status: Raw = None
    severity: Annotated[_Severity, OrEmpty] = empty(_Severity)
    rules: Annotated[list[Annotated[_Rule, OrEmpty]], ListOrEmpty] = []


class _Spec(Payload):
    controls: Annotated[dict[Any, Annotated[_Control | None, OrNone]] | None, OrNone] = None
    """By control id; None when it is no mapping, and so is an entry."""


class _Scan(Payload):
    """A WorkloadConfigurationScan or its summary (what `_is_scan` recognises)."""

    kind: Text = ""
    metadata: Annotated[_Metadata, OrEmpty] = empty(_Metadata)
    spec: Annotated[_Spec, OrEmpty] = empty(_Spec)


def workload_id(item: Mapping[str, Any]) -> str | None:
    """The Kubescape resource id (``group/version/namespace/Kind/name``) of the scanned workload."""
    return _workload_id(_Metadata.model_validate(_mapping(item.get("metadata"))))


def _workload_id(metadata: _Metadata) -> str | None:
    labels = metadata.labels
    wlid = _WLID.match(metadata.annotations.wlid)
    kind = labels.kind or (wlid["kind"] if wlid else "")
    if wlid and wlid["kind"] != kind.lower():
        wlid = None  # an RBAC subject's wlid names its RoleBinding, not the subject
    name = labels.name
    if wlid and (not name or (wlid["name"].startswith(name) and len(wlid["name"]) > len(name))):
        name = wlid["name"]  # label values are cut at 63 characters; the annotation is not
    if not kind or not name:
        return None
    namespace = labels.namespace or (wlid["ns"] if wlid else "")
    group, version = labels.group, labels.version
    api_version = f"{group}/{version}" if group and version else version or group
    kind = KNOWN_KINDS.get(kind.lower(), kind[:1].upper() + kind[1:])
    return f"{api_version}/{namespace}/{kind}/{name}"


def _paths(raw: list[_Path]) -> list[dict[str, Any]]:
    paths: list[dict[str, Any]] = []
    for entry in raw:
        if entry.failedPath:
            paths.append({"failedPath": entry.failedPath})
        if entry.fixPath:
            paths.append({"fixPath": {"path": entry.fixPath, "value": entry.fixPathValue}})
    return paths


def _control(cid: str, raw: _Control) -> dict[str, Any]:
    return {
        "controlID": raw.controlID or cid,
        "name": raw.name,
        "status": {"status": status_of(raw.status) or ""},
        "rules": [
            {"name": rule.name, "status": status_of(rule.status), "paths": _paths(rule.paths)}
            for rule in raw.rules
        ],
    }


class _Reader:
    """Turns scan objects into Kubescape results, noting severities, statuses and what it skips."""

    def __init__(self, origin: str) -> None:
        self.origin = origin
        self.severities: dict[str, Severity] = {}
        self.statuses: dict[str, dict[str, str]] = {}
        """Control id -> resource id -> the control's status on that workload."""
        self.skipped: list[Skipped] = []
        self.objects = 0

    def results(self, items: Iterable[Any]) -> Iterator[dict[str, Any]]:
        for item in items:
            if not _is_scan(item):
                what = _mapping(item).get("kind") or type(item).__name__
                raise ReportError(
                    f"{self.origin}: item {self.objects} is not a WorkloadConfigurationScan "
                    f"({what})"
                )
            self.objects += 1
            scan = _Scan.model_validate(item)
            name = scan.metadata.name or f"item {self.objects}"
            resource_id = _workload_id(scan.metadata)
            if resource_id is None:
                self.skipped.append(
                    Skipped(
                        f"{scan.kind} {name}",
                        "names no workload (no kubescape.io/workload-kind and -name labels, "
                        "no kubescape.io/wlid annotation)",
                    )
                )
                continue
            table = scan.spec.controls
            if table is None:
                raise ReportError(
                    f"{self.origin}: malformed {scan.kind} {name}: spec.controls is not a mapping"
                )
            converted = []
            for cid, entry in table.items():
                if entry is None:
                    raise ReportError(
                        f"{self.origin}: malformed {scan.kind} {name}: control {cid} is not a "
                        "mapping"
                    )
                control = _control(str(cid), entry)
                self._note(control["controlID"], resource_id, entry)
                converted.append(control)
            yield {"resourceID": resource_id, "controls": converted}

    def _note(self, cid: str, resource_id: str, raw: _Control) -> None:
        level = Severity.parse(raw.severity.severity or raw.severity.scoreFactor)
        if level is not Severity.UNKNOWN:
            self.severities.setdefault(cid, level)
        status = status_of(raw.status)
        if status:
            seen = self.statuses.setdefault(cid, {})
            # a workload read twice (scan and summary) fails if either says so
            if seen.get(resource_id) != "failed":
                seen[resource_id] = status

    def frameworks(self) -> dict[str, Any]:
        """Per-framework control counters in `bot.sources.kubescape`'s summary shape."""
        members: dict[str, list[str]] = {}
        for control in controls.all_controls():
            for framework in control.frameworks:
                members.setdefault(framework, []).append(control.id)
        frameworks = []
        for framework, ids in sorted(members.items()):
            table = {}
            for cid in ids:
                statuses = list(self.statuses.get(cid, {}).values())
                if not statuses:
                    continue
                failed = statuses.count("failed")
                passed = statuses.count("passed")
                table[cid] = {
                    "name": controls.require(cid).name,
                    "status": "failed" if failed else "passed" if passed else "skipped",
                    "passed": passed,
                    "failed": failed,
                    "skipped": len(statuses) - failed - passed,
                    "excluded": 0,
                }
            if table:
                frameworks.append({"name": framework, "controls": table})
        return {"frameworks": frameworks, "score": None, "compliance_score": None}


def read_objects(items: Iterable[Any], origin: str) -> Report:
    """The findings of scan objects, consumed once (a cluster listing is never held whole)."""
    reader = _Reader(origin)
    report = build_report(
        (), reader.results(items), {}, origin, scanner=FORMAT, severities=reader.severities
    )
    if reader.objects == 0:
        raise ReportError(
            f"{origin}: no WorkloadConfigurationScan objects (has the Kubescape operator "
            "finished a configuration scan?)"
        )
    return dataclasses.replace(
        report, skipped=(*reader.skipped, *report.skipped), summary=reader.frameworks()
    )


def parse(data: Any, origin: str) -> Report:
    """Findings of a scan object or a ``List`` of them (``kubectl get ... -o json``)."""
    if not sniff(data):
        raise ReportError(f"{origin}: not a Kubescape operator WorkloadConfigurationScan (List)")
    items = data["items"] if isinstance(data.get("items"), list) else [data]
    return read_objects(items, origin)
