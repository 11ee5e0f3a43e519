"""The root of the configuration: everything ``tokenyard serve`` needs, as one frozen value."""

from __future__ import annotations

import ipaddress
from typing import Literal

import msgspec

from tokenyard.config.admission import AdmissionConfig, DegradationConfig
from tokenyard.config.base import Section
from tokenyard.config.classes import ClassConfig, default_classes
from tokenyard.config.models import PASS_THROUGH_MODEL, ModelConfig
from tokenyard.config.routing import RouteRuleConfig, RoutingConfig
from tokenyard.config.scaleout import CacheConfig, ScaleOutConfig
from tokenyard.config.security import AuditLogConfig, EastWestConfig, JwtConfig, KeyStoreConfig
from tokenyard.config.server import (
    AccessLogConfig,
    AdminConfig,
    LimitsConfig,
    ListenConfig,
    RetriesConfig,
    TelemetryConfig,
    TimeoutsConfig,
)
from tokenyard.config.streams import StreamsConfig
from tokenyard.config.tenants import KeyConfig, TenantConfig


class GatewayConfig(Section, frozen=True, kw_only=True):
    """A validated gateway configuration (build it with ``load_config``/``parse_config``, not directly).

    ``state`` is ``memory`` or a Redis URL. ``default_class`` is the class of requests whose tenant names
    none (and of every request when auth is off).
    """

    listen: ListenConfig = msgspec.field(default_factory=ListenConfig)
    state: str = "memory"
    admin: AdminConfig | None = None
    models: dict[str, ModelConfig] = msgspec.field(default_factory=dict)
    classes: dict[str, ClassConfig] = msgspec.field(default_factory=default_classes)
    default_class: str = ""
    tenants: dict[str, TenantConfig] = msgspec.field(default_factory=dict)
    keys: tuple[KeyConfig, ...] = ()
    timeouts: TimeoutsConfig = msgspec.field(default_factory=TimeoutsConfig)
    limits: LimitsConfig = msgspec.field(default_factory=LimitsConfig)
    retries: RetriesConfig = msgspec.field(default_factory=RetriesConfig)
    access_log: AccessLogConfig = msgspec.field(default_factory=AccessLogConfig)
    telemetry: TelemetryConfig = msgspec.field(default_factory=TelemetryConfig)
    key_store: KeyStoreConfig | None = None
    jwt: JwtConfig | None = None
    eastwest: EastWestConfig | None = None
    audit_log: AuditLogConfig = msgspec.field(default_factory=AuditLogConfig)
    admission: AdmissionConfig = msgspec.field(default_factory=AdmissionConfig)
    degradation: DegradationConfig = msgspec.field(default_factory=DegradationConfig)
    routes: dict[str, tuple[RouteRuleConfig, ...]] = msgspec.field(default_factory=dict)
    routing: RoutingConfig = msgspec.field(default_factory=RoutingConfig)
    cache: CacheConfig = msgspec.field(default_factory=CacheConfig)
    scaleout: ScaleOutConfig = msgspec.field(default_factory=ScaleOutConfig)
    streams: StreamsConfig = msgspec.field(default_factory=StreamsConfig)

    @property
    def auth_enabled(self) -> bool:
        """True when callers must present a credential: config ``keys``, a ``key_store``, ``jwt``, or mTLS.

        False only for the loopback-only "auth off" mode (see ``check_auth_rule``).
        """
        return (
            bool(self.keys)
            or self.key_store is not None
            or self.jwt is not None
            or (self.listen.tls is not None and self.listen.tls.client_ca_file is not None)
        )

    @property
    def admin_mode(self) -> Literal["key", "open", "disabled"]:
        """How the admin API is guarded: ``key`` (the admin credential is required) when ``admin`` is configured;
        else ``open`` only when auth is off and the listener is loopback-only (the demo, ``serve --upstream``);
        else ``disabled`` (403). Both conditions are checked here, not only by config validation: an open admin
        API must never be reachable from another host.
        """
        if self.admin is not None:
            return "key"
        return "open" if not self.auth_enabled and is_loopback(self.listen.host) else "disabled"

    def model_for(self, name: str) -> ModelConfig | None:
        """The pool serving the model name a client sent: an exact name, else the ``*`` pass-through pool."""
        found = self.models.get(name)
        if found is None:
            found = self.models.get(PASS_THROUGH_MODEL)
        return found

    def classes_by_priority(self) -> list[str]:
        """Class names, most important (lowest priority number) first; ties keep config order."""
        return sorted(self.classes, key=lambda name: self.classes[name].priority)


def is_loopback(host: str) -> bool:
    """True for ``localhost`` and loopback addresses (127.0.0.0/8, ::1); False for anything else."""
    if host.lower() in ("localhost", "localhost."):
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False
