"""A manifest with a UTF-8 byte order mark is read and fixed with the mark kept byte for byte; a
manifest that does not parse is named with file:line, not "no manifest defines ..."."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.security._input_support import (
    blob,
    branches,
    checkov_report,
    commit_all,
    deployment,
    run,
)


def test_bom_manifest_is_fixed_and_keeps_its_bom(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    repo = tmp_path / "cd-config"
    (repo / "apps").mkdir(parents=True)
    original = b"\xef\xbb\xbf" + deployment("web").replace("\n", "\r\n").encode()
    (repo / "apps" / "web.yaml").write_bytes(original)
    commit_all(repo)
    report = checkov_report(tmp_path / "r.json", [("apps/web.yaml", "web")])
    code, out, err = run(capsys, "apply", "--report", str(report), "--repo", str(repo))
    assert code == 0, out + err
    [branch] = branches(repo)
    fixed = blob(repo, branch, "apps/web.yaml")
    assert fixed.startswith(b"\xef\xbb\xbfapiVersion: apps/v1\r\n")
    assert fixed.count(b"\xef\xbb\xbf") == 1
    assert b"allowPrivilegeEscalation: false\r\n" in fixed
    # only the fix's lines were added: every original line is still there, in order
    kept = [line for line in fixed.split(b"\r\n") if line in original.split(b"\r\n")]
    assert kept == original.split(b"\r\n")
    assert (repo / "apps" / "web.yaml").read_bytes() == original  # working tree untouched


def test_file_that_does_not_parse_is_named_with_its_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    repo = tmp_path / "cd-config"
    (repo / "apps").mkdir(parents=True)
    broken = deployment("web").replace("  namespace: shop\n", "  namespace: shop\n   bad: [\n")
    (repo / "apps" / "web.yaml").write_text(broken)
    commit_all(repo)
    report = checkov_report(tmp_path / "r.json", [("apps/web.yaml", "web")])
    code, out, _ = run(capsys, "plan", "--report", str(report), "--repo", str(repo))
    assert code == 1
    flat = " ".join(out.split())
    assert "apps/web.yaml:6:" in flat and "does not parse" in flat
    assert "no manifest in the repository defines" not in flat


def test_unparsable_files_are_mentioned_when_the_scanner_names_no_file(tmp_path: Path) -> None:
    from bot.locate.manifest import ManifestIndex, locate_manifest
    from fixers.model import Finding, ResourceRef

    (tmp_path / "web.yaml").write_text("kind: Deployment\nmetadata: {name: web\n")
    index = ManifestIndex.build(tmp_path)
    reason = locate_manifest(
        Finding(control_id="C-0016", resource=ResourceRef(kind="Deployment", name="web")), index
    )
    assert isinstance(reason, str)
    assert "not read: web.yaml:3:1: does not parse" in reason
