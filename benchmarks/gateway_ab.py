"""Fine-grained A/B of the gateway's added latency and CPU per request at concurrency 1, with a raw-socket client.

    python benchmarks/gateway_ab.py [--rounds 20] [--block 200] [--baseline CHECKOUT]
                                    [--variant NAME=YAML ...] [--floors]

``gateway_overhead.py`` measures the issue's targets with an aiohttp client; its rounds are coarse (a latency
block, a stream block and a throughput block per path), and aiohttp's client costs more CPU than the gateway
saves in a small change. This script measures only concurrency 1, non-streaming, and as finely as possible:

- the client is a blocking socket per target (keep-alive, ``TCP_NODELAY``), whose own cost is small and the same
  for every target;
- the targets take turns every ``--block`` requests for ``--rounds`` rounds, so a noisy stretch of the machine
  hits them alike;
- the CPU time per request of the process answering each target (``/proc``; the simulator for ``direct``).

Targets: ``direct`` (the ``fast`` simulator), ``tokenyard`` (this checkout, ``serve --upstream``), ``baseline``
(another checkout's ``src/``, e.g. a git worktree of an older commit), one per ``--variant``: this checkout
with a config whose sections are the given YAML mapping, e.g. ``--variant 'noadm={admission: {enabled: false}}'``,
and with ``--floors`` the reference proxies of ``proxy_floors.py``: ``relay`` (a byte relay, the floor of any
proxy hop), ``core`` (tokenyard's server and upstream client with a minimal handler) and ``lean`` (the same HTTP
work without aiohttp's request and response objects).
Prints a markdown table; "added" is the median's difference to ``direct``.
"""

from __future__ import annotations

import argparse
import socket
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import yaml
from children import Child, cpu_s, serve  # benchmarks/children.py (scripts run from benchmarks/ on sys.path)

BODY = b'{"model":"sim-fast","messages":[{"role":"user","content":"hello there"}],"max_tokens":16}'
REQUEST = (b"POST /v1/chat/completions HTTP/1.1\r\nHost: bench\r\nContent-Type: application/json\r\n"
           b"Content-Length: %d\r\n\r\n%s" % (len(BODY), BODY))
WARMUP = 300


class Target:
    """One server under test and a keep-alive connection to it."""

    def __init__(self, name: str, url: str, pid: int) -> None:
        self.name = name
        self.pid = pid
        host, port = url.split("//", 1)[1].split(":")
        self.sock = socket.create_connection((host, int(port.split("/")[0])))
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.latencies: list[float] = []
        self.cpu_s = 0.0

    def ask(self) -> float:
        """One request; seconds until the whole answer is in."""
        start = time.perf_counter()
        self.sock.sendall(REQUEST)
        buf = b""
        while True:
            chunk = self.sock.recv(65536)
            if not chunk:
                raise ConnectionError(f"{self.name} closed the connection")
            buf += chunk
            head, sep, rest = buf.partition(b"\r\n\r\n")
            if sep and len(rest) >= _content_length(head):
                if not head.startswith(b"HTTP/1.1 200"):
                    raise RuntimeError(f"{self.name} answered {head.splitlines()[0]!r}")
                return time.perf_counter() - start

    def block(self, n: int) -> None:
        before = cpu_s(self.pid)
        self.latencies += [self.ask() for _ in range(n)]
        self.cpu_s += cpu_s(self.pid) - before


def _content_length(head: bytes) -> int:
    for line in head.split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            return int(value)
    raise RuntimeError("an answer without Content-Length")


def gateway(sim_url: str, checkout: str | None, sections: dict[str, Any] | None) -> Child:
    if sections is None:
        return serve(["--upstream", sim_url, "--port", "0"], checkout)
    document = {"listen": {"host": "127.0.0.1", "port": 0},
                "models": {"*": {"endpoints": [{"url": sim_url + "/v1"}]}}, **sections}
    with tempfile.NamedTemporaryFile("w", suffix=".yaml", delete=False) as config:
        yaml.safe_dump(document, config)
    try:
        return serve(["--config", config.name], checkout)
    finally:
        Path(config.name).unlink()  # read at start-up (the child is listening, or failed, by now)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--rounds", type=int, default=20)
    parser.add_argument("--block", type=int, default=200)
    parser.add_argument("--baseline", metavar="CHECKOUT", help="another checkout's gateway (its src/)")
    parser.add_argument("--variant", action="append", default=[], metavar="NAME=YAML",
                        help="this checkout with these config sections (repeatable)")
    parser.add_argument("--floors", action="store_true",
                        help="also measure the reference proxies of proxy_floors.py (relay, core, lean)")
    args = parser.parse_args()
    variants: dict[str, dict[str, Any]] = {}
    for spec in args.variant:
        name, _, text = spec.partition("=")
        sections = yaml.safe_load(text)
        if not name or not isinstance(sections, dict):
            parser.error(f"--variant wants NAME=YAML mapping, got {spec!r}")
        variants[name] = sections
    py = sys.executable
    sim = Child([py, "-m", "tokenyard", "sim", "--profile", "fast", "--port", "0"])
    children: dict[str, Child] = {}
    try:  # every child started so far is stopped, whatever fails
        children["tokenyard"] = gateway(sim.url, None, None)
        if args.baseline:
            children["baseline"] = gateway(sim.url, args.baseline, None)
        for name, sections in variants.items():
            children[name] = gateway(sim.url, None, sections)
        if args.floors:
            for kind in ("relay", "core", "lean"):
                children[kind] = Child([py, str(Path(__file__).with_name("proxy_floors.py")), kind, sim.url])
        targets = [Target("direct", sim.url, sim.proc.pid)]
        targets += [Target(name, child.url, child.proc.pid) for name, child in children.items()]
        for target in targets:
            for _ in range(WARMUP):
                target.ask()
        for _ in range(args.rounds):
            for target in targets:
                target.block(args.block)
    finally:
        for child in children.values():
            child.stop()
        sim.stop()
    direct = statistics.median(targets[0].latencies)
    print(f"{args.rounds} rounds of {args.block} requests per target, raw-socket client, concurrency 1")
    print()
    print("| target | p50 ms | added p50 ms | p99 ms | CPU ms/request |")
    print("|---|---|---|---|---|")
    for target in targets:
        lat = sorted(target.latencies)
        p50 = statistics.median(lat)
        p99 = lat[min(len(lat) - 1, int(len(lat) * 0.99))]
        print(f"| {target.name} | {1000 * p50:.3f} | {1000 * (p50 - direct):.3f} | {1000 * p99:.3f} | "
              f"{1000 * target.cpu_s / len(lat):.3f} |")


if __name__ == "__main__":
    main()
