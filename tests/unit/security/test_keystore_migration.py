"""Key routes and concurrency in the key store: a store file from before those columns is migrated on open."""

from __future__ import annotations

import sqlite3
from pathlib import Path

from click.testing import CliRunner

from tokenyard.cli import cli
from tokenyard.security.keystore import KeyStoreCache, SqliteKeyStore, migrate, sha256_hex
from tokenyard.security.service import key_from_record, route_allowed

# The keys table as the first release created it (no routes, no max_concurrency).
OLD_SCHEMA = """
CREATE TABLE keys (
    key_id TEXT PRIMARY KEY, name TEXT NOT NULL, tenant TEXT NOT NULL, key_sha256 TEXT NOT NULL UNIQUE,
    models TEXT, classes TEXT, daily_token_budget INTEGER, monthly_token_budget INTEGER, rpm INTEGER, tpm INTEGER,
    created_at REAL NOT NULL, expires_at REAL, revoked_at REAL
);
CREATE TABLE generation (id INTEGER PRIMARY KEY CHECK (id = 0), value INTEGER NOT NULL);
INSERT INTO generation (id, value) VALUES (0, 1);
"""


def _old_store(path: Path, plaintext: str) -> None:
    db = sqlite3.connect(path)
    db.executescript(OLD_SCHEMA)
    db.execute("INSERT INTO keys VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
               ("key_old", "old", "acme", sha256_hex(plaintext), "chat", None, None, None, 5, None, 1.0, None, None))
    db.commit()
    db.close()


def _columns(path: Path) -> list[str]:
    db = sqlite3.connect(path)
    try:
        return [str(row[1]) for row in db.execute("PRAGMA table_info(keys)")]
    finally:
        db.close()


def test_an_old_store_gains_the_new_columns_and_keeps_its_keys(tmp_path: Path) -> None:
    path = tmp_path / "old.db"
    _old_store(path, "ty-old-key")
    assert "routes" not in _columns(path)
    store = SqliteKeyStore(path)
    assert _columns(path)[-2:] == ["routes", "max_concurrency"]
    (old,) = store.list()
    assert (old.name, old.models, old.rpm, old.routes, old.max_concurrency) == ("old", ("chat",), 5, None, None)
    _, new = store.create("acme", name="agent", routes=["/v1/retrieve", "/v1/tools/*"], max_concurrency=2)
    cache = KeyStoreCache(SqliteKeyStore(path))  # a second opener: nothing left to migrate
    cache.refresh()
    record, status = cache.lookup("ty-old-key")
    assert status == "active" and record is not None and record.routes is None
    by_name = {r.name: r for r in store.list()}
    assert by_name["agent"].routes == ("/v1/retrieve", "/v1/tools/*") == new.routes
    assert by_name["agent"].max_concurrency == 2
    db = sqlite3.connect(path)
    try:
        assert migrate(db) == []  # idempotent
    finally:
        db.close()


def test_store_keys_carry_routes_and_concurrency_to_the_gateway(tmp_path: Path) -> None:
    _, record = SqliteKeyStore(tmp_path / "keys.db").create("acme", routes=["/v1/tools/*"], max_concurrency=3)
    key = key_from_record(record)
    assert (key.routes, key.max_concurrency) == (("/v1/tools/*",), 3)
    assert route_allowed(key.routes, "/v1/tools/search")
    assert not route_allowed(key.routes, "/v1/chat/completions")
    assert not route_allowed(key.routes, "/v1/retrieve")
    assert route_allowed(None, "/v1/chat/completions")
    assert not route_allowed((), "/v1/models")


def test_cli_creates_keys_with_routes(tmp_path: Path) -> None:
    store = str(tmp_path / "keys.db")
    runner = CliRunner()
    created = runner.invoke(cli, ["keys", "create", "--store", store, "--tenant", "acme", "--name", "rag",
                                  "--routes", "/v1/retrieve, /v1/tools/*", "--max-concurrency", "4"])
    assert created.exit_code == 0, created.output
    (record,) = SqliteKeyStore(store).list()
    assert (record.routes, record.max_concurrency) == (("/v1/retrieve", "/v1/tools/*"), 4)
    listed = runner.invoke(cli, ["keys", "list", "--store", store])
    assert "routes=/v1/retrieve,/v1/tools/*" in listed.output
    bad = runner.invoke(cli, ["keys", "create", "--store", store, "--tenant", "acme", "--routes", "v1/retrieve"])
    assert bad.exit_code == 2 and "must start with '/'" in bad.output
