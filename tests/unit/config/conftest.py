"""A minimal valid config document that each test modifies."""

from __future__ import annotations

import copy
from typing import Any

import pytest

BASE: dict[str, Any] = {
    "listen": {"host": "127.0.0.1", "port": 8080},
    "models": {
        "chat": {
            "endpoints": [{"url": "http://127.0.0.1:9001/v1"}, {"url": "http://127.0.0.1:9002/v1", "weight": 2}],
            "fallback": ["chat-small"],
        },
        "chat-small": {"endpoints": [{"url": "http://127.0.0.1:9003/v1"}]},
    },
    "tenants": {"acme": {"class": "premium", "classes": ["premium", "standard"]}, "other": {}},
    "keys": [{"key": "sk-acme", "tenant": "acme"}],
}


@pytest.fixture
def doc() -> dict[str, Any]:
    """A fresh deep copy of BASE."""
    return copy.deepcopy(BASE)
