"""A plan from the LP relaxation (docs/method.md, O.3): a fallback when branch and bound runs out
of time with a weak incumbent or none. First the best plan whose counts are the LP's rounded down
or up (a small program); failing that, every count rounded up.

Raising a group's count never breaks O5 / O6 (the count is only on their right-hand sides), so
rounding every count up keeps every flow of the LP feasible; only a user's max_count, an
inventory or the budget can be broken, and then there is no rounded plan. With large loads the
cost of rounding is small next to the LP bound.
"""

from __future__ import annotations

import math

import pyomo.environ as pyo

from pdopt.optimize.data import FleetData
from pdopt.optimize.model import Relaxation, create_model
from pdopt.optimize.solver import SolverReport, relative_gap, solve_model


def rounded_up(data: FleetData, objective: str, relax: Relaxation, *, time_limit_s: float,
               dual_bound: float | None, near_time_s: float = 1.0
               ) -> tuple[pyo.ConcreteModel, SolverReport] | None:
    """Solve the LP relaxation, round every group count up, solve again for the flows. Returns
    the model and a report whose bound is the better of `dual_bound` and the LP's; None when the
    rounded counts break a limit (inventory, budget) or the LP has no solution."""
    model = create_model(data, objective, relax)
    for var in model.n.values():
        var.domain = pyo.NonNegativeReals
    lp = solve_model(model, time_limit_s=time_limit_s, mip_gap=0.0)
    if lp.status != "optimal" or lp.objective is None:
        return None
    lp_counts = {k: pyo.value(var) for k, var in model.n.items()}
    near = _near_lp(data, objective, relax, lp_counts, near_time_s)
    if near is not None:
        model_near, report_near = near
        bound = max(b for b in (dual_bound, lp.objective) if b is not None)
        return model_near, SolverReport(
            status="feasible", termination="integer plan near the LP relaxation",
            objective=report_near.objective, dual_bound=bound,
            mip_gap=relative_gap(report_near.objective, bound),
            solve_seconds=lp.solve_seconds + report_near.solve_seconds, time_limit_hit=True)
    totals: dict[str, int] = {}
    for (p, _lvl), var in model.n.items():
        var.domain = pyo.NonNegativeIntegers
        var.fix(math.ceil(pyo.value(var) - 1e-6))
        totals[p] = totals.get(p, 0) + int(var.value)
    # Rounding each group up may take a pool past its bound U_p (O9), which only serves the
    # search; a user's max_count is a real limit.
    if any(data.pools[p].max_count is not None and n > data.pools[p].max_count  # type: ignore
           for p, n in totals.items()):
        return None
    if hasattr(model, "pool_limits"):
        model.pool_limits.deactivate()
    fixed = solve_model(model, time_limit_s=time_limit_s, mip_gap=0.0)
    if fixed.objective is None:
        return None
    bound = max(b for b in (dual_bound, lp.objective) if b is not None)
    gap = relative_gap(fixed.objective, bound)
    return model, SolverReport(
        status="feasible", termination="rounded LP relaxation", objective=fixed.objective,
        dual_bound=bound, mip_gap=gap, solve_seconds=lp.solve_seconds + fixed.solve_seconds,
        time_limit_hit=True)


def _near_lp(data: FleetData, objective: str, relax: Relaxation,
             lp_counts: dict[tuple[str, int], float], time_limit_s: float
             ) -> tuple[pyo.ConcreteModel, SolverReport] | None:
    """The best integer plan whose every group count is the LP's rounded down or up: a small
    program (each count has two values) that branch and bound settles quickly."""
    model = create_model(data, objective, relax)
    for key, var in model.n.items():
        value = lp_counts[key]
        var.setlb(math.floor(value + 1e-6))
        var.setub(math.ceil(value - 1e-6))
    report = solve_model(model, time_limit_s=time_limit_s, mip_gap=0.0)
    if report.status not in ("optimal", "feasible") or report.objective is None:
        return None
    return model, report
