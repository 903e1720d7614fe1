"""The fleet optimizer: `solve(scenario) -> Plan` (docs/method.md, section O).

Steps: precompute capacities and routes (`data`), build the Pyomo model (`model`), solve it with
HiGHS (`solver`), read the plan back with predicted TTFT/TPOT (`extract`), and when there is no
plan, say which requirement cannot be met and why (`diagnose`).
"""

from __future__ import annotations

import time
from pathlib import Path

from pdopt.optimize.data import FleetData, build_fleet_data
from pdopt.optimize.decompose import better, fits_limits, model_names, solve_parts
from pdopt.optimize.diagnose import diagnose, unroutable_workloads
from pdopt.optimize.extract import build_plan
from pdopt.optimize.model import TIE_BREAK_WEIGHT, create_model
from pdopt.optimize.solver import SolverReport, relative_gap, solve_model
from pdopt.plan import Plan
from pdopt.scenario.prepare import PreparedScenario, prepare
from pdopt.scenario.schema import Scenario

__all__ = ["solve", "build_fleet_data", "create_model", "FleetData", "SolverReport"]


def solve(scenario: PreparedScenario | Scenario | str | Path, *,
          time_limit_s: float | None = None, mip_gap: float | None = None,
          objective: str | None = None, threads: int | None = None) -> Plan:
    """Cheapest (or fewest-GPU) plan that serves every workload within its SLOs.

    `scenario` is prepared first (`pdopt.scenario.prepare`: a path is read, `profile:` blocks
    resolved) unless it already is. Never raises for an infeasible scenario: the Plan's status
    is `infeasible` and `diagnosis` says why. Raises pdopt errors for invalid input (e.g. a
    table lookup outside its range)."""
    start = time.perf_counter()
    prepared = prepare(scenario)
    scenario, estimated = prepared.scenario, prepared.estimated_sources()
    objective = objective or scenario.options.objective
    time_limit_s = time_limit_s if time_limit_s is not None else scenario.options.time_limit_s
    mip_gap = mip_gap if mip_gap is not None else scenario.options.mip_gap
    data = build_fleet_data(scenario)

    blocked = unroutable_workloads(data)
    if blocked:
        return _no_plan(scenario, objective, "infeasible", blocked, start, 0.0)

    bounds: dict[str, float] = {}
    decomposed_seconds = 0.0
    if len(model_names(scenario)) > 1:
        # Solve model by model first (O.2): often the parts together are the answer.
        t0 = time.perf_counter()
        parts = solve_parts(scenario, objective, time_limit_s=time_limit_s / 2, mip_gap=mip_gap)
        decomposed_seconds = time.perf_counter() - t0
        plans = [part.plan for part in parts if part.plan is not None]
        if len(plans) == len(parts) and fits_limits(scenario, plans):
            # the parts fit together: spend the rest of the time on the parts not yet proven
            # (most of it: the fallback of O.3 and starting workers take some too)
            unproven = [part.model_name for part in parts if part.plan.status != "optimal"]
            remaining = time_limit_s - (time.perf_counter() - start)
            if unproven and remaining > 1.0:
                again = {part.model_name: part for part in solve_parts(
                    scenario, objective, time_limit_s=0.8 * remaining, mip_gap=mip_gap,
                    names=unproven)}
                parts = [better(part, again[part.model_name], objective, mip_gap)
                         if part.model_name in again else part for part in parts]
                plans = [part.plan for part in parts if part.plan is not None]
                decomposed_seconds = time.perf_counter() - t0
        if len(plans) == len(parts) and fits_limits(scenario, plans):
            plan = _merge(plans, scenario, objective, mip_gap)
            plan.solve_seconds = decomposed_seconds
            plan.build_seconds = time.perf_counter() - start - decomposed_seconds
            return _flag_estimates(plan, estimated)
        bounds = {part.model_name: part.dual_bound for part in parts
                  if part.dual_bound is not None}
        time_limit_s = max(time_limit_s - (time.perf_counter() - start), 1.0)

    model = create_model(data, objective, model_bounds=bounds)
    build_seconds = time.perf_counter() - start - decomposed_seconds
    report = solve_model(model, time_limit_s=time_limit_s, mip_gap=mip_gap, threads=threads)
    if report.status in ("infeasible", "no_solution"):
        if report.status == "infeasible":
            reasons = diagnose(data, objective, time_limit_s=time_limit_s, mip_gap=mip_gap)
        else:
            reasons = [f"the time limit ({time_limit_s:g} s) was reached before any plan was "
                       "found; raise --time-limit or --mip-gap"]
        plan = _no_plan(scenario, objective, report.status, reasons, start, report.solve_seconds)
        plan.build_seconds = build_seconds
        return plan
    plan = build_plan(data, model, objective, report, build_seconds)
    plan.solve_seconds += decomposed_seconds
    return _flag_estimates(plan, estimated)


def _flag_estimates(plan: Plan, estimated: dict[str, str]) -> Plan:
    """Name the plan's pools whose numbers are estimates, with their sources."""
    plan.estimated = {p.instance: estimated[p.instance] for p in plan.pools
                      if p.instance in estimated}
    return plan


def _merge(plans: list[Plan], scenario: Scenario, objective: str, mip_gap: float) -> Plan:
    """The fleet's plan from its models' plans (O.2): lists joined, totals and bounds added."""
    gpus: dict[str, int] = {}
    roles = {"prefill": 0, "decode": 0}
    for plan in plans:
        for g, n in plan.gpus_by_type.items():
            gpus[g] = gpus.get(g, 0) + n
        for r, n in plan.instances_by_role.items():
            roles[r] = roles.get(r, 0) + n
    order = {w.name: k for k, w in enumerate(scenario.workloads)}
    bounds = [p.dual_bound for p in plans]
    bound = None if any(b is None for b in bounds) else sum(bounds)  # type: ignore[arg-type]
    cost = sum(p.cost_per_hour for p in plans)  # type: ignore[misc]
    n_gpus = sum(gpus.values())
    value = (cost + TIE_BREAK_WEIGHT * n_gpus if objective == "cost"
             else n_gpus + TIE_BREAK_WEIGHT * cost)  # the objective of Eq. O10
    gap = relative_gap(value, bound)
    # each part within the gap of its bound puts the sum within the gap of the summed bound; the
    # sum can be within the gap even when some parts are not
    proven = all(p.status == "optimal" for p in plans)
    status = "optimal" if proven or (gap is not None and gap <= mip_gap) else "feasible"
    messages = [] if status == "optimal" else [
        f"time limit reached: best plan found, gap to the bound "
        f"{'unknown' if gap is None else f'{100 * gap:.2f}%'}"]
    return Plan(
        scenario=scenario.name, status=status, objective=objective,  # type: ignore[arg-type]
        cost_per_hour=sum(p.cost_per_hour for p in plans),  # type: ignore[misc]
        total_gpus=sum(gpus.values()), gpus_by_type=dict(sorted(gpus.items())),
        instances_by_role=roles,
        pools=sorted((pool for p in plans for pool in p.pools), key=lambda pool: pool.instance),
        workloads=sorted((w for p in plans for w in p.workloads),
                         key=lambda w: order[w.workload]),
        flows=[f for p in plans for f in p.flows],
        dual_bound=bound, mip_gap=gap,
        solve_seconds=sum(p.solve_seconds for p in plans), build_seconds=0.0,
        messages=messages,
    )


def _no_plan(scenario: Scenario, objective: str, status: str, reasons: list[str], start: float,
             solve_seconds: float) -> Plan:
    return Plan(
        scenario=scenario.name, status=status, objective=objective,  # type: ignore[arg-type]
        cost_per_hour=None, total_gpus=None, gpus_by_type={}, instances_by_role={}, pools=[],
        workloads=[], flows=[], dual_bound=None, mip_gap=None, solve_seconds=solve_seconds,
        build_seconds=time.perf_counter() - start - solve_seconds, diagnosis=reasons,
    )
