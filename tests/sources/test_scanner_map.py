from __future__ import annotations

from importlib import resources

import pytest
import yaml

from bot import scanner_map


def _catalog_ids() -> set[str]:
    text = resources.files("bot.data").joinpath("controls.yaml").read_text(encoding="utf-8")
    return set(__import__("re").findall(r"C-\d{4}", text))


def test_ksv_spellings_are_equal() -> None:
    assert scanner_map.to_control("trivy", "KSV001") == "C-0016"
    assert scanner_map.to_control("trivy", "KSV-0001") == "C-0016"
    assert scanner_map.to_control("trivy", "AVD-KSV-0001") == "C-0016"
    assert scanner_map.normalize("trivy", "KSV-0017") == "KSV017"


def test_known_checks_map() -> None:
    assert scanner_map.to_control("checkov", "CKV_K8S_20") == "C-0016"
    assert scanner_map.to_control("kyverno", "require-ro-rootfs") == "C-0017"


def test_unknown_id_is_unmapped() -> None:
    assert scanner_map.to_control("trivy", "KSV999") is None
    assert scanner_map.to_control("nosuch", "X") is None


@pytest.mark.parametrize("scanner", ["trivy", "checkov", "kyverno"])
def test_every_target_is_a_catalog_control_and_has_a_title(scanner: str) -> None:
    catalog = _catalog_ids()
    table = scanner_map.entries(scanner)
    assert table
    for check_id, entry in table.items():
        assert entry["control"] in catalog, check_id
        assert entry["title"].strip(), check_id


def test_yaml_keys_are_normalized() -> None:
    text = resources.files("bot.data").joinpath("scanner_map.yaml").read_text(encoding="utf-8")
    for scanner, table in yaml.safe_load(text).items():
        for check_id in table:
            assert scanner_map.normalize(scanner, check_id) == check_id


def test_by_path_targets_are_catalog_controls() -> None:
    catalog = _catalog_ids()
    for scanner in scanner_map.scanners():
        for check_id, entry in scanner_map.entries(scanner).items():
            for fragment, control in (entry.get("by_path") or {}).items():
                assert control in catalog, (check_id, fragment)


def test_failed_path_picks_the_control() -> None:
    probes = "require-pod-probes"
    assert scanner_map.to_control("kyverno", probes) == "C-0056"
    assert (
        scanner_map.to_control(
            "kyverno", probes, "/spec/template/spec/containers/0/readinessProbe/"
        )
        == "C-0018"
    )
    hostnet = "/spec/template/spec/hostNetwork/"
    assert scanner_map.to_control("kyverno", "disallow-host-namespaces", hostnet) == "C-0041"
    assert (
        scanner_map.to_control("kyverno", "disallow-host-namespaces", "/spec/hostPID/") == "C-0038"
    )
    limits = "/spec/containers/0/resources/limits/memory/"
    assert scanner_map.to_control("kyverno", "require-requests-limits", limits) == "C-0271"
