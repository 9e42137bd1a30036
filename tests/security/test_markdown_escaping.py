"""Hostile names, paths, reasons and file contents cannot act through what the bot posts.

GitLab runs a line starting with ``/`` as a quick action (``/approve``, ``/merge``) in
descriptions and notes, notifies everyone for ``@all``, renders raw HTML, and trusts code spans
and fences to hold what they show. Every template (merge request, dashboard, review suggestion,
each fixer's explanation) is rendered here with hostile text in every string field and checked
with a CommonMark parser; titles and commit messages are checked as single lines. The path from
issue 12 (``apps/x\\n/approve\\n``) goes end to end through ``remedy apply``.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from markdown_it import MarkdownIt

from bot.cli import main
from bot.forge.base import ChangeRequest
from bot.forge.local import LocalForge
from bot.lifecycle import marker
from bot.markdown import clean, code, escape, fence, guard, single_line
from bot.model import ChangeSet, FileChange, Location, PlannedFix, Unfixable
from bot.plan import Plan
from bot.publish import publish_plan
from bot.render import describe_change_set, render_explanation, unified_diff
from bot.repo_config import RepoConfig
from bot.review import _Step, render_body
from bot.service import ProjectPlan, render_dashboard
from bot.sources.base import Report
from fixers.model import Finding, ResourceRef, Risk
from fixers.registry import all_fixers

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = ROOT / "examples" / "cd-config"
REPORT = ROOT / "examples" / "kubescape-report.json"

PIECES = [
    "/approve",
    "/merge",
    "\n/approve\n",
    "\r/merge",
    "\nINJECTED",
    "\r\nINJECTED",
    "\u2028INJECTED",
    "\x85INJECTED",
    "@all",
    "@here",
    "@platform/web-group",
    "`",
    "```",
    "~~~",
    "\n```\n",
    "<script>alert(1)</script>",
    "</code>",
    "</details>",
    "</summary>",
    "<img src=x onerror=alert(1)>",
    "<!--",
    "-->",
    "&#60;script&#62;",
    "\u202e",
    "\u2066",
    "\u200b",
    "\ufeff",
    "\x1b[31m",
    "\x1b]8;;http://evil\x07",
    "\x00",
    "\t",
    "|",
    "[x](javascript:alert(1))",
    "![x](http://evil/p.png)",
    "#1",
    "!1",
    "~label",
    "%milestone",
    "$1",
    "\\",
    "*",
    "_",
    "> ",
    "- ",
    "    ",
]
HOSTILE = st.lists(
    st.one_of(st.sampled_from(PIECES), st.text(max_size=4)), min_size=1, max_size=6
).map("".join)
FIELDS = [
    "kind",
    "namespace",
    "name",
    "container",
    "message",
    "scanner_id",
    "path",
    "why",
    "note",
    "value",
    "reason",
    "title",
    "before",
    "after",
]
HOSTILE_FIELDS = st.fixed_dictionaries({f: HOSTILE for f in FIELDS})
SETTINGS = settings(
    max_examples=40, deadline=None, database=None, suppress_health_check=[HealthCheck.too_slow]
)
ALLOWED_TAG = re.compile(r"</?(details|summary|b|sub)( open)?>|<!-- kube-remedy[^\n]*?-->")
UNESCAPED_AT = re.compile(r"(?<!\\)@(?!kube-remedy\b)")
CODE_SPAN = re.compile(r"(`+)(?!`).*?(?<!`)\1(?!`)")


# --------------------------------------------------------------------------- the invariants


def assert_safe_markdown(doc: str, fences: list[str] | None = None) -> None:
    """What GitLab must never see in a document the bot posts, whatever the input."""
    assert all(ch in "\n\t" or ch.isprintable() for ch in doc), "control or invisible character"
    tokens = MarkdownIt("commonmark").parse(doc)
    inside: set[int] = set()
    found_fences = []
    for token in tokens:
        if token.type == "fence" and token.map:
            inside.update(range(token.map[0] + 1, token.map[1] - 1))
            found_fences.append(token.content)
        if token.type in ("html_block", "html_inline"):
            assert "<" not in ALLOWED_TAG.sub("", token.content), token.content
        for child in token.children or ():
            if child.type == "html_inline":
                assert ALLOWED_TAG.fullmatch(child.content), child.content
    for number, line in enumerate(doc.split("\n")):
        assert not line.startswith("/"), f"quick action on line {number}: {line!r}"
        if number in inside:
            continue
        assert not line.startswith("INJECTED"), f"a value broke the line: {line!r}"
        text = CODE_SPAN.sub("", line)
        assert not UNESCAPED_AT.search(text), f"mention outside code: {line!r}"
    if fences is not None:
        assert found_fences == fences, "a value opened or closed a code block"


def _inline_codes(doc: str) -> list[str]:
    out = []
    for token in MarkdownIt("commonmark").parse(doc):
        out += [c.content for c in token.children or () if c.type == "code_inline"]
    return out


def _as_code_span_shows(value: str) -> str:
    text = clean(value)
    if text.startswith(" ") and text.endswith(" ") and text.strip():
        return text[1:-1]
    return text


def _fenced(content: str) -> str:
    """What a fence shows of ``content`` (CommonMark token content: lines plus a newline)."""
    inner = fence(content).split("\n", 1)[1].rsplit("\n", 1)[0]
    return inner + "\n" if inner else ""


# --------------------------------------------------------------------------- building inputs


def _finding(h: dict[str, str], control: str = "C-0016") -> Finding:
    return Finding(
        control_id=control,
        scanner_ids=(h["scanner_id"],),
        resource=ResourceRef(kind=h["kind"], namespace=h["namespace"], name=h["name"]),
        container=h["container"],
        message=h["message"],
    )


def _change_set(h: dict[str, str]) -> ChangeSet:
    finding = _finding(h)
    fix = PlannedFix(
        finding=finding,
        location=Location("manifest", h["path"], why=h["why"]),
        fixer="allow_privilege_escalation",
        family="security-context",
        risk=Risk.LOW,
        edits=(),
        notes=(h["note"],),
        values_used=(h["value"],),
    )
    return ChangeSet(
        key="security-context/hostile",
        title=h["title"],
        family="security-context",
        risk=Risk.LOW,
        fixes=(fix,),
        files=(FileChange(h["path"], h["before"], h["after"]),),
        unresolved=(Unfixable(_finding(h, "C-0017"), h["reason"]),),
        notes=(h["note"],),
    )


# --------------------------------------------------------------------------- property tests


@SETTINGS
@given(HOSTILE_FIELDS)
def test_merge_request_description(h: dict[str, str]) -> None:
    cs = _change_set(h)
    doc = describe_change_set(cs, marker=marker(cs.key, cs.findings_hash))
    diff = unified_diff(cs.files[0])
    assert_safe_markdown(doc, [_fenced(diff)] if diff else [])
    assert _as_code_span_shows(h["path"]) in _inline_codes(doc) or not clean(h["path"]).strip()


@SETTINGS
@given(HOSTILE_FIELDS)
def test_dashboard(h: dict[str, str]) -> None:
    cs = _change_set(h)
    waiting = _change_set({**h, "title": h["why"]})
    ignored = ChangeRequest(
        id=7,
        branch="remedy/" + cs.key,
        title=h["title"],
        description=marker(cs.key, cs.findings_hash),
        state="closed",
    )
    plan = Plan(
        (cs, waiting),
        (Unfixable(_finding(h, "C-0035"), h["reason"], "rbac"),),
    )
    pp = ProjectPlan(
        "platform/cd-config",
        plan,
        Report(scanner="kubescape", origin="test", findings=()),
        RepoConfig(),
        config_error=h["message"],
        template_error=h["why"],
    )
    assert_safe_markdown(render_dashboard(pp, [ignored]), [])


@SETTINGS
@given(HOSTILE_FIELDS, st.lists(HOSTILE, max_size=3))
def test_review_suggestion(h: dict[str, str], replacement: list[str]) -> None:
    lines = tuple(line for text in replacement for line in text.split("\n"))
    step = _Step("C-0016", Risk.LOW, h["name"], (h["note"],))
    controls = [{"id": "C-0016", "name": h["kind"], "severity": "High", "why": h["why"]}]
    doc = render_body("<!-- kube-remedy-review: 0123456789abcdef -->", 1, lines, [step], controls)
    assert_safe_markdown(doc)
    blocks = [t for t in MarkdownIt("commonmark").parse(doc) if t.type == "fence"]
    if blocks:  # posted verbatim, or not at all
        (block,) = blocks
        assert block.content == ("\n".join(lines) + "\n" if lines else "")


@SETTINGS
@given(HOSTILE_FIELDS)
def test_fixer_explanations(h: dict[str, str]) -> None:
    for fixer in all_fixers():
        text = render_explanation(fixer, _finding(h, fixer.controls[0]), [h["note"]], [h["value"]])
        assert_safe_markdown(text, None)


@SETTINGS
@given(HOSTILE)
def test_single_line_for_titles_and_commits(value: str) -> None:
    title = single_line(value)
    assert "\n" not in title and "\r" not in title and len(title) <= 255
    assert all(ch.isprintable() or ch == "\u200b" for ch in title)
    assert not re.search(r"@(?!\u200b)", title), "a mention survived"
    assert not re.search(r"#\d", title), "an issue reference survived"


@SETTINGS
@given(HOSTILE)
def test_escape_code_and_fence_hold(value: str) -> None:
    assert_safe_markdown("- " + escape(value))
    assert_safe_markdown("x " + escape(value))
    span = code(value)
    if clean(value).strip():
        assert _inline_codes("x " + span + " y") == [_as_code_span_shows(value)]
    assert_safe_markdown(guard("Before\n\n" + fence("+" + value, "diff") + "\n\nAfter"), None)


# --------------------------------------------------------------------------- named cases


@pytest.mark.parametrize(
    ("value", "absent"),
    [
        ("apps/x\n/approve\n", "\n/approve"),
        ("/merge", "\n/merge"),
        ("</code></summary></details><img src=x onerror=alert(1)>", "<img"),
        ("<script>alert(1)</script>", "<script"),
        ("x @all y", " @all"),
        ("abc\u202eexe.yaml", "\u202e"),
        ("\x1b[31mred\x1b[0m", "\x1b"),
        ("nul\x00byte", "\x00"),
    ],
)
def test_escape_named_attacks(value: str, absent: str) -> None:
    assert absent not in "\n" + escape(value)


def test_fence_cannot_be_closed_from_inside() -> None:
    block = fence("a\n```\n/approve\n````\nb", "diff")
    (token,) = [t for t in MarkdownIt("commonmark").parse(block) if t.type == "fence"]
    assert token.content == "a\n```\n/approve\n````\nb\n"
    assert guard(block).count("\n\\/approve") == 1  # and the guard still defuses the line


def test_guard_escapes_template_literal_quick_actions_and_broadcasts() -> None:
    text = guard("Hello @all\r/approve\n```\n@all in code\n```\n/merge")
    assert text == "Hello \\@all\n\\/approve\n```\n@all in code\n```\n\\/merge"


# --------------------------------------------------------------------------- end to end


def _git(repo: Path, *args: str) -> str:
    return subprocess.run(
        ["git", "-C", str(repo), *args], check=True, capture_output=True, text=True
    ).stdout


def test_issue_path_through_remedy_apply(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Issue 12: a manifest under ``apps/x\\n/approve\\n`` is refused alone (no forge writes a
    name with control characters), shown as text in the output, and never reaches a description,
    title or commit message as a quick action; the rest of the run goes on."""
    repo = tmp_path / "cd-config"
    shutil.copytree(EXAMPLE, repo)
    hostile_dir = repo / "apps" / "x\n" / "approve\n"
    hostile_dir.mkdir(parents=True)
    (repo / "apps" / "shop" / "frontend.yaml").rename(hostile_dir / "frontend.yaml")
    _git(repo, "init", "-q", "-b", "main")
    _git(repo, "add", "-A")
    _git(repo, "-c", "user.name=t", "-c", "user.email=t@x", "commit", "-qm", "cd-config")

    code_ = main(["apply", "--report", str(REPORT), "--repo", str(repo)])
    out = capsys.readouterr().out
    assert code_ == 1  # findings left: the refused ones
    assert "has control" in out  # "... has control characters in its path" (wrapped)
    assert not any(line.lstrip().startswith("/approve") for line in out.splitlines())
    forge = LocalForge(repo)
    changes = forge.find_changes()
    assert changes, "the rest of the run went on"
    for change in changes:
        assert "approve" not in change.branch and "\n" not in change.title
        assert_safe_markdown(change.description)
        written = forge.description_path(change).read_text(encoding="utf-8")
        assert not any(line.startswith("/") for line in written.split("\n"))
        message = _git(repo, "log", "-1", "--format=%B", change.branch)
        assert not any(line.startswith("/") for line in message.split("\n"))
        tree = _git(repo, "diff", "-z", "--name-only", "main", change.branch).split("\0")
        assert not any("approve" in path for path in tree)


def test_hostile_title_through_publish_and_local_forge(tmp_path: Path) -> None:
    repo = tmp_path / "cd-config"
    repo.mkdir()
    (repo / "a.yaml").write_text("a: 1\n")
    _git(repo, "init", "-q", "-b", "main")
    _git(repo, "add", "-A")
    _git(repo, "-c", "user.name=t", "-c", "user.email=t@x", "commit", "-qm", "init")
    h = {f: f"v-{f}" for f in FIELDS}
    h.update(
        title="fix\n/approve\nCo-authored-by: evil <e@x>\n@all #1 \u202e\x1b[2J",
        path="a.yaml",
        before="a: 1\n",
        after="a: 2\n",
    )
    forge = LocalForge(repo)
    result = publish_plan(
        forge,
        Plan((_change_set(h),), ()),
        Report(scanner="kubescape", origin="test", findings=()),
        RepoConfig(),
    )
    (decision,) = result.decisions
    assert decision.change is not None
    title = decision.change.title
    assert title == single_line(h["title"])
    message = _git(repo, "log", "-1", "--format=%B", decision.branch)
    assert message.strip().split("\n")[0] == title
    assert "\nCo-authored-by" not in message and "\n/approve" not in message
    assert "@all" not in message and "\u202e" not in message and "\x1b" not in message


def test_guard_leaves_code_spans_alone_but_not_escaped_backticks() -> None:
    # GitLab notifies nobody from inside code; a backslash-escaped backtick opens no code span.
    assert guard("see `@all` and @all") == "see `@all` and \\@all"
    assert guard("\\`@all\\`") == "\\`\\@all\\`"


def test_a_suggestion_of_one_blank_line_is_not_a_deletion() -> None:
    # found by the property above: [""] once rendered like [] (an empty block deletes the lines)
    assert fence([""], "suggestion:-0+0") == "```suggestion:-0+0\n\n```"
    assert fence([], "suggestion:-0+0") == "```suggestion:-0+0\n```"
    assert fence(["a", ""]) == "```\na\n\n```"
