"""Flow-control queue: strict priority across bands, DRR across tenants inside a band, EDF inside a tenant.

Pure: time is passed in. Structure (after GIE/llm-d flow control, see docs/admission.md):

* **Bands** are traffic-class priorities (lower number is served first). Dispatch is strict priority, with an
  anti-starvation guard by *aging*: an entry that has waited ``aging_fraction`` (default 1/2) of its queue TTL
  moves up one band (once), so a flood of premium traffic delays batch but cannot starve it forever.
* **Tenants** inside a band share it by deficit round robin: each turn a tenant earns
  ``quantum * weight`` tokens of credit and may dispatch while its head entry's cost fits. Cost is
  ``prompt_tokens + w_out * min(max_tokens, out_cap)``, fixed at enqueue; ``settle`` corrects the tenant's
  credit with the actual tokens once the request finishes (an under-estimate becomes a debt that survives
  the tenant going idle, a positive balance does not: idle tenants must not hoard credit).
* **Entries** inside a tenant are ordered earliest-deadline-first; entries without a deadline go last and
  ties are first-come-first-served (by sequence number, not id).

Removal (client cancel) and TTL expiry are O(log n) amortised: entries are marked dead and skipped lazily
when they surface at the top of a heap.
"""

from __future__ import annotations

import heapq
import itertools
from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass, field

DEFAULT_QUANTUM = 4096
DEFAULT_OUTPUT_WEIGHT = 1.0
DEFAULT_OUTPUT_CAP = 512


def request_cost(
    prompt_tokens: int,
    max_tokens: int | None,
    *,
    output_weight: float = DEFAULT_OUTPUT_WEIGHT,
    output_cap: int = DEFAULT_OUTPUT_CAP,
) -> float:
    """DRR cost of a request: prompt tokens + w_out * min(max_tokens, cap); no max_tokens counts as the cap."""
    out = output_cap if max_tokens is None else min(max_tokens, output_cap)
    return float(max(0, prompt_tokens)) + output_weight * max(0, out)


@dataclass(eq=False)
class QueueEntry:
    """One queued request. ``band`` is the current band (it may improve by aging); ``klass`` is the traffic
    class name used for depth accounting; ``deadline`` orders entries inside a tenant (None = last);
    ``expires_at`` is when the entry leaves the queue unserved."""

    entry_id: str
    tenant: str
    klass: str
    band: int
    cost: float
    enqueued_at: float
    expires_at: float
    deadline: float | None = None
    weight: float = 1.0
    seq: int = 0
    original_band: int = 0
    alive: bool = True
    # The tenant queue that currently holds the entry; aging moves it, leaving a stale heap node behind.
    home: _Tenant | None = field(default=None, init=False, repr=False, compare=False)

    @property
    def ttl_s(self) -> float:
        return self.expires_at - self.enqueued_at


@dataclass
class _Tenant:
    heap: list[tuple[int, float, int, QueueEntry]] = field(default_factory=list)
    live: int = 0
    deficit: float = 0.0
    weight: float = 1.0

    def peek(self) -> QueueEntry | None:
        while self.heap:
            entry = self.heap[0][3]
            if entry.alive and entry.home is self:
                return entry
            heapq.heappop(self.heap)
        return None


@dataclass
class _Band:
    tenants: dict[str, _Tenant] = field(default_factory=dict)
    active: deque[str] = field(default_factory=deque)
    fresh_turn: bool = True
    live: int = 0


@dataclass(frozen=True)
class FairQueueSettings:
    """Knobs of the fair queue, with the defaults from docs/admission.md."""

    quantum: float = DEFAULT_QUANTUM
    aging_fraction: float | None = 0.5  # None disables aging (pure strict priority)


class FairQueue:
    """Priority bands x DRR tenants x EDF entries. Not thread-safe; one asyncio loop owns it."""

    def __init__(self, settings: FairQueueSettings | None = None) -> None:
        self.settings = settings or FairQueueSettings()
        self._bands: dict[int, _Band] = {}
        self._entries: dict[str, QueueEntry] = {}
        self._expiry: list[tuple[float, int, QueueEntry]] = []
        self._aging: list[tuple[float, int, QueueEntry]] = []
        self._seq = itertools.count()
        self._depth: dict[str, int] = {}
        # Debts (negative credit) of tenants that went idle, keyed by (band, tenant).
        self._debts: dict[tuple[int, str], float] = {}

    # ---- inspection -------------------------------------------------------------------------------------
    def __len__(self) -> int:
        return len(self._entries)

    def __contains__(self, entry_id: object) -> bool:
        return entry_id in self._entries

    def get(self, entry_id: str) -> QueueEntry | None:
        return self._entries.get(entry_id)

    def depth_by_class(self) -> dict[str, int]:
        """Queued entries per traffic class (the class they arrived with, even if aged up)."""
        return {k: v for k, v in self._depth.items() if v}

    def depth_of(self, klass: str) -> int:
        """Queued entries of one traffic class (``depth_by_class().get(klass, 0)`` without building the dict)."""
        return self._depth.get(klass, 0)

    def depth_ahead(self, band: int) -> int:
        """Entries in bands served no later than ``band`` (an upper bound on the queue position)."""
        return sum(b.live for number, b in self._bands.items() if number <= band)

    def entries(self) -> Iterator[QueueEntry]:
        return iter(list(self._entries.values()))

    def next_expiry(self) -> float | None:
        while self._expiry and not self._expiry[0][2].alive:
            heapq.heappop(self._expiry)
        return self._expiry[0][0] if self._expiry else None

    # ---- mutation ---------------------------------------------------------------------------------------
    def push(
        self,
        entry_id: str,
        *,
        tenant: str,
        klass: str,
        band: int,
        cost: float,
        now: float,
        ttl_s: float,
        deadline: float | None = None,
        weight: float = 1.0,
        aging_base_s: float | None = None,
    ) -> QueueEntry:
        """Enqueue a request; ``ttl_s`` is how long it may wait, ``deadline`` its EDF key (absolute).
        Aging happens after ``aging_fraction`` of ``aging_base_s`` (default ``ttl_s``): the class queue TTL,
        when a tighter budget (an SLO) cuts the entry's own TTL short, so a request is not promoted merely
        because its budget is short."""
        if entry_id in self._entries:
            raise ValueError(f"duplicate queue entry {entry_id!r}")
        entry = self._new_entry(entry_id, tenant, klass, band, cost, now, ttl_s, deadline, weight)
        self._entries[entry_id] = entry
        self._depth[klass] = self._depth.get(klass, 0) + 1
        heapq.heappush(self._expiry, (entry.expires_at, entry.seq, entry))
        fraction = self.settings.aging_fraction
        if fraction is not None and band > 0:
            base = ttl_s if aging_base_s is None else aging_base_s
            heapq.heappush(self._aging, (now + fraction * max(0.0, base), entry.seq, entry))
        self._place(entry)
        return entry

    def _new_entry(self, entry_id: str, tenant: str, klass: str, band: int, cost: float, now: float, ttl_s: float,
                   deadline: float | None, weight: float) -> QueueEntry:
        if weight <= 0:
            raise ValueError("weight must be positive")
        return QueueEntry(entry_id=entry_id, tenant=tenant, klass=klass, band=band, cost=cost, enqueued_at=now,
                          expires_at=now + max(0.0, ttl_s), deadline=deadline, weight=weight, seq=next(self._seq),
                          original_band=band)

    def dispatch_now(
        self,
        entry_id: str,
        *,
        tenant: str,
        klass: str,
        band: int,
        cost: float,
        now: float,
        ttl_s: float,
        deadline: float | None = None,
        weight: float = 1.0,
    ) -> QueueEntry:
        """``push`` then ``pop`` on an empty queue, in one step: the entry is served at once, with the same
        effect on DRR credit. Alone in its band, the entry is served after as many quantum rounds as its cost
        needs, so its tenant leaves with a non-negative balance, which is dropped (idle tenants hoard no credit):
        the one lasting effect is that a debt the tenant carried is paid off. Raises ``ValueError`` when the
        queue is not empty (then another entry may be due first: use ``push``/``pop``)."""
        if self._entries:
            raise ValueError("dispatch_now needs an empty queue")
        entry = self._new_entry(entry_id, tenant, klass, band, cost, now, ttl_s, deadline, weight)
        entry.alive = False
        self._debts.pop((band, tenant), None)
        return entry

    def remove(self, entry_id: str) -> QueueEntry | None:
        """Take an entry out (client cancel); None if it is not queued. Counters are restored at once."""
        entry = self._entries.get(entry_id)
        if entry is None:
            return None
        self._forget(entry)
        return entry

    def expire(self, now: float) -> list[QueueEntry]:
        """Remove and return every entry whose TTL has run out (``expires_at <= now``)."""
        out: list[QueueEntry] = []
        while self._expiry and self._expiry[0][0] <= now:
            _, _, entry = heapq.heappop(self._expiry)
            if entry.alive:
                self._forget(entry)
                out.append(entry)
        return out

    def pop(self, now: float) -> QueueEntry | None:
        """Dispatch the next entry (aging applied at ``now``). Call ``expire(now)`` first: ``pop`` does not
        look at TTLs, so an entry past its TTL that was not collected could still be returned."""
        self._age(now)
        for number in sorted(self._bands):
            band = self._bands[number]
            if band.live == 0:
                continue
            entry = self._pop_band(number, band)
            if entry is not None:
                return entry
        return None

    def settle(self, entry: QueueEntry, actual_cost: float) -> None:
        """Correct the tenant's DRR credit in the band it was served from by ``cost - actual``."""
        delta = entry.cost - actual_cost
        band = self._bands.get(entry.band)
        tenant = band.tenants.get(entry.tenant) if band else None
        if tenant is not None:
            tenant.deficit += delta
            return
        key = (entry.band, entry.tenant)
        debt = min(0.0, self._debts.get(key, 0.0) + delta)
        if debt < 0:
            self._debts[key] = debt
        else:
            self._debts.pop(key, None)

    # ---- internals --------------------------------------------------------------------------------------
    def _place(self, entry: QueueEntry) -> None:
        band = self._bands.setdefault(entry.band, _Band())
        tenant = band.tenants.get(entry.tenant)
        if tenant is None:
            tenant = _Tenant(weight=entry.weight, deficit=self._debts.pop((entry.band, entry.tenant), 0.0))
            band.tenants[entry.tenant] = tenant
            band.active.append(entry.tenant)
        tenant.weight = entry.weight
        entry.home = tenant
        key_missing = 1 if entry.deadline is None else 0
        heapq.heappush(tenant.heap, (key_missing, entry.deadline or 0.0, entry.seq, entry))
        tenant.live += 1
        band.live += 1

    def _unplace(self, entry: QueueEntry) -> None:
        band = self._bands[entry.band]
        tenant = band.tenants[entry.tenant]
        tenant.live -= 1
        band.live -= 1
        entry.home = None
        if tenant.live == 0:
            self._retire_tenant(entry.band, band, entry.tenant)

    def _retire_tenant(self, number: int, band: _Band, name: str) -> None:
        tenant = band.tenants.pop(name)
        if tenant.deficit < 0:
            self._debts[(number, name)] = tenant.deficit
        if band.active and band.active[0] == name:
            band.fresh_turn = True
        band.active.remove(name)

    def _forget(self, entry: QueueEntry) -> None:
        entry.alive = False
        del self._entries[entry.entry_id]
        self._depth[entry.klass] -= 1
        self._unplace(entry)

    def _age(self, now: float) -> None:
        while self._aging and self._aging[0][0] <= now:
            _, _, entry = heapq.heappop(self._aging)
            if not entry.alive or entry.band == 0 or entry.band != entry.original_band:
                continue
            self._unplace(entry)
            entry.band -= 1
            self._place(entry)

    def _pop_band(self, number: int, band: _Band) -> QueueEntry | None:
        quantum = self.settings.quantum
        misses = 0
        while band.active:
            name = band.active[0]
            tenant = band.tenants[name]
            head = tenant.peek()
            if head is None:  # only stale nodes were left
                self._retire_tenant(number, band, name)
                continue
            if band.fresh_turn:
                tenant.deficit += quantum * tenant.weight
                band.fresh_turn = False
            if head.cost <= tenant.deficit:
                tenant.deficit -= head.cost
                heapq.heappop(tenant.heap)
                head.alive = False
                del self._entries[head.entry_id]
                self._depth[head.klass] -= 1
                tenant.live -= 1
                band.live -= 1
                head.home = None
                if tenant.live == 0:
                    self._retire_tenant(number, band, name)
                return head
            band.active.rotate(-1)
            band.fresh_turn = True
            misses += 1
            if misses >= len(band.active):
                self._fast_forward(band, quantum)
                misses = 0
        return None

    @staticmethod
    def _fast_forward(band: _Band, quantum: float) -> None:
        """A whole round passed without a dispatch (large heads): grant the rounds that would still pass
        before the first head fits, all at once, instead of looping quantum by quantum."""
        rounds: list[int] = []
        for tenant in band.tenants.values():
            head = tenant.peek()
            if head is not None:
                step = quantum * tenant.weight
                rounds.append(max(0, int((head.cost - tenant.deficit) // step)))
        skip = min(rounds, default=0)
        if skip > 1:
            for tenant in band.tenants.values():
                tenant.deficit += (skip - 1) * quantum * tenant.weight
