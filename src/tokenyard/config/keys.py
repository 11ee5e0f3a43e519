"""API keys at rest and at the door: SHA-256 digests, looked up without plaintext-dependent timing."""

from __future__ import annotations

import hashlib
import hmac
import re
from collections.abc import Iterable
from typing import Generic, TypeVar

SHA256_HEX = re.compile(r"[0-9a-f]{64}")

T = TypeVar("T")


def hash_key(plaintext: str) -> str:
    """The lower-case hex SHA-256 of a key's UTF-8 bytes: the form keys are configured and stored in."""
    return hashlib.sha256(plaintext.encode("utf-8", "surrogatepass")).hexdigest()


def is_sha256_hex(text: str) -> bool:
    """True for exactly 64 lower- or upper-case hex digits."""
    return SHA256_HEX.fullmatch(text.lower()) is not None


class KeyLookup(Generic[T]):
    """Finds the configured entry (a ``KeyConfig``, a tenant, ...) for a presented plaintext key.

    The presented key is hashed first, so the dictionary lookup depends only on the digest, never on how much of
    the plaintext matched; the final comparison of digests uses ``hmac.compare_digest``.
    """

    def __init__(self, entries: Iterable[tuple[str, T]]) -> None:
        """``entries``: (hex sha256 digest, value) pairs; digests are matched case-insensitively."""
        self._by_digest: dict[bytes, tuple[bytes, T]] = {}
        for digest_hex, value in entries:
            digest = bytes.fromhex(digest_hex)
            self._by_digest[digest] = (digest, value)

    def __len__(self) -> int:
        return len(self._by_digest)

    def find(self, presented: str) -> T | None:
        """The entry for ``presented``, or None when it matches no configured key."""
        digest = hashlib.sha256(presented.encode("utf-8", "surrogatepass")).digest()
        found = self._by_digest.get(digest)
        # The dict matched on the digest; the stored digest is confirmed in constant time as defence in depth.
        if found is None or not hmac.compare_digest(found[0], digest):
            return None
        return found[1]
