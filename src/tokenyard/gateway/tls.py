"""TLS on the gateway's listeners, and the admin API's own listener.

``listen.tls`` turns on TLS (``cert_file``/``key_file``); ``client_ca_file`` adds mTLS: client certificates are
verified against that CA, and their URI SAN becomes the caller's identity (``security.mtls``). With
``require_client_cert`` (the default) a client without a certificate fails the handshake; without it such a
client gets in but must present an API key or JWT.
"""

from __future__ import annotations

import ssl

from aiohttp import web

from tokenyard.config import GatewayConfig
from tokenyard.config.server import ListenConfig
from tokenyard.security.mtls import server_ssl_context


def listener_ssl_context(listen: ListenConfig) -> ssl.SSLContext | None:
    """The server TLS context of a listener, or None for plain HTTP."""
    tls = listen.tls
    if tls is None:
        return None
    return server_ssl_context(tls.cert_file, tls.key_file, tls.client_ca_file, tls.require_client_cert)


def listener_scheme(listen: ListenConfig) -> str:
    return "https" if listen.tls is not None else "http"


async def start_admin_listener(runner: web.AppRunner, config: GatewayConfig) -> tuple[str, int] | None:
    """Start ``admin.listen`` on the same app (the HTTP guard keeps admin routes there and only there).

    Returns the admin base URL and port, or None when the admin API shares the main listener.
    """
    admin = config.admin
    if admin is None or admin.listen is None:
        return None
    listen = admin.listen
    site = web.TCPSite(runner, listen.host, listen.port, ssl_context=listener_ssl_context(listen))
    await site.start()
    port = int(runner.addresses[-1][1])
    return f"{listener_scheme(listen)}://{listen.host}:{port}", port
