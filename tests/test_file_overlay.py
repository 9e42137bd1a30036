"""`FileOverlay` reading shared by the overlays of one plan, and manifest targets that hold no
parsed document (a big report keeps a target per workload for the whole plan)."""

from __future__ import annotations

from pathlib import Path

from bot.locate.base import FileOverlay
from bot.locate.manifest import ManifestIndex, ManifestTarget

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
