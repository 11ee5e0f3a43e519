"""``POST /v1/chat/completions``: validation and the request summary the gateway routes on."""

from __future__ import annotations

import re

import msgspec

from tokenyard.config.server import LimitsConfig
from tokenyard.schema import estimate
from tokenyard.schema.checks import (
    check_logit_bias,
    check_max_tokens,
    check_range,
    check_sampling,
    check_stop,
    check_stream_options,
)
from tokenyard.schema.decoding import decode_body
from tokenyard.schema.errors import RequestInvalid
from tokenyard.schema.messages import AssistantMessage, DeveloperMessage, Message, SystemMessage, ToolMessage
from tokenyard.schema.parts import (
    AudioPart,
    AudioURLPart,
    ContentPart,
    FilePart,
    ImagePart,
    RefusalPart,
    ResponseFormat,
    StreamOptions,
    TextPart,
    Tool,
    ToolChoiceFunction,
    VideoURLPart,
)
from tokenyard.schema.request import ParsedRequest

TOOL_NAME = re.compile(r"[A-Za-z0-9_-]{1,64}")
TOOL_CHOICES = ("none", "auto", "required")
MAX_TOOLS = 128
_TEXT_ONLY = (SystemMessage, DeveloperMessage, ToolMessage)
_PART_TAGS: dict[type, str] = {
    part: str(part.__struct_config__.tag)
    for part in (TextPart, ImagePart, AudioPart, FilePart, RefusalPart, VideoURLPart, AudioURLPart)
}


class ChatBody(msgspec.Struct):
    """The fields of a chat completion request that tokenyard checks; others pass through untouched."""

    model: str
    messages: list[Message]
    stream: bool | None = None
    stream_options: StreamOptions | None = None
    temperature: float | None = None
    top_p: float | None = None
    n: int | None = None
    stop: str | list[str] | None = None
    logprobs: bool | None = None
    top_logprobs: int | None = None
    max_tokens: int | None = None
    max_completion_tokens: int | None = None
    presence_penalty: float | None = None
    frequency_penalty: float | None = None
    logit_bias: dict[str, float] | None = None
    seed: int | None = None
    tools: list[Tool] | None = None
    tool_choice: str | ToolChoiceFunction | None = None
    parallel_tool_calls: bool | None = None
    response_format: ResponseFormat | None = None
    user: str | None = None


class ChatRequest(ParsedRequest, frozen=True, kw_only=True):
    """A validated chat completion request."""

    body: ChatBody

    @property
    def prompt_param(self) -> str:
        return "messages"


def parse_chat(body: bytes, limits: LimitsConfig | None = None) -> ChatRequest:
    """Validate a chat completion request body; raise ``RequestInvalid`` (400/413) naming the parameter."""
    limits = limits or LimitsConfig()
    chat = decode_body(body, ChatBody, limits.max_body_bytes)
    _check_parameters(chat)
    texts, tokens, has_images = _walk_messages(chat.messages, limits)
    tools_count = len(chat.tools) if chat.tools else 0
    if chat.tools:
        tokens += sum(estimate.text_tokens(_tool_chars(tool)) for tool in chat.tools)
    return ChatRequest(
        model=chat.model,
        stream=bool(chat.stream),
        include_usage=bool(chat.stream and chat.stream_options and chat.stream_options.include_usage),
        max_tokens=chat.max_completion_tokens if chat.max_completion_tokens is not None else chat.max_tokens,
        max_tokens_param="max_completion_tokens" if chat.max_completion_tokens is not None else "max_tokens",
        n=chat.n or 1,
        prompt_tokens_estimate=tokens + estimate.TOKENS_REPLY_PRIMING,
        prompt_text="\n".join(texts),
        has_images=has_images,
        tools_count=tools_count,
        deterministic=chat.temperature == 0 or chat.seed is not None,
        user=chat.user,
        body=chat,
    )


def _check_parameters(chat: ChatBody) -> None:
    if not chat.model:
        raise RequestInvalid(400, "model: must be a non-empty string", "model")
    if not chat.messages:
        raise RequestInvalid(400, "messages: must be a non-empty list", "messages")
    check_sampling(chat.temperature, chat.top_p, chat.n, chat.presence_penalty, chat.frequency_penalty, chat.seed)
    check_max_tokens("max_tokens", chat.max_tokens)
    check_max_tokens("max_completion_tokens", chat.max_completion_tokens)
    check_stop(chat.stop)
    check_stream_options(chat.stream, chat.stream_options is not None)
    check_logit_bias(chat.logit_bias)
    check_range("top_logprobs", chat.top_logprobs, 0, 20)
    if chat.top_logprobs is not None and not chat.logprobs:
        raise RequestInvalid(400, "top_logprobs: requires logprobs to be true", "top_logprobs")
    _check_tools(chat)


def _check_tools(chat: ChatBody) -> None:
    if chat.tools is not None:
        if len(chat.tools) > MAX_TOOLS:
            raise RequestInvalid(
                400,
                f"tools: at most {MAX_TOOLS} tools are allowed, got {len(chat.tools)}",
                "tools",
                "array_above_max_length",
            )
        for index, tool in enumerate(chat.tools):
            if not TOOL_NAME.fullmatch(tool.function.name):
                param = f"tools[{index}].function.name"
                raise RequestInvalid(
                    400, f"{param}: must be 1-64 letters, digits, '_' or '-', got {tool.function.name[:80]!r}", param
                )
            raw = bytes(tool.function.parameters).lstrip()
            if raw and not raw.startswith((b"{", b"null")):
                param = f"tools[{index}].function.parameters"
                raise RequestInvalid(400, f"{param}: must be a JSON Schema object", param, "invalid_type")
    if isinstance(chat.tool_choice, str) and chat.tool_choice not in TOOL_CHOICES:
        raise RequestInvalid(
            400,
            f"tool_choice: must be one of {', '.join(TOOL_CHOICES)} or a function choice, "
            f"got {chat.tool_choice[:80]!r}",
            "tool_choice",
        )
    if isinstance(chat.tool_choice, ToolChoiceFunction) and not chat.tools:
        raise RequestInvalid(400, "tool_choice: naming a function requires tools", "tool_choice")


def _walk_messages(messages: list[Message], limits: LimitsConfig) -> tuple[list[str], int, bool]:
    """Check each message's shape and size; collect its text, a token estimate and whether images appear.

    This loop runs for every message of every request, so it dispatches on exact types and builds error
    strings only when raising.
    """
    if len(messages) > limits.max_messages:
        raise RequestInvalid(
            400,
            f"messages: at most {limits.max_messages} messages are allowed, got {len(messages)}",
            "messages",
            "array_above_max_length",
        )
    max_chars = limits.max_message_chars
    texts: list[str] = []
    tokens = estimate.TOKENS_PER_MESSAGE * len(messages)
    has_images = False
    for index, message in enumerate(messages):
        content = message.content
        if isinstance(content, str):
            chars, text = len(content), content
        elif content is None:
            chars, text = 0, ""
        else:
            chars, media, images, text = _parts(content, index, isinstance(message, _TEXT_ONLY))
            tokens += media
            has_images = has_images or images
        if isinstance(message, AssistantMessage):
            if message.tool_calls:
                chars += sum(len(c.function.arguments) + len(c.function.name) for c in message.tool_calls)
            elif content is None and message.function_call is None:
                param = f"messages[{index}].content"
                raise RequestInvalid(
                    400, f"{param}: required unless tool_calls is given", param, "missing_required_parameter"
                )
        elif isinstance(message, ToolMessage) and not message.tool_call_id:
            param = f"messages[{index}].tool_call_id"
            raise RequestInvalid(400, f"{param}: must be a non-empty string", param)
        if chars > max_chars:
            param = f"messages[{index}].content"
            raise RequestInvalid(
                400,
                f"{param}: at most {max_chars} characters are allowed, got {chars}",
                param,
                "string_above_max_length",
            )
        tokens += estimate.text_tokens(chars)
        texts.append(text)
    return texts, tokens, has_images


def _parts(parts: list[ContentPart], index: int, text_only: bool) -> tuple[int, int, bool, str]:
    """(text characters, media token estimate, has images, text) of a list of content parts."""
    if not parts:
        param = f"messages[{index}].content"
        raise RequestInvalid(400, f"{param}: must be a string or a non-empty list of parts", param)
    chars = media = 0
    images = False
    texts: list[str] = []
    for part_index, part in enumerate(parts):
        if isinstance(part, TextPart):
            texts.append(part.text)
        elif isinstance(part, RefusalPart):
            chars += len(part.refusal)
        elif text_only:
            param = f"messages[{index}].content[{part_index}].type"
            tag = _PART_TAGS.get(type(part), "?")
            raise RequestInvalid(400, f"{param}: this role takes text parts only, got {tag!r}", param)
        elif isinstance(part, ImagePart):
            images = True
            low = part.image_url.detail == "low"
            media += estimate.TOKENS_PER_LOW_DETAIL_IMAGE if low else estimate.TOKENS_PER_IMAGE
        else:
            media += estimate.TOKENS_PER_OTHER_MEDIA
    text = "".join(texts)
    return chars + len(text), media, images, text


def _tool_chars(tool: Tool) -> int:
    function = tool.function
    return len(function.name) + len(function.description or "") + len(function.parameters)
