"""Transforms between source and inference: prompt templates from event fields, filters, and enrichment through
a retrieval route (``POST {url}/retrieve {"query", "top_k"}``). Each one returns False to drop the event."""

from __future__ import annotations

import json
import string
from collections.abc import Mapping, Sequence
from typing import Any, Protocol

import aiohttp

from tokenyard.pipeline.event import Event
from tokenyard.pipeline.lifecycle import _MISSING, lookup, matches
from tokenyard.pipeline.spec import Condition, EnrichSpec, TemplateSpec, TransformSpec


class PermanentError(Exception):
    """The event can never succeed as it is (a missing template field, bad JSON): dead-letter it at once."""


class TransientError(Exception):
    """This attempt failed (an upstream or retrieval outage): leave the event pending; it is retried."""


class Transform(Protocol):
    async def apply(self, event: Event) -> bool: ...


class _Fields(string.Formatter):
    """``str.format`` over event fields, with ``{a.b}`` reaching into nested objects (not attributes)."""

    def get_field(self, field_name: str, args: Sequence[Any], kwargs: Mapping[str, Any]) -> tuple[Any, str]:
        value = lookup(kwargs, field_name)
        if value is _MISSING:
            raise PermanentError(f"template field {field_name!r} is missing from the event")
        if isinstance(value, (dict, list)):
            value = json.dumps(value)
        return value, field_name


def render(template: str, fields: Mapping[str, Any]) -> str:
    try:
        return _Fields().vformat(template, (), fields)
    except (ValueError, IndexError) as exc:
        raise PermanentError(f"template error: {exc}") from exc


class CompiledTemplate:
    """A template parsed once (not per event): literal text and field paths, rendered by concatenation with the
    same result as ``render``. Templates that need ``str.format``'s full machinery (format specs, conversions,
    positional fields) or that do not parse keep calling ``render``, so their results and errors are unchanged."""

    def __init__(self, text: str) -> None:
        self.text = text
        self._parts: list[tuple[str, str | None]] | None = None
        try:
            parsed = list(string.Formatter().parse(text))
        except ValueError:
            return  # malformed: every render raises PermanentError, as before
        if all(name is None or (name and not name[0].isdigit() and not spec and conversion is None)
               for _, name, spec, conversion in parsed):
            self._parts = [(literal, name) for literal, name, _, _ in parsed]

    @property
    def compiled(self) -> bool:
        return self._parts is not None

    def __call__(self, fields: Mapping[str, Any]) -> str:
        if self._parts is None:
            return render(self.text, fields)
        out: list[str] = []
        for literal, name in self._parts:
            out.append(literal)
            if name is not None:
                value = lookup(fields, name)
                if value is _MISSING:
                    raise PermanentError(f"template field {name!r} is missing from the event")
                out.append(format(json.dumps(value) if isinstance(value, (dict, list)) else value, ""))
        return "".join(out)


class Template:
    def __init__(self, spec: TemplateSpec) -> None:
        self.spec = spec
        self._render = CompiledTemplate(spec.text)

    async def apply(self, event: Event) -> bool:
        event.vars[self.spec.into] = self._render(event.fields())
        return True


class Filter:
    def __init__(self, cond: Condition) -> None:
        self.cond = cond

    async def apply(self, event: Event) -> bool:
        return matches(self.cond, event.fields())


class Enrich:
    """Retrieval enrichment. ``session`` is the worker's aiohttp session (loopback services, keep-alive)."""

    def __init__(self, spec: EnrichSpec, session: aiohttp.ClientSession) -> None:
        self.spec = spec
        self.session = session
        self.url = spec.url.rstrip("/") + "/retrieve"
        self._query = CompiledTemplate(spec.query)
        self.calls = 0
        self.failures = 0

    async def apply(self, event: Event) -> bool:
        query = self._query(event.fields())
        self.calls += 1
        try:
            async with self.session.post(self.url, json={"query": query, "top_k": self.spec.top_k},
                                         timeout=aiohttp.ClientTimeout(total=self.spec.timeout_ms / 1000)) as resp:
                if resp.status != 200:
                    raise TransientError(f"retrieval answered {resp.status}")
                body = await resp.json()
            docs = body.get("documents", []) if isinstance(body, dict) else []
            event.vars[self.spec.into] = "\n".join(str(d.get("text", "")) for d in docs if isinstance(d, dict))
        except (TransientError, aiohttp.ClientError, TimeoutError, ValueError) as exc:
            self.failures += 1
            if self.spec.required:
                raise TransientError(f"retrieval failed: {exc}") from exc
            event.vars[self.spec.into] = ""
        return True


def build_transforms(specs: Sequence[TransformSpec], session: aiohttp.ClientSession) -> list[Transform]:
    out: list[Transform] = []
    for spec in specs:
        if spec.filter is not None:
            out.append(Filter(spec.filter))
        elif spec.template is not None:
            out.append(Template(spec.template))
        elif spec.enrich is not None:
            out.append(Enrich(spec.enrich, session))
    return out
