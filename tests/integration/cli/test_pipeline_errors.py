"""``tokenyard pipeline`` commands: an event log that cannot be used is one line and an exit code."""

from __future__ import annotations

import socket
from pathlib import Path

import pytest

from tests.integration.cli.helpers import assert_clean_error, tokenyard

SPEC = ("name: t\nlog: {log}\nsource: {{stream: ev, group: g}}\n"
        "inference: {{upstream: http://127.0.0.1:9/v1, model: m}}\n")
COMMANDS = [["run", "SPEC", "--port", "0"], ["lineage", "SPEC", "1-0"], ["control", "SPEC", "pause"],
            ["replay", "SPEC", "--sink-jsonl", "OUT"]]


def _args(command: list[str], spec: Path) -> list[str]:
    names = {"SPEC": str(spec), "OUT": str(spec.with_suffix(".jsonl"))}
    return ["pipeline", *(names.get(arg, arg) for arg in command)]


@pytest.mark.parametrize("command", COMMANDS, ids=lambda c: c[0])
def test_unreachable_redis_log(tmp_path: Path, unused_port: int, command: list[str]) -> None:
    spec = tmp_path / "p.yaml"
    spec.write_text(SPEC.format(log=f"redis://user:secret@127.0.0.1:{unused_port}/0"))
    result = tokenyard(*_args(command, spec))
    assert_clean_error(result, 1, f"error: log: redis://user:***@127.0.0.1:{unused_port}/0: redis unavailable")
    assert "secret" not in result.stderr


@pytest.mark.parametrize("command", COMMANDS, ids=lambda c: c[0])
def test_sqlite_log_in_a_missing_directory(tmp_path: Path, command: list[str]) -> None:
    spec = tmp_path / "p.yaml"
    spec.write_text(SPEC.format(log=f"sqlite://{tmp_path}/missing/x.db"))
    result = tokenyard(*_args(command, spec))
    assert_clean_error(result, 1, f"cannot open the SQLite event log {tmp_path}/missing/x.db")


@pytest.mark.parametrize("command", COMMANDS, ids=lambda c: c[0])
def test_unknown_log_scheme_is_a_spec_error(tmp_path: Path, command: list[str]) -> None:
    spec = tmp_path / "p.yaml"
    spec.write_text(SPEC.format(log="bogus://x"))
    assert_clean_error(tokenyard(*_args(command, spec)), 1, "log: unknown event-log URL 'bogus://x'")


@pytest.mark.parametrize("option", ["--from", "--to"])
@pytest.mark.parametrize("value", ["bogus", "99999999999999999999999", "5-9223372036854775808"])
def test_replay_bad_range_is_a_usage_error(tmp_path: Path, option: str, value: str) -> None:
    # Ids past 64 bits were accepted, then SQLite raised OverflowError (Redis: ResponseError) as a traceback.
    spec = tmp_path / "p.yaml"
    spec.write_text(SPEC.format(log=f"sqlite://{tmp_path}/x.db"))
    result = tokenyard(*_args(["replay", "SPEC", "--sink-jsonl", "OUT", option, value], spec))
    assert_clean_error(result, 2, f"invalid stream id '{value}'")


def test_run_on_a_port_in_use_is_one_line(tmp_path: Path) -> None:
    # The HTTP side's bind failure was an OSError traceback.
    spec = tmp_path / "p.yaml"
    spec.write_text(SPEC.format(log=f"sqlite://{tmp_path}/x.db"))
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = tokenyard(*_args(["run", "SPEC", "--port", str(port)], spec))
    assert_clean_error(result, 1, "error: worker.metrics: cannot listen:")
    assert "in use" in result.stderr


@pytest.mark.parametrize("stream", ["ev", "ev:control", "ev:dead"])
def test_replay_into_the_pipelines_own_stream_is_a_usage_error(tmp_path: Path, stream: str) -> None:
    # Results replayed into the source (or control) stream were read back by the workers as events.
    spec = tmp_path / "p.yaml"
    spec.write_text(SPEC.format(log=f"sqlite://{tmp_path}/x.db"))
    result = tokenyard(*_args(["replay", "SPEC", "--sink-stream", stream], spec))
    assert_clean_error(result, 2, "one of the pipeline's own streams")


def test_a_jsonl_sink_that_cannot_write_is_refused_before_work(tmp_path: Path) -> None:
    # The worker started and spent every event's inference max_attempts times on results it could not write.
    spec = tmp_path / "p.yaml"
    spec.write_text(SPEC.format(log=f"sqlite://{tmp_path}/x.db")
                    + f"sinks:\n  - jsonl: {{path: {tmp_path}/missing/out.jsonl}}\n")
    result = tokenyard(*_args(["run", "SPEC", "--port", "0"], spec), timeout=15)
    assert_clean_error(result, 1, f"error: sinks[0].jsonl.path: cannot write {tmp_path}/missing/out.jsonl")
    spec.write_text(SPEC.format(log=f"sqlite://{tmp_path}/x.db"))
    result = tokenyard("pipeline", "replay", str(spec), "--sink-jsonl", f"{tmp_path}/missing/out.jsonl")
    assert_clean_error(result, 2, "directory")
