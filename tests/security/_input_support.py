"""Shared by the hostile-input tests: a cd-config git repository and a Checkov report of it."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from bot.cli import main

DEPLOYMENT = """\
apiVersion: apps/v1
kind: Deployment
metadata:
  name: {name}
  namespace: shop
spec:
  selector:
    matchLabels: {{app: {name}}}
  template:
    metadata:
      labels: {{app: {name}}}
    spec:
      containers:
        - name: web
          image: nginx:1.27
"""


def deployment(name: str) -> str:
    return DEPLOYMENT.format(name=name)


def git(repo: Path, *args: str) -> str:
    return subprocess.run(
        ["git", "-C", str(repo), *args], check=True, capture_output=True, text=True
    ).stdout.strip()


def commit_all(repo: Path) -> None:
    """Make ``repo`` a git repository holding everything in it (symlinks as links)."""
    if not (repo / ".git").exists():
        git(repo, "init", "-q", "-b", "main")
    git(repo, "add", "-A")
    git(repo, "-c", "user.name=t", "-c", "user.email=t@e", "commit", "-qm", "cd-config")


def checkov_report(path: Path, findings: list[tuple[str, str]]) -> Path:
    """A Checkov JSON report of CKV_K8S_20 (C-0016) failing on (file, Deployment name)."""
    failed = [
        {
            "check_id": "CKV_K8S_20",
            "check_name": "Containers should not run with allowPrivilegeEscalation",
            "file_path": f"/{file}",
            "file_line_range": [1, 15],
            "resource": f"Deployment.shop.{name}",
        }
        for file, name in findings
    ]
    report = {
        "check_type": "kubernetes",
        "results": {"failed_checks": failed, "passed_checks": []},
        "summary": {},
    }
    path.write_text(json.dumps(report), encoding="utf-8")
    return path


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def branches(repo: Path) -> list[str]:
    return git(repo, "branch", "--list", "remedy/*", "--format=%(refname:short)").split()


def tree(repo: Path, ref: str) -> dict[str, tuple[str, str]]:
    """path -> (mode, blob id) of every file on ``ref``."""
    out = {}
    for line in git(repo, "ls-tree", "-r", ref).splitlines():
        meta, path = line.split("\t", 1)
        mode, _, blob = meta.split()
        out[path] = (mode, blob)
    return out


def blob(repo: Path, ref: str, path: str) -> bytes:
    return subprocess.run(
        ["git", "-C", str(repo), "show", f"{ref}:{path}"], check=True, capture_output=True
    ).stdout
