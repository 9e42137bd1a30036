"""Conventions every fixer keeps (STYLE.md rules 1, 4, 5 and 11), checked by reading them."""

from __future__ import annotations

import importlib
import re
from pathlib import Path

import jinja2
import pytest
from pydantic import TypeAdapter

from fixers.base import Fixer
from fixers.model import CONTROL_ID, Finding, ResourceRef, Risk
from fixers.registry import all_fixers, by_control
from fixers.templates import TemplateMissing, explanation_template

ROOT = Path(__file__).resolve().parent.parent
CASES = ROOT / "tests" / "fixers" / "cases"
FIXERS = all_fixers()
IDS = [f.name for f in FIXERS]


def _snake(name: str) -> str:
    return re.sub(r"(?<!^)(?=[A-Z])", "_", name).lower()


def test_every_rule_module_defines_a_fixer() -> None:
    modules = {
        p.stem for p in (ROOT / "fixers" / "rules").glob("*.py") if not p.stem.startswith("_")
    }
    assert modules == set(IDS)


def test_no_control_is_claimed_twice() -> None:
    table = by_control()
    assert sum(len(f.controls) for f in FIXERS) == len(table)


@pytest.mark.parametrize("fixer", FIXERS, ids=IDS)
def test_fixer_declares_controls_family_and_risk(fixer: Fixer) -> None:
    assert fixer.controls
    assert all(CONTROL_ID.match(c) for c in fixer.controls), fixer.controls
    assert fixer.family
    assert isinstance(fixer.risk, Risk)


@pytest.mark.parametrize("fixer", FIXERS, ids=IDS)
def test_module_docstring_names_controls_and_the_kubernetes_field(fixer: Fixer) -> None:
    module = importlib.import_module(type(fixer).__module__)
    doc = module.__doc__ or ""
    for control in fixer.controls:
        assert control in doc, f"{fixer.name} docstring does not name {control}"
    assert "kubernetes.io/docs" in doc, f"{fixer.name} docstring links no Kubernetes field"
    assert type(fixer).__doc__, f"{type(fixer).__name__} has no docstring"


@pytest.mark.parametrize("fixer", FIXERS, ids=IDS)
def test_module_class_template_and_cases_share_one_name(fixer: Fixer) -> None:
    assert _snake(type(fixer).__name__) == fixer.name
    assert explanation_template(fixer)
    cases = [p for p in (CASES / fixer.name).glob("*") if p.is_dir()]
    assert len(cases) >= 3, f"{fixer.name} has {len(cases)} test cases, wants at least 3"


DECLINE_ONLY = {"host_path_mount", "image_tag", "missing_probes", "secret_env_vars"}
"""Fixers that never edit: their cases are declines and no-ops."""


@pytest.mark.parametrize("fixer", FIXERS, ids=IDS)
def test_cases_cover_a_deployment_another_kind_and_a_no_op(fixer: Fixer) -> None:
    fixed_kinds: set[str] = set()
    outcomes: set[str] = set()
    for folder in (CASES / fixer.name).glob("*"):
        text = (folder / "finding.json").read_text(encoding="utf-8")
        kind = TypeAdapter(Finding).validate_json(_drop_index(text)).resource.kind
        if (folder / "reason.txt").exists():
            outcomes.add("declines")
        elif (folder / "after.yaml").exists() or (folder / "created").exists():
            outcomes.add("fixes")
            fixed_kinds.add(kind)
        else:
            outcomes.add("no-op")
    if fixer.name in DECLINE_ONLY:
        assert outcomes == {"declines", "no-op"}, outcomes
        return
    assert "Deployment" in fixed_kinds, f"no fix case on a Deployment: {fixed_kinds}"
    assert fixed_kinds - {"Deployment"}, "no fix case on another kind"
    # A NetworkPolicy fixer cannot see existing policies, so it has no no-op case.
    assert "no-op" in outcomes or fixer.name == "network_policy", outcomes


def _drop_index(text: str) -> str:
    import json

    raw = json.loads(text)
    raw.pop("document_index", None)
    return json.dumps(raw)


@pytest.mark.parametrize("fixer", FIXERS, ids=IDS)
def test_explanation_template_renders_strictly(fixer: Fixer) -> None:
    # The bot renders with the Fixer itself and lists notes and value sources after the text.
    env = jinja2.Environment(undefined=jinja2.StrictUndefined, autoescape=False)
    template = env.from_string(explanation_template(fixer))
    finding = Finding(
        control_id=fixer.controls[0],
        resource=ResourceRef(kind="Deployment", namespace="shop", name="storefront"),
    )
    module = template.make_module(
        {
            "fixer": fixer,
            "finding": finding,
            "notes": ["first note"],
            "values_used": ["memory limit 256Mi: policy default"],
        }
    )
    text = str(module)
    lines = [line for line in text.splitlines() if line.strip()]
    assert 2 <= len(lines) <= 7, text
    # the "How to test" advice of the MR is specific to the change: every fixer gives its own
    assert len(str(module.how_to_test()).strip()) > 20
    assert all(c in text for c in fixer.controls)
    assert "{" not in text and "None" not in text


def test_missing_template_is_a_clear_error() -> None:
    with pytest.raises(TemplateMissing, match="no explanation template"):
        explanation_template("no_such_fixer")
    with pytest.raises(TemplateMissing, match="not a fixer name"):
        explanation_template("../secrets")
