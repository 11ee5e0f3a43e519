"""The base of every config section: frozen, keyword-only, and unknown keys rejected."""

from __future__ import annotations

from typing import Annotated

import msgspec


class Section(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """A config section. Subclasses are small frozen value objects with named defaults."""


# Reusable constrained scalar types; msgspec checks them while converting.
PositiveInt = Annotated[int, msgspec.Meta(ge=1)]
NonNegativeInt = Annotated[int, msgspec.Meta(ge=0)]
Port = Annotated[int, msgspec.Meta(ge=0, le=65535)]
Name = Annotated[str, msgspec.Meta(min_length=1, max_length=200)]
Ratio = Annotated[float, msgspec.Meta(ge=0.0, le=1.0)]
