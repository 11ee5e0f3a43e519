"""A tiny TCP sink and sender for network labs, run as ``python -m tokenyard.chaos.tcpprobe`` inside a
namespace (stdlib only, so it starts fast and needs nothing from the gateway).

- ``sink --host H --port P``: accept connections forever; for each, read until EOF, answer with the byte count.
  Prints ``tcpprobe sink listening on http://H:P`` once it accepts (the repo's convention for servers).
- ``send --host H --port P --bytes N [--timeout S] [--repeat K]``: K times (one connection each): connect,
  send N bytes, half-close, read the count back; prints one JSON line per transfer
  ``{"ok", "sent", "acknowledged", "seconds", "error"}``; exit status 0 only when every transfer was ok.
"""

from __future__ import annotations

import argparse
import json
import socket
import sys
import threading
import time

CHUNK = 64 * 1024


def _serve_one(conn: socket.socket) -> None:
    with conn:
        total = 0
        try:
            while data := conn.recv(CHUNK):
                total += len(data)
            conn.sendall(f"{total}\n".encode())
        except OSError:
            pass


def sink(host: str, port: int) -> None:
    with socket.create_server((host, port), reuse_port=False) as server:
        print(f"tcpprobe sink listening on http://{host}:{server.getsockname()[1]}", flush=True)
        while True:
            conn, _ = server.accept()
            threading.Thread(target=_serve_one, args=(conn,), daemon=True).start()


def send(host: str, port: int, nbytes: int, timeout: float) -> dict[str, object]:
    """Send ``nbytes`` and wait for the sink's count; never blocks longer than ``timeout`` in total."""
    start = time.monotonic()
    deadline = start + timeout
    result: dict[str, object] = {"ok": False, "sent": 0, "acknowledged": 0, "seconds": 0.0, "error": None}
    payload = bytes(CHUNK)
    try:
        with socket.create_connection((host, port), timeout=timeout) as sock:
            sent = 0
            while sent < nbytes:
                sock.settimeout(max(0.01, deadline - time.monotonic()))
                sent += sock.send(payload[: min(CHUNK, nbytes - sent)])
                result["sent"] = sent
            sock.shutdown(socket.SHUT_WR)
            sock.settimeout(max(0.01, deadline - time.monotonic()))
            reply = b""
            while not reply.endswith(b"\n"):
                data = sock.recv(64)
                if not data:
                    break
                reply += data
            result["acknowledged"] = int(reply or b"0")
            result["ok"] = result["acknowledged"] == nbytes
    except (OSError, ValueError) as exc:
        result["error"] = f"{type(exc).__name__}: {exc}"
    result["seconds"] = round(time.monotonic() - start, 4)
    return result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="tcpprobe")
    sub = parser.add_subparsers(dest="mode", required=True)
    for mode in ("sink", "send"):
        p = sub.add_parser(mode)
        p.add_argument("--host", required=True)
        p.add_argument("--port", type=int, required=True)
        if mode == "send":
            p.add_argument("--bytes", type=int, required=True)
            p.add_argument("--timeout", type=float, default=10.0, help="per transfer")
            p.add_argument("--repeat", type=int, default=1)
    args = parser.parse_args(argv)
    if args.mode == "sink":
        sink(args.host, args.port)
        return 0
    all_ok = True
    for _ in range(args.repeat):
        result = send(args.host, args.port, args.bytes, args.timeout)
        print(json.dumps(result), flush=True)
        all_ok = all_ok and bool(result["ok"])
    return 0 if all_ok else 1


if __name__ == "__main__":
    sys.exit(main())
