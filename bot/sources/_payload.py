"""Typed views of untrusted report payloads: pydantic models the readers validate raw dicts into.

A reader declares the parts of its scanner's format it reads as `Payload` models; unknown keys
are ignored (scanners add fields between releases). The field types below keep the readers'
long-standing tolerance of odd values in optional places, so a report that parsed before still
parses to the same findings:

- `Text`: any value as text, ``""`` for a missing or empty one (``str(value or "")``);
- `Str`: the value when it is a string, else None (no coercion);
- `Raw`: the value as it is, for a reader that branches on its shape;
- `OrEmpty`/`OrNone`/`FalsyEmpty`, `ListOrEmpty`/`ObjectsOnly`/`ListUnlessFalsy`/`ListUnlessNone`:
  nested models and lists, with what a value of another type reads as (see each).

Where a value of the wrong type makes the report unusable, a reader declares the field with its
plain type and `validated` turns pydantic's error into a one-line `ReportError` naming where.
"""

from __future__ import annotations

from collections.abc import Mapping
from functools import cache
from typing import Annotated, Any, TypeVar

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    PlainValidator,
    ValidationError,
)

from bot.errors import ReportError


class Payload(BaseModel):
    """A part of a report: the declared fields, read from a JSON object.

    Every reader is imported to recognise a report and one reads it: validators are built on
    first use (``defer_build``), not by the import of every reader's models."""

    model_config = ConfigDict(extra="ignore", frozen=True, defer_build=True)


def _text(value: Any) -> str:
    return str(value) if value else ""


def _str(value: Any) -> str | None:
    return value if isinstance(value, str) else None


def _items(value: Any) -> list[Any]:
    return value if isinstance(value, list) else []


def _object(value: Any) -> Mapping[str, Any]:
    return value if isinstance(value, Mapping) else {}


Text = Annotated[str, PlainValidator(_text)]
Str = Annotated[str | None, PlainValidator(_str)]
Raw = Any
"""Any value, kept as it is (a reader that branches on its shape)."""


def _objects_only(value: Any) -> list[Any]:
    return [v for v in value if isinstance(v, Mapping)] if isinstance(value, list) else []


def _list_unless_falsy(value: Any) -> list[Any] | None:
    return value if isinstance(value, list) else None if value else []


def _list_unless_none(value: Any) -> list[Any] | None:
    return value if isinstance(value, list) else [] if value is None else None


def _falsy_empty(value: Any) -> Any:
    return value or {}


def _or_none(value: Any) -> Any:
    return value if isinstance(value, Mapping) else None


ListOrEmpty = BeforeValidator(_items)
"""For ``Annotated[list[Model], ListOrEmpty]``: a list (its items validated), or an empty one for
anything else."""
ListUnlessFalsy = BeforeValidator(_list_unless_falsy)
"""For ``Annotated[list[X] | None, ListUnlessFalsy]``: a list, an empty one for a missing or empty
value (``value or []``), None for any other value (the reader says it is no list)."""
ListUnlessNone = BeforeValidator(_list_unless_none)
"""As `ListUnlessFalsy`, but only a missing or null value is an empty list."""
FalsyEmpty = BeforeValidator(_falsy_empty)
"""For ``Annotated[Model, FalsyEmpty]``: a missing or empty value as the empty model (``value or
{}``); any other value that is no JSON object does not validate."""
OrEmpty = BeforeValidator(_object)
"""For ``Annotated[Model, OrEmpty]``: a JSON object as the model, anything else as an empty one."""
OrNone = BeforeValidator(_or_none)
"""For ``Annotated[Model | None, OrNone]``: a JSON object as the model, anything else as None."""
ObjectsOnly = BeforeValidator(_objects_only)
"""For ``Annotated[list[Model], ObjectsOnly]``: the JSON objects of a list, as models (other
items, and a value that is no list, are passed over)."""


M = TypeVar("M", bound=BaseModel)


def empty(model: type[Payload]) -> Any:
    """A field's default: the empty ``model``, made on first use and then shared (payloads are
    frozen). An instance made in the class body would build validators on import."""
    return Field(default_factory=cache(model))


def validated(model: type[M], data: Any, what: str) -> M:
    """``data`` as ``model``; a mismatch is a one-line `ReportError` (``what`` names the report
    and the part, e.g. ``"r.json: malformed Checkov report"``)."""
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        first = exc.errors()[0]
        # ascii(): a hostile key never puts a newline or a terminal escape into the message
        where = ".".join(ascii(str(p))[1:-1][:40] for p in first["loc"]) or "(top)"
        message = "should be a JSON object" if first["type"] == "model_type" else first["msg"]
        raise ReportError(f"{what} at {where}: {message}") from None
