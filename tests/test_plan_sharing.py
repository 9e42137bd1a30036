"""A big report's plan holds each repeated value once: findings keep the tuples a reader shares,
fixes share equal edits and notes (`bot.plan.Shared`), without ever mixing up values that are
equal but write differently; `dedupe` spends no group on a finding that stands alone."""

from __future__ import annotations

import dataclasses
import random

from bot.plan import Shared, _merged, _order, dedupe
from fixers.model import Finding, FixHint, ResourceRef, Set, Severity, SourceHint

PATH = ("spec", "template", "spec", "containers", 0, "securityContext", "runAsNonRoot")
OTHER = (*PATH[:-1], "capabilities")


def test_findings_keep_the_tuples_and_ids_a_reader_shares() -> None:
    control, ids = "".join(("C-", "0016")), ("C-0016",)
    hints = (FixHint(kind="fix", path="spec.containers[0].securityContext.x", value="true"),)
    ref = ResourceRef(kind="Deployment", namespace="shop", name="web")
    finding = Finding(control_id=control, scanner_ids=ids, resource=ref, hints=hints)
    assert finding.control_id is control and finding.scanner_ids is ids and finding.hints is hints
    # anything else is validated (and copied) as before
    loose = Finding(
        control_id=" c-0016\n",
        scanner_ids=["x"],
        resource=ref,
        hints=[{"kind": "review", "path": "p"}],
    )
    assert loose.control_id == "C-0016" and loose.scanner_ids == ("x",)
    assert loose.hints == (FixHint(kind="review", path="p"),)


def test_shared_edits_are_one_copy_but_never_equal_values_that_write_differently() -> None:
    shared = Shared()
    first = shared.edits((Set(PATH, True, "why"), Set(OTHER, {"drop": ["ALL"]})))
    again = shared.edits((Set(PATH, True, "why"), Set(OTHER, {"drop": ["ALL"]})))
    assert again is first
    assert Set(PATH, 1, "why") == Set(PATH, True, "why")  # equal, yet it writes 1, not true
    (one,) = shared.edits((Set(PATH, 1, "why"),))
    assert one.value == 1 and type(one.value) is int
    assert shared.edits((Set(PATH, True, "why"),))[0] is first[0]
    notes = ("runAsNonRoot set to true",)
    assert shared.texts(tuple(notes)) is shared.texts(("runAsNonRoot set to true",))


def _dedupe_by_the_book(findings: list[Finding]) -> list[Finding]:
    """`dedupe` as it was written before it kept single findings alone: the reference."""
    groups: dict[tuple[str, str, str], dict[object, Finding]] = {}
    for finding in findings:
        by_file = groups.setdefault(finding.identity, {})
        source = finding.source
        where = (source.path, source.document_index, source.line) if source.path else None
        by_file[where] = _merged(by_file[where], finding) if where in by_file else finding
    merged: list[Finding] = []
    for by_file in groups.values():
        pathless = by_file.pop(None, None)
        if pathless is None:
            merged.extend(by_file.values())
        elif not by_file:
            merged.append(pathless)
        else:
            merged.extend(_merged(f, pathless) for f in by_file.values())
    return sorted(merged, key=_order)


def test_dedupe_merges_as_it_always_did() -> None:
    rng = random.Random(16)
    refs = [ResourceRef(kind="Deployment", namespace=ns, name=n) for ns in "ab" for n in "xy"]
    findings = [
        Finding(
            control_id=rng.choice(("C-0016", "C-0017")),
            scanner_ids=(rng.choice(("KSV001", "C-0016", "CKV_K8S_20")),),
            severity=rng.choice(list(Severity)),
            # equal refs that are not one object, as two readers make them
            resource=dataclasses.replace(rng.choice(refs)),
            container=rng.choice((None, "app", "sidecar")),
            source=SourceHint(
                path=rng.choice((None, "a.yaml", "b.yaml")), line=rng.choice((None, 3))
            ),
        )
        for _ in range(400)
    ]
    assert dedupe(iter(findings)) == _dedupe_by_the_book(findings)
