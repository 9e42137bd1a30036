"""A small Kyverno validate evaluator for the guard policies, checked against upstream.

No Kyverno engine runs here, so the tests evaluate ClusterPolicies themselves, for the subset the
guard policies use: ``validate.pattern`` / ``anyPattern`` with the anchors ``=()`` (equality),
``()`` (conditional), ``X()`` (negation), ``^()`` (existence), the wildcards ``*`` / ``?``,
``|`` / ``&`` and the comparison operators; ``validate.deny`` and ``preconditions`` conditions in
JMESPath (``jmespath``, as Kyverno uses) with the operators the policies use; Pod rules applied
to pod controllers as Kyverno's auto-generated rules do (``spec.template``, CronJob's
``jobTemplate``); and PolicyExceptions. The evaluator is tested here against upstream's own
pod-security policies and their chainsaw test resources (read in place from the corpus).
"""

from __future__ import annotations

import fnmatch
import re
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import jmespath
import pytest
import yaml

from tests.conftest import corpus_path

PASS, FAIL, SKIP = "pass", "fail", "skip"
CONTROLLERS = frozenset(
    {"Deployment", "StatefulSet", "DaemonSet", "Job", "ReplicaSet", "ReplicationController"}
)
_ANCHOR = re.compile(r"^(=|X|\^|<|)\((.+)\)$")
_OPERATOR = re.compile(r"^(>=|<=|>|<|!)?(.*)$", re.S)


class _Skip(Exception):
    """A conditional anchor did not hold: the element (or the rule) does not apply."""


# --------------------------------------------------------------------------- patterns


def _scalar(pattern: Any, value: Any) -> bool:
    if isinstance(pattern, bool):
        return isinstance(value, bool) and value == pattern
    if pattern is None:
        return value is None
    if isinstance(pattern, int | float):
        if isinstance(value, bool):
            return False
        if isinstance(value, str):
            try:
                value = float(value)
            except ValueError:
                return False
        return isinstance(value, int | float) and value == pattern
    text = str(pattern)
    return any(
        all(_one(part.strip(), value) for part in alternative.split("&"))
        for alternative in text.split("|")
    )


def _text(value: Any) -> str | None:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float | str):
        return str(value)
    return None


def _number(value: Any) -> float | None:
    if isinstance(value, bool):
        return None
    try:
        return float(value)
    except (TypeError, ValueError):
        return None


def _one(pattern: str, value: Any) -> bool:
    operator, operand = _OPERATOR.match(pattern).groups()  # type: ignore[union-attr]
    if operator in (">", "<", ">=", "<="):
        left, right = _number(value), _number(operand)
        if left is None or right is None:
            return False
        return {
            ">": left > right,
            "<": left < right,
            ">=": left >= right,
            "<=": left <= right,
        }[operator]
    text = _text(value)
    if operator == "!":
        return text is None or not _wildcard(operand, text)
    return text is not None and _wildcard(operand, text)


def _wildcard(pattern: str, text: str) -> bool:
    return fnmatch.fnmatchcase(text, pattern.replace("[", "[[]"))


def match_pattern(pattern: Any, value: Any) -> bool:
    """Does ``value`` satisfy ``pattern``? Raises `_Skip` when a conditional anchor fails."""
    if isinstance(pattern, Mapping):
        if not isinstance(value, Mapping):
            return False
        return _match_map(pattern, value)
    if isinstance(pattern, list):
        if not isinstance(value, list):
            return False
        return _match_list(pattern, value)
    return _scalar(pattern, value)


def _match_map(pattern: Mapping[str, Any], value: Mapping[str, Any]) -> bool:
    keys = [(_ANCHOR.match(str(k)), k) for k in pattern]
    # Conditional anchors first: when one does not hold, the whole map does not apply.
    for anchor, key in keys:
        if anchor and anchor.group(1) in ("", "<"):
            name = anchor.group(2)
            if name not in value or not _quiet(pattern[key], value[name]):
                raise _Skip(name)
    for anchor, key in keys:
        kind, name = anchor.groups() if anchor else (None, str(key))
        if "*" in name or "?" in name:
            # A wildcard key stands for every key of the resource it matches.
            found = [k for k in value if _wildcard(name, str(k))]
            if kind is None and not found:
                return False
            if not all(match_pattern(pattern[key], value[k]) for k in found):
                return False
            continue
        if kind is None:
            if key not in value or not match_pattern(pattern[key], value[key]):
                return False
            continue
        if kind == "=":
            if value.get(name) is not None and not match_pattern(pattern[key], value[name]):
                return False
        elif kind == "X":
            if name in value:
                return False
        elif kind == "^":
            found = value.get(name)
            if not isinstance(found, list) or not any(
                _quiet(pattern[key][0], item) for item in found
            ):
                return False
    return True


def _match_list(pattern: list[Any], value: list[Any]) -> bool:
    if len(pattern) != 1:
        raise NotImplementedError("only one-element list patterns are evaluated")
    element = pattern[0]
    for item in value:
        try:
            if not match_pattern(element, item):
                return False
        except _Skip:
            continue
    return True


def _quiet(pattern: Any, value: Any) -> bool:
    try:
        return match_pattern(pattern, value)
    except _Skip:
        return False


# --------------------------------------------------------------------------- conditions


def _substitute(text: Any, context: Mapping[str, Any]) -> Any:
    if not isinstance(text, str):
        return text
    whole = re.fullmatch(r"\s*\{\{(.+?)\}\}\s*", text, re.S)
    if whole:
        return jmespath.search(whole.group(1).strip(), context)
    return re.sub(
        r"\{\{(.+?)\}\}", lambda m: str(jmespath.search(m.group(1).strip(), context)), text
    )


def _condition(condition: Mapping[str, Any], context: Mapping[str, Any]) -> bool:
    key = _substitute(condition["key"], context)
    value = _substitute(condition.get("value"), context)
    operator = condition["operator"]
    keys = key if isinstance(key, list) else [key]
    values = value if isinstance(value, list) else [value]
    if operator == "Equals":
        return bool(key == value)
    if operator == "NotEquals":
        return bool(key != value)
    if operator == "AnyIn":
        return any(_within(k, values) for k in keys)
    if operator == "AllIn":
        return all(_within(k, values) for k in keys)
    if operator == "AnyNotIn":
        return any(not _within(k, values) for k in keys)
    if operator == "AllNotIn":
        return all(not _within(k, values) for k in keys)
    raise NotImplementedError(operator)


def _within(key: Any, values: Sequence[Any]) -> bool:
    """Is ``key`` one of ``values`` (equal, a wildcard match, or inside an ``a-b`` range)?"""
    for value in values:
        if key == value:
            return True
        span = re.fullmatch(r"(\d+)-(\d+)", str(value))
        number = _number(key)
        if span and number is not None:
            if int(span.group(1)) <= number <= int(span.group(2)):
                return True
        elif isinstance(value, str) and isinstance(key, str) and _wildcard(value, key):
            return True
    return False


def conditions_hold(block: Mapping[str, Any] | None, context: Mapping[str, Any]) -> bool:
    """Kyverno's ``any`` / ``all`` condition block (None holds)."""
    if not block:
        return True
    if "any" in block and not any(_condition(c, context) for c in block["any"]):
        return False
    return all(_condition(c, context) for c in block.get("all", ()))


# --------------------------------------------------------------------------- rules


def pod_form(resource: Mapping[str, Any]) -> tuple[Mapping[str, Any], str] | None:
    """The Pod a rule for Pods sees in ``resource`` and the rule-name prefix Kyverno's
    auto-generated rule has for it; None when no Pod rule applies."""
    kind = resource.get("kind")
    if kind == "Pod":
        return resource, ""
    spec = resource.get("spec") or {}
    if kind == "CronJob":
        template = ((spec.get("jobTemplate") or {}).get("spec") or {}).get("template")
        prefix = "autogen-cronjob-"
    elif kind in CONTROLLERS:
        template, prefix = spec.get("template"), "autogen-"
    else:
        return None
    if not isinstance(template, Mapping):
        return None
    meta = {**(template.get("metadata") or {})}
    meta.setdefault("name", (resource.get("metadata") or {}).get("name"))
    meta.setdefault("namespace", (resource.get("metadata") or {}).get("namespace"))
    return {"apiVersion": "v1", "kind": "Pod", "metadata": meta, "spec": template.get("spec")}, (
        prefix
    )


def _resource_matches(filters: Mapping[str, Any], resource: Mapping[str, Any]) -> bool:
    meta = resource.get("metadata") or {}
    kinds = [str(k).rsplit("/", 1)[-1] for k in filters.get("kinds", ["*"])]
    if not any(fnmatch.fnmatchcase(str(resource.get("kind")), k) for k in kinds):
        return False
    names = filters.get("names") or ([filters["name"]] if "name" in filters else None)
    if names and not any(fnmatch.fnmatchcase(str(meta.get("name")), n) for n in names):
        return False
    namespaces = filters.get("namespaces")
    namespace = str(meta.get("namespace") or "default")
    return not namespaces or any(fnmatch.fnmatchcase(namespace, n) for n in namespaces)


def selects(block: Mapping[str, Any] | None, resource: Mapping[str, Any]) -> bool:
    """Does a match / exclude block (``any`` / ``all`` of ``resources``) select ``resource``?"""
    if not block:
        return False
    if "any" in block:
        return any(_resource_matches(f.get("resources", {}), resource) for f in block["any"])
    if "all" in block:
        return all(_resource_matches(f.get("resources", {}), resource) for f in block["all"])
    return _resource_matches(block.get("resources", {}), resource)


def excepted(
    exceptions: Iterable[Mapping[str, Any]], policy: str, rule: str, resource: Mapping[str, Any]
) -> bool:
    """Does a PolicyException exempt ``resource`` from ``policy``'s ``rule``?"""
    for exception in exceptions:
        spec = exception["spec"]
        named = any(
            e["policyName"] == policy and rule in e["ruleNames"] for e in spec["exceptions"]
        )
        if named and selects(spec["match"], resource):
            return True
    return False


def evaluate(
    policy: Mapping[str, Any],
    resource: Mapping[str, Any],
    exceptions: Sequence[Mapping[str, Any]] = (),
) -> dict[str, str]:
    """Rule name (as Kyverno reports it) -> pass / fail / skip for one resource."""
    name = policy["metadata"]["name"]
    results: dict[str, str] = {}
    for rule in policy["spec"]["rules"]:
        if not any(
            "Pod" in (f.get("resources", {}).get("kinds") or ())
            for f in rule["match"].get("any", rule["match"].get("all", ()))
        ):
            raise NotImplementedError("only rules for Pods are evaluated")
        form = pod_form(resource)
        if form is None:
            continue
        pod, prefix = form
        reported = prefix + rule["name"]
        subject = resource if prefix else pod
        if not selects(rule["match"], _as_kind(subject, "Pod") if prefix else subject):
            continue
        if selects(rule.get("exclude"), subject) or excepted(exceptions, name, reported, subject):
            results[reported] = SKIP
            continue
        context = {"request": {"object": pod}}
        if not conditions_hold(rule.get("preconditions"), context):
            results[reported] = SKIP
            continue
        results[reported] = _validate(rule["validate"], pod, context)
    return results


def _as_kind(resource: Mapping[str, Any], kind: str) -> Mapping[str, Any]:
    # An auto-generated rule matches the controller wherever the Pod rule matches its Pods.
    return {**resource, "kind": kind}


def _validate(validate: Mapping[str, Any], pod: Mapping[str, Any], context: Any) -> str:
    if "deny" in validate:
        return FAIL if conditions_hold(validate["deny"].get("conditions"), context) else PASS
    patterns = [validate["pattern"]] if "pattern" in validate else validate["anyPattern"]
    outcomes = []
    for pattern in patterns:
        try:
            outcomes.append(PASS if match_pattern(pattern, pod) else FAIL)
        except _Skip:
            outcomes.append(SKIP)
    if PASS in outcomes:
        return PASS
    return FAIL if FAIL in outcomes else SKIP


def verdict(results: Mapping[str, str]) -> str:
    """fail when any rule fails, pass when one passes, skip otherwise."""
    values = set(results.values())
    return FAIL if FAIL in values else PASS if PASS in values else SKIP


# --------------------------------------------------------------------------- upstream


def _documents(path: Path) -> list[dict[str, Any]]:
    return [d for d in yaml.safe_load_all(path.read_text(encoding="utf-8")) if d]


def _upstream_cases() -> list[tuple[str, Path]]:
    root = corpus_path("kyverno", "policies", "pod-security")
    cases = []
    for folder in sorted(root.glob("*/*")):
        policy = folder / f"{folder.name}.yaml"
        tests = folder / ".chainsaw-test"
        if policy.is_file() and (tests / "pod-good.yaml").is_file():
            cases.append((f"{folder.parent.name}/{folder.name}", folder))
    return cases


def _evaluable(policy: Mapping[str, Any]) -> bool:
    for rule in policy["spec"]["rules"]:
        validate = rule.get("validate", {})
        if "podSecurity" in validate or "foreach" in validate or "cel" in validate:
            return False
        if "deny" in validate and "request.object" not in yaml.safe_dump(validate):
            return False
    return True


def test_upstream_policies_against_their_own_test_resources() -> None:
    """Every upstream pod-security policy the evaluator covers passes its good resources and
    fails its bad ones, Pods and pod controllers alike."""
    checked = []
    for name, folder in _upstream_cases():
        (policy,) = _documents(folder / f"{folder.name}.yaml")
        if not _evaluable(policy):
            continue
        tests = folder / ".chainsaw-test"
        for stem, expected in (("pod-good", PASS), ("pod-bad", FAIL)):
            for controller in ("", "controller"):
                path = tests / f"{stem.replace('pod', 'pod' + controller)}.yaml"
                if not path.is_file():
                    continue
                for document in _documents(path):
                    got = verdict(evaluate(policy, document))
                    label = f"{name} {path.name} {document['kind']}/{document['metadata']['name']}"
                    assert got == expected, label
                    checked.append(label)
        checked.append(name)
    names = {c for c in checked if " " not in c}
    assert {
        "restricted/restrict-seccomp-strict",
        "baseline/restrict-seccomp",
        "restricted/require-run-as-nonroot",
        "restricted/disallow-privilege-escalation",
        "baseline/disallow-host-path",
        "baseline/disallow-capabilities",
    } <= names, names
    assert len(checked) > 60


@pytest.mark.parametrize(
    ("pattern", "value", "expected"),
    [
        ("?*", "", False),
        ("?*", "100m", True),
        ("RuntimeDefault | Localhost", "Localhost", True),
        ("RuntimeDefault | Localhost", "Unconfined", False),
        (">0", 1000, True),
        (">0", 0, False),
        ("!0", 5, True),
        ("false", False, True),
        ("false", True, False),
        (True, "true", False),
        ({"=(a)": 1}, {}, True),
        ({"a": 1}, {}, False),
        ({"X(a)": "null"}, {"a": None}, False),
        ({"^(l)": [{"x": 1}]}, {"l": [{"x": 2}, {"x": 1}]}, True),
        ({"^(l)": [{"x": 1}]}, {"l": [{"x": 2}]}, False),
        ([{"(name)": "a*", "v": 1}], [{"name": "b", "v": 2}, {"name": "ab", "v": 1}], True),
        ([{"(name)": "a*", "v": 1}], [{"name": "ab", "v": 2}], False),
    ],
)
def test_pattern_semantics(pattern: Any, value: Any, expected: bool) -> None:
    assert match_pattern(pattern, value) is expected
