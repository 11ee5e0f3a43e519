"""A gateway that fails to start closes everything it opened: no "Unclosed client session" afterwards."""

from __future__ import annotations

import gc
import socket
import ssl
import warnings
from pathlib import Path

import pytest

from tokenyard.config import GatewayConfig, parse_config
from tokenyard.gateway.app import start_gateway

MODELS = {"chat": {"endpoints": [{"url": "http://127.0.0.1:9/v1"}]}}


def _config(**sections: object) -> GatewayConfig:
    document: dict[str, object] = {"listen": {"host": "127.0.0.1", "port": 0}, "models": MODELS,
                                   "routing": {"health": {"enabled": False}}}
    document.update(sections)
    return parse_config(document, env={})


async def _unclosed_after_failure(config: GatewayConfig, error: type[BaseException]) -> list[str]:
    """Start ``config`` (which must fail with ``error``) and return the leak warnings that follow."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        with pytest.raises(error) as failure:
            await start_gateway(config)
        del failure  # its traceback holds the frames (and so the gateway) alive
        gc.collect()
    return [str(w.message) for w in caught if "Unclosed" in str(w.message)]


async def test_a_certificate_that_does_not_load(tmp_path: Path) -> None:
    bad = tmp_path / "bad.pem"
    bad.write_text("not a certificate\n")
    config = _config(listen={"host": "127.0.0.1", "port": 0,
                             "tls": {"cert_file": str(bad), "key_file": str(bad)}})
    assert await _unclosed_after_failure(config, ssl.SSLError) == []


async def test_an_admin_port_in_use() -> None:
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        port = holder.getsockname()[1]
        config = _config(admin={"listen": {"host": "127.0.0.1", "port": port}, "key": "k" * 32})
        assert await _unclosed_after_failure(config, OSError) == []
