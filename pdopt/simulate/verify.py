"""`verify_plan`: is a plan the smallest that meets its SLOs in simulation? (docs/simulation.md,
section "Verify").

The plan is simulated, then each neighbour with one instance fewer in one pool (same routing; a
pool that drops to 0 hands its flows to the workload's other flows). If the plan meets its SLOs and
no neighbour does, it is the smallest. Otherwise a greedy search walks from the plan: downwards
(cheapest passing neighbour) while a neighbour passes, or upwards (the added instance that most
improves the worst SLO ratio) until the SLOs are met, and reports the counts it ends at.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from pdopt.plan import Flow, Plan
from pdopt.scenario.prepare import PreparedScenario, prepare
from pdopt.scenario.schema import Scenario
from pdopt.simulate.simulator import SimulationOptions, SimulationResult, simulate_plan

#: At most this many greedy steps upwards from a plan that misses its SLOs.
MAX_STEPS_UP = 12


def neighbour(plan: Plan, pool: str, delta: int) -> Plan | None:
    """The plan with `delta` more instances in `pool` and the same flows; None when a workload
    would be left without a route (its only prefill or decode pool emptied)."""
    pools = []
    for p in plan.pools:
        if p.instance != pool:
            pools.append(replace(p))
            continue
        count = p.count + delta
        if count < 0:
            return None
        per_instance = p.cost_per_hour / p.count if p.count else 0.0
        pools.append(replace(p, count=count, cost_per_hour=per_instance * count))
    emptied = {p.instance for p in pools if p.count == 0}
    flows = [replace(f) for f in plan.flows]
    if emptied:
        kept: list[Flow] = []
        for w in sorted({f.workload for f in flows}):
            mine = [f for f in flows if f.workload == w]
            alive = [f for f in mine
                     if f.prefill_instance not in emptied and f.decode_instance not in emptied]
            if not alive:
                return None
            lost = sum(f.requests_per_s for f in mine) - sum(f.requests_per_s for f in alive)
            total = sum(f.requests_per_s for f in alive)
            for f in alive:
                f.requests_per_s += lost * f.requests_per_s / total
            kept += alive
        flows = kept
        pools = [p for p in pools if p.count > 0]
    return plan.with_pools(pools, flows)


def counts_of(plan: Plan) -> dict[str, int]:
    return {p.instance: p.count for p in plan.pools if p.count > 0}


def counts_label(counts: dict[str, int]) -> str:
    return " + ".join(f"{n} x {name}" for name, n in sorted(counts.items()))


def slo_ratio(result: SimulationResult) -> float:
    """Worst ratio of a simulated SLO statistic to its target over all workloads (<= 1: met)."""
    worst = 0.0
    for w in result.workloads:
        tpot = w.tpot_ms.mean if not math.isnan(w.tpot_ms.mean) else 0.0
        worst = max(worst, w.ttft_at_target_ms / w.ttft_target_ms, tpot / w.tpot_target_ms)
    return worst


@dataclass
class Candidate:
    """One simulated set of counts."""

    counts: dict[str, int]
    cost_per_hour: float | None
    result: SimulationResult | None  # None: the counts cannot route every workload
    role: str  # "plan", "neighbour", "search"

    @property
    def meets_slo(self) -> bool:
        return self.result is not None and self.result.meets_slo

    def to_dict(self) -> dict[str, Any]:
        return {"counts": self.counts, "cost_per_hour": self.cost_per_hour, "role": self.role,
                "meets_slo": self.meets_slo,
                "slo_ratio": None if self.result is None else slo_ratio(self.result),
                "simulation": None if self.result is None else self.result.to_dict()}


@dataclass
class VerifyResult:
    plan: Candidate
    neighbours: list[Candidate]
    search: list[Candidate] = field(default_factory=list)
    smallest: dict[str, int] | None = None  # cheapest counts found that meet the SLOs (None: none)

    @property
    def plan_meets_slo(self) -> bool:
        return self.plan.meets_slo

    @property
    def plan_is_smallest(self) -> bool:
        return self.plan.meets_slo and not any(c.meets_slo for c in self.neighbours)

    def to_dict(self) -> dict[str, Any]:
        return {"plan_meets_slo": self.plan_meets_slo, "plan_is_smallest": self.plan_is_smallest,
                "smallest_counts_in_simulation": self.smallest, "plan": self.plan.to_dict(),
                "neighbours": [c.to_dict() for c in self.neighbours],
                "search": [c.to_dict() for c in self.search]}


def _step(scenario: PreparedScenario, plan: Plan, delta: int, options: SimulationOptions
          ) -> list[tuple[Candidate, Plan]]:
    """Simulate every plan one instance away (delta -1 or +1) in one pool."""
    out = []
    for pool in [p.instance for p in plan.pools if p.count > 0]:
        nb = neighbour(plan, pool, delta)
        if nb is not None:
            out.append((Candidate(counts_of(nb), nb.cost_per_hour,
                                  simulate_plan(scenario, nb, options),
                                  "search"), nb))
    return out


def _cost(c: Candidate) -> float:
    return c.cost_per_hour if c.cost_per_hour is not None else math.inf


def _ratio(c: Candidate) -> float:
    return math.inf if c.result is None else slo_ratio(c.result)


def verify_plan(scenario: PreparedScenario | Scenario | str | Path, plan: Plan,
                options: SimulationOptions | None = None, *, search: bool = True
                ) -> VerifyResult:
    """Simulate a plan and its one-fewer neighbours; with `search`, walk to the smallest counts
    that meet the SLOs in simulation (docs/simulation.md, "Verify")."""
    options = options or SimulationOptions()
    scenario = prepare(scenario)  # once, not in every simulation
    base = Candidate(counts_of(plan), plan.cost_per_hour,
                     simulate_plan(scenario, plan, options), "plan")
    neighbours: list[Candidate] = []
    passing: list[tuple[Candidate, Plan]] = []
    for pool in [p.instance for p in plan.pools if p.count > 0]:
        nb = neighbour(plan, pool, -1)
        if nb is None:
            counts = counts_of(plan)
            counts[pool] -= 1
            neighbours.append(Candidate(counts, None, None, "neighbour"))
            continue
        cand = Candidate(counts_of(nb), nb.cost_per_hour,
                         simulate_plan(scenario, nb, options), "neighbour")
        neighbours.append(cand)
        if cand.meets_slo:
            passing.append((cand, nb))
    out = VerifyResult(base, neighbours)
    meeting = [c for c in (base, *neighbours) if c.meets_slo]
    if meeting:  # without the walk: the cheapest of the plan and its neighbours that holds
        out.smallest = min(meeting, key=_cost).counts
    if not search:
        return out
    out.smallest = base.counts if base.meets_slo else None

    if base.meets_slo:  # downwards while some neighbour still meets the SLOs
        while passing:
            best, best_plan = min(passing, key=lambda cp: (_cost(cp[0]), _ratio(cp[0])))
            out.smallest = best.counts
            tried = _step(scenario, best_plan, -1, options)
            out.search += [c for c, _ in tried]
            passing = [(c, p) for c, p in tried if c.meets_slo]
        return out

    current = plan  # upwards: add the instance that most improves the worst SLO ratio
    for _ in range(MAX_STEPS_UP):
        tried = _step(scenario, current, +1, options)
        out.search += [c for c, _ in tried]
        if not tried:
            break
        passing = [(c, p) for c, p in tried if c.meets_slo]
        if passing:
            out.smallest = min(passing, key=lambda cp: _cost(cp[0]))[0].counts
            break
        current = min(tried, key=lambda cp: _ratio(cp[0]))[1]
    return out
