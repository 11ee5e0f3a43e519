"""Gateway rejections and failures as OpenAI-format error responses with the statuses of CONTRACTS.md."""

from __future__ import annotations

from collections.abc import Mapping

from aiohttp import web

from tokenyard.schema.errors import error_body

# The OpenAI error ``type`` for each status the gateway answers with.
_TYPES: dict[int, str] = {
    400: "invalid_request_error",
    401: "authentication_error",
    403: "permission_error",
    404: "not_found_error",
    409: "invalid_request_error",
    413: "invalid_request_error",
    429: "rate_limit_error",
    499: "client_closed_request",
    500: "server_error",
    502: "upstream_error",
    503: "service_unavailable",
    504: "timeout_error",
}


class GatewayError(Exception):
    """Raised by any stage to answer the client with an error; the error stage turns it into a response.

    ``outcome`` is the ``tokenyard_requests_total`` outcome it counts as (``rejected`` for client errors,
    ``shed``/``rate_limited``/``expired`` for the traffic stages, ``error`` for gateway or upstream failures).
    """

    def __init__(self, status: int, message: str, code: str | None = None, *, outcome: str | None = None,
                 param: str | None = None, headers: Mapping[str, str] | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.code = code
        self.param = param
        self.headers = dict(headers) if headers else {}
        self.outcome = outcome if outcome is not None else ("rejected" if status < 500 else "error")

    def body(self) -> bytes:
        return error_body(self.message, _TYPES.get(self.status, "api_error"), self.code, self.param)

    def response(self) -> web.Response:
        return web.Response(status=self.status, body=self.body(), content_type="application/json",
                            headers=self.headers)


def error_response(status: int, message: str, code: str | None = None) -> web.Response:
    """An OpenAI-format error response (for routes outside the stage chain, such as admin)."""
    return GatewayError(status, message, code).response()
