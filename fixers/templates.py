"""The explanation template of each fixer (``fixers/templates/<fixer name>.md.j2``).

Templates are Jinja2 GitLab markdown rendered by the bot with ``StrictUndefined`` and the
variables ``fixer`` (name, controls, risk), ``finding``, ``notes`` and ``values_used``. Each
defines a macro ``how_to_test()``: the advice specific to its change, which the merge request
lists under "How to test" (the macro's text is not part of the explanation).
"""

from __future__ import annotations

import re
from importlib.resources import files

_NAME = re.compile(r"^[a-z][a-z0-9_]*$")


class TemplateMissing(LookupError):
    """No explanation template exists for a fixer."""


def explanation_template(fixer_name: str) -> str:
    """The Jinja2 source of a fixer's explanation template."""
    if not _NAME.match(fixer_name):
        raise TemplateMissing(f"not a fixer name: {fixer_name!r}")
    resource = files("fixers").joinpath("templates", f"{fixer_name}.md.j2")
    if not resource.is_file():
        raise TemplateMissing(f"no explanation template fixers/templates/{fixer_name}.md.j2")
    return resource.read_text(encoding="utf-8")
