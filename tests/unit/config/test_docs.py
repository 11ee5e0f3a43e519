"""docs/configuration.md stays true: its examples load, and every config key is documented."""

from __future__ import annotations

import re
from pathlib import Path

import msgspec
import pytest
import yaml
from click.testing import CliRunner

from tokenyard.cli import cli
from tokenyard.config import GatewayConfig, parse_config
from tokenyard.config.decode import SECTION_TYPES

DOC = Path(__file__).resolve().parents[3] / "docs" / "configuration.md"


def yaml_blocks() -> list[str]:
    return re.findall(r"```yaml\n(.*?)```", DOC.read_text(), re.S)


def test_there_are_examples() -> None:
    assert len(yaml_blocks()) >= 3


@pytest.mark.parametrize("index", range(3))
def test_examples_load(index: int) -> None:
    text = yaml_blocks()[index]
    document = yaml.safe_load(text.replace("${TOKENYARD_ADMIN_KEY}", "adm").replace("${ACME_KEY}", "sk"))
    document.setdefault("models", {"chat": {"endpoints": [{"url": "http://127.0.0.1:9001/v1"}]}})
    config = parse_config(document, env={})
    assert isinstance(config, GatewayConfig)


def test_every_key_is_documented() -> None:
    # The routing and admission engineers document their sections' keys beside their engines.
    text = "".join(
        path.read_text() for path in (DOC, DOC.with_name("routing.md"), DOC.with_name("admission.md")) if path.exists()
    )
    for struct in SECTION_TYPES:
        for field in msgspec.structs.fields(struct):
            assert f"`{field.encode_name}`" in text, f"{struct.__name__}.{field.encode_name} is not documented"


def test_check_output_example(tmp_path: Path) -> None:
    path = tmp_path / "broken.yaml"
    path.write_text(
        "models:\n  chat: {endpoints: [{url: http://127.0.0.1:1/v1}, {url: http://127.0.0.1:2/v1, wieght: 2}]}\n"
        "tenants: {acme: {rpm: lots}, beta: {class: gold}}\n"
    )
    result = CliRunner().invoke(cli, ["config", "check", str(path)])
    lines = result.stderr.splitlines()
    assert lines[:3] == [
        "models.chat.endpoints[1].wieght: unknown key",
        "tenants.acme.rpm: expected integer or null, got string",
        "tenants.beta.class: class 'gold' is not defined in classes",
    ]
    assert lines[3].endswith("broken.yaml: 3 error(s)")
    assert "\n".join([*lines[:3], "broken.yaml: 3 error(s)"]) in DOC.read_text()
