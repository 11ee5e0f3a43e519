"""Server-sent events on the relay path: ``id:`` framing without buffering, and cheap event inspection.

The relay forwards upstream bytes as they arrive; ``SseFramer.feed`` only inserts ``id: N`` before each event and
reports the events that completed in the chunk, so the relay can spot tokens, usage and ``[DONE]``. Events are
separated by a blank line (``\\n\\n``, what OpenAI-compatible servers send), also when split across chunks.
"""

from __future__ import annotations

import msgspec

DONE_PREFIX = b"data: [DONE]"
_CHAT_CONTENT = b'"content":"'
_TEXT_CONTENT = b'"text":"'
_USAGE = b'"usage"'


class SseFramer:
    """Adds ``id: N`` (N = 1, 2, ...) to every event of a byte stream fed chunk by chunk."""

    __slots__ = ("_at_start", "_ends_nl", "_tail", "next_id")

    def __init__(self, first_id: int = 1) -> None:
        self.next_id = first_id
        self._at_start = True
        self._tail = b""  # the bytes of the event still open, kept only for inspection
        self._ends_nl = False

    @property
    def at_event_start(self) -> bool:
        return self._at_start

    def feed(self, chunk: bytes) -> tuple[bytes, list[bytes]]:
        """The chunk with ``id:`` lines inserted, and the complete events (without ``id:``) it finished."""
        out: list[bytes] = []
        events: list[bytes] = []
        pos = 0
        size = len(chunk)
        if self._ends_nl and not self._at_start and chunk[:1] == b"\n":
            # The blank line that ends the open event was split across two chunks.
            out.append(b"\n")
            events.append(self._tail + b"\n")
            self._tail = b""
            self._at_start = True
            pos = 1
        while pos < size:
            if self._at_start:
                out.append(b"id: %d\n" % self.next_id)
                self.next_id += 1
                self._at_start = False
            end = chunk.find(b"\n\n", pos)
            if end < 0:
                piece = chunk[pos:]
                out.append(piece)
                self._tail += piece
                break
            end += 2
            piece = chunk[pos:end]
            out.append(piece)
            events.append(self._tail + piece if self._tail else piece)
            self._tail = b""
            self._at_start = True
            pos = end
        if size:
            self._ends_nl = chunk[-1:] == b"\n"
        return b"".join(out), events

    def error_event(self, message: str, code: str) -> bytes:
        """An SSE ``error`` event (OpenAI clients raise ``APIError`` on it), closing any open event first."""
        prefix = b"" if self._at_start else (b"\n" if self._ends_nl else b"\n\n")
        body = msgspec.json.encode({"error": {"message": message, "type": "upstream_error", "code": code}})
        event = b"%sid: %d\nevent: error\ndata: %s\n\n" % (prefix, self.next_id, body)
        self.next_id += 1
        self._at_start = True
        return event


def has_content(event: bytes) -> bool:
    """True when an event carries generated text (a non-empty ``content`` or ``text`` string)."""
    at = event.find(_CHAT_CONTENT)
    if at >= 0:
        return event[at + 11:at + 12] != b'"'
    at = event.find(_TEXT_CONTENT)
    return at >= 0 and event[at + 8:at + 9] != b'"'


class Usage(msgspec.Struct):
    prompt_tokens: int = 0
    completion_tokens: int = 0


class _WithUsage(msgspec.Struct):
    usage: Usage | None = None


def find_usage(payload: bytes) -> Usage | None:
    """The ``usage`` object of a JSON body or of one SSE event, or None (absent, null or unparsable)."""
    at = payload.find(_USAGE)
    if at < 0 or payload[at + 7:at + 12].lstrip(b": \t")[:1] != b"{":
        return None  # absent or null: skip the decode
    start = payload.find(b"{")
    if start < 0:
        return None
    end = payload.rfind(b"}")
    try:
        return msgspec.json.decode(payload[start:end + 1], type=_WithUsage).usage
    except msgspec.DecodeError:
        return None


def scan_events(events: list[bytes], usage: Usage | None) -> tuple[bool, int, Usage | None]:
    """What a batch of relayed events carries: whether ``[DONE]`` was among them, how many carried generated text,
    and the usage (``usage`` if already known, else the first one found). Both relays count the same way."""
    done = False
    tokens = 0
    for event in events:
        if event.startswith(DONE_PREFIX):
            done = True
        elif has_content(event):
            tokens += 1
        elif usage is None:
            usage = find_usage(event)
    return done, tokens, usage
