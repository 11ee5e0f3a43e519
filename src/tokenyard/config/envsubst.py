"""``${VAR}`` and ``${VAR:-default}`` substitution in the string values of a parsed YAML document.

Substitution runs on the parsed tree (never on the YAML text), so a value containing YAML syntax cannot change the
document's structure. ``$${`` writes a literal ``${``. Mapping keys are not substituted.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from tokenyard.config.errors import join_path

# $${ is an escape; ${NAME} or ${NAME:-default}; NAME is a shell-style variable name.
_REFERENCE = re.compile(r"\$\$\{|\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}|\$\{[^}]*\}?")


def substitute(value: Any, env: Mapping[str, str], path: str, issues: list[tuple[str, str]]) -> Any:
    """Return ``value`` with references in every string replaced from ``env``; problems go to ``issues``."""
    if isinstance(value, str):
        return _substitute_string(value, env, path, issues) if "${" in value else value
    if isinstance(value, dict):
        return {k: substitute(v, env, join_path(path, str(k)), issues) for k, v in value.items()}
    if isinstance(value, list):
        return [substitute(v, env, join_path(path, i), issues) for i, v in enumerate(value)]
    return value


def _substitute_string(text: str, env: Mapping[str, str], path: str, issues: list[tuple[str, str]]) -> str:
    def replace(match: re.Match[str]) -> str:
        whole = match.group(0)
        if whole == "$${":
            return "${"
        name, default = match.group(1), match.group(2)
        if name is None:
            issues.append((path, f"malformed variable reference {whole!r} (use ${{NAME}} or ${{NAME:-default}})"))
            return whole
        found = env.get(name)
        if found is not None:
            return found
        if default is not None:
            return default
        issues.append((path, f"environment variable {name} is not set (use ${{{name}:-default}} for a default)"))
        return whole

    return _REFERENCE.sub(replace, text)
