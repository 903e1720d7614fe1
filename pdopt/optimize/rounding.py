"""A plan from the LP relaxation (docs/method.md, O.3): a fallback when branch and bound runs out
of time with a weak incumbent or none. First the best plan whose counts are the LP's rounded down
or up (a small program); failing that, every count rounded up.

Raising a group's count never breaks O5 / O6 (the count is only on their right-hand sides), so
rounding every count up keeps every flow of the LP feasible; only a user's max_count, an
inventory or the budget can be broken, and then there is no rounded plan. With large loads the
cost of rounding is small next to the LP bound. Every step runs within the caller's deadline.
"""

from __future__ import annotations

import math

from pdopt.optimize.data import FleetData
from pdopt.optimize.direct import ConcreteModel
from pdopt.optimize.model import Relaxation, create_model
from pdopt.optimize.solver import Deadline, SolverReport, relative_gap, solve_model
from pdopt.plan import Objective, Status


def rounded_up(data: FleetData, objective: Objective, relax: Relaxation, *, deadline: Deadline,
               dual_bound: float | None) -> tuple[ConcreteModel, SolverReport] | None:
    """Solve the LP relaxation, then the best plan near it, or else round every group count up
    and solve again for the flows. Returns the model and a report whose bound is the better of
    `dual_bound` and the LP's; None when the rounded counts break a limit (inventory, budget),
    the LP has no solution or the deadline passes first."""
    if deadline.passed():
        return None
    model = create_model(data, objective, relax, backend="direct")
    for var in model.n.values():
        var.integer = False  # the counts relaxed (the count tables' binaries stay)
    lp = solve_model(model, deadline=deadline, mip_gap=0.0, phase="LP relaxation")
    if lp.status != Status.OPTIMAL or lp.objective_value is None:
        return None
    bound = max(b for b in (dual_bound, lp.objective_value) if b is not None)
    lp_counts = {k: var.value for k, var in model.n.items()}
    # most of what is left for the small program; the rest for rounding every count up
    near = _near_lp(data, objective, relax, lp_counts, deadline.share(0.7))
    if near is not None:
        model_near, report_near = near
        return model_near, SolverReport(
            status=Status.FEASIBLE, termination="integer plan near the LP relaxation",
            objective_value=report_near.objective_value, dual_bound=bound,
            mip_gap=relative_gap(report_near.objective_value, bound),
            solve_seconds=lp.solve_seconds + report_near.solve_seconds, time_limit_hit=True)
    totals: dict[str, int] = {}
    for (p, _lvl), var in model.n.items():
        var.integer = True
        var.fix(math.ceil(var.value - 1e-6))
        totals[p] = totals.get(p, 0) + int(var.upper)
    # Rounding each group up may take a pool past its bound U_p (O9), which only serves the
    # search; a user's max_count is a real limit.
    if any(data.pools[p].max_count is not None and n > data.pools[p].max_count  # type: ignore
           for p, n in totals.items()):
        return None
    if hasattr(model, "pool_limits"):
        model.pool_limits.deactivate()
    fixed = solve_model(model, deadline=deadline, mip_gap=0.0, phase="rounded LP")
    if fixed.objective_value is None:
        return None
    return model, SolverReport(
        status=Status.FEASIBLE, termination="rounded LP relaxation",
        objective_value=fixed.objective_value, dual_bound=bound,
        mip_gap=relative_gap(fixed.objective_value, bound),
        solve_seconds=lp.solve_seconds + fixed.solve_seconds, time_limit_hit=True)


def _near_lp(data: FleetData, objective: Objective, relax: Relaxation,
             lp_counts: dict[tuple[str, int], float], deadline: Deadline
             ) -> tuple[ConcreteModel, SolverReport] | None:
    """The best integer plan whose every group count is the LP's rounded down or up: a small
    program (each count has two values) that branch and bound settles quickly."""
    if deadline.passed():
        return None
    model = create_model(data, objective, relax, backend="direct")
    for key, var in model.n.items():
        value = lp_counts[key]
        var.lower = math.floor(value + 1e-6)
        var.upper = math.ceil(value - 1e-6)
    report = solve_model(model, deadline=deadline, mip_gap=0.0, phase="near the LP")
    if not report.status.has_plan or report.objective_value is None:
        return None
    return model, report
