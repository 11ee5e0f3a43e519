"""The files a valid config points at, checked without touching them: ``config check`` and ``serve`` run this.

``parse_config`` judges the document alone (so it gives the same answer on any machine); this looks at the
machine the gateway will run on: files it reads must exist, files it writes need an existing directory, and a
key store that already exists must be a SQLite database. It opens nothing for writing and creates nothing, so
``config check`` can run it anywhere (permissions are those of the user running it). Problems it cannot see (a
full disk) still surface when the gateway starts.
"""

from __future__ import annotations

from pathlib import Path

from tokenyard.config.gateway import GatewayConfig
from tokenyard.config.server import ListenConfig
from tokenyard.files import unwritable

_SQLITE_HEADER = b"SQLite format 3\x00"


def check_paths(config: GatewayConfig) -> list[tuple[str, str]]:
    """``(key path, problem)`` for each file of ``config`` the gateway could not open at start-up."""
    issues: list[tuple[str, str]] = []
    _check_tls(config.listen, "listen", issues)
    if config.admin is not None and config.admin.listen is not None:
        _check_tls(config.admin.listen, "admin.listen", issues)
    if config.jwt is not None and config.jwt.jwks_file is not None:
        _check_readable(config.jwt.jwks_file, "jwt.jwks_file", issues)
    if config.key_store is not None:
        _check_key_store(config.key_store.path, issues)
    if config.access_log.enabled and config.access_log.path not in ("stdout", "stderr"):
        _check_writable(config.access_log.path, "access_log.path", issues)
    if config.audit_log.path is not None:
        _check_writable(config.audit_log.path, "audit_log.path", issues)
    return issues


def _check_tls(listen: ListenConfig, path: str, issues: list[tuple[str, str]]) -> None:
    if listen.tls is None:
        return
    files = {"cert_file": listen.tls.cert_file, "key_file": listen.tls.key_file,
             "client_ca_file": listen.tls.client_ca_file}
    for key, file in files.items():
        if file is not None:
            _check_readable(file, f"{path}.tls.{key}", issues)


def _check_readable(file: str, path: str, issues: list[tuple[str, str]]) -> None:
    target = Path(file)
    if not target.exists():
        issues.append((path, f"{file}: no such file"))
    elif not target.is_file():
        issues.append((path, f"{file}: not a file"))


def _check_writable(file: str, path: str, issues: list[tuple[str, str]]) -> None:
    """A file the gateway appends to (and creates): its directory must exist, and it must be writable."""
    problem = unwritable(file)
    if problem is not None:
        issues.append((path, problem))


def _check_key_store(file: str, issues: list[tuple[str, str]]) -> None:
    _check_writable(file, "key_store.path", issues)
    target = Path(file)
    if not target.is_file():
        return
    try:
        with target.open("rb") as handle:
            header = handle.read(len(_SQLITE_HEADER))
    except OSError as error:
        issues.append(("key_store.path", f"{file}: cannot read: {error.strerror or error}"))
        return
    if header and header != _SQLITE_HEADER:  # an empty file is a fine new database
        issues.append(("key_store.path", f"{file}: not a SQLite database"))
