"""When a request reached the simulator: the kernel's receive time, not when the event loop got to it.

With thousands of streams, the simulator's single event loop spends a large part of each step writing tokens;
a request that arrives meanwhile is accepted and parsed only when the loop is free again. If the modelled
front-end delay started at that moment, every request would pay the simulator's own loop latency on top of the
model, and worse, requests would start their delay just after the engine's write phase, i.e. phase-locked to the
step boundaries instead of at a random point of a step (measured: +17% TTFT at 2,000 streams). A real API server
tokenises while it waits, so the front-end delay runs from the request's arrival on the socket.

Linux reports, per TCP socket, the milliseconds since data was last received (``tcpi_last_data_recv``, in
jiffies, so a few ms of resolution, unbiased); once the whole request is read that is the request's last byte.
Elsewhere (or for a non-TCP transport) there is no such clock and the caller falls back to "now".
"""

from __future__ import annotations

import asyncio
import socket
import struct

_TCP_INFO = getattr(socket, "TCP_INFO", None)
_LAST_DATA_RECV = struct.Struct("=I")  # __u32 tcpi_last_data_recv (ms) in struct tcp_info
_LAST_DATA_RECV_OFFSET = 52  # after 8 bytes of u8 fields, 9 u32 fields, last_data_sent and last_ack_sent
_TCP_INFO_LEN = _LAST_DATA_RECV_OFFSET + _LAST_DATA_RECV.size


def received_at(transport: asyncio.BaseTransport | None, now: float) -> float | None:
    """Loop-clock time the last byte of the request arrived (``now`` is the loop's time), or None if unknown."""
    if _TCP_INFO is None or transport is None:
        return None
    sock = transport.get_extra_info("socket")
    if sock is None:
        return None
    try:
        info = sock.getsockopt(socket.IPPROTO_TCP, _TCP_INFO, _TCP_INFO_LEN)
    except (OSError, AttributeError):
        return None
    if len(info) < _TCP_INFO_LEN:
        return None
    ms: int = _LAST_DATA_RECV.unpack_from(info, _LAST_DATA_RECV_OFFSET)[0]
    return now - ms / 1000.0
