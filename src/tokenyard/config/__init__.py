"""Gateway configuration: typed frozen objects, YAML loading with ``${ENV}`` substitution, validation with key paths.

Use ``load_config(path)``, ``parse_config(mapping)`` or ``config_for_upstream(url, host, port)``; problems raise
``ConfigError`` whose ``.issues`` is a list of ``(key_path, message)``.
"""

from tokenyard.config.base import Section
from tokenyard.config.classes import ClassConfig, default_classes
from tokenyard.config.errors import ConfigError
from tokenyard.config.gateway import GatewayConfig, is_loopback
from tokenyard.config.keys import KeyLookup, hash_key
from tokenyard.config.loader import (
    ConfigFileError,
    config_for_upstream,
    load_config,
    override_listen,
    parse_config,
)
from tokenyard.config.models import MODEL_KINDS, PASS_THROUGH_MODEL, PICKERS, EndpointConfig, ModelConfig
from tokenyard.config.security import (
    AuditLogConfig,
    EastWestConfig,
    EastWestGateway,
    EastWestRule,
    JwtConfig,
    KeyStoreConfig,
)
from tokenyard.config.server import (
    AccessLogConfig,
    AdminConfig,
    LimitsConfig,
    ListenConfig,
    RetriesConfig,
    TelemetryConfig,
    TimeoutsConfig,
    TLSConfig,
)
from tokenyard.config.tenants import KeyConfig, TenantConfig

__all__ = [
    "MODEL_KINDS",
    "PASS_THROUGH_MODEL",
    "PICKERS",
    "AccessLogConfig",
    "AdminConfig",
    "AuditLogConfig",
    "ClassConfig",
    "ConfigError",
    "ConfigFileError",
    "EastWestConfig",
    "EastWestGateway",
    "EastWestRule",
    "EndpointConfig",
    "GatewayConfig",
    "JwtConfig",
    "KeyConfig",
    "KeyLookup",
    "KeyStoreConfig",
    "LimitsConfig",
    "ListenConfig",
    "ModelConfig",
    "RetriesConfig",
    "Section",
    "TLSConfig",
    "TelemetryConfig",
    "TenantConfig",
    "TimeoutsConfig",
    "config_for_upstream",
    "default_classes",
    "hash_key",
    "is_loopback",
    "load_config",
    "override_listen",
    "parse_config",
]
