"""Bytes -> typed request body, with every failure turned into a ``RequestInvalid`` naming the parameter."""

from __future__ import annotations

import re
from typing import TypeVar

import msgspec

from tokenyard.schema.errors import RequestInvalid
from tokenyard.schema.messages import ROLES
from tokenyard.schema.parts import PART_TYPES, RESPONSE_FORMATS

T = TypeVar("T")

_MESSAGE = re.compile(r"^(?P<text>.*?)(?: - at `(?P<where>[^`]*)`(?: in `(?P<container>[^`]*)`)?)?$", re.S)
_MISSING = re.compile(r"^Object missing required field `(?P<key>.*)`$", re.S)
_TYPE_NAMES = {
    "object": "an object",
    "array": "an array",
    "null": "null",
    "str": "a string",
    "int": "an integer",
    "float": "a number",
    "bool": "a boolean",
}


def decode_body(body: bytes, target: type[T], max_body_bytes: int) -> T:
    """Decode a JSON request body into ``target``; raise ``RequestInvalid`` (400, or 413 when too large)."""
    if len(body) > max_body_bytes:
        raise RequestInvalid(
            413, f"request body is {len(body)} bytes, the limit is {max_body_bytes}", None, "request_too_large"
        )
    if not body or body.isspace():
        raise RequestInvalid(400, "request body is empty: expected a JSON object", None, "invalid_json")
    if not body.isascii():
        # msgspec checks the strings it decodes, not the fields it skips; the raw body is forwarded upstream,
        # so all of it must be valid UTF-8.
        try:
            body.decode("utf-8")
        except UnicodeDecodeError as error:
            raise RequestInvalid(
                400, f"request body is not valid UTF-8 (byte {error.start})", None, "invalid_json"
            ) from None
    try:
        return msgspec.json.decode(body, type=target)
    except msgspec.ValidationError as error:
        raise validation_error(str(error)) from None
    except msgspec.DecodeError as error:
        raise RequestInvalid(
            400, f"request body is not valid JSON: {_lower(str(error))}", None, "invalid_json"
        ) from None
    except RecursionError:
        raise RequestInvalid(400, "request body is nested too deeply", None, "invalid_json") from None


def validation_error(message: str) -> RequestInvalid:
    """Turn msgspec's ``Expected `float | null`, got `str` - at `$.temperature``` into a ``RequestInvalid``."""
    match = _MESSAGE.match(message)
    assert match is not None  # the pattern matches any string
    text, where = match.group("text"), match.group("container") or match.group("where")
    param = _param(where) if where else None
    missing = _MISSING.match(text)
    if missing:
        key = missing.group("key")
        param = f"{param}.{key}" if param else key
        return RequestInvalid(400, f"{param}: required parameter missing", param, "missing_required_parameter")
    if param is None and text.startswith("Expected"):
        return RequestInvalid(400, f"request body: {_speak(text)}", None, "invalid_type")
    code = "invalid_type" if text.startswith("Expected") else "invalid_value"
    if text.startswith("Invalid value") and param is not None:
        choices = _choices_for(param)
        if choices:
            text += f" (expected one of {', '.join(choices)})"
    return RequestInvalid(400, f"{param or 'request body'}: {_speak(text)}", param, code)


def _choices_for(param: str) -> tuple[str, ...]:
    if param.endswith(".role"):
        return ROLES
    if param == "response_format.type":
        return RESPONSE_FORMATS
    if param.endswith(".type") and ".content[" in param:
        return PART_TYPES
    return ()


def _param(where: str) -> str | None:
    suffix = where[1:] if where.startswith("$") else where
    suffix = suffix.lstrip(".")
    return suffix or None


def _speak(text: str) -> str:
    """``Expected `float | null`, got `str``` -> ``expected a number or null, got a string``."""

    def rename(match: re.Match[str]) -> str:
        return " or ".join(_TYPE_NAMES.get(part.strip(), part.strip()) for part in match.group(1).split("|"))

    return _lower(re.sub(r"`([^`]*)`", rename, text))


def _lower(text: str) -> str:
    """The first letter in lower case, to continue a sentence; an acronym (``JSON is malformed``) is kept."""
    if text[1:2].isupper():
        return text
    return text[:1].lower() + text[1:]
