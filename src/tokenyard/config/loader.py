"""Entry points: ``load_config`` (a YAML file), ``parse_config`` (a mapping), ``config_for_upstream``."""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import msgspec

from tokenyard.config.decode import decode_sections
from tokenyard.config.envsubst import substitute
from tokenyard.config.errors import ConfigError
from tokenyard.config.gateway import GatewayConfig
from tokenyard.config.models import PASS_THROUGH_MODEL
from tokenyard.config.partial import can_cross_check, relevant
from tokenyard.config.routing import check_routing
from tokenyard.config.security import EastWestConfig
from tokenyard.config.server import BUSY_POLL_MAX_US
from tokenyard.config.validate import (
    check_auth_rule,
    check_class_references,
    check_distinct_listeners,
    check_eastwest,
    check_jwt,
    check_listen,
    check_state,
    normalise_admin,
    normalise_keys,
    normalise_models,
    normalise_tenants,
    resolve_default_class,
)
from tokenyard.config.yaml_source import ConfigFileError, read_yaml

__all__ = ["ConfigFileError", "config_for_upstream", "load_config", "load_eastwest", "override_listen", "parse_config"]


def load_config(path: str | os.PathLike[str], env: Mapping[str, str] | None = None) -> GatewayConfig:
    """Read, substitute and validate a YAML config file.

    ``env`` defaults to ``os.environ``. Raises ``ConfigFileError`` (a ``ConfigError``) when the file cannot be
    read or is not valid YAML (the issue names the line and column), ``ConfigError`` for every other problem.
    """
    return parse_config(read_yaml(Path(path)), env=env)


def load_eastwest(path: str | os.PathLike[str], env: Mapping[str, str] | None = None) -> EastWestConfig | None:
    """The ``eastwest`` section of a gateway config file, or of a policy file that holds only that section.

    A gateway config is validated whole, exactly as ``load_config`` does (a policy export from a config the
    gateway would refuse would describe a policy nobody runs); a file whose only top-level key is ``eastwest``
    gets the same substitution, typed conversion and rule checks for that section alone. Returns None when the
    file has no ``eastwest`` section. Raises ``ConfigFileError`` and ``ConfigError`` as ``load_config`` does.
    """
    document = read_yaml(Path(path))
    if document is None:  # an empty file: nothing to validate, and no section
        return None
    if not isinstance(document, dict) or not set(document) <= {"eastwest"}:
        return parse_config(document, env=env).eastwest
    issues: list[tuple[str, str]] = []
    try:
        sections = decode_sections(substitute(document, os.environ if env is None else env, "", issues), issues)
    except RecursionError:
        raise ConfigError([("", "the config is nested too deeply")]) from None
    eastwest: EastWestConfig | None = sections.get("eastwest")
    if eastwest is not None:
        check_eastwest(eastwest, issues)
    if issues:
        raise ConfigError(issues)
    return eastwest


def parse_config(mapping: Any, env: Mapping[str, str] | None = None) -> GatewayConfig:
    """Validate an already-parsed document (a mapping, as YAML or JSON gives it).

    ``${VAR}``/``${VAR:-default}`` in string values are substituted from ``env`` (default ``os.environ``) first.
    Raises ``ConfigError`` listing every problem found with its key path.
    """
    if mapping is None:
        mapping = {}
    if not isinstance(mapping, dict):
        raise ConfigError([("", f"expected a mapping at the top of the config, got {type(mapping).__name__}")])
    issues: list[tuple[str, str]] = []
    try:
        document = substitute(mapping, os.environ if env is None else env, "", issues)
        sections = decode_sections(document, issues)
    except RecursionError:
        raise ConfigError([("", "the config is nested too deeply")]) from None
    if issues:
        if can_cross_check(document, sections):
            later: list[tuple[str, str]] = []
            _normalise(GatewayConfig(**sections), later)
            issues += [issue for issue in later if relevant(issue, document, sections)]
        raise ConfigError(issues)
    config = _normalise(GatewayConfig(**sections), issues)
    if issues:
        raise ConfigError(issues)
    return config


def config_for_upstream(url: str, host: str = "127.0.0.1", port: int = 8080) -> GatewayConfig:
    """The config of ``tokenyard serve --upstream URL``: one pass-through pool ``*``, default classes, no keys.

    ``url`` is the upstream's base URL; ``/v1`` is appended when it has no path. Raises ``ConfigError`` for a bad
    URL, and for a non-loopback ``host`` (no keys means auth is off, allowed only on loopback).
    """
    base = url.rstrip("/")
    if "://" in base and base.split("://", 1)[1].count("/") == 0:
        base += "/v1"
    document: dict[str, Any] = {
        "listen": {"host": host, "port": port},
        "models": {PASS_THROUGH_MODEL: {"endpoints": [{"url": base}]}},
    }
    return parse_config(document, env={})


def override_listen(config: GatewayConfig, host: str | None = None, port: int | None = None,
                    busy_poll_us: int | None = None) -> GatewayConfig:
    """``config`` with the listener's host, port and/or busy polling replaced (``serve --host/--port
    --busy-poll-us``), re-checked.

    Raises ``ConfigError`` when the new address breaks a rule, in particular the auth-off rule: a config without
    credentials may not be moved to a non-loopback address.
    """
    listen = msgspec.structs.replace(
        config.listen,
        host=config.listen.host if host is None else host,
        port=config.listen.port if port is None else port,
        busy_poll_us=config.listen.busy_poll_us if busy_poll_us is None else busy_poll_us,
    )
    issues: list[tuple[str, str]] = []
    if not 0 <= listen.port <= 65535:
        issues.append(("listen.port", f"expected 0..65535, got {listen.port}"))
    if not 0 <= listen.busy_poll_us <= BUSY_POLL_MAX_US:
        issues.append(("listen.busy_poll_us", f"expected 0..{BUSY_POLL_MAX_US}, got {listen.busy_poll_us}"))
    check_listen(listen, "listen", issues)
    check_auth_rule(listen, config.auth_enabled, issues)
    if config.admin is not None and config.admin.listen is not None:
        check_distinct_listeners(listen, config.admin.listen, issues)
    if issues:
        raise ConfigError(issues)
    return msgspec.structs.replace(config, listen=listen)


def _normalise(config: GatewayConfig, issues: list[tuple[str, str]]) -> GatewayConfig:
    check_state(config.state, issues)
    check_listen(config.listen, "listen", issues)
    admin = normalise_admin(config.admin, issues) if config.admin is not None else None
    if admin is not None and admin.listen is not None:
        check_distinct_listeners(config.listen, admin.listen, issues)
    classes = config.classes
    default_class = resolve_default_class(config.default_class, classes, issues)
    models = normalise_models(config.models, issues)
    tenants = normalise_tenants(config.tenants, classes, default_class, issues)
    check_class_references(config.admission, config.degradation, classes, issues)
    keys = normalise_keys(config.keys, tenants, models, classes, issues)
    if config.jwt is not None:
        check_jwt(config.jwt, issues)
    if config.eastwest is not None:
        check_eastwest(config.eastwest, issues)
    check_routing(config.routes, config.routing, set(models), issues, set(classes), set(tenants))
    config = msgspec.structs.replace(
        config, admin=admin, default_class=default_class, models=models, tenants=tenants, keys=keys
    )
    check_auth_rule(config.listen, config.auth_enabled, issues)
    return config
