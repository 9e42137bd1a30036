"""Patches written inline in kustomization.yaml: traced, and edited inside their block scalar.

The payments repository writes every patch inline: staging in ``patches`` (a strategic-merge
patch with a target, a JSON6902 patch adding a log shipper), production in the deprecated
``patchesStrategicMerge`` (a string) and ``patchesJson6902`` (``patch: |``)."""

from __future__ import annotations

import io
import json
from pathlib import Path

import pytest
from rich.console import Console

from bot import cli
from bot.locate.base import FileOverlay
from bot.locate.kustomize import (
    INLINE_META,
    OVERLAYS_META,
    KustomizeIndex,
    KustomizeTarget,
    locate_kustomize,
)
from bot.locate.kustomize_build import KustomizeReader
from bot.locate.kustomize_inline import edit_inline, inline_text
from fixers.edits import EditError, apply_edits, load_documents
from fixers.model import Set
from tests.kustomize.support import (
    changed_lines,
    engine_repo,
    only_change_set,
    overlay_finding,
    plan_of,
    write_and_build,
)

PAYMENTS = Path(__file__).parent / "repos" / "payments"
STAGING, PRODUCTION = "overlays/staging", "overlays/production"


@pytest.fixture(params=["kubectl", "reader"])
def repo(request: pytest.FixtureRequest, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    return engine_repo(PAYMENTS, request.param, tmp_path, monkeypatch)


def kustomization(folder: str) -> str:
    return (PAYMENTS / folder / "kustomization.yaml").read_text()


# ---------------------------------------------------------------------- tracing


def test_fields_of_inline_patches_are_traced_to_their_place_in_the_kustomization() -> None:
    reader = KustomizeReader(FileOverlay(PAYMENTS))
    api, worker = reader.build(STAGING)
    app = ("spec", "template", "spec", "containers")
    touch = api.source_of((*app, "[name=api]", "securityContext", "allowPrivilegeEscalation"))
    assert touch is not None and touch.source.inline
    assert (touch.source.file, touch.source.key) == (
        f"{STAGING}/kustomization.yaml",
        ("patches", 0, "patch"),
    )
    shipper = worker.source_of((*app, "[name=log-shipper]", "image"))
    assert shipper is not None and shipper.source.kind == "json6902"
    assert shipper.where == (0, "value")
    api, worker = reader.build(PRODUCTION)
    replicas = api.source_of(("spec", "replicas"))
    assert replicas is not None and replicas.source.key == ("patchesStrategicMerge", 0)


# ---------------------------------------------------------------------- the block scalar


def test_an_edit_inside_the_block_keeps_every_other_byte() -> None:
    text = kustomization(STAGING)
    key = ("patches", 0, "patch")
    where = ("spec", "template", "spec", "containers", 0, "securityContext")
    edited = edit_inline(
        text, key, lambda body: apply_edits(body, [Set((*where, "runAsNonRoot"), True)])
    )
    assert changed_lines(text, edited) == [
        ("", "                  runAsNonRoot: true\n"),
    ]
    assert load_documents(inline_text(edited, key))[0]["spec"]["template"]["spec"]["containers"][0][
        "securityContext"
    ] == {"allowPrivilegeEscalation": True, "runAsNonRoot": True}


def test_a_block_at_the_end_of_a_file_without_a_line_break_stays_so() -> None:
    text = "patches:\n  - patch: |-\n      - op: add\n        path: /a\n        value: 1"
    edited = edit_inline(text, ("patches", 0, "patch"), lambda b: b.replace("1", "2"))
    assert edited == text[:-1] + "2"


def test_lines_the_edit_keeps_keep_their_trailing_spaces_and_blank_lines() -> None:
    text = "patches:\n  - patch: |\n      a: 1   \n\n      b: 2\n  - path: x.yaml\n"
    edited = edit_inline(text, ("patches", 0, "patch"), lambda b: b.replace("b: 2", "b: 3"))
    assert edited == text.replace("b: 2", "b: 3")


@pytest.mark.parametrize(
    ("scalar", "why"),
    [
        ("'{\"a\": 1}'", "a quoted string"),
        (">\n      a: 1\n", r"a folded \(>\) block"),
        ("|2\n        a: 1\n", "explicit indentation indicator"),
    ],
)
def test_patches_not_written_as_a_literal_block_are_refused(scalar: str, why: str) -> None:
    text = f"patches:\n  - patch: {scalar}\n"
    with pytest.raises(EditError, match=why):
        edit_inline(text, ("patches", 0, "patch"), lambda b: b + "b: 2\n")


# ---------------------------------------------------------------------- plan -> write -> build


def test_strategic_merge_patch_in_patches_is_fixed_inside_the_kustomization(repo: Path) -> None:
    finding = overlay_finding("C-0016", STAGING, "payments-staging", "api", "api")
    cs = only_change_set(plan_of(repo, finding))
    assert [c.path for c in cs.files] == [f"{STAGING}/kustomization.yaml"]
    assert changed_lines(cs.files[0].before or "", cs.files[0].after) == [
        (
            "                  allowPrivilegeEscalation: true  # left over from debugging the "
            "2.3 release\n",
            "                  allowPrivilegeEscalation: false  # left over from debugging the "
            "2.3 release\n",
        )
    ]
    assert cs.meta[OVERLAYS_META] == STAGING
    assert cs.meta[INLINE_META] == f"{STAGING}/kustomization.yaml: patches[0] edited"
    write_and_build(repo, cs, finding, STAGING)


def test_container_an_inline_json_patch_adds_is_fixed_in_the_operation_value(repo: Path) -> None:
    finding = overlay_finding("C-0016", STAGING, "payments-staging", "worker", "log-shipper")
    cs = only_change_set(plan_of(repo, finding))
    assert [c.path for c in cs.files] == [f"{STAGING}/kustomization.yaml"]
    ((old, new),) = changed_lines(cs.files[0].before or "", cs.files[0].after)
    assert old == ""
    assert new == "          securityContext:\n            allowPrivilegeEscalation: false\n"
    assert cs.meta[INLINE_META] == f"{STAGING}/kustomization.yaml: patches[1] edited"
    write_and_build(repo, cs, finding, STAGING)


def test_patches_json6902_block_keeps_its_comment_and_clip_chomping(repo: Path) -> None:
    finding = overlay_finding("C-0057", PRODUCTION, "payments", "worker", "worker")
    cs = only_change_set(plan_of(repo, finding))
    (change,) = cs.files
    assert change.path == f"{PRODUCTION}/kustomization.yaml"
    assert changed_lines(change.before or "", change.after) == [
        ("          privileged: true\n", "          privileged: false\n")
    ]
    assert "# set during the 2.3 incident; review with the platform team" in change.after
    assert cs.meta[INLINE_META] == f"{PRODUCTION}/kustomization.yaml: patchesJson6902[0] edited"
    write_and_build(repo, cs, finding, PRODUCTION)


def test_patches_strategic_merge_string_is_fixed_in_place(repo: Path) -> None:
    finding = overlay_finding("C-0034", PRODUCTION, "payments", "api", None)
    cs = only_change_set(plan_of(repo, finding))
    (change,) = cs.files
    assert changed_lines(change.before or "", change.after) == [
        (
            "          automountServiceAccountToken: true\n",
            "          automountServiceAccountToken: false\n",
        )
    ]
    assert cs.meta[OVERLAYS_META] == PRODUCTION
    fixed = write_and_build(repo, cs, finding, PRODUCTION)
    assert fixed["spec"]["replicas"] == 3  # the rest of the inline patch still applies


def test_new_patch_in_an_overlay_writing_its_patches_inline_is_inline(repo: Path) -> None:
    """Production's inline patch mounts the token; staging's fix cannot go to the base (it
    would not reach production alike): a new patch in staging, inline as staging writes its
    patches, appended after the others."""
    finding = overlay_finding("C-0034", STAGING, "payments-staging", "api", None)
    cs = only_change_set(plan_of(repo, finding))
    (change,) = cs.files
    assert change.path == f"{STAGING}/kustomization.yaml"
    before = change.before or ""
    assert change.after.startswith(before)  # appended: every existing byte stays
    kust = load_documents(change.after)[0]
    assert kust["patches"][:2] == load_documents(before)[0]["patches"]
    new = kust["patches"][2]
    assert new["target"] == {"kind": "Deployment", "name": "api"}
    patch = load_documents(new["patch"])[0]
    assert patch["spec"] == {"template": {"spec": {"automountServiceAccountToken": False}}}
    assert "    patch: |-\n      # kube-remedy: fields only the overlays/staging" in change.after
    assert cs.meta[INLINE_META] == f"{STAGING}/kustomization.yaml: patches[2] new"
    write_and_build(repo, cs, finding, STAGING)


def test_second_write_for_the_resource_joins_the_inline_patch_it_added(repo: Path) -> None:
    """Production patches replicas and the token mount: two staging edits of those fields in one
    change set make one new inline patch, not two (kustomize would apply both, but a reviewer
    reads one)."""
    finding = overlay_finding("C-0034", STAGING, "payments-staging", "api", None)
    target = locate_kustomize(finding, KustomizeIndex.build(repo))
    assert isinstance(target, KustomizeTarget)
    overlay = FileOverlay(repo)
    pod = ("spec", "template", "spec")
    target.write([Set((*pod, "automountServiceAccountToken"), False)], overlay)
    target.write([Set(("spec", "replicas"), 2)], overlay)
    (change,) = overlay.changes()
    assert change.after.count("kube-remedy: fields only") == 1
    patches = load_documents(change.after)[0]["patches"]
    assert len(patches) == 3
    assert load_documents(patches[2]["patch"])[0]["spec"] == {
        "template": {"spec": {"automountServiceAccountToken": False}},
        "replicas": 2,
    }


def test_plan_table_names_the_inline_patch(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    repo = engine_repo(PAYMENTS, "reader", tmp_path, monkeypatch)
    report = tmp_path / "report.json"
    report.write_text(
        json.dumps(
            {
                "check_type": "kubernetes",
                "results": {
                    "failed_checks": [
                        {
                            "check_id": "CKV_K8S_20",
                            "check_name": "Containers should not run with allowPrivilegeEscalation",
                            "file_path": "/overlays/staging/rendered.yaml",
                            "resource": "Deployment.payments-staging.api",
                        }
                    ]
                },
            }
        )
    )
    screen = io.StringIO()
    monkeypatch.setattr(cli, "console", Console(file=screen, width=200, highlight=False))
    cli.main(["plan", "--report", str(report), "--repo", str(repo)])
    text = screen.getvalue()
    assert "changes overlays: overlays/staging" in text
    assert "inline patches: overlays/staging/kustomization.yaml: patches[0] edited" in text


def test_a_kustomization_with_windows_line_breaks_keeps_them() -> None:
    text = (
        "patches:\r\n  - patch: |-\r\n      a:\r\n        b: 1\r\n    target:\r\n      kind: X\r\n"
    )
    edited = edit_inline(
        text, ("patches", 0, "patch"), lambda body: apply_edits(body, [Set(("a", "c"), 2)])
    )
    assert edited == text.replace("b: 1\r\n", "b: 1\r\n        c: 2\r\n")


def test_new_inline_patch_starts_a_patches_list_beside_the_deprecated_ones(repo: Path) -> None:
    """Production writes its patches inline in patchesStrategicMerge and patchesJson6902:
    staging's escalation patch keeps the field out of the base, so production gets an inline
    patch in a new ``patches`` list, appended after every existing byte."""
    finding = overlay_finding("C-0016", PRODUCTION, "payments", "api", "api")
    cs = only_change_set(plan_of(repo, finding))
    (change,) = cs.files
    assert change.path == f"{PRODUCTION}/kustomization.yaml"
    assert change.after.startswith(change.before or "")
    assert cs.meta[INLINE_META] == f"{PRODUCTION}/kustomization.yaml: patches[0] new"
    write_and_build(repo, cs, finding, PRODUCTION)
