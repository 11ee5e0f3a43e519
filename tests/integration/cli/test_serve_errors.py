"""``tokenyard serve`` refuses to start with one line naming the problem, never a traceback."""

from __future__ import annotations

import socket
from pathlib import Path

import pytest

from tests.integration.cli.helpers import assert_clean_error, tokenyard

BASE = "models: {chat: {endpoints: [{url: http://127.0.0.1:9/v1}]}}\nrouting: {health: {enabled: false}}\n"


def test_port_in_use_is_one_line(tmp_path: Path) -> None:
    config = tmp_path / "c.yaml"
    config.write_text(BASE)
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        port = holder.getsockname()[1]
        result = tokenyard("serve", "--config", str(config), "--port", str(port), timeout=30)
    assert_clean_error(result, 1, "error: listen: cannot listen")
    assert "address already in use" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1, result.stderr


@pytest.mark.parametrize(("section", "line"), [
    ("key_store: {path: NOTDB}", "key_store.path: NOTDB: not a SQLite database"),
    ("key_store: {path: MISSING/k.db}", "key_store.path: MISSING/k.db: directory MISSING does not exist"),
    ("access_log: {path: MISSING/a.log}", "access_log.path: MISSING/a.log: directory MISSING does not exist"),
    ("audit_log: {path: MISSING/a.log}", "audit_log.path: MISSING/a.log: directory MISSING does not exist"),
    ("listen: {tls: {cert_file: MISSING/c.pem, key_file: MISSING/k.pem}}",
     "listen.tls.cert_file: MISSING/c.pem: no such file"),
])
def test_bad_runtime_paths(tmp_path: Path, section: str, line: str) -> None:
    not_a_db = tmp_path / "keys.db"
    not_a_db.write_text("not a database\n")
    names = {"NOTDB": str(not_a_db), "MISSING": str(tmp_path / "missing")}
    for name, value in names.items():
        section, line = section.replace(name, value), line.replace(name, value)
    config = tmp_path / "c.yaml"
    config.write_text(BASE + section + "\n")
    result = tokenyard("serve", "--config", str(config), "--port", "0", timeout=30)
    assert_clean_error(result, 2, f"error: {line}")
    assert "listening" not in result.stdout
    # `config check` sees the same problem, by key path, without creating anything.
    checked = tokenyard("config", "check", str(config))
    assert_clean_error(checked, 1, line)
    assert not (tmp_path / "missing").exists()
    assert not_a_db.read_text() == "not a database\n"


def test_paths_that_exist_pass_the_check(tmp_path: Path) -> None:
    config = tmp_path / "c.yaml"
    logs = tmp_path / "logs"
    logs.mkdir()
    config.write_text(BASE + f"key_store: {{path: {tmp_path / 'new.db'}}}\n"
                      f"access_log: {{path: {logs / 'a.log'}}}\naudit_log: {{path: {logs / 'audit.log'}}}\n")
    result = tokenyard("config", "check", str(config))
    assert result.returncode == 0, result.stderr
    assert not (tmp_path / "new.db").exists() and not list(logs.iterdir())
