"""Fast validation of OpenAI API requests before any upstream work.

``parse_chat``, ``parse_completion`` and ``parse_embedding`` take the raw body (and the config's ``limits``) and
return a typed summary (model, stream, max_tokens, a prompt-token estimate, the prompt text, ...); unknown fields
are tolerated and stay in the raw body, which is forwarded untouched. Bad input raises ``RequestInvalid``.
"""

from tokenyard.schema.chat import ChatBody, ChatRequest, parse_chat
from tokenyard.schema.completion import CompletionBody, CompletionRequest, parse_completion
from tokenyard.schema.context import check_context_window
from tokenyard.schema.embedding import EmbeddingBody, EmbeddingRequest, parse_embedding
from tokenyard.schema.errors import INVALID_REQUEST, RequestInvalid, error_body
from tokenyard.schema.request import ParsedRequest

__all__ = [
    "INVALID_REQUEST",
    "ChatBody",
    "ChatRequest",
    "CompletionBody",
    "CompletionRequest",
    "EmbeddingBody",
    "EmbeddingRequest",
    "ParsedRequest",
    "RequestInvalid",
    "check_context_window",
    "error_body",
    "parse_chat",
    "parse_completion",
    "parse_embedding",
]
