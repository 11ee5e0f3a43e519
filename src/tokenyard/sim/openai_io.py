"""OpenAI wire format for the simulator: request parsing (to 400s) and response bytes.

Streaming chunks are spliced from per-request byte templates (prefix + JSON-escaped word + suffix) so the hot
path never serialises a dict per token. The chunk layout copies vLLM's ``serving_chat``/``serving_completion``:
chat streams start with a ``{"role":"assistant","content":""}`` delta, the chunk of the last token carries
``finish_reason``, ``stream_options.include_usage`` adds a final chunk with ``choices: []`` and ``usage``, and
``data: [DONE]`` ends the stream.
"""

from __future__ import annotations

import json
import time
import uuid
from dataclasses import dataclass
from typing import Any

from tokenyard.sim.text import VOCAB_JSON, render_chat

DONE = b"data: [DONE]\n\n"


class BadRequest(Exception):
    """A 4xx in OpenAI's error format."""

    def __init__(self, message: str, status: int = 400, param: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.status = status
        self.param = param


_ERROR_TYPES = {400: "BadRequestError", 404: "NotFoundError", 429: "RateLimitError", 500: "InternalServerError",
                503: "ServiceUnavailableError"}


def error_body(message: str, status: int, param: str | None = None) -> bytes:
    return json.dumps({"error": {"message": message, "type": _ERROR_TYPES.get(status, "Error"), "param": param,
                                 "code": status}}).encode()


@dataclass
class Completion:
    """A parsed chat or text completion request."""

    chat: bool
    model: str
    prompt_text: str
    max_tokens: int | None
    stream: bool
    include_usage: bool
    salt: str


def loads_json(raw: bytes | str) -> Any:
    """``json.loads``, with input nested past Python's recursion limit a ``ValueError`` like any other bad JSON
    (``RecursionError`` escaped the handlers: a 500 with a logged traceback instead of a 400)."""
    try:
        return json.loads(raw)
    except RecursionError:
        raise ValueError("The request body is nested too deeply.") from None


def parse_request(body: bytes, chat: bool, served: str) -> Completion:
    try:
        data = loads_json(body)
    except (ValueError, UnicodeDecodeError):
        raise BadRequest("The request body is not valid JSON.") from None
    if not isinstance(data, dict):
        raise BadRequest("The request body must be a JSON object.")
    model = data.get("model")
    if not isinstance(model, str) or not model:
        raise BadRequest("'model' is required and must be a string.", param="model")
    if model != served:
        raise BadRequest(f"The model `{model}` does not exist.", status=404, param="model")
    if chat:
        messages = data.get("messages")
        if not isinstance(messages, list) or not messages:
            raise BadRequest("'messages' must be a non-empty list.", param="messages")
        for m in messages:
            if not isinstance(m, dict) or not isinstance(m.get("role"), str):
                raise BadRequest("Each message must be an object with a string 'role'.", param="messages")
        prompt_text = render_chat(messages)
        max_tokens = data.get("max_completion_tokens", data.get("max_tokens"))
    else:
        prompt = data.get("prompt")
        if isinstance(prompt, list) and len(prompt) == 1:
            prompt = prompt[0]
        if isinstance(prompt, list) and prompt and all(isinstance(t, int) and not isinstance(t, bool)
                                                       for t in prompt):
            prompt = " ".join(map(str, prompt))  # token ids: one "word" each is close enough for timing
        if not isinstance(prompt, str):
            raise BadRequest("'prompt' must be a string (batched prompts are not supported).", param="prompt")
        prompt_text = prompt
        max_tokens = data.get("max_tokens", 16)  # OpenAI's default for /v1/completions
    if max_tokens is not None and (isinstance(max_tokens, bool) or not isinstance(max_tokens, int) or max_tokens < 1):
        raise BadRequest("'max_tokens' must be a positive integer.", param="max_tokens")
    n = data.get("n", 1)
    if n != 1:
        raise BadRequest("Only n=1 is supported by the simulator.", param="n")
    stream = data.get("stream", False)
    if not isinstance(stream, bool):
        raise BadRequest("'stream' must be a boolean.", param="stream")
    options = data.get("stream_options")
    if options is not None and not isinstance(options, dict):
        raise BadRequest("'stream_options' must be an object.", param="stream_options")
    salt = data.get("cache_salt", "")
    return Completion(chat, model, prompt_text, max_tokens, stream,
                      bool(options and options.get("include_usage")), salt if isinstance(salt, str) else "")


class ChunkWriter:
    """Byte templates of one streamed response."""

    def __init__(self, req: Completion) -> None:
        self.req = req
        self.created = int(time.time())
        self.id = ("chatcmpl-" if req.chat else "cmpl-") + uuid.uuid4().hex
        model = json.dumps(req.model)
        if req.chat:
            head = (f'data: {{"id":"{self.id}","object":"chat.completion.chunk","created":{self.created},'
                    f'"model":{model},"choices":[{{"index":0,"delta":{{"content":"').encode()
            self._tail_open = b'"},"logprobs":null,"finish_reason":null}]}\n\n'
            self._tail_close = b'"},"logprobs":null,"finish_reason":"%s","stop_reason":null}]}\n\n'
            self.role = (f'data: {{"id":"{self.id}","object":"chat.completion.chunk","created":{self.created},'
                         f'"model":{model},"choices":[{{"index":0,"delta":{{"role":"assistant","content":""}},'
                         f'"logprobs":null,"finish_reason":null}}]}}\n\n').encode()
        else:
            head = (f'data: {{"id":"{self.id}","object":"text_completion","created":{self.created},'
                    f'"model":{model},"choices":[{{"index":0,"text":"').encode()
            self._tail_open = b'","logprobs":null,"finish_reason":null,"stop_reason":null}]}\n\n'
            self._tail_close = b'","logprobs":null,"finish_reason":"%s","stop_reason":null}]}\n\n'
            self.role = b""
        self._head = head
        self._usage_head = (f'data: {{"id":"{self.id}","object":'
                            f'"{"chat.completion.chunk" if req.chat else "text_completion"}",'
                            f'"created":{self.created},"model":{model},"choices":[],"usage":').encode()

    def token(self, vocab_index: int) -> bytes:
        return self._head + VOCAB_JSON[vocab_index] + self._tail_open

    def last_token(self, vocab_index: int, finish_reason: str) -> bytes:
        return self._head + VOCAB_JSON[vocab_index] + (self._tail_close % finish_reason.encode())

    def render(self, handle: Any, start: int, upto: int, target: int, finish_reason: str) -> bytes:
        """Chunks for output tokens ``start..upto-1`` of ``handle`` (the role delta first when ``start`` is 0)."""
        parts = [self.role] if start == 0 and self.role else []
        head, tail = self._head, self._tail_open
        for k in range(start, upto):
            index = handle.token_index(k)
            if k == target - 1:
                parts.append(self.last_token(index, finish_reason))
            else:
                parts.append(head + VOCAB_JSON[index] + tail)
        return b"".join(parts)

    def usage(self, prompt_tokens: int, completion_tokens: int) -> bytes:
        return self._usage_head + json.dumps(usage(prompt_tokens, completion_tokens)).encode() + b"}\n\n"


def usage(prompt_tokens: int, completion_tokens: int) -> dict[str, int]:
    return {"prompt_tokens": prompt_tokens, "total_tokens": prompt_tokens + completion_tokens,
            "completion_tokens": completion_tokens}


def full_response(req: Completion, text: str, finish_reason: str, prompt_tokens: int,
                  completion_tokens: int) -> bytes:
    created = int(time.time())
    if req.chat:
        body: dict[str, Any] = {
            "id": "chatcmpl-" + uuid.uuid4().hex, "object": "chat.completion", "created": created,
            "model": req.model,
            "choices": [{"index": 0, "message": {"role": "assistant", "content": text, "tool_calls": []},
                         "logprobs": None, "finish_reason": finish_reason, "stop_reason": None}],
        }
    else:
        body = {
            "id": "cmpl-" + uuid.uuid4().hex, "object": "text_completion", "created": created, "model": req.model,
            "choices": [{"index": 0, "text": text, "logprobs": None, "finish_reason": finish_reason,
                         "stop_reason": None}],
        }
    body["usage"] = usage(prompt_tokens, completion_tokens)
    return json.dumps(body).encode()
