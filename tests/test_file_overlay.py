"""`FileOverlay` reading shared by the overlays of one plan, the texts it adopts held as deltas,
and manifest targets that hold no parsed document (a big report keeps a target per workload
for the whole plan)."""

from __future__ import annotations

from pathlib import Path

import pytest

from bot.locate.base import FileOverlay
from bot.locate.manifest import ManifestIndex, ManifestTarget
from bot.model import FileChange, TextDelta

POD = """apiVersion: v1
kind: Pod
metadata:
  name: web
spec:
  containers:
  - name: web
    image: nginx:1.25
"""


def test_overlays_sharing_originals_read_each_file_once(tmp_path: Path) -> None:
    (tmp_path / "pod.yaml").write_text(POD)
    originals: dict[str, str | None] = {}
    first = FileOverlay(tmp_path, originals=originals)
    assert first.read("pod.yaml") == POD
    (tmp_path / "pod.yaml").write_text("changed on disk\n")
    second = FileOverlay(tmp_path, originals=originals)
    assert second.read("pod.yaml") is first.read("pod.yaml")  # one copy of the text
    assert second.fork().read("absent.yaml") is None
    assert originals == {"pod.yaml": POD, "absent.yaml": None}
    assert not first._before and not second._before  # no texts of their own
    assert FileOverlay(tmp_path).read("pod.yaml") == "changed on disk\n"  # unshared: reads


def test_shared_original_is_the_before_of_each_change(tmp_path: Path) -> None:
    (tmp_path / "pod.yaml").write_text(POD)
    originals: dict[str, str | None] = {}
    for image in ("nginx:1.26", "nginx:1.27"):
        overlay = FileOverlay(tmp_path, originals=originals)
        trial = overlay.fork()
        trial.write("pod.yaml", POD.replace("nginx:1.25", image))
        overlay.adopt(trial)
        (change,) = overlay.changes()
        assert change.before == POD and image in change.after


def test_manifest_target_reads_its_view_when_asked(tmp_path: Path) -> None:
    (tmp_path / "pod.yaml").write_text(POD)
    index = ManifestIndex.build(tmp_path)
    target = index.target(index.documents[0])
    assert isinstance(target, ManifestTarget)
    assert "view" not in vars(target)  # nothing parsed is held
    assert [c.name for c in target.view.containers] == ["web"]
    (tmp_path / "pod.yaml").write_text(POD.replace("name: web\n    image", "name: app\n    image"))
    assert [c.name for c in target.view.containers] == ["app"]  # the repository as it is


def test_manifest_target_rereads_one_view_per_text(tmp_path: Path) -> None:
    (tmp_path / "pod.yaml").write_text(POD)
    index = ManifestIndex.build(tmp_path)
    target = index.target(index.documents[0])
    assert isinstance(target, ManifestTarget)
    overlay = FileOverlay(tmp_path)
    first = target.reread(overlay)
    assert target.reread(overlay.fork()) is first  # the same text: the same view
    overlay.write("pod.yaml", POD.replace("nginx:1.25", "nginx:1.27"))
    edited = target.reread(overlay)
    assert not isinstance(edited, str) and edited is not first
    assert edited.containers[0].get("image") == "nginx:1.27"
    overlay.write("pod.yaml", "kind: ConfigMap\nmetadata:\n  name: web\n")
    assert "is not a workload" in str(target.reread(overlay))


def test_adopted_texts_are_held_as_deltas_against_the_checkout(tmp_path: Path) -> None:
    (tmp_path / "pod.yaml").write_text(POD)
    (tmp_path / "same.yaml").write_text("a: 1\n")
    overlay = FileOverlay(tmp_path, originals={})
    trial = overlay.fork()
    edited = POD.replace("image: nginx:1.25", "image: nginx:1.25\n    securityContext: {}")
    trial.write("pod.yaml", edited)
    trial.write("new.yaml", "kind: NetworkPolicy\n")
    trial.write("same.yaml", "a: 1\n")  # written as it was: no change
    overlay.adopt(trial)
    assert isinstance(overlay._after["pod.yaml"], TextDelta)
    assert overlay.read("pod.yaml") == edited and overlay.fork().read("pod.yaml") == edited
    changes = overlay.changes()
    assert [(c.path, c.is_new) for c in changes] == [("new.yaml", True), ("pod.yaml", False)]
    assert changes[1] == FileChange("pod.yaml", POD, edited)
    assert changes[0].after == "kind: NetworkPolicy\n"


@pytest.mark.parametrize(
    ("before", "after"),
    [
        ("", ""),
        ("", "a: 1\n"),
        ("a: 1\n", ""),
        ("a: 1\n", "a: 1\n"),
        ("a: 1\nb: 2\n", "a: 1\nc: 3\nb: 2\n"),
        ("aaaa", "aa"),  # a head and a tail that would overlap
        ("x: 1\r\n", "x: 2\r\n"),
        ("name: é\n", "name: \ud800é\n"),  # a lone surrogate from a YAML escape
        ("line\n" * 20000, "head\n" + "line\n" * 9000 + "new\n" + "line\n" * 11000 + "tail\n"),
    ],
)
def test_text_delta_gives_back_the_text(before: str, after: str) -> None:
    delta = TextDelta.between(before, after)
    assert delta.apply(before) == after
    assert FileChange("f.yaml", before, delta) == FileChange("f.yaml", before, after)
    assert len(delta.middle) < len(after) // 4 + 16  # most of it is the base's


def test_overlays_of_a_plan_ask_once_whether_a_path_is_a_link(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from bot.errors import RepositoryError
    from bot.locate import base

    (tmp_path / "real").mkdir()
    (tmp_path / "real" / "pod.yaml").write_text(POD)
    (tmp_path / "linked").symlink_to("real")
    asked: list[str] = []
    real = base.through_link
    monkeypatch.setattr(
        base, "through_link", lambda root, relpath: asked.append(relpath) or real(root, relpath)
    )
    links: dict[str, bool] = {}
    for _ in range(3):  # one overlay per change set, each forked for its trials
        trial = FileOverlay(tmp_path, originals={}, links=links).fork()
        trial.write("real/pod.yaml", POD + "# edited\n")
        with pytest.raises(RepositoryError, match="symlink"):
            trial.write("linked/pod.yaml", POD + "# edited\n")
    assert asked == ["real/pod.yaml", "linked/pod.yaml"]
    assert links == {"real/pod.yaml": False, "linked/pod.yaml": True}
    unshared = FileOverlay(tmp_path)
    unshared.write("real/pod.yaml", POD)
    unshared.write("real/pod.yaml", POD)
    assert asked[2:] == ["real/pod.yaml", "real/pod.yaml"]  # without a plan: asked each time
