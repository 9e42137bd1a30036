"""Whole-job benchmark: report -> plan (locate, fix, apply edits, verify) -> changed files,
against one ruamel.yaml round trip of the files it touches.

Builds a synthetic cd-config (default 2,000 manifests, 10,000 failed control results, see
`bench.synth`), then runs two child processes alternately, ``--repeats`` rounds, all in this
process tree:

- kube-remedy: parse the Kubescape report, plan every finding (each fix applied as text splices
  and verified by re-parsing and re-checking) and write every changed file (to a scratch copy);
- the bare cost of the work: one ruamel.yaml round trip (load + dump) of the files kube-remedy
  touches.

and prints min and median CPU seconds of each side and their ratio (target <= 0.5, goal 0.2).

Untouched bytes are checked independently of the splicer's own diff: for every changed file,
difflib's line diff (another algorithm than the splicer's positions) lists the lines of the
original that changed; each must mention a key or value of an edit planned for that file (or be
a line of a sequence one edits). The count of lines that do not is printed and must be 0.

    .venv/bin/python -m bench.bench_pipeline [--manifests 2000] [--findings 10000] [--repeats 3]

``--instructions`` also counts the instructions each side executes, once each under valgrind's
callgrind (steady where CPU time drifts; see `bench.instructions`; about 50 times slower). The
counts compare commits of one side; they are no substitute for the CPU ratio of the two.
"""

from __future__ import annotations

import argparse
import difflib
import json
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

from bench.bench_compare import child_env

HERE = Path(__file__).resolve().parent.parent

OURS = r"""
import json, sys
from pathlib import Path
from bot.plan import build_plan
from bot.sources import load_report
report_path, repo, out = Path(sys.argv[1]), Path(sys.argv[2]), Path(sys.argv[3])
plan = build_plan(load_report(report_path), repo)
def words(value):
    if isinstance(value, dict):
        for k, v in value.items():
            yield str(k)
            yield from words(v)
    elif isinstance(value, (list, tuple)):
        for v in value:
            yield from words(v)
    elif value is not None:
        yield str(value)
edits = {}
for cs in plan.change_sets:
    for change in cs.files:
        target = out / change.path
        target.parent.mkdir(parents=True, exist_ok=True)
        with target.open("w", encoding="utf-8", newline="") as fh:
            fh.write(change.after)
    for fix in cs.fixes:
        found = edits.setdefault(fix.location.path, [])
        for edit in fix.edits:
            found += [str(p) for p in getattr(edit, "path", ())]
            found += list(words(getattr(edit, "value", None)))
print(json.dumps({"touched": sorted(edits), "words": edits}))
"""

BARE = r"""
import io, sys
from pathlib import Path
from ruamel.yaml import YAML
yaml = YAML()
yaml.preserve_quotes = True
for name in Path(sys.argv[1]).read_text().splitlines():
    docs = list(yaml.load_all(Path(name).read_text(encoding="utf-8")))
    yaml.dump_all(docs, io.StringIO())
"""


def _children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def child(code: str, *args: str) -> tuple[float, str]:
    """CPU seconds (user + system) of one child process and its standard output."""
    env = child_env(HERE)
    start = _children_cpu()
    done = subprocess.run(
        [sys.executable, "-c", code, *args], env=env, capture_output=True, text=True, check=True
    )
    return _children_cpu() - start, done.stdout


def unexplained_lines(before: str, after: str, words: list[str]) -> list[str]:
    """Original lines that changed although no edit of the file names anything on them."""
    old, new = before.splitlines(), after.splitlines()
    matcher = difflib.SequenceMatcher(a=old, b=new, autojunk=False)
    out = []
    for tag, i1, i2, _, _ in matcher.get_opcodes():
        if tag in ("replace", "delete"):
            for line in old[i1:i2]:
                text = line.strip()
                if text.startswith("- ") or text in ("{}", "[]", "-"):
                    continue  # an item of an edited sequence, or an emptied collection
                if not any(w and w in line for w in words):
                    out.append(line)
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--manifests", type=int, default=2000)
    parser.add_argument("--findings", type=int, default=10000)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--instructions", action="store_true", help="also count instructions (callgrind)"
    )
    args = parser.parse_args(argv)
    sys.path.insert(0, str(HERE))
    from bench.synth import REPORT_NAME, build_cd_config

    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        repo = build_cd_config(root, args.manifests, args.findings, args.seed)
        report = root / REPORT_NAME
        ours: list[float] = []
        bare: list[float] = []
        listing = root / "touched.txt"
        outputs: set[str] = set()
        result: dict = {}
        for n in range(args.repeats):
            out = root / f"out-{n}"
            cpu, stdout = child(OURS, str(report), str(repo), str(out))
            ours.append(cpu)
            result = json.loads(stdout)
            outputs.add(
                json.dumps(
                    {p: (out / p).read_text(encoding="utf-8") for p in result["touched"]},
                    sort_keys=True,
                )
            )
            listing.write_text("\n".join(str(repo / p) for p in result["touched"]))
            cpu, _ = child(BARE, str(listing))
            bare.append(cpu)
            if n:
                shutil.rmtree(out)
        counted: tuple[int, int] | None = None
        if args.instructions:
            from bench.instructions import instructions

            env = child_env(HERE)
            out = root / "out-counted"
            ours_ir, _ = instructions(
                [sys.executable, "-c", OURS, str(report), str(repo), str(out)], env
            )
            bare_ir, _ = instructions([sys.executable, "-c", BARE, str(listing)], env)
            counted = (ours_ir, bare_ir)
        touched = result["touched"]
        size = sum((repo / p).stat().st_size for p in touched)
        first = root / "out-0"
        unexplained = []
        for path in touched:
            before = (repo / path).read_text(encoding="utf-8")
            after = (first / path).read_text(encoding="utf-8")
            unexplained += [
                f"{path}: {line}"
                for line in unexplained_lines(before, after, result["words"][path])
            ]

    print(f"synthetic cd-config: {args.manifests} manifests, {args.findings} failed results")
    print(
        f"touched files: {len(touched)} ({size / 1e6:.2f} MB); same output every round: "
        f"{len(outputs) == 1}"
    )
    print(f"{'CPU s':<36} {'min':>7} {'median':>7}")
    print(f"{'kube-remedy parse+plan+write':<36} {min(ours):7.2f} {statistics.median(ours):7.2f}")
    print(
        f"{'ruamel load+dump of touched files':<36} {min(bare):7.2f} {statistics.median(bare):7.2f}"
    )
    print(
        f"ratio kube-remedy / ruamel round trip: min {min(ours) / min(bare):.2f}, median "
        f"{statistics.median(ours) / statistics.median(bare):.2f} (target <= 0.5, goal 0.2)"
    )
    if counted is not None:
        # Not a ratio: the two programs run at very different instructions per second (at
        # 100 manifests, 1.32x the round trip's CPU time with 0.57x its instructions).
        print(
            f"instructions: kube-remedy {counted[0]:,}, ruamel {counted[1]:,} "
            "(for comparing commits of one side)"
        )
    print(f"changed original lines no edit explains: {len(unexplained)}")
    for line in unexplained[:10]:
        print(f"  {line}")
    return 0 if not unexplained and len(outputs) == 1 else 1


if __name__ == "__main__":
    raise SystemExit(main())
