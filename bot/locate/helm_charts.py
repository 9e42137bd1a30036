"""Chart directories as Helm renders them during a run: the repository's, or a copy.

A fix that changes templates is rendered from a copy of the chart holding the changed files,
made once per distinct set of changes. A probe that looks at some templates only renders a copy
limited to them and to what they need: every file that defines named templates and every
template they include by path (``include (print $.Template.BasePath "/cm.yaml")``). Helm executes
each template on its own with the same values and the same named templates, so a kept template
renders exactly as in the whole chart; a big chart's probe then costs a few templates, not
hundreds of CRD lines. A probe renders without the charts' ``values.schema.json`` files
(`ChartCopies.unvalidated`, and limited copies leave them out): a marker value no schema
allows would fail the render and hide the key it probes, as ``helm template
--skip-schema-validation`` renders it; the fix itself is rendered from the chart as it is, its
values validated as the user's Helm validates them. Copies are plain directories (Helm applies ``.helmignore`` as it loads
them) under one temporary directory, removed with the `ChartCopies`.
"""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import tempfile
import weakref
from collections.abc import Collection, Mapping
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any

from fixers.view import WORKLOAD_KINDS

LIMIT_ABOVE_BYTES = 64 * 1024
"""Template text above which a probe renders a limited copy (a copy costs a few renders of a
small chart)."""
_DEFINE = re.compile(r"\{\{-?\s*define\s")
SCHEMA = "values.schema.json"


_KIND_LINE = re.compile(r"^\s*-?\s*kind:\s*(.*?)\s*$", re.M)
_RENDERS_OTHERS = re.compile(r"\b(?:include|template|tpl|block)\b")


def _renders_no_workload(text: str) -> bool:
    """Whether a template's text can render no workload: every ``kind:`` it writes is a
    literal other kind, and it names no other template (no include, template, tpl or block,
    which also defines one)."""
    if _RENDERS_OTHERS.search(text):
        return False
    return all(
        kind.strip("'\"") not in WORKLOAD_KINDS and "{{" not in kind
        for kind in _KIND_LINE.findall(text)
    )


def _templates_dir(relpath: str) -> str | None:
    """The ``templates`` directory (chart-relative) a file lies in when Helm reads it as a
    template: the chart's own ``templates/`` or a vendored subchart's; None otherwise."""
    parts = PurePosixPath(relpath).parts
    at = 0
    while at + 3 < len(parts) and parts[at] == "charts":
        if parts[at + 2] == "templates":
            return "/".join(parts[: at + 3])
        at += 2
    return "templates" if parts and parts[0] == "templates" and len(parts) > 1 else None


@dataclass
class ChartCopies:
    """The copies of charts one run renders (see the module docstring)."""

    _tmp: Path | None = None
    _changed: dict[str, Path] = field(default_factory=dict)
    _limited: dict[tuple[Path, frozenset[str]], Path | None] = field(default_factory=dict)
    _unvalidated: dict[Path, Path] = field(default_factory=dict)
    _templates: dict[Path, dict[str, str]] = field(default_factory=dict)
    _private: dict[Path, Path] = field(default_factory=dict)
    _ours: set[Path] = field(default_factory=set)
    _made_from: dict[Path, tuple[Path, dict[str, str]]] = field(default_factory=dict)
    """Each copy with changes: the directory it copies and the files it changes."""

    def _new_dir(self, name: str) -> Path:
        if self._tmp is None:
            self._tmp = Path(tempfile.mkdtemp(prefix="kr-chart-"))
            weakref.finalize(self, shutil.rmtree, self._tmp, True)
        parent = Path(tempfile.mkdtemp(dir=self._tmp))
        return parent / name

    def with_changes(self, chart_dir: Path, changed: Mapping[str, str]) -> Path:
        """``chart_dir`` with the chart-relative files of ``changed`` written (the directory
        itself when nothing changes); one copy per distinct set of changes."""
        if not changed:
            return chart_dir
        digest = hashlib.sha256(
            "\0".join(f"{p}\0{t}" for p, t in sorted(changed.items())).encode()
        ).hexdigest()
        key = f"{chart_dir}\0{digest}"
        if key not in self._changed:
            target = self._link_copy(self._writable_source(chart_dir))
            for path, text in changed.items():
                file = target / path
                file.parent.mkdir(parents=True, exist_ok=True)
                file.unlink(missing_ok=True)  # a hard link: never write through it
                file.write_text(text, encoding="utf-8")
            self._ours.add(target)
            self._changed[key] = target
            self._made_from[target] = (chart_dir, dict(changed))
        return self._changed[key]

    def unseen_by_others(self, chart_dir: Path) -> Path | None:
        """The chart directory ``chart_dir`` is a copy of, when the copy's changes cannot
        alter what any of that chart's templates renders: every changed file is a new
        template of the chart itself that is no partial, defines no named template, names
        no workload kind and is included by path by no other template (a fix's new
        NetworkPolicy, say). None otherwise, and for a directory that is not a copy."""
        made = self._made_from.get(chart_dir)
        if made is None:
            return None
        base, changed = made
        before = self.template_files(base)
        for rel, text in changed.items():
            name = PurePosixPath(rel)
            if (
                rel in before
                or _templates_dir(rel) != "templates"
                or name.name.startswith("_")
                or _DEFINE.search(text)
                or not _renders_no_workload(text)
                or any(rel[len("templates/") :] in other for other in before.values())
            ):
                return None
        return base

    def _writable_source(self, chart_dir: Path) -> Path:
        """What a copy to be written to links to: one of the run's own copies, or a private
        copy of a repository chart made once (the repository's files are never linked to where
        a link could be written through)."""
        if chart_dir in self._ours:
            return chart_dir
        if chart_dir not in self._private:
            private = self._new_dir(chart_dir.name or "chart")
            # Links are copied as files: every one was checked to be a file in the repository.
            shutil.copytree(chart_dir, private)
            self._ours.add(private)
            self._private[chart_dir] = private
        return self._private[chart_dir]

    def _link_copy(self, source: Path, ignore: Any = None) -> Path:
        """A new directory with the files of ``source`` (minus ``ignore``, as for
        `shutil.copytree`) hard-linked: a copy costs a link per file (copied where the file
        system has no hard links)."""
        target = self._new_dir(source.name or "chart")
        try:
            shutil.copytree(source, target, ignore=ignore, copy_function=os.link)
        except OSError:
            shutil.rmtree(target, ignore_errors=True)
            shutil.copytree(source, target, ignore=ignore)
        return target

    def unvalidated(self, chart_dir: Path) -> Path:
        """``chart_dir`` without the ``values.schema.json`` of the chart and of its vendored
        subcharts (the directory itself when it has none): what a probe renders whole. A
        subchart packed as an archive keeps its schema."""
        if chart_dir not in self._unvalidated:
            schemas = any(chart_dir.rglob(SCHEMA)) if chart_dir.is_dir() else False
            self._unvalidated[chart_dir] = (
                self._link_copy(chart_dir, shutil.ignore_patterns(SCHEMA)) if schemas else chart_dir
            )
        return self._unvalidated[chart_dir]

    def limited(
        self, chart_dir: Path, templates: Collection[str], *, small: bool = False
    ) -> Path | None:
        """A copy of ``chart_dir`` that renders only ``templates`` (Helm's names, such as
        ``demo/templates/deployment.yaml``) and what they need, for probes (no
        ``values.schema.json``); None when one of them is not a
        template file of the directory (a subchart packed as an archive, say), when the copy
        would keep every template anyway, or when the chart is small enough that rendering it
        whole costs less than a copy (unless ``small``: the copy serves many renders)."""
        if not small and sum(map(len, self.template_files(chart_dir).values())) < LIMIT_ABOVE_BYTES:
            return None
        key = (chart_dir, frozenset(templates))
        if key not in self._limited:
            self._limited[key] = self._make_limited(chart_dir, key[1])
        return self._limited[key]

    def _make_limited(self, chart_dir: Path, wanted: frozenset[str]) -> Path | None:
        files = self.template_files(chart_dir)
        keep: set[str] = set()
        for name in wanted:
            rel = name.split("/", 1)[1] if "/" in name else ""
            if rel not in files:
                return None
            keep.add(rel)
        keep |= {
            rel
            for rel, text in files.items()
            if PurePosixPath(rel).name.startswith("_") or _DEFINE.search(text)
        }
        # Templates included by path, transitively (checksum annotations of ConfigMaps).
        by_dir = {rel: rel[len(str(_templates_dir(rel))) + 1 :] for rel in files}
        todo = list(keep)
        while todo:
            text = files[todo.pop()]
            for rel, short in by_dir.items():
                if rel not in keep and short in text:
                    keep.add(rel)
                    todo.append(rel)
        if len(keep) == len(files):
            return None
        drop = set(files) - keep

        def ignore(directory: str, names: list[str]) -> list[str]:
            rel_dir = os.path.relpath(directory, chart_dir)
            prefix = "" if rel_dir == "." else Path(rel_dir).as_posix() + "/"
            return [n for n in names if prefix + n in drop or n == SCHEMA]

        # Read only (nothing writes to a limited copy): its files may link to the chart's.
        return self._link_copy(chart_dir, ignore)

    def template_files(self, chart_dir: Path) -> dict[str, str]:
        """Every template file of the chart and its vendored subcharts (chart-relative path ->
        text), read once per directory."""
        if chart_dir not in self._templates:
            out: dict[str, str] = {}
            for dirpath, dirnames, filenames in os.walk(chart_dir):
                dirnames.sort()
                rel_dir = Path(dirpath).relative_to(chart_dir).as_posix()
                for name in sorted(filenames):
                    rel = name if rel_dir == "." else f"{rel_dir}/{name}"
                    if _templates_dir(rel) is not None:
                        out[rel] = Path(dirpath, name).read_text(encoding="utf-8", errors="replace")
            self._templates[chart_dir] = out
        return self._templates[chart_dir]
