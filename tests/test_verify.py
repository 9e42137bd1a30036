"""Verification rejects edits that break the Kubernetes schema; real manifests stay valid."""

from __future__ import annotations

import copy
import random
import shutil
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from bot import verify
from bot.errors import ConfigError
from bot.locate.base import FileOverlay, Target
from bot.plan import Locator, build_plan
from bot.sources import load_report
from bot.sources.base import Report
from bot.verify import schema_problem
from fixers.edits import EditError, load_documents
from fixers.model import AnyEdit, Finding, ResourceRef, Severity, SourceHint
from tests.conftest import corpus_path

DEPLOYMENT = """\
apiVersion: apps/v1
kind: Deployment
metadata:
  name: web
  namespace: shop
spec:
  selector:
    matchLabels: {app: web}
  template:
    metadata:
      labels: {app: web}
    spec:
      containers:
        - name: web
          image: nginx:1.27
"""


def finding(control: str = "C-0016") -> Finding:
    return Finding(
        control_id=control,
        scanner="test",
        scanner_ids=(control,),
        severity=Severity.HIGH,
        resource=ResourceRef(
            api_version="apps/v1", kind="Deployment", namespace="shop", name="web"
        ),
        container="web",
        source=SourceHint(path="web.yaml"),
    )


@dataclass
class BoolAsString:
    """A target that writes the fixer's edits, then spoils them: a string where a bool goes."""

    inner: Any

    @property
    def location(self):  # type: ignore[no-untyped-def]
        return self.inner.location

    @property
    def view(self):  # type: ignore[no-untyped-def]
        return self.inner.view

    def write(self, edits: list[AnyEdit], overlay: FileOverlay) -> None:
        self.inner.write(edits, overlay)
        text = overlay.read(self.location.path) or ""
        overlay.write(self.location.path, text.replace(": false", ': "no"'))

    def reread(self, overlay: FileOverlay):  # type: ignore[no-untyped-def]
        return self.inner.reread(overlay)


class SpoilingLocator(Locator):
    def locate(self, finding: Finding) -> Target | str:
        found = super().locate(finding)
        return found if isinstance(found, str) else BoolAsString(found)


def test_invalid_edit_is_not_proposed(tmp_path: Path) -> None:
    (tmp_path / "web.yaml").write_text(DEPLOYMENT)
    report = Report(scanner="test", origin="test", findings=(finding(),))
    plan = build_plan(report, tmp_path, locator=SpoilingLocator(tmp_path))
    assert plan.change_sets == ()
    [unfixable] = plan.unfixable
    assert unfixable.category == "verify-failed"
    assert "not a valid Kubernetes object" in unfixable.reason
    assert "allowPrivilegeEscalation" in unfixable.reason
    assert "'no' is not of type 'boolean'" in unfixable.reason
    assert "\n" not in unfixable.reason


def test_valid_edit_is_proposed(tmp_path: Path) -> None:
    (tmp_path / "web.yaml").write_text(DEPLOYMENT)
    report = Report(scanner="test", origin="test", findings=(finding(),))
    plan = build_plan(report, tmp_path)
    [change_set] = plan.change_sets
    assert schema_problem(load_documents(change_set.files[0].after)[0]) is None


def test_errors_already_there_are_not_held_against_a_fix(tmp_path: Path) -> None:
    # a misspelt field the repository already has: the fix itself is fine
    broken = DEPLOYMENT.replace(
        "image: nginx:1.27", "image: nginx:1.27\n          imagePullPolic: Always"
    )
    assert "imagePullPolic" in (schema_problem(load_documents(broken)[0]) or "")
    (tmp_path / "web.yaml").write_text(broken)
    report = Report(scanner="test", origin="test", findings=(finding(),))
    plan = build_plan(report, tmp_path)
    assert len(plan.change_sets) == 1, plan.unfixable


def test_schema_problem_messages_and_skips() -> None:
    doc = load_documents(DEPLOYMENT)[0]
    assert schema_problem(doc) is None
    bad = load_documents(DEPLOYMENT.replace("name: web\n  namespace", "name: 7\n  namespace"))[0]
    problem = schema_problem(bad)
    assert problem is not None and problem.startswith("metadata.name: 7 is not of type")
    # kinds with no shipped schema (CRDs) and non-objects are not validated
    assert schema_problem({"apiVersion": "argoproj.io/v1alpha1", "kind": "Rollout"}) is None
    assert schema_problem({"kind": "Deployment"}) is None


def test_kubernetes_version_is_configurable(monkeypatch: pytest.MonkeyPatch) -> None:
    doc = load_documents(DEPLOYMENT)[0]
    monkeypatch.setenv(verify.VERSION_ENV, "v1.29")
    assert verify.kubernetes_version() == "1.29"
    assert "1.29 schema" not in (schema_problem(doc) or "")
    bad = {**doc, "spec": {**doc["spec"], "replicas": "two"}}
    assert "(Kubernetes 1.29 schema)" in (schema_problem(bad) or "")
    monkeypatch.setenv(verify.VERSION_ENV, "1.2")
    with pytest.raises(ConfigError, match=r"no Kubernetes schema for 1\.2"):
        schema_problem(doc)
    monkeypatch.setenv(verify.VERSION_ENV, "latest")
    with pytest.raises(ConfigError, match="not a Kubernetes version"):
        verify.kubernetes_version()


def test_validation_is_cached_and_fast() -> None:
    doc = load_documents(DEPLOYMENT)[0]
    schema_problem(doc)  # compiles the Deployment validator once
    start = time.perf_counter()
    for _ in range(50):
        assert schema_problem(doc) is None
    assert (time.perf_counter() - start) / 50 < 0.02


@pytest.fixture
def boutique(tmp_path: Path) -> tuple[Report, Path]:
    report = load_report(corpus_path("scans", "kubescape", "defectdojo__many_findings.json"))
    repo = tmp_path / "cd-config"
    shutil.copytree(corpus_path("manifests", "kubescape-online-boutique"), repo)
    return report, repo


def test_boutique_validates_before_and_after_the_fixes(boutique: tuple[Report, Path]) -> None:
    report, repo = boutique
    plan = build_plan(report, repo)
    assert plan.change_sets
    checked = 0
    for cs in plan.change_sets:
        for change in cs.files:
            for text in (change.before, change.after):
                for doc in load_documents(text or ""):
                    if isinstance(doc, dict):
                        assert schema_problem(doc) is None, (change.path, schema_problem(doc))
                        checked += 1
    assert checked > 20
    assert not [u for u in plan.unfixable if "not a valid Kubernetes object" in u.reason]


def test_new_errors_are_caught_in_a_document_that_already_had_some(tmp_path: Path) -> None:
    broken = DEPLOYMENT.replace(
        "image: nginx:1.27", "image: nginx:1.27\n          imagePullPolic: Always"
    )
    (tmp_path / "web.yaml").write_text(broken)
    report = Report(scanner="test", origin="test", findings=(finding(),))
    plan = build_plan(report, tmp_path, locator=SpoilingLocator(tmp_path))
    [unfixable] = plan.unfixable
    assert "'no' is not of type 'boolean'" in unfixable.reason


def _pod(container: dict, pod_context: dict | None = None) -> dict:  # type: ignore[type-arg]
    spec: dict = {"containers": [{"name": "app", "image": "nginx:1.27", **container}]}  # type: ignore[type-arg]
    if pod_context is not None:
        spec["securityContext"] = pod_context
    return {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p"}, "spec": spec}


@pytest.mark.parametrize(
    ("container", "pod_context", "problem"),
    [
        (
            {"securityContext": {"allowPrivilegeEscalation": False, "privileged": True}},
            None,
            "allowPrivilegeEscalation false with privileged true",
        ),
        (
            {
                "securityContext": {
                    "allowPrivilegeEscalation": False,
                    "capabilities": {"add": ["SYS_ADMIN"]},
                }
            },
            None,
            "allowPrivilegeEscalation false with CAP_SYS_ADMIN added",
        ),
        ({"securityContext": {"runAsNonRoot": True}}, {"runAsUser": 0}, "runAsUser 0"),
        ({}, {"runAsNonRoot": True, "runAsUser": 0}, "runAsUser 0"),
        (
            {"resources": {"requests": {"memory": "1Gi"}, "limits": {"memory": "256Mi"}}},
            None,
            "request memory 1Gi is above its limit 256Mi",
        ),
    ],
)
def test_objects_kubernetes_refuses_are_problems(
    container: dict,  # type: ignore[type-arg]
    pod_context: dict | None,  # type: ignore[type-arg]
    problem: str,
) -> None:
    problems = verify.object_problems(_pod(container, pod_context))
    assert any(problem in p for p in problems), problems


@pytest.mark.parametrize(
    ("container", "pod_context"),
    [
        ({"securityContext": {"allowPrivilegeEscalation": False, "privileged": False}}, None),
        ({"securityContext": {"runAsNonRoot": True, "runAsUser": 1000}}, {"runAsUser": 0}),
        ({"securityContext": {"runAsNonRoot": False}}, {"runAsNonRoot": True, "runAsUser": 0}),
        ({"resources": {"requests": {"cpu": "500m"}, "limits": {"cpu": "1"}}}, None),
    ],
)
def test_objects_kubernetes_accepts_have_no_problem(
    container: dict,  # type: ignore[type-arg]
    pod_context: dict | None,  # type: ignore[type-arg]
) -> None:
    assert verify.object_problems(_pod(container, pod_context)) == ()


def _deployment() -> dict:  # type: ignore[type-arg]
    return copy.deepcopy(load_documents(DEPLOYMENT)[0])  # type: ignore[no-any-return]


def _container(doc: dict) -> dict:  # type: ignore[type-arg]
    return doc["spec"]["template"]["spec"]["containers"][0]  # type: ignore[no-any-return]


def _spoiled(change: Any) -> dict:  # type: ignore[type-arg]
    doc = _deployment()
    change(doc)
    return doc


@pytest.mark.parametrize(
    "change",
    [
        lambda d: _container(d).update(securityContext={"allowPrivilegeEscalation": False}),
        lambda d: _container(d).update(resources={"limits": {"cpu": "500m", "memory": "1Gi"}}),
        lambda d: d["spec"]["template"]["spec"].update(automountServiceAccountToken=False),
        lambda d: d["spec"].update(replicas=3),
        lambda d: d["metadata"]["labels"].update(team="web") if "labels" in d["metadata"] else None,
    ],
)
def test_valid_changes_are_vouched_for(change: Any) -> None:
    before = _deployment()
    after = _spoiled(change)
    assert verify.changes_validate(before, after)
    assert schema_problem(after) is None


@pytest.mark.parametrize(
    "change",
    [
        # a new value of the wrong type, deep in a new mapping
        lambda d: _container(d).update(securityContext={"capabilities": {"drop": "ALL"}}),
        # a key the container does not have
        lambda d: _container(d).update(imagePullPolic="Always"),
        # a scalar of the wrong type
        lambda d: d["spec"].update(replicas="three"),
        # a value of another type that Python finds equal (0 == False)
        lambda d: _container(d).update(stdin=0),
        # a required key removed
        lambda d: _container(d).pop("name"),
        # the root changed
        lambda d: d.update(bogus=True),
    ],
)
def test_invalid_changes_are_never_vouched_for(change: Any) -> None:
    before = _spoiled(lambda d: _container(d).update(stdin=False))
    after = _spoiled(change)
    if "stdin" not in _container(after):
        _container(after)["stdin"] = False
    assert set(verify.schema_problems(after)) - set(verify.schema_problems(before))
    assert not verify.changes_validate(before, after)


def test_changes_are_vouched_for_beside_errors_already_there() -> None:
    before = _spoiled(lambda d: d["spec"]["template"]["metadata"].update(name=7))
    after = copy.deepcopy(before)
    _container(after)["securityContext"] = {"runAsNonRoot": True}
    assert verify.schema_problems(after) == verify.schema_problems(before) != []
    assert verify.changes_validate(before, after)


def test_vouching_never_hides_a_new_schema_error() -> None:
    """Random changes to real manifests: whenever only what changed was validated and found
    fine, validating the whole object finds no error the object did not have before."""
    paths = sorted(corpus_path("manifests", "kubescape-online-boutique").glob("*.yaml"))
    paths += sorted(corpus_path("manifests", "kubernetes-examples").rglob("*.yaml"))
    docs = []
    for path in paths:
        try:
            loaded = load_documents(path.read_text(encoding="utf-8"))
        except EditError:
            continue  # invalid.yaml, on purpose
        docs += [d for d in loaded if isinstance(d, dict) and isinstance(d.get("kind"), str)]
    assert len(docs) > 20
    rng = random.Random(16)
    values = [True, False, 0, 1, 1.0, "x", "1", None, {}, [], {"a": 1}, ["ALL"], {"name": "c"}]
    vouched = 0
    for _ in range(300):
        before = copy.deepcopy(rng.choice(docs))
        after = copy.deepcopy(before)
        for _ in range(rng.randint(1, 3)):
            node: Any = after
            while isinstance(node, dict | list) and node and rng.random() < 0.85:
                key = rng.choice(list(node)) if isinstance(node, dict) else rng.randrange(len(node))
                if not isinstance(node[key], dict | list):
                    break
                node = node[key]
            if isinstance(node, dict):
                key = rng.choice([*node, "securityContext", "runAsUser", "bogus", "cpu"])
                node[key] = copy.deepcopy(rng.choice(values))
            elif isinstance(node, list):
                node.append(copy.deepcopy(rng.choice(values)))
        if verify.changes_validate(before, after):
            vouched += 1
            new = set(verify.schema_problems(after)) - set(verify.schema_problems(before))
            assert not new, new
    assert vouched > 10  # the check is exercised, not only its fallback


def test_a_batch_with_an_invalid_edit_is_refused_and_the_rest_proposed(tmp_path: Path) -> None:
    (tmp_path / "web.yaml").write_text(DEPLOYMENT)
    report = Report(scanner="test", origin="test", findings=(finding("C-0016"), finding("C-0017")))
    plan = build_plan(report, tmp_path, locator=SpoilingLocator(tmp_path))
    [unfixable] = plan.unfixable
    assert unfixable.finding.control_id == "C-0016"
    assert "'no' is not of type 'boolean'" in unfixable.reason
    assert [f.control_id for f in plan.fixed_findings] == ["C-0017"]


def test_a_value_added_again_is_judged_by_its_value_and_type(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Verdicts are remembered per place and value: the same new value is validated once,
    and a value equal in Python but of another JSON type (1 for True) is judged on its own."""
    before = _deployment()
    validated: list[Any] = []
    real = verify._subvalidator

    def counting(schema_dir: str, uri: str) -> Any:
        validator = real(schema_dir, uri)

        class Counted:
            def iter_errors(self, value: Any) -> Any:
                validated.append(value)
                return validator.iter_errors(value)

        return Counted()

    monkeypatch.setattr(verify, "_subvalidator", counting)
    verify._schema_places.cache_clear()
    try:
        for context, valid in [
            ({"runAsNonRoot": True}, True),
            ({"runAsNonRoot": 1}, False),
            ({"runAsNonRoot": True}, True),
            ({"runAsNonRoot": 1}, False),
            ({"runAsNonRoot": "true"}, False),
        ]:
            after = _spoiled(lambda d, c=context: _container(d).update(securityContext=c))
            assert verify.changes_validate(before, after) is valid, context
    finally:
        verify._schema_places.cache_clear()
    assert validated == [{"runAsNonRoot": True}, {"runAsNonRoot": 1}, {"runAsNonRoot": "true"}]
