"""Merge-request descriptions and other Markdown, from Jinja2 templates (StrictUndefined).

Templates ship in ``bot/templates``; a repository may override one by placing a file of the
same name under ``.remedy/templates/`` in cd-config (passed in as ``overrides``).
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Mapping
from functools import cache
from importlib import resources
from typing import Any

import jinja2

from bot import controls as catalog
from bot.model import ChangeSet, FileChange

GITLAB_DESCRIPTION_LIMIT = 1_000_000
"""GitLab rejects MR descriptions longer than this many characters."""

_SECRET_KEY = re.compile(
    r"(?i)(password|passwd|secret|token|api[_-]?key|private[_-]?key|credential|auth)"
)
_SECRET_LINE = re.compile(r"^(?P<lead>[ +\-]?\s*(?:-\s+)?(?:[\w.-]+)\s*:\s*)(?P<value>\S.*)$")
_ENV_VALUE = re.compile(r"^(?P<lead>[ +\-]?\s*(?:-\s+)?value\s*:\s*)(?P<value>\S.*)$")
_BASE64ISH = re.compile(r"^[\"']?[A-Za-z0-9+/=_\-]{24,}[\"']?$")

COMMANDS = (
    ("rebase", "rebase this MR on the default branch (only done on request or conflict)"),
    ("recreate", "rebuild the branch from scratch, discarding edits"),
    (
        "ignore [CONTROL] [reason]",
        "close and stop proposing this (or one control) until it changes",
    ),
    ("unignore", "propose it again"),
    ("explain [CONTROL]", "explain a control in a reply"),
    ("retry", "run the checks and fixes for this MR again"),
)


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
    lines = difflib.unified_diff(
        before,
        after,
        fromfile="/dev/null" if change.is_new else f"a/{change.path}",
        tofile=f"b/{change.path}",
        n=context,
        lineterm="",
    )
    return "\n".join(redact_line(line) for line in lines)


@cache
def _builtin(name: str) -> str:
    return resources.files("bot").joinpath("templates", name).read_text(encoding="utf-8")


def environment(overrides: Mapping[str, str] | None = None) -> jinja2.Environment:
    """A Jinja2 environment over the built-in templates and a repository's overrides."""
    loader = jinja2.ChoiceLoader(
        [
            jinja2.DictLoader(dict(overrides or {})),
            jinja2.FunctionLoader(lambda name: _builtin(name)),
        ]
    )
    env = jinja2.Environment(
        loader=loader,
        undefined=jinja2.StrictUndefined,
        autoescape=False,
        keep_trailing_newline=True,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters["md"] = escape_markdown
    return env


def escape_markdown(text: object) -> str:
    """Neutralise Markdown/HTML in untrusted text (resource names, reasons, comments)."""
    out = str(text).replace("\r", " ").replace("\n", " ")
    out = out.replace("<", "&lt;").replace(">", "&gt;")
    return re.sub(r"([\\`*_\[\]|#!@~])", r"\\\1", out)


def _fixer_explanations(change_set: ChangeSet) -> list[dict[str, Any]]:
    from fixers.registry import by_control
    from fixers.templates import explanation_template

    env = jinja2.Environment(undefined=jinja2.StrictUndefined, autoescape=False)
    seen: dict[str, dict[str, Any]] = {}
    for fix in change_set.fixes:
        if fix.fixer in seen:
            seen[fix.fixer]["notes"].extend(
                n for n in fix.notes if n not in seen[fix.fixer]["notes"]
            )
            continue
        fixer = by_control()[fix.finding.control_id]
        text = env.from_string(explanation_template(fix.fixer)).render(
            fixer=fixer,
            finding=fix.finding,
            notes=list(fix.notes),
            values_used=list(fix.values_used),
        )
        seen[fix.fixer] = {
            "name": fix.fixer,
            "risk": fix.risk.label,
            "text": text.strip(),
            "notes": list(fix.notes),
            "values_used": list(dict.fromkeys(fix.values_used)),
        }
    return list(seen.values())


def describe_change_set(
    change_set: ChangeSet,
    *,
    marker: str,
    bot_username: str = "kube-remedy",
    scores: Mapping[str, tuple[float, float]] | None = None,
    overrides: Mapping[str, str] | None = None,
    limit: int = GITLAB_DESCRIPTION_LIMIT,
) -> str:
    """The merge-request description: controls, why, what changed, risk, tests, commands."""
    if change_set.meta.get("kind") == "waiver":
        from bot.waivers import describe_waiver

        return describe_waiver(change_set, marker=marker, overrides=overrides)
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
    locations = {}
    for fix in change_set.fixes:
        loc = fix.location
        locations.setdefault((loc.path, loc.why), loc)
    diffs = [{"path": c.path, "new": c.is_new, "diff": unified_diff(c)} for c in change_set.files]
    context = {
        "cs": change_set,
        "controls": controls,
        "explanations": _fixer_explanations(change_set),
        "resources": sorted({str(f.resource) for f in change_set.findings}),
        "locations": list(locations.values()),
        "diffs": diffs,
        "unresolved": change_set.unresolved,
        "commands": COMMANDS,
        "bot": bot_username,
        "scores": dict(scores or {}),
        "marker": marker,
        "summarised": False,
    }
    template = environment(overrides).get_template("merge_request.md.j2")
    text = template.render(**context)
    if len(text) > limit:
        # Too big for GitLab: keep everything but the diffs, which reviewers see in the MR anyway.
        context["diffs"] = [{"path": d["path"], "new": d["new"], "diff": ""} for d in diffs]
        context["summarised"] = True
        text = template.render(**context)
        if len(text) > limit:
            text = text[: limit - len(marker) - 200] + "\n\n…(truncated)\n\n" + marker + "\n"
    return text
