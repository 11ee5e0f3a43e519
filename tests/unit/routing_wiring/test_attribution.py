"""Latency attribution: TCP_INFO of a real loopback connection, and the phase arithmetic."""

from __future__ import annotations

import socket

from tokenyard.upstream.attribution import PhaseClock, TcpInfo, tcp_info


def test_tcp_info_of_a_loopback_connection() -> None:
    with socket.create_server(("127.0.0.1", 0)) as server:
        client = socket.create_connection(server.getsockname())
        peer, _ = server.accept()
        try:
            client.sendall(b"x" * 1000)
            peer.recv(1000)
            info = tcp_info(client)
        finally:
            client.close()
            peer.close()
    assert info is not None and 0 < info.rtt_s < 1.0 and info.total_retrans == 0
    assert tcp_info(object()) is None


def test_phases_of_a_stream_and_of_a_whole_answer() -> None:
    clock = PhaseClock(sent_at=10.0, queue_s=0.25)
    clock.connect_s = 0.01
    clock.tcp = TcpInfo(rtt_s=0.002, rttvar_s=0.001, total_retrans=0)
    clock.upstream_queue_from("40")
    clock.first_token_at = 10.3
    clock.done_at = 11.3
    phases = clock.phases()
    assert phases["queue"] == 0.25 and phases["connect"] == 0.01 and phases["network"] == 0.002
    assert abs(phases["upstream_queue"] - 0.04) < 1e-9
    assert abs(phases["prefill"] - (0.3 - 0.01 - 0.002 - 0.04)) < 1e-9
    assert abs(phases["decode"] - 1.0) < 1e-9
    whole = PhaseClock(sent_at=0.0)
    whole.upstream_queue_from("not a number")
    whole.done_at = 0.5
    assert whole.phases() == {"queue": 0.0, "connect": 0.0, "network": 0.0, "upstream": 0.5}
