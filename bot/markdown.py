"""The one place that makes untrusted text safe to publish: GitLab Markdown, titles, commits.

Names, paths, reasons and comments come from scan reports and cd-config, written by people the
bot does not trust. Every such string passes through here on its way into a merge-request
title, description or note, a commit message, the dashboard issue, a review suggestion or a
chat reply:

- `single_line`  plain text for titles and commit subjects: one line, no control, ANSI or bidi
                 characters, no ``@mention`` or ``#123`` reference GitLab would act on.
- `escape`       running Markdown text: the same cleaning, then every character Markdown, HTML
                 or GitLab references give a meaning to is escaped, and a leading ``/`` (a quick
                 action) too. Templates apply it to every ``{{ value }}`` by default (the
                 environment's ``finalize``), so a new field cannot forget it.
- `code`         an inline code span the value cannot break out of.
- `fence`        a fenced code block its content cannot close.
- `guard`        the last pass over a whole document: no line may start a quick action.

`Md` marks text that is already safe Markdown (rendered by the bot from escaped parts), so it
is not escaped twice.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Callable
from typing import Any

import jinja2
from jinja2.sandbox import ImmutableSandboxedEnvironment

TITLE_LIMIT = 255
"""GitLab refuses merge-request titles longer than this."""

_ANSI = re.compile(r"\x1b(?:\[[0-?]*[ -/]*[@-~]|\][^\x07\x1b]*(?:\x07|\x1b\\)?|[@-Z\\-_])")
_SPACES = re.compile(r"[ \t]{2,}")
_MENTION = re.compile(r"@")
_ISSUE_REF = re.compile(r"([#!])(?=\d)")
_MD_SPECIAL = re.compile(r"([\\`*_{}\[\]#!|~$%^])")
_LEADING = re.compile(r"^(\s*)([/+=-])")
_BACKTICKS = re.compile(r"`+")
_QUICK_ACTION = re.compile(r"^/", re.M)
_BROADCAST = re.compile(r"(?<![\w\\])@(all|here|channel|everyone)\b", re.I)
_FENCE_LINE = re.compile(r"^ {0,3}(`{3,}|~{3,})")
_ZWSP = "\u200b"


class Md(str):
    """Markdown that is safe to publish as it is (the bot built it from escaped parts)."""

    __slots__ = ()


def _invisible(ch: str) -> bool:
    return unicodedata.category(ch) in ("Cf", "Cs", "Co", "Cn")


def clean(text: object) -> str:
    """One line of visible text: ANSI sequences and invisible characters (bidi overrides,
    zero-width, BOM) removed, newlines and other control characters turned into spaces."""
    out = str(text)
    if out.isprintable():
        return out
    out = _ANSI.sub("", out)
    return "".join("" if _invisible(ch) else " " if not ch.isprintable() else ch for ch in out)


def single_line(text: object, limit: int = TITLE_LIMIT) -> str:
    """Plain text for a title or a commit subject (not Markdown: GitLab renders titles without
    it, so a backslash would show): one line, at most ``limit`` characters, and no ``@name``
    or ``#123`` GitLab would turn into a mention or an issue reference (a zero-width space
    follows the sign, as bots commonly do)."""
    out = _SPACES.sub(" ", clean(text)).strip()
    out = _MENTION.sub("@" + _ZWSP, out)
    out = _ISSUE_REF.sub(r"\1" + _ZWSP, out)
    if len(out) > limit:
        out = out[: limit - 1].rstrip() + "…"
    return out


def escape(text: object) -> Md:
    """Running Markdown text that shows ``text`` literally and does nothing else.

    HTML is entity-escaped (safe inside raw HTML too), Markdown and GitLab reference signs are
    backslash-escaped (GitLab honours ``\\@``, ``\\#``, ``\\!``, ``\\~``, ``\\$``, ``\\%``), and a
    leading ``/``, ``-``, ``+`` or ``=`` is escaped so the value cannot start a
    quick action, a list, a heading or a quote when a template puts it first on a line."""
    if isinstance(text, Md):
        return text
    out = clean(text)
    out = out.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
    out = _MD_SPECIAL.sub(r"\\\1", out)
    out = out.replace("@", "\\@")
    out = _LEADING.sub(lambda m: m.group(1) + "\\" + m.group(2), out)
    return Md(out)


def code(text: object) -> Md:
    """An inline code span showing ``text`` (one line) verbatim: the delimiter is one backtick
    longer than any run inside, so the value cannot close it. GitLab ignores mentions,
    references and HTML inside code."""
    out = clean(text)
    if not out.strip():
        return escape(out)
    longest = max((len(run) for run in _BACKTICKS.findall(out)), default=0)
    ticks = "`" * (longest + 1)
    pad = " " if out.startswith("`") or out.endswith("`") else ""
    return Md(f"{ticks}{pad}{out}{pad}{ticks}")


def _visible(ch: str) -> str:
    return f"[U+{ord(ch):04X}]"


def fence(content: object, info: object = "") -> Md:
    """A fenced code block holding ``content`` line for line.

    The fence is three backticks (what GitLab's quick-action scanner knows) unless the content
    holds a backtick run as long, then one longer, so no line can close it early. Carriage
    returns, other control characters and invisible ones (bidi overrides, zero-width) are shown
    as ``[U+XXXX]``: a reviewer must see them, and they must not split or reorder lines.

    ``content`` given as a list of lines keeps their count: ``[""]`` is one empty line, ``[]``
    none (in a suggestion: a blank line versus a deletion)."""
    if isinstance(content, list | tuple):
        text, has_lines = "\n".join(map(str, content)), bool(content)
    else:
        text = str(content)
        has_lines = bool(text)
    text = text.replace("\r\n", "\n")
    if not text.replace("\n", "").replace("\t", "").isprintable():
        text = "".join(ch if ch in "\n\t" or ch.isprintable() else _visible(ch) for ch in text)
    longest = max((len(run) for run in _BACKTICKS.findall(text)), default=0)
    ticks = "`" * max(3, longest + 1)
    label = clean(info).replace("`", "").strip()
    body = f"{text}\n" if has_lines else ""  # no content is no line (a suggestion that deletes)
    return Md(f"{ticks}{label}\n{body}{ticks}")


def comment(text: object) -> Md:
    """Text for inside an HTML comment (``<!-- ... -->``): one line that cannot end it."""
    out = clean(text).replace("--", "-").replace(">", "").replace("<", "")
    return Md(out)


def guard(text: str) -> str:
    """The last pass over a whole document the bot posts.

    Whatever produced it (a repository's own template included), no line may start with ``/``
    (GitLab would run it as a quick action, whatever fences surround it: its scanner does not
    parse Markdown like the renderer does), and outside code blocks no ``@all``/``@here`` may
    notify everyone. Carriage returns become newlines, as GitLab reads them."""
    text = text.replace("\r\n", "\n").replace("\r", "\n")
    text = _QUICK_ACTION.sub("\\\\/", text)
    out: list[str] = []
    opened: str | None = None
    for line in text.split("\n"):
        found = _FENCE_LINE.match(line)
        if opened is None:
            if found:
                opened = found.group(1)
            else:
                line = _outside_code_spans(line, lambda part: _BROADCAST.sub(r"\\@\1", part))
        elif _closes(found, opened, line):
            opened = None
        out.append(line)
    return "\n".join(out)


# A backslash-escaped backtick opens no code span, so it shields nothing.
_CODE_SPAN = re.compile(r"(?<![\\`])(`+)(?!`).*?(?<!`)\1(?!`)")


def _outside_code_spans(line: str, change: Callable[[str], str]) -> str:
    """``line`` with ``change`` applied to the text outside its inline code spans (GitLab
    processes no mention inside code, and a backslash there would show)."""
    out: list[str] = []
    at = 0
    for span in _CODE_SPAN.finditer(line):
        out.append(change(line[at : span.start()]))
        out.append(span.group())
        at = span.end()
    out.append(change(line[at:]))
    return "".join(out)


def _closes(found: re.Match[str] | None, opened: str, line: str) -> bool:
    return (
        found is not None
        and found.group(1)[0] == opened[0]
        and len(found.group(1)) >= len(opened)
        and not line.strip().strip(opened[0])
    )


def _finalize(value: Any) -> Any:
    return value if isinstance(value, Md) else escape(value)


def markdown_environment(loader: jinja2.BaseLoader | None = None) -> jinja2.Environment:
    """The Jinja2 environment every Markdown template renders in.

    Sandboxed (no attribute starting with ``_``, no mutation of the context, ``range`` bounded),
    ``StrictUndefined``, and every ``{{ value }}`` escaped with `escape` unless it is `Md`.
    Filters: ``md`` (escape explicitly; kept for older templates), ``code``, ``fence``,
    ``comment``, ``single_line``."""
    env = ImmutableSandboxedEnvironment(
        loader=loader,
        undefined=jinja2.StrictUndefined,
        autoescape=False,
        finalize=_finalize,
        keep_trailing_newline=True,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    filters: dict[str, Callable[..., Any]] = {
        "md": escape,
        "code": code,
        "fence": fence,
        "comment": comment,
        "single_line": single_line,
    }
    env.filters.update(filters)
    return env
