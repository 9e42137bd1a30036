"""Kubescape's own `kubescape fix` golden pairs, applied with our applier, compared byte for byte.

Each input's header comment states its fix in yq syntax; we translate it into our edits:
``del(select(di==N).p)`` -> Remove, ``select(di==N).p |= v`` / ``= v`` / ``: v`` -> Set,
``select(di==N).p += [a, b]`` -> AppendUnique per item. A header applies to the document it
sits in (Kubescape's removals/tc-04 says ``di==0`` in its second document but expects the
change there).
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml

from fixers.edits import apply_edits
from fixers.model import AppendUnique, Edit, Remove, Set, YamlPath
from tests.conftest import corpus_path

pytestmark = pytest.mark.corpus

FIXHANDLER = ("manifests", "kubescape-fixhandler-testdata")

CASES = [
    *(f"inserts/tc-{n:02d}" for n in range(1, 13)),
    *(f"removals/tc-{n:02d}" for n in range(1, 5)),
    *(f"replaces/tc-{n:02d}" for n in range(1, 3)),
    *(f"hybrids/tc-{n:02d}" for n in range(1, 6)),
]

NO_HEADER: dict[str, dict[int, list[Edit]]] = {
    # This input has no header comment; the fix is the one its expected output shows.
    "inserts/tc-12": {
        0: [Set(("spec", "containers", 0, "securityContext", "allowPrivilegeEscalation"), False)]
    },
}

EXPECTED_DIFFERENCES: dict[str, tuple[str, str]] = {
    # case -> (the line Kubescape writes, the line we write), with why ours is better.
    # These files put block sequences flush with their key (`containers:\n- name: x`);
    # Kubescape's new `drop:` list is indented anyway, mixing two styles in one file.
    # We follow the file's own convention, so a reviewer sees one consistent style.
    "inserts/tc-02": ("          - NET_RAW", "        - NET_RAW"),
    "inserts/tc-04": ("              - NET_RAW", "            - NET_RAW"),
}

_PATH_STEP = re.compile(r"\.([A-Za-z_][\w-]*)|\[(\d+)\]")
_FIX = re.compile(
    r"^(?:del\(select\(di==\d+\)(?P<del>[^)]*)\))"
    r"|^select\(di==\d+\)(?P<path>[.\w\[\]-]+)\s*(?P<op>\|=|\+=|=|:)\s*(?P<value>.+)$"
)


def _path(text: str) -> YamlPath:
    steps: list[str | int] = []
    pos = 0
    for match in _PATH_STEP.finditer(text):
        assert match.start() == pos, f"cannot parse path {text!r}"
        pos = match.end()
        steps.append(match.group(1) if match.group(1) else int(match.group(2)))
    assert pos == len(text), f"cannot parse path {text!r}"
    return tuple(steps)


def parse_header(text: str) -> dict[int, list[Edit]]:
    """The fixes stated in the header comments of each document of a fixhandler input."""
    fixes: dict[int, list[Edit]] = {}
    doc = 0
    seen_content = False
    for raw in text.splitlines():
        line = raw.strip()
        if line == "---":
            if seen_content:
                doc += 1
                seen_content = False
            continue
        if not line.startswith("#"):
            seen_content = seen_content or bool(line)
            continue
        statement = re.sub(r"^\d+\)\s*", "", line.lstrip("#").strip())
        if statement.startswith('"') and statement.endswith('"'):
            statement = statement[1:-1]
        match = _FIX.match(statement)
        if not match:
            continue
        edits = fixes.setdefault(doc, [])
        if match.group("del") is not None:
            edits.append(Remove(_path(match.group("del"))))
            continue
        path = _path(match.group("path"))
        value = yaml.safe_load(match.group("value"))
        if match.group("op") == "+=":
            items = value if isinstance(value, list) else [value]
            edits.extend(AppendUnique(path, item) for item in items)
        else:
            edits.append(Set(path, value))
    return fixes


def _pair(case: str) -> tuple[Path, Path]:
    folder, prefix = case.split("/")
    base = corpus_path(*FIXHANDLER, folder)
    inputs = sorted(base.glob(f"{prefix}-00-*.yaml"))
    assert len(inputs) == 1, f"{case}: expected one input, found {inputs}"
    return inputs[0], base / f"{prefix}-01-expected.yaml"


def _read(path: Path) -> str:
    with path.open(encoding="utf-8", newline="") as handle:
        return handle.read()


@pytest.mark.parametrize("case", CASES)
def test_kubescape_fixhandler_pair(case: str) -> None:
    source, expected_path = _pair(case)
    text, expected = _read(source), _read(expected_path)
    fixes = NO_HEADER.get(case) or parse_header(text)
    assert fixes, f"{case}: no fix found in the header"
    result = text
    for doc, edits in sorted(fixes.items()):
        result = apply_edits(result, edits, doc)
    if case in EXPECTED_DIFFERENCES:
        theirs, ours = EXPECTED_DIFFERENCES[case]
        assert theirs in expected.splitlines(), f"{case}: stale expected difference"
        expected = "\n".join(ours if line == theirs else line for line in expected.split("\n"))
    assert result == expected
    # idempotence: the same edits on our own output change nothing
    again = result
    for doc, edits in sorted(fixes.items()):
        if not any(isinstance(e, Remove) and isinstance(e.path[-1], int) for e in edits):
            again = apply_edits(again, edits, doc)
    assert again == result


def test_every_pair_is_listed() -> None:
    base = corpus_path(*FIXHANDLER)
    found = {f"{p.parent.name}/{p.name[:5]}" for p in base.glob("*/tc-*-00-*.yaml")}
    assert found == set(CASES)
