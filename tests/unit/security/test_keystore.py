"""The SQLite key store: hashed at rest, revocation and expiry seen by every reader."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from tokenyard.security.keystore import KeyStoreCache, KeyStoreError, SqliteKeyStore, sha256_hex


class Clock:
    def __init__(self) -> None:
        self.now = 1_000_000.0

    def __call__(self) -> float:
        return self.now


def test_plaintext_is_never_stored(tmp_path: Path) -> None:
    store = SqliteKeyStore(tmp_path / "keys.db")
    plaintext, record = store.create("acme", name="ci")
    assert plaintext.startswith("ty-") and len(plaintext) > 40
    assert record.key_sha256 == sha256_hex(plaintext)
    dump = "\n".join(sqlite3.connect(tmp_path / "keys.db").iterdump())
    assert plaintext not in dump
    assert record.key_sha256 in dump


def test_lookup_active_unknown_revoked_expired(tmp_path: Path) -> None:
    clock = Clock()
    store = SqliteKeyStore(tmp_path / "keys.db", clock=clock)
    good, _ = store.create("acme", name="good")
    revoked, _ = store.create("acme", name="revoked")
    short, _ = store.create("acme", name="short", expires_in_s=60)
    store.revoke("revoked")
    cache = KeyStoreCache(store, clock=clock)
    cache.refresh()
    record, status = cache.lookup(good)
    assert status == "active" and record is not None and record.tenant == "acme"
    assert cache.lookup("ty-not-a-key") == (None, "unknown")
    assert cache.lookup(revoked) == (None, "revoked")
    assert cache.lookup(short)[1] == "active"
    clock.now += 61
    assert cache.lookup(short) == (None, "expired")


def test_revocation_reaches_another_reader_of_the_same_file(tmp_path: Path) -> None:
    writer = SqliteKeyStore(tmp_path / "keys.db")
    key, record = writer.create("acme")
    replica = KeyStoreCache(SqliteKeyStore(tmp_path / "keys.db"))
    assert replica.refresh() is True
    assert replica.lookup(key)[1] == "active"
    assert replica.refresh() is False  # nothing changed: no reload
    writer.revoke(record.key_id)
    assert replica.refresh() is True
    assert replica.lookup(key) == (None, "revoked")


def test_scope_and_errors(tmp_path: Path) -> None:
    store = SqliteKeyStore(tmp_path / "keys.db")
    _, record = store.create("acme", name="scoped", models=["chat"], classes=["standard"], rpm=10)
    assert record.allows_model("chat") and not record.allows_model("chat-large")
    assert record.allows_class("standard") and not record.allows_class("premium")
    listed = store.list()
    assert [r.name for r in listed] == ["scoped"] and listed[0].rpm == 10
    assert listed[0].models == ("chat",)
    with pytest.raises(KeyStoreError, match="already exists"):
        store.create("acme", name="scoped")
    with pytest.raises(KeyStoreError, match="no key"):
        store.revoke("missing")
    with pytest.raises(KeyStoreError, match="tenant"):
        store.create("")


def test_revoking_by_id_or_name_revokes_one_key(tmp_path: Path) -> None:
    store = SqliteKeyStore(tmp_path / "keys.db")
    _, alpha = store.create("a", name="alpha")
    with pytest.raises(KeyStoreError, match="must not look like a key id"):
        store.create("b", name=alpha.key_id)
    # A store written before such names were refused: a key of tenant b named like alpha's id.
    _, beta = store.create("b", name="beta")
    with sqlite3.connect(tmp_path / "keys.db") as db:
        db.execute("UPDATE keys SET name = ? WHERE key_id = ?", (alpha.key_id, beta.key_id))
    assert store.revoke(alpha.key_id).key_id == alpha.key_id
    assert {r.key_id: r.status(0.0) for r in store.list()} == {alpha.key_id: "revoked", beta.key_id: "active"}
    assert store.revoke(alpha.key_id).name == "alpha"  # twice: still the one with that id
