"""SARIF 2.1.0 logs from Trivy, Checkov and Kubescape (``-f sarif`` / ``-o sarif``).

``runs[].tool.driver.name`` selects the id mapping: Trivy KSV ids and Checkov CKV ids through
`bot.scanner_map`, Kubescape ids as they are. ``results[].ruleId`` is the check,
``locations[].physicalLocation`` the file (``artifactLocation.uri``, relative to
``originalUriBaseIds``) and the lines (``region``).

SARIF has no field for the Kubernetes object, so each tool's own habits are used: Trivy's results
carry its message (``Container 'app' of Deployment 'web' ...``) and are read by the Trivy
reader; Checkov quotes the resource in ``region.snippet``; otherwise the YAML document at that
line of the scanned file is read when the file is reachable. Results of other tools, and
results whose resource cannot be told, are `Skipped` with the reason.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, Any, TypeVar
from urllib.parse import unquote, urlparse

import yaml
from pydantic import BaseModel

from bot import controls, scanner_map
from bot.errors import RemedyError, ReportError
from bot.safe_load import load_yaml_all
from bot.sources import checkov, trivy
from bot.sources._payload import FalsyEmpty, OrNone, Payload, Raw, Text, empty, validated
from bot.sources.base import Report, Skipped
from fixers.model import CONTROL_ID, Finding, ResourceRef, Severity, SourceHint

FORMAT = "sarif"

_LEVELS = {"error": Severity.HIGH, "warning": Severity.MEDIUM, "note": Severity.LOW}
_TRIVY_FIELD = re.compile(r"^(?P<key>Artifact|Type|Severity|Message): (?P<value>.*)$", re.M)
_VULNERABILITY = re.compile(r"^(CVE|GHSA|RUSTSEC|PYSEC|GO|DLA|DSA|USN|ALAS|RHSA)-", re.I)


class _Text(Payload):
    """A ``message``, ``snippet`` or ``shortDescription``: ``{"text": ...}``."""

    text: Text = ""


class _Artifact(Payload):
    uri: Text = ""
    uriBaseId: Raw = None


class _Region(Payload):
    startLine: Raw = None
    endLine: Raw = None
    snippet: Annotated[_Text, FalsyEmpty] = empty(_Text)


class _Physical(Payload):
    artifactLocation: Annotated[_Artifact, FalsyEmpty] = empty(_Artifact)
    region: Annotated[_Region, FalsyEmpty] = empty(_Region)


class _Location(Payload):
    physicalLocation: Annotated[_Physical | None, OrNone] = None


class _Result(Payload):
    ruleId: Raw = None
    kind: Raw = None
    level: Raw = None
    message: Annotated[_Text, FalsyEmpty] = empty(_Text)
    locations: Raw = None


class _Rule(Payload):
    id: Raw = None
    shortDescription: Annotated[_Text, FalsyEmpty] = empty(_Text)


class _Driver(Payload):
    name: Text = ""
    rules: Raw = None


class _Tool(Payload):
    driver: Annotated[_Driver | None, OrNone] = None


class _Run(Payload):
    tool: Annotated[_Tool, FalsyEmpty] = empty(_Tool)
    results: Raw = None
    originalUriBaseIds: Raw = None


_M = TypeVar("_M", bound=BaseModel)


def sniff(data: Any) -> bool:
    """A SARIF log: ``version`` 2.1.0 (or a SARIF ``$schema``) and a ``runs`` list."""
    if not isinstance(data, Mapping) or not isinstance(data.get("runs"), list):
        return False
    return str(data.get("version")) == "2.1.0" or "sarif" in str(data.get("$schema", "")).lower()


# --------------------------------------------------------------------------- locations


def _location(result: _Result, origin: str) -> tuple[str, str | None, int | None, int | None, str]:
    """(uri, uriBaseId, start line, end line, snippet) of a result's first physical location."""
    for item in result.locations or ():
        if not isinstance(item, Mapping):
            continue
        physical = _valid(_Location, item, origin).physicalLocation
        if physical is None:
            continue
        region = physical.region
        start = region.startLine
        end = region.endLine if "endLine" in region.model_fields_set else start
        return (
            physical.artifactLocation.uri,
            physical.artifactLocation.uriBaseId,
            start if isinstance(start, int) else None,
            end if isinstance(end, int) else None,
            region.snippet.text,
        )
    return "", None, None, None, ""


def _valid(model: type[_M], data: Any, origin: str) -> _M:
    part = model.__name__.strip("_").lower()
    return validated(model, data, f"{origin}: malformed SARIF log: a {part}")


def _base_dirs(run: _Run) -> dict[str, Path]:
    bases: dict[str, Path] = {}
    given = run.originalUriBaseIds
    for key, value in (given if isinstance(given, Mapping) else {}).items():
        uri = value.get("uri") if isinstance(value, Mapping) else None
        if isinstance(uri, str):
            parsed = urlparse(uri)
            bases[str(key)] = Path(unquote(parsed.path if parsed.scheme == "file" else uri))
    return bases


def _file(uri: str, base_id: str | None, bases: Mapping[str, Path]) -> Path:
    parsed = urlparse(uri)
    path = Path(unquote(parsed.path)) if parsed.scheme == "file" else Path(unquote(uri))
    if not path.is_absolute() and base_id and base_id in bases:
        return bases[base_id] / path
    return path


def _document_at(path: Path, line: int | None) -> Mapping[str, Any] | None:
    """The YAML document of ``path`` that holds ``line`` (1-based); the only one without it."""
    try:
        nodes = list(yaml.compose_all(path.read_text(encoding="utf-8-sig"), yaml.SafeLoader))
    except (OSError, UnicodeDecodeError, yaml.YAMLError, RecursionError):
        return None
    nodes = [n for n in nodes if isinstance(n, yaml.MappingNode)]
    if line is not None:
        nodes = [n for n in nodes if n.start_mark.line + 1 <= line <= n.end_mark.line + 1]
    if len(nodes) != 1:
        return None
    doc = yaml.safe_load(yaml.serialize(nodes[0]))
    return doc if isinstance(doc, Mapping) else None


def _snippet_document(snippet: str) -> Mapping[str, Any] | None:
    try:
        docs = [d for d in load_yaml_all(snippet, "snippet") if isinstance(d, Mapping)]
    except RemedyError:
        return None
    return docs[0] if docs else None


# --------------------------------------------------------------------------- Trivy runs


def _trivy_run(run: _Run, driver: _Driver, origin: str) -> Report:
    """Trivy's SARIF rewritten as its JSON results, so the Trivy reader's rules apply."""
    rules = {
        str(rule.id): rule.shortDescription.text
        for rule in (_valid(_Rule, r, origin) for r in driver.rules or () if isinstance(r, Mapping))
    }
    by_target: dict[str, dict[str, Any]] = {}
    for raw in run.results or ():
        if not isinstance(raw, Mapping):
            continue
        result = _valid(_Result, raw, origin)
        rule_id = str(result.ruleId or "")
        text = result.message.text
        fields = {m.group("key"): m.group("value").strip() for m in _TRIVY_FIELD.finditer(text)}
        uri, _, start, end, _ = _location(result, origin)
        target = by_target.setdefault(
            uri, {"Target": uri, "Type": fields.get("Type", ""), "Misconfigurations": []}
        )
        if _VULNERABILITY.match(rule_id):
            target.setdefault("Vulnerabilities", []).append({"VulnerabilityID": rule_id})
            continue
        target["Misconfigurations"].append(
            {
                "ID": rule_id,
                "Title": rules.get(rule_id, ""),
                "Message": fields.get("Message", text),
                "Severity": fields.get("Severity") or result.level,
                "Status": "FAIL",
                "CauseMetadata": {"StartLine": start, "EndLine": end},
            }
        )
    root = _base_dirs(run).get("ROOTPATH")
    return trivy.parse(
        {
            "SchemaVersion": 2,
            "ArtifactName": str(root) if root else "",
            "Results": list(by_target.values()),
        },
        origin,
    )


# --------------------------------------------------------------------------- other runs


def _control(tool: str, rule_id: str) -> str | None:
    if tool == "kubescape":
        upper = rule_id.strip().upper()
        return upper if CONTROL_ID.match(upper) else controls.canonical_id(upper)
    return scanner_map.to_control(tool, rule_id)


def _generic_run(tool: str, run: _Run, origin: str) -> Report:
    bases = _base_dirs(run)
    findings: list[Finding] = []
    skipped: list[Skipped] = []
    for raw in run.results or ():
        if not isinstance(raw, Mapping) or not raw.get("ruleId"):
            continue
        if raw.get("kind") not in (None, "fail"):
            continue  # pass / notApplicable / informational results of tools that emit them
        result = _valid(_Result, raw, origin)
        rule_id = str(result.ruleId)
        text = result.message.text
        uri, base_id, start, _, snippet = _location(result, origin)
        doc = _snippet_document(snippet) or (
            _document_at(_file(uri, base_id, bases), start) if uri else None
        )
        ref: ResourceRef | None = checkov.resource_of(doc)
        where = f"{rule_id} in {uri or 'an unnamed file'}" + (f":{start}" if start else "")
        if ref is None:
            skipped.append(
                Skipped(
                    where,
                    "SARIF names no Kubernetes object and the scanned file could not be read "
                    "to tell which one failed",
                )
            )
            continue
        control = _control(tool, rule_id)
        if control is None:
            skipped.append(
                Skipped(
                    f"{rule_id} on {ref}",
                    f"{tool.capitalize()} check {rule_id} ({text or 'no message'}) has no "
                    "equivalent Kubescape control in bot/data/scanner_map.yaml",
                )
            )
            continue
        known = controls.get(control)
        severity = known.severity_level if known else _LEVELS.get(str(result.level))
        findings.append(
            Finding(
                control_id=control,
                scanner=tool,
                scanner_ids=(rule_id,),
                severity=severity or Severity.UNKNOWN,
                resource=ref,
                container=checkov.only_container(doc) if control in checkov.PER_CONTAINER else None,
                source=SourceHint(path=uri or None, line=start),
                message=text.splitlines()[0] if text else "",
            )
        )
    return Report(
        scanner=tool,
        origin=origin,
        findings=tuple(dict.fromkeys(findings)),
        skipped=tuple(dict.fromkeys(skipped)),
    )


# --------------------------------------------------------------------------- parse


def parse(data: Any, origin: str) -> Report:
    """Turn a SARIF log of Trivy, Checkov or Kubescape into findings."""
    if not sniff(data):
        raise ReportError(f"{origin}: not a SARIF 2.1.0 log (no 'runs' list)")
    tools: list[str] = []
    findings: list[Finding] = []
    skipped: list[Skipped] = []
    for i, raw in enumerate(data["runs"]):
        run = _valid(_Run, raw, origin) if isinstance(raw, Mapping) else None
        driver = run.tool.driver if run is not None else None
        if run is None or driver is None:
            raise ReportError(f"{origin}: malformed SARIF: runs[{i}] has no tool.driver")
        tool = driver.name.strip().lower()
        if tool == "trivy":
            report = _trivy_run(run, driver, origin)
        elif tool in ("checkov", "kubescape"):
            report = _generic_run(tool, run, origin)
        else:
            results = run.results or []
            skipped.append(
                Skipped(
                    f"{len(results)} results of {driver.name or 'an unnamed tool'}",
                    "SARIF from this tool has no check id mapping (Trivy, Checkov and "
                    "Kubescape are read)",
                )
            )
            continue
        tools.append(tool)
        findings.extend(report.findings)
        skipped.extend(report.skipped)
    return Report(
        scanner="+".join(dict.fromkeys(tools)) or FORMAT,
        origin=origin,
        findings=tuple(findings),
        skipped=tuple(skipped),
    )
