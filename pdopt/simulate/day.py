"""Simulating a plan over a horizon (docs/simulation.md, "Day plans"): every period of the plan
is replayed with its own serving counts and flows at its own demand, and the attainment is
reported per period.

Each period is simulated alone (piecewise stationary): Poisson arrivals at the period's rate for
the options' warm-up, window and cool-down, on the period's serving instances. An instance added
for a period serves from its start (the plan pays its warm-up before the period, Eq. H11), so the
counts change exactly at the boundary; queues are not carried from one period to the next, which
the warm-up of each period's run stands in for. Spares are not simulated: the SLOs are checked
with the serving counts, i.e. with k instances of each pool down.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path

from pdopt.plan import PeriodPlan, Plan
from pdopt.report import Report, Table
from pdopt.scenario.prepare import PreparedScenario, prepare
from pdopt.scenario.schema import Scenario
from pdopt.simulate.fleet import SimulationError
from pdopt.simulate.simulator import SimulationOptions, SimulationResult, simulate_plan

__all__ = ["PeriodSimulation", "day_report", "period_scenario", "simulate_day"]


@dataclass(frozen=True)
class PeriodSimulation:
    """One period of a day plan, simulated."""

    period: PeriodPlan
    result: SimulationResult


def period_scenario(scenario: Scenario, period: PeriodPlan) -> Scenario:
    """The scenario at one period's demand (without headroom: the load the SLOs must hold at),
    without its horizon; workloads without demand in the period are left out."""
    workloads = []
    for w in scenario.workloads:
        rate = period.demand_requests_per_s.get(w.name, 0.0) / scenario.headroom_of(w)
        if rate > 0:
            workloads.append(w.model_copy(update={
                "requests_per_s": rate, "tokens_per_s": None, "tokens_per_minute": None,
                "demand": None}))
    return scenario.model_copy(update={"workloads": workloads, "periods": None,
                                       "redundancy": None})


def simulate_day(scenario: PreparedScenario | Scenario | str | Path, plan: Plan,
                 options: SimulationOptions | None = None) -> list[PeriodSimulation]:
    """Every period of a horizon plan simulated at its demand with its counts."""
    if not plan.periods:
        raise SimulationError("the plan has no periods (solve a scenario with `periods`)")
    if any(not p.pools for p in plan.periods):
        raise SimulationError("the plan's periods carry no pools and flows (a plan written "
                              "before pdopt kept them): solve it again")
    sc = prepare(scenario).scenario
    out = []
    for period in plan.periods:
        part = period_scenario(sc, period)
        names = {w.name for w in part.workloads}
        period_plan = replace(plan.with_pools(period.pools, [
            f for f in period.flows if f.workload in names]),
            workloads=[w for w in plan.workloads if w.workload in names], periods=[])
        out.append(PeriodSimulation(period, simulate_plan(part, period_plan, options)))
    return out


def day_report(runs: list[PeriodSimulation]) -> Report:
    """Attainment per period and workload: the period's counts, the simulated requests and
    whether each workload met its SLOs (TTFT and TPOT attainment)."""
    rows = []
    for run in runs:
        counts = ", ".join(f"{k} {v}" for k, v in run.period.counts.items())
        for w in run.result.workloads:
            rows.append((run.period.index, counts, w.workload, w.requests,
                         w.attainment_ttft, w.attainment_tpot, w.meets_slo))
    met = sum(run.result.meets_slo for run in runs)
    data = {"periods": [{"index": run.period.index, "counts": run.period.counts,
                         "simulation": run.result.to_dict()} for run in runs],
            "meets_slo": met == len(runs)}
    return Report(data, [Table("day plan simulated period by period",
                               ("period", "counts", "workload", "requests", "ttft_attainment",
                                "tpot_attainment", "meets_slo"), rows)],
                  [f"{met} of {len(runs)} periods meet every SLO (each period simulated alone "
                   "at its demand with its serving counts; docs/simulation.md, \"Day plans\")"])
