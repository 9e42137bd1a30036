"""Merge-request descriptions and other Markdown, from Jinja2 templates (StrictUndefined).

Templates ship in ``bot/templates``; a repository may override one by placing a file of the
same name under ``.remedy/templates/`` in cd-config (passed in as ``overrides``). Every template
gets plain data only and escapes every value (`bot.markdown`); a repository's template renders
in a separate sandboxed process (`bot.template_sandbox`), never in this one.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Iterable, Mapping
from functools import cache
from importlib import resources
from typing import Any

import jinja2

from bot import controls as catalog
from bot.markdown import Md, clean, escape, guard, markdown_environment
from bot.model import ChangeSet, FileChange, Location, Unfixable
from bot.template_sandbox import plain, render_untrusted, unplain
from fixers.base import Fixer
from fixers.model import Finding

MR_TEMPLATE = "merge_request.md.j2"

escape_markdown = escape
"""The one escaping function (`bot.markdown.escape`), under the name other modules know."""

GITLAB_DESCRIPTION_LIMIT = 1_000_000
"""GitLab rejects MR descriptions longer than this many characters."""

_SECRET_KEY = re.compile(
    r"(?i)(password|passwd|secret|token|api[_-]?key|private[_-]?key|credential|auth)"
)
_SECRET_LINE = re.compile(r"^(?P<lead>[ +\-]?\s*(?:-\s+)?(?:[\w.-]+)\s*:\s*)(?P<value>\S.*)$")
_ENV_VALUE = re.compile(r"^(?P<lead>[ +\-]?\s*(?:-\s+)?value\s*:\s*)(?P<value>\S.*)$")
_BASE64ISH = re.compile(r"^[\"']?[A-Za-z0-9+/=_\-]{24,}[\"']?$")


def merge_request_commands() -> list[tuple[str, str]]:
    """(usage, summary) of every command a merge request note may give: generated from the
    command classes (`bot.commands`), so the MR's help and the bot's ``help`` reply agree."""
    from bot.commands import commands_for

    return [(c.usage, c.summary) for c in commands_for("mr")]


_NOT_SECRET = re.compile(
    r"^(true|false|yes|no|null|~|\{\}|\[\]|-?\d+(\.\d+)?|\{\{.*\}\})\s*(#.*)?$", re.I
)


def redact_line(line: str) -> str:
    """Mask values that look like credentials (by key name, env values, long base64).

    Booleans, numbers, empty collections and template expressions are kept: a key like
    ``automountServiceAccountToken: false`` carries no secret.
    """
    match = _SECRET_LINE.match(line)
    if match and _NOT_SECRET.match(match.group("value").strip()):
        return line
    if match and _SECRET_KEY.search(match.group("lead")):
        return match.group("lead") + "[redacted]"
    env = _ENV_VALUE.match(line)
    if env and (_BASE64ISH.match(env.group("value")) or _SECRET_KEY.search(line)):
        return env.group("lead") + "[redacted]"
    return line


def unified_diff(change: FileChange, context: int = 3) -> str:
    """A unified diff of one file, with credential-looking lines redacted."""
    before = (change.before or "").splitlines()
    after = change.after.splitlines()
    path = clean(change.path)  # a newline in a file name must not start a line of its own
    lines = difflib.unified_diff(
        before,
        after,
        fromfile="/dev/null" if change.is_new else f"a/{path}",
        tofile=f"b/{path}",
        n=context,
        lineterm="",
    )
    return "\n".join(redact_line(line) for line in lines)


@cache
def _builtin(name: str) -> str:
    return resources.files("bot").joinpath("templates", name).read_text(encoding="utf-8")


def environment(overrides: Mapping[str, str] | None = None) -> jinja2.Environment:
    """The environment of the built-in templates (sandboxed, every value escaped: see
    `bot.markdown.markdown_environment`).

    ``overrides`` is accepted for callers that hold cd-config's templates, and never loaded:
    a repository's template renders only through `render_template`, in the sandboxed process."""
    del overrides
    return _environment()


@cache
def _environment() -> jinja2.Environment:
    return markdown_environment(jinja2.FunctionLoader(lambda name: _builtin(name)))


def render_template(
    name: str,
    context: Mapping[str, Any],
    overrides: Mapping[str, str] | None = None,
    *,
    limit: int = GITLAB_DESCRIPTION_LIMIT,
) -> tuple[str, bool]:
    """Render template ``name`` with plain-data ``context``: ``(text, over limit)``.

    cd-config's override of ``name``, when given, renders in the sandboxed process
    (`bot.template_sandbox`) and raises `TemplateRefused` when it fails or exceeds a bound;
    the built-in one renders here. Both see the same context and the same escaping."""
    data = plain(dict(context))  # the same plain data in both cases (and a check that it is)
    if overrides and name in overrides:
        return render_untrusted(overrides[name], data, name=name, limit=limit)
    text = _environment().get_template(name).render(**unplain(data))
    return text, len(text) > limit


def check_template(source: str, name: str) -> None:
    """Compile a repository template in the sandbox; `TemplateRefused` when it does not."""
    render_untrusted(source, {}, name=name)


def _explanation_module(fixer: Fixer, finding: Finding, notes: list[str], values: list[str]) -> Any:
    """A fixer's explanation template (``fixers/templates/<name>.md.j2``) rendered like every
    built-in template (plain data in, every value escaped), as a module: its text and its
    ``how_to_test`` macro."""
    from fixers.templates import explanation_template

    context = {
        "fixer": {
            "name": fixer.name,
            "family": fixer.family,
            "controls": list(fixer.controls),
            "risk": {"label": fixer.risk.label},
        },
        "finding": _finding(finding),
        "notes": notes,
        "values_used": values,
    }
    template = _environment().from_string(explanation_template(fixer))
    return template.make_module(unplain(plain(context)))


def render_explanation(fixer: Fixer, finding: Finding, notes: list[str], values: list[str]) -> Md:
    """A fixer's explanation, rendered like every built-in template."""
    return Md(str(_explanation_module(fixer, finding, notes, values)))


def render_how_to_test(fixer: Fixer, finding: Finding) -> Md:
    """How to test a fixer's change: the ``how_to_test`` macro of its explanation template."""
    return Md(str(_explanation_module(fixer, finding, [], []).how_to_test()).strip())


INLINE_VALUES = {
    "HelmRelease": ".spec.values",
    "Application": ".spec.source.helm.valuesObject",
    "ApplicationSet": ".spec.template.spec.source.helm.valuesObject",
}
"""Where a GitOps manifest keeps a chart's inline values (a ``yq`` path)."""


def _kinds(change: FileChange) -> set[str]:
    """The kinds of the documents a changed file holds ('' for a document without one)."""
    from bot.errors import RemedyError
    from bot.safe_load import load_yaml_all

    try:
        docs = load_yaml_all(change.after, change.path)
    except RemedyError:  # an unreadable file is listed as a manifest
        return set()
    return {str(d.get("kind") or "") if isinstance(d, Mapping) else "" for d in docs}


def _how_to_test(change_set: ChangeSet) -> dict[str, Any]:
    """The "How to test" section's data: commands that render the changed files (named, never
    a placeholder) and each fixer's own advice. Kustomize overlays are built whole, values a
    HelmRelease or Application keeps inline are taken out of it with ``yq`` (a GitOps
    manifest is not a values file), a new manifest is applied with a server dry run."""
    from bot.locate.kustomize import OVERLAYS_META
    from fixers.registry import by_control

    charts: dict[str, list[str]] = {}
    for fix in change_set.fixes:
        if fix.location.chart:
            charts.setdefault(fix.location.chart, [])
    under_chart = {
        c.path for c in change_set.files for chart in charts if c.path.startswith(f"{chart}/")
    }
    overlays = [
        label.split(" (", 1)[0]
        for label in str(change_set.meta.get(OVERLAYS_META, "")).split(", ")
        if label
    ]
    manifests: list[str] = []
    for change in change_set.files:
        if change.path in under_chart:
            continue
        kinds = _kinds(change)
        if charts and kinds == {""}:  # a plain values file
            for values in charts.values():
                values.append(f"-f {change.path}")
        elif charts and kinds & set(INLINE_VALUES):
            kind = next(k for k in INLINE_VALUES if k in kinds)
            for values in charts.values():
                values.append(f"-f <(yq '{INLINE_VALUES[kind]}' {change.path})")
        elif not overlays:
            manifests.append(change.path)
    commands = [
        f"kubectl kustomize {folder} | kubectl apply --dry-run=server -f -" for folder in overlays
    ]
    if manifests:
        commands.append(
            " ".join(["kubectl apply --dry-run=server", *(f"-f {p}" for p in manifests)])
        )
    for chart, values in charts.items():
        if values or any(path.startswith(f"{chart}/") for path in under_chart):
            commands.append(" ".join(["helm template", chart, *values]))
    advice: dict[str, Md] = {}
    for fix in change_set.fixes:
        if fix.fixer not in advice:
            advice[fix.fixer] = render_how_to_test(
                by_control()[fix.finding.control_id], fix.finding
            )
    return {"commands": commands, "advice": list(advice.values())}


def _why(location: Location) -> str:
    """A location's why as the merge request puts it after the location's path: the path's
    own part does not name the path again (``values.yaml: values.yaml sets x`` reads
    ``it sets x``); the parts of other files keep their names."""
    path, why = location.path, location.why
    why = why.removeprefix(f"{path}: ")
    return f"it{why[len(path) :]}" if why.startswith(f"{path} ") else why


def _finding(finding: Finding) -> dict[str, Any]:
    return {
        "control_id": finding.control_id,
        "scanner": finding.scanner,
        "scanner_ids": list(finding.scanner_ids),
        "severity": finding.severity.label,
        "resource": str(finding.resource),
        "kind": finding.resource.kind,
        "namespace": finding.resource.namespace,
        "name": finding.resource.name,
        "container": finding.container,
        "message": finding.message,
    }


def _unfixable(u: Unfixable) -> dict[str, Any]:
    return {"finding": _finding(u.finding), "reason": u.reason, "category": u.category}


def _unresolved(items: Iterable[Unfixable]) -> list[dict[str, Any]]:
    """One entry per resource, container and reason, with every control it holds for (two
    scanners, or seven controls refused for one cause, make one line)."""
    grouped: dict[tuple[str, str | None, str], dict[str, Any]] = {}
    for u in items:
        key = (str(u.finding.resource), u.finding.container, u.reason)
        entry = grouped.get(key)
        if entry is None:
            entry = grouped[key] = {**_unfixable(u), "controls": []}
        if u.finding.control_id not in entry["controls"]:
            entry["controls"].append(u.finding.control_id)
    return list(grouped.values())


def _fixer_explanations(change_set: ChangeSet) -> list[dict[str, Any]]:
    from fixers.registry import by_control

    seen: dict[str, dict[str, Any]] = {}
    for fix in change_set.fixes:
        if fix.fixer in seen:
            # one explanation per fixer, with the notes and value sources of all its fixes
            for name, new in (("notes", fix.notes), ("values_used", fix.values_used)):
                seen[fix.fixer][name].extend(n for n in new if n not in seen[fix.fixer][name])
            continue
        fixer = by_control()[fix.finding.control_id]
        text = render_explanation(fixer, fix.finding, list(fix.notes), list(fix.values_used))
        seen[fix.fixer] = {
            "name": fix.fixer,
            "risk": fix.risk.label,
            "text": Md(text.strip()),
            "notes": list(fix.notes),
            "values_used": list(dict.fromkeys(fix.values_used)),
        }
    return list(seen.values())


def change_set_context(
    change_set: ChangeSet,
    *,
    marker: str,
    bot_username: str = "kube-remedy",
    scores: Mapping[str, tuple[float, float]] | None = None,
) -> dict[str, Any]:
    """What ``merge_request.md.j2`` sees: plain data only (see the README's "Templates")."""
    controls = []
    for control_id in change_set.controls:
        control = catalog.get(control_id)
        findings = [f for f in change_set.findings if f.control_id == control_id]
        controls.append(
            {
                "id": control_id,
                "name": control.name if control else control_id,
                "severity": (control.severity if control else findings[0].severity.label),
                "frameworks": ", ".join(control.frameworks) if control else "",
                "why": control.why if control else "",
                "fix": control.fix if control else "",
                "scanner_ids": sorted({i for f in findings for i in f.scanner_ids}),
            }
        )
    locations: dict[tuple[str, str], dict[str, Any]] = {}
    for fix in change_set.fixes:
        loc = fix.location
        locations.setdefault(
            (loc.path, loc.why),
            {"kind": loc.kind, "path": loc.path, "chart": loc.chart, "why": _why(loc)},
        )
    cs = {
        "key": change_set.key,
        "title": change_set.title,
        "family": change_set.family,
        "risk": {"label": change_set.risk.label},
        "controls": list(change_set.controls),
        "findings": [_finding(f) for f in change_set.findings],
        "files": [{"path": c.path, "new": c.is_new} for c in change_set.files],
        "notes": list(change_set.notes),
        "overlays": [o for o in change_set.meta.get("kustomize-overlays", "").split(", ") if o],
        "overlay_diff": change_set.meta.get("kustomize-diff", ""),
    }
    return {
        "cs": cs,
        "controls": controls,
        "explanations": _fixer_explanations(change_set),
        "how_to_test": _how_to_test(change_set),
        "resources": sorted({str(f.resource) for f in change_set.findings}),
        "locations": list(locations.values()),
        "diffs": [
            {"path": c.path, "new": c.is_new, "diff": unified_diff(c)} for c in change_set.files
        ],
        "unresolved": _unresolved(change_set.unresolved),
        "commands": [list(c) for c in merge_request_commands()],
        "bot": bot_username,
        "scores": {fw: list(pair) for fw, pair in (scores or {}).items()},
        "marker": Md(marker),
        "summarised": False,
    }


def describe_change_set(
    change_set: ChangeSet,
    *,
    marker: str,
    bot_username: str = "kube-remedy",
    scores: Mapping[str, tuple[float, float]] | None = None,
    overrides: Mapping[str, str] | None = None,
    limit: int = GITLAB_DESCRIPTION_LIMIT,
) -> str:
    """The merge-request description: controls, why, what changed, risk, tests, commands.

    With ``overrides`` (cd-config's templates) the repository's template renders in the
    sandbox and a failure raises `TemplateRefused`; the caller falls back to the built-in."""
    if change_set.meta.get("kind") == "waiver":
        from bot.waivers import describe_waiver

        return guard(describe_waiver(change_set, marker=marker))
    context = change_set_context(
        change_set, marker=marker, bot_username=bot_username, scores=scores
    )
    text, over = render_template(MR_TEMPLATE, context, overrides, limit=limit)
    if over:
        # Too big for GitLab: keep everything but the diffs, which reviewers see in the MR anyway.
        context["diffs"] = [{**d, "diff": ""} for d in context["diffs"]]
        context["summarised"] = True
        text, over = render_template(MR_TEMPLATE, context, overrides, limit=limit)
        if over:
            text = text[: limit - len(marker) - 200] + "\n\n…(truncated)\n\n" + marker + "\n"
    return guard(text)
