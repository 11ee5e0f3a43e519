"""``tokenyard config check`` as a user runs it: a real process, real exit codes."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[3]


def check(path: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "ACME_KEY": "sk-acme", "TOKENYARD_ADMIN_KEY": "adm"}
    return subprocess.run(
        [sys.executable, "-m", "tokenyard", "config", "check", str(path)],
        capture_output=True,
        text=True,
        timeout=60,
        env=env,
        check=False,
    )


def test_check_in_a_subprocess(tmp_path: Path) -> None:
    good = tmp_path / "good.yaml"
    good.write_text(
        "admin: {key: ${TOKENYARD_ADMIN_KEY}}\n"
        "models: {chat: {endpoints: [{url: http://127.0.0.1:9001/v1}]}}\n"
        "tenants: {acme: {}}\nkeys: [{key: ${ACME_KEY}, tenant: acme}]\n"
    )
    result = check(good)
    assert (result.returncode, result.stdout.strip()) == (0, "ok: 1 models, 3 classes, 1 tenants, 1 keys")
    bad = tmp_path / "bad.yaml"
    bad.write_text("models: {chat: {endpoints: [{url: http://127.0.0.1:9001/v1, wieght: 2}]}}\n")
    result = check(bad)
    assert result.returncode == 1
    assert "models.chat.endpoints[0].wieght: unknown key" in result.stderr
    assert check(tmp_path / "absent.yaml").returncode == 2


def test_shipped_kubernetes_config_is_valid(tmp_path: Path) -> None:
    import pytest
    import yaml

    manifest = REPO / "deploy" / "kubernetes" / "configmap.yaml"
    if not manifest.exists():
        pytest.skip("no deploy/kubernetes/configmap.yaml in this tree")
    config_text = yaml.safe_load(manifest.read_text())["data"]["config.yaml"]
    path = tmp_path / "config.yaml"
    path.write_text(config_text)
    env = {**os.environ, "TOKENYARD_ADMIN_KEY": "adm", "TOKENYARD_DEFAULT_KEY": "sk"}
    result = subprocess.run(
        [sys.executable, "-m", "tokenyard", "config", "check", str(path)],
        capture_output=True,
        text=True,
        timeout=60,
        env=env,
        check=False,
    )
    assert result.returncode == 0, result.stderr
