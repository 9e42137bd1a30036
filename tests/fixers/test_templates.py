"""Snapshots of every fixer's explanation, rendered the way the bot renders it.

Set ``UPDATE_SNAPSHOTS=1`` to rewrite them after a deliberate wording change, then review the diff.
"""

from __future__ import annotations

import os
from pathlib import Path

import jinja2
import pytest

from fixers.base import Fixer
from fixers.model import Finding, ResourceRef
from fixers.registry import all_fixers

SNAPSHOTS = Path(__file__).resolve().parent / "snapshots"
FIXERS = all_fixers()


def render(fixer: Fixer) -> str:
    from fixers.templates import explanation_template

    env = jinja2.Environment(undefined=jinja2.StrictUndefined, autoescape=False)
    finding = Finding(
        control_id=fixer.controls[0],
        resource=ResourceRef(kind="Deployment", namespace="shop", name="storefront"),
    )
    module = env.from_string(explanation_template(fixer)).make_module(
        {"fixer": fixer, "finding": finding, "notes": ["a note"], "values_used": ["a value"]}
    )
    return f"{module}\nHow to test: {module.how_to_test()}\n"


@pytest.mark.parametrize("fixer", FIXERS, ids=[f.name for f in FIXERS])
def test_explanation_snapshot(fixer: Fixer) -> None:
    snapshot = SNAPSHOTS / f"{fixer.name}.md"
    text = render(fixer)
    if os.environ.get("UPDATE_SNAPSHOTS") == "1":
        snapshot.write_text(text, encoding="utf-8")
    assert snapshot.exists(), f"no snapshot {snapshot.name}; run with UPDATE_SNAPSHOTS=1"
    assert text == snapshot.read_text(encoding="utf-8")
