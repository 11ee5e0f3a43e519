"""Cross-field rules and normalisation: names that must exist, cycles, duplicates, URLs, the auth-off rule.

Each function takes the typed sections, appends ``(key_path, message)`` issues, and returns normalised values
(derived endpoint names, resolved default classes, keys hashed) so the rest of tokenyard never re-derives them.
"""

from __future__ import annotations

from urllib.parse import urlsplit

import msgspec

from tokenyard.config.admission import AdmissionConfig, DegradationConfig
from tokenyard.config.classes import DEFAULT_CLASS_NAME, ClassConfig
from tokenyard.config.errors import join_path
from tokenyard.config.gateway import is_loopback
from tokenyard.config.keys import hash_key, is_sha256_hex
from tokenyard.config.models import PASS_THROUGH_MODEL, EndpointConfig, ModelConfig
from tokenyard.config.security import EastWestConfig, JwtConfig
from tokenyard.config.server import AdminConfig, ListenConfig
from tokenyard.config.tenants import KeyConfig, TenantConfig

Issues = list[tuple[str, str]]
STATE_SCHEMES = ("redis", "rediss", "unix")


def check_state(state: str, issues: Issues) -> None:
    """``memory`` or a Redis URL."""
    if state == "memory":
        return
    parts = urlsplit(state)
    if parts.scheme not in STATE_SCHEMES or not (parts.netloc or parts.path):
        issues.append(("state", f"expected 'memory' or a redis:// URL, got {state!r}"))


def check_listen(listen: ListenConfig, path: str, issues: Issues) -> None:
    if not listen.host:
        issues.append((join_path(path, "host"), "must not be empty"))


def check_distinct_listeners(main: ListenConfig, admin: ListenConfig, issues: Issues) -> None:
    """The admin listener cannot take the main listener's address (port 0 picks a free port for each)."""
    if admin.port != 0 and (admin.host, admin.port) == (main.host, main.port):
        issues.append(("admin.listen.port", f"{admin.host}:{admin.port} is already the main listener's address"))


def normalise_admin(admin: AdminConfig, issues: Issues) -> AdminConfig:
    """Exactly one of key/key_sha256; the result keeps only the digest."""
    digest = _digest_of(admin.key, admin.key_sha256, "admin", issues)
    if admin.listen is not None:
        check_listen(admin.listen, "admin.listen", issues)
        if admin.listen.busy_poll_us:
            issues.append(("admin.listen.busy_poll_us", "busy polling is for the main listener's inference traffic; "
                           "set it on listen, not on the admin listener"))
    return msgspec.structs.replace(admin, key=None, key_sha256=digest)


def resolve_default_class(requested: str, classes: dict[str, ClassConfig], issues: Issues) -> str:
    """The class of requests that name none: as configured, else ``standard``, else the only class."""
    if not classes:
        issues.append(("classes", "at least one class is required"))
        return requested
    if requested:
        if requested not in classes:
            issues.append(("default_class", f"class {requested!r} is not defined in classes"))
        return requested
    if DEFAULT_CLASS_NAME in classes:
        return DEFAULT_CLASS_NAME
    if len(classes) == 1:
        return next(iter(classes))
    issues.append(("default_class", "required when classes has no 'standard' class and more than one class"))
    return ""


def normalise_models(models: dict[str, ModelConfig], issues: Issues) -> dict[str, ModelConfig]:
    """Endpoint URLs and names, fallbacks that exist, and no fallback cycles."""
    if not models:
        issues.append(("models", "at least one model is required"))
    result: dict[str, ModelConfig] = {}
    for name, model in models.items():
        path = join_path("models", name)
        endpoints = _normalise_endpoints(model.endpoints, join_path(path, "endpoints"), issues)
        seen: set[str] = set()
        for index, target in enumerate(model.fallback):
            where = join_path(join_path(path, "fallback"), index)
            if target == name:
                issues.append((where, f"model {name!r} cannot fall back to itself"))
            elif target not in models:
                issues.append((where, f"model {target!r} is not defined in models"))
            elif target in seen:
                issues.append((where, f"model {target!r} is listed twice"))
            seen.add(target)
        result[name] = msgspec.structs.replace(model, endpoints=endpoints)
    _check_fallback_cycles(models, issues)
    return result


def _normalise_endpoints(
    endpoints: tuple[EndpointConfig, ...], path: str, issues: Issues
) -> tuple[EndpointConfig, ...]:
    if not endpoints:
        issues.append((path, "at least one endpoint is required"))
        return endpoints
    derived: list[str] = []
    for index, endpoint in enumerate(endpoints):
        parts = urlsplit(endpoint.url)
        if (
            parts.scheme not in ("http", "https")
            or not parts.hostname
            or not endpoint.url.isprintable()
            or (" " in endpoint.url)
        ):
            issues.append((join_path(join_path(path, index), "url"), f"expected an http(s) URL, got {endpoint.url!r}"))
        derived.append(endpoint.name or parts.netloc or f"endpoint-{index}")
    if all(endpoint.weight == 0 for endpoint in endpoints):
        issues.append((path, "at least one endpoint needs a weight above 0"))
    names: set[str] = set()
    result: list[EndpointConfig] = []
    for index, (endpoint, wanted) in enumerate(zip(endpoints, derived, strict=True)):
        name = wanted
        if wanted in names and endpoint.name:
            issues.append((join_path(join_path(path, index), "name"), f"endpoint name {wanted!r} is used twice"))
        elif wanted in names:
            name = f"{wanted}#{index}"  # two endpoints on one host:port (different paths) stay distinct
        names.add(name)
        result.append(msgspec.structs.replace(endpoint, name=name))
    return tuple(result)


def _check_fallback_cycles(models: dict[str, ModelConfig], issues: Issues) -> None:
    """Report each fallback cycle once, at the model where it was first entered."""
    state: dict[str, int] = {}  # 1 = on the current path, 2 = done
    reported: set[frozenset[str]] = set()

    def visit(name: str, trail: list[str]) -> None:
        state[name] = 1
        trail.append(name)
        for target in models[name].fallback:
            if target == name or target not in models:
                continue  # reported by normalise_models
            if state.get(target) == 1:
                cycle = [*trail[trail.index(target) :], target]
                if frozenset(cycle) not in reported:
                    reported.add(frozenset(cycle))
                    issues.append(
                        (join_path(join_path("models", cycle[0]), "fallback"), "fallback cycle: " + " -> ".join(cycle))
                    )
            elif target not in state:
                visit(target, trail)
        trail.pop()
        state[name] = 2

    for name in models:
        if name not in state:
            visit(name, [])


def normalise_tenants(
    tenants: dict[str, TenantConfig], classes: dict[str, ClassConfig], default_class: str, issues: Issues
) -> dict[str, TenantConfig]:
    """Every tenant gets a default class that exists and an allowed list that contains it."""
    result: dict[str, TenantConfig] = {}
    for name, tenant in tenants.items():
        path = join_path("tenants", name)
        own_class = tenant.default_class or default_class
        if tenant.default_class and tenant.default_class not in classes:
            issues.append((join_path(path, "class"), f"class {tenant.default_class!r} is not defined in classes"))
        allowed = tenant.classes or (own_class,)
        for index, class_name in enumerate(tenant.classes):
            if class_name not in classes:
                issues.append(
                    (join_path(join_path(path, "classes"), index), f"class {class_name!r} is not defined in classes")
                )
        if own_class in classes and own_class not in allowed:
            issues.append((join_path(path, "classes"), f"must include the tenant's class {own_class!r}"))
        result[name] = msgspec.structs.replace(tenant, default_class=own_class, classes=tuple(allowed))
    return result


def normalise_keys(
    keys: tuple[KeyConfig, ...],
    tenants: dict[str, TenantConfig],
    models: dict[str, ModelConfig],
    classes: dict[str, ClassConfig],
    issues: Issues,
) -> tuple[KeyConfig, ...]:
    """Hash plaintext keys, name every key, check tenants/models/classes exist, and forbid duplicates."""
    result: list[KeyConfig] = []
    digests: dict[str, int] = {}
    names: dict[str, int] = {}
    for index, key in enumerate(keys):
        path = join_path("keys", index)
        digest = _digest_of(key.key, key.key_sha256, path, issues)
        if digest:
            if digest in digests:
                issues.append((path, f"the same key as keys[{digests[digest]}]"))
            digests.setdefault(digest, index)
        tenant = tenants.get(key.tenant)
        if tenant is None:
            issues.append((join_path(path, "tenant"), f"tenant {key.tenant!r} is not defined in tenants"))
        name = key.name or f"{key.tenant}-{index}"
        if name in names:
            issues.append((join_path(path, "name"), f"key name {name!r} is used by keys[{names[name]}] too"))
        names.setdefault(name, index)
        if key.models is not None and PASS_THROUGH_MODEL not in models:
            for model_index, model in enumerate(key.models):
                if model not in models:
                    issues.append(
                        (join_path(join_path(path, "models"), model_index), f"model {model!r} is not defined in models")
                    )
        if key.classes is not None:
            for class_index, class_name in enumerate(key.classes):
                where = join_path(join_path(path, "classes"), class_index)
                if class_name not in classes:
                    issues.append((where, f"class {class_name!r} is not defined in classes"))
                elif tenant is not None and class_name not in tenant.classes:
                    issues.append((where, f"class {class_name!r} is not among tenant {key.tenant!r}'s classes"))
        for route_index, pattern in enumerate(key.routes or ()):
            if not pattern.startswith("/"):
                issues.append((join_path(join_path(path, "routes"), route_index),
                               f"route pattern {pattern!r} must start with '/' (such as /v1/retrieve or /v1/tools/*)"))
        key_classes = key.classes if key.classes is not None else (tenant.classes if tenant else ())
        result.append(msgspec.structs.replace(key, key=None, key_sha256=digest, name=name, classes=key_classes))
    return tuple(result)


def check_auth_rule(listen: ListenConfig, has_credentials: bool, issues: Issues) -> None:
    """No credentials (keys, key store, JWT or mTLS) means auth is off: allowed only on a loopback listener."""
    if not has_credentials and not is_loopback(listen.host):
        issues.append(
            (
                "keys",
                f"required when listening on {listen.host!r}: without keys auth is off, "
                "which is allowed only on a loopback address (127.0.0.1, ::1, localhost)",
            )
        )


def check_jwt(jwt: JwtConfig, issues: Issues) -> None:
    """Exactly one JWKS source; a URL must be http(s)."""
    if (jwt.jwks_file is None) == (jwt.jwks_url is None):
        issues.append(("jwt", "set exactly one of jwks_file and jwks_url"))
    elif jwt.jwks_url is not None and urlsplit(jwt.jwks_url).scheme not in ("http", "https"):
        issues.append(("jwt.jwks_url", f"expected an http(s) URL, got {jwt.jwks_url!r}"))


def check_eastwest(eastwest: EastWestConfig, issues: Issues) -> None:
    """Every rule names at least one identity; rule names are unique."""
    names: set[str] = set()
    for index, rule in enumerate(eastwest.rules):
        path = join_path(join_path("eastwest", "rules"), index)
        if not rule.identities or not all(rule.identities):
            issues.append((join_path(path, "identities"), "a non-empty list of non-empty identities is required"))
        if rule.name and rule.name in names:
            issues.append((join_path(path, "name"), f"rule name {rule.name!r} is used twice"))
        names.add(rule.name)


def check_class_references(
    admission: AdmissionConfig, degradation: DegradationConfig, classes: dict[str, ClassConfig], issues: Issues
) -> None:
    """Class names used by the admission and degradation sections must be defined classes.

    The built-in defaults name ``premium``; they are not errors in a config whose classes have other names.
    """
    defaults = DegradationConfig()
    named: list[tuple[str, tuple[str, ...]]] = [
        ("admission.queue_caps", tuple(admission.queue_caps)),
        ("degradation.classes", degradation.classes or ()),
    ]
    if degradation.class_offsets != defaults.class_offsets:
        named.append(("degradation.class_offsets", tuple(degradation.class_offsets)))
    if degradation.concise_max_tokens != defaults.concise_max_tokens:
        named.append(("degradation.concise_max_tokens", tuple(degradation.concise_max_tokens)))
    for path, names in named:
        for index, name in enumerate(names):
            if name not in classes:
                where = join_path(path, index) if path == "degradation.classes" else join_path(path, name)
                issues.append((where, f"class {name!r} is not defined in classes"))


def _digest_of(plaintext: str | None, digest: str | None, path: str, issues: Issues) -> str:
    if (plaintext is None) == (digest is None):
        issues.append((path, "set exactly one of key and key_sha256"))
        return ""
    if plaintext is not None:
        if not plaintext:
            issues.append((join_path(path, "key"), "must not be empty"))
            return ""
        return hash_key(plaintext)
    assert digest is not None
    if not is_sha256_hex(digest):
        issues.append((join_path(path, "key_sha256"), "expected 64 hex digits (a SHA-256 digest)"))
        return ""
    return digest.lower()
