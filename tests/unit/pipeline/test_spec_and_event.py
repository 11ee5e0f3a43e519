"""The YAML spec (errors name the key path), event encoding, templates."""

from __future__ import annotations

from pathlib import Path

import pytest

from tokenyard.pipeline.event import EventInvalid, decode_event, encode_event
from tokenyard.pipeline.spec import SpecError, load_spec, parse_spec
from tokenyard.pipeline.transforms import PermanentError, render

BASE = {"name": "p", "log": "sqlite:///tmp/x.db", "source": {"stream": "ev"},
        "inference": {"model": "m", "upstream": "http://127.0.0.1:1/v1"}}


def test_minimal_spec_defaults() -> None:
    spec = parse_spec(BASE)
    assert spec.inference.klass == "batch"
    assert spec.dead_letter_stream == "ev:dead" and spec.control_stream == "ev:control"
    assert spec.worker.max_inflight == 64 and spec.delivery.max_attempts == 3


@pytest.mark.parametrize(("change", "message"), [
    ({"source": {"stream": "ev", "bogus": 1}}, "unknown field `bogus` - at `source`"),
    ({"worker": {"max_inflight": 0}}, "worker.max_inflight"),
    ({"transforms": [{}]}, "transforms[0]: exactly one of"),
    ({"transforms": [{"filter": {"field": "a"}, "template": {"text": "x"}}]}, "transforms[0]"),
    ({"sinks": [{"outcomes": ["completed"]}]}, "sinks[0]: exactly one of"),
    ({"inference": {"model": "m"}}, "inference: exactly one of gateway, upstream"),
    ({"lifecycle": {"valuable": {"hook": "nocolon"}}}, "module:function"),
    ({"log": "bogus://x"}, "log: unknown event-log URL 'bogus://x'"),
    ({"log": "sqlite://"}, "log: sqlite event-log URL 'sqlite://' names no file"),
    ({"sinks": [{"stream": {"stream": "s", "log": "redis:/x"}}, {"stream": {"stream": "s", "log": "kafka://k"}}]},
     "sinks[1].stream.log: unknown event-log URL 'kafka://k'"),
])
def test_spec_errors_name_the_key(change: dict[str, object], message: str) -> None:
    with pytest.raises(SpecError) as err:
        parse_spec({**BASE, **change})
    assert message in str(err.value)


def test_load_spec_reports_unreadable_file(tmp_path: Path) -> None:
    bad = tmp_path / "p.yaml"
    bad.write_text("name: [unclosed")
    with pytest.raises(SpecError, match="cannot read"):
        load_spec(bad)


def test_event_round_trip_and_deadlines() -> None:
    fields = encode_event({"text": "hi"}, event_id="x1", key="k", tenant="acme", created_ms=1000.0, ttl_ms=500)
    event = decode_event("7-0", fields)
    assert (event.id, event.key, event.tenant, event.data) == ("x1", "k", "acme", {"text": "hi"})
    assert event.deadline_ms == 1500.0 and event.expired(1500.0) and not event.expired(1499.0)
    bare = decode_event("8-0", encode_event({}, created_ms=1000.0), default_ttl_ms=100)
    assert bare.id == "8-0" and bare.tenant == "default" and bare.deadline_ms == 1100.0


@pytest.mark.parametrize("fields", [{"data": "[1]"}, {"data": "nope"}, {"data": "{}", "created_ms": "soon"}])
def test_bad_entries_are_invalid(fields: dict[str, str]) -> None:
    with pytest.raises(EventInvalid):
        decode_event("1-0", fields)


def test_templates_reach_into_objects_and_name_missing_fields() -> None:
    assert render("{user.name} said {text}", {"user": {"name": "ann"}, "text": "hi"}) == "ann said hi"
    assert render("{tags}", {"tags": ["a", "b"]}) == '["a", "b"]'
    with pytest.raises(PermanentError, match=r"'user\.age'"):
        render("{user.age}", {"user": {}})
    with pytest.raises(PermanentError):
        render("{unclosed", {})


def test_an_event_without_created_ms_dates_from_its_entry_id() -> None:
    # It was dated when read: its TTL restarted at every delivery, and a stale backlog never expired.
    event = decode_event("1000-3", {"data": "{}", "ttl_ms": "500"})
    assert event.created_ms == 1000.0 and event.deadline_ms == 1500.0
    assert decode_event("2000-0", {"data": "{}"}, default_ttl_ms=100).deadline_ms == 2100.0
