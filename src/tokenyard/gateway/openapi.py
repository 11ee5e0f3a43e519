"""``GET /openapi.json``: the gateway's API as an OpenAPI 3.1 document.

The request schemas carry the ranges the validator (``tokenyard.schema``) enforces and the size limits of this
gateway's config, so a client generated from the document, or a fuzzer such as schemathesis, sees the real rules.
Unknown request fields are allowed (``additionalProperties``): they are passed to the upstream untouched, as
OpenAI-compatible servers accept extensions. Admin routes are read from the router when the document is first
asked for, so routes added by other modules are described too.
"""

from __future__ import annotations

from typing import Any

import msgspec
from aiohttp import web

from tokenyard.config import LimitsConfig
from tokenyard.schema.checks import INT64_MAX
from tokenyard.schema.embedding import MAX_INPUTS
from tokenyard.schema.prompts import MAX_TOKEN_ID

JSON = "application/json"
Schema = dict[str, Any]
ERROR_STATUSES = {
    "400": "Invalid request (bad JSON, wrong type, value out of range)",
    "401": "Missing, invalid, revoked or expired credential",
    "403": "Not allowed (model, class, east-west policy)",
    "404": "Unknown model",
    "409": "x-request-id already in use by a request in flight or a resumable stream",
    "413": "Request body too large",
    "429": "Rate limited, shed or token budget exhausted (see Retry-After)",
    "503": "No capacity or no healthy upstream",
    "504": "Deadline exceeded",
}


def _ref(name: str) -> Schema:
    return {"$ref": f"#/components/schemas/{name}"}


def _nullable(schema: Schema) -> Schema:
    return {"anyOf": [schema, {"type": "null"}]}


def _number(low: float, high: float) -> Schema:
    return _nullable({"type": "number", "minimum": low, "maximum": high})


def _integer(low: int, high: int) -> Schema:
    return _nullable({"type": "integer", "minimum": low, "maximum": high})


def _text(limits: LimitsConfig, min_length: int = 0) -> Schema:
    return {"type": "string", "minLength": min_length, "maxLength": limits.max_message_chars}


def _message(role: str, content: Schema, required: tuple[str, ...] = ("content",), **extra: Schema) -> Schema:
    properties: Schema = {"role": {"const": role}, "content": content, **extra}
    return {"type": "object", "required": ["role", *required], "properties": properties}


def _messages(limits: LimitsConfig) -> Schema:
    text = _text(limits)
    text_part = {"type": "object", "required": ["type", "text"],
                 "properties": {"type": {"const": "text"}, "text": {"type": "string"}}}
    media = {"type": "object", "required": ["url"], "properties": {"url": {"type": "string"},
                                                                   "detail": _nullable({"type": "string"})}}
    image_part = {"type": "object", "required": ["type", "image_url"],
                  "properties": {"type": {"const": "image_url"}, "image_url": media}}
    refusal_part = {"type": "object", "required": ["type", "refusal"],
                    "properties": {"type": {"const": "refusal"}, "refusal": {"type": "string"}}}
    text_only = {"anyOf": [text, {"type": "array", "minItems": 1, "items": text_part}]}
    user_content = {"anyOf": [text, {"type": "array", "minItems": 1, "items": {"anyOf": [text_part, image_part]}}]}
    name = _nullable({"type": "string"})
    function_call = {"type": "object", "required": ["name", "arguments"],
                     "properties": {"name": {"type": "string"}, "arguments": {"type": "string"}}}
    tool_call = {"type": "object", "required": ["id", "function"],
                 "properties": {"id": {"type": "string"}, "type": {"const": "function"}, "function": function_call}}
    assistant_content = _nullable({"anyOf": [text, {"type": "array", "minItems": 1,
                                                    "items": {"anyOf": [text_part, refusal_part]}}]})
    assistant = _message("assistant", assistant_content, required=(), name=name,
                         tool_calls={"type": "array", "minItems": 1, "items": tool_call})
    assistant["description"] = "content is required unless tool_calls is given"
    # anyOf, not oneOf: the variants are told apart by the const ``role`` anyway, and anyOf is what fuzzers
    # (and validators) handle cheaply.
    return {"anyOf": [
        _message("system", text_only, name=name),
        _message("developer", text_only, name=name),
        _message("user", user_content, name=name),
        assistant,
        _message("tool", text_only, required=("content", "tool_call_id"),
                 tool_call_id={"type": "string", "minLength": 1}),
    ]}


def _sampling() -> Schema:
    """The parameters chat and completions share, with the validator's ranges (``schema/checks.py``)."""
    return {
        "model": {"type": "string", "minLength": 1},
        "stream": _nullable({"type": "boolean"}),
        "temperature": _number(0, 2),
        "top_p": _number(0, 1),
        "n": _integer(1, 128),
        "stop": _nullable({"anyOf": [{"type": "string"},
                                     {"type": "array", "maxItems": 4, "items": {"type": "string"}}]}),
        "max_tokens": _integer(1, INT64_MAX),
        "presence_penalty": _number(-2, 2),
        "frequency_penalty": _number(-2, 2),
        "logit_bias": _nullable({"type": "object", "propertyNames": {"pattern": "^[0-9]+$"},
                                 "additionalProperties": {"type": "number", "minimum": -100, "maximum": 100}}),
        "seed": _integer(-INT64_MAX - 1, INT64_MAX),
        "user": _nullable({"type": "string"}),
    }


def _prompt(limits: LimitsConfig, max_items: int, min_length: int) -> Schema:
    token = {"type": "integer", "minimum": 0, "maximum": MAX_TOKEN_ID}
    return {"anyOf": [
        _text(limits, min_length),
        {"type": "array", "minItems": 1, "maxItems": max_items, "items": _text(limits, min_length)},
        {"type": "array", "minItems": 1, "items": token},
        {"type": "array", "minItems": 1, "maxItems": max_items,
         "items": {"type": "array", "minItems": 1, "items": token}},
    ]}


def request_schemas(limits: LimitsConfig) -> dict[str, Schema]:
    """The request bodies of the three inference operations, under this gateway's ``limits``."""
    tool = {"type": "object", "required": ["type", "function"], "properties": {
        "type": {"const": "function"},
        "function": {"type": "object", "required": ["name"], "properties": {
            "name": {"type": "string", "pattern": "^[A-Za-z0-9_-]{1,64}$"},
            "description": _nullable({"type": "string"}),
            "parameters": {"type": "object"},
        }},
    }}
    chat = {
        "type": "object", "required": ["model", "messages"], "additionalProperties": True,
        "properties": {
            **_sampling(),
            "messages": {"type": "array", "minItems": 1, "maxItems": limits.max_messages, "items": _messages(limits)},
            "logprobs": _nullable({"type": "boolean"}),
            "top_logprobs": _integer(0, 20),
            "max_completion_tokens": _integer(1, INT64_MAX),
            "tools": _nullable({"type": "array", "maxItems": 128, "items": tool}),
            "tool_choice": _nullable({"anyOf": [{"enum": ["none", "auto", "required"]}, {
                "type": "object", "required": ["type", "function"],
                "properties": {"type": {"const": "function"}, "function": {
                    "type": "object", "required": ["name"], "properties": {"name": {"type": "string"}}}}}]}),
            "parallel_tool_calls": _nullable({"type": "boolean"}),
        },
        "description": "top_logprobs requires logprobs: true; stream_options requires stream: true; max_tokens "
                       "must also fit the model's context window when one is configured.",
    }
    completion = {
        "type": "object", "required": ["model", "prompt"], "additionalProperties": True,
        "properties": {
            **_sampling(),
            "prompt": _prompt(limits, limits.max_messages, 0),
            "suffix": _nullable({"type": "string"}),
            "logprobs": _integer(0, 5),
            "best_of": _integer(1, 20),
            "echo": _nullable({"type": "boolean"}),
        },
        "description": "best_of must be >= n.",
    }
    embedding = {
        "type": "object", "required": ["model", "input"], "additionalProperties": True,
        "properties": {
            "model": {"type": "string", "minLength": 1},
            "input": _prompt(limits, MAX_INPUTS, 1),
            "encoding_format": _nullable({"enum": ["float", "base64"]}),
            "dimensions": _integer(1, 65_536),
            "user": _nullable({"type": "string"}),
        },
    }
    return {"ChatCompletionRequest": chat, "CompletionRequest": completion, "EmbeddingRequest": embedding}


def _errors(*statuses: str) -> Schema:
    return {s: {"description": ERROR_STATUSES[s], "content": {JSON: {"schema": _ref("Error")}}} for s in statuses}


def _inference(summary: str, body: str, streams: bool) -> Schema:
    ok: Schema = {JSON: {"schema": {"type": "object"}}}
    if streams:
        ok["text/event-stream"] = {"schema": {"type": "string"}}
    return {"post": {
        "summary": summary, "security": [{"bearer": []}, {}],
        "parameters": [
            {"name": "x-tokenyard-class", "in": "header", "required": False, "schema": {"type": "string"}},
            {"name": "x-tokenyard-deadline-ms", "in": "header", "required": False, "schema": {"type": "string"}},
        ],
        "requestBody": {"required": True, "content": {JSON: {"schema": _ref(body)}}},
        "responses": {"200": {"description": "The upstream's answer", "content": ok},
                      **_errors(*ERROR_STATUSES)},
    }}


def _simple(summary: str, content_type: str = JSON, extra: Schema | None = None) -> Schema:
    return {"get": {"summary": summary, "responses": {
        "200": {"description": "OK", "content": {content_type: {"schema": {"type": "object"}
                                                               if content_type == JSON else {"type": "string"}}}},
        **(extra or {}),
    }}}


def admin_paths(app: web.Application) -> dict[str, Schema]:
    """Every ``/admin/...`` route of ``app``; each needs the admin credential."""
    paths: dict[str, Schema] = {}
    for route in app.router.routes():
        info = route.resource.get_info() if route.resource is not None else {}
        path = info.get("path") or info.get("formatter")
        if not isinstance(path, str) or not path.startswith("/admin/") or route.method == "HEAD":
            continue
        parameters = [{"name": part[1:-1], "in": "path", "required": True, "schema": {"type": "string"}}
                      for part in path.split("/") if part.startswith("{") and part.endswith("}")]
        responses = {"200": {"description": "OK", "content": {JSON: {"schema": {"type": "object"}}}},
                     **_errors("401", "403", "404")}
        operation: Schema = {"summary": f"admin: {route.method} {path}", "security": [{"admin": []}],
                             "responses": responses}
        if parameters:
            operation["parameters"] = parameters
        paths.setdefault(path, {})[route.method.lower()] = operation
    return paths


def build_document(app: web.Application, limits: LimitsConfig) -> Schema:
    """The whole OpenAPI 3.1 document of the gateway serving ``app``."""
    error = {"type": "object", "required": ["error"], "properties": {"error": {
        "type": "object", "required": ["message", "type", "code"],
        "properties": {"message": {"type": "string"}, "type": {"type": "string"},
                       "code": _nullable({"type": "string"}), "param": _nullable({"type": "string"})}}}}
    paths: dict[str, Schema] = {
        "/v1/chat/completions": _inference("Create a chat completion (OpenAI-compatible)",
                                           "ChatCompletionRequest", True),
        "/v1/completions": _inference("Create a completion (OpenAI-compatible)", "CompletionRequest", True),
        "/v1/embeddings": _inference("Create embeddings (OpenAI-compatible)", "EmbeddingRequest", False),
        "/v1/models": {"get": {**_simple("List the models this gateway serves")["get"],
                               "security": [{"bearer": []}, {}]}},
        "/healthz": _simple("Liveness"),
        "/readyz": _simple("Readiness: a healthy upstream exists",
                           extra={"503": {"description": "No healthy upstream"}}),
        "/metrics": _simple("Prometheus metrics", "text/plain"),
        "/openapi.json": _simple("This document"),
        **admin_paths(app),
    }
    return {
        "openapi": "3.1.0",
        "info": {"title": "tokenyard gateway", "version": "1.0",
                 "description": "An OpenAI-compatible LLM gateway. Errors use OpenAI's format."},
        "paths": paths,
        "components": {
            "schemas": {**request_schemas(limits), "Error": error},
            "securitySchemes": {
                "bearer": {"type": "http", "scheme": "bearer",
                           "description": "An API key, or a JWT where the gateway is configured for them"},
                "admin": {"type": "http", "scheme": "bearer", "description": "The admin credential"},
            },
        },
    }


def add_openapi_route(app: web.Application, limits: LimitsConfig) -> None:
    """Serve ``GET /openapi.json`` (built once, on first request, when every route is registered)."""
    cached: list[bytes] = []

    async def openapi(request: web.Request) -> web.Response:
        if not cached:
            cached.append(msgspec.json.encode(build_document(request.app, limits)))
        return web.Response(body=cached[0], content_type=JSON)

    app.router.add_get("/openapi.json", openapi)
