"""Sections about the gateway process itself: listener, admin API, timeouts, limits, retries, logging."""

from __future__ import annotations

from typing import Annotated

import msgspec

from tokenyard.config.base import NonNegativeInt, Port, PositiveInt, Ratio, Section

MIB = 1024 * 1024
BUSY_POLL_MAX_US = 100_000  # past 0.1 s a spin is just a busy core
BusyPollMicros = Annotated[int, msgspec.Meta(ge=0, le=BUSY_POLL_MAX_US)]


class TLSConfig(Section, frozen=True, kw_only=True):
    """TLS on a listener; ``client_ca_file`` turns on mTLS (client certificates verified against it).

    ``require_client_cert`` false lets clients without a certificate in too (they then need an API key or JWT).
    """

    cert_file: str
    key_file: str
    client_ca_file: str | None = None
    require_client_cert: bool = True


class ListenConfig(Section, frozen=True, kw_only=True):
    """Where a server listens. Port 0 picks a free port (printed at start).

    ``busy_poll_us`` > 0 (main listener only): for that many microseconds after each request starts and after
    each response, the event loop polls instead of sleeping, trading CPU for latency (``gateway.native.busy_poll``).
    """

    host: str = "127.0.0.1"
    port: Port = 8080
    tls: TLSConfig | None = None
    busy_poll_us: BusyPollMicros = 0


class AdminConfig(Section, frozen=True, kw_only=True):
    """The admin API's own credential (plaintext ``key`` or ``key_sha256``) and optionally its own listener.

    After loading, ``key`` is always None and ``key_sha256`` holds the digest, so plaintext is not kept.
    """

    key: str | None = None
    key_sha256: str | None = None
    listen: ListenConfig | None = None


class TimeoutsConfig(Section, frozen=True, kw_only=True):
    """Timeouts made for streaming: each phase has its own, there is no single total that cuts long streams.

    ``idle_ms`` is the longest gap allowed between two tokens (or bytes) of a response; ``request_ms`` is an
    optional overall deadline (None: no overall limit); ``request_body_ms`` the longest a client may take to
    send its request body (slow-loris bodies get 408).
    """

    connect_ms: PositiveInt = 2_000
    first_token_ms: PositiveInt = 60_000
    idle_ms: PositiveInt = 30_000
    request_ms: PositiveInt | None = None
    request_body_ms: PositiveInt = 30_000


class LimitsConfig(Section, frozen=True, kw_only=True):
    """Size limits checked before any upstream work."""

    max_body_bytes: PositiveInt = 4 * MIB
    max_header_bytes: PositiveInt = 16 * 1024
    max_messages: PositiveInt = 2_048
    max_message_chars: PositiveInt = 1 * MIB


class RetriesConfig(Section, frozen=True, kw_only=True):
    """Retries of requests that failed before anything reached the client.

    ``attempts`` counts every try including the first; ``budget_ratio`` caps retries at that share of active
    requests so retries cannot amplify an outage; ``backoff_ms`` is the base of a jittered exponential backoff.
    """

    attempts: PositiveInt = 3
    budget_ratio: Ratio = 0.2
    backoff_ms: NonNegativeInt = 25


class AccessLogConfig(Section, frozen=True, kw_only=True):
    """One JSON line per request. ``path`` is a file or ``stdout``/``stderr``; prompts are never logged by default."""

    enabled: bool = True
    path: str = "stdout"
    log_prompts: bool = False


class TelemetryConfig(Section, frozen=True, kw_only=True):
    """OpenTelemetry traces go to ``otlp_endpoint`` when set."""

    otlp_endpoint: str | None = None
    service_name: str = "tokenyard"
