"""A big report's plan holds each repeated value once: findings keep the tuples a reader shares,
fixes share equal edits and notes (`bot.plan.Shared`), without ever mixing up values that are
equal but write differently."""

from __future__ import annotations

from bot.plan import Shared
from fixers.model import Finding, FixHint, ResourceRef, Set

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
