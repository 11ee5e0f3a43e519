"""A network-namespace lab for root: hosts are namespaces, links are veth pairs with private /30s
(10.231.K.0/30, addresses that exist only inside the lab's namespaces), and faults are kernel ones:

- packet loss: an nftables rule ``numgen random mod 100 < N drop`` on a host's egress (postrouting);
- PMTU blackhole: a smaller MTU on a router's egress plus an nftables rule dropping the ICMP
  "fragmentation needed" it would send back;
- bandwidth: a ``tc tbf`` qdisc on an interface.

netem is not used: it needs the ``sch_netem`` kernel module, which many CI and VM kernels (this one included)
lack; :func:`probe_capabilities` says what this machine supports. Everything the lab creates is removed on
exit, also after a failure. Commands run with ``ip netns exec``.
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import subprocess
import sys
from collections.abc import Sequence
from dataclasses import dataclass, field
from types import TracebackType

NFT_TABLE = "tokenyard_chaos"
SUBNET = "10.231"


def _run(argv: Sequence[str], *, check: bool = True, timeout: float = 10.0) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(list(argv), capture_output=True, text=True, timeout=timeout, check=False)
    if check and result.returncode != 0:
        raise NetnsError(f"{' '.join(argv)} failed ({result.returncode}): {result.stderr.strip()}")
    return result


class NetnsError(RuntimeError):
    """A lab command failed; the message holds the command and its stderr."""


def unavailable_reason() -> str | None:
    """Why the lab cannot run here (not root, no ``ip``, namespaces refused), or None when it can."""
    if os.geteuid() != 0:
        return "network namespaces need root"
    if shutil.which("ip") is None:
        return "the `ip` command (Debian package iproute2) is not installed"
    probe = f"typrobe{os.getpid()}"
    try:
        _run(["ip", "netns", "add", probe])
    except (NetnsError, OSError, subprocess.TimeoutExpired) as exc:
        return f"`ip netns add` does not work here: {exc}"
    _run(["ip", "netns", "del", probe], check=False)
    return None


def probe_capabilities() -> dict[str, tuple[bool, str]]:
    """What this machine supports, as ``name -> (ok, detail)``: netns, veth, nft, tbf, netem."""
    reason = unavailable_reason()
    if reason is not None:
        return {"netns": (False, reason)}
    caps: dict[str, tuple[bool, str]] = {"netns": (True, "ip netns works")}
    with NetnsLab() as lab:
        a, b = lab.add_host("a"), lab.add_host("b")
        try:
            link = lab.link(a, b)
            caps["veth"] = (True, "veth pairs between namespaces work")
        except NetnsError as exc:
            caps["veth"] = (False, str(exc))
            return caps
        if shutil.which("nft") is None:
            caps["nft"] = (False, "`nft` is not installed (Debian package nftables): no loss, no PMTU blackhole")
        else:
            try:
                lab.add_loss(a, 1)
                caps["nft"] = (True, "nftables numgen random drop works")
            except NetnsError as exc:
                caps["nft"] = (False, str(exc))
        for kind, args in (("tbf", ["tbf", "rate", "1mbit", "burst", "32kbit", "latency", "100ms"]),
                           ("netem", ["netem", "delay", "1ms"])):
            result = a.exec(["tc", "qdisc", "replace", "dev", link.a_if, "root", *args], check=False)
            detail = "works" if result.returncode == 0 else result.stderr.strip() or "failed"
            caps[kind] = (result.returncode == 0, f"tc qdisc {kind}: {detail}")
    return caps


@dataclass
class Host:
    """One namespace. ``name`` is the lab's short name, ``ns`` the real namespace name."""

    name: str
    ns: str
    lab: NetnsLab = field(repr=False)

    def exec(self, argv: Sequence[str], *, check: bool = True, timeout: float = 30.0
             ) -> subprocess.CompletedProcess[str]:
        return _run(["ip", "netns", "exec", self.ns, *argv], check=check, timeout=timeout)

    def popen(self, argv: Sequence[str]) -> subprocess.Popen[str]:
        """Start a process in this namespace; the lab kills it (by PID) on exit."""
        proc = subprocess.Popen(["ip", "netns", "exec", self.ns, *argv], stdout=subprocess.PIPE,
                                stderr=subprocess.DEVNULL, text=True)
        self.lab._processes.append(proc)
        return proc

    def python(self, module: str, *args: str, timeout: float = 30.0) -> subprocess.CompletedProcess[str]:
        """Run ``python -m module args`` in this namespace (same interpreter as the caller)."""
        return self.exec([sys.executable, "-m", module, *args], check=False, timeout=timeout)


@dataclass(frozen=True)
class Link:
    """A veth pair: ``a_if`` in host a with ``a_addr``, ``b_if`` in host b with ``b_addr`` (a /30)."""

    a: Host
    b: Host
    a_if: str
    b_if: str
    a_addr: str
    b_addr: str


class NetnsLab:
    """Namespaces, links and faults, all removed on exit. Use as ``with NetnsLab() as lab: ...``."""

    def __init__(self) -> None:
        # Unique per lab so concurrent runs never collide; veth names stay within the kernel's 15 chars.
        self.tag = f"ty{secrets.token_hex(3)}"
        self.hosts: dict[str, Host] = {}
        self.links: list[Link] = []
        self._processes: list[subprocess.Popen[str]] = []

    def __enter__(self) -> NetnsLab:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()

    def close(self) -> None:
        """Kill the lab's processes and delete its namespaces (which deletes their veths and rules)."""
        for proc in self._processes:
            if proc.poll() is None:
                proc.kill()
            proc.wait(5)
            if proc.stdout is not None:
                proc.stdout.close()
        self._processes.clear()
        for host in self.hosts.values():
            _run(["ip", "netns", "del", host.ns], check=False)
        self.hosts.clear()

    def add_host(self, name: str) -> Host:
        if name in self.hosts:
            raise ValueError(f"host {name!r} exists")
        host = Host(name, f"{self.tag}-{name}", self)
        _run(["ip", "netns", "add", host.ns])
        self.hosts[name] = host
        host.exec(["ip", "link", "set", "lo", "up"])
        return host

    def link(self, a: Host, b: Host, *, mtu_a: int = 1500, mtu_b: int = 1500) -> Link:
        """Join ``a`` and ``b`` by a veth pair on 10.231.K.0/30 (K = link index): a gets .1, b gets .2.

        Different MTUs per end are allowed (that is how a PMTU blackhole is built)."""
        index = len(self.links)
        if index > 63:
            raise ValueError("at most 64 links per lab")
        a_if, b_if = f"{self.tag}{index}a", f"{self.tag}{index}b"
        _run(["ip", "link", "add", a_if, "netns", a.ns, "type", "veth", "peer", "name", b_if, "netns", b.ns])
        link = Link(a, b, a_if, b_if, f"{SUBNET}.{index}.1", f"{SUBNET}.{index}.2")
        for host, ifname, addr, mtu in ((a, a_if, link.a_addr, mtu_a), (b, b_if, link.b_addr, mtu_b)):
            host.exec(["ip", "addr", "add", f"{addr}/30", "dev", ifname])
            host.exec(["ip", "link", "set", ifname, "mtu", str(mtu), "up"])
        self.links.append(link)
        return link

    def route(self, host: Host, destination: str, via: str) -> None:
        """``ip route add destination via via`` in ``host`` (destination may be ``default``)."""
        host.exec(["ip", "route", "add", destination, "via", via])

    def enable_forwarding(self, host: Host) -> None:
        host.exec(["sh", "-c", "echo 1 > /proc/sys/net/ipv4/ip_forward"])

    def _ensure_nft_chain(self, host: Host) -> None:
        # One table per host namespace; a postrouting chain sees both local and forwarded egress packets.
        host.exec(["nft", "add", "table", "inet", NFT_TABLE])
        host.exec(["nft", "add", "chain", "inet", NFT_TABLE, "egress",
                   "{ type filter hook postrouting priority 0; policy accept; }"])

    def add_loss(self, host: Host, percent: int, ifname: str | None = None) -> None:
        """Drop ``percent`` % of the packets ``host`` sends (on ``ifname`` only, if given), at random."""
        if not 0 <= percent <= 100:
            raise ValueError("percent must be within 0..100")
        self._ensure_nft_chain(host)
        match = ["oifname", ifname] if ifname else []
        host.exec(["nft", "add", "rule", "inet", NFT_TABLE, "egress", *match,
                   "numgen", "random", "mod", "100", "<", str(percent), "counter", "drop"])

    def drop_frag_needed(self, host: Host) -> None:
        """Drop the ICMP "fragmentation needed" messages ``host`` sends: a PMTU blackhole when ``host`` is a
        router whose egress MTU is smaller than its senders' path."""
        self._ensure_nft_chain(host)
        host.exec(["nft", "add", "rule", "inet", NFT_TABLE, "egress", "icmp", "type", "destination-unreachable",
                   "icmp", "code", "frag-needed", "counter", "drop"])

    def clear_nft(self, host: Host) -> None:
        host.exec(["nft", "delete", "table", "inet", NFT_TABLE], check=False)

    def nft_drops(self, host: Host) -> int:
        """Packets dropped so far by this lab's rules in ``host``."""
        result = host.exec(["nft", "-j", "list", "table", "inet", NFT_TABLE], check=False)
        if result.returncode != 0:
            return 0
        total = 0
        for item in json.loads(result.stdout).get("nftables", []):
            for expr in item.get("rule", {}).get("expr", []):
                if "counter" in expr:
                    total += int(expr["counter"]["packets"])
        return total

    def shape(self, host: Host, ifname: str, rate_kbit: int, *, burst_bytes: int = 16 * 1024,
              latency_ms: int = 200) -> None:
        """Cap ``ifname``'s egress at ``rate_kbit`` with a tbf qdisc."""
        host.exec(["tc", "qdisc", "replace", "dev", ifname, "root", "tbf", "rate", f"{rate_kbit}kbit",
                   "burst", str(burst_bytes), "latency", f"{latency_ms}ms"])


@dataclass(frozen=True)
class Transfer:
    """One tcpprobe transfer's outcome."""

    ok: bool
    sent: int
    acknowledged: int
    seconds: float
    error: str | None


def start_sink(host: Host, address: str, port: int = 5201) -> subprocess.Popen[str]:
    """Start a tcpprobe sink in ``host`` on ``address:port`` and wait until it accepts connections."""
    proc = host.popen([sys.executable, "-m", "tokenyard.chaos.tcpprobe", "sink", "--host", address,
                       "--port", str(port)])
    assert proc.stdout is not None
    line = proc.stdout.readline()
    if "listening on" not in line:
        raise NetnsError(f"tcpprobe sink did not start in {host.name}: {line!r}")
    return proc


def send_bytes(host: Host, address: str, nbytes: int, *, port: int = 5201, timeout: float = 10.0,
               repeat: int = 1) -> list[Transfer]:
    """From ``host``, make ``repeat`` transfers of ``nbytes`` to a sink at ``address:port``."""
    result = host.python("tokenyard.chaos.tcpprobe", "send", "--host", address, "--port", str(port),
                         "--bytes", str(nbytes), "--timeout", str(timeout), "--repeat", str(repeat),
                         timeout=timeout * repeat + 30)
    return [Transfer(**json.loads(line)) for line in result.stdout.splitlines() if line.startswith("{")]
