"""The cache key of a request: which requests are cacheable, and what makes two of them the same.

Only deterministic requests are cached: ``temperature`` 0 or a ``seed`` (``ParsedRequest.deterministic``), or an
explicit opt-in with ``x-tokenyard-cache: on``; ``x-tokenyard-cache: off`` always bypasses. The key hashes the
request body after normalisation: JSON re-encoded with sorted keys, the model name the client asked for, and
without the fields that do not change the generated text (``stream``, ``user``, ...; ``stream_options`` only
for a whole answer: it changes a stream's events).
Streamed and whole answers are cached separately (they are replayed in their own wire format). Every key starts
with the tenant's namespace, so one tenant never reads another's entries.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from typing import Any

import msgspec

CACHE_HEADER = "x-tokenyard-cache"
USE = "use"
BYPASS = "bypass"
# Body fields that do not change what the model generates.
IGNORED_FIELDS = frozenset(("stream", "stream_options", "user", "metadata", "store", "service_tier"))
ANONYMOUS = "_"


def cache_decision(headers: Mapping[str, str], deterministic: bool) -> str:
    """``USE`` when the request may be answered from (and stored in) the cache, else ``BYPASS``."""
    opt = headers.get(CACHE_HEADER, "").strip().lower()
    if opt == "off":
        return BYPASS
    if opt == "on" or deterministic:
        return USE
    return BYPASS


def normalized_body(body: bytes, model: str) -> bytes:
    """The canonical bytes of a JSON request body: sorted keys, ``model`` as given, output-neutral fields gone."""
    decoded: Any = msgspec.json.decode(body)
    if not isinstance(decoded, dict):
        raise ValueError("a request body must be a JSON object")
    kept = {k: v for k, v in decoded.items() if k not in IGNORED_FIELDS}
    if decoded.get("stream") is True and decoded.get("stream_options") is not None:
        # A stream's options change its events (include_usage adds the usage chunk): part of a stream's key.
        kept["stream_options"] = decoded["stream_options"]
    kept["model"] = model
    return msgspec.json.encode(kept, order="sorted")


def namespace(tenant: str) -> str:
    """The key prefix of one tenant (requests without a tenant share the anonymous namespace)."""
    return tenant or ANONYMOUS


def cache_key(tenant: str, operation: str, model: str, body: bytes, stream: bool) -> str:
    """``<tenant>|<operation>|<s or w>|<sha256 of the normalised body>``."""
    digest = hashlib.sha256(normalized_body(body, model)).hexdigest()
    return f"{namespace(tenant)}|{operation}|{'s' if stream else 'w'}|{digest}"
