"""Named before/after cases for the applier (`fixers.edits`): only the needed lines change."""

from __future__ import annotations

import dataclasses
import difflib
import random
import re
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import yaml

from bot.safe_load import yaml_documents
from fixers import edits as edits_module
from fixers.edits import EditError, apply_edits, load_documents, render_manifest
from fixers.model import AppendUnique, Edit, Ensure, Remove, Set
from tests.conftest import corpus_path

C0 = ("spec", "containers", 0)


@dataclass(frozen=True)
class Case:
    name: str
    before: str
    edits: tuple[Edit, ...]
    after: str
    document: int = 0
    idempotent: bool = True
    tags: tuple[str, ...] = field(default=())


POD = """\
apiVersion: v1
kind: Pod
metadata:
  name: web  # the front end
spec:
  containers:
  - name: app
    image: nginx:1.25
"""

CASES = [
    Case(
        "insert-into-mapping",
        "a: 1\nb: 2\n",
        (Set(("c",), "x"),),
        "a: 1\nb: 2\nc: x\n",
    ),
    Case(
        "insert-nested-creates-parents",
        POD,
        (Set((*C0, "securityContext", "allowPrivilegeEscalation"), False),),
        POD + "    securityContext:\n      allowPrivilegeEscalation: false\n",
    ),
    Case(
        "insert-after-last-key-not-after-trailing-comments",
        "spec:\n  a: 1\n\n  # about b\nb: 2\n",
        (Set(("spec", "c"), True),),
        "spec:\n  a: 1\n  c: true\n\n  # about b\nb: 2\n",
    ),
    Case(
        "insert-at-end-of-file-without-newline",
        "a:\n  b: 1",
        (Set(("a", "c"), 2),),
        "a:\n  b: 1\n  c: 2",
    ),
    Case(
        "replace-scalar-keeps-trailing-comment",
        "a:\n  b: true  # keep me\n  c: 1\n",
        (Set(("a", "b"), False),),
        "a:\n  b: false  # keep me\n  c: 1\n",
    ),
    Case(
        "replace-keeps-double-quotes",
        'image:\n  tag: "1.0"\n',
        (Set(("image", "tag"), "1.1"),),
        'image:\n  tag: "1.1"\n',
    ),
    Case(
        "replace-keeps-single-quotes",
        "image:\n  tag: 'v1'\n",
        (Set(("image", "tag"), "v2"),),
        "image:\n  tag: 'v2'\n",
    ),
    Case(
        "strings-that-look-like-other-types-are-quoted",
        "a: {}\n",
        (
            Set(("a", "flag"), "true"),
            Set(("a", "num"), "1"),
            Set(("a", "cpu"), "100m"),
            Set(("a", "n"), 1),
        ),
        'a:\n  flag: "true"\n  num: "1"\n  cpu: 100m\n  n: 1\n',
    ),
    Case(
        "replace-block-mapping-by-scalar",
        "a:\n  b: 1\n  c: 2\nd: 3\n",
        (Set(("a",), None),),
        "a: null\nd: 3\n",
    ),
    Case(
        "set-equal-value-changes-nothing",
        "a: 'x'  # same\n",
        (Set(("a",), "x"),),
        "a: 'x'  # same\n",
    ),
    Case(
        "ensure-keeps-existing-value",
        "limits:\n  cpu: 500m\n",
        (Ensure(("limits", "cpu"), "100m"), Ensure(("limits", "memory"), "128Mi")),
        "limits:\n  cpu: 500m\n  memory: 128Mi\n",
    ),
    Case(
        "ensure-fills-explicit-null",
        "resources:\n  limits: null\n  requests:\n    cpu: 10m\n",
        (Ensure(("resources", "limits", "memory"), "64Mi"),),
        "resources:\n  limits:\n    memory: 64Mi\n  requests:\n    cpu: 10m\n",
    ),
    Case(
        "set-under-empty-key",
        "podSecurityContext:\nother: 1\n",
        (Set(("podSecurityContext", "fsGroup"), 2000),),
        "podSecurityContext:\n  fsGroup: 2000\nother: 1\n",
    ),
    Case(
        "remove-key-with-block-value",
        "a:\n  b:\n    c: 1\n  # kept\n  d: 2\n",
        (Remove(("a", "b")),),
        "a:\n  # kept\n  d: 2\n",
    ),
    Case(
        "remove-absent-is-noop",
        "a: [1]\nn:\n",
        (Remove(("b", "c")), Remove(("a", 3)), Remove(("n", "x")), Remove(("n", 0))),
        "a: [1]\nn:\n",
    ),
    Case(
        "remove-last-key-leaves-empty-mapping",
        "sc:\n  privileged: true\nx: 1\n",
        (Remove(("sc", "privileged")),),
        "sc: {}\nx: 1\n",
    ),
    Case(
        "remove-first-key-of-sequence-item",
        "c:\n- name: a\n  image: b\n",
        (Remove(("c", 0, "name")),),
        "c:\n- image: b\n",
    ),
    Case(
        "remove-sequence-item",
        "c:\n  - a\n  - b\n  - c\n",
        (Remove(("c", 1)),),
        "c:\n  - a\n  - c\n",
        idempotent=False,
    ),
    Case(
        "remove-last-sequence-item-leaves-empty-list",
        "add:\n- NET_ADMIN\nx: 1\n",
        (Remove(("add", 0)),),
        "add: []\nx: 1\n",
        idempotent=False,
    ),
    Case(
        "remove-from-flow-list",
        "drop: [A, B, C]\n",
        (Remove(("drop", 1)),),
        "drop: [A, C]\n",
        idempotent=False,
    ),
    Case(
        "remove-from-flow-mapping",
        "sc: {a: 1, b: 2, c: 3,}\n",
        (Remove(("sc", "c")), Remove(("sc", "a"))),
        "sc: {b: 2,}\n",
    ),
    Case(
        "append-to-indented-block-list",
        "drop:\n  - NET_RAW\nx: 1\n",
        (AppendUnique(("drop",), "ALL"),),
        "drop:\n  - NET_RAW\n  - ALL\nx: 1\n",
    ),
    Case(
        "append-to-non-indented-block-list",
        "drop:\n- NET_RAW\nx: 1\n",
        (AppendUnique(("drop",), "ALL"),),
        "drop:\n- NET_RAW\n- ALL\nx: 1\n",
    ),
    Case(
        "append-to-flow-list-keeps-quotes",
        'drop: ["NET_RAW"]\n',
        (AppendUnique(("drop",), "ALL"),),
        'drop: ["NET_RAW", "ALL"]\n',
    ),
    Case(
        "append-to-empty-flow-list-becomes-block",
        "volumes: []  # none yet\n",
        (AppendUnique(("volumes",), {"name": "tmp", "emptyDir": {}}, key="name"),),
        "volumes:  # none yet\n  - name: tmp\n    emptyDir: {}\n",
    ),
    Case(
        "append-creates-missing-list-in-file-style",
        "spec:\n  containers:\n  - name: a\n",
        (AppendUnique((*C0, "securityContext", "capabilities", "drop"), "ALL"),),
        "spec:\n  containers:\n  - name: a\n    securityContext:\n      capabilities:\n"
        "        drop:\n        - ALL\n",
    ),
    Case(
        "append-with-key-matches-by-name",
        "volumes:\n- name: tmp\n  emptyDir: {}\n",
        (AppendUnique(("volumes",), {"name": "tmp", "emptyDir": {"medium": "Memory"}}, "name"),),
        "volumes:\n- name: tmp\n  emptyDir: {}\n",
    ),
    Case(
        "append-mapping-to-indented-list",
        "c:\n    - name: a\n      image: x\n",
        (AppendUnique(("c",), {"name": "b", "image": "y"}),),
        "c:\n    - name: a\n      image: x\n    - name: b\n      image: y\n",
    ),
    Case(
        "sequence-style-follows-the-documents-majority",
        "a:\n  - x\nb:\n- y\nc:\n- z\nd: {}\n",
        (AppendUnique(("d", "e"), "w"),),
        "a:\n  - x\nb:\n- y\nc:\n- z\nd:\n  e:\n  - w\n",
    ),
    Case(
        "insert-after-keep-chomped-block-scalar",
        "script: |+\n  run\n\nnext: 1\n",
        (Set(("added",), True), Set(("script",), "run")),
        "script: run\nnext: 1\nadded: true\n",
    ),
    Case(
        "replace-folded-block-scalar",
        "msg: >\n  long\n  text\nb: 1\n",
        (Set(("msg",), "short"),),
        "msg: short\nb: 1\n",
    ),
    Case(
        "mapping-indent-width-detected",
        "a:\n    b:\n        c: 1\n",
        (Set(("a", "d", "e"), 1),),
        "a:\n    b:\n        c: 1\n    d:\n        e: 1\n",
    ),
    Case(
        "crlf-kept",
        "a:\r\n  b: 1\r\n# tail\r\n",
        (Set(("a", "c", "d"), "x"), AppendUnique(("a", "l"), "y")),
        "a:\r\n  b: 1\r\n  c:\r\n    d: x\r\n  l:\r\n    - y\r\n# tail\r\n",
    ),
    Case(
        "helm-create-empty-mapping-with-commented-hints",
        "resources: {}\n  # limits:\n  #   cpu: 100m\n\nnodeSelector: {}\n",
        (Set(("resources", "limits", "cpu"), "100m"),),
        "resources:\n  limits:\n    cpu: 100m\n  # limits:\n  #   cpu: 100m\n\nnodeSelector: {}\n",
    ),
    Case(
        "helm-create-empty-mapping-on-its-own-line",
        "podSecurityContext:\n  {}\n  # fsGroup: 2000\n\nx: 1\n",
        (Set(("podSecurityContext", "fsGroup"), 2000),),
        "podSecurityContext:\n  fsGroup: 2000\n  # fsGroup: 2000\n\nx: 1\n",
    ),
    Case(
        "flow-mapping-edited-inside",
        "sc: {runAsNonRoot: true}\n",
        (Set(("sc", "readOnlyRootFilesystem"), True),),
        "sc: {runAsNonRoot: true, readOnlyRootFilesystem: true}\n",
    ),
    Case(
        "multiline-json-flow-mapping-gets-a-line",
        'sc:\n  {\n    "drop": ["ALL"],\n    "runAsNonRoot": true,\n  }\n',
        (Set(("sc", "readOnlyRootFilesystem"), True),),
        'sc:\n  {\n    "drop": ["ALL"],\n    "runAsNonRoot": true,\n'
        '    "readOnlyRootFilesystem": true,\n  }\n',
    ),
    Case(
        "multi-doc-edits-only-the-indexed-document",
        "a: 1\n---\n# second\nb: 2\n---\nc: 3\n...\n",
        (Set(("b2",), 3),),
        "a: 1\n---\n# second\nb: 2\nb2: 3\n---\nc: 3\n...\n",
        document=1,
    ),
    Case(
        "crlf-multi-doc",
        "a: 1\r\n---\r\nb:\r\n- x\r\n",
        (AppendUnique(("b",), "y"),),
        "a: 1\r\n---\r\nb:\r\n- x\r\n- y\r\n",
        document=1,
    ),
    Case(
        "remove-only-key-of-document-then-add",
        "# keep\nonly: 1\n",
        (Remove(("only",)), Set(("new", "k"), "v")),
        "# keep\nnew:\n  k: v\n",
    ),
    Case(
        "leading-document-marker-kept",
        "# header\n---\na: 1\n",
        (Set(("b",), 2),),
        "# header\n---\na: 1\nb: 2\n",
    ),
    Case(
        "edit-comment-above-inserted-lines",
        "spec: {}\n",
        (Set(("spec", "hostNetwork"), False, comment="kube-remedy: C-0041"),),
        "spec:\n  # kube-remedy: C-0041\n  hostNetwork: false\n",
    ),
    Case(
        "edit-comment-trailing-on-replaced-line",
        "spec:\n  hostNetwork: true\n",
        (Set(("spec", "hostNetwork"), False, comment="kube-remedy: C-0041"),),
        "spec:\n  hostNetwork: false  # kube-remedy: C-0041\n",
    ),
    Case(
        "set-sequence-item-by-index",
        "args:\n- --a\n- '--b'\n",
        (Set(("args", 1), "--c"),),
        "args:\n- --a\n- '--c'\n",
    ),
]


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.name)
def test_edit_case(case: Case) -> None:
    result = apply_edits(case.before, case.edits, case.document)
    assert result == case.after
    if case.idempotent:
        assert apply_edits(result, case.edits, case.document) == result
    # the edits are what the new document says
    assert load_documents(result) == load_documents(case.after)


@pytest.mark.parametrize(
    ("text", "edit", "message"),
    [
        ("a: &x 1\nb: *x\n", Set(("c",), 1), "anchors"),
        ("base: &b {x: 1}\nc:\n  <<: *b\n", Set(("c", "y"), 1), "anchors"),
        ("- a\n- b\n", Set(("a",), 1), "not a mapping (sequence)"),
        ("just text\n", Set(("a",), 1), "not a mapping (scalar)"),
        ("", Set(("a",), 1), "not a mapping (empty)"),
        ("a: 1\n", Set(("a", "b"), 1), "goes through a scalar at a"),
        ("a: 1\n", Remove(("a", "b")), "goes through a scalar at a"),
        ("a: [1]\n", Set(("a", "b"), 1), "expected a mapping at a"),
        ("a: {}\n", Set(("a", 0), 1), "expected a sequence at a"),
        ("a: [1]\n", Set(("a", 3), 1), "index 3 out of range"),
        ("a: 1\n", Set(("b", 0, "c"), 1), "cannot create sequence index 0"),
        ("a: 1\n", AppendUnique(("a",), 1), "expected a sequence at a"),
        ("a: 1\n", Set(("a",), 1), "document index 2 out of range"),
        ("a: [\n", Set(("a",), 1), "YAML syntax error at line 2"),
    ],
)
def test_refusals(text: str, edit: Edit, message: str) -> None:
    index = 2 if "document index" in message else 0
    with pytest.raises(EditError, match=message.replace("(", r"\(").replace(")", r"\)")):
        apply_edits(text, [edit], index)


def test_anchor_in_other_document_does_not_block() -> None:
    text = "a: &x 1\nb: *x\n---\nc: 1\n"
    assert apply_edits(text, [Set(("d",), 2)], 1) == "a: &x 1\nb: *x\n---\nc: 1\nd: 2\n"


def test_load_documents_multi_doc_and_error_line() -> None:
    assert load_documents("a: 1\n---\n---\nb: [1]\n") == [{"a": 1}, None, {"b": [1]}]
    with pytest.raises(EditError, match="line 4"):
        load_documents("a: 1\nb:\n  - c\n d: [\n")


def test_no_edits_returns_text_unchanged() -> None:
    assert apply_edits("not: [valid", []) == "not: [valid"


def test_render_manifest() -> None:
    doc = {
        "apiVersion": "networking.k8s.io/v1",
        "kind": "NetworkPolicy",
        "metadata": {"name": "web", "labels": {"app": "web"}},
        "spec": {
            "podSelector": {"matchLabels": {"app": "web"}},
            "policyTypes": ["Ingress", "Egress"],
            "ingress": [{"from": [{"podSelector": {}}]}],
            "egress": [],
            "port": "80",
        },
    }
    text = render_manifest(doc, comment="Added by kube-remedy\nC-0260")
    assert text == (
        "# Added by kube-remedy\n"
        "# C-0260\n"
        "apiVersion: networking.k8s.io/v1\n"
        "kind: NetworkPolicy\n"
        "metadata:\n"
        "  name: web\n"
        "  labels:\n"
        "    app: web\n"
        "spec:\n"
        "  podSelector:\n"
        "    matchLabels:\n"
        "      app: web\n"
        "  policyTypes:\n"
        "    - Ingress\n"
        "    - Egress\n"
        "  ingress:\n"
        "    - from:\n"
        "        - podSelector: {}\n"
        "  egress: []\n"
        '  port: "80"\n'
    )
    assert yaml.safe_load(text) == doc


# --------------------------------------------------------------------------- real files


def _nodes(data: object, prefix: tuple = ()) -> list[tuple[tuple, object]]:
    found = [(prefix, data)]
    if isinstance(data, dict):
        for k, v in data.items():
            if isinstance(k, str):
                found += _nodes(v, (*prefix, k))
    elif isinstance(data, list):
        for n, v in enumerate(data):
            found += _nodes(v, (*prefix, n))
    return found


def _changes(before: str, after: str) -> tuple[int, int]:
    """(lines removed, lines added) between two texts."""
    a, b = before.splitlines(), after.splitlines()
    removed = added = 0
    for op, i1, i2, j1, j2 in difflib.SequenceMatcher(None, a, b, autojunk=False).get_opcodes():
        if op != "equal":
            removed, added = removed + i2 - i1, added + j2 - j1
    return removed, added


def _corpus_files() -> list[Path]:
    root = corpus_path("manifests")
    charts = corpus_path("charts")
    return sorted(root.rglob("*.yaml"))[:40] + sorted(charts.glob("*/values*.yaml"))


@pytest.mark.corpus
def test_single_edits_on_real_files_touch_only_their_lines() -> None:
    """On real manifests and values files (also as CRLF): replacing a one-line scalar changes
    one line, inserting removes at most one line (an emptied ``{}``), removing adds at most
    one (``{}`` / ``[]`` left behind). The applier itself verifies the resulting data."""
    rng = random.Random(1)
    checked = 0
    for path in _corpus_files():
        text = path.read_text(encoding="utf-8")
        for variant in (text, text.replace("\n", "\r\n")):
            try:
                documents = load_documents(variant)
            except EditError:
                continue  # kubescape's deliberately invalid example
            for index, data in enumerate(documents):
                if not isinstance(data, dict) or not data:
                    continue
                nodes = [n for n in _nodes(data) if n[0]]
                for where, value in rng.sample(nodes, min(3, len(nodes))):
                    edits: list[Edit] = [Remove(where)]
                    if not isinstance(value, dict | list) and "\n" not in str(value):
                        edits.append(Set(where, "kube-remedy"))
                    if isinstance(value, dict):
                        edits.append(Ensure((*where, "added", "deep"), 1))
                    if isinstance(value, list):
                        edits.append(AppendUnique(where, {"name": "kube-remedy"}))
                    for edit in edits:
                        try:
                            after = apply_edits(variant, [edit], index)
                        except EditError as exc:
                            assert "anchors" in str(exc) or "scalar" in str(exc), exc
                            continue
                        checked += 1
                        removed, added = _changes(variant, after)
                        if isinstance(edit, Set):
                            assert (removed, added) == (1, 1), (path, edit)
                        elif isinstance(edit, Remove):
                            assert added <= 1, (path, edit)
                        else:
                            assert removed <= 1, (path, edit)
                        if "\r\n" in variant:
                            assert "\n" not in after.replace("\r\n", ""), (path, edit)
    assert checked > 300


def test_written_strings_read_back_unchanged() -> None:
    """Whatever string a fixer sets, in whatever quoting the old value had, in block or flow
    context, reads back as the same string (indicators, `#`, `: `, look-alikes of other types)."""
    rng = random.Random(0)
    alphabet = "ab01 -:#,[]{}@>|!&*%?'\"`.\\/~^+=$()<_\té"
    samples = ["true", "no", "1", "1.5", "0x1f", "~", "null", "<<", "=", "100m", "2024-01-01"]
    samples += [
        "".join(rng.choice(alphabet) for _ in range(rng.randint(0, 6))) for _ in range(1500)
    ]
    for value in samples:
        for old in ("x", "'x'", '"x"'):
            for template in ("k: {}\n", "k: [{}, y]\n", "k:\n- {}\n"):
                text = template.format(old)
                path = ("k",) if template == "k: {}\n" else ("k", 0)
                result = apply_edits(text, [Set(path, value)])
                data = load_documents(result)[0]
                assert (data["k"] if len(path) == 1 else data["k"][0]) == value, (value, result)


def _both_ways(
    monkeypatch: pytest.MonkeyPatch, text: str, edits: list[Edit]
) -> tuple[str, str] | None:
    """The text written one edit per parse and the text `apply_edits` writes (from no memoised
    parse); None when both refuse the edits."""
    try:
        expected = _one_by_one(monkeypatch, text, edits)
    except EditError:
        with pytest.raises(EditError):
            apply_edits(text, edits)
        return None
    edits_module.forget_documents()
    return expected, apply_edits(text, edits)


def _one_by_one(monkeypatch: pytest.MonkeyPatch, text: str, edits: list[Edit]) -> str:
    """`apply_edits` writing one edit per parse of the whole document: the reference the
    batched writing (several edits per parse, one top-level entry parsed) must equal."""
    with monkeypatch.context() as patched:
        patched.setattr(edits_module, "_apply_batched", lambda doc, edits: None)
        return edits_module.apply_edits(text, edits)


@pytest.mark.parametrize("case", [c for c in CASES if c.document == 0], ids=lambda c: c.name)
def test_batched_writing_of_every_case_in_a_bigger_document(
    case: Case, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Every named case, wrapped as the middle entry of a bigger document (the shape of a big
    values file): the edits written several per parse, that entry's lines alone parsed, give
    the bytes of one edit per parse of the whole, and the data remembered for the result is
    what parsing it gives."""
    if not case.before.strip() or case.before.startswith(("-", "%", "---", " ")):
        pytest.skip("not a block mapping at column 0")
    text = "# defaults\nfirst:\n  x: 1\nmiddle:\n" + _indented(case.before) + "last: [1]\n"
    edits = [dataclasses.replace(e, path=("middle", *e.path)) for e in case.edits]
    written = _both_ways(monkeypatch, text, edits)
    if written is None:
        return
    expected, result = written
    assert result == expected
    remembered = edits_module.load_document_text(expected)
    edits_module.forget_documents()
    assert remembered == edits_module.load_document_text(expected)


def _indented(text: str) -> str:
    return "".join("  " + line if line.strip() else line for line in text.splitlines(True))


@pytest.mark.corpus
def test_batched_writing_on_real_files(monkeypatch: pytest.MonkeyPatch) -> None:
    """Batches of edits on the corpus charts' values files and manifests (new sibling keys,
    replaced scalars, appended items, removals, repeats, the same edit in several containers):
    the same bytes and data as one edit per parse of the whole document."""
    rng = random.Random(2)
    checked = 0
    declined: list[list[Edit]] = []
    fell_back = 0
    batched = edits_module._apply_batched

    def counted(doc: object, edits: list[Edit]) -> str | None:
        try:
            result = batched(doc, edits)  # type: ignore[arg-type]
        except EditError:
            result = None
        if result is None:
            declined.append(edits)
        return result

    monkeypatch.setattr(edits_module, "_apply_batched", counted)
    files = sorted(corpus_path("charts").glob("*/values*.yaml"))
    files += sorted(corpus_path("manifests").rglob("*.yaml"))[:60]
    for path in files:
        text = path.read_text(encoding="utf-8")
        try:
            data = load_documents(text)[0]
        except (EditError, IndexError):
            continue
        if not isinstance(data, dict) or not data:
            continue
        for _ in range(6):
            nodes = [n for n in _nodes(data) if n[0]]
            if rng.random() < 0.5:  # a batch below one top-level key
                head = rng.choice(sorted(k for k in data if isinstance(k, str)))
                nodes = [n for n in nodes if n[0][:1] == (head,)]
            edits = _random_batch(rng, nodes)
            if not edits:
                continue
            was = len(declined)
            written = _both_ways(monkeypatch, text, edits)
            if written is None:
                continue
            fell_back += len(declined) > was
            expected, result = written
            assert result == expected, (path, edits)
            begin, end = edits_module.document_span(result, 0)
            remembered = edits_module.load_document_text(result[begin:end])
            edits_module.forget_documents()
            assert remembered == load_documents(result)[0], (path, edits)
            checked += 1
    assert checked > 100
    # the batched writing writes nearly every batch it can write itself (falling back to one
    # edit per parse is for refusals, which that path words)
    assert fell_back <= checked // 20, declined[:3]


def _random_batch(rng: random.Random, nodes: list[tuple[tuple, object]]) -> list[Edit]:
    edits: list[Edit] = []
    for where, value in rng.sample(nodes, min(rng.randint(1, 4), len(nodes))):
        if isinstance(value, dict):
            edits.append(Ensure((*where, "addedByBot"), {"deep": 1}))
            edits.append(Set((*where, "alsoAdded"), "x", "why"))
            if rng.random() < 0.5:  # new keys below a new parent, and a new list beside it
                edits.append(Set((*where, "newParent", "child"), True))
                edits.append(AppendUnique((*where, "newList"), {"name": "x"}, "name"))
                if rng.random() < 0.5:  # more of each, as the resources fix writes them
                    edits.append(Set((*where, "newParent", "other", "deep"), 2, "c"))
                    edits.append(AppendUnique((*where, "newList"), {"name": "y"}, "name"))
        elif isinstance(value, list):
            edits.append(AppendUnique(where, {"name": "kube-remedy"}))
            if rng.random() < 0.5:  # more items for the same list, one by key
                edits.append(AppendUnique(where, {"name": "kube-remedy", "x": 1}, "name", "c"))
                edits.append(AppendUnique(where, "second", None, "why"))
        elif rng.random() < 0.3:
            edits.append(Remove(where))
        else:
            edits.append(Set(where, "kube-remedy"))
    if edits and rng.random() < 0.3:
        edits.append(edits[0])  # a repeat, as two findings of one resource plan it
    return edits


TRICKY_SCALARS = """\
a: 2001-12-14t21:59:43.10-05:00
b: 2002-12-14
c: !!binary aGVsbG8=
d: [0o14, 0x1f, 1_000, 190:20:30, -.inf, .NaN, 1e3, ~, Null, yes, off, "yes", '1']
e: {? [1, 2] : x}
f: !!set {a, b}
g: !custom 1
h: &x {k: 1}
i: *x
j: !!str 12
k: ""
"""


@pytest.mark.parametrize("key", ["a: ", "b: ", "c: ", "d: ", "f: ", "h: ", "j: ", "k: "])
def test_document_data_is_what_the_safe_loader_reads(key: str) -> None:
    """The applier's own reading of a document (plain trees built directly, anything else by
    PyYAML) gives the safe loader's data, tags and aliases included."""
    lines = [line for line in TRICKY_SCALARS.splitlines(True) if line.startswith(key)]
    text = "".join(lines) + ("i: *x\n" if key == "h: " else "")
    edits_module.forget_documents()
    assert repr(edits_module.load_document_text(text)) == repr(yaml.safe_load(text))


def test_every_reader_of_yaml_documents_gives_the_safe_loaders_data() -> None:
    """The bounded reader (values files, rendered templates) shares the applier's loader."""
    text = "".join(
        line for line in TRICKY_SCALARS.splitlines(True) if not line.startswith(("e: ", "g: "))
    )
    text = f"{text}---\n---\nlast: [yes, no, on, 0x10, 1.5e3]\n"
    expected = list(yaml.safe_load_all(text))
    assert repr(list(yaml_documents(text))) == repr(expected)
    assert repr(load_documents(text)) == repr(expected)


@pytest.mark.parametrize("text", ["e: {? [1, 2] : x}\n", "g: !custom 1\n"])
def test_document_data_refuses_what_the_safe_loader_refuses(text: str) -> None:
    with pytest.raises(yaml.YAMLError) as ours:
        edits_module.load_document_text(text)
    with pytest.raises(yaml.YAMLError) as theirs:
        yaml.safe_load(text)
    assert ours.value.problem == theirs.value.problem  # type: ignore[attr-defined]


@pytest.mark.corpus
def test_document_data_of_real_files_is_what_the_safe_loader_reads() -> None:
    checked = 0
    for path in _corpus_files() + sorted(corpus_path("manifests").rglob("*.yaml")):
        text = path.read_text(encoding="utf-8")
        try:
            expected = list(yaml.safe_load_all(text))
        except yaml.YAMLError:
            continue
        for index, data in enumerate(expected):
            begin, end = edits_module.document_span(text, index)
            assert repr(edits_module.load_document_text(text[begin:end])) == repr(data), path
            checked += 1
    assert checked > 200


def test_a_repeated_removal_of_a_sequence_item_removes_two() -> None:
    text = "a:\n- 1\n- 2\n- 3\n"
    assert apply_edits(text, [Remove(("a", 0)), Remove(("a", 0))]) == "a:\n- 3\n"


def _parses_when_batched(monkeypatch: pytest.MonkeyPatch, text: str, edits: list[Edit]) -> int:
    """How many parses (`_round`s) the batched writing of ``edits`` takes, once its bytes are
    checked to be those of one edit per parse."""
    parses: list[int] = []
    real = edits_module._round

    def counted(doc: object, pending: list[Edit]) -> tuple[int, str]:
        parses.append(len(pending))
        return real(doc, pending)  # type: ignore[arg-type]

    monkeypatch.setattr(edits_module, "_round", counted)
    written = _both_ways(monkeypatch, text, edits)
    assert written is not None
    expected, result = written
    assert result == expected
    assert load_documents(result) == load_documents(expected)
    return len(parses)


VOLUMES = "spec:\n  volumes:\n  - name: data\n    emptyDir: {}\n  # volumes end here\n  other: 1\n"
TMP = {"name": "tmp", "emptyDir": {}}
CACHE = {"name": "cache", "emptyDir": {"medium": "Memory"}}


@pytest.mark.parametrize(
    ("text", "edits", "rounds"),
    [
        # new items at the end of an existing block sequence: one parse
        (
            VOLUMES,
            [
                AppendUnique(("spec", "volumes"), TMP, "name", "why"),
                AppendUnique(("spec", "volumes"), CACHE, "name"),
            ],
            1,
        ),
        ("v:\n- 1\n- 2", [AppendUnique(("v",), 3), AppendUnique(("v",), 4, None, "c")], 1),
        (
            "s:\n  v:\n  - a\n",
            [AppendUnique(("s", "v"), "b"), Set(("s", "w"), 1), AppendUnique(("s", "v"), "c")],
            1,
        ),
        ("s:\n  v:\n  - a\n", [Set(("s", "w"), 1), AppendUnique(("s", "v"), "b")], 1),
        # an item equal to one appended earlier in the batch: the later one changes nothing
        (
            VOLUMES,
            [
                AppendUnique(("spec", "volumes"), TMP, "name"),
                AppendUnique(("spec", "volumes"), {**TMP, "emptyDir": None}, "name"),
            ],
            2,
        ),
        # (an edit equal to an earlier one, 1 and True alike, is a repeat and not written again)
        ("v:\n- 0\n", [AppendUnique(("v",), 1), AppendUnique(("v",), True)], 1),
        ("v:\n- 0\n", [AppendUnique(("v",), 1.0), AppendUnique(("v",), 1)], 1),
        (
            "v:\n- 0\n",
            [AppendUnique(("v",), 1, None, "a"), AppendUnique(("v",), True, None, "b")],
            2,
        ),
        (
            "v:\n- {a: 1}\n",
            [
                AppendUnique(("v",), {"name": None}, "name"),
                AppendUnique(("v",), {"other": 1}, "name"),
            ],
            2,
        ),
        # found by the later edit's own comparison: by key, or by the whole item
        (
            "v:\n- 0\n",
            [
                AppendUnique(("v",), {"name": "a"}),
                AppendUnique(("v",), {"name": "a", "x": 1}, "name"),
            ],
            2,
        ),
        (
            "v:\n- 0\n",
            [
                AppendUnique(("v",), {"name": "a", "x": 1}, "name"),
                AppendUnique(("v",), {"name": "a"}),
            ],
            1,
        ),
        # lists that are not block sequences with items yet: one parse per append
        ("v: [1, 2]\n", [AppendUnique(("v",), 3), AppendUnique(("v",), 4)], 2),
        ("v: []\n", [AppendUnique(("v",), 3), AppendUnique(("v",), 4)], 2),
        ("v:\nw: 1\n", [AppendUnique(("v",), 3), AppendUnique(("v",), 4)], 2),
        # a list one append creates takes the next appends into its new lines
        (
            "s:\n  x: 1\n",
            [
                AppendUnique(("s", "v"), TMP, "name", "why"),
                AppendUnique(("s", "v"), CACHE, "name", "and why"),
                AppendUnique(("s", "v"), {**TMP, "emptyDir": None}, "name"),
            ],
            2,
        ),
        # an edit inside the list between the appends
        ("v:\n- 1\n", [AppendUnique(("v",), 2), Set(("v", 0), 5), AppendUnique(("v",), 3)], 3),
    ],
)
def test_appends_to_one_list_share_a_parse_and_write_the_same_bytes(
    text: str, edits: list[Edit], rounds: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    """New items at the end of one existing block sequence are written from one parse, in
    edit order, like new keys at the end of one mapping; the bytes are those of one edit per
    parse, and items the one-by-one writing would find already there start a new parse."""
    assert _parses_when_batched(monkeypatch, text, edits) == rounds


C = ("spec", "containers", 0)


@pytest.mark.parametrize(
    ("text", "edits", "rounds"),
    [
        # the resources fix: limits and requests created by their first key
        (
            "spec:\n  containers:\n  - name: a\n    image: x\n",
            [
                Set((*C, "resources", "limits", "memory"), "128Mi", "sized"),
                Set((*C, "resources", "limits", "cpu"), "500m"),
                Set((*C, "resources", "requests", "cpu"), "100m"),
                Ensure((*C, "resources", "requests", "memory"), "64Mi"),
            ],
            1,
        ),
        # a new securityContext, a list below it, a key beside the list
        (
            "spec:\n  containers:\n  - name: a\n    image: x\n  restartPolicy: Always\n",
            [
                Set((*C, "securityContext", "runAsNonRoot"), True),
                AppendUnique((*C, "securityContext", "capabilities", "drop"), "ALL", None, "c"),
                AppendUnique((*C, "securityContext", "capabilities", "drop"), "NET_RAW"),
                Set((*C, "securityContext", "runAsUser"), 10001),
                Set(("spec", "automountServiceAccountToken"), False),  # a line away only
            ],
            2,
        ),
        # the same at the end of a file without a last line break, and with CRLF
        ("a:\n  b: 1", [Set(("a", "n", "x"), 1), Set(("a", "n", "y"), [1, 2])], 1),
        ("a:\r\n  b: 1\r\n", [Set(("a", "n", "x"), 1), Set(("a", "n", "y"), {"z": 1})], 1),
        # an edit of what an earlier one wrote is written on the next parse
        ("a:\n  b: 1\n", [Set(("a", "n", "x"), 1), Set(("a", "n", "x"), 2)], 2),
        ("a:\n  b: 1\n", [Set(("a", "n"), 1), Set(("a", "n"), 2)], 2),
        ("a:\n  b: 1\n", [Ensure(("a", "n", "x"), 1), Ensure(("a", "n", "x"), 2)], 2),
        ("a:\n  b: 1\n", [Set(("a", "n", "x"), {"y": 1}), Set(("a", "n", "x", "z"), 2)], 2),
        # a new parent created twice, a removal beside it
        (
            "a:\n  b: 1\n  c: 2\n  d: 3\n",
            [Set(("a", "n", "x"), 1), Remove(("a", "b")), Set(("a", "n", "y"), 2)],
            1,
        ),
    ],
)
def test_keys_below_a_parent_created_in_the_round_share_its_parse(
    text: str, edits: list[Edit], rounds: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Edits below a key that an earlier edit of the round creates are written into that
    edit's new lines, parsed on their own: the bytes of one edit per parse, in fewer parses."""
    assert _parses_when_batched(monkeypatch, text, edits) == rounds


@pytest.mark.parametrize("newline", ["\n", "\r\n"])
def test_an_entry_that_is_the_whole_document_is_cut_once(
    newline: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The only top-level entry, edited in several parses: its window (the whole document) is
    taken once, after the first parse. Taking it again after each parse, from the first
    parse's offsets, cut off the key the first parse added, and the last parse wrote its keys
    before it (the same data, other bytes than one edit per parse)."""
    text = "a:\n  b: 1\n  c:\n    d: 2\n".replace("\n", newline)
    edits: list[Edit] = [
        Ensure(("a", "q", "c", "l"), "s"),
        Remove(("a", "c")),
        Set(("a", "c"), "two words", "why"),
        Set(("a", "l", "c", "c"), [1, 2]),
    ]
    written = _both_ways(monkeypatch, text, edits)
    assert written is not None
    expected, result = written
    assert result == expected
    assert list(load_documents(result)[0]["a"]) == ["b", "q", "c", "l"]


@pytest.mark.parametrize(
    "edits",
    [
        # an item without the key it is compared by is appended again
        [AppendUnique(("a", "n"), 1, "name"), AppendUnique(("a", "n"), 1, "name")],
        [AppendUnique(("a", "l"), [1, 2], "name"), AppendUnique(("a", "l"), [1, 2], "name")],
        # a null is ensured again, with its comment
        [Ensure(("a", "l"), None, "why"), Ensure(("a", "l"), None, "why")],
    ],
)
def test_a_repeat_that_writes_again_is_kept(
    edits: list[Edit], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Only repeats that change nothing when written again are dropped before writing."""
    written = _both_ways(monkeypatch, "a:\n  b: 1\n  l:\n  - x\n", edits)
    assert written is not None
    expected, result = written
    assert result == expected


SMALL_DOCUMENTS = [
    "a:\n  b: 1\n  c:\n    d: 2\n",
    "a:\n  b: 1\n  l:\n  - x\n  - y\n",
    "# top\na:\n  b: 1 # trailing\n  c:\n    d: 2\n\n# tail comment\n",
    "a:\n  b: 1\n  c:\n    d: 2",
    "a:\n    b: 1\n    l:\n        - x\n",
    "k: v\na:\n  b: 1\nz: last\n",
    "a:\n  l:\n  - name: p\n    v: 1\n  m: {}\n",
]
SMALL_VALUES: list[object] = [
    1,
    "s",
    True,
    {"k": 1},
    [1, 2],
    {"name": "p"},
    {"name": "r", "v": 2},
    None,
    "two words",
]


def test_batched_writing_of_random_batches_on_small_documents(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Batches made to collide (few key names, so edits share new parents, lists, repeats and
    removals) on small documents, CRLF and a missing last line break included: the batched
    writing gives the bytes of one edit per parse, refuses what it refuses, and never falls
    back to it."""
    rng = random.Random(7)
    batched = edits_module._apply_batched
    fell_back: list[list[Edit]] = []

    def counted(doc: object, edits: list[Edit]) -> str | None:
        try:
            return batched(doc, edits)  # type: ignore[arg-type]
        except EditError:
            fell_back.append(edits)
            raise

    monkeypatch.setattr(edits_module, "_apply_batched", counted)
    written = 0
    for _ in range(1500):
        text = rng.choice(SMALL_DOCUMENTS)
        if rng.random() < 0.2:
            text = text.replace("\n", "\r\n")
        edits: list[Edit] = []
        for _ in range(rng.randint(2, 6)):
            path = ("a", *(rng.choice("nmclq") for _ in range(rng.randint(1, 3))))
            value, comment, kind = rng.choice(SMALL_VALUES), rng.choice([None, "why"]), rng.random()
            if kind < 0.35:
                edits.append(Set(path, value, comment))
            elif kind < 0.5:
                edits.append(Ensure(path, value, comment))
            elif kind < 0.85:
                edits.append(AppendUnique(path, value, rng.choice([None, "name"]), comment))
            else:
                edits.append(Remove(path))
        fell = len(fell_back)
        both = _both_ways(monkeypatch, text, edits)
        if both is not None:  # (a batch both refuse is refused by the batched writing too)
            assert both[1] == both[0], (text, edits)
            assert len(fell_back) == fell, (text, edits)
            written += 1
    assert written > 600


DEPLOYMENT_TWO = """\
apiVersion: apps/v1
kind: Deployment
metadata:
  name: web
spec:
  replicas: 1
  template:
    spec:
      containers:
      - name: app
        image: app:1
        ports:
        - containerPort: 80
      - name: sidecar
        image: side:1
      volumes:
      - name: data
        emptyDir: {}
"""


def test_the_checked_data_of_an_edited_document_shares_what_the_edits_left_alone() -> None:
    edits_module.forget_documents()
    pod = ("spec", "template", "spec")
    batch = (
        Set((*pod, "containers", 0, "securityContext", "runAsNonRoot"), True),
        Ensure((*pod, "containers", 0, "resources", "limits", "memory"), "256Mi"),
        AppendUnique((*pod, "volumes"), {"name": "tmp", "emptyDir": {}}, key="name"),
    )
    after = apply_edits(DEPLOYMENT_TWO, batch)
    before_data = edits_module.load_document_text(DEPLOYMENT_TWO)
    after_data = edits_module.load_document_text(after)
    # The memoised data is exactly what the text parses to, types and key order included ...
    fresh = yaml.safe_load(after)
    assert after_data == fresh
    assert repr(after_data) == repr(fresh)
    # ... and what no edit touched is the unedited document's own objects.
    assert after_data["metadata"] is before_data["metadata"]
    before_pod, after_pod = (
        before_data["spec"]["template"]["spec"],
        after_data[pod[0]][pod[1]][pod[2]],
    )
    assert after_pod["containers"][1] is before_pod["containers"][1]
    assert after_pod["containers"][0]["ports"] is before_pod["containers"][0]["ports"]
    assert after_pod["volumes"][0] is before_pod["volumes"][0]
    assert after_pod["volumes"] is not before_pod["volumes"]
    # The unedited document's data is unchanged.
    assert before_data == yaml.safe_load(DEPLOYMENT_TWO)


def test_the_intended_data_never_changes_the_data_it_starts_from() -> None:
    import copy

    start = yaml.safe_load(DEPLOYMENT_TWO)
    snapshot = copy.deepcopy(start)
    pod = ("spec", "template", "spec")
    owned: dict[int, object] = {}
    data = start
    for edit in (
        Set((*pod, "containers", 1, "image"), "side:2"),
        Remove((*pod, "containers", 0, "ports")),
        Remove((*pod, "missing", 3)),
        Ensure((*pod, "securityContext", "runAsUser"), 1000),
        Ensure(("spec", "replicas"), 3),  # present: unchanged
        AppendUnique((*pod, "volumes"), {"name": "data", "emptyDir": {}}, key="name"),
        AppendUnique((*pod, "volumes"), {"name": "tmp", "emptyDir": {}}, key="name"),
        AppendUnique((*pod, "containers", 0, "args"), "--quiet"),
        Remove((*pod, "volumes", 0)),
    ):
        data = edits_module._intended(data, edit, owned)
    assert start == snapshot
    pod_data = data["spec"]["template"]["spec"]
    assert pod_data["containers"][1]["image"] == "side:2"
    assert "ports" not in pod_data["containers"][0]
    assert pod_data["containers"][0]["args"] == ["--quiet"]
    assert pod_data["securityContext"] == {"runAsUser": 1000}
    assert data["spec"]["replicas"] == 1
    assert pod_data["volumes"] == [{"name": "tmp", "emptyDir": {}}]


@pytest.mark.parametrize(
    ("result", "intended", "path", "same"),
    [
        ({"a": {"b": 1}}, {"a": {"b": 1}}, ("a", "b"), True),
        ({"a": {"b": True}}, {"a": {"b": 1}}, ("a", "b"), False),  # equal, not the same
        ({"a": {"b": 1.0}}, {"a": {"b": 1}}, ("a",), False),
        ({"a": {"x": 1, "b": 2}}, {"a": {"b": 2, "x": 1}}, ("a", "b"), False),  # key order
        ({"a": [{"k": 1}]}, {"a": [{"k": 1}]}, ("a", 0, "k"), True),
        ({"a": {}}, {"a": {}}, ("a", "gone"), True),  # removed from both
    ],
)
def test_checked_data_is_the_same_along_an_edits_path_only_with_the_same_types_and_order(
    result: object, intended: object, path: tuple[str | int, ...], same: bool
) -> None:
    assert edits_module._same_along(result, intended, path) is same


MULTI = """\
# leading comment
apiVersion: v1
kind: ConfigMap
metadata:
  name: a
---
apiVersion: v1
kind: Pod
metadata:
  name: b
spec:
  containers:
  - name: app
    image: app:1
...
--- # third
apiVersion: v1
kind: Service
metadata:
  name: c
"""


def _fresh_starts(text: str) -> tuple[int, ...] | None:
    return edits_module._starts_in(text) if edits_module._DOC_MARKER.search(text) else None


@pytest.mark.parametrize("newline", ["\n", "\r\n"])
@pytest.mark.parametrize("index", [0, 1, 2])
def test_the_document_starts_the_applier_remembers_for_its_output_are_the_real_ones(
    index: int, newline: str
) -> None:
    text = MULTI.replace("\n", newline)
    for edits in (
        [Set(("metadata", "labels", "team"), "web"), Set(("metadata", "name"), "longer-name")],
        [Remove(("metadata", "name"))],
        [Set(("data",), {"script": "line one\n---\n...\n%x\n"})],  # markers in a value
    ):
        edits_module.forget_documents()
        result = apply_edits(text, edits, index)
        assert result != text
        # Remembered by the applier, not found again; document 1 holds a `...` line, which
        # the applier leaves to be found again.
        assert (result in edits_module._STARTS) is (index != 1)
        assert edits_module._document_starts(result) == _fresh_starts(result)
    # One document without markers stays one.
    edits_module.forget_documents()
    single = apply_edits("a: 1\n", [Set(("b",), "c")])
    assert single in edits_module._STARTS
    assert edits_module._document_starts(single) is None


@pytest.mark.corpus
def test_the_document_starts_remembered_after_edits_of_real_files_are_the_real_ones() -> None:
    rng = random.Random(5)
    checked = 0
    for path in sorted(corpus_path("manifests").rglob("*.yaml")):
        text = path.read_text(encoding="utf-8")
        try:
            documents = load_documents(text)
        except EditError:
            continue
        for index, data in enumerate(documents):
            if not isinstance(data, dict) or not data:
                continue
            edits = _random_batch(rng, [n for n in _nodes(data) if n[0]])
            edits_module.forget_documents()
            try:
                result = apply_edits(text, edits, index)
            except EditError:
                continue
            remembered = result in edits_module._STARTS
            assert edits_module._document_starts(result) == _fresh_starts(result), path
            checked += remembered
    assert checked > 50


def test_the_scalar_resolver_memoises_only_short_scalars() -> None:
    from fixers import yaml_data

    held = yaml_data._memo_tag.cache_info().currsize
    long_number, long_word = "1" * 1000, "x" * 1000
    assert yaml_data.plain_tag(long_number) == "tag:yaml.org,2002:int"
    assert yaml_data.plain_tag(long_word) == "tag:yaml.org,2002:str"
    assert yaml_data._memo_tag.cache_info().currsize == held  # untrusted texts are not kept
    assert yaml_data.plain_tag("true") == "tag:yaml.org,2002:bool"
    assert repr(load_documents(f"a: {long_number}\nb: {long_word}\n")) == repr(
        [yaml.safe_load(f"a: {long_number}\nb: {long_word}\n")]
    )


def test_marker_lines_are_the_lines_the_marker_regexes_find() -> None:
    """The ``str.find`` scan of document markers agrees with the anchored regexes it
    replaced, on crafted edge cases and on random texts of marker-like pieces."""
    start = re.compile(r"^---(?:[ \t\r]|$)", re.M)
    end = re.compile(r"^\.\.\.(?:[ \t\r]|$)", re.M)
    pieces = ["---", "...", "--", "-", ".", "%", "\n", "\r\n", "\r", " ", "\t", "a", "#", "'"]
    rng = random.Random(7)
    texts = [
        "",
        "---",
        "---\n",
        "----",
        "--- a",
        "a\n---",
        "a\n---\r\n",
        "a\n ---\n",
        "...",
        "a\n...x\n",
        "%YAML 1.1\n---\n",
        "a: b\n%",
        "a\r---\n",
    ] + ["".join(rng.choice(pieces) for _ in range(rng.randint(1, 24))) for _ in range(3000)]
    for text in texts:
        assert list(edits_module._marker_lines(text, "---")) == [
            m.start() for m in start.finditer(text)
        ], repr(text)
        assert list(edits_module._marker_lines(text, "...")) == [
            m.start() for m in end.finditer(text)
        ], repr(text)
        assert edits_module._has_marker(text) == bool(edits_module._DOC_MARKER.search(text)), repr(
            text
        )


def _same_data_reference(a: object, b: object) -> bool:
    """`same_data` as first written: the definition the fast one must agree with."""
    if a is b:
        return True
    if type(a) is not type(b):
        return False
    if isinstance(a, dict) and isinstance(b, dict):
        return list(a) == list(b) and all(
            type(k) is str and _same_data_reference(v, b[k]) for k, v in a.items()
        )
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(map(_same_data_reference, a, b))
    return bool(a == b)


def test_same_data_agrees_with_its_definition_on_random_data() -> None:
    from fixers.yaml_data import same_data

    rng = random.Random(3)
    scalars: list[object] = ["a", "b", "1", 1, 1.0, True, False, 0, None, ""]

    def value(depth: int) -> object:
        roll = rng.random()
        if depth > 2 or roll < 0.5:
            return rng.choice(scalars)
        if roll < 0.75:
            return [value(depth + 1) for _ in range(rng.randint(0, 3))]
        keys = rng.sample(["a", "b", "c", 1, True], rng.randint(0, 3))
        return {k: value(depth + 1) for k in keys}

    def variant(v: object) -> object:
        """``v`` or a near copy of it: a scalar swapped, keys reordered, an item dropped."""
        if isinstance(v, dict):
            items = [(k, variant(x)) for k, x in v.items()]
            if items and rng.random() < 0.2:
                items.reverse()
            return dict(items)
        if isinstance(v, list):
            out = [variant(x) for x in v]
            if out and rng.random() < 0.1:
                out.pop()
            return out
        return rng.choice(scalars) if rng.random() < 0.1 else v

    agreed = 0
    for _ in range(4000):
        a = value(0)
        b = variant(a)
        assert same_data(a, b) == _same_data_reference(a, b), (a, b)
        assert same_data(a, a) and same_data(b, b)
        agreed += same_data(a, b)
    assert 0 < agreed < 4000
