"""Prompt and embedding inputs: a string, a list of strings, a list of token ids, or a list of token-id lists."""

from __future__ import annotations

from tokenyard.schema import estimate
from tokenyard.schema.checks import number_text
from tokenyard.schema.errors import RequestInvalid

# msgspec allows one array type per union, so mixed lists are decoded loosely and checked here.
PromptInput = str | list[str | int | list[int]]

MAX_TOKEN_ID = 2**32 - 1


class PromptSummary:
    """Text, token estimate and item count of a prompt/input, computed in one pass."""

    __slots__ = ("count", "exact", "text", "tokens")

    def __init__(self, text: str, tokens: int, count: int, exact: bool = False) -> None:
        self.text = text
        self.tokens = tokens
        self.count = count
        self.exact = exact


def summarise_prompt(value: PromptInput, param: str, max_chars: int, allow_empty_string: bool) -> PromptSummary:
    """Check that ``value`` is one of the four accepted shapes and sizes; summarise it.

    ``max_chars`` bounds each string (``limits.max_message_chars``); token-id lists count exactly.
    """
    if isinstance(value, str):
        _check_string(value, param, max_chars, allow_empty_string)
        return PromptSummary(value, estimate.text_tokens(len(value)), 1)
    if not value:
        raise RequestInvalid(400, f"{param}: must not be an empty list", param)
    first = value[0]
    if isinstance(first, str):
        tokens = 0
        for index, item in enumerate(value):
            if not isinstance(item, str):
                raise _mixed(param, index, "strings")
            size = len(item)
            if size > max_chars or (not size and not allow_empty_string):
                _check_string(item, f"{param}[{index}]", max_chars, allow_empty_string)
            tokens += estimate.text_tokens(size)
        texts: list[str] = value  # type: ignore[assignment]  # checked above: all strings
        return PromptSummary("\n".join(texts), tokens, len(texts))
    if isinstance(first, int):
        ids: list[int] = []
        for index, item in enumerate(value):
            if not isinstance(item, int):
                raise _mixed(param, index, "token ids")
            ids.append(item)
        _check_ids(ids, param)
        return PromptSummary(" ".join(map(str, ids)), len(ids), 1, exact=True)
    lists: list[list[int]] = []
    for index, item in enumerate(value):
        if not isinstance(item, list):
            raise _mixed(param, index, "token-id lists")
        if not item:
            raise RequestInvalid(400, f"{param}[{index}]: must not be an empty list", f"{param}[{index}]")
        _check_ids(item, f"{param}[{index}]")
        lists.append(item)
    text = "\n".join(" ".join(map(str, ids)) for ids in lists)
    return PromptSummary(text, sum(len(ids) for ids in lists), len(lists), exact=True)


def _check_string(value: str, param: str, max_chars: int, allow_empty: bool) -> None:
    if not value and not allow_empty:
        raise RequestInvalid(400, f"{param}: must not be an empty string", param)
    if len(value) > max_chars:
        raise RequestInvalid(
            400,
            f"{param}: at most {max_chars} characters are allowed, got {len(value)}",
            param,
            "string_above_max_length",
        )


def _check_ids(ids: list[int], param: str) -> None:
    for index, token in enumerate(ids):
        if not 0 <= token <= MAX_TOKEN_ID:
            raise RequestInvalid(
                400,
                f"{param}[{index}]: token ids must be in 0..{MAX_TOKEN_ID}, got {number_text(token)}",
                f"{param}[{index}]",
            )


def _mixed(param: str, index: int, kind: str) -> RequestInvalid:
    where = f"{param}[{index}]"
    return RequestInvalid(400, f"{where}: all items must be {kind}, like the first one", where, "invalid_type")
