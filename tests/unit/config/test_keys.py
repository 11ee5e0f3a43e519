"""Key hashing and the constant-time key lookup."""

from __future__ import annotations

import hashlib

import pytest

from tokenyard.config import KeyLookup, hash_key
from tokenyard.config.keys import is_sha256_hex


def test_hash_key_is_hex_sha256() -> None:
    assert hash_key("test") == "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08"
    assert hash_key("clé") == hashlib.sha256("clé".encode()).hexdigest()


@pytest.mark.parametrize(
    ("text", "valid"),
    [("a" * 64, True), ("A" * 64, True), ("a" * 63, False), ("g" * 64, False), ("", False), ("a" * 65, False)],
)
def test_is_sha256_hex(text: str, valid: bool) -> None:
    assert is_sha256_hex(text) is valid


def test_lookup_finds_configured_keys_only() -> None:
    lookup = KeyLookup([(hash_key("sk-a"), "tenant-a"), (hash_key("sk-b").upper(), "tenant-b")])
    assert len(lookup) == 2
    assert lookup.find("sk-a") == "tenant-a"
    assert lookup.find("sk-b") == "tenant-b"
    assert lookup.find("sk-c") is None
    assert lookup.find("") is None
    assert lookup.find("sk-a ") is None
    assert lookup.find("\udcff") is None  # an undecodable header byte never raises


def test_lookup_over_a_loaded_config() -> None:
    from tokenyard.config import parse_config

    config = parse_config(
        {
            "models": {"m": {"endpoints": [{"url": "http://127.0.0.1:1"}]}},
            "tenants": {"t": {}},
            "keys": [{"key": "${K}", "tenant": "t", "name": "dev"}],
        },
        env={"K": "sk-dev"},
    )
    lookup = KeyLookup((key.key_sha256 or "", key) for key in config.keys)
    found = lookup.find("sk-dev")
    assert found is not None and found.name == "dev" and found.tenant == "t"
