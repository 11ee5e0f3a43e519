"""``tokenyard serve`` refuses to start with one line naming the problem, never a traceback."""

from __future__ import annotations

import signal
import socket
import subprocess
import sys
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


WORKERS_WARNING = "state is 'memory'"


def _error_lines(stderr: str) -> list[str]:
    return [line for line in stderr.strip().splitlines() if WORKERS_WARNING not in line]


@pytest.mark.parametrize("where", ["listen", "admin.listen"])
def test_port_in_use_with_workers_is_one_line(tmp_path: Path, where: str) -> None:
    """The supervisor's reservation (listen) and worker 0's admin listener: the line one process prints."""
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        port = holder.getsockname()[1]
        config = tmp_path / "c.yaml"
        admin = f"admin: {{key: {'k' * 32}, listen: {{host: 127.0.0.1, port: {port}}}}}\n"
        config.write_text(BASE + (admin if where == "admin.listen" else ""))
        listen_port = str(port) if where == "listen" else "0"
        result = tokenyard("serve", "--config", str(config), "--port", listen_port, "--workers", "2", timeout=60)
    assert_clean_error(result, 1, f"error: {where}: cannot listen")
    assert "address already in use" in result.stderr
    assert len(_error_lines(result.stderr)) == 1, result.stderr
    assert "Unclosed" not in result.stderr


def test_a_second_supervisor_cannot_share_the_port(tmp_path: Path) -> None:
    """Workers bind with SO_REUSEPORT: without a plain bind first, a second `serve --workers` on a port the
    first one serves would start and take half its connections."""
    config = tmp_path / "c.yaml"
    config.write_text(BASE)
    first = subprocess.Popen([sys.executable, "-m", "tokenyard", "serve", "--config", str(config), "--port", "0",
                              "--workers", "2"], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    try:
        assert first.stdout is not None
        line = first.stdout.readline()
        assert "listening on" in line, line
        port = line.rsplit(":", 1)[1].strip()
        result = tokenyard("serve", "--config", str(config), "--port", port, "--workers", "2", timeout=60)
    finally:
        first.send_signal(signal.SIGTERM)
        first.wait(30)
        if first.stdout is not None:
            first.stdout.close()
    assert_clean_error(result, 1, "error: listen: cannot listen")
    assert "listening" not in result.stdout


@pytest.mark.parametrize("workers", ["1", "2"])
def test_a_certificate_that_does_not_load(tmp_path: Path, workers: str) -> None:
    bad = tmp_path / "bad.pem"
    bad.write_text("not a certificate\n")
    config = tmp_path / "c.yaml"
    config.write_text(BASE + f"listen: {{tls: {{cert_file: {bad}, key_file: {bad}}}}}\n")
    result = tokenyard("serve", "--config", str(config), "--port", "0", "--workers", workers, timeout=60)
    assert "Traceback" not in result.stderr and "Unclosed" not in result.stderr, result.stderr
    assert result.returncode in (1, 2), result.stderr
    assert len(_error_lines(result.stderr)) == 1, result.stderr
    assert "listening" not in result.stdout


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
