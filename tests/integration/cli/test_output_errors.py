"""Output and store paths that cannot be used: one ``error:`` line and an exit code, before any work is done."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.integration.cli.helpers import assert_clean_error, tokenyard


def test_plan_json_in_a_missing_directory_fails_before_planning(tmp_path: Path) -> None:
    target = tmp_path / "missing" / "plan.json"
    result = tokenyard("plan", "example", "--json", str(target))
    assert_clean_error(result, 2, f"error: --json: {target}: directory {target.parent} does not exist")
    assert result.stdout == ""  # no table: the plan was not computed


@pytest.mark.parametrize("below", ["sub", "sub/deeper"])
def test_bench_out_that_cannot_be_a_directory(tmp_path: Path, unused_port: int, below: str) -> None:
    a_file = tmp_path / "afile"
    a_file.write_text("x")
    out = a_file / below
    result = tokenyard("bench", "--target", f"http://127.0.0.1:{unused_port}", "--requests", "1",
                       "--out", str(out), "--no-progress")
    assert_clean_error(result, 2, f"error: --out: {out}: ")
    assert len(result.stderr.strip().splitlines()) == 1, result.stderr


@pytest.mark.parametrize("command", [["list"], ["create", "--tenant", "acme"], ["revoke", "k"]])
def test_keys_store_that_is_not_sqlite(tmp_path: Path, command: list[str]) -> None:
    store = tmp_path / "keys.db"
    store.write_text("not a database\n")
    result = tokenyard("keys", *command, "--store", str(store))
    assert_clean_error(result, 1, f"cannot open key store {store}: file is not a database")
    assert store.read_text() == "not a database\n"
