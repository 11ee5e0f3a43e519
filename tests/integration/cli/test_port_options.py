"""Every CLI port option takes 0..65535 (0: any free port), as config files do; others are usage errors."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.integration.cli.helpers import assert_clean_error, tokenyard

CASES = [
    ("sim", "--port", ["--duration", "1"]),
    ("chaos proxy", "--listen-port", ["--target", "127.0.0.1:9"]),
    ("chaos proxy", "--api-port", ["--target", "127.0.0.1:9"]),
    ("pipeline run", "--port", ["SPEC"]),
    ("serve", "--port", ["--upstream", "http://127.0.0.1:9"]),
]


@pytest.mark.parametrize("value", ["70000", "-1"])
@pytest.mark.parametrize(("command", "option", "rest"), CASES)
def test_out_of_range_port_is_a_usage_error(tmp_path: Path, command: str, option: str, rest: list[str],
                                            value: str) -> None:
    spec = tmp_path / "spec.yaml"
    spec.write_text("{}\n")
    args = [*command.split(), option, value, *(str(spec) if arg == "SPEC" else arg for arg in rest)]
    # Without the range check some of these would listen (on port value % 65536) and never exit.
    result = tokenyard(*args, timeout=30)
    assert_clean_error(result, 2, "0<=x<=65535")
    assert "listening" not in result.stdout
