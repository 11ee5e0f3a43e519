"""The API key store: keys created at run time (``tokenyard keys create``), stored hashed, revocable.

Keys from the config file cover static deployments; this store covers keys issued and revoked while the
gateway runs. Only the SHA-256 digest of a key is stored, so the database is useless to whoever steals it;
the plaintext is shown once, by ``create``.

Revocation reaches every gateway process that reads the same store within one poll interval: each write bumps
a generation counter, and :class:`KeyStoreCache` reloads when it changes (a single-row read, cheap enough to
poll every half second). With ``state: redis`` the same generation bump is also broadcast (see ``state/``).
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
import sqlite3
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

KEY_PREFIX = "ty-"
_KEY_ID = re.compile(r"key_[0-9a-f]{12}")  # what ``create`` names keys by: "key_" + secrets.token_hex(6)

_SCHEMA = """
CREATE TABLE IF NOT EXISTS keys (
    key_id TEXT PRIMARY KEY,
    name TEXT NOT NULL,
    tenant TEXT NOT NULL,
    key_sha256 TEXT NOT NULL UNIQUE,
    models TEXT,
    classes TEXT,
    daily_token_budget INTEGER,
    monthly_token_budget INTEGER,
    rpm INTEGER,
    tpm INTEGER,
    created_at REAL NOT NULL,
    expires_at REAL,
    revoked_at REAL,
    routes TEXT,
    max_concurrency INTEGER
);
CREATE TABLE IF NOT EXISTS generation (id INTEGER PRIMARY KEY CHECK (id = 0), value INTEGER NOT NULL);
INSERT OR IGNORE INTO generation (id, value) VALUES (0, 0);
"""

# Columns added after the first release, with their SQL types: a store file created before them gets them by
# ``ALTER TABLE`` when it is opened (NULL in every existing row: no restriction, the keys' old meaning).
_ADDED_COLUMNS = (("routes", "TEXT"), ("max_concurrency", "INTEGER"))
_COLUMNS = ("key_id", "name", "tenant", "key_sha256", "models", "classes", "daily_token_budget",
            "monthly_token_budget", "rpm", "tpm", "created_at", "expires_at", "revoked_at", "routes",
            "max_concurrency")


def sha256_hex(plaintext: str) -> str:
    """The digest under which a key is stored and looked up.

    ``surrogatepass``: aiohttp hands a header's non-UTF-8 bytes over as lone surrogates; such a presented key
    must hash (to a digest no issued key has: 401), not raise (a 500), the same as ``KeyLookup.find``.
    """
    return hashlib.sha256(plaintext.encode("utf-8", "surrogatepass")).hexdigest()


@dataclass(frozen=True, slots=True)
class KeyRecord:
    """One key as stored (never the plaintext). ``models``/``classes``/``routes`` of None mean "no restriction".

    ``routes`` are glob patterns over request paths (``/v1/retrieve``, ``/v1/tools/*``).
    """

    key_id: str
    name: str
    tenant: str
    key_sha256: str
    models: tuple[str, ...] | None = None
    classes: tuple[str, ...] | None = None
    daily_token_budget: int | None = None
    monthly_token_budget: int | None = None
    rpm: int | None = None
    tpm: int | None = None
    created_at: float = 0.0
    expires_at: float | None = None
    revoked_at: float | None = None
    routes: tuple[str, ...] | None = None
    max_concurrency: int | None = None

    def status(self, now: float) -> str:
        """``active``, ``revoked`` or ``expired`` at time ``now``."""
        if self.revoked_at is not None:
            return "revoked"
        if self.expires_at is not None and now >= self.expires_at:
            return "expired"
        return "active"

    def allows_model(self, model: str) -> bool:
        return self.models is None or model in self.models

    def allows_class(self, traffic_class: str) -> bool:
        return self.classes is None or traffic_class in self.classes


class KeyStoreError(Exception):
    """A key store operation could not be done (unknown key, duplicate name, unreadable database)."""


def _join(values: Sequence[str] | None) -> str | None:
    return None if values is None else ",".join(values)


def _split(value: str | None) -> tuple[str, ...] | None:
    return None if value is None else tuple(v for v in value.split(",") if v)


def migrate(db: sqlite3.Connection) -> list[str]:
    """Add the columns a store file made by an older tokenyard lacks; returns the names it added."""
    present = {str(row[1]) for row in db.execute("PRAGMA table_info(keys)")}
    added = []
    for name, sql_type in _ADDED_COLUMNS:
        if name in present:
            continue
        try:
            db.execute(f"ALTER TABLE keys ADD COLUMN {name} {sql_type}")
        except sqlite3.OperationalError as exc:  # another process opening the same old file got there first
            if "duplicate column" not in str(exc):
                raise
            continue
        added.append(name)
    return added


class SqliteKeyStore:
    """Keys in one SQLite file (WAL mode, so readers in other processes never block a writer)."""

    def __init__(self, path: str | Path, clock: Callable[[], float] = time.time) -> None:
        self.path = Path(path)
        self._clock = clock
        with self._connect() as db:
            db.executescript(_SCHEMA)
            migrate(db)

    @contextmanager
    def _connect(self) -> Iterator[sqlite3.Connection]:
        try:
            db = sqlite3.connect(self.path, timeout=5.0)
        except sqlite3.Error as exc:
            raise KeyStoreError(f"cannot open key store {self.path}: {exc}") from exc
        try:
            # The first statement is where a file that is not a SQLite database shows itself.
            db.execute("PRAGMA journal_mode=WAL")
        except sqlite3.Error as exc:
            db.close()
            raise KeyStoreError(f"cannot open key store {self.path}: {exc}") from exc
        try:
            with db:
                yield db
        finally:
            db.close()

    def create(
        self,
        tenant: str,
        *,
        name: str | None = None,
        models: Sequence[str] | None = None,
        classes: Sequence[str] | None = None,
        expires_in_s: float | None = None,
        daily_token_budget: int | None = None,
        monthly_token_budget: int | None = None,
        rpm: int | None = None,
        tpm: int | None = None,
        routes: Sequence[str] | None = None,
        max_concurrency: int | None = None,
    ) -> tuple[str, KeyRecord]:
        """Issue a new key; returns the plaintext (shown once) and its record."""
        if not tenant:
            raise KeyStoreError("a key needs a tenant")
        if name is not None and _KEY_ID.fullmatch(name):
            # ``revoke`` takes an id or a name: a name shaped like an id would make one revoke hit two keys.
            raise KeyStoreError(f"a key name must not look like a key id (key_ and 12 hex digits): {name!r}")
        plaintext = KEY_PREFIX + secrets.token_urlsafe(32)
        now = self._clock()
        record = KeyRecord(
            key_id="key_" + secrets.token_hex(6),
            name=name or f"{tenant}-{int(now)}",
            tenant=tenant,
            key_sha256=sha256_hex(plaintext),
            models=tuple(models) if models is not None else None,
            classes=tuple(classes) if classes is not None else None,
            daily_token_budget=daily_token_budget,
            monthly_token_budget=monthly_token_budget,
            rpm=rpm,
            tpm=tpm,
            created_at=now,
            expires_at=now + expires_in_s if expires_in_s is not None else None,
            routes=tuple(routes) if routes is not None else None,
            max_concurrency=max_concurrency,
        )
        with self._connect() as db:
            if db.execute("SELECT 1 FROM keys WHERE name = ?", (record.name,)).fetchone():
                raise KeyStoreError(f"a key named {record.name!r} already exists")
            db.execute(
                f"INSERT INTO keys ({', '.join(_COLUMNS)}) VALUES ({', '.join('?' * len(_COLUMNS))})",
                (record.key_id, record.name, record.tenant, record.key_sha256, _join(record.models),
                 _join(record.classes), daily_token_budget, monthly_token_budget, rpm, tpm,
                 record.created_at, record.expires_at, None, _join(record.routes), max_concurrency),
            )
            db.execute("UPDATE generation SET value = value + 1 WHERE id = 0")
        return plaintext, record

    def revoke(self, key_id_or_name: str) -> KeyRecord:
        """Revoke a key by id or name; revoking twice is harmless."""
        now = self._clock()
        with self._connect() as db:
            # An id wins over a name, so exactly one key is revoked even in a store made before names shaped
            # like ids were refused.
            column = "key_id" if db.execute("SELECT 1 FROM keys WHERE key_id = ?", (key_id_or_name,)).fetchone() \
                else "name"
            cursor = db.execute(
                f"UPDATE keys SET revoked_at = COALESCE(revoked_at, ?) WHERE {column} = ?",
                (now, key_id_or_name),
            )
            if cursor.rowcount == 0:
                raise KeyStoreError(f"no key with id or name {key_id_or_name!r}")
            db.execute("UPDATE generation SET value = value + 1 WHERE id = 0")
        records = self.list()
        return next((r for r in records if r.key_id == key_id_or_name), None) \
            or next(r for r in records if r.name == key_id_or_name)

    def list(self) -> list[KeyRecord]:
        with self._connect() as db:
            rows = db.execute(f"SELECT {', '.join(_COLUMNS)} FROM keys ORDER BY created_at, key_id").fetchall()
        return [self._record(row) for row in rows]

    def generation(self) -> int:
        """A counter bumped by every write: readers reload when it changes."""
        with self._connect() as db:
            row = db.execute("SELECT value FROM generation WHERE id = 0").fetchone()
        return int(row[0])

    @staticmethod
    def _record(row: tuple[object, ...]) -> KeyRecord:
        (key_id, name, tenant, digest, models, classes, daily, monthly, rpm, tpm, created, expires,
         revoked, routes, concurrency) = row
        return KeyRecord(
            key_id=str(key_id), name=str(name), tenant=str(tenant), key_sha256=str(digest),
            models=_split(models if isinstance(models, str) else None),
            classes=_split(classes if isinstance(classes, str) else None),
            daily_token_budget=daily if isinstance(daily, int) else None,
            monthly_token_budget=monthly if isinstance(monthly, int) else None,
            rpm=rpm if isinstance(rpm, int) else None,
            tpm=tpm if isinstance(tpm, int) else None,
            created_at=float(created) if isinstance(created, (int, float)) else 0.0,
            expires_at=float(expires) if isinstance(expires, (int, float)) else None,
            revoked_at=float(revoked) if isinstance(revoked, (int, float)) else None,
            routes=_split(routes if isinstance(routes, str) else None),
            max_concurrency=concurrency if isinstance(concurrency, int) else None,
        )


class KeyStoreCache:
    """An in-memory index of a store's keys, refreshed when the store's generation changes.

    ``lookup`` is what the auth stage calls on every request, so it touches no disk: the index is rebuilt by
    ``refresh``, which the gateway calls from a background task every ``poll_interval_s``.
    """

    def __init__(self, store: SqliteKeyStore, clock: Callable[[], float] = time.time) -> None:
        self._store = store
        self._clock = clock
        self._generation = -1
        self._by_digest: dict[str, KeyRecord] = {}

    def refresh(self) -> bool:
        """Reload if the store changed; returns whether it did."""
        generation = self._store.generation()
        if generation == self._generation:
            return False
        self._by_digest = {r.key_sha256: r for r in self._store.list()}
        self._generation = generation
        return True

    def lookup(self, plaintext: str) -> tuple[KeyRecord | None, str]:
        """Find the record for a presented key: ``(record, "active")`` or ``(None|record, reason)``.

        The reason is one of ``active``, ``unknown``, ``revoked``, ``expired``. The dictionary is keyed by the
        digest of the presented key, so timing depends on the digest, not on how much of a secret matched; the
        final compare is constant-time all the same.
        """
        digest = sha256_hex(plaintext)
        record = self._by_digest.get(digest)
        if record is None or not hmac.compare_digest(record.key_sha256, digest):
            return None, "unknown"
        status = record.status(self._clock())
        return (record if status == "active" else None), status
