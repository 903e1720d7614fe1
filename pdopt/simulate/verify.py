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


def neighbour(plan: Plan, pool: str, delta: int, group: int | None = None) -> Plan | None:
    """The plan with `delta` more instances in `pool` and the same flows; None when a workload
    would be left without a route (its only prefill or decode pool emptied).

    A pool split into SLO groups is simulated group by group (docs/simulation.md, "SLO groups"),
    so its neighbours change one group: `group` is its level. A group emptied is dropped, and
    the simulator spreads its workloads over the pool's other groups (by their routed rates, or
    by count for a workload no remaining group names)."""
    pools = []
    for p in plan.pools:
        if p.instance != pool:
            pools.append(replace(p))
            continue
        count = p.count + delta
        if count < 0:
            return None
        groups = [replace(g) for g in p.groups]
        if len(groups) > 1:
            if group is None:
                raise ValueError(f"pool '{pool}' is split into SLO groups: name the group")
            target = next((g for g in groups if g.level == group), None)
            if target is None or target.count + delta < 0:
                return None
            target.count += delta
            groups = [g for g in groups if g.count > 0]
        per_instance = p.cost_per_hour / p.count if p.count else 0.0
        pools.append(replace(p, count=count, cost_per_hour=per_instance * count, groups=groups))
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


def moves(plan: Plan) -> list[tuple[str, int | None]]:
    """The (pool, group level) places a neighbour may add or remove an instance: every pool with
    instances, each group of a split pool (group None: an unsplit pool)."""
    out: list[tuple[str, int | None]] = []
    for p in plan.pools:
        if p.count <= 0:
            continue
        if len(p.groups) > 1:
            out += [(p.instance, g.level) for g in p.groups if g.count > 0]
        else:
            out.append((p.instance, None))
    return out


def move_label(pool: str, group: int | None) -> str:
    return pool if group is None else f"{pool} [group {group}]"


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
    changed: str = ""  # the pool (and SLO group) one instance away from the plan it comes from

    @property
    def meets_slo(self) -> bool:
        return self.result is not None and self.result.meets_slo

    def to_dict(self) -> dict[str, Any]:
        return {"counts": self.counts, "cost_per_hour": self.cost_per_hour, "role": self.role,
                "changed": self.changed, "meets_slo": self.meets_slo,
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
    """Simulate every plan one instance away (delta -1 or +1) in one pool (one SLO group of a
    split pool)."""
    out = []
    for pool, group in moves(plan):
        nb = neighbour(plan, pool, delta, group)
        if nb is not None:
            out.append((Candidate(counts_of(nb), nb.cost_per_hour,
                                  simulate_plan(scenario, nb, options),
                                  "search", move_label(pool, group)), nb))
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
    for pool, group in moves(plan):
        nb = neighbour(plan, pool, -1, group)
        if nb is None:
            counts = counts_of(plan)
            counts[pool] -= 1
            neighbours.append(Candidate(counts, None, None, "neighbour",
                                        move_label(pool, group)))
            continue
        cand = Candidate(counts_of(nb), nb.cost_per_hour,
                         simulate_plan(scenario, nb, options), "neighbour",
                         move_label(pool, group))
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


# --- solve --verify: sizing checked by simulation (docs/simulation.md, "Solve --verify") -------

#: At most this many solves in `solve_verified`.
MAX_VERIFY_ITERATIONS = 5


@dataclass
class VerifyIteration:
    """One solve of `solve_verified`: the capacity factors it used and what simulation said."""

    factors: dict[str, float]  # capacity factor per instance type (1: the model's capacity)
    counts: dict[str, int]
    cost_per_hour: float | None
    meets_slo: bool
    slo_ratio: float  # worst simulated statistic / target (<= 1: met)
    holding_neighbours: list[str]  # pools (SLO groups) whose one-fewer neighbour also holds

    def to_dict(self) -> dict[str, Any]:
        return {"factors": self.factors, "counts": self.counts,
                "cost_per_hour": self.cost_per_hour, "meets_slo": self.meets_slo,
                "slo_ratio": self.slo_ratio, "holding_neighbours": self.holding_neighbours}


@dataclass
class VerifiedSolve:
    plan: Plan  # the cheapest plan found that meets its SLOs in simulation (else the last)
    iterations: list[VerifyIteration]
    verified: bool  # the plan meets its SLOs and no one-fewer neighbour does
    simulated_demand: str  # what load the simulations ran (headroom is explicit)
    # why the loop stopped: "verified", "cycle", "iteration limit" or "no plan", then details
    stop_reason: str = ""

    def to_dict(self) -> dict[str, Any]:
        return {"verified": self.verified, "simulated_demand": self.simulated_demand,
                "stop_reason": self.stop_reason,
                "iterations": [i.to_dict() for i in self.iterations]}


def with_capacity_factors(scenario: Scenario, factors: dict[str, float]) -> Scenario:
    """The scenario whose instance types carry f times their capacity: a prefill type's
    saturated throughput x f, a decode type's TPOT table / f (the sizing's inputs only; the
    simulation keeps the measured numbers)."""
    data = scenario.model_dump(exclude_none=True)
    for inst in data["instances"]:
        f = factors.get(inst["name"], 1.0)
        if f == 1.0:
            continue
        tp = inst.get("prefill_tokens_per_s")
        if isinstance(tp, dict):
            inst["prefill_tokens_per_s"] = {k: v * f for k, v in tp.items()}
        elif tp is not None:
            inst["prefill_tokens_per_s"] = tp * f
        if inst.get("tpot_ms_by_batch"):
            inst["tpot_ms_by_batch"] = {k: v / f for k, v in inst["tpot_ms_by_batch"].items()}
        for table in inst.get("tpot_tables") or []:
            table["tpot_ms_by_batch"] = {k: v / f for k, v in table["tpot_ms_by_batch"].items()}
    return Scenario.model_validate(data)


def _workload_ratios(result: SimulationResult) -> dict[str, tuple[float, float]]:
    """Per workload: simulated TTFT statistic / target and mean TPOT / target."""
    out = {}
    for w in result.workloads:
        tpot = w.tpot_ms.mean if not math.isnan(w.tpot_ms.mean) else 0.0
        out[w.workload] = (w.ttft_at_target_ms / w.ttft_target_ms, tpot / w.tpot_target_ms)
    return out


def bracketed(factor: float, too_low: float, too_high: float) -> float:
    """The next capacity factor of a pool: `factor` when it lies strictly between the largest
    factor at which a one-fewer neighbour still held (`too_low`, 0 when none) and the smallest at
    which the plan missed (`too_high`, inf when none); the bracket's geometric middle when it
    overshoots a factor already tried (a correction by one count's ratio can jump past the count
    in between: the decode capacity grows faster than a TPOT table's factor)."""
    if too_low < factor < too_high or too_low <= 0 or not math.isfinite(too_high):
        return factor
    return math.sqrt(too_low * too_high)


def solve_verified(scenario: PreparedScenario | Scenario | str | Path,
                   options: SimulationOptions | None = None, *,
                   max_iterations: int = MAX_VERIFY_ITERATIONS,
                   **solve_options: Any) -> VerifiedSolve:
    """Solve, simulate the plan and its one-fewer neighbours, and while the simulation disagrees
    correct each pool's capacity and solve again (docs/simulation.md, "Solve --verify"):

    - the plan misses: every pool serving a missing workload (prefill for TTFT, decode for TPOT)
      gets its capacity divided by the worst measured ratio (statistic / target, at least 2 %);
    - a one-fewer neighbour holds too: that pool's capacity is raised so that one instance fewer
      carries the plan's load, utilisation x n / (n - 1).

    Stops when the plan holds and no neighbour does (verified), or after `max_iterations` solves;
    returns the cheapest plan that held (the last plan when none did). Seeded: the same inputs
    give the same result."""
    from pdopt.optimize import solve  # the simulator does not need the optimizer otherwise

    options = options or SimulationOptions()
    prepared = prepare(scenario)
    base = prepared.scenario
    headrooms = {base.headroom_of(w) for w in base.workloads}
    if len(headrooms) == 1 and headrooms != {1.0}:  # simulate the load the plan is sized for
        options = replace(options, rate_scale=options.rate_scale * headrooms.pop())
    factors = {i.name: 1.0 for i in base.instances}
    iterations: list[VerifyIteration] = []
    best: Plan | None = None
    best_holding: list[tuple[str, int | None]] = []
    last: Plan | None = None
    last_with_plan: Plan | None = None  # a correction may make the sizing infeasible
    verified = False
    seen: set[tuple[tuple[str, int], ...]] = set()
    # Per pool, the largest factor at which a one-fewer neighbour still held (capacity
    # underestimated) and the smallest at which the plan missed on it (overestimated): a
    # correction that leaves this bracket bisects it instead (geometric mean).
    too_low: dict[str, float] = {}
    too_high: dict[str, float] = {}
    moved = True
    stop = ""
    for _ in range(max_iterations):
        sized = base if all(f == 1.0 for f in factors.values()) else with_capacity_factors(
            base, factors)
        plan = solve(sized, **solve_options)
        last = plan
        if not plan.has_plan:
            stop = f"no plan: the corrected sizing has none ({plan.status})"
            break
        last_with_plan = plan
        check = verify_plan(prepared, plan, options, search=False)
        result = check.plan.result
        assert result is not None
        holding = [m for m, c in zip(moves(plan), check.neighbours, strict=True)
                   if c.meets_slo]
        iterations.append(VerifyIteration(dict(factors), counts_of(plan), plan.cost_per_hour,
                                          check.plan_meets_slo, slo_ratio(result),
                                          [move_label(*m) for m in holding]))
        key = tuple(sorted(counts_of(plan).items()))
        if check.plan_meets_slo and (best is None or (plan.cost_per_hour or 0)
                                     < (best.cost_per_hour or 0)):
            best, best_holding = plan, holding
        if check.plan_is_smallest:
            verified = True
            stop = "verified: the plan holds and no one-fewer neighbour does"
            break
        if key in seen and check.plan_meets_slo and not moved:
            stop = ("cycle: the counts came back and the last correction moved no capacity "
                    "factor by more than 0.5 %")
            break  # the corrections cycle: keep the cheapest plan that held
        seen.add(key)
        pools = {p.instance: p for p in plan.pools}
        start = dict(factors)
        wanted: dict[str, float] = {}
        if not check.plan_meets_slo:
            ratios = _workload_ratios(result)
            for flow in plan.flows:
                ttft, tpot = ratios.get(flow.workload, (0.0, 0.0))
                for pool, ratio in ((flow.prefill_instance, ttft), (flow.decode_instance, tpot)):
                    if ratio > 1.0:  # the worst ratio of the pool's flows, from the start factor
                        wanted[pool] = min(wanted.get(pool, math.inf),
                                           start[pool] / max(ratio, 1.02))
                        too_high[pool] = min(too_high.get(pool, math.inf), start[pool])
        else:
            for name, level in holding:
                p = pools[name]
                g = next((g for g in p.groups if g.level == level), None)
                count, util = (p.count, p.utilization) if g is None else (g.count, g.utilization)
                if count > 1:  # several groups of a pool: the largest correction
                    wanted[name] = max(wanted.get(name, 0.0), start[name] * (
                        max(1.0, util) * count / (count - 1) + 1e-6))
                    too_low[name] = max(too_low.get(name, 0.0), start[name])
        moved = False
        for name, f in wanted.items():
            f = bracketed(f, too_low.get(name, 0.0), too_high.get(name, math.inf))
            moved = moved or abs(f / start[name] - 1.0) > 0.005
            factors[name] = f
    else:
        stop = "iteration limit: " + _limit_detail(iterations)
    stepped = 0
    if best is not None and not verified and best_holding:
        # The corrections could not move a count (a split pool's groups share one factor):
        # step down through the one-fewer neighbours that hold, as simulated.
        best, stepped, verified = step_down(prepared, best, best_holding, options)
        stop += f"; then {stepped} instance(s) fewer by simulation (step down)"
    chosen = best or last_with_plan or last
    assert chosen is not None
    demand = "each workload's demand"
    rate = f" x {options.rate_scale:g} (headroom x rate_scale)" if options.rate_scale != 1.0 else ""
    note = (f"verified by simulation in {len(iterations)} solve(s): "
            + ("the plan holds and no one-fewer neighbour does" if verified else
               "the plan holds; a one-fewer neighbour may too" if best else
               "no plan held its SLOs") + f" (stopped: {stop})")
    if chosen.has_plan:
        chosen = replace(chosen, messages=[*chosen.messages, note])
    return VerifiedSolve(chosen, iterations, verified, f"{demand}{rate} (Poisson)", stop)


def _scaled_down(plan: Plan, pool: str, group: int | None) -> Plan | None:
    """The one-fewer neighbour of `plan` with the changed pool's (group's) utilisation scaled
    to its new count (the sizing's load over its capacity at the solved count: above 1 when the
    simulation holds what the model does not)."""
    nb = neighbour(plan, pool, -1, group)
    if nb is None:
        return None
    old = plan.pool(pool)
    pools = []
    for p in nb.pools:
        if p.instance == pool and p.count > 0:
            groups = [replace(g, utilization=g.utilization * (g.count + 1) / g.count)
                      if g.level == group and g.count > 0 else g for g in p.groups]
            p = replace(p, utilization=old.utilization * old.count / p.count, groups=groups)
        pools.append(p)
    return nb.with_pools(pools, nb.flows)


def step_down(scenario: PreparedScenario, plan: Plan, holding: list[tuple[str, int | None]],
              options: SimulationOptions) -> tuple[Plan, int, bool]:
    """From a plan that holds, move to its cheapest one-fewer neighbour that holds too (they
    were simulated: `holding`, the moves whose neighbour held) until none does. Returns the
    plan, the steps taken and whether no one-fewer neighbour of it holds. Its predictions stay
    those of the solve, with the changed pool's utilisation scaled to the new count."""
    steps = 0
    while holding:
        options_down = [nb for m in holding if (nb := _scaled_down(plan, *m)) is not None]
        if not options_down:
            break
        down = min(options_down, key=lambda nb: nb.cost_per_hour or 0.0)
        check = verify_plan(scenario, down, options, search=False)
        if not check.plan_meets_slo:  # seeded: the neighbour held before, so it holds
            break
        plan = down
        steps += 1
        holding = [m for m, c in zip(moves(plan), check.neighbours, strict=True)
                   if c.meets_slo]
        plan = replace(plan, messages=[*plan.messages, (
            f"one instance fewer than solved, by simulation (step {steps})")])
    return plan, steps, not holding


def _limit_detail(iterations: list[VerifyIteration]) -> str:
    """What the last solves of a loop that hit its iteration limit did: how many in a row gave
    the same counts (corrections too small to move a count) or which counts alternated."""
    if not iterations:
        return "no solve"
    same = 1
    while (same < len(iterations)
           and iterations[-1 - same].counts == iterations[-1].counts):
        same += 1
    if same > 1:
        return (f"the last {same} corrections were too small to move a count "
                f"({counts_label(iterations[-1].counts)})")
    seen = [counts_label(i.counts) for i in iterations]
    return f"{len(iterations)} solves, counts {' -> '.join(seen)}"
