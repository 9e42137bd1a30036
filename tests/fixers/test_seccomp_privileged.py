"""A seccomp profile on a privileged container: set (the scanner's finding closes, and it
applies once privileged is dropped), and the MR says it changes nothing until then."""

from __future__ import annotations

from fixers.model import Fixed
from fixers.registry import fixer_for, run_fixer
from fixers.view import ManifestPodView
from tests.fixers._support import documents, load_cases


def test_a_privileged_container_is_told_its_profile_is_not_applied() -> None:
    case = next(
        c for c in load_cases() if c.situation == "privileged-container-is-told-it-stays-unconfined"
    )
    fixer = fixer_for(case.finding.control_id)
    assert fixer is not None
    view = ManifestPodView.from_document(documents(case.text("before.yaml"))[0])
    assert view is not None
    result = run_fixer(fixer, view, case.finding, case.context())
    assert isinstance(result, Fixed)
    told = [n for n in result.notes if "Unconfined whatever profile" in n]
    assert len(told) == 1 and told[0].startswith("plugin is privileged")
    assert "kubernetes.io/docs/reference/node/seccomp" in told[0]
