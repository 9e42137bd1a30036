"""Every fixer against its named before/after cases (STYLE.md rule 4).

A case folder holds ``finding.json``, ``before.yaml``, optionally ``context.json`` (policy
values, as `FixContext` JSON) and either ``after.yaml`` (the fixer
must produce exactly these bytes), ``reason.txt`` (it must decline with this text), ``created/``
(the manifests it must create) or nothing (it must be a no-op). Every fix is re-run on its own
output and must then answer AlreadyCompliant.
"""

from __future__ import annotations

import pytest

from tests.fixers._support import Case, check_case, load_cases

CASES = load_cases()


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_case(case: Case) -> None:
    check_case(case)


def test_every_case_folder_is_complete() -> None:
    for case in CASES:
        assert case.has("before.yaml"), case.id
        outcomes = [case.has("after.yaml") or case.has("created"), case.has("reason.txt")]
        assert outcomes.count(True) <= 1, f"{case.id}: after.yaml and reason.txt both present"
