"""Adding a control is a module, its template and its cases: a throwaway fixer in a package of
its own, registered under the ``kube_remedy.fixers`` entry point group and edited nowhere else,
is planned, explained and listed like a built-in one.

Its control, C-0196, is one the catalog calls "not fixable in git" (cluster-config): the
registry, not the catalog, decides what is fixable.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from bot.cli import main
from bot.plan import build_plan
from bot.render import describe_change_set
from bot.sources.base import Report
from fixers import registry
from fixers.edits import load_documents
from tests.fixers._support import check_case, load_cases
from tests.test_verify import DEPLOYMENT as BEFORE
from tests.test_verify import finding

PACKAGE = "remedy_throwaway"
CONTROL = "C-0196"
FIXER = "explicit_host_network_off"

MODULE = '''"""Say in the manifest that the pod stays off the node's network (C-0196).

Kubernetes field: ``spec.hostNetwork``
(https://kubernetes.io/docs/concepts/security/pod-security-standards/#baseline).
"""

from fixers.base import Fixer
from fixers.model import AlreadyCompliant, Fixed, NeedsHuman, Risk, Set


class ExplicitHostNetworkOff(Fixer):
    """Write ``hostNetwork: false`` where the pod leaves it unset."""

    controls = ("C-0196",)
    risk = Risk.LOW
    family = "host-namespaces"

    def plan(self, view, finding, ctx):
        value = view.get("hostNetwork")
        if value is False:
            return AlreadyCompliant("the pod says hostNetwork: false")
        if value is True:
            return NeedsHuman("the pod uses the node's network; fix C-0041 first")
        return Fixed((Set(view.path("hostNetwork"), False),), notes=("hostNetwork: false written",))
'''

TEMPLATE = """**Host network written off** ({{ fixer.controls | join(", ") }}).

A throwaway explanation: the pod now says it stays off the node's network.
{% macro how_to_test() %}Check the pod still starts.{% endmacro %}
"""

AFTER = BEFORE + "      hostNetwork: false\n"


def _write_cases(root: Path) -> Path:
    finding = json.dumps(
        {
            "control_id": CONTROL,
            "resource": {"kind": "Deployment", "name": "web", "namespace": "shop"},
        }
    )
    outcomes = {
        "unset": {"before.yaml": BEFORE, "after.yaml": AFTER},
        "already-false": {"before.yaml": AFTER},
        "on-host-network": {
            "before.yaml": AFTER.replace("hostNetwork: false", "hostNetwork: true"),
            "reason.txt": "fix C-0041 first",
        },
    }
    for situation, files in outcomes.items():
        folder = root / FIXER / situation
        folder.mkdir(parents=True)
        (folder / "finding.json").write_text(finding)
        for name, text in files.items():
            (folder / name).write_text(text)
    return root


@pytest.fixture
def plugin(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """The throwaway package on ``sys.path`` with its entry point; yields its cases folder."""
    site = tmp_path / "site"
    package = site / PACKAGE
    (package / "rules").mkdir(parents=True)
    (package / "templates").mkdir()
    (package / "__init__.py").write_text("")
    (package / "rules" / "__init__.py").write_text("")
    (package / "rules" / f"{FIXER}.py").write_text(MODULE)
    (package / "templates" / f"{FIXER}.md.j2").write_text(TEMPLATE)
    dist = site / f"{PACKAGE}-0.1.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {PACKAGE}\nVersion: 0.1\n")
    (dist / "entry_points.txt").write_text(
        f"[{registry.ENTRY_POINT_GROUP}]\nthrowaway = {PACKAGE}.rules\n"
    )
    cases = _write_cases(tmp_path / "cases")
    monkeypatch.syspath_prepend(str(site))
    registry.forget()
    yield cases
    registry.forget()
    for name in [m for m in sys.modules if m == PACKAGE or m.startswith(PACKAGE + ".")]:
        del sys.modules[name]


def _repo(tmp_path: Path) -> Path:
    repo = tmp_path / "cd-config"
    repo.mkdir()
    (repo / "web.yaml").write_text(BEFORE)
    return repo


def _report() -> Report:
    return Report(scanner="test", origin="test", findings=(finding(CONTROL),))


def test_without_the_plugin_the_catalog_reason_stands(tmp_path: Path) -> None:
    registry.forget()
    plan = build_plan(_report(), _repo(tmp_path))
    assert plan.change_sets == ()
    assert [(u.finding.control_id, u.category) for u in plan.unfixable] == [
        (CONTROL, "cluster-config")
    ]


def test_its_cases_pass(plugin: Path) -> None:
    cases = load_cases(plugin)
    assert [c.situation for c in cases] == ["already-false", "on-host-network", "unset"]
    for case in cases:
        check_case(case)


def test_it_is_planned_and_explained_in_the_merge_request(plugin: Path, tmp_path: Path) -> None:
    fixer = registry.fixer_for(CONTROL)
    assert fixer is not None and fixer.name == FIXER
    plan = build_plan(_report(), _repo(tmp_path))
    assert plan.unfixable == ()
    [change_set] = plan.change_sets
    assert change_set.controls == (CONTROL,)
    assert [f.path for f in change_set.files] == ["web.yaml"]
    assert change_set.files[0].after == AFTER
    assert (
        load_documents(change_set.files[0].after)[0]["spec"]["template"]["spec"]["hostNetwork"]
        is False
    )
    body = describe_change_set(change_set, marker="<!-- kube-remedy:test -->")
    assert "Host network written off" in body
    assert "Check the pod still starts." in body


def test_remedy_explain_and_controls_name_it(
    plugin: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["explain", CONTROL]) == 0
    explained = capsys.readouterr().out
    assert FIXER in explained and "Not fixed in git" not in explained
    assert "Risk. low" in explained
    assert main(["controls"]) == 0
    listed = [line for line in capsys.readouterr().out.splitlines() if CONTROL in line]
    assert len(listed) == 1 and FIXER in listed[0] and "cluster-config" not in listed[0]


@pytest.mark.parametrize(
    ("target", "message"),
    [("remedy_missing.rules", "cannot be imported"), ("textwrap", "is a module, not a package")],
)
def test_a_bad_entry_point_is_a_clear_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, target: str, message: str
) -> None:
    dist = tmp_path / "remedy_broken-0.1.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: remedy_broken\nVersion: 0.1\n")
    (dist / "entry_points.txt").write_text(f"[{registry.ENTRY_POINT_GROUP}]\nbroken = {target}\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    registry.forget()
    try:
        with pytest.raises(registry.BadRulesPackage, match=message):
            registry.all_fixers()
    finally:
        registry.forget()


def test_a_fixer_named_like_a_built_in_one_is_refused(plugin: Path) -> None:
    """A name is a template, a change-set branch suffix and a test-case folder: one fixer each."""
    rules = plugin.parent / "site" / PACKAGE / "rules"
    (rules / "host_network.py").write_text(
        (rules / f"{FIXER}.py").read_text().replace("ExplicitHostNetworkOff", "HostNetwork")
    )
    (rules / f"{FIXER}.py").unlink()
    registry.forget()
    with pytest.raises(
        registry.DuplicateFixerName,
        match=r"named host_network: fixers\.rules\.host_network and remedy_throwaway",
    ):
        registry.all_fixers()
