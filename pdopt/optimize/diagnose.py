"""Why a scenario has no plan, in terms a planner can act on (docs/method.md, section O.5).

First the structural causes (a workload no instance type can serve within its SLOs, with the reason
for each instance type), then the limits, one at a time, by re-solving relaxed programs: per-pool
maxima, GPU inventories (elastic: the fewest extra GPUs of each type), and the budget (the cheapest
plan within inventories against the budget).
"""

from __future__ import annotations

import pyomo.environ as pyo

from pdopt.optimize.data import FleetData
from pdopt.optimize.model import Relaxation, cost_expr, create_model
from pdopt.optimize.solver import solve_model


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


def diagnose(data: FleetData, objective: str, *, time_limit_s: float, mip_gap: float
             ) -> list[str]:
    """Reasons the full program is infeasible, found by relaxing one family of limits at a time."""
    solve = lambda relax: _solve(data, objective, relax, time_limit_s, mip_gap)  # noqa: E731
    free = solve(Relaxation(budget=True, inventory="drop", max_count=True))
    if free is None:
        return ["no plan exists even without budget, inventory and max_count limits; "
                "check min_count values and the routes: "
                + " | ".join(f"{w}: {_reasons(data, w)}" for w in data.exclusions
                             if data.exclusions[w])]
    reasons: list[str] = []
    if solve(Relaxation(budget=True, inventory="drop")) is None:
        n: dict[str, int] = {}
        for p, lvl in free.GROUPS:
            n[p] = n.get(p, 0) + round(pyo.value(free.n[p, lvl]))
        over = [f"'{p}' needs {n[p]} (max_count {data.pools[p].max_count})" for p in sorted(n)
                if data.pools[p].max_count is not None and n[p] > data.pools[p].max_count]
        reasons.append("per-pool max_count limits are too tight: the plan without them has "
                       + ", ".join(over or ["pools above their max_count"]))
    elastic = solve(Relaxation(budget=True, inventory="elastic"))
    if elastic is not None and hasattr(elastic, "gpu_shortfall"):
        for g in elastic.LIMITED_GPUS:
            short = pyo.value(elastic.gpu_shortfall[g])
            if short > 1e-6:
                count = data.scenario.gpus[g].count
                reasons.append(f"inventory too small: {g} is short by {round(short)} GPUs "
                               f"(the plan needs {count + round(short)}, count is {count})")
    budget = data.scenario.budget_per_hour
    if budget is not None:
        within_inventory = _solve(data, "cost", Relaxation(budget=True), time_limit_s, mip_gap)
        if within_inventory is not None:
            cheapest = pyo.value(cost_expr(within_inventory, data))
            if cheapest > budget + 1e-9:
                reasons.append(f"budget short by ${cheapest - budget:,.2f}/h: the cheapest plan "
                               f"within inventories costs ${cheapest:,.2f}/h, the budget is "
                               f"${budget:,.2f}/h")
    return reasons or ["the limits together admit no plan, though each alone does "
                       "(budget, inventories and max_count interact)"]


def _solve(data: FleetData, objective: str, relax: Relaxation, time_limit_s: float,
           mip_gap: float) -> pyo.ConcreteModel | None:
    model = create_model(data, objective, relax)
    report = solve_model(model, time_limit_s=time_limit_s, mip_gap=mip_gap)
    return model if report.status in ("optimal", "feasible") else None
