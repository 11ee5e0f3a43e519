"""Latency attribution: split one request's time into gateway queue, connect, network, upstream queue, prefill
and decode, so a "model slowdown" can be told from network trouble.

``tcp_info(sock)`` reads the kernel's smoothed RTT and retransmit count of the upstream connection with
``getsockopt(IPPROTO_TCP, TCP_INFO)`` (Linux). ``PhaseClock`` collects the time stamps of one attempt; its
``phases()`` are what the access log (``phases_ms``) and ``tokenyard_upstream_phase_seconds{backend,phase}``
show. Phases (seconds):

- ``queue``: waiting in the gateway (admission queue) before the attempt.
- ``connect``: opening a new upstream connection (0 on a reused keep-alive connection).
- ``network``: one TCP round trip (the socket's smoothed RTT when the answer ended) - the wire's share of
  the time to first byte.
- ``upstream_queue``: the backend's own queueing, when it reports it in ``x-upstream-queue-ms``.
- ``prefill``: request sent -> first token, minus network and upstream queue (streams: the TTFT the server
  caused).
- ``decode``: first token -> end of the answer (streams).
- ``upstream``: request sent -> whole answer, minus network and upstream queue, for non-streaming answers,
  where prefill and decode cannot be told apart from outside.
"""

from __future__ import annotations

import contextlib
import socket
import struct
from dataclasses import dataclass
from typing import Protocol

UPSTREAM_QUEUE_HEADER = "x-upstream-queue-ms"
# struct tcp_info (linux/tcp.h): 8 one-byte fields, then 32-bit fields; tcpi_rtt is the 16th u32 (microseconds),
# tcpi_rttvar the 17th, tcpi_total_retrans the 24th.
_TCP_INFO_LEN = 104
_RTT_OFFSET = 8 + 4 * 15
_RTTVAR_OFFSET = 8 + 4 * 16
_TOTAL_RETRANS_OFFSET = 8 + 4 * 23


class _SockOpt(Protocol):
    def getsockopt(self, level: int, option: int, buflen: int) -> bytes: ...


@dataclass(frozen=True, slots=True)
class TcpInfo:
    """What the kernel knows about one TCP connection: smoothed RTT and its variance (seconds), and the
    retransmissions over the connection's life (a keep-alive connection carries several requests)."""

    rtt_s: float
    rttvar_s: float
    total_retrans: int


def tcp_info(sock: object) -> TcpInfo | None:
    """The connection's ``TCP_INFO``; None when not a TCP socket or the platform has no ``TCP_INFO``."""
    option = getattr(socket, "TCP_INFO", None)
    if option is None or not hasattr(sock, "getsockopt"):
        return None
    try:
        raw = sock.getsockopt(socket.IPPROTO_TCP, option, _TCP_INFO_LEN)
    except (OSError, ValueError, TypeError):
        return None
    if not isinstance(raw, bytes) or len(raw) < _TOTAL_RETRANS_OFFSET + 4:
        return None
    (rtt,) = struct.unpack_from("I", raw, _RTT_OFFSET)
    (rttvar,) = struct.unpack_from("I", raw, _RTTVAR_OFFSET)
    (retrans,) = struct.unpack_from("I", raw, _TOTAL_RETRANS_OFFSET)
    return TcpInfo(rtt / 1e6, rttvar / 1e6, retrans)


class PhaseClock:
    """Time stamps (``time.monotonic()``) of one upstream attempt, filled in as it goes."""

    __slots__ = ("connect_s", "done_at", "first_token_at", "head_at", "queue_s", "retransmits", "sent_at", "tcp",
                 "upstream_queue_s")

    def __init__(self, sent_at: float, queue_s: float = 0.0) -> None:
        self.queue_s = queue_s
        self.sent_at = sent_at
        self.connect_s = 0.0
        self.head_at: float | None = None
        self.first_token_at: float | None = None
        self.done_at: float | None = None
        self.tcp: TcpInfo | None = None
        self.retransmits = 0
        self.upstream_queue_s = 0.0

    def at_head(self, now: float) -> None:
        """The response head arrived."""
        self.head_at = now

    def at_end(self, now: float, first_token_at: float | None, tcp: TcpInfo | None = None,
               retransmits: int = 0) -> None:
        """The answer ended; ``tcp`` is the connection's ``TCP_INFO`` read now (one ``getsockopt`` per request),
        ``retransmits`` the segments it retransmitted since the connection's previous request ended."""
        self.done_at = now
        self.first_token_at = first_token_at
        self.tcp = tcp
        self.retransmits = retransmits

    def upstream_queue_from(self, header: str | None) -> None:
        """Read the backend's own queue time from its response header, when it sends one."""
        if header:
            with contextlib.suppress(ValueError):
                self.upstream_queue_s = max(0.0, float(header) / 1000.0)

    def phases(self) -> dict[str, float]:
        """Seconds per phase (see the module docstring); only the phases that were measured."""
        out = {"queue": self.queue_s, "connect": self.connect_s}
        network = self.tcp.rtt_s if self.tcp is not None else 0.0
        out["network"] = network
        if self.upstream_queue_s:
            out["upstream_queue"] = self.upstream_queue_s
        server_start = self.sent_at + self.connect_s
        overhead = network + self.upstream_queue_s
        if self.first_token_at is not None:
            out["prefill"] = max(0.0, self.first_token_at - server_start - overhead)
            if self.done_at is not None:
                out["decode"] = max(0.0, self.done_at - self.first_token_at)
        elif self.done_at is not None:
            out["upstream"] = max(0.0, self.done_at - server_start - overhead)
        return out
