from __future__ import annotations

import pytest

from bot.model import FileChange
from bot.render import escape_markdown, redact_line, unified_diff


@pytest.mark.parametrize(
    ("line", "expected"),
    [
        ("+  password: hunter2", "+  password: [redacted]"),
        ("   DB_TOKEN: abc", "   DB_TOKEN: [redacted]"),
        ("-   - name: API_KEY", "-   - name: API_KEY"),  # a key name alone is not a secret
        ("      value: c2VjcmV0LXNlY3JldC1zZWNyZXQtc2VjcmV0", "      value: [redacted]"),
        ('      value: "http://cart:6379"', '      value: "http://cart:6379"'),
        ("+    allowPrivilegeEscalation: false", "+    allowPrivilegeEscalation: false"),
        ("+automountServiceAccountToken: false", "+automountServiceAccountToken: false"),
        (
            "+      automountServiceAccountToken: {{ .Values.x }}",
            "+      automountServiceAccountToken: {{ .Values.x }}",
        ),
        ("+  tokenTTL: 3600", "+  tokenTTL: 3600"),
        ("+  token: 3600abc", "+  token: [redacted]"),
    ],
)
def test_redact_line(line: str, expected: str) -> None:
    assert redact_line(line) == expected


def test_diff_redacts_context_lines() -> None:
    change = FileChange("a.yaml", "a: 1\npassword: s3cr3t\n", "a: 2\npassword: s3cr3t\n")
    diff = unified_diff(change)
    assert "s3cr3t" not in diff
    assert "+a: 2" in diff


def test_escape_markdown_neutralises_injection() -> None:
    text = escape_markdown("evil](http://x) <img src=x> @all `code`\nnew line")
    assert "<img" not in text and "\n" not in text
    assert "\\]" in text and "\\@all" in text and "\\`" in text
