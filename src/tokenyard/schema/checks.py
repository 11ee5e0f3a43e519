"""Range checks with messages that name the parameter and the value: ``temperature: must be <= 2, got 3``."""

from __future__ import annotations

from tokenyard.schema.errors import RequestInvalid

INT64_MAX = 2**63 - 1


def number_text(value: float) -> str:
    """3.0 -> "3", 0.5 -> "0.5": numbers as the client most likely wrote them."""
    if abs(value) >= 1e16:  # keep huge numbers short in messages (and clear of int->str digit limits)
        try:
            return f"{float(value):.6g}"
        except OverflowError:
            return "a number too large to show"
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return repr(value)


def check_range(param: str, value: float | None, low: float | None = None, high: float | None = None) -> None:
    """Raise ``RequestInvalid`` when ``value`` is set and outside ``[low, high]``."""
    if value is None:
        return
    if low is not None and value < low:
        raise RequestInvalid(400, f"{param}: must be >= {number_text(low)}, got {number_text(value)}", param)
    if high is not None and value > high:
        raise RequestInvalid(400, f"{param}: must be <= {number_text(high)}, got {number_text(value)}", param)


def check_stop(stop: str | list[str] | None) -> None:
    """``stop``: a string or at most 4 strings."""
    if isinstance(stop, list) and len(stop) > 4:
        raise RequestInvalid(
            400, f"stop: at most 4 sequences are allowed, got {len(stop)}", "stop", "array_above_max_length"
        )


def check_stream_options(stream: bool | None, has_options: bool) -> None:
    """``stream_options`` only together with ``stream: true`` (as OpenAI rules)."""
    if has_options and not stream:
        raise RequestInvalid(400, "stream_options: only allowed when stream is true", "stream_options")


def check_logit_bias(logit_bias: dict[str, float] | None) -> None:
    """``logit_bias``: token id (as a string) -> bias in -100..100."""
    if not logit_bias:
        return
    for token, bias in logit_bias.items():
        param = f"logit_bias.{token}"
        if not token.isdigit():
            raise RequestInvalid(400, f"{param}: keys must be token ids, got {token!r}", param)
        check_range(param, bias, -100, 100)


def check_sampling(
    temperature: float | None,
    top_p: float | None,
    n: int | None,
    presence_penalty: float | None,
    frequency_penalty: float | None,
    seed: int | None,
) -> None:
    """The sampling parameters shared by chat and completions, with OpenAI's documented ranges."""
    check_range("temperature", temperature, 0, 2)
    check_range("top_p", top_p, 0, 1)
    check_range("n", n, 1, 128)
    check_range("presence_penalty", presence_penalty, -2, 2)
    check_range("frequency_penalty", frequency_penalty, -2, 2)
    check_range("seed", seed, -INT64_MAX - 1, INT64_MAX)


def check_max_tokens(param: str, value: int | None) -> None:
    """A positive integer or null (and small enough to be a real budget)."""
    check_range(param, value, 1, INT64_MAX)
