"""Chat messages, tagged by ``role``: system, developer, user, assistant, tool, function."""

from __future__ import annotations

import msgspec

from tokenyard.schema.parts import Content, FunctionCall, ToolCall

ROLES = ("system", "developer", "user", "assistant", "tool", "function")


class SystemMessage(msgspec.Struct, tag="system", tag_field="role"):
    content: Content
    name: str | None = None


class DeveloperMessage(msgspec.Struct, tag="developer", tag_field="role"):
    content: Content
    name: str | None = None


class UserMessage(msgspec.Struct, tag="user", tag_field="role"):
    content: Content
    name: str | None = None


class AssistantMessage(msgspec.Struct, tag="assistant", tag_field="role"):
    """Needs ``content`` unless it carries ``tool_calls`` (or the legacy ``function_call``)."""

    content: Content | None = None
    name: str | None = None
    tool_calls: list[ToolCall] | None = None
    function_call: FunctionCall | None = None
    refusal: str | None = None


class ToolMessage(msgspec.Struct, tag="tool", tag_field="role"):
    content: Content
    tool_call_id: str


class FunctionMessage(msgspec.Struct, tag="function", tag_field="role"):
    name: str
    content: str | None = None


Message = SystemMessage | DeveloperMessage | UserMessage | AssistantMessage | ToolMessage | FunctionMessage
