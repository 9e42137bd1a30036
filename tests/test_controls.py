"""The control catalog: complete for the fixers, consistent with Kubescape's own control files."""

from __future__ import annotations

import dataclasses
import json

import pytest

from bot import controls
from bot.errors import ConfigError
from tests.conftest import corpus_path


def _claimed() -> list[str]:
    from fixers import registry

    return sorted(registry.by_control())


@pytest.mark.parametrize("control_id", _claimed())
def test_every_control_a_fixer_claims_is_explained_and_fixable(control_id: str) -> None:
    """The registry decides fixability: the catalog explains the control and gives no stale
    "not fixable in git" reason for it, and the plan hands its findings to the fixer."""
    from bot.plan import _triage
    from bot.repo_config import RepoConfig
    from fixers.model import Finding, ResourceRef

    control = controls.require(control_id)
    assert control.why and control.fix
    assert control.unfixable_reason is None
    assert controls.not_fixable_in_git(control) is None
    finding = Finding(
        control_id=control_id,
        resource=ResourceRef(
            api_version="apps/v1", kind="Deployment", namespace="shop", name="web"
        ),
    )
    assert _triage(finding, RepoConfig()) is None


def test_one_risk_per_control() -> None:
    """Risk is stated once, by the fixer: the catalog has no risk field to disagree with."""
    from fixers import registry

    assert "risk" not in {f.name for f in dataclasses.fields(controls.Control)}
    for control_id in _claimed():
        fixer = registry.fixer_for(control_id)
        assert fixer is not None
        assert registry.risk_of(control_id) is fixer.risk
    assert registry.risk_of("C-0035") is None  # cluster-admin binding: no fixer, no fix risk


def test_catalog_is_large_enough_and_sorted() -> None:
    ids = [c.id for c in controls.all_controls()]
    assert len(ids) >= 45
    assert ids == sorted(ids)
    assert {"C-0260", "C-0270", "C-0271"} <= set(ids)


def test_unfixable_controls_say_what_a_person_should_do() -> None:
    cluster_admin = controls.require("C-0035")
    assert controls.not_fixable_in_git(cluster_admin) is not None
    assert cluster_admin.unfixable_reason is not None
    assert cluster_admin.unfixable_reason.category == "rbac"
    kubelet = controls.require("C-0069")
    assert kubelet.unfixable_reason is not None
    assert kubelet.unfixable_reason.category == "node"
    assert kubelet.severity == "Critical"


def test_aliases_map_kubescape2_cis_ids_to_canonical_ids() -> None:
    assert controls.canonical_id("CIS-5.7.2") == "C-0210"
    assert controls.canonical_id("cis-5.1.6") == "C-0190"
    assert controls.get("CIS-5.2.6").id == "C-0197"  # type: ignore[union-attr]
    assert controls.canonical_id("CIS-9.9.9") is None


def test_unknown_id_is_a_clear_config_error() -> None:
    assert controls.get("C-9999") is None
    with pytest.raises(ConfigError, match=r"unknown Kubescape control id 'C-9999'"):
        controls.require("C-9999")


def test_memory_limit_explains_itself_in_plain_words() -> None:
    control = controls.require("C-0271")
    assert "memory" in control.why.lower()
    assert control.severity_level.label == "High"


def test_names_and_score_factors_match_regolibrary_control_files() -> None:
    folder = corpus_path("manifests", "regolibrary-rule-tests", "controls")
    files = sorted(folder.glob("*.json"))
    assert len(files) == 22
    for path in files:
        data = json.loads(path.read_text())
        control = controls.require(data["controlID"])
        assert control.name == data["name"], path.name
        assert control.score_factor == data["baseScore"], path.name


def _failing_control_ids(report: dict) -> set[str]:
    failing = set()
    for result in report["results"]:
        for control in result["controls"]:
            if any(rule.get("status") == "failed" for rule in control.get("rules") or ()):
                failing.add(control["controlID"])
    return failing


def test_every_failing_control_in_the_corpus_reports_is_known() -> None:
    folder = corpus_path("scans", "kubescape")
    seen: set[str] = set()
    for path in sorted(folder.glob("*.json")):
        seen |= _failing_control_ids(json.loads(path.read_text()))
    assert {"C-0016", "C-0210", "CIS-5.7.2"} <= seen
    unknown = sorted(cid for cid in seen if controls.get(cid) is None)
    assert unknown == []


def test_report_names_agree_with_the_catalog() -> None:
    report = json.loads(corpus_path("scans", "kubescape", "scape-a-lyzer__sample.json").read_text())
    for cid, summary in report["summaryDetails"]["controls"].items():
        control = controls.get(cid)
        if control is None:
            continue
        # Kubescape 3 prefixes CIS controls with their benchmark number.
        assert summary["name"].endswith(control.name), cid
        assert control.score_factor == summary["scoreFactor"], cid


def test_every_control_a_fixer_claims_is_in_the_catalog() -> None:
    from fixers import registry

    claimed = sorted(registry.by_control())
    assert claimed
    assert [cid for cid in claimed if controls.get(cid) is None] == []
