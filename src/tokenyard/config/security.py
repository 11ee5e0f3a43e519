"""Sections for identities beyond config keys: the key store, JWT, the east-west policy, the audit log."""

from __future__ import annotations

import msgspec

from tokenyard.config.base import Name, Port, PositiveInt, Section


class KeyStoreConfig(Section, frozen=True, kw_only=True):
    """Keys issued at run time (``tokenyard keys create``): a SQLite file, polled for revocations."""

    path: Name
    poll_ms: PositiveInt = 500


class JwtConfig(Section, frozen=True, kw_only=True):
    """Service identity by JWT (``Authorization: Bearer <jwt>``), checked against a JWKS file or URL.

    Exactly one of ``jwks_file`` and ``jwks_url``. ``leeway_ms`` is the clock skew allowed on ``exp``/``nbf``;
    ``jwks_ttl_ms`` how long a fetched JWKS is cached; ``tenant_claim`` the claim naming the caller's tenant.
    """

    issuer: Name
    audience: Name
    jwks_file: str | None = None
    jwks_url: str | None = None
    leeway_ms: PositiveInt = 30_000
    jwks_ttl_ms: PositiveInt = 300_000
    tenant_claim: Name = "tenant"


class EastWestRule(Section, frozen=True, kw_only=True):
    """Grants the identities (exact or shell-style patterns) access to models, routes and tools."""

    name: str = ""
    identities: tuple[str, ...]
    models: tuple[str, ...] = ()
    routes: tuple[str, ...] = ()
    tools: tuple[str, ...] = ()
    selector: dict[str, str] = msgspec.field(default_factory=dict)


class EastWestGateway(Section, frozen=True, kw_only=True):
    """Where the gateway runs, for the CiliumNetworkPolicy export."""

    labels: dict[str, str] = msgspec.field(default_factory=lambda: {"app.kubernetes.io/name": "tokenyard"})
    port: Port = 8080
    namespace: str = "default"


class EastWestConfig(Section, frozen=True, kw_only=True):
    """The default-deny east-west policy: what each service identity may call."""

    rules: tuple[EastWestRule, ...] = ()
    gateway: EastWestGateway = msgspec.field(default_factory=EastWestGateway)


class AuditLogConfig(Section, frozen=True, kw_only=True):
    """JSON lines for admin actions and authentication failures; ``path`` None writes to stderr."""

    path: str | None = None
