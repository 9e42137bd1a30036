"""Text from reports and cd-config reaches the terminal harmless: ANSI escapes, NUL, other C0/C1
controls and bidirectional overrides are shown as visible escapes, rich markup stays literal."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from bot.cli import safe
from tests.security._input_support import checkov_report, run

HOSTILE = "evil\x1b[2J\x1b]0;pwned\x07\x00\x9b31m\u202egpj.exe\u2066[bold red]x[/]\r"
RAW = ("\x1b", "\x00", "\x07", "\x9b", "\u202e", "\u2066", "\r")


def test_safe_escapes_every_control_and_bidi_character() -> None:
    shown = safe(HOSTILE)
    assert not any(c in shown for c in RAW)
    for visible in ("\\x1b[2J", "\\x00", "\\x07", "\\x9b", "\\u202e", "\\u2066", "\\x0d"):
        assert visible in shown
    assert safe("a\nb") == "a\\nb" and safe("a\nb", lines=True) == "a\nb"
    assert safe("Deployment shop/web ä 漢") == "Deployment shop/web ä 漢"


def test_plan_tables_show_hostile_names_escaped(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    report = checkov_report(tmp_path / "r.json", [(f"apps/{HOSTILE}.yaml", HOSTILE)])
    code, out, err = run(capsys, "plan", "--report", str(report), "--repo", str(tmp_path))
    assert code == 1
    assert not any(c in out + err for c in RAW)
    flat = "".join(out.split())
    assert "\\x1b[2J" in flat and "\\u202e" in flat
    assert "red]x[/]" in flat  # markup shown as text, not applied


def test_error_messages_are_escaped_and_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    report = tmp_path / "r.json"
    report.write_text(json.dumps({HOSTILE: 1, "a\nb": 2}))
    code, out, err = run(capsys, "plan", "--report", str(report), "--repo", str(tmp_path))
    assert code == 2
    assert not any(c in out + err for c in RAW)
    assert "\\x1b" in err and len(err.strip().splitlines()) == 1
