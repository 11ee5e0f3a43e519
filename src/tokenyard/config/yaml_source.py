"""Reading a config file: safe YAML, duplicate keys rejected, syntax errors with line and column."""

from __future__ import annotations

import re
import secrets
from pathlib import Path
from typing import Any

import yaml

from tokenyard.config.errors import ConfigError

try:  # the C loader is much faster; the pure-Python one behaves the same
    _BaseLoader: type[yaml.SafeLoader] = yaml.CSafeLoader  # type: ignore[assignment]
except AttributeError:  # pragma: no cover - libyaml missing
    _BaseLoader = yaml.SafeLoader


# A ${...} reference or an escaped $${...} as written in the file, up to the closing brace on the same line (the
# brace too: left in the text, it would close a flow mapping), or a lone $${ escape with no closing brace.
_REFERENCE_TEXT = re.compile(r"\$\$\{[^}\n]*\}|\$\$\{|\$\{[^}\n]*\}")


class ConfigFileError(ConfigError):
    """The file could not be read or is not valid YAML (``tokenyard config check`` exits 2 for it)."""


class _StrictLoader(_BaseLoader):  # type: ignore[valid-type,misc]
    """A safe loader that refuses a mapping with the same key twice (PyYAML silently keeps the last)."""

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        seen: set[Any] = set()
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=deep)
            try:
                duplicate = key in seen
            except TypeError:  # an unhashable key: let the base class report it
                continue
            if duplicate:
                mark = key_node.start_mark
                raise yaml.constructor.ConstructorError(None, None, f"duplicate key {key!r}", mark)
            seen.add(key)
        return super().construct_mapping(node, deep=deep)  # type: ignore[no-any-return]


def read_yaml(path: Path) -> Any:
    """The parsed document of ``path``; ``ConfigFileError`` for unreadable files and YAML errors."""
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as error:
        reason = error.strerror if isinstance(error, OSError) and error.strerror else str(error)
        raise ConfigFileError([("", f"cannot read {path}: {reason}")]) from error
    protected, restore = _protect_references(text)
    try:
        document = yaml.load(protected, Loader=_StrictLoader)  # a SafeLoader subclass
        _check_expanded_size(document, path)
        return restore(document)
    except RecursionError:
        raise ConfigFileError([("", f"{path}: nested too deeply")]) from None
    except yaml.MarkedYAMLError as error:
        mark = error.problem_mark or error.context_mark
        where = f"line {mark.line + 1}, column {mark.column + 1}" if mark is not None else "unknown position"
        problem = error.problem or error.context or "invalid YAML"
        raise ConfigFileError([("", f"{path}: YAML syntax error at {where}: {problem}")]) from error
    except yaml.YAMLError as error:
        raise ConfigFileError([("", f"{path}: invalid YAML: {error}")]) from error


MAX_EXPANDED_NODES = 200_000


def _check_expanded_size(document: Any, path: Path) -> None:
    """Refuse documents whose aliases expand to a huge tree ("billion laughs"): every later pass walks it."""
    budget = MAX_EXPANDED_NODES
    stack = [document]
    while stack:
        node = stack.pop()
        budget -= 1
        if budget < 0:
            raise ConfigFileError([("", f"{path}: more than {MAX_EXPANDED_NODES} values once aliases are expanded")])
        if isinstance(node, dict):
            stack.extend(node.values())
        elif isinstance(node, list):
            stack.extend(node)


def _protect_references(text: str) -> tuple[str, Any]:
    """Swap each ``${...}`` for a plain-word placeholder before parsing, and give back a function to undo it.

    Braces are flow indicators in YAML, so ``admin: {key: ${ADMIN_KEY}}`` would not parse; with placeholders it
    does, and the references come back as the string values they were written in (substituted later, on the
    tree, so a variable's value can never change the document's structure).
    """
    references: dict[str, str] = {}
    marker = "tyref" + secrets.token_hex(6)
    while marker in text:  # pragma: no cover - 48 random bits colliding with the file's text
        marker = "tyref" + secrets.token_hex(6)

    def protect(match: re.Match[str]) -> str:
        placeholder = f"{marker}x{len(references)}x"
        references[placeholder] = match.group(0)
        return placeholder

    protected = _REFERENCE_TEXT.sub(protect, text)
    if not references:
        return text, lambda document: document
    pattern = re.compile(re.escape(marker) + r"x\d+x")

    def restore(value: Any) -> Any:
        if isinstance(value, str):
            return pattern.sub(lambda found: references[found.group(0)], value) if marker in value else value
        if isinstance(value, dict):
            return {restore(key): restore(item) for key, item in value.items()}
        if isinstance(value, list):
            return [restore(item) for item in value]
        return value

    return protected, restore
