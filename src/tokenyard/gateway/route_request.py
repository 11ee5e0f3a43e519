"""What the router learns about a request from the stages: features for route rules and pickers, class,
deadline, streaming and the estimated tokens it will hold on an endpoint."""

from __future__ import annotations

from typing import TYPE_CHECKING

from tokenyard.gateway.context import RequestContext
from tokenyard.policy.pickers.endpoint import RequestFeatures
from tokenyard.traffic.router import RouteRequest

if TYPE_CHECKING:
    from tokenyard.config import GatewayConfig

DEFAULT_OUTPUT_TOKENS = 256  # assumed answer length when the request sets no max_tokens (load accounting only)


def route_request(ctx: RequestContext, config: GatewayConfig) -> RouteRequest:
    """The ``RouteRequest`` of a validated, classified request."""
    parsed = ctx.parsed
    headers = ctx.request.headers  # case-insensitive already: no per-request copy with lower-case names
    if parsed is None:
        return RouteRequest(features=RequestFeatures(model=ctx.model, tenant=ctx.tenant or None,
                                                     traffic_class=ctx.klass or None, headers=headers),
                            klass=ctx.klass, deadline=ctx.deadline, queue_s=ctx.queue_s, trace=ctx.trace)
    features = RequestFeatures(
        model=parsed.model, prompt_prefix=parsed.prompt_text, prompt_tokens=parsed.prompt_tokens_estimate,
        max_tokens=parsed.max_tokens, has_images=parsed.has_images, has_tools=parsed.tools_count > 0,
        tenant=ctx.tenant or None, traffic_class=ctx.klass or None,
        zone=headers.get(config.routing.zone_header), headers=headers,
    )
    tokens = parsed.prompt_tokens_estimate + (parsed.max_tokens or DEFAULT_OUTPUT_TOKENS) * parsed.n
    return RouteRequest(features=features, klass=ctx.klass, deadline=ctx.deadline, stream=parsed.stream,
                        tokens=tokens, queue_s=ctx.queue_s, trace=ctx.trace)
