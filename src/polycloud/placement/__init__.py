"""Placement: the cost and latency model of DESIGN.md §4 and its exact optimiser (pure; no I/O)."""

from polycloud.placement.plan import Assignment, Infeasible, Placement, Plan
from polycloud.placement.planning import plan_fleet, plan_fleet_detailed

__all__ = ["Assignment", "Infeasible", "Placement", "Plan", "plan_fleet", "plan_fleet_detailed"]
