"""The native HTTP/1.1 server for the inference paths.

aiohttp's server costs about a third of a millisecond per request on a small machine (its protocol, a task per
connection and one per request, the application's router and middleware layers), more than the whole target
for the gateway's added latency. The three inference paths (``POST /v1/chat/completions``, ``/v1/completions``,
``/v1/embeddings``) are therefore served by an asyncio Protocol that parses the request head with httptools and
runs the stage chain directly; every other request — and any inference request with something unusual about
it (chunked body, ``Expect``, an upgrade, HTTP/1.0, oversized or malformed head, the batch-defer
header) — is handed, with its connection, to aiohttp's own protocol, which serves it exactly as before.

The stage chain sees a genuine ``aiohttp.web.BaseRequest`` and answers with aiohttp responses, so every stage
works unchanged on both servers. See ``head`` (parsing and the hand-off decision), ``protocol`` (the
connection) and ``site`` (the listener and graceful shutdown).
"""
