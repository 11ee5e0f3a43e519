"""The stage type and the chain builder.

A stage is ``async def stage(ctx, call_next) -> web.StreamResponse``: it may look at or fill ``ctx``, answer by
itself (return a response or raise ``GatewayError``), or ``return await call_next(ctx)``. The chain is composed
once at start-up; the terminal handler (``forward``) takes only ``ctx``.

To add a stage (rate limit, admission, degrade, cache ...), write a factory ``def my_stage(gw) -> Stage`` in
``gateway/stages/`` and add ONE line to the list in ``build_stages``, at its place in the order.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from typing import TYPE_CHECKING

from aiohttp import web

from tokenyard.gateway.context import RequestContext

if TYPE_CHECKING:
    from tokenyard.gateway.services import Gateway

Next = Callable[[RequestContext], Awaitable[web.StreamResponse]]
Stage = Callable[[RequestContext, Next], Awaitable[web.StreamResponse]]


async def pass_through(ctx: RequestContext, call_next: Next) -> web.StreamResponse:
    """The stage of a feature that is off: ``compose`` leaves it out of the chain altogether."""
    return await call_next(ctx)


def compose(stages: Sequence[Stage], terminal: Next) -> Next:
    """``stages[0]`` outermost, ``terminal`` innermost; one closure per stage, built once. ``pass_through``
    stages are left out, so a feature that is off costs nothing per request."""
    handler = terminal
    for stage in reversed(stages):
        if stage is not pass_through:
            handler = _bind(stage, handler)
    return handler


def _bind(stage: Stage, call_next: Next) -> Next:
    # A plain function returning the stage's coroutine: one coroutine per stage per request, not two.
    def handler(ctx: RequestContext) -> Awaitable[web.StreamResponse]:
        return stage(ctx, call_next)

    return handler


def build_stages(gw: Gateway) -> list[Stage]:
    """The stage order of ARCHITECTURE.md; error handling, request id and access log are outermost."""
    from tokenyard.gateway.stages.admission import admission_stage
    from tokenyard.gateway.stages.auth import auth_stage
    from tokenyard.gateway.stages.cache import cache_stage
    from tokenyard.gateway.stages.caps import cap_stage
    from tokenyard.gateway.stages.classify import classify_stage
    from tokenyard.gateway.stages.degrade import degrade_stage
    from tokenyard.gateway.stages.distributed import global_limit_stage
    from tokenyard.gateway.stages.model import model_stage
    from tokenyard.gateway.stages.observe import observe_stage
    from tokenyard.gateway.stages.policy import policy_stage
    from tokenyard.gateway.stages.ratelimit import ratelimit_stage
    from tokenyard.gateway.stages.validate import validate_stage

    return [
        observe_stage(gw),  # request id, error mapping, metrics, access log
        auth_stage(gw),
        validate_stage(gw),
        classify_stage(gw),
        cap_stage(gw),  # the class's max_tokens_cap, before anything counts the request's tokens
        model_stage(gw),
        policy_stage(gw),  # east-west policy for service identities; token budgets (denial of wallet)
        ratelimit_stage(gw),  # per key / tenant / class; x-ratelimit-* headers
        global_limit_stage(gw),  # the same limits across replicas (state: redis://); passes with memory
        cache_stage(gw),  # exact / semantic cache, coalescing, embedding micro-batching
        degrade_stage(gw),  # the degradation ladder's actions on the body
        admission_stage(gw),  # class queues, fair share, adaptive limits, deadlines
        # The backend budget shared by all replicas is taken per endpoint by the router (forward).
    ]


def build_chain(gw: Gateway) -> Next:
    """The whole request path of one gateway: its stages around the terminal ``forward``."""
    from tokenyard.gateway.stages.forward import forward_terminal

    return compose(build_stages(gw), forward_terminal(gw))
