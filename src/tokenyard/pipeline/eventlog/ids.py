"""Stream entry ids ``"<ms>-<seq>"`` and range bounds, as Redis Streams spells them (pure)."""

from __future__ import annotations

MAX_SEQ = 2**63 - 1
StreamId = tuple[int, int]


def format_id(ms: int, seq: int) -> str:
    return f"{ms}-{seq}"


def parse_id(text: str, default_seq: int = 0) -> StreamId:
    """``"12-3"`` -> (12, 3); a bare ``"12"`` takes ``default_seq``. Raises ValueError on anything else."""
    ms, sep, seq = text.partition("-")
    try:
        parsed = (int(ms), int(seq) if sep else default_seq)
    except ValueError:
        raise ValueError(f"invalid stream id {text!r}: expected '<ms>-<seq>'") from None
    if parsed[0] < 0 or parsed[1] < 0:
        raise ValueError(f"invalid stream id {text!r}: negative part")
    if parsed[0] > MAX_SEQ or parsed[1] > MAX_SEQ:  # SQLite integers are signed 64-bit; Redis refuses > 2**64-1
        raise ValueError(f"invalid stream id {text!r}: a part above {MAX_SEQ}")
    return parsed


def lower_bound(text: str) -> tuple[StreamId, bool]:
    """A range start: ``-`` is the first id; ``(id`` is exclusive. Returns (id, inclusive)."""
    if text == "-":
        return (0, 0), True
    if text.startswith("("):
        return parse_id(text[1:], 0), False
    return parse_id(text, 0), True


def upper_bound(text: str) -> tuple[StreamId, bool]:
    """A range end: ``+`` is the last id; ``(id`` is exclusive; a bare ms covers every seq of that ms."""
    if text == "+":
        return (MAX_SEQ, MAX_SEQ), True
    if text.startswith("("):
        return parse_id(text[1:], MAX_SEQ), False
    return parse_id(text, MAX_SEQ), True
