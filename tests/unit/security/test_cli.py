"""`tokenyard keys` and `tokenyard policy export --cilium`."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
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
    empty.write_text("")
    result = CliRunner().invoke(cli, ["policy", "export", "--cilium", "--file", str(empty)])
    assert result.exit_code == 1 and "no `eastwest:` section" in result.output


DOCS = Path(__file__).resolve().parents[3] / "docs" / "configuration.md"


def _export(path: Path, env: dict[str, str] | None = None) -> tuple[int, str, str]:
    result = CliRunner().invoke(cli, ["policy", "export", "--cilium", "--file", str(path)], env=env)
    assert result.exception is None or isinstance(result.exception, SystemExit), result.exception
    return result.exit_code, result.stdout, result.stderr


def test_policy_export_reads_the_documented_config_as_config_check_does(tmp_path: Path) -> None:
    import re

    blocks = re.findall(r"```yaml\n(.*?)```", DOCS.read_text(), re.S)
    annotated = blocks[0]
    eastwest = next(block for block in blocks if block.startswith("eastwest:"))
    path = tmp_path / "gateway.yaml"
    path.write_text(annotated + eastwest.replace("namespace: prod", "namespace: ${NS}"))
    env = {"TOKENYARD_ADMIN_KEY": "adm", "ACME_KEY": "sk-acme", "NS": "ai-prod"}
    code, out, err = _export(path, env)
    assert code == 0, err
    docs = list(yaml.safe_load_all(out))
    assert [d["metadata"]["namespace"] for d in docs] == ["ai-prod"]
    assert CliRunner().invoke(cli, ["config", "check", str(path)], env=env).exit_code == 0


def test_policy_export_contracts_style_gateway_config(tmp_path: Path) -> None:
    path = tmp_path / "gateway.yaml"
    path.write_text("admin: {key: ${TOKENYARD_ADMIN_KEY}}\n"
                    "models: {chat: {endpoints: [{url: http://127.0.0.1:9001/v1}]}}\n"
                    "eastwest: {rules: [{name: rag, identities: [a], models: [chat], selector: {app: rag}}]}\n")
    code, out, err = _export(path, {"TOKENYARD_ADMIN_KEY": "adm"})
    assert code == 0, err
    assert "tokenyard-rag" in out


@pytest.mark.parametrize(("section", "code", "line"), [
    ("{rulez: [{identities: [a]}]}", 1, "eastwest.rulez: unknown key"),
    ("{gateway: {port: 99999}}", 1, "eastwest.gateway.port: expected integer <= 65535"),
    ("{gateway: {port: abc}}", 1, "eastwest.gateway.port: expected integer, got string"),
    ("{rules: 5}", 1, "eastwest.rules: expected list, got integer"),
    ("{rules: [5]}", 1, "eastwest.rules[0]: expected mapping, got integer"),
    ("{rules: [{name: x, models: [a]}]}", 1, "eastwest.rules[0].identities: required key missing"),
    ("{rules: [{identities: []}]}", 1,
     "eastwest.rules[0].identities: a non-empty list of non-empty identities is required"),
    ("{gateway: {namespace: ${POLICY_NS_UNSET_FOR_TEST}}}", 1,
     "eastwest.gateway.namespace: environment variable POLICY_NS_UNSET_FOR_TEST is not set"),
    ("[", 2, "policy.yaml: YAML syntax error at line 2"),
])
def test_policy_export_reports_by_key_path(tmp_path: Path, section: str, code: int, line: str) -> None:
    path = tmp_path / "policy.yaml"
    path.write_text(f"eastwest: {section}\n")
    got, out, err = _export(path)
    assert got == code
    assert out == ""
    assert err.splitlines()[0].replace(str(tmp_path) + "/", "").startswith(line), err


def test_policy_export_gateway_config_is_checked_whole(tmp_path: Path) -> None:
    path = tmp_path / "gateway.yaml"
    path.write_text("models: {chat: {endpoints: [{url: http://127.0.0.1:9001/v1, wieght: 2}]}}\n"
                    "eastwest: {rules: [{identities: [a], models: [chat], selector: {app: rag}}]}\n")
    code, out, err = _export(path)
    assert (code, out) == (1, "")
    assert "models.chat.endpoints[0].wieght: unknown key" in err.splitlines()
    path.write_text("models: {chat: {endpoints: [{url: http://127.0.0.1:9001/v1}]}}\n")
    code, _, err = _export(path)
    assert code == 1 and err.startswith("eastwest: no `eastwest:` section")
