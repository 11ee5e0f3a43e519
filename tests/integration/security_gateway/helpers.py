"""Shared pieces of the gateway security tests: configs over a simulator, JWT minting, requests."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import aiohttp
import jwt
from cryptography.hazmat.primitives.asymmetric import rsa
from jwt.algorithms import RSAAlgorithm

from tokenyard.config import GatewayConfig, parse_config
from tokenyard.sim.testing import RunningSim

ISSUER, AUDIENCE = "https://issuer.test", "tokenyard"


def models_for(sim: RunningSim, *names: str, **extra: Any) -> dict[str, Any]:
    """Named models, each a pool of the one simulator (renamed to the simulator's model)."""
    return {name: {"endpoints": [{"url": sim.base_url + "/v1"}], "upstream_model": sim.model, **extra}
            for name in names}


def gateway_config(sim: RunningSim, tmp: Path, **sections: Any) -> GatewayConfig:
    document: dict[str, Any] = {
        "listen": {"host": "127.0.0.1", "port": 0},
        "models": models_for(sim, "model-a", "model-b"),
        "access_log": {"enabled": True, "path": str(tmp / "access.log")},
        "audit_log": {"path": str(tmp / "audit.log")},
        "admission": {"scrape": False},
    }
    document.update(sections)
    return parse_config(document, env={})


def chat(model: str, text: str = "hello", max_tokens: int = 4) -> dict[str, Any]:
    return {"model": model, "messages": [{"role": "user", "content": text}], "max_tokens": max_tokens}


async def post(session: aiohttp.ClientSession, url: str, body: Any, token: str | None = None,
               path: str = "/v1/chat/completions", **kwargs: Any) -> tuple[int, dict[str, Any]]:
    headers = {"Authorization": f"Bearer {token}"} if token is not None else {}
    async with session.post(url + path, json=body, headers=headers, **kwargs) as resp:
        payload = await resp.json(content_type=None)
        return resp.status, payload


class Issuer:
    """An RSA signing key, its JWKS file, and tokens for the gateway's issuer and audience."""

    def __init__(self, directory: Path) -> None:
        self.key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        jwk = json.loads(RSAAlgorithm.to_jwk(self.key.public_key()))
        jwk.update({"kid": "k1", "alg": "RS256", "use": "sig"})
        self.jwks_file = directory / "jwks.json"
        self.jwks_file.write_text(json.dumps({"keys": [jwk]}))

    def section(self) -> dict[str, Any]:
        return {"issuer": ISSUER, "audience": AUDIENCE, "jwks_file": str(self.jwks_file), "leeway_ms": 1000}

    def token(self, subject: str, **claims: Any) -> str:
        now = int(time.time())
        body = {"iss": ISSUER, "aud": AUDIENCE, "sub": subject, "exp": now + 300, "iat": now, **claims}
        return jwt.encode(body, self.key, algorithm="RS256", headers={"kid": "k1"})
