"""Instructions a child process executes, counted by valgrind's callgrind.

CPU seconds on a shared 2-core host drift by 10-20 % between runs of the same code, which
hides the few per cent a single change saves. The number of instructions a process executes
is the same from run to run (within about 0.2 % with a fixed hash seed: set iteration order
and dict collisions otherwise vary), so the benchmarks offer it (``--instructions``) as a
second, steady measure beside CPU time, for comparing two commits of the same program. It
counts instructions, not time: cache misses and system calls do not show, two different
programs can run at very different instructions per second, and the child runs about 50 times
slower.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import tempfile
from collections.abc import Mapping, Sequence
from pathlib import Path

_COLLECTED = re.compile(r"Collected : (\d+)")


def available() -> bool:
    """Whether valgrind is installed."""
    return shutil.which("valgrind") is not None


def instructions(
    argv: Sequence[str], env: Mapping[str, str], cwd: Path | None = None
) -> tuple[int, str]:
    """The instructions ``argv`` executes (callgrind's ``Ir``, startup and exit included) and
    its standard output. Raises `RuntimeError` without valgrind or when the child fails."""
    valgrind = shutil.which("valgrind")
    if valgrind is None:
        raise RuntimeError("valgrind is not installed (apt-get install valgrind)")
    with tempfile.TemporaryDirectory() as tmp:
        done = subprocess.run(
            [valgrind, "--tool=callgrind", f"--callgrind-out-file={Path(tmp) / 'out'}", *argv],
            env={**env, "PYTHONHASHSEED": "0"},
            capture_output=True,
            text=True,
            cwd=cwd,
        )
    if done.returncode != 0:
        raise RuntimeError(f"{argv[0]} failed under callgrind: {done.stderr[-2000:]}")
    found = _COLLECTED.search(done.stderr)
    if found is None:
        raise RuntimeError(f"callgrind printed no instruction count: {done.stderr[-2000:]}")
    return int(found[1]), done.stdout
