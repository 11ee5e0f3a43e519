"""`tokenyard keys` and `tokenyard policy export --cilium`."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import yaml
from click.testing import CliRunner

from tokenyard.cli import cli
from tokenyard.security.keystore import KeyStoreCache, SqliteKeyStore


def test_create_list_revoke(tmp_path: Path) -> None:
    store = str(tmp_path / "keys.db")
    runner = CliRunner()
    created = runner.invoke(cli, ["keys", "create", "--store", store, "--tenant", "acme", "--name", "ci",
                                  "--models", "chat,chat-small", "--expires-in", "30d", "--rpm", "60"])
    assert created.exit_code == 0, created.output
    plaintext = created.output.strip().splitlines()[-1]
    assert plaintext.startswith("ty-")
    listed = runner.invoke(cli, ["keys", "list", "--store", store])
    assert "ci\tacme\tactive\tmodels=chat,chat-small" in listed.output
    assert plaintext not in listed.output
    cache = KeyStoreCache(SqliteKeyStore(store))
    cache.refresh()
    assert cache.lookup(plaintext)[1] == "active"
    revoked = runner.invoke(cli, ["keys", "revoke", "--store", store, "ci"])
    assert revoked.exit_code == 0 and "revoked" in revoked.output
    cache.refresh()
    assert cache.lookup(plaintext)[1] == "revoked"
    assert runner.invoke(cli, ["keys", "revoke", "--store", store, "nope"]).exit_code == 1
    bad = runner.invoke(cli, ["keys", "create", "--store", store, "--tenant", "a", "--expires-in", "soon"])
    assert bad.exit_code == 2 and "duration" in bad.output


def test_policy_export_cilium_as_a_real_process(tmp_path: Path) -> None:
    config = tmp_path / "policy.yaml"
    config.write_text(yaml.safe_dump({"eastwest": {
        "gateway": {"labels": {"app": "tokenyard"}, "port": 9000, "namespace": "ai"},
        "rules": [{"name": "rag", "identities": ["spiffe://p/rag"], "models": ["chat"],
                   "selector": {"app": "rag"}},
                  {"name": "local", "identities": ["x"], "tools": ["t"]}],
    }}))
    done = subprocess.run([sys.executable, "-m", "tokenyard", "policy", "export", "--cilium", "--file", str(config)],
                          capture_output=True, text=True, timeout=60, check=False)
    assert done.returncode == 0, done.stderr
    docs = list(yaml.safe_load_all(done.stdout))
    assert [d["metadata"]["name"] for d in docs] == ["tokenyard-rag"]
    assert docs[0]["spec"]["ingress"][0]["toPorts"][0]["ports"][0]["port"] == "9000"
    assert "rule local: no selector labels" in done.stderr


def test_policy_export_errors(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("eastwest: {rules: [{name: x, models: [a]}]}")
    result = CliRunner().invoke(cli, ["policy", "export", "--cilium", "--file", str(bad)])
    assert result.exit_code == 1 and "identities" in result.output
    empty = tmp_path / "empty.yaml"
    empty.write_text("listen: {port: 1}")
    result = CliRunner().invoke(cli, ["policy", "export", "--cilium", "--file", str(empty)])
    assert result.exit_code == 1 and "no `eastwest:` section" in result.output
