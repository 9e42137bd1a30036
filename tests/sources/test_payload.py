"""The payload field types the readers declare: the tolerance of odd values each one promises,
and the one-line error `validated` gives for a part of the wrong type."""

from __future__ import annotations

from typing import Annotated

import pytest

from bot.errors import ReportError
from bot.sources._payload import (
    FalsyEmpty,
    ListUnlessFalsy,
    ListUnlessNone,
    ObjectsOnly,
    OrEmpty,
    OrNone,
    Payload,
    Str,
    Text,
    validated,
)


class _Leaf(Payload):
    text: Text = ""


class _Sample(Payload):
    text: Text = ""
    string: Str = None
    or_empty: Annotated[_Leaf, OrEmpty] = _Leaf()
    or_none: Annotated[_Leaf | None, OrNone] = None
    falsy_empty: Annotated[_Leaf, FalsyEmpty] = _Leaf()
    objects: Annotated[list[_Leaf], ObjectsOnly] = []
    unless_falsy: Annotated[list[int] | None, ListUnlessFalsy] = []
    unless_none: Annotated[list[int] | None, ListUnlessNone] = []


def test_missing_fields_take_their_defaults() -> None:
    sample = _Sample.model_validate({"unknown": 1})
    assert sample.text == "" and sample.string is None and sample.or_none is None
    assert sample.objects == [] and sample.unless_falsy == []


@pytest.mark.parametrize(
    ("raw", "text"), [(None, ""), ("", ""), (0, ""), (False, ""), ("a", "a"), (7, "7")]
)
def test_text_is_str_of_the_value_or_empty(raw: object, text: str) -> None:
    assert _Sample.model_validate({"text": raw}).text == text


def test_str_keeps_only_strings() -> None:
    assert _Sample.model_validate({"string": "s"}).string == "s"
    assert _Sample.model_validate({"string": 3}).string is None


def test_objects_only_keeps_the_objects_of_a_list() -> None:
    assert _Sample.model_validate({"objects": {"a": 1}}).objects == []
    kept = _Sample.model_validate({"objects": [{"text": "x"}, 3, None]})
    assert [leaf.text for leaf in kept.objects] == ["x"]


def test_object_models_or_empty_or_none() -> None:
    sample = _Sample.model_validate({"or_empty": "x", "or_none": [1]})
    assert sample.or_empty == _Leaf() and sample.or_none is None
    assert _Sample.model_validate({"or_none": {"text": "t"}}).or_none == _Leaf(text="t")


def test_falsy_empty_accepts_empty_values_and_refuses_others() -> None:
    assert _Sample.model_validate({"falsy_empty": ""}).falsy_empty == _Leaf()
    with pytest.raises(ReportError) as caught:
        validated(_Sample, {"falsy_empty": "text"}, "r.json: malformed report")
    assert str(caught.value) == "r.json: malformed report at falsy_empty: should be a JSON object"


def test_list_markers_tell_empty_from_malformed() -> None:
    assert _Sample.model_validate({"unless_falsy": 0, "unless_none": None}).unless_falsy == []
    assert _Sample.model_validate({"unless_none": None}).unless_none == []
    assert _Sample.model_validate({"unless_falsy": "x"}).unless_falsy is None
    assert _Sample.model_validate({"unless_none": 0}).unless_none is None


def test_a_hostile_key_in_the_error_location_is_escaped() -> None:
    class _Nested(Payload):
        parts: dict[str, _Leaf]

    with pytest.raises(ReportError) as caught:
        validated(_Nested, {"parts": {"\x1b[2J\n": 3}}, "r.json: bad")
    message = str(caught.value)
    assert "\n" not in message and "\x1b" not in message
    assert message.startswith("r.json: bad at parts.\\x1b[2J\\n: ")
