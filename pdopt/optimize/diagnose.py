"""Why a scenario has no plan, in terms a planner can act on (docs/method.md, section O.5).

First the structural causes (a workload no instance type can serve within its SLOs, with the reason
for each instance type), then the limits, one at a time, by re-solving relaxed programs: per-pool
maxima, GPU inventories (elastic: the fewest extra GPUs of each type), and the budget (the cheapest
plan within inventories, or without them when they bind too, against the budget). Every limit that
binds is named with its shortfall. The re-solves share the caller's deadline.
"""

from __future__ import annotations

import math

from pdopt.optimize import direct
from pdopt.optimize.data import FleetData
from pdopt.optimize.model import Model, Relaxation, cost_expr, create_model
from pdopt.optimize.solver import Deadline, SolverReport, not_started, solve_model
from pdopt.plan import Objective, Status
from pdopt.scenario.limits import ModelLimits

# Costs, rates and coefficients beyond these magnitudes are outside what a double-precision
# simplex solves reliably (HiGHS warns above 1e9 and treats 1e20 as infinite).
LARGE_COEFFICIENT = 1e9
SMALL_COEFFICIENT = 1e-9


def _reasons(data: FleetData, workload: str, limit: int = 6) -> str:
    reasons = list(dict.fromkeys(data.exclusions.get(workload, [])))
    if not reasons:
        return "no instance type of its model was given for this role"
    more = f"; and {len(reasons) - limit} more" if len(reasons) > limit else ""
    return "; ".join(reasons[:limit]) + more


def unroutable_workloads(data: FleetData) -> list[str]:
    """Workloads with no prefill route or no decode route at all, with the reasons."""
    prefill = {r.workload for r in data.prefill_routes}
    decode = {w for w, _ in data.decode_routes}
    out = []
    for w in data.scenario.workloads:
        if w.name not in decode:
            out.append(f"workload '{w.name}' (TPOT {w.slo.tpot_ms:g} ms): no decode instance "
                       f"type can serve it: {_reasons(data, w.name)}")
        elif w.name not in prefill:
            out.append(f"workload '{w.name}' (TTFT {w.slo.ttft_ms:g} ms): no prefill instance "
                       f"type can serve it: {_reasons(data, w.name)}")
    return out


def out_of_range(data: FleetData) -> list[str]:
    """Numbers of the scenario whose magnitude a solver cannot handle accurately."""
    found = []
    for name, pool in sorted(data.pools.items()):
        if not SMALL_COEFFICIENT <= pool.cost_per_hour <= LARGE_COEFFICIENT \
                and pool.cost_per_hour > 0:
            found.append(f"instance '{name}' costs ${pool.cost_per_hour:.3g}/h")
    for w, rate in sorted(data.demand_requests_per_s.items()):
        if not SMALL_COEFFICIENT <= rate <= LARGE_COEFFICIENT and rate > 0:
            found.append(f"workload '{w}' asks for {rate:.3g} requests/s")
    return found


def no_solution_reason(data: FleetData, report: SolverReport, time_limit_s: float) -> str:
    """Why the solver returned no plan and no proof of infeasibility: the time limit when it
    was reached, else what the solver reported (numerical trouble, usually out-of-range
    numbers)."""
    if report.time_limit_hit:
        return (f"the time limit ({time_limit_s:g} s) was reached before any plan was found; "
                "raise --time-limit or --mip-gap")
    odd = out_of_range(data)
    cause = ("numbers out of the range the solver handles (" + "; ".join(odd[:4])
             + (f"; and {len(odd) - 4} more" if len(odd) > 4 else "") + ")") if odd else \
        "numerical trouble in the solver"
    return (f"the solver stopped after {report.solve_seconds:.2f} s without a plan "
            f"(termination: {report.termination}), not at the time limit: {cause}")


def diagnose(data: FleetData, objective: Objective, *, deadline: Deadline, mip_gap: float
             ) -> list[str]:
    """Reasons the full program is infeasible, found by relaxing one family of limits at a time;
    every limit that binds is named with its shortfall."""
    def solve(relax: Relaxation, goal: Objective = objective
              ) -> tuple[Model | None, SolverReport]:
        return _solve(data, goal, relax, deadline, mip_gap)

    free, report = solve(Relaxation(budget=True, inventory="drop", max_count=True, limits=True))
    if free is None:
        return [without_limits_reason(data, report)]
    reasons: list[str] = []
    if solve(Relaxation(budget=True, inventory="drop", max_count=True))[1].status \
            == Status.INFEASIBLE:
        kinds = sorted({kind for p in data.pools.values()
                        for kind in _usage_limits(data.scenario.limits_of(p.model))})
        reasons.append("the operability limits (" + ", ".join(kinds) + ") admit no plan: no "
                       "allowed combination of instance types serves every workload within its "
                       "SLOs; loosen them in options.limits or models.<m>.limits")
    if solve(Relaxation(budget=True, inventory="drop"))[1].status == Status.INFEASIBLE:
        n: dict[str, int] = {}
        for p, lvl in free.GROUPS:
            n[p] = n.get(p, 0) + round(free.n[p, lvl].value)
        over = [f"'{p}' needs {n[p]} (max_count {cap})" for p in sorted(n)
                if (cap := data.pools[p].max_count) is not None and n[p] > cap]
        reasons.append("per-pool max_count limits are too tight: the plan without them has "
                       + ", ".join(over or ["pools above their max_count"]))
    elastic, _ = solve(Relaxation(budget=True, inventory="elastic"))
    inventory_short = False
    if elastic is not None and hasattr(elastic, "gpu_shortfall"):
        for g in elastic.LIMITED_GPUS:
            short = elastic.gpu_shortfall[g].value
            if short > 1e-6:
                inventory_short = True
                count = data.scenario.gpus[g].count
                reasons.append(f"inventory too small: {g} is short by {math.ceil(short - 1e-6)} "
                               f"GPUs (the plan needs {count + math.ceil(short - 1e-6)}, count "
                               f"is {count})")
    budget = data.scenario.budget_per_hour
    if budget is not None:
        reasons += _budget_reasons(data, budget, inventory_short, solve)
    if not reasons and deadline.passed():
        return [_out_of_time(data)]
    return reasons or ["the limits together admit no plan, though each alone does "
                       "(budget, inventories and max_count interact)"]


def _usage_limits(limits: ModelLimits) -> list[str]:
    """The usage limits (Eqs. O17-O19) a model has, by name."""
    return ([("max_instance_types")] if limits.max_instance_types else []) \
        + (["single_gpu_type"] if limits.single_gpu_type else []) \
        + (["min_count_if_used"] if limits.min_count_if_used is not None else [])


def _budget_reasons(data: FleetData, budget: float, inventory_short: bool, solve: object
                    ) -> list[str]:
    """The budget's shortfall against the cheapest plan within the inventories, or, when the
    inventories bind too, against the cheapest plan without them."""
    within, _ = solve(Relaxation(budget=True), Objective.COST)  # type: ignore[operator]
    where = "within inventories"
    if within is None and inventory_short:
        within, _ = solve(Relaxation(budget=True, inventory="drop"),  # type: ignore[operator]
                          Objective.COST)
        where = "even with GPUs beyond the inventories"
    if within is None:
        return []
    cheapest = direct.expression_value(within, cost_expr(within, data))
    if cheapest <= budget + 1e-9:
        return []
    return [f"budget short by ${cheapest - budget:,.2f}/h: the cheapest plan {where} costs "
            f"${cheapest:,.2f}/h, the budget is ${budget:,.2f}/h"]


def without_limits_reason(data: FleetData, report: SolverReport) -> str:
    """Why even the program without budget, inventories and max_count has no plan."""
    if report.status != Status.INFEASIBLE:
        return _out_of_time(data) if report.time_limit_hit else (
            "no plan found even without budget, inventory and max_count limits: "
            + no_solution_reason(data, report, 0.0))
    excluded = [f"{w}: {_reasons(data, w)}" for w in data.exclusions if data.exclusions[w]]
    minimums = [f"'{p}' min_count {pool.min_count}" for p, pool in sorted(data.pools.items())
                if pool.min_count > 0]
    causes = []
    if excluded:
        causes.append("routes left out: " + " | ".join(excluded))
    if minimums:
        causes.append("min_count values: " + ", ".join(minimums))
    if not causes:
        causes.append("every workload has routes and no pool has a min_count, so this is a "
                      "bug in pdopt: please report it with the scenario")
    return ("no plan exists even without budget, inventory and max_count limits; "
            + "; ".join(causes))


def _out_of_time(data: FleetData) -> str:
    return ("the scenario has no plan within its limits, and the time limit ran out before the "
            "cause was found; raise --time-limit to see it")


def _solve(data: FleetData, objective: Objective, relax: Relaxation, deadline: Deadline,
           mip_gap: float) -> tuple[Model | None, SolverReport]:
    if deadline.passed():
        return None, not_started()
    model = create_model(data, objective, relax, backend="direct")
    report = solve_model(model, deadline=deadline, mip_gap=mip_gap, phase="diagnosis")
    return (model if report.status.has_plan else None), report
