"""An event's ``data`` is decoded by msgspec where it can and by ``json.loads`` otherwise: the values are what
``json.loads`` gives in both cases, and what it rejects is still an invalid event."""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tokenyard.pipeline.event import EventInvalid, decode_event

_json = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False, allow_infinity=False) | st.text(),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=5), inner, max_size=4),
    max_leaves=12)


@given(st.dictionaries(st.text(max_size=8), _json, max_size=5))
def test_data_decodes_as_json_loads_does(data: dict[str, Any]) -> None:
    raw = json.dumps(data, ensure_ascii=False)
    assert decode_event("1-0", {"data": raw}).data == json.loads(raw)


@pytest.mark.parametrize("raw", ['{"a": NaN, "b": Infinity}', '{"a": 1e400}', '{"a": "\\ud800"}',
                                 '{"big": 123456789012345678901234567890}', ' {"a": 1} '])
def test_what_only_pythons_parser_takes_still_decodes(raw: str) -> None:
    assert repr(decode_event("1-0", {"data": raw}).data) == repr(json.loads(raw))


@pytest.mark.parametrize("raw", ["{", "[1]", '"text"', "{}x", "\ufeff{}"])
def test_what_json_loads_rejects_is_invalid(raw: str) -> None:
    with pytest.raises(EventInvalid):
        decode_event("1-0", {"data": raw})
