"""Loading valid configs: defaults, normalisation, the upstream shortcut and YAML files."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import msgspec
import pytest

from tokenyard.config import (
    PASS_THROUGH_MODEL,
    ConfigError,
    ConfigFileError,
    GatewayConfig,
    config_for_upstream,
    hash_key,
    is_loopback,
    load_config,
    parse_config,
)

CONTRACTS_EXAMPLE = """
listen: {host: 127.0.0.1, port: 8080}
state: memory                      # or redis://127.0.0.1:6379/0 for several replicas
admin: {key: ${TOKENYARD_ADMIN_KEY}}
models:                            # name clients send -> pool of upstream endpoints
  chat:
    endpoints:
      - {url: http://127.0.0.1:9001/v1}
      - {url: http://127.0.0.1:9002/v1, weight: 2}
    upstream_model: sim-large      # optional rename
    picker: least-load             # round-robin | least-load | p2c | prefix-affinity | session
    fallback: [chat-small]
  chat-small:
    endpoints: [{url: http://127.0.0.1:9003/v1}]
classes:                           # lower priority number is served first
  premium:  {priority: 0, ttft_slo_ms: 500,  queue_timeout_ms: 2000, resume_window_ms: 5000}
  standard: {priority: 1, ttft_slo_ms: 2000, queue_timeout_ms: 10000}
  batch:    {priority: 2, queue_timeout_ms: 600000}
tenants:
  acme: {class: premium, classes: [premium, standard], rpm: 600, tpm: 200000}
  other: {}
keys:
  - {key: ${ACME_KEY}, tenant: acme}          # plaintext allowed for development, from env
  - {key_sha256: 9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08, tenant: other}
"""


def test_contracts_example_loads(tmp_path: Path) -> None:
    path = tmp_path / "tokenyard.yaml"
    path.write_text(CONTRACTS_EXAMPLE)
    config = load_config(path, env={"TOKENYARD_ADMIN_KEY": "admin-secret", "ACME_KEY": "sk-acme"})
    assert set(config.models) == {"chat", "chat-small"}
    chat = config.models["chat"]
    assert [e.weight for e in chat.endpoints] == [1, 2]
    assert [e.name for e in chat.endpoints] == ["127.0.0.1:9001", "127.0.0.1:9002"]
    assert chat.upstream_model == "sim-large" and chat.picker == "least-load" and chat.fallback == ("chat-small",)
    assert config.classes["premium"].resume_window_ms == 5000
    assert config.tenants["acme"].default_class == "premium"
    assert config.tenants["other"].default_class == "standard"
    assert config.tenants["other"].classes == ("standard",)
    assert config.admin is not None and config.admin.key is None
    assert config.admin.key_sha256 == hash_key("admin-secret")
    assert [k.key for k in config.keys] == [None, None]  # plaintext is not kept
    assert config.keys[0].key_sha256 == hash_key("sk-acme")
    assert config.keys[0].classes == ("premium", "standard")
    assert config.keys[1].name == "other-1"
    assert config.auth_enabled


def test_defaults_when_sections_are_absent(doc: dict[str, Any]) -> None:
    del doc["keys"], doc["tenants"]
    config = parse_config(doc, env={})
    assert config.state == "memory"
    assert config.classes_by_priority() == ["premium", "standard", "batch"]
    premium, standard, batch = (config.classes[n] for n in ("premium", "standard", "batch"))
    assert (premium.priority, premium.ttft_slo_ms, premium.queue_timeout_ms) == (0, 500, 2000)
    assert (standard.priority, standard.ttft_slo_ms, standard.queue_timeout_ms) == (1, 2000, 10000)
    assert (batch.priority, batch.ttft_slo_ms, batch.queue_timeout_ms) == (2, None, 600000)
    assert config.default_class == "standard"
    assert config.limits.max_body_bytes == 4 * 1024 * 1024
    assert config.timeouts.request_ms is None
    assert config.access_log.log_prompts is False
    assert config.models["chat"].kind == "llm"
    assert not config.auth_enabled


def test_config_is_frozen(doc: dict[str, Any]) -> None:
    config = parse_config(doc, env={})
    with pytest.raises(AttributeError):
        config.state = "redis://x"  # type: ignore[misc]
    with pytest.raises(AttributeError):
        config.models["chat"].picker = "p2c"  # type: ignore[misc]


def test_lax_scalars_from_env_become_numbers(doc: dict[str, Any]) -> None:
    doc["listen"]["port"] = "${PORT:-9000}"
    assert parse_config(doc, env={}).listen.port == 9000
    assert parse_config(doc, env={"PORT": "8123"}).listen.port == 8123


def test_null_sections_count_as_absent(doc: dict[str, Any]) -> None:
    doc.update(classes=None, tenants=None, keys=None, timeouts=None)
    config = parse_config(doc, env={})
    assert "premium" in config.classes and config.keys == () and config.tenants == {}


def test_single_custom_class_is_the_default(doc: dict[str, Any]) -> None:
    doc["classes"] = {"only": {"priority": 0}}
    doc["tenants"] = {"acme": {}}
    config = parse_config(doc, env={})
    assert config.default_class == "only" and config.tenants["acme"].classes == ("only",)


def test_endpoint_names_stay_unique(doc: dict[str, Any]) -> None:
    doc["models"]["chat"]["endpoints"] = [
        {"url": "http://127.0.0.1:9001/a/v1"},
        {"url": "http://127.0.0.1:9001/b/v1"},
        {"url": "http://127.0.0.1:9002/v1", "name": "big", "zone": "eu-1"},
    ]
    endpoints = parse_config(doc, env={}).models["chat"].endpoints
    assert [e.name for e in endpoints] == ["127.0.0.1:9001", "127.0.0.1:9001#1", "big"]
    assert endpoints[2].zone == "eu-1"


def test_config_for_upstream() -> None:
    config = config_for_upstream("http://127.0.0.1:9001", "127.0.0.1", 0)
    assert list(config.models) == [PASS_THROUGH_MODEL]
    pool = config.models[PASS_THROUGH_MODEL]
    assert pool.endpoints[0].url == "http://127.0.0.1:9001/v1"
    assert config.model_for("anything") is pool
    assert config.listen.port == 0 and not config.auth_enabled
    assert set(config.classes) == {"premium", "standard", "batch"}
    assert config_for_upstream("http://127.0.0.1:9001/v1/").models["*"].endpoints[0].url.endswith(":9001/v1")


def test_config_for_upstream_refuses_open_non_loopback() -> None:
    with pytest.raises(ConfigError) as caught:
        config_for_upstream("http://127.0.0.1:9001", "0.0.0.0", 8080)
    assert caught.value.issues[0][0] == "keys"
    with pytest.raises(ConfigError):
        config_for_upstream("ftp://nowhere", "127.0.0.1", 8080)


def test_model_for_prefers_exact_names(doc: dict[str, Any]) -> None:
    doc["models"]["*"] = {"endpoints": [{"url": "http://127.0.0.1:9009/v1"}]}
    config = parse_config(doc, env={})
    assert config.model_for("chat") is config.models["chat"]
    assert config.model_for("gpt-x") is config.models["*"]
    del doc["models"]["*"]
    assert parse_config(doc, env={}).model_for("gpt-x") is None


@pytest.mark.parametrize(
    ("host", "loopback"),
    [
        ("127.0.0.1", True),
        ("127.8.9.1", True),
        ("::1", True),
        ("[::1]", True),
        ("localhost", True),
        ("0.0.0.0", False),
        ("::", False),
        ("10.0.0.1", False),
        ("example.com", False),
        ("", False),
    ],
)
def test_is_loopback(host: str, loopback: bool) -> None:
    assert is_loopback(host) is loopback


def test_yaml_flow_mappings_with_env_references(tmp_path: Path) -> None:
    path = tmp_path / "c.yaml"
    path.write_text(
        "listen: {host: ${HOST:-127.0.0.1}, port: ${PORT:-0}}\n"
        "models: {m: {endpoints: [{url: '${UP}'}]}}\n"
        "access_log: {path: '$${literal}'}\n"
    )
    config = load_config(path, env={"UP": "http://127.0.0.1:9001/v1"})
    assert config.listen.port == 0 and config.listen.host == "127.0.0.1"
    assert config.models["m"].endpoints[0].url == "http://127.0.0.1:9001/v1"
    assert config.access_log.path == "${literal}"


@pytest.mark.parametrize("style", ["flow", "block", "quoted"])
def test_escaped_reference_in_every_style(tmp_path: Path, style: str) -> None:
    admin = {"flow": "admin: {key: $${LIT}, listen: {port: 0}}\n",
             "block": "admin:\n  key: $${LIT}\n  listen: {port: 0}\n",
             "quoted": "admin: {key: '$${LIT}', listen: {port: 0}}\n"}[style]
    path = tmp_path / "c.yaml"
    path.write_text(admin + "models: {m: {endpoints: [{url: http://127.0.0.1:9001/v1}]}}\n"
                    "access_log: {path: $${a}/b-$${c}.log}\n")
    config = load_config(path, env={"LIT": "not used"})
    assert config.admin is not None and config.admin.key_sha256 == hash_key("${LIT}")
    assert config.access_log.path == "${a}/b-${c}.log"


def test_env_values_cannot_inject_yaml_structure(tmp_path: Path) -> None:
    path = tmp_path / "c.yaml"
    path.write_text("models: {m: {endpoints: [{url: '${UP}'}]}}\n")
    injected = "http://127.0.0.1:1/v1'}],picker:p2c,x:[{a:'1"
    config = load_config(path, env={"UP": injected})
    assert config.models["m"].endpoints[0].url == injected  # one string, not YAML
    assert config.models["m"].picker == "least-load"
    with pytest.raises(ConfigError) as caught:
        load_config(path, env={"UP": "http://127.0.0.1:1/v1\npicker: p2c"})
    assert caught.value.issues[0][0] == "models.m.endpoints[0].url"


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        ("a: [1,\nb: 2\n", "line 3, column 1"),
        ("models:\n  chat: {}\n  chat: {}\n", "duplicate key 'chat'"),
        ("listen:\n\thost: x\n", "line 2"),
    ],
)
def test_yaml_errors_name_line_and_column(tmp_path: Path, text: str, fragment: str) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text(text)
    with pytest.raises(ConfigFileError) as caught:
        load_config(path, env={})
    assert fragment in str(caught.value)


def test_unreadable_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigFileError, match="cannot read"):
        load_config(tmp_path / "missing.yaml", env={})
    (tmp_path / "binary.yaml").write_bytes(b"\xff\xfe\x00")
    with pytest.raises(ConfigFileError):
        load_config(tmp_path / "binary.yaml", env={})


def test_empty_file_needs_models(tmp_path: Path) -> None:
    path = tmp_path / "empty.yaml"
    path.write_text("")
    with pytest.raises(ConfigError) as caught:
        load_config(path, env={})
    assert caught.value.issues == [("models", "at least one model is required")]


def test_roundtrip_to_builtins(doc: dict[str, Any]) -> None:
    config = parse_config(doc, env={})
    again = parse_config(msgspec.to_builtins(config), env={})
    assert isinstance(again, GatewayConfig) and again == config


def test_admin_mode(doc: dict[str, Any]) -> None:
    assert parse_config(doc, env={}).admin_mode == "disabled"  # keys but no admin credential
    doc["admin"] = {"key": "adm"}
    assert parse_config(doc, env={}).admin_mode == "key"
    del doc["admin"], doc["keys"], doc["tenants"]
    open_config = parse_config(doc, env={})
    assert open_config.admin_mode == "open"  # the loopback demo: auth off
    # never open off loopback, even if a config skipped validation
    exposed = msgspec.structs.replace(open_config, listen=msgspec.structs.replace(open_config.listen, host="0.0.0.0"))
    assert exposed.admin_mode == "disabled"


def test_alias_bombs_are_refused(tmp_path: Path) -> None:
    lines = ["a0: &a0 [x, x, x, x, x, x, x, x, x, x]"]
    lines += [f"a{i}: &a{i} [{', '.join([f'*a{i - 1}'] * 10)}]" for i in range(1, 9)]
    path = tmp_path / "bomb.yaml"
    path.write_text("\n".join(lines) + "\n")
    with pytest.raises(ConfigFileError, match="aliases are expanded"):
        load_config(path, env={})


def test_deep_nesting_is_an_error_not_a_crash(tmp_path: Path) -> None:
    path = tmp_path / "deep.yaml"
    path.write_text("models: " + "[" * 5000 + "]" * 5000 + "\n")
    with pytest.raises(ConfigError):
        load_config(path, env={})
    nested: Any = []
    for _ in range(5000):
        nested = [nested]
    with pytest.raises(ConfigError, match="nested too deeply"):
        parse_config({"models": nested}, env={})


def test_yaml_anchors_for_reuse_work(tmp_path: Path) -> None:
    path = tmp_path / "anchors.yaml"
    path.write_text(
        "models:\n"
        "  a: {endpoints: &pool [{url: http://127.0.0.1:1/v1}, {url: http://127.0.0.1:2/v1}]}\n"
        "  b: {endpoints: *pool, picker: p2c}\n"
    )
    config = load_config(path, env={})
    assert config.models["a"].endpoints == config.models["b"].endpoints


def test_override_listen_rechecks_the_auth_rule(doc: dict[str, Any]) -> None:
    from tokenyard.config import override_listen

    open_config = parse_config({"models": doc["models"]}, env={})
    moved = override_listen(open_config, port=0)
    assert (moved.listen.host, moved.listen.port) == ("127.0.0.1", 0)
    with pytest.raises(ConfigError) as caught:
        override_listen(open_config, host="0.0.0.0")
    assert caught.value.issues[0][0] == "keys"
    with pytest.raises(ConfigError):
        override_listen(open_config, port=70000)
    secured = parse_config(doc, env={})
    assert override_listen(secured, host="0.0.0.0", port=9000).listen.host == "0.0.0.0"
