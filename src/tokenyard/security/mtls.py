"""TLS on the listener, and service identity from a client certificate (mTLS).

The identity of an mTLS peer is the first URI subject-alternative name of its certificate, which is how SPIFFE
names workloads (``spiffe://trust-domain/ns/prod/sa/rag-worker``). Common names are not used: they are not
constrained by name-constraints and were deprecated for identity long ago.
"""

from __future__ import annotations

import ssl
from collections.abc import Mapping
from typing import Any

from tokenyard.security.jwt_auth import AuthError, Identity


def server_ssl_context(
    certfile: str,
    keyfile: str,
    client_ca_file: str | None = None,
    require_client_cert: bool = False,
) -> ssl.SSLContext:
    """A TLS 1.2+ server context; with ``client_ca_file``, client certificates are verified against it."""
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.load_cert_chain(certfile, keyfile)
    if client_ca_file is not None:
        context.load_verify_locations(client_ca_file)
        context.verify_mode = ssl.CERT_REQUIRED if require_client_cert else ssl.CERT_OPTIONAL
    return context


def identity_from_peercert(peercert: Mapping[str, Any] | None) -> Identity:
    """The SPIFFE-style identity of a verified peer certificate (``ssl.SSLObject.getpeercert()``)."""
    if not peercert:
        raise AuthError("no client certificate")
    for kind, value in peercert.get("subjectAltName", ()):
        if kind == "URI" and isinstance(value, str) and value:
            return Identity(kind="mtls", subject=value)
    raise AuthError("client certificate has no URI subject alternative name")
