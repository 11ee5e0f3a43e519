"""Reference checks on a document that also has type problems, without reporting their side effects.

When some entries fail to convert, the cross-field rules still run on the entries that did, so one
``config check`` shows a typo and a dangling reference together. Issues that only exist because an entry was
left out (a reference to a model whose settings had a type error, say) are dropped here.
"""

from __future__ import annotations

import re
from typing import Any

_UNDEFINED = re.compile(
    r"^(?:model|class|tenant) '(?P<name>.*)' is not defined in (?P<section>models|classes|tenants)$"
)
_NAMED = ("models", "classes", "tenants")
# Sections whose failure can make the auth-off rule fire wrongly (they hold credentials or the listener).
_AUTH_SECTIONS = ("listen", "key_store", "jwt", "keys")


def can_cross_check(document: dict[str, Any], sections: dict[str, Any]) -> bool:
    """True when the converted sections line up with the document closely enough for reference checks.

    Named sections must be mappings (else their names are unknown) and every key entry must have converted
    (else key indexes in messages would be wrong).
    """
    for name in _NAMED:
        value = document.get(name)
        if value is not None and not isinstance(value, dict):
            return False
    keys = document.get("keys")
    if keys is None:
        return True
    return isinstance(keys, (list, tuple)) and len(sections.get("keys", ())) == len(keys)


def relevant(issue: tuple[str, str], document: dict[str, Any], sections: dict[str, Any]) -> bool:
    """False for an issue caused only by entries or sections that failed to convert."""
    path, message = issue
    undefined = _UNDEFINED.match(message)
    if undefined:
        raw = document.get(undefined.group("section"))
        return not (isinstance(raw, dict) and undefined.group("name") in map(str, raw))
    if message.startswith("at least one"):
        raw = document.get(path)
        return not raw
    if path == "default_class" and message.startswith("required"):
        return "classes" in sections and len(sections["classes"]) == len(document.get("classes") or {})
    if path == "keys" and "auth is off" in message:
        return all(name in sections for name in _AUTH_SECTIONS if document.get(name) is not None)
    return True
