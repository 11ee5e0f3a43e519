"""``x-request-id`` on every answer of the gateway (CONTRACTS.md: "kept and echoed; generated when absent").

The inference paths set it in the stage chain (``stages/observe``), which also keeps ids unique among requests in
flight. Every other answer gets it here: ``install_request_ids`` hooks aiohttp's response preparation, so
``/v1/models``, health, metrics, admin, the dashboard, and the errors answered by middlewares or aiohttp itself
(401, 404, 405, 431 ...) all carry one; a response that already has the header keeps it. The native server's own
refusals (``native/protocol``) use ``request_id_for`` too. The inference hot path on the native server never
passes through the hook.
"""

from __future__ import annotations

import secrets
from collections.abc import Mapping

from aiohttp import web

REQUEST_ID_HEADER = "x-request-id"
MAX_REQUEST_ID = 128


def acceptable_request_id(value: str) -> bool:
    """A client's id is kept when it is 1-128 printable ASCII characters (safe to echo in a header and a log)."""
    return 0 < len(value) <= MAX_REQUEST_ID and value.isascii() and value.isprintable()


def generated_request_id() -> str:
    """A gateway-generated id: ``req-`` and 24 random hex digits (96 bits), so nobody can guess, pre-claim
    or probe another client's id, and ids are unique across replicas in practice."""
    return "req-" + secrets.token_hex(12)


def request_id_for(headers: Mapping[str, str]) -> str:
    """The client's ``x-request-id`` when acceptable, else a generated one."""
    given = headers.get(REQUEST_ID_HEADER)
    return given if given is not None and acceptable_request_id(given) else generated_request_id()


async def _add_request_id(request: web.Request, response: web.StreamResponse) -> None:
    if REQUEST_ID_HEADER not in response.headers:
        response.headers[REQUEST_ID_HEADER] = request_id_for(request.headers)


def install_request_ids(app: web.Application) -> None:
    """Give every response the app prepares an ``x-request-id`` (see the module docstring)."""
    app.on_response_prepare.append(_add_request_id)
