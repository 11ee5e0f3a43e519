"""The network-namespace lab (root only): nftables loss, a PMTU blackhole, tbf bandwidth, and cleanup.

Skipped with the reason when not root, when `ip netns` does not work, or (per test) when `nft` is missing.
"""

from __future__ import annotations

import asyncio
import shutil
import subprocess
from collections.abc import Iterator

import pytest

from tokenyard.chaos.drivers import LossFault
from tokenyard.chaos.netns import NetnsError, NetnsLab, probe_capabilities, send_bytes, start_sink, unavailable_reason
from tokenyard.chaos.scenario import Sample, run_scenario

pytestmark = pytest.mark.root
needs_nft = pytest.mark.skipif(shutil.which("nft") is None,
                               reason="`nft` not installed (Debian package nftables)")


def namespaces() -> str:
    return subprocess.run(["ip", "netns", "list"], capture_output=True, text=True, check=True).stdout


@pytest.fixture(autouse=True, scope="module")
def _require_netns() -> None:
    reason = unavailable_reason()
    if reason is not None:
        pytest.skip(f"netns lab unavailable: {reason}")


@pytest.fixture
def lab() -> Iterator[NetnsLab]:
    with NetnsLab() as created:
        yield created
    assert created.tag not in namespaces()


@needs_nft
def test_transfers_complete_through_five_percent_random_loss(lab: NetnsLab) -> None:
    a, b = lab.add_host("a"), lab.add_host("b")
    link = lab.link(a, b)
    start_sink(b, link.b_addr)
    lab.add_loss(a, 5)
    lab.add_loss(b, 5)
    transfers = send_bytes(a, link.b_addr, 4_000_000, repeat=8, timeout=20)
    assert len(transfers) == 8
    assert all(t.ok for t in transfers), transfers
    assert lab.nft_drops(a) + lab.nft_drops(b) > 0  # packets really were dropped, and TCP recovered


@needs_nft
def test_pmtu_blackhole_stalls_large_transfers_only(lab: NetnsLab) -> None:
    a, router, b = lab.add_host("a"), lab.add_host("r"), lab.add_host("b")
    near = lab.link(a, router)
    far = lab.link(router, b, mtu_a=1280)  # the router's egress to b is smaller than both endpoints' links
    lab.enable_forwarding(router)
    lab.route(a, "default", near.b_addr)
    lab.route(b, "default", far.a_addr)
    start_sink(b, far.b_addr)
    lab.drop_frag_needed(router)
    [small] = send_bytes(a, far.b_addr, 500, timeout=5)
    assert small.ok, small
    [large] = send_bytes(a, far.b_addr, 200_000, timeout=2)
    assert not large.ok and large.error is not None and "timed out" in large.error
    assert lab.nft_drops(router) > 0  # the "fragmentation needed" replies were swallowed
    lab.clear_nft(router)
    [healed] = send_bytes(a, far.b_addr, 200_000, timeout=10)
    assert healed.ok, healed  # with ICMP delivered, path MTU discovery works again


def test_tbf_caps_bandwidth(lab: NetnsLab) -> None:
    a, b = lab.add_host("a"), lab.add_host("b")
    link = lab.link(a, b)
    start_sink(b, link.b_addr)
    try:
        lab.shape(a, link.a_if, 4000)  # 4 Mbit/s = 500 kB/s
    except NetnsError as exc:
        pytest.skip(f"tc tbf unavailable on this kernel: {exc}")
    [transfer] = send_bytes(a, link.b_addr, 600_000, timeout=20)
    assert transfer.ok, transfer
    assert transfer.seconds >= 0.8  # ~1.2 s at the cap (minus the burst); unshaped it takes milliseconds


def test_lab_removes_its_namespaces_even_on_failure() -> None:
    with pytest.raises(RuntimeError), NetnsLab() as lab:
        lab.add_host("x")
        lab.link(lab.hosts["x"], lab.add_host("y"))
        assert lab.tag in namespaces()
        raise RuntimeError("boom")
    assert lab.tag not in namespaces()


def test_capabilities_report_what_works() -> None:
    caps = probe_capabilities()
    assert caps["netns"][0] and caps["veth"][0]
    assert "tbf" in caps
    assert caps["nft"][0] == (shutil.which("nft") is not None)
    assert "netem" in caps  # reported either way; absent on kernels without sch_netem


@needs_nft
async def test_loss_scenario_completes_and_reports(lab: NetnsLab) -> None:
    a, b = lab.add_host("a"), lab.add_host("b")
    link = lab.link(a, b)
    await asyncio.to_thread(start_sink, b, link.b_addr)

    async def workload() -> list[Sample]:
        transfers = await asyncio.to_thread(send_bytes, a, link.b_addr, 200_000, repeat=20, timeout=10)
        return [Sample(t.seconds, t.ok) for t in transfers]

    report = await run_scenario(workload, LossFault(lab, [a, b], 5))
    print(report.render())
    assert all(report.phases[p].requests == 20 and report.phases[p].success_rate == 1.0
               for p in ("before", "during", "after"))
