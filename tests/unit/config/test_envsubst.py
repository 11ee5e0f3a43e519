"""``${VAR}`` / ``${VAR:-default}`` substitution on the parsed tree."""

from __future__ import annotations

from typing import Any

import pytest

from tokenyard.config.envsubst import substitute

ENV = {"HOST": "10.0.0.1", "EMPTY": "", "PORT": "8080"}


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("plain", "plain"),
        ("${HOST}", "10.0.0.1"),
        ("http://${HOST}:${PORT}/v1", "http://10.0.0.1:8080/v1"),
        ("${MISSING:-fallback}", "fallback"),
        ("${MISSING:-}", ""),
        ("${EMPTY:-fallback}", ""),  # set but empty: the value wins (like ${VAR-default} in shells)
        ("$${HOST}", "${HOST}"),
        ("cost $5", "cost $5"),
        ("${MISSING:-a:-b}", "a:-b"),
        (8080, 8080),
        (None, None),
        (True, True),
    ],
)
def test_substitution(value: Any, expected: Any) -> None:
    issues: list[tuple[str, str]] = []
    assert substitute(value, ENV, "x", issues) == expected
    assert issues == []


def test_nested_paths_and_missing_variables() -> None:
    issues: list[tuple[str, str]] = []
    doc = {"keys": [{"key": "${A}"}, {"key": "${B}"}], "admin": {"key": "${HOST}"}}
    result = substitute(doc, ENV, "", issues)
    assert result["admin"] == {"key": "10.0.0.1"}
    assert [path for path, _ in issues] == ["keys[0].key", "keys[1].key"]
    assert "environment variable A is not set" in issues[0][1]


def test_malformed_reference() -> None:
    issues: list[tuple[str, str]] = []
    substitute({"a": "${not valid}"}, ENV, "", issues)
    assert issues and issues[0][0] == "a" and "malformed" in issues[0][1]


def test_values_are_not_rescanned() -> None:
    issues: list[tuple[str, str]] = []
    assert substitute("${X}", {"X": "${HOST}"}, "", issues) == "${HOST}"
    assert issues == []


def test_mapping_keys_are_left_alone() -> None:
    issues: list[tuple[str, str]] = []
    assert substitute({"${HOST}": "v"}, ENV, "", issues) == {"${HOST}": "v"}
