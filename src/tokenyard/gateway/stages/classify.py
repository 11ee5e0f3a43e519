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


def allowed_classes(gw: Gateway, ctx: RequestContext) -> tuple[str, ...] | None:
    """The classes the caller may ask for (None: any configured class, when auth is off)."""
    if ctx.key is not None and ctx.key.classes is not None:
        return ctx.key.classes
    if ctx.tenant_config is not None:
        return ctx.tenant_config.classes
    return None if ctx.key is None else ()


def class_allowed(gw: Gateway, key: KeyConfig | None, asked: str) -> bool:
    """Whether a caller with ``key`` (None: auth off) may ask for class ``asked``: what this stage lets through,
    for a path that must know before the request runs (a deferred request is accepted only if it may run)."""
    if asked not in gw.config.classes:
        return False
    if key is not None and key.classes is not None:
        return asked in key.classes
    tenant = gw.config.tenants.get(key.tenant) if key is not None else None
    if tenant is not None:
        return asked in tenant.classes
    return key is None


def classify_stage(gw: Gateway) -> Stage:
    config = gw.config
    classes = config.classes
    default_class = config.default_class
    request_s = config.timeouts.request_ms / 1000.0 if config.timeouts.request_ms else None
    # Prompts and completions are logged only where both the log and the tenant allow it (redaction by default).
    may_log_prompts = config.access_log.enabled and config.access_log.log_prompts

    async def classify(ctx: RequestContext, call_next: Next) -> web.StreamResponse:
        headers = ctx.request.headers
        asked = headers.get("x-tokenyard-class")
        if asked is not None:
            allowed = allowed_classes(gw, ctx)
            if asked not in classes or (allowed is not None and asked not in allowed):
                raise GatewayError(403, f"traffic class {asked!r} is not allowed for this key", "class_not_allowed",
                                   param="x-tokenyard-class")
            ctx.klass = asked
        else:
            tenant_class = ctx.tenant_config.default_class if ctx.tenant_config is not None else ""
            ctx.klass = tenant_class or default_class
            key_classes = ctx.key.classes if ctx.key is not None else None
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
