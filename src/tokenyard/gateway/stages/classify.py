"""Classify: the traffic class (the tenant's, or ``x-tokenyard-class`` when allowed) and the client's deadline."""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

from aiohttp import web

from tokenyard.config import KeyConfig
from tokenyard.gateway.context import RequestContext
from tokenyard.gateway.errors import GatewayError
from tokenyard.gateway.stages.chain import Next, Stage

if TYPE_CHECKING:
    from tokenyard.gateway.services import Gateway


def parse_deadline_ms(value: str) -> float:
    """A positive, finite number of milliseconds; ``GatewayError`` 400 otherwise."""
    try:
        ms = float(value)
    except ValueError:
        ms = -1.0
    if not math.isfinite(ms) or ms <= 0:
        raise GatewayError(400, f"x-tokenyard-deadline-ms must be a positive number of milliseconds, got {value!r}",
                           "invalid_deadline", param="x-tokenyard-deadline-ms")
    return ms


def allowed_classes(gw: Gateway, key: KeyConfig | None) -> tuple[str, ...] | None:
    """The classes a caller with ``key`` may ask for (None: any configured class, when auth is off).

    A key's own ``classes`` count only within its tenant's: config keys are checked to be a subset when the
    config loads, key-store keys cannot be (``keys create`` does not see the config), so a store key issued
    ``--classes premium`` for a tenant without premium does not get premium.
    """
    if key is None:
        return None
    tenant = gw.config.tenants.get(key.tenant)
    if key.classes is not None:
        return key.classes if tenant is None else tuple(c for c in key.classes if c in tenant.classes)
    return tenant.classes if tenant is not None else ()


def class_allowed(gw: Gateway, key: KeyConfig | None, asked: str) -> bool:
    """Whether a caller with ``key`` (None: auth off) may ask for class ``asked``: what this stage lets through,
    for a path that must know before the request runs (a deferred request is accepted only if it may run)."""
    allowed = allowed_classes(gw, key)
    return asked in gw.config.classes and (allowed is None or asked in allowed)


def classify_stage(gw: Gateway) -> Stage:
    config = gw.config
    default_class = config.default_class
    request_s = config.timeouts.request_ms / 1000.0 if config.timeouts.request_ms else None
    # Prompts and completions are logged only where both the log and the tenant allow it (redaction by default).
    may_log_prompts = config.access_log.enabled and config.access_log.log_prompts

    async def classify(ctx: RequestContext, call_next: Next) -> web.StreamResponse:
        headers = ctx.request.headers
        asked = headers.get("x-tokenyard-class")
        if asked is not None:
            if not class_allowed(gw, ctx.key, asked):
                raise GatewayError(403, f"traffic class {asked!r} is not allowed for this key", "class_not_allowed",
                                   param="x-tokenyard-class")
            ctx.klass = asked
        else:
            tenant_class = ctx.tenant_config.default_class if ctx.tenant_config is not None else ""
            ctx.klass = tenant_class or default_class
            key_classes = allowed_classes(gw, ctx.key) if ctx.key is not None and ctx.key.classes else None
            if key_classes and ctx.klass not in key_classes:
                # A key held to some classes must not get its tenant's (better) class by asking for none.
                ctx.klass = key_classes[0]
        deadline_header = headers.get("x-tokenyard-deadline-ms")
        if deadline_header is not None:
            ctx.deadline = ctx.started + parse_deadline_ms(deadline_header) / 1000.0
        if request_s is not None:
            own = ctx.started + request_s
            ctx.deadline = own if ctx.deadline is None else min(ctx.deadline, own)
        if may_log_prompts and ctx.tenant_config is not None and ctx.tenant_config.log_prompts:
            ctx.transcript = bytearray()
        return await call_next(ctx)

    return classify
