"""The explanation template of each fixer (``templates/<fixer name>.md.j2`` beside its rules
package: ``fixers/templates/`` for the built-in fixers in ``fixers/rules/``).

Templates are Jinja2 GitLab markdown rendered by the bot with ``StrictUndefined`` and the
variables ``fixer`` (name, controls, risk), ``finding``, ``notes`` and ``values_used``. Each
defines a macro ``how_to_test()``: the advice specific to its change, which the merge request
lists under "How to test" (the macro's text is not part of the explanation).
"""

from __future__ import annotations

import re
from importlib.resources import files

from fixers.base import Fixer

_NAME = re.compile(r"^[a-z][a-z0-9_]*$")


class TemplateMissing(LookupError):
    """No explanation template exists for a fixer."""


def explanation_template(fixer: Fixer | str) -> str:
    """The Jinja2 source of a fixer's explanation template (a name means a built-in fixer)."""
    if isinstance(fixer, str):
        name, home = fixer, "fixers"
    else:
        name, home = fixer.name, _home(fixer)
    if not _NAME.match(name):
        raise TemplateMissing(f"not a fixer name: {name!r}")
    resource = files(home).joinpath("templates", f"{name}.md.j2")
    if not resource.is_file():
        folder = home.replace(".", "/")
        raise TemplateMissing(f"no explanation template {folder}/templates/{name}.md.j2")
    return resource.read_text(encoding="utf-8")


def _home(fixer: Fixer) -> str:
    """The package holding the fixer's rules package (``fixers`` for ``fixers.rules.x``)."""
    parts = type(fixer).__module__.split(".")
    if len(parts) < 3:
        raise TemplateMissing(
            f"{fixer.name}: a fixer's rules package must sit inside a package that holds "
            "its templates/ folder"
        )
    return ".".join(parts[:-2])
