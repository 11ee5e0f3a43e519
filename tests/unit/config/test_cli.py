"""``tokenyard config check`` through click's CliRunner."""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner

from tokenyard.cli import cli

GOOD = """
models:
  chat: {endpoints: [{url: http://127.0.0.1:9001/v1}], fallback: [small]}
  small: {endpoints: [{url: http://127.0.0.1:9002/v1}]}
tenants: {acme: {}}
keys: [{key: "${CHECK_KEY:-dev-key}", tenant: acme}]
"""


def run(path: Path, env: dict[str, str] | None = None) -> tuple[int, str, str]:
    result = CliRunner().invoke(cli, ["config", "check", str(path)], env=env)
    return result.exit_code, result.stdout, result.stderr


def test_ok(tmp_path: Path) -> None:
    path = tmp_path / "c.yaml"
    path.write_text(GOOD)
    code, out, _ = run(path)
    assert code == 0
    assert out.strip() == "ok: 2 models, 3 classes, 1 tenants, 1 keys"


def test_errors_by_key_path(tmp_path: Path) -> None:
    path = tmp_path / "c.yaml"
    path.write_text(GOOD.replace("fallback: [small]", "fallback: [smal], pickr: p2c"))
    code, _, err = run(path)
    assert code == 1
    assert "models.chat.pickr: unknown key" in err.splitlines()


def test_missing_env_is_an_error(tmp_path: Path) -> None:
    path = tmp_path / "c.yaml"
    path.write_text(GOOD.replace("${CHECK_KEY:-dev-key}", "${CHECK_KEY_UNSET_FOR_TEST}"))
    code, _, err = run(path)
    assert code == 1
    assert err.startswith("keys[0].key: environment variable CHECK_KEY_UNSET_FOR_TEST is not set")


@pytest.mark.parametrize(("content", "fragment"), [(None, "cannot read"), ("a: [1,\nb: 2\n", "line 3, column 1")])
def test_unreadable_or_malformed_exits_2(tmp_path: Path, content: str | None, fragment: str) -> None:
    path = tmp_path / "c.yaml"
    if content is not None:
        path.write_text(content)
    code, _, err = run(path)
    assert code == 2
    assert fragment in err
