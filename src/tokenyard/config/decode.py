"""Typed conversion of a parsed document into config Structs, with every problem reported by key path.

msgspec stops at the first error of one conversion, so each top-level section, and each entry of the named
sections (``models``, ``classes``, ``tenants``) and lists (``keys``), is converted on its own: one bad model does
not hide a bad tenant.
"""

from __future__ import annotations

import re
import typing
from typing import Any, TypeVar

import msgspec

from tokenyard.config.errors import join_path
from tokenyard.config.gateway import GatewayConfig
from tokenyard.config.models import MODEL_KINDS, PICKERS

T = TypeVar("T")


def _section_types() -> tuple[type[msgspec.Struct], ...]:
    """Every Struct type reachable from ``GatewayConfig`` (for documentation checks)."""
    found: list[type[msgspec.Struct]] = []

    def visit(annotation: Any) -> None:
        if isinstance(annotation, type) and issubclass(annotation, msgspec.Struct):
            if annotation not in found:
                found.append(annotation)
                for field in msgspec.structs.fields(annotation):
                    visit(field.type)
            return
        for argument in typing.get_args(annotation):
            visit(argument)

    visit(GatewayConfig)
    return tuple(found)


SECTION_TYPES = _section_types()
_CHOICES: dict[str, tuple[str, ...]] = {"picker": PICKERS, "kind": MODEL_KINDS}
_MESSAGE = re.compile(r"^(?P<text>.*?)(?: - at `(?P<where>[^`]*)`(?: in `(?P<container>[^`]*)`)?)?$", re.S)
_UNKNOWN = re.compile(r"^Object contains unknown field `(?P<key>.*)`$", re.S)
_MISSING = re.compile(r"^Object missing required field `(?P<key>.*)`$", re.S)
_TYPE_NAMES = {"object": "mapping", "array": "list", "null": "null", "str": "string", "int": "integer"}


def decode_sections(document: dict[str, Any], issues: list[tuple[str, str]]) -> dict[str, Any]:
    """Convert each known top-level key of ``document``; returns field name -> typed value.

    The sections are the fields of ``GatewayConfig``, so adding a section is adding a field there. Sections
    typed ``dict[str, X]`` or ``tuple[X, ...]`` are converted entry by entry. A section whose value is null
    counts as absent. Unknown top-level keys and conversion problems go to ``issues``; sections (or entries)
    that had problems are left out of the result.
    """
    fields = {field.encode_name: field for field in msgspec.structs.fields(GatewayConfig)}
    for key in document:
        if key not in fields:
            issues.append((join_path("", str(key)), "unknown key"))
    result: dict[str, Any] = {}
    for name, field in fields.items():
        value = document.get(name)
        if value is None:
            continue
        origin, args = typing.get_origin(field.type), typing.get_args(field.type)
        if origin is dict and args and args[0] is str:
            result[field.name] = _convert_named(value, args[1], name, issues)
        elif origin is tuple and len(args) == 2 and args[1] is Ellipsis:
            result[field.name] = _convert_list(value, args[0], name, issues)
        else:
            converted = convert(value, field.type, name, issues)
            if converted is not None:
                result[field.name] = converted
    return result


def convert(value: Any, target: type[T], path: str, issues: list[tuple[str, str]]) -> T | None:
    """``msgspec.convert`` (lax: ``"8080"`` becomes 8080 for an int) with the error turned into an issue."""
    try:
        return msgspec.convert(value, target, strict=False)
    except msgspec.ValidationError as error:
        issues.append(translate_error(str(error), path))
        return None


def _convert_named(value: Any, entry_type: Any, path: str, issues: list[tuple[str, str]]) -> dict[str, Any]:
    if not isinstance(value, dict):
        issues.append((path, f"expected a mapping of name -> settings, got {_kind_of(value)}"))
        return {}
    entries: dict[str, Any] = {}
    for name, entry in value.items():
        entry_path = join_path(path, str(name))
        if not isinstance(name, str) or not name:
            issues.append((entry_path, "names must be non-empty strings"))
            continue
        converted = convert({} if entry is None else entry, entry_type, entry_path, issues)
        if converted is not None:
            entries[name] = converted
    return entries


def _convert_list(value: Any, entry_type: Any, path: str, issues: list[tuple[str, str]]) -> tuple[Any, ...]:
    if not isinstance(value, (list, tuple)):
        issues.append((path, f"expected a list, got {_kind_of(value)}"))
        return ()
    entries = [convert(entry, entry_type, join_path(path, i), issues) for i, entry in enumerate(value)]
    return tuple(entry for entry in entries if entry is not None)


def translate_error(message: str, prefix: str) -> tuple[str, str]:
    """Turn msgspec's ``Expected `int`, got `str` - at `$.a[1].b``` into ``("PREFIX.a[1].b", "expected ...")``."""
    match = _MESSAGE.match(message)
    assert match is not None  # the pattern matches any string
    text, where, container = match.group("text"), match.group("where"), match.group("container")
    path = prefix
    if container is not None:  # a bad mapping key: "... - at `key` in `$.d`"
        path = _append_msgspec_path(prefix, container)
        return path, _describe(text) + " (in a key)"
    if where is not None:
        path = _append_msgspec_path(prefix, where)
    unknown = _UNKNOWN.match(text)
    if unknown:
        return join_path(path, unknown.group("key")), "unknown key"
    missing = _MISSING.match(text)
    if missing:
        return join_path(path, missing.group("key")), "required key missing"
    description = _describe(text)
    last_key = re.split(r"[.\[]", path)[-1]
    if text.startswith("Invalid enum value") and last_key in _CHOICES:
        description += " (choose one of: " + ", ".join(_CHOICES[last_key]) + ")"
    return path, description


def _append_msgspec_path(prefix: str, where: str) -> str:
    suffix = where[1:] if where.startswith("$") else where
    if suffix.startswith("."):
        return f"{prefix}{suffix}" if prefix else suffix[1:]
    return f"{prefix}{suffix}"


def _describe(text: str) -> str:
    """msgspec's message, lower-cased and with JSON type names spoken as YAML users know them."""

    def rename(match: re.Match[str]) -> str:
        return " or ".join(_TYPE_NAMES.get(part.strip(), part.strip()) for part in match.group(1).split("|"))

    described = re.sub(r"`([^`]*)`", rename, text)
    return described[:1].lower() + described[1:]


def _kind_of(value: Any) -> str:
    if isinstance(value, dict):
        return "a mapping"
    if isinstance(value, list):
        return "a list"
    if value is None:
        return "null"
    return type(value).__name__
