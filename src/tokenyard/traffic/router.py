"""The terminal router: pick an endpoint of the request's pool and open the upstream request.

Retries live here and only here. Today's rule (``Router.may_retry``): a request whose upstream failed before
answering (connection refused or reset, or a 5xx head) is sent once more to another endpoint of the pool; since a
head has not been relayed yet, this is "before the first byte" for streams too. The routing engineer replaces
``may_retry`` and ``Pool.pick`` with retry budgets, backoff, outlier ejection and failover without touching the
relay or the stages.
"""

from __future__ import annotations

import asyncio

import aiohttp

from tokenyard.upstream.client import UpstreamClient
from tokenyard.upstream.pools import Endpoint, Pool

RETRYABLE_STATUSES = frozenset((500, 502, 503, 504))


class NoUpstream(Exception):
    """No endpoint of the pool could take the request (``status`` 503 for the client, or the upstream's)."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class Attempt:
    """An upstream request whose response head has arrived. The caller owns ``response`` and must call
    ``finish()`` exactly once (it releases the endpoint's in-flight slot)."""

    __slots__ = ("endpoint", "response", "tries")

    def __init__(self, endpoint: Endpoint, response: aiohttp.ClientResponse, tries: int) -> None:
        self.endpoint = endpoint
        self.response = response
        self.tries = tries

    def finish(self) -> None:
        self.endpoint.release()


class Router:
    """Opens upstream requests for a pool; see the module docstring for the retry rule."""

    def __init__(self, client: UpstreamClient, max_attempts: int = 2) -> None:
        self.client = client
        self.max_attempts = max_attempts

    def may_retry(self, tries: int) -> bool:
        """The retry seam: True when another attempt is allowed after ``tries`` failed ones."""
        return tries < self.max_attempts

    async def open(self, pool: Pool, path: str, body: bytes, headers: dict[str, str]) -> Attempt:
        """Send to an endpoint of ``pool``; on a failure before answering, retry on another while allowed.

        Returns the attempt whose head arrived (a non-retryable status, including 4xx, is returned as is; the
        last 5xx is returned when no retry is left). Raises ``NoUpstream`` when no endpoint answered at all.
        Cancellation (client gone, admin, deadline) closes the upstream connection before propagating.
        """
        tried: list[Endpoint] = []
        last_error = "no healthy upstream for this model"
        while True:
            endpoint = pool.pick(tried)
            if endpoint is None:
                raise NoUpstream(last_error)
            tried.append(endpoint)
            endpoint.acquire()
            try:
                response = await self.client.post(endpoint.url + path, body, headers)
            except asyncio.CancelledError:
                endpoint.release()
                raise
            except (TimeoutError, aiohttp.ClientConnectionError, OSError) as exc:
                endpoint.release()
                endpoint.mark(False)
                last_error = f"upstream {endpoint.name} failed: {type(exc).__name__}"
                if not self.may_retry(len(tried)):
                    raise NoUpstream(last_error) from exc
                continue
            endpoint.mark(True)
            if response.status in RETRYABLE_STATUSES and self.may_retry(len(tried)) and pool.pick(tried):
                response.close()
                endpoint.release()
                last_error = f"upstream {endpoint.name} answered {response.status}"
                continue
            return Attempt(endpoint, response, len(tried))
