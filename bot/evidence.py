"""Gather what the repository says about a located workload, for `fixers.intent`.

The fixers see parsed data only; comments live in the text. This reads the text of the
location's file (a manifest document, or every values file of a Helm deployment, in precedence
order) and keys each comment by the path a fixer would write, so that the intent module can
read ``runAsUser: 0  # legacy: writes to /var/reports`` as a reason.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping

from bot.locate.base import FileOverlay, Target
from fixers.intent import Comment, Evidence, WorkloadIntent, classified, comments_of
from fixers.model import YamlPath
from fixers.runtime_evidence import WorkloadRuntime
from fixers.view import PodView, calls_the_api


def location_comments(target: Target, overlay: FileOverlay) -> dict[YamlPath, Comment]:
    """Key path -> comment for the file(s) the target's edits go to."""
    location = target.location
    found: dict[YamlPath, Comment] = {}
    deployment = getattr(target, "deployment", None)
    if location.kind == "manifest" or deployment is None:
        text = overlay.read(location.path)
        return comments_of(text, location.document_index) if text else found
    for relpath in getattr(deployment, "value_files", ()):
        text = overlay.read(relpath)
        if text:
            found.update(comments_of(text))  # a later values file wins, as in Helm
    app = getattr(deployment, "app", None)
    release_comments = getattr(app, "comments", None)  # Flux values as overlays build them
    if callable(release_comments):
        found.update(release_comments(overlay))
    return found


def workload_intent(
    target: Target,
    overlay: FileOverlay,
    view: PodView,
    runtime: WorkloadRuntime | None = None,
    api_accounts: Collection[tuple[str | None, str]] = (),
) -> tuple[WorkloadIntent, Mapping[YamlPath, Comment]]:
    """The workload's intent from the view, its file's comments, when given what it was
    observed doing at runtime, and whether its service account is one of ``api_accounts``
    (those RBAC bindings of the repository grant API access: the pod uses its token); and
    those comments."""
    comments = location_comments(target, overlay)
    extra = [Evidence(**fields) for fields in runtime.intent_evidence()] if runtime else []
    account = calls_the_api(view, api_accounts)
    if account is not None:
        extra.append(
            Evidence(
                "repository",
                f"its service account {account} is bound to RBAC roles in the repository, so "
                "the pod calls the Kubernetes API with the mounted token",
                ("serviceAccountToken",),
            )
        )
    return classified(view, comments, extra), comments
