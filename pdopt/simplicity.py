"""The price of simplicity: what each operability limit costs (docs/method.md, O.7).

For each kind of limit the scenario sets (`options.limits`, `models.<m>.limits`), the scenario is
solved again with that kind removed everywhere and every other limit kept; the price is the plan's
cost minus that optimum ("one GPU type per model: +$4.10/h"). With several kinds, one more row
removes them all. The solver runs with the plan's objective, time limit and gap.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any

from pdopt.plan import Plan
from pdopt.report import Report, Table
from pdopt.scenario.limits import LIMIT_KINDS, LimitKind, limit_kinds_used, without_limit
from pdopt.scenario.prepare import PreparedScenario, prepare
from pdopt.scenario.schema import Scenario

SolveFn = Callable[..., Plan]

#: How each kind of limit reads in a report.
LIMIT_LABELS: dict[str, str] = {
    "max_instance_types": "instance types per model and role",
    "single_gpu_type": "one GPU type per model",
    "min_count_if_used": "no pool below min_count_if_used",
    "max_utilization": "utilisation cap per pool",
    "all": "all limits",
}


@dataclass
class LimitPrice:
    """The plan's cost against the optimum without one kind of limit (or without all)."""

    limit: str  # a kind of LIMIT_KINDS, or "all"
    label: str
    status: str  # of the solve without the limit
    cost_without_per_hour: float | None
    price_per_hour: float | None  # plan cost - cost without (>= 0 up to the gap)
    gpus_without: int | None
    price_gpus: int | None
    reason: str | None = None  # why the solve without the limit has no plan

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def scenario_without(scenario: Scenario, kinds: list[str]) -> Scenario:
    """`scenario` with the given kinds of limit removed from options and every model."""
    options, models = scenario.options.limits, dict(scenario.models)
    for kind in kinds:
        options = without_limit(options, kind)
        models = {name: spec.model_copy(update={"limits": without_limit(spec.limits, kind)})
                  for name, spec in models.items()}
    return scenario.model_copy(update={
        "options": scenario.options.model_copy(update={"limits": options}), "models": models})


def limit_kinds(scenario: Scenario) -> list[LimitKind]:
    kinds = limit_kinds_used(scenario.options.limits, [s.limits for s in scenario.models.values()])
    return [k for k in LIMIT_KINDS if k in kinds]


def limit_prices(scenario: PreparedScenario | Scenario | str, plan: Plan, *,
                 solve: SolveFn | None = None, time_limit_s: float | None = None,
                 mip_gap: float | None = None) -> list[LimitPrice]:
    """One row per kind of limit the scenario sets (and one for all of them when there are
    several); empty without limits or without a plan."""
    prepared = prepare(scenario)
    kinds = limit_kinds(prepared.scenario)
    if not plan.has_plan or not kinds or plan.cost_per_hour is None:
        return []
    if solve is None:
        from pdopt.optimize import solve as optimize_solve  # Pyomo loads only here

        solve = optimize_solve
    runs: list[tuple[str, list[str]]] = [(k, [k]) for k in kinds]
    if len(kinds) > 1:
        runs.append(("all", list(kinds)))
    out = []
    for name, removed in runs:
        freer = prepared.with_scenario(scenario_without(prepared.scenario, removed))
        result = solve(freer, objective=plan.objective, time_limit_s=time_limit_s,
                       mip_gap=mip_gap)
        if not result.has_plan or result.cost_per_hour is None:
            out.append(LimitPrice(name, LIMIT_LABELS[name], result.status, None, None, None,
                                  None, result.diagnosis[0] if result.diagnosis else None))
            continue
        out.append(LimitPrice(
            name, LIMIT_LABELS[name], result.status, result.cost_per_hour,
            plan.cost_per_hour - result.cost_per_hour, result.total_gpus,
            (plan.total_gpus or 0) - (result.total_gpus or 0)))
    return out


def _signed_money(x: float) -> str:
    return f"{'-' if x < 0 else '+'}${abs(x):,.2f}/h"


def limit_price_lines(prices: list[LimitPrice]) -> list[str]:
    """"one GPU type per model: +$4.10/h" per limit."""
    return [f"price of {p.label}: " + (_signed_money(p.price_per_hour)
                                       if p.price_per_hour is not None
                                       else f"no plan without it either ({p.status})")
            for p in prices]


def add_limit_prices(report: Report, prices: list[LimitPrice]) -> Report:
    """A plan's report with the price of each limit: `limit_prices` in the JSON, a table."""
    report.data["limit_prices"] = [p.to_dict() for p in prices]
    if prices:
        report.tables.append(Table(
            "price of simplicity: the plan against the optimum without each limit",
            ("limit", "status without", "cost_without_per_hour", "price_per_hour",
             "gpus_without", "price_gpus"),
            [(p.label, p.status, p.cost_without_per_hour, p.price_per_hour, p.gpus_without,
              p.price_gpus) for p in prices]))
        report.notes += limit_price_lines(prices)
    return report
