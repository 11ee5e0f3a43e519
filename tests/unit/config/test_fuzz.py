"""Property test: whatever document is given, parse_config returns a config or raises ConfigError, nothing else."""

from __future__ import annotations

import copy
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from tests.unit.config.conftest import BASE
from tokenyard.config import ConfigError, GatewayConfig, parse_config
from tokenyard.config.decode import SECTION_TYPES

KEYS = sorted({f for t in SECTION_TYPES for f in t.__struct_fields__} | {"class", "*", "chat"})
scalars = (
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False)
    | st.text(max_size=12)
    | st.sampled_from(["${X}", "${X:-1}", "$${", "http://127.0.0.1:1/v1", "127.0.0.1", "premium", "chat"])
)
values = st.recursive(
    scalars,
    lambda inner: (
        st.lists(inner, max_size=3)
        | st.dictionaries(st.sampled_from(KEYS) | st.integers() | st.text(max_size=4), inner, max_size=4)
    ),
    max_leaves=25,
)
documents = st.dictionaries(st.sampled_from(KEYS), values, max_size=6)


def check(document: Any) -> None:
    """parse_config gives a config or a ConfigError with issues; any other exception fails the test."""
    try:
        result = parse_config(document, env={"X": "5"})
    except ConfigError as error:
        assert error.issues
        assert all(isinstance(path, str) and message for path, message in error.issues)
    else:
        assert isinstance(result, GatewayConfig)


@settings(max_examples=150, deadline=None)
@given(document=documents | values)
def test_arbitrary_documents(document: Any) -> None:
    check(document)


def _paths(node: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    found = [prefix] if prefix else []
    if isinstance(node, dict):
        for key, value in node.items():
            found += _paths(value, (*prefix, key))
    elif isinstance(node, list):
        for index, value in enumerate(node):
            found += _paths(value, (*prefix, index))
    return found


@settings(max_examples=150, deadline=None)
@given(data=st.data())
def test_mutated_valid_configs(data: st.DataObject) -> None:
    document = copy.deepcopy(BASE)
    for _ in range(data.draw(st.integers(1, 3))):
        path = data.draw(st.sampled_from(_paths(document)))
        node: Any = document
        for part in path[:-1]:
            node = node[part]
        node[path[-1]] = data.draw(values)
    check(document)
