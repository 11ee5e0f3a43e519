"""Capacity planning: ``tokenyard plan`` and its Python API.

    from tokenyard.plan import load_plan, make_plan
    plan = make_plan(load_plan("plan.yaml"))
    plan.to_json()["horizon"]["models"]["chat"]["replicas"]

See docs/planning.md for the inputs, the method (analytic bound + discrete-event simulation of the simulator's
own scheduler) and how the result is validated.
"""

from __future__ import annotations

from tokenyard.plan.errors import PlanError
from tokenyard.plan.planner import Plan, make_plan
from tokenyard.plan.spec import PlanSpec, load_plan, parse_plan

__all__ = ["Plan", "PlanError", "PlanSpec", "load_plan", "make_plan", "parse_plan"]
