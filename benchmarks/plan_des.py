"""How fast the planner's discrete-event simulation runs: simulated requests and tokens per CPU second.

    python benchmarks/plan_des.py            # prints a markdown table (docs/benchmarks.md, "Capacity planner")

Each row simulates ``duration`` virtual seconds of Poisson arrivals of the shipped example plan's request mix
(``tokenyard plan example``: a chat turn and a 4-call agent on the ``large`` profile) on N replicas.
"""

from __future__ import annotations

import argparse
import time

from tokenyard.plan import load_plan, make_plan
from tokenyard.plan.backend import resolve_backend
from tokenyard.plan.demand import model_demands
from tokenyard.plan.des import poisson_arrivals, simulate_fleet


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--duration", type=float, default=60.0, help="virtual seconds of arrivals per row")
    parser.add_argument("--no-plan", action="store_true", help="skip timing the whole example plan")
    args = parser.parse_args()
    spec = load_plan("example")
    backend = resolve_backend(spec.backends["chat"])
    demand = model_demands(spec)["chat"]
    print("| replicas | req/s | simulated requests | output tokens | CPU s | requests / CPU s | tokens / CPU s |")
    print("|---|---|---|---|---|---|---|")
    for replicas, rate in ((1, 4.0), (6, 27.0), (20, 90.0)):
        arrivals = poisson_arrivals(demand, rate, args.duration, seed=0)
        tokens = sum(a.output_tokens for a in arrivals)
        start = time.process_time()
        simulate_fleet(backend.params, replicas, arrivals, warmup_s=5.0)
        cpu = time.process_time() - start
        print(f"| {replicas} | {rate:g} | {len(arrivals)} | {tokens} | {cpu:.2f} | {len(arrivals) / cpu:,.0f} | "
              f"{tokens / cpu:,.0f} |")
    if not args.no_plan:
        wall, cpu = time.perf_counter(), time.process_time()
        plan = make_plan(spec)
        print(f"\nwhole example plan ({len(plan.months)} months, peak and surge): "
              f"{time.perf_counter() - wall:.1f} s wall, {time.process_time() - cpu:.1f} s CPU")


if __name__ == "__main__":
    main()
