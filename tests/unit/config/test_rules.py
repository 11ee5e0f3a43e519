"""Every validation rule, table-driven: a change to a valid document -> the issue it must produce."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from tokenyard.config import ConfigError, parse_config

Doc = dict[str, Any]
SHA = "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08"


def setting(path: str, value: Any) -> Callable[[Doc], None]:
    """A mutation setting ``a.b.0.c`` (list indexes as numbers) to ``value``."""

    def apply(doc: Doc) -> None:
        *parents, last = path.split(".")
        node: Any = doc
        for part in parents:
            node = node[int(part)] if isinstance(node, list) else node.setdefault(part, {})
        if isinstance(node, list):
            node[int(last)] = value
        else:
            node[last] = value

    return apply


def removing(path: str) -> Callable[[Doc], None]:
    def apply(doc: Doc) -> None:
        *parents, last = path.split(".")
        node: Any = doc
        for part in parents:
            node = node[int(part)] if isinstance(node, list) else node[part]
        del node[int(last) if isinstance(node, list) else last]

    return apply


CASES: list[tuple[str, Callable[[Doc], None], str, str]] = [
    # (id, mutation, expected key path, fragment of the message)
    ("unknown top-level key", setting("lisen", {}), "lisen", "unknown key"),
    (
        "unknown endpoint key",
        setting("models.chat.endpoints.1.wieght", 2),
        "models.chat.endpoints[1].wieght",
        "unknown key",
    ),
    ("unknown model key", setting("models.chat.pickr", "p2c"), "models.chat.pickr", "unknown key"),
    (
        "unknown class key",
        setting("classes", {"standard": {"priority": 1, "slo": 3}}),
        "classes.standard.slo",
        "unknown key",
    ),
    ("unknown tenant key", setting("tenants.acme.rmp", 3), "tenants.acme.rmp", "unknown key"),
    ("unknown key key", setting("keys.0.teant", "x"), "keys[0].teant", "unknown key"),
    ("unknown listen key", setting("listen.hots", "x"), "listen.hots", "unknown key"),
    (
        "wrong type",
        setting("models.chat.endpoints.1.weight", "heavy"),
        "models.chat.endpoints[1].weight",
        "expected integer, got string",
    ),
    ("negative weight", setting("models.chat.endpoints.0.weight", -1), "models.chat.endpoints[0].weight", ">= 0"),
    (
        "all weights zero",
        setting("models.chat-small.endpoints.0.weight", 0),
        "models.chat-small.endpoints",
        "weight above 0",
    ),
    (
        "missing url",
        setting("models.chat.endpoints.0", {"weight": 1}),
        "models.chat.endpoints[0].url",
        "required key missing",
    ),
    (
        "bad url scheme",
        setting("models.chat.endpoints.0.url", "tcp://h:1"),
        "models.chat.endpoints[0].url",
        "http(s) URL",
    ),
    (
        "url without host",
        setting("models.chat.endpoints.0.url", "http:///v1"),
        "models.chat.endpoints[0].url",
        "http(s) URL",
    ),
    ("no endpoints", setting("models.chat.endpoints", []), "models.chat.endpoints", "at least one endpoint"),
    (
        "duplicate endpoint names",
        setting("models.chat.endpoints", [{"url": "http://a:1", "name": "x"}, {"url": "http://b:1", "name": "x"}]),
        "models.chat.endpoints[1].name",
        "used twice",
    ),
    ("unknown picker", setting("models.chat.picker", "fastest"), "models.chat.picker", "choose one of"),
    ("unknown kind", setting("models.chat.kind", "vision"), "models.chat.kind", "choose one of"),
    ("zero context", setting("models.chat.max_context_tokens", 0), "models.chat.max_context_tokens", ">= 1"),
    (
        "fallback missing",
        setting("models.chat.fallback", ["chat-smol"]),
        "models.chat.fallback[0]",
        "'chat-smol' is not defined",
    ),
    ("fallback to self", setting("models.chat.fallback", ["chat"]), "models.chat.fallback[0]", "itself"),
    (
        "fallback twice",
        setting("models.chat.fallback", ["chat-small", "chat-small"]),
        "models.chat.fallback[1]",
        "listed twice",
    ),
    (
        "fallback cycle",
        setting("models.chat-small.fallback", ["chat"]),
        "models.chat.fallback",
        "fallback cycle: chat -> chat-small -> chat",
    ),
    ("no models", setting("models", {}), "models", "at least one model"),
    ("models not a mapping", setting("models", ["chat"]), "models", "expected a mapping"),
    (
        "model named with a number",
        setting("models", {1: {"endpoints": [{"url": "http://a:1"}]}}),
        "models.1",
        "non-empty strings",
    ),
    (
        "odd model name in path",
        lambda doc: doc["models"].update({"gpt-4.1": {"endpoints": []}}),
        'models["gpt-4.1"].endpoints',
        "at least one endpoint",
    ),
    ("empty classes", setting("classes", {}), "classes", "at least one class"),
    ("negative priority", setting("classes", {"standard": {"priority": -1}}), "classes.standard.priority", ">= 0"),
    (
        "class without priority",
        setting("classes", {"standard": {}}),
        "classes.standard.priority",
        "required key missing",
    ),
    (
        "no default class",
        setting("classes", {"gold": {"priority": 0}, "tin": {"priority": 1}}),
        "default_class",
        "required",
    ),
    ("default class undefined", setting("default_class", "gold"), "default_class", "'gold' is not defined"),
    ("tenant class undefined", setting("tenants.acme.class", "gold"), "tenants.acme.class", "'gold' is not defined"),
    (
        "tenant classes undefined",
        setting("tenants.acme.classes", ["premium", "gold"]),
        "tenants.acme.classes[1]",
        "'gold' is not defined",
    ),
    (
        "tenant classes omit default",
        setting("tenants.acme.classes", ["standard"]),
        "tenants.acme.classes",
        "must include the tenant's class 'premium'",
    ),
    ("tenant zero rpm", setting("tenants.acme.rpm", 0), "tenants.acme.rpm", ">= 1"),
    ("tenant zero weight", setting("tenants.acme.weight", 0), "tenants.acme.weight", ">= 1"),
    ("key tenant undefined", setting("keys.0.tenant", "nobody"), "keys[0].tenant", "'nobody' is not defined"),
    ("key without tenant", setting("keys.0", {"key": "k"}), "keys[0].tenant", "required key missing"),
    ("key and digest", setting("keys.0.key_sha256", SHA), "keys[0]", "exactly one of key and key_sha256"),
    ("neither key nor digest", removing("keys.0.key"), "keys[0]", "exactly one of key and key_sha256"),
    (
        "bad digest",
        setting("keys.0", {"key_sha256": "9f86d0", "tenant": "acme"}),
        "keys[0].key_sha256",
        "64 hex digits",
    ),
    ("empty key", setting("keys.0.key", ""), "keys[0].key", "must not be empty"),
    (
        "duplicate key",
        setting("keys", [{"key": "test", "tenant": "acme"}, {"key_sha256": SHA.upper(), "tenant": "other"}]),
        "keys[1]",
        "the same key as keys[0]",
    ),
    (
        "duplicate key names",
        setting("keys", [{"key": "a", "tenant": "acme", "name": "n"}, {"key": "b", "tenant": "acme", "name": "n"}]),
        "keys[1].name",
        "used by keys[0]",
    ),
    ("key model undefined", setting("keys.0.models", ["chat", "gpt"]), "keys[0].models[1]", "'gpt' is not defined"),
    ("key class undefined", setting("keys.0.classes", ["gold"]), "keys[0].classes[0]", "'gold' is not defined"),
    ("key class beyond tenant", setting("keys.0.classes", ["batch"]), "keys[0].classes[0]", "not among tenant 'acme'"),
    ("keys not a list", setting("keys", {"key": "k"}), "keys", "expected a list"),
    ("no keys on a public address", lambda doc: doc.update(listen={"host": "0.0.0.0"}, keys=[]), "keys", "auth is off"),
    ("bad state", setting("state", "postgres://x"), "state", "redis:// URL"),
    ("empty host", setting("listen.host", ""), "listen.host", "must not be empty"),
    ("port too high", setting("listen.port", 70000), "listen.port", "<= 65535"),
    ("admin key and digest", setting("admin", {"key": "a", "key_sha256": SHA}), "admin", "exactly one"),
    (
        "admin listen unknown key",
        setting("admin", {"key": "a", "listen": {"prt": 1}}),
        "admin.listen.prt",
        "unknown key",
    ),
    (
        "admin on the main address",
        setting("admin", {"key": "a", "listen": {"host": "127.0.0.1", "port": 8080}}),
        "admin.listen.port",
        "already the main listener's address",
    ),
    (
        "queue cap for unknown class",
        setting("admission", {"queue_caps": {"gold": 3}}),
        "admission.queue_caps.gold",
        "'gold' is not defined",
    ),
    (
        "admission limits out of order",
        setting("admission", {"min_limit": 300}),
        "admission",
        "min_limit <= initial_limit",
    ),
    (
        "degradation class unknown",
        setting("degradation", {"classes": ["standard", "tin"]}),
        "degradation.classes[1]",
        "'tin' is not defined",
    ),
    (
        "degradation offset unknown",
        setting("degradation", {"class_offsets": {"x": 2}}),
        "degradation.class_offsets.x",
        "'x' is not defined",
    ),
    (
        "degradation concise unknown",
        setting("degradation", {"concise_max_tokens": {"x": 2}}),
        "degradation.concise_max_tokens.x",
        "'x' is not defined",
    ),
    (
        "degradation action unknown",
        setting("degradation", {"actions": ["concise", "shout"]}),
        "degradation.actions[1]",
        "invalid enum value 'shout'",
    ),
    (
        "degradation thresholds",
        setting("degradation", {"down_threshold": 2}),
        "degradation",
        "down_threshold < up_threshold",
    ),
    (
        "routing class unknown",
        setting("routing", {"classes": {"gold": {"failover": False}}}),
        "routing.classes.gold",
        "class 'gold' is not defined in classes",
    ),
    (
        "route table for an unknown model",
        setting("routes", {"nosuch": [{"pool": "chat"}]}),
        "routes.nosuch",
        "model 'nosuch' is not defined in models",
    ),
    (
        "route rule class unknown",
        setting("routes", {"chat": [{"pool": "chat-small", "classes": ["standard", "silver"]}]}),
        "routes.chat[0].classes[1]",
        "class 'silver' is not defined in classes",
    ),
    (
        "route rule tenant unknown",
        setting("routes", {"chat": [{"pool": "chat-small", "tenants": ["nobody"]}]}),
        "routes.chat[0].tenants[0]",
        "tenant 'nobody' is not defined in tenants",
    ),
    (
        "route rule pool unknown",
        setting("routes", {"chat": [{"pool": "chat-tiny"}]}),
        "routes.chat[0].pool",
        "model 'chat-tiny' is not defined in models",
    ),
    ("zero connect timeout", setting("timeouts.connect_ms", 0), "timeouts.connect_ms", ">= 1"),
    ("budget ratio above 1", setting("retries.budget_ratio", 1.5), "retries.budget_ratio", "<= 1.0"),
    ("zero body limit", setting("limits.max_body_bytes", 0), "limits.max_body_bytes", ">= 1"),
    ("access log wrong type", setting("access_log.enabled", "maybe"), "access_log.enabled", "expected bool"),
    (
        "tls without key file",
        setting("listen.tls", {"cert_file": "c.pem"}),
        "listen.tls.key_file",
        "required key missing",
    ),
    (
        "missing env",
        setting("keys.0.key", "${NOT_SET_ANYWHERE}"),
        "keys[0].key",
        "environment variable NOT_SET_ANYWHERE is not set",
    ),
]


@pytest.mark.parametrize(("mutate", "path", "fragment"), [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_rule(doc: Doc, mutate: Callable[[Doc], None], path: str, fragment: str) -> None:
    mutate(doc)
    with pytest.raises(ConfigError) as caught:
        parse_config(doc, env={})
    issues = caught.value.issues
    assert any(p == path and fragment in m for p, m in issues), issues


def test_unknown_key_is_named_with_its_full_path_in_the_message(doc: Doc) -> None:
    doc["models"]["chat"]["endpoints"][1]["wieght"] = 2
    with pytest.raises(ConfigError) as caught:
        parse_config(doc, env={})
    assert str(caught.value) == "models.chat.endpoints[1].wieght: unknown key"


def test_problems_in_separate_sections_are_all_reported(doc: Doc) -> None:
    doc["models"]["chat"]["picker"] = "fastest"
    doc["tenants"]["acme"]["rpm"] = "lots"
    doc["keys"][0]["extra"] = 1
    doc["bogus"] = 1
    with pytest.raises(ConfigError) as caught:
        parse_config(doc, env={})
    assert {p for p, _ in caught.value.issues} == {"models.chat.picker", "tenants.acme.rpm", "keys[0].extra", "bogus"}


def test_cross_field_problems_are_all_reported(doc: Doc) -> None:
    doc["models"]["chat"]["fallback"] = ["nope"]
    doc["tenants"]["acme"]["class"] = "gold"
    doc["keys"][0]["tenant"] = "nobody"
    with pytest.raises(ConfigError) as caught:
        parse_config(doc, env={})
    paths = [p for p, _ in caught.value.issues]
    assert paths == ["models.chat.fallback[0]", "tenants.acme.class", "keys[0].tenant"]


def test_pass_through_pool_allows_any_key_model(doc: Doc) -> None:
    doc["models"]["*"] = {"endpoints": [{"url": "http://127.0.0.1:9009/v1"}]}
    doc["keys"][0]["models"] = ["whatever-upstream-serves"]
    assert parse_config(doc, env={}).keys[0].models == ("whatever-upstream-serves",)


def test_keys_on_public_address_are_fine(doc: Doc) -> None:
    doc["listen"]["host"] = "0.0.0.0"
    assert parse_config(doc, env={}).auth_enabled


def test_top_level_must_be_a_mapping() -> None:
    with pytest.raises(ConfigError) as caught:
        parse_config(["models"], env={})
    assert caught.value.issues == [("", "expected a mapping at the top of the config, got list")]
    assert str(caught.value) == "expected a mapping at the top of the config, got list"


@pytest.mark.parametrize(
    "credential",
    [
        {"key_store": {"path": "/var/lib/tokenyard/keys.db"}},
        {"jwt": {"issuer": "https://idp", "audience": "tokenyard", "jwks_file": "/etc/jwks.json"}},
        {"listen": {"host": "0.0.0.0", "tls": {"cert_file": "c", "key_file": "k", "client_ca_file": "ca"}}},
    ],
    ids=["key store", "jwt", "mtls"],
)
def test_other_credentials_satisfy_the_auth_rule(doc: Doc, credential: Doc) -> None:
    del doc["keys"]
    doc["listen"] = {"host": "0.0.0.0"}
    doc.update(credential)
    config = parse_config(doc, env={})
    assert config.auth_enabled and config.keys == ()


def test_tls_without_client_ca_is_not_a_credential(doc: Doc) -> None:
    del doc["keys"]
    doc["listen"] = {"host": "0.0.0.0", "tls": {"cert_file": "c", "key_file": "k"}}
    with pytest.raises(ConfigError) as caught:
        parse_config(doc, env={})
    assert caught.value.issues[0][0] == "keys"


def test_eastwest_section(doc: Doc) -> None:
    doc["eastwest"] = {
        "rules": [
            {
                "name": "rag",
                "identities": ["spiffe://prod/ns/rag/*"],
                "models": ["chat"],
                "routes": ["/v1/retrieve"],
                "selector": {"app": "rag"},
            }
        ]
    }
    config = parse_config(doc, env={})
    assert config.eastwest is not None
    rule = config.eastwest.rules[0]
    assert (rule.identities, rule.models, rule.tools) == (("spiffe://prod/ns/rag/*",), ("chat",), ())
    assert config.eastwest.gateway.port == 8080


def test_type_and_reference_problems_are_reported_together(doc: Doc) -> None:
    doc["models"]["chat"]["endpoints"][1]["wieght"] = 2
    doc["tenants"]["acme"]["class"] = "gold"
    with pytest.raises(ConfigError) as caught:
        parse_config(doc, env={})
    assert caught.value.issues == [
        ("models.chat.endpoints[1].wieght", "unknown key"),
        ("tenants.acme.class", "class 'gold' is not defined in classes"),
    ]


def test_references_to_entries_with_type_problems_are_not_reported(doc: Doc) -> None:
    doc["models"]["chat-small"]["picker"] = "fastest"  # chat falls back to chat-small
    doc["classes"] = {"premium": {"priority": "high"}, "standard": {"priority": 1}}  # acme uses premium
    with pytest.raises(ConfigError) as caught:
        parse_config(doc, env={})
    assert [path for path, _ in caught.value.issues] == ["models.chat-small.picker", "classes.premium.priority"]


def test_a_broken_credential_section_does_not_trigger_the_auth_rule(doc: Doc) -> None:
    del doc["keys"]
    doc["listen"] = {"host": "0.0.0.0"}
    doc["jwt"] = {"issuer": "i", "audience": "a", "jwks_file": "f", "leeway": 1}
    with pytest.raises(ConfigError) as caught:
        parse_config(doc, env={})
    assert caught.value.issues == [("jwt.leeway", "unknown key")]


def test_no_reference_checks_when_a_key_entry_is_broken(doc: Doc) -> None:
    doc["keys"] = [{"key": "a", "tenant": "acme", "nme": "x"}, {"key": "b", "tenant": "nobody"}]
    with pytest.raises(ConfigError) as caught:
        parse_config(doc, env={})
    assert caught.value.issues == [("keys[0].nme", "unknown key")]  # keys[1]'s index would be wrong otherwise


def test_routing_names_defined_entries(doc: Doc) -> None:
    doc["routes"] = {"chat": [{"pool": "chat-small", "tenants": ["acme"], "classes": ["premium"]}]}
    doc["routing"] = {"classes": {"premium": {"hedge_delay_ms": 300}, "batch": {"failover": False}}}
    assert parse_config(doc, env={}).routes["chat"][0].tenants == ("acme",)
    # The built-in default retry policy names batch: no error in a config without a batch class.
    doc["classes"] = {"gold": {"priority": 0}}
    doc["tenants"] = {"acme": {}, "other": {}}
    doc["routes"] = {}
    del doc["routing"]
    assert parse_config(doc, env={}).routing.classes.keys() == {"batch"}
