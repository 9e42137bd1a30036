"""Kyverno policy reports: a real `kubectl get polr -o yaml` and Kyverno's own e2e expected
reports from the corpus, plus small reports written here for the newer shapes."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from bot.errors import ReportError
from bot.sources import kyverno, load_report, parse_report
from bot.sources.base import Report
from fixers.model import Severity
from tests.conftest import corpus_path

OCM = "ocm-policy-collection__polr-openshift-authentication-operator.yaml"


@pytest.fixture(scope="module")
def polr() -> Report:
    return load_report(corpus_path("scans", "kyverno", OCM))


def test_real_policy_report_findings(polr: Report) -> None:
    by_id = {f.scanner_ids: f for f in polr.findings}
    assert set(by_id) == {
        ("require-requests-limits/autogen-validate-resources",),
        ("restrict-automount-sa-token/autogen-validate-automountServiceAccountToken",),
        ("require-pod-probes/autogen-validate-livenessProbe-readinessProbe",),
    }
    sat = by_id[("restrict-automount-sa-token/autogen-validate-automountServiceAccountToken",)]
    assert sat.control_id == "C-0034"
    assert sat.scanner == "kyverno"
    assert (
        sat.resource.key == "Deployment/openshift-authentication-operator/authentication-operator"
    )
    assert sat.resource.api_version == "apps/v1"
    assert sat.severity is Severity.MEDIUM
    assert sat.container is None


def test_failing_path_picks_control_and_container_hint(polr: Report) -> None:
    probes = next(f for f in polr.findings if f.scanner_ids[0].startswith("require-pod-probes"))
    assert probes.control_id == "C-0018"  # the readinessProbe is what failed
    limits = next(f for f in polr.findings if f.scanner_ids[0].startswith("require-requests"))
    assert limits.control_id == "C-0009"  # the whole limits block is missing
    (hint,) = limits.hints
    assert (hint.kind, hint.path) == ("failed", "spec.template.spec.containers[0].resources.limits")


def test_error_and_unmapped_results_are_skipped(polr: Report) -> None:
    skipped = {s.what: s.reason for s in polr.skipped}
    error = skipped[
        "allowed-base-images/autogen-check-base-image on Deployment "
        "openshift-authentication-operator/authentication-operator"
    ]
    assert error.startswith("Kyverno could not evaluate the rule: failed to load context")
    assert any(
        w.startswith("restrict-binding-clusteradmin/") and "RoleBinding" in w for w in skipped
    )
    assert polr.summary == {"error": 1, "fail": 11, "pass": 8, "skip": 0, "warn": 0}


def test_scoped_report_of_kyverno_e2e() -> None:
    report = load_report(
        corpus_path("scans", "kyverno", "kyverno-e2e__admission_update", "report-fail-assert.yaml")
    )
    assert report.findings == ()
    (skip,) = report.skipped
    assert (
        skip.what == "disallow-latest-tag/autogen-validate-image-tag-pod on Deployment test-dpl-1"
    )


def test_pod_security_result_names_pss_controls() -> None:
    report = load_report(
        corpus_path(
            "scans",
            "kyverno",
            "kyverno-e2e__background_test-report-background-mode",
            "report-assert.yaml",
        )
    )
    (skip,) = report.skipped
    assert "Pod/default/badpod01" not in skip.what  # human form, not the key
    assert "Pod default/badpod01" in skip.what
    assert "capabilities_restricted" in skip.reason


def test_skip_and_pass_results_are_ignored() -> None:
    report = load_report(
        corpus_path(
            "scans",
            "kyverno",
            "kyverno-e2e__background_multiple-exceptions-with-pod-security",
            "report-skip-assert.yaml",
        )
    )
    assert report.findings == () and report.skipped == ()


def _scoped(kind: str, name: str, policy: str, message: str, result: str = "fail") -> dict:
    return {
        "apiVersion": "wgpolicyk8s.io/v1alpha2",
        "kind": "PolicyReport",
        "metadata": {"name": "x", "namespace": "shop"},
        "scope": {"apiVersion": "apps/v1", "kind": kind, "name": name, "namespace": "shop"},
        "results": [
            {
                "policy": policy,
                "rule": "r",
                "result": result,
                "message": message,
                "severity": "high",
            }
        ],
    }


def test_list_of_scoped_reports_as_json(tmp_path: Path) -> None:
    items = [
        _scoped(
            "Deployment",
            "web",
            "disallow-host-namespaces",
            "validation error: rule r failed at path /spec/template/spec/hostNetwork/",
        ),
        _scoped("StatefulSet", "db", "require-run-as-nonroot", "x", result="warn"),
    ]
    path = tmp_path / "polr.json"
    path.write_text(json.dumps({"apiVersion": "v1", "kind": "List", "items": items}))
    report = load_report(path)
    assert report.scanner == "kyverno"
    assert {(f.control_id, f.resource.key) for f in report.findings} == {
        ("C-0041", "Deployment/shop/web"),
        ("C-0013", "StatefulSet/shop/db"),
    }
    assert all(f.severity is Severity.HIGH for f in report.findings)


def test_cluster_report_has_no_namespace() -> None:
    report = {
        "apiVersion": "wgpolicyk8s.io/v1alpha2",
        "kind": "ClusterPolicyReport",
        "metadata": {"name": "cpol"},
        "results": [
            {
                "policy": "disallow-privileged-containers",
                "rule": "p",
                "result": "fail",
                "resources": [{"apiVersion": "v1", "kind": "Pod", "name": "p"}],
            }
        ],
    }
    (finding,) = parse_report(report, "c").findings
    assert (finding.control_id, finding.resource.key) == ("C-0057", "Pod//p")


def test_detection_and_bad_input() -> None:
    assert kyverno.sniff(_scoped("Pod", "p", "x", ""))
    assert not kyverno.sniff({"apiVersion": "v1", "kind": "List", "items": []})
    assert not kyverno.sniff({"apiVersion": "apps/v1", "kind": "Deployment"})
    bad = _scoped("Pod", "p", "x", "")
    bad["results"] = {"not": "a list"}
    with pytest.raises(ReportError, match="'results' is not a list"):
        parse_report(bad, "bad.yaml")


def test_pod_security_baseline_result_maps_to_the_kubescape_control() -> None:
    report = load_report(
        corpus_path(
            "scans",
            "kyverno",
            "kyverno-e2e__background_multiple-exceptions-with-pod-security",
            "report-fail-assert.yaml",
        )
    )
    (finding,) = report.findings
    assert finding.control_id == "C-0046"  # NET_ADMIN / NET_RAW added: insecure capabilities
    assert finding.scanner_ids == ("psp-baseline/baseline (capabilities_baseline)",)
    assert finding.resource.key == "Pod//test-pod"
    (hint,) = finding.hints
    assert (hint.kind, hint.path) == (
        "failed",
        "spec.initContainers[0].securityContext.capabilities.add",
    )
    assert report.skipped == ()


def _pss(controls: list[str], message: str) -> dict:
    report = _scoped("Deployment", "agent", "pod-security-restricted", message)
    result = report["results"][0]
    result["rule"] = "restricted"
    result["properties"] = {
        "controls": ",".join(controls),
        "controlsJSON": json.dumps([{"ID": c, "Name": c, "Images": None} for c in controls]),
        "standard": "restricted",
        "version": "latest",
    }
    return report


def test_pod_security_fields_pick_host_network_or_host_pid() -> None:
    message = (
        "Validation rule 'restricted' failed. It violates PodSecurity \"restricted:latest\": "
        "(Forbidden reason: host namespaces, field error list: [spec.template.spec.hostNetwork is "
        "forbidden, forbidden values found: true, spec.template.spec.hostPID is forbidden, "
        "forbidden values found: true])(Forbidden reason: allowPrivilegeEscalation != false, "
        "field error list: [spec.template.spec.containers[0].securityContext."
        "allowPrivilegeEscalation is forbidden, forbidden values found: nil])(Forbidden reason: "
        "unrestricted capabilities, field error list: [spec.template.spec.containers[0]."
        "securityContext.capabilities.drop: Required value])"
    )
    report = parse_report(
        _pss(["hostNamespaces", "allowPrivilegeEscalation", "capabilities_restricted"], message),
        "x",
    )
    by_control = {f.control_id: f for f in report.findings}
    assert set(by_control) == {"C-0041", "C-0038", "C-0016"}  # drop ALL has no equivalent
    assert [h.path for h in by_control["C-0041"].hints] == ["spec.template.spec.hostNetwork"]
    assert [h.path for h in by_control["C-0038"].hints] == ["spec.template.spec.hostPID"]
    assert by_control["C-0016"].scanner_ids == (
        "pod-security-restricted/restricted (allowPrivilegeEscalation)",
    )
    # every field hint is attached to the check whose control it picked; unrelated ones are not
    assert by_control["C-0016"].hints[0].path.endswith("allowPrivilegeEscalation")
    assert report.skipped == ()


def test_pod_security_checks_without_an_equivalent_are_skipped_by_name() -> None:
    report = parse_report(_pss(["sysctls", "procMount"], "It violates PodSecurity"), "x")
    assert report.findings == ()
    (skip,) = report.skipped
    assert "Pod Security Standards controls: sysctls, procMount" in skip.reason
