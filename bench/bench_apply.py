"""Benchmark: the splice applier (`fixers.edits`) against a ruamel.yaml round trip.

Builds a synthetic cd-config (`bench.synth.build_cd_config`), derives a realistic edit mix for
every workload document (the fixes for APE, RORFS, capabilities, limits, privileged, service
account token), applies it three ways and prints throughput and fidelity:

- splice: ``fixers.edits.apply_edits`` (the applier);
- ruamel round trip: load (rt, preserve_quotes) + the same edits on the CommentedMap + dump;
- ruamel load+dump alone (no edits): the floor of the round-trip approach.

Fidelity is the number of changed lines beyond those the edits need: the splice output's diff
against the input is taken as the needed change (both outputs must load to the same data).

Run: ``.venv/bin/python -m bench.bench_apply --manifests 2000``
"""

from __future__ import annotations

import argparse
import difflib
import io
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import yaml
from ruamel.yaml import YAML
from ruamel.yaml.comments import CommentedMap, CommentedSeq

from bench.synth import build_cd_config
from fixers.edits import apply_edits, load_documents
from fixers.model import AppendUnique, Edit, Ensure, Remove, Set
from fixers.view import POD_SPEC_PATHS

Plan = list[tuple[int, list[Edit]]]


def edit_mix(documents: Sequence[Any]) -> Plan:
    """The edits a fix run would make on each workload document of a file."""
    plan: Plan = []
    for index, doc in enumerate(documents):
        if not isinstance(doc, dict) or doc.get("kind") not in POD_SPEC_PATHS:
            continue
        pod = POD_SPEC_PATHS[doc["kind"]]
        spec = doc
        for step in pod:
            spec = spec[step]
        edits: list[Edit] = [Set((*pod, "automountServiceAccountToken"), False)]
        for n, _container in enumerate(spec["containers"]):
            c = (*pod, "containers", n)
            edits += [
                Set((*c, "securityContext", "allowPrivilegeEscalation"), False),
                Set((*c, "securityContext", "readOnlyRootFilesystem"), True),
                AppendUnique((*c, "securityContext", "capabilities", "drop"), "ALL"),
                Remove((*c, "securityContext", "privileged")),
                Ensure((*c, "resources", "limits", "memory"), "256Mi"),
                Ensure((*c, "resources", "limits", "cpu"), "500m"),
            ]
        plan.append((index, edits))
    return plan


# --------------------------------------------------------------------------- the appliers


def splice(text: str, plan: Plan) -> str:
    for index, edits in plan:
        text = apply_edits(text, edits, index)
    return text


def _ruamel() -> YAML:
    y = YAML(typ="rt")
    y.preserve_quotes = True
    y.width = 4096  # no re-wrapping of long lines
    return y


def _rt_apply(doc: Any, edit: Edit) -> None:
    path = edit.path
    node = doc
    for step in path[:-1]:
        if isinstance(step, int):
            node = node[step]
            continue
        if node.get(step) is None:
            if isinstance(edit, Remove):
                return
            node[step] = CommentedMap()
        node = node[step]
    last = path[-1]
    if isinstance(edit, Remove):
        if last in node:
            del node[last]
    elif isinstance(edit, Set):
        node[last] = edit.value
    elif isinstance(edit, Ensure):
        if node.get(last) is None:
            node[last] = edit.value
    elif isinstance(edit, AppendUnique):
        seq = node.get(last)
        if seq is None:
            seq = node[last] = CommentedSeq()
        if edit.value not in seq:
            seq.append(edit.value)


def ruamel_roundtrip(text: str, plan: Plan) -> str:
    y = _ruamel()
    docs = list(y.load_all(text))
    for index, edits in plan:
        for edit in edits:
            _rt_apply(docs[index], edit)
    out = io.StringIO()
    y.dump_all(docs, out)
    return out.getvalue()


def ruamel_load_dump(text: str, plan: Plan) -> str:
    y = _ruamel()
    out = io.StringIO()
    y.dump_all(list(y.load_all(text)), out)
    return out.getvalue()


# --------------------------------------------------------------------------- measuring


def changed_lines(before: str, after: str) -> int:
    a, b = before.splitlines(), after.splitlines()
    count = 0
    for op, i1, i2, j1, j2 in difflib.SequenceMatcher(None, a, b, autojunk=False).get_opcodes():
        if op != "equal":
            count += (i2 - i1) + (j2 - j1)
    return count


def timed(
    fn: Callable[[str, Plan], str], files: list[tuple[str, Plan]], repeat: int
) -> tuple[float, list[str]]:
    best = float("inf")
    outputs: list[str] = []
    for _ in range(repeat):
        start = time.perf_counter()
        outputs = [fn(text, plan) for text, plan in files]
        best = min(best, time.perf_counter() - start)
    return best, outputs


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--manifests", type=int, default=1000, help="workload documents")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--repeat", type=int, default=3, help="best of N runs")
    args = parser.parse_args(argv)

    with tempfile.TemporaryDirectory() as tmp:
        repo = build_cd_config(
            Path(tmp), n_manifests=args.manifests, n_findings=args.manifests * 5, seed=args.seed
        )
        files = []
        for path in sorted(repo.rglob("*.yaml")):
            text = path.read_text(encoding="utf-8")
            files.append((text, edit_mix(load_documents(text))))
    size = sum(len(text.encode()) for text, _ in files)
    n_edits = sum(len(edits) for _, plan in files for _, edits in plan)
    print(
        f"{len(files)} files, {size / 1e6:.2f} MB, {args.manifests} workloads, {n_edits} edits "
        f"(best of {args.repeat})"
    )

    t_splice, out_splice = timed(splice, files, args.repeat)
    t_rt, out_rt = timed(ruamel_roundtrip, files, args.repeat)
    t_ld, out_ld = timed(ruamel_load_dump, files, args.repeat)

    needed = sum(changed_lines(t, o) for (t, _), o in zip(files, out_splice, strict=True))
    rt_changed = sum(changed_lines(t, o) for (t, _), o in zip(files, out_rt, strict=True))
    ld_changed = sum(changed_lines(t, o) for (t, _), o in zip(files, out_ld, strict=True))
    same = sum(
        list(yaml.safe_load_all(a)) == list(yaml.safe_load_all(b))
        for a, b in zip(out_splice, out_rt, strict=True)
    )
    identical = sum(a == b for a, b in zip(out_splice, out_rt, strict=True))

    def row(name: str, seconds: float, changed: int, extra: int) -> None:
        print(
            f"  {name:<22} {seconds:8.3f} s  {size / 1e6 / seconds:8.2f} MB/s  "
            f"{t_splice and seconds / t_splice:6.1f}x splice time  "
            f"changed lines {changed:7d}  beyond the edits {extra:7d}"
        )

    row("splice (fixers.edits)", t_splice, needed, 0)
    row("ruamel load+edit+dump", t_rt, rt_changed, rt_changed - needed)
    row("ruamel load+dump only", t_ld, ld_changed, ld_changed)
    print(
        f"  same data after edits: {same}/{len(files)} files; byte-identical to splice: "
        f"{identical}/{len(files)}"
    )


if __name__ == "__main__":
    main()
