"""How long request validation (tokenyard.schema) adds per request, against json.loads of the same body.

Usage: python3 benchmarks/schema_parse.py [--repeat N]
Prints one row per body shape: bytes, microseconds per parse_* call (best of 5 runs), json.loads for scale.
"""

from __future__ import annotations

import argparse
import json
import timeit
from collections.abc import Callable
from typing import Any

from tokenyard.config import LimitsConfig
from tokenyard.schema import parse_chat, parse_completion, parse_embedding


def tool(i: int) -> dict[str, Any]:
    schema = {"type": "object", "properties": {"city": {"type": "string"}, "days": {"type": "integer"}}}
    return {"type": "function", "function": {"name": f"tool_{i}", "description": "d" * 80, "parameters": schema}}


BODIES: list[tuple[str, Callable[[bytes, LimitsConfig], object], dict[str, Any]]] = [
    ("chat, 1 short message, stream", parse_chat,
     {"model": "chat", "messages": [{"role": "user", "content": "Hello, how are you?"}], "max_tokens": 64,
      "stream": True, "stream_options": {"include_usage": True}}),
    ("chat, 21 messages (13 KB) + 5 tools", parse_chat,
     {"model": "chat", "temperature": 0.7, "max_tokens": 256, "tools": [tool(i) for i in range(5)],
      "messages": [{"role": "system", "content": "x" * 2000}]
      + [{"role": "user", "content": "y" * 500}, {"role": "assistant", "content": "z" * 500}] * 10}),
    ("chat, image + text parts", parse_chat,
     {"model": "chat", "messages": [{"role": "user", "content": [
         {"type": "text", "text": "What is in this image?"},
         {"type": "image_url", "image_url": {"url": "data:image/png;base64," + "A" * 20_000}}]}]}),
    ("chat, 1 MB message", parse_chat, {"model": "chat", "messages": [{"role": "user", "content": "w " * 500_000}]}),
    ("completion, 1 KB prompt", parse_completion, {"model": "base", "prompt": "p" * 1000, "max_tokens": 16}),
    ("embeddings, 64 inputs", parse_embedding, {"model": "embed", "input": ["some text to embed"] * 64}),
]


def best_us(func: Callable[[], object], repeat: int) -> float:
    return min(timeit.repeat(func, number=repeat, repeat=5)) / repeat * 1e6


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--repeat", type=int, default=2000)
    args = parser.parse_args()
    limits = LimitsConfig(max_body_bytes=8 * 1024 * 1024, max_message_chars=2 * 1024 * 1024)
    print("| body | bytes | parse_* (us) | json.loads (us) |")
    print("|---|---|---|---|")
    for name, parse, doc in BODIES:
        raw = json.dumps(doc).encode()
        repeat = max(10, args.repeat * 1000 // max(1000, len(raw)))
        parsed = best_us(lambda raw=raw, parse=parse: parse(raw, limits), repeat)
        loads = best_us(lambda raw=raw: json.loads(raw), repeat)
        print(f"| {name} | {len(raw)} | {parsed:.1f} | {loads:.1f} |")


if __name__ == "__main__":
    main()
