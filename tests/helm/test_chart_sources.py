"""Chart caches: which cached chart a remote reference resolves to, and why none."""

from __future__ import annotations

import io
import tarfile
from pathlib import Path

import pytest

from bot.locate.chart_sources import ChartCache, ChartRef, helm_cache_dir
from tests.helm.chart_cache import cached_worker

SHOP = "https://charts.example.com/shop"


@pytest.fixture
def cache(tmp_path: Path) -> Path:
    """Four versions of the worker chart: two archives, two untarred directories."""
    folder = tmp_path / "cache"
    cached_worker(folder, "0.2.0", archive=True)
    cached_worker(folder, "0.3.0", archive=False)
    cached_worker(folder, "0.4.0-rc.1", archive=True)
    cached_worker(folder, "1.0.0", archive=False)
    return folder


@pytest.mark.parametrize(
    ("constraint", "version", "origin"),
    [
        ("", "1.0.0", "worker-1.0.0/worker"),
        ("<1.0.0", "0.3.0", "worker-0.3.0/worker"),
        ("~0.2", "0.2.0", "worker-0.2.0.tgz"),
        ("0.2.0", "0.2.0", "worker-0.2.0.tgz"),
        ("~0.4.0-rc.0", "0.4.0-rc.1", "worker-0.4.0-rc.1.tgz"),
        ("^0.3 || ^0.2", "0.3.0", "worker-0.3.0/worker"),
    ],
)
def test_highest_cached_version_the_constraint_admits(
    cache: Path, constraint: str, version: str, origin: str
) -> None:
    resolved = ChartCache([cache]).resolve(ChartRef("worker", SHOP, constraint))
    assert not isinstance(resolved, str), resolved
    assert (resolved.version, resolved.origin) == (version, origin)
    meta = (resolved.directory / "Chart.yaml").read_text()
    assert f"version: {version}" in meta
    assert (resolved.directory / "templates" / "deployment.yaml").is_file()
    assert resolved.label == f"worker --repo {SHOP}"
    assert resolved.pinned_label == f"worker --repo {SHOP} --version {version}"


def test_not_cached_says_what_the_cache_holds_and_how_to_add_it(cache: Path) -> None:
    reason = ChartCache([cache]).resolve(ChartRef("worker", SHOP, ">=2.0.0"))
    assert reason == (
        f"chart worker (>=2.0.0) from {SHOP} is not in the chart cache (it holds 0.2.0, "
        "0.3.0, 0.4.0-rc.1, 1.0.0); add it with "
        f"`helm pull worker --repo {SHOP} --version '>=2.0.0' --untar -d DIR` "
        "and pass --charts DIR"
    )
    other = ChartCache([cache]).resolve(ChartRef("api", "oci://ghcr.io/shop/charts", "1.x"))
    assert other == (
        "chart api (1.x) from oci://ghcr.io/shop/charts is not in the chart cache; add it "
        "with `helm pull oci://ghcr.io/shop/charts/api --version 1.x --untar -d DIR` and "
        "pass --charts DIR"
    )


def test_no_cache_configured(tmp_path: Path) -> None:
    reason = ChartCache([]).resolve(ChartRef("worker", SHOP))
    assert isinstance(reason, str)
    assert reason.startswith(f"chart worker (any version) from {SHOP} is not in this repository")
    assert "no chart cache is configured" in reason


def test_invalid_constraint_and_digest_pins(cache: Path) -> None:
    charts = ChartCache([cache])
    assert "the version constraint is not valid" in str(
        charts.resolve(ChartRef("worker", SHOP, ">=one"))
    )
    pinned = ChartRef("worker", "oci://ghcr.io/shop", unusable="OCIRepository w pins sha256:ab")
    assert charts.resolve(pinned) == (
        "chart worker (any version) from oci://ghcr.io/shop is not rendered: "
        "OCIRepository w pins sha256:ab"
    )


def _index(folder: Path, repo: str, version: str, url: str) -> None:
    (folder / f"{repo}-index.yaml").write_text(
        f"apiVersion: v1\nentries:\n  worker:\n  - name: worker\n    version: {version}\n"
        f"    urls: [{url}]\n"
    )


def test_helm_cache_index_files_tell_repositories_apart(tmp_path: Path) -> None:
    """Helm's cache keeps archives of every repository side by side: a version its index
    files list only for another repository is another chart of the same name."""
    home = tmp_path / "helm-cache"
    folder = home / "repository"
    cached_worker(folder, "0.4.0", archive=True)
    cached_worker(folder, "1.0.0", archive=True)
    _index(folder, "shop", "0.4.0", "worker-0.4.0.tgz")  # relative: repositories.yaml names it
    _index(folder, "other", "1.0.0", "https://elsewhere.example.com/worker-1.0.0.tgz")
    config = tmp_path / "helm-config"
    config.mkdir()
    (config / "repositories.yaml").write_text(
        f"apiVersion: ''\nrepositories:\n- name: shop\n  url: {SHOP}/\n"
    )
    env = {"HELM_CACHE_HOME": str(home), "HELM_CONFIG_HOME": str(config)}
    assert helm_cache_dir(env) == folder
    charts = ChartCache.configured([], environ=env)
    assert charts.dirs == (folder,)
    resolved = charts.resolve(ChartRef("worker", SHOP))
    assert not isinstance(resolved, str) and resolved.version == "0.4.0"
    elsewhere = charts.resolve(ChartRef("worker", "https://elsewhere.example.com"))
    assert not isinstance(elsewhere, str) and elsewhere.version == "1.0.0"
    unknown = charts.resolve(ChartRef("worker", "", via="HelmRepository shop"))
    assert not isinstance(unknown, str) and unknown.version == "1.0.0"


def test_configured_dirs_come_before_helms_cache(tmp_path: Path, cache: Path) -> None:
    env = {"HELM_CACHE_HOME": str(tmp_path / "absent")}
    assert ChartCache.configured([cache], environ=env).dirs == (cache,)


def _archive(path: Path, members: list[tarfile.TarInfo]) -> None:
    with tarfile.open(path, "w:gz") as tar:
        for member in members:
            data = b"apiVersion: v2\nname: worker\nversion: 9.0.0\n" if member.isfile() else b""
            member.size = len(data)
            tar.addfile(member, io.BytesIO(data) if member.isfile() else None)


@pytest.mark.parametrize(
    ("member", "why"),
    [
        (tarfile.TarInfo("worker/../../escape.yaml"), "leaves the chart"),
        ("link", "is a link or a device"),
    ],
)
def test_archives_that_would_write_outside_are_refused(
    tmp_path: Path, member: tarfile.TarInfo | str, why: str
) -> None:
    chart = tarfile.TarInfo("worker/Chart.yaml")
    if member == "link":
        member = tarfile.TarInfo("worker/templates/x.yaml")
        member.type, member.linkname = tarfile.SYMTYPE, "/etc/passwd"
    assert isinstance(member, tarfile.TarInfo)
    _archive(tmp_path / "worker-9.0.0.tgz", [chart, member])
    reason = ChartCache([tmp_path]).resolve(ChartRef("worker", SHOP))
    assert isinstance(reason, str) and why in reason
    assert "the cached worker-9.0.0.tgz cannot be used" in reason
    assert not (tmp_path.parent / "escape.yaml").exists()


def test_chart_files_must_be_in_the_chart(cache: Path) -> None:
    ref = ChartRef("worker", SHOP, "1.0.0", chart_files=("values-prod.yaml",))
    assert not isinstance(ChartCache([cache]).resolve(ref), str)
    escape = ChartRef("worker", SHOP, "1.0.0", chart_files=("../../etc/passwd",))
    assert "values file ../../etc/passwd is not in the chart" in str(
        ChartCache([cache]).resolve(escape)
    )


@pytest.mark.parametrize(
    "ref",
    [
        ChartRef("../worker", SHOP),
        ChartRef("charts/worker", SHOP),
        ChartRef("worker", "https://charts.example.com/../../etc"),
    ],
)
def test_references_that_read_as_paths_are_refused(cache: Path, ref: ChartRef) -> None:
    reason = ChartCache([cache]).resolve(ref)
    assert isinstance(reason, str) and "not a plain chart name and repository URL" in reason
