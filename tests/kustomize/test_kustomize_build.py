"""The kustomize reader: rendered resources traced to their base document and patches, and
its output beside ``kubectl kustomize``'s on the corpus."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest

from bot.locate.base import FileOverlay
from bot.locate.kustomize_build import (
    KustomizeError,
    KustomizeReader,
    is_component,
    kustomization_dirs,
    logical_path,
)
from fixers.edits import load_documents
from fixers.view import POD_SPEC_PATHS, lookup
from tests.conftest import corpus_path

SHOP = Path(__file__).parent / "repos" / "shop"
APP = ("spec", "template", "spec", "containers", "[name=app]")


def production_web() -> Any:
    (web,) = KustomizeReader(FileOverlay(SHOP)).build("overlays/production")
    return web


def test_rendered_resource_remembers_its_base_document() -> None:
    web = production_web()
    assert (web.origin, web.index, web.namespace) == ("base/deployment.yaml", 0, "production")
    assert web.names == ["web"]


def test_field_set_by_a_strategic_merge_patch_is_traced_to_it() -> None:
    touch = production_web().source_of((*APP, "securityContext", "allowPrivilegeEscalation"))
    assert touch is not None
    assert touch.source.file == "overlays/production/debug.yaml"
    # the base has no securityContext: the patch wrote the whole mapping
    assert touch.path == (*APP, "securityContext")
    assert touch.where == ("spec", "template", "spec", "containers", 0, "securityContext")


def test_container_added_by_a_json_patch_is_traced_to_the_operation_value() -> None:
    web = production_web()
    proxy = ("spec", "template", "spec", "containers", "[name=proxy]")
    touch = web.source_of((*proxy, "securityContext", "runAsNonRoot"))
    assert touch is not None
    assert (touch.source.file, touch.source.kind, touch.where) == (
        "overlays/production/sidecar.yaml",
        "json6902",
        (0, "value"),
    )
    assert logical_path(web.doc, ("spec", "template", "spec", "containers", 1)) == proxy


def test_field_no_patch_sets_comes_from_the_base() -> None:
    assert production_web().source_of((*APP, "image")) is None


def test_remote_resources_are_refused_without_fetching(tmp_path: Path) -> None:
    (tmp_path / "kustomization.yaml").write_text(
        "resources:\n  - https://github.com/example/repo//deploy?ref=main\n"
    )
    with pytest.raises(KustomizeError, match="remote resource"):
        KustomizeReader(FileOverlay(tmp_path)).build("")


def test_paths_leaving_the_repository_are_refused(tmp_path: Path) -> None:
    (tmp_path / "kustomization.yaml").write_text("resources:\n  - ../../etc/passwd\n")
    with pytest.raises(KustomizeError, match="leaves the repository"):
        KustomizeReader(FileOverlay(tmp_path)).build("")


def test_replacement_options_the_reader_does_not_know_leave_the_build_to_kubectl(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from bot.locate.kustomize import Engine

    shutil.copytree(SHOP / "base", tmp_path / "base")
    with (tmp_path / "base" / "kustomization.yaml").open("a") as fh:
        fh.write(
            "replacements:\n  - source:\n      kind: Deployment\n      name: web\n"
            "    targets:\n      - select:\n          kind: Deployment\n"
            "        fieldPaths:\n          - metadata.annotations.owner\n"
            "        options:\n          encoding: base64\n"
        )
    monkeypatch.setenv("REMEDY_KUSTOMIZE_ENGINE", "reader")
    built = Engine(tmp_path).build("base", FileOverlay(tmp_path))
    assert isinstance(built, str) and "reader cannot trace Deployment web metadata" in built


def _pod_spec(doc: dict[str, Any]) -> dict[str, Any]:
    spec = dict(lookup(doc, POD_SPEC_PATHS[doc["kind"]]))
    spec.pop("volumes", None)  # generated ConfigMap names carry kubectl's hash
    for key in ("containers", "initContainers"):
        if key in spec:
            items = [{k: v for k, v in c.items() if k not in ("env", "envFrom")} for c in spec[key]]
            spec[key] = sorted(items, key=lambda c: c["name"])
    return spec


@pytest.mark.corpus
@pytest.mark.slow
@pytest.mark.parametrize("name", ["kustomize-examples", "bank-of-anthos"])
def test_reader_renders_pod_specs_as_kubectl_does(name: str) -> None:
    """Every workload of every overlay: same pod spec as ``kubectl kustomize`` (container order
    aside; env and volumes aside, where kubectl hashes generated ConfigMap names)."""
    if shutil.which("kubectl") is None:
        pytest.skip("kubectl is not installed")
    root = corpus_path("kustomize", name)
    reader = KustomizeReader(FileOverlay(root))
    compared = 0
    for folder in kustomization_dirs(root):
        if is_component(reader, folder):
            continue
        mine = {(r.kind, r.name, r.namespace): r.doc for r in reader.build(folder)}
        proc = subprocess.run(
            ["kubectl", "kustomize", str(root / folder)],
            capture_output=True,
            text=True,
            check=True,
            timeout=60,
        )
        for doc in load_documents(proc.stdout):
            if not isinstance(doc, dict) or doc.get("kind") not in POD_SPEC_PATHS:
                continue
            meta = doc["metadata"]
            key = (doc["kind"], meta["name"], meta.get("namespace"))
            assert key in mine, (folder, key)
            assert _pod_spec(mine[key]) == _pod_spec(doc), (folder, key)
            compared += 1
    assert compared >= 18


def test_engine_copy_drops_links_leaving_the_repository(tmp_path: Path) -> None:
    from bot.locate.kustomize import _drop_escaping_links

    repo = tmp_path / "repo"
    repo.mkdir()
    (repo / "inside.yaml").write_text("a: 1\n")
    (repo / "ok.yaml").symlink_to("inside.yaml")
    (repo / "secret.env").symlink_to("/etc/hostname")
    _drop_escaping_links(repo)
    assert (repo / "ok.yaml").is_symlink()
    assert not (repo / "secret.env").exists() and not (repo / "secret.env").is_symlink()


def test_json6902_patches_apply_after_names_and_patches_as_in_kustomize(tmp_path: Path) -> None:
    """kustomize runs patchesJson6902 after ``patches`` and ``namePrefix``: its target names
    the renamed resource, and its value wins over a ``patches`` entry's."""
    shutil.copytree(SHOP / "base", tmp_path / "base")
    (tmp_path / "kustomization.yaml").write_text(
        "resources:\n  - base\nnamePrefix: eu-\n"
        "patchesJson6902:\n  - target: {group: apps, version: v1, kind: Deployment, name: eu-web}\n"
        "    patch: |-\n      - op: replace\n        path: /spec/replicas\n        value: 7\n"
        "patches:\n  - target: {kind: Deployment, name: web}\n"
        "    patch: |-\n      - op: replace\n        path: /spec/replicas\n        value: 5\n"
    )
    (web,) = KustomizeReader(FileOverlay(tmp_path)).build("")
    assert (web.name, web.doc["spec"]["replicas"]) == ("eu-web", 7)
    touch = web.source_of(("spec", "replicas"))
    assert touch is not None and touch.source.key == ("patchesJson6902", 0, "patch")
    if shutil.which("kubectl") is not None:
        proc = subprocess.run(
            ["kubectl", "kustomize", str(tmp_path)],
            capture_output=True,
            text=True,
            check=True,
            timeout=60,
        )
        assert load_documents(proc.stdout) == [web.doc]


@pytest.mark.parametrize(
    "text",
    [
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: a\n---\napiVersion: v1\nkind: Secret\n",
        "kind: ConfigMap\ndata:\n  script: |\n    ---\n    echo hi\n---\nkind: Service\n",
        "---\nkind: A\n---\n---\nkind: B\n",
        "kind: A\n...\n---\nkind: B\n",
        "kind: A\nx: &a 1\ny: *a\n---\nkind: B\n",
        "kind: A\nx: &a {k: v}\n---\nkind: B\ny: &a [1]\nz: *a\n",
        "kind: Pod\ncommand: [sh, -c, 'cp a b && ln -s b c']\n---\nkind: B\n",
        "",
    ],
    ids=[
        "two",
        "indented-marker",
        "empty-documents",
        "end-marker",
        "anchor",
        "anchor-named-again",
        "ampersand",
        "empty",
    ],
)
def test_kubectl_output_is_read_per_document_as_a_whole_parse_reads_it(text: str) -> None:
    """``kubectl kustomize`` prints every document again after each edit; each distinct
    document text is parsed once, with the same objects as parsing the whole output."""
    from bot.locate.kustomize import _output_documents

    def objects(docs: list[Any]) -> list[Any]:
        return [d for d in docs if isinstance(d, dict)]  # what the engine keeps

    assert objects(_output_documents(text)) == objects(load_documents(text))
    assert objects(_output_documents(text)) == objects(load_documents(text))  # from the memo
