"""Fields a kustomize ``replacements`` entry sets are traced; a fix goes to the field it copies.

The ledger repository's base copies the ledger container's image and security context to the
reconciler (``replacements: - path: release.yaml``); production also appends its namespace to
the reconciler's arguments (an inline replacement with ``create``)."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from bot.locate.base import FileOverlay
from bot.locate.kustomize import OVERLAYS_META, Engine
from bot.locate.kustomize_build import KustomizeReader
from fixers.edits import load_documents
from tests.kustomize.support import (
    engine_repo,
    only_change_set,
    overlay_finding,
    plan_of,
    write_and_build,
)

LEDGER = Path(__file__).parent / "repos" / "ledger"
RECONCILER = ("spec", "template", "spec", "containers", "[name=reconciler]")


@pytest.fixture(params=["kubectl", "reader"])
def repo(request: pytest.FixtureRequest, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    return engine_repo(LEDGER, request.param, tmp_path, monkeypatch)


def test_fields_a_replacement_sets_are_traced_to_it_and_its_source() -> None:
    _, reconciler = KustomizeReader(FileOverlay(LEDGER)).build("overlays/production")
    touch = reconciler.source_of((*RECONCILER, "securityContext", "allowPrivilegeEscalation"))
    assert touch is not None and touch.where is None
    assert (touch.source.kind, touch.source.file, touch.source.key) == (
        "replacement",
        "base/release.yaml",
        (1,),
    )
    assert touch.source.copies == (
        "Deployment",
        "ledger",
        "spec.template.spec.containers.[name=ledger].securityContext",
    )
    args = reconciler.source_of((*RECONCILER, "args", "2"))
    assert args is not None and args.source.key == ("replacements", 0)
    assert reconciler.doc["spec"]["template"]["spec"]["containers"][0]["args"][2] == "ledger"


def test_reader_applies_replacements_as_kubectl_does() -> None:
    if shutil.which("kubectl") is None:
        pytest.skip("kubectl is not installed")
    reader = KustomizeReader(FileOverlay(LEDGER))
    for folder in ("base", "overlays/staging", "overlays/production"):
        proc = subprocess.run(
            ["kubectl", "kustomize", str(LEDGER / folder)],
            capture_output=True,
            text=True,
            check=True,
            timeout=60,
        )
        assert [r.doc for r in reader.build(folder)] == load_documents(proc.stdout), folder
        assert not reader.untraced


def test_fix_of_a_copied_field_goes_to_the_field_it_is_copied_from(repo: Path) -> None:
    """An edit of the reconciler's security context would be overwritten by the replacement:
    the ledger's own container gets it, and the replacement carries it to both."""
    finding = overlay_finding(
        "C-0016", "overlays/staging", "ledger-staging", "reconciler", "reconciler"
    )
    cs = only_change_set(plan_of(repo, finding))
    assert [c.path for c in cs.files] == ["base/ledger.yaml"]
    ledger = load_documents(cs.files[0].after)[0]["spec"]["template"]["spec"]["containers"][0]
    assert ledger["securityContext"] == {"runAsNonRoot": True, "allowPrivilegeEscalation": False}
    assert cs.meta[OVERLAYS_META] == "base, overlays/production, overlays/staging"
    fixed = write_and_build(repo, cs, finding, "overlays/staging")
    assert (
        fixed["spec"]["template"]["spec"]["containers"][0]["securityContext"][
            "allowPrivilegeEscalation"
        ]
        is False
    )


def test_a_delimiter_on_a_mapping_is_refused_as_kubectl_refuses_it(repo: Path) -> None:
    release = repo / "base" / "release.yaml"
    release.write_text(
        release.read_text().replace(
            "      options:\n        create: true\n",
            "      options:\n        create: true\n        delimiter: '|'\n",
        )
    )
    finding = overlay_finding(
        "C-0016", "overlays/staging", "ledger-staging", "reconciler", "reconciler"
    )
    plan = plan_of(repo, finding)
    assert not plan.change_sets
    assert "delimiter option can only be used with scalar nodes" in plan.unfixable[0].reason


def test_without_kubectl_the_fields_the_reader_cannot_trace_are_named(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    shutil.copytree(LEDGER, tmp_path / "repo")
    production = tmp_path / "repo" / "overlays" / "production" / "kustomization.yaml"
    production.write_text(
        production.read_text().replace("create: true", "create: true\n          encoding: base64")
    )
    monkeypatch.setenv("REMEDY_KUSTOMIZE_ENGINE", "reader")
    built = Engine(tmp_path / "repo").build("overlays/production", FileOverlay(tmp_path / "repo"))
    assert isinstance(built, str)
    assert (
        "cannot trace Deployment reconciler spec.template.spec.containers.[name=reconciler]."
        "args.2 (set by overlays/production/kustomization.yaml replacement replacements.0 with "
        "options encoding)"
    ) in built
