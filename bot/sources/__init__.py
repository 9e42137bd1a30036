"""Finding sources: read a scan report file and dispatch it to the module that knows its format.

A source module in this package defines ``FORMAT``, ``sniff(data) -> bool`` and
``parse(data, origin) -> Report``; modules are discovered by a package walk, so adding a scanner
adds one module and edits no list.
"""

from __future__ import annotations

import functools
import importlib
import pkgutil
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any

from bot.cluster import DEFAULT_PAGE_SIZE, ClusterAccess, CustomResource, api_client, list_all
from bot.errors import ReportError
from bot.heap import fewer_collections
from bot.safe_load import load_json, load_yaml_all
from bot.sources.base import Report

DEFAULT_MAX_BYTES = 512 * 1024 * 1024
STREAM_ABOVE_BYTES = 20 * 1024 * 1024


@dataclass(frozen=True)
class Source:
    """One discovered source module."""

    format: str
    sniff: Callable[[Any], bool]
    parse: Callable[[Any, str], Report]
    cluster_resources: tuple[CustomResource, ...] = ()
    """The custom resources it reads from a live cluster (``CLUSTER_RESOURCES``), if any."""
    read_objects: Callable[[Iterable[Any], str], Report] | None = None
    """Reads cluster objects as they arrive (``read_objects``); else they are parsed as a List."""


_SHAPE_ERRORS = (AttributeError, KeyError, IndexError, TypeError, ValueError)
"""What a reader meeting a value of a type or shape it did not expect raises."""


def _guard_sniff(sniff: Callable[[Any], bool]) -> Callable[[Any], bool]:
    def guarded(data: Any) -> bool:
        try:
            return bool(sniff(data))
        except _SHAPE_ERRORS:  # a shape this format never has
            return False

    return guarded


def _guard_parse(fmt: str, parse: Callable[[Any, str], Report]) -> Callable[[Any, str], Report]:
    """``parse``, where a value of an unexpected type or shape anywhere in the report is one
    line (a report is untrusted input: it must never cost a traceback)."""

    def guarded(data: Any, origin: str) -> Report:
        try:
            return parse(data, origin)
        except ReportError:
            raise
        except _SHAPE_ERRORS as exc:
            raise ReportError(
                f"{origin}: malformed {fmt} report: a value of an unexpected type or shape "
                f"({type(exc).__name__})"
            ) from None

    return guarded


def _is_source(module: ModuleType) -> bool:
    return (
        isinstance(getattr(module, "FORMAT", None), str)
        and callable(getattr(module, "sniff", None))
        and callable(getattr(module, "parse", None))
    )


def _source_names() -> list[str]:
    """The modules of `bot.sources` that may be sources, in name order (none imported)."""
    return sorted(
        info.name
        for info in pkgutil.iter_modules(__path__)
        if not info.name.startswith("_") and info.name != "base"
    )


@functools.cache
def _source(name: str) -> Source | None:
    """The source module ``name``, imported on first use (None when it is no source)."""
    module = importlib.import_module(f"{__name__}.{name}")
    if not _is_source(module):
        return None
    return Source(
        module.FORMAT,
        _guard_sniff(module.sniff),
        _guard_parse(module.FORMAT, module.parse),
        tuple(getattr(module, "CLUSTER_RESOURCES", ())),
        getattr(module, "read_objects", None),
    )


def _each_source() -> Iterator[Source]:
    """Every source module in module-name order, each imported only when it is reached (a
    report's format is found without importing the readers after it)."""
    for name in _source_names():
        source = _source(name)
        if source is not None:
            yield source


def sources() -> tuple[Source, ...]:
    """Every source module in `bot.sources`, in module-name order."""
    return tuple(_each_source())


def cluster_formats() -> tuple[str, ...]:
    """Formats that can be read from a live cluster (their scanner keeps results in CRs)."""
    return tuple(s.format for s in sources() if s.cluster_resources)


def fetch_from_cluster(
    format: str,
    access: ClusterAccess,
    namespace: str | None = None,
    *,
    page_size: int = DEFAULT_PAGE_SIZE,
) -> Report:
    """The results a scanner keeps in the cluster (``format`` is one of `cluster_formats`), in
    one namespace or every one, read page by page with the kubernetes client."""
    source = next((s for s in sources() if s.format == format and s.cluster_resources), None)
    if source is None:
        known = ", ".join(cluster_formats())
        raise ReportError(f"{format!r} results cannot be read from a cluster (known: {known})")
    api = api_client(access)
    try:
        names = ", ".join(r.full_name for r in source.cluster_resources)
        where = f"namespace {namespace}" if namespace else "all namespaces"
        origin = f"{api.configuration.host}: {names} in {where}"
        items = list_all(api, source.cluster_resources, namespace, page_size=page_size)
        if source.read_objects is not None:
            return source.read_objects(items, origin)
        listed = list(items)
        if not listed:
            raise ReportError(f"{origin}: no objects (has the scanner reported yet?)")
        return source.parse({"apiVersion": "v1", "kind": "List", "items": listed}, origin)
    finally:
        api.close()


def _describe(data: Any) -> str:
    """A short guess at what an unrecognised document is, for the error message."""
    if isinstance(data, list):
        return f"a JSON/YAML list of {len(data)} items"
    if not isinstance(data, Mapping):
        return f"a bare {type(data).__name__} value"
    kind = data.get("kind")
    if isinstance(kind, str):
        return f"a Kubernetes object of kind {ascii(kind)[1:-1][:60]}"
    # ascii(): a hostile key never puts a newline or a terminal escape into the message
    keys = ", ".join(sorted(ascii(str(k))[1:-1][:40] for k in data)[:6])
    return f"a mapping with keys {keys}" if keys else "an empty mapping"


def parse_report(data: Any, origin: str) -> Report:
    """Detect the format of a parsed document and turn it into a `Report`."""
    for source in _each_source():
        if source.sniff(data):
            return source.parse(data, origin)
    available = sources()
    # Kubescape first: the scanner the bot is built around, then the others by name.
    ordered = sorted(available, key=lambda s: (s.format != "kubescape", s.format))
    names = "/".join(s.format.capitalize() for s in ordered) or "known"
    raise ReportError(f"{origin}: not a {names} report: looks like {_describe(data)}")


def _decode(text: str, origin: str, suffix: str) -> Any:
    if suffix in {".yaml", ".yml"} or not text.lstrip().startswith(("{", "[")):
        docs = load_yaml_all(text, origin, error=ReportError)
        if len(docs) > 1:
            raise ReportError(f"{origin}: holds {len(docs)} YAML documents, expected one report")
        return docs[0] if docs else None
    return load_json(text, origin, error=ReportError)


def decode_report(data: bytes, origin: str, *, max_bytes: int = DEFAULT_MAX_BYTES) -> Report:
    """A report received as bytes (a CI artifact, a URL) read like `load_report` reads a file."""
    if len(data) > max_bytes:
        raise ReportError(
            f"{origin}: report is {len(data) / 1048576:.1f} MB, over the limit of "
            f"{max_bytes / 1048576:.0f} MB (raise the limit or split the scan)"
        )
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise ReportError(f"{origin}: not a text report (not UTF-8)") from None
    if not text.strip():
        raise ReportError(f"{origin}: report is empty")
    parsed = _decode(text, origin, "")
    if parsed is None:
        raise ReportError(f"{origin}: report holds no document")
    return parse_report(parsed, origin)


def _stream(path: Path, origin: str) -> Report | None:
    """A large Kubescape JSON report read item by item, or None to read the file whole."""
    try:
        with path.open("rb") as stream:
            head = stream.read(4096).removeprefix(b"\xef\xbb\xbf").lstrip()
    except OSError as exc:
        raise ReportError(f"cannot read report {origin}: {exc.strerror}") from None
    if not head.startswith(b"{"):
        return None
    from bot.sources import kubescape

    try:
        return kubescape.parse_file(path, origin)
    except _SHAPE_ERRORS as exc:
        raise ReportError(
            f"{origin}: malformed kubescape report: a value of an unexpected type or shape "
            f"({type(exc).__name__})"
        ) from None


def load_report(
    path: Path, *, max_bytes: int = DEFAULT_MAX_BYTES, stream_above: int = STREAM_ABOVE_BYTES
) -> Report:
    """Read a report file (JSON or YAML) and parse it; problems are one-line `ReportError`s.

    Kubescape JSON reports over ``stream_above`` bytes are read item by item, so the peak
    memory stays near the size of the findings and embedded objects rather than the whole
    parsed document."""
    with fewer_collections():
        return _load_report(Path(path), max_bytes, stream_above)


def _load_report(path: Path, max_bytes: int, stream_above: int) -> Report:
    origin = str(path)
    try:
        size = path.stat().st_size
    except FileNotFoundError:
        raise ReportError(f"report file not found: {origin}") from None
    except OSError as exc:
        raise ReportError(f"cannot read report {origin}: {exc.strerror}") from None
    if path.is_dir():
        raise ReportError(f"report path is a directory, not a file: {origin}")
    if size > max_bytes:
        raise ReportError(
            f"{origin}: report is {size / 1048576:.1f} MB, over the limit of "
            f"{max_bytes / 1048576:.0f} MB (raise the limit or split the scan)"
        )
    if size > stream_above and path.suffix.lower() not in {".yaml", ".yml"}:
        streamed = _stream(path, origin)
        if streamed is not None:
            return streamed
    try:
        text = path.read_text(encoding="utf-8-sig")
    except UnicodeDecodeError:
        raise ReportError(f"{origin}: not a text report (not UTF-8)") from None
    except OSError as exc:
        raise ReportError(f"cannot read report {origin}: {exc.strerror}") from None
    if not text.strip():
        raise ReportError(f"{origin}: report file is empty")
    data = _decode(text, origin, path.suffix.lower())
    if data is None:
        raise ReportError(f"{origin}: report file holds no document")
    return parse_report(data, origin)
