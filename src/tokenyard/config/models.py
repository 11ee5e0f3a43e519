"""Model pools: the model name clients send -> endpoints, picker, fallback chain."""

from __future__ import annotations

from typing import Literal

from tokenyard.config.base import Name, NonNegativeInt, PositiveInt, Section

# The model name that stands for "any model name": the pool receives every model not configured by name,
# and the name is passed through to the upstream unchanged (what `tokenyard serve --upstream URL` builds).
PASS_THROUGH_MODEL = "*"

PICKERS: tuple[str, ...] = (
    "round-robin",
    "weighted",
    "least-load",
    "p2c",
    "prefix-affinity",
    "session",
    "locality",
)
PickerName = Literal["round-robin", "weighted", "least-load", "p2c", "prefix-affinity", "session", "locality"]

MODEL_KINDS: tuple[str, ...] = ("llm", "chat", "completion", "embedding", "retrieval", "tool")
ModelKind = Literal["llm", "chat", "completion", "embedding", "retrieval", "tool"]


class EndpointConfig(Section, frozen=True, kw_only=True):
    """One upstream server: its base URL (up to and including ``/v1``), weight, name and zone.

    ``name`` defaults to ``host:port`` of the URL (made unique within the pool); ``weight`` 0 keeps the endpoint
    configured but sends it no new traffic.
    """

    url: Name
    weight: NonNegativeInt = 1
    name: str = ""
    zone: str | None = None


class ModelConfig(Section, frozen=True, kw_only=True):
    """A pool of endpoints serving one model name.

    ``upstream_model`` renames the model on the way upstream (None: the client's name is sent unchanged).
    ``fallback`` lists other model names to fail over to, in order. ``kind`` says what the pool serves: ``llm``
    (chat and completions), or only ``chat``, ``completion``, ``embedding``, or a ``retrieval``/``tool`` service.
    """

    endpoints: tuple[EndpointConfig, ...]
    upstream_model: Name | None = None
    picker: PickerName = "least-load"
    fallback: tuple[str, ...] = ()
    max_context_tokens: PositiveInt | None = None
    kind: ModelKind = "llm"
