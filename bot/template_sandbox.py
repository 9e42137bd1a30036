"""Render a template cd-config supplies, in a sandbox it cannot leave or exhaust.

A repository's template is code written by whoever can commit to cd-config. It is compiled and
rendered in a separate, short-lived Python process:

- Jinja2's ``ImmutableSandboxedEnvironment`` (`bot.markdown.markdown_environment`): no attribute
  starting with ``_`` (so no ``__class__``/``__globals__``/``__subclasses__`` walk), no method
  that mutates, bounded ``range``, every ``{{ value }}`` escaped for Markdown;
- only plain data in the context (dicts, lists, strings, numbers, booleans, None; checked by
  `plain`), so there is no object whose methods lead to settings or secrets;
- an environment without the parent's variables (no token to read even by a sandbox escape),
  Python started isolated (``-I``);
- bounded address space, CPU time, wall-clock time (the process is killed) and output length.

Any failure is a `TemplateRefused` with a one-line reason; the caller falls back to the built-in
template and says why on the dashboard.
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Mapping
from typing import Any

from bot.markdown import Md

TIMEOUT = 5.0
"""Seconds a repository template may take to compile and render."""
MEMORY = 512 * 1024 * 1024
"""Bytes of address space the rendering process may use."""
_MD = "\x00md"


class TemplateRefused(Exception):
    """A repository template that does not compile, fails, or exceeds a bound."""

    def __init__(self, message: str, lineno: int | None = None) -> None:
        super().__init__(message)
        self.lineno = lineno


def plain(value: Any, where: str = "context") -> Any:
    """``value`` as JSON-ready plain data (tuples become lists; `Md` is tagged so the child
    keeps it unescaped); anything else is a programming error, refused loudly."""
    if isinstance(value, Md):
        return {_MD: str(value)}
    if value is None or isinstance(value, bool | int | float | str):
        return value if type(value) in (bool, int, float, str, type(None)) else str(value)
    if isinstance(value, Mapping):
        out = {}
        for key, item in value.items():
            if not isinstance(key, str):
                raise TypeError(f"{where}: key {key!r} is not a string")
            out[key] = plain(item, f"{where}.{key}")
        return out
    if isinstance(value, list | tuple):
        return [plain(item, f"{where}[]") for item in value]
    raise TypeError(f"{where}: {type(value).__name__} is not plain data")


def unplain(value: Any) -> Any:
    """The inverse of `plain`: tagged `Md` strings back to `Md`."""
    if isinstance(value, dict):
        if set(value) == {_MD}:
            return Md(value[_MD])
        return {key: unplain(item) for key, item in value.items()}
    if isinstance(value, list):
        return [unplain(item) for item in value]
    return value


_CHILD = (
    "import sys, json; sys.path[:] = json.loads(sys.argv[1]); "
    "from bot.template_sandbox import _child; _child()"
)


def render_untrusted(
    source: str,
    context: Mapping[str, Any],
    *,
    name: str = "template",
    limit: int = 1_000_000,
    timeout: float = TIMEOUT,
    memory: int = MEMORY,
) -> tuple[str, bool]:
    """Render ``source`` with ``context`` in the sandbox: ``(text, over)``, where ``over`` says
    the output went past ``limit`` characters and ``text`` was cut there.

    With an empty context only compiles. Raises `TemplateRefused`."""
    request = json.dumps(
        {
            "source": source,
            "name": name,
            "context": plain(dict(context)),
            "limit": limit,
            "memory": memory,
            "cpu": int(timeout) + 1,
        }
    )
    try:
        proc = subprocess.run(
            [sys.executable, "-I", "-X", "utf8", "-c", _CHILD, json.dumps(sys.path)],
            input=request.encode("utf-8"),
            capture_output=True,
            timeout=timeout,
            env={},
            cwd="/",
        )
    except subprocess.TimeoutExpired:
        raise TemplateRefused(f"rendering took longer than {timeout:g} s and was stopped") from None
    try:
        answer = json.loads(proc.stdout.decode("utf-8"))
    except ValueError:
        answer = None
    if not isinstance(answer, dict):
        if proc.returncode < 0 or b"MemoryError" in proc.stderr:
            raise TemplateRefused("rendering exceeded the memory or CPU bound and was stopped")
        raise TemplateRefused(f"the rendering process failed (exit {proc.returncode})")
    if "error" in answer:
        raise TemplateRefused(str(answer["error"]), answer.get("lineno"))
    return str(answer["text"]), bool(answer["over"])


def _child() -> None:
    """The rendering process: one JSON request on stdin, one JSON answer on stdout."""
    import resource

    import jinja2

    from bot.markdown import markdown_environment

    request = json.loads(sys.stdin.buffer.read().decode("utf-8"))
    resource.setrlimit(resource.RLIMIT_AS, (request["memory"], request["memory"]))
    resource.setrlimit(resource.RLIMIT_CPU, (request["cpu"], request["cpu"]))
    limit = int(request["limit"])
    answer: dict[str, Any]
    try:
        env = markdown_environment()
        template = env.from_string(request["source"])
        template.name = request["name"]
        context = unplain(request["context"])
        parts: list[str] = []
        size = 0
        over = False
        if context:
            for chunk in template.generate(**context):
                parts.append(chunk)
                size += len(chunk)
                if size > limit:
                    over = True
                    break
        answer = {"text": "".join(parts)[: limit + 1], "over": over}
    except jinja2.TemplateSyntaxError as exc:
        answer = {"error": exc.message or str(exc), "lineno": exc.lineno}
    except MemoryError:
        answer = {"error": "rendering exceeded the memory bound"}
    except RecursionError:
        answer = {"error": "rendering recursed too deeply"}
    except Exception as exc:  # whatever the template did, the answer is one line
        answer = {"error": f"{type(exc).__name__}: {exc}"}
    sys.stdout.buffer.write(json.dumps(answer).encode("utf-8"))
