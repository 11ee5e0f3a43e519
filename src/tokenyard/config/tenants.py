"""Tenants (who pays, and their limits) and API keys (who is calling)."""

from __future__ import annotations

import msgspec

from tokenyard.config.base import PositiveInt, Section


class TenantConfig(Section, frozen=True, kw_only=True):
    """A tenant: its default class, the classes it may ask for, and its limits (None: unlimited).

    ``rpm``/``tpm`` are requests and tokens per minute, ``max_concurrency`` concurrent requests, ``weight`` the
    tenant's share in weighted fair queueing inside a class. After loading, ``default_class`` is always set and
    ``classes`` always contains it.
    """

    default_class: str = msgspec.field(default="", name="class")
    classes: tuple[str, ...] = ()
    rpm: PositiveInt | None = None
    tpm: PositiveInt | None = None
    max_concurrency: PositiveInt | None = None
    tokens_per_day: PositiveInt | None = None
    tokens_per_month: PositiveInt | None = None
    weight: PositiveInt = 1
    log_prompts: bool = False


class KeyConfig(Section, frozen=True, kw_only=True):
    """An API key: plaintext ``key`` (development, usually from ``${ENV}``) or ``key_sha256``; exactly one.

    After loading, ``key`` is None and ``key_sha256`` is the lower-case hex digest; ``name`` is set (default
    ``TENANT-N``); ``models`` None means every model; ``classes`` None means the tenant's classes; ``routes``
    (glob patterns over request paths, such as ``/v1/tools/*``) None means every ``/v1`` route.
    """

    key: str | None = None
    key_sha256: str | None = None
    tenant: str
    name: str = ""
    models: tuple[str, ...] | None = None
    classes: tuple[str, ...] | None = None
    routes: tuple[str, ...] | None = None
    rpm: PositiveInt | None = None
    tpm: PositiveInt | None = None
    max_concurrency: PositiveInt | None = None
    tokens_per_day: PositiveInt | None = None
    tokens_per_month: PositiveInt | None = None
