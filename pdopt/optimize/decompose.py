"""Solving a many-model fleet model by model (docs/method.md, O.2).

Models share nothing but the GPU inventories and the budget. Each model's part of the program, with
those two limits dropped, is a relaxation of that model's share of the whole, so:

- the sum of the parts' dual bounds is a lower bound of the whole fleet's optimum (Eq. O12);
- when the parts' plans together fit the inventories and the budget, together they are a plan for
  the fleet within that bound: no program over the whole fleet is needed;
- otherwise each part's bound is a valid cut for the whole program: the objective's share of a
  model's pools is at least that model's bound (Eq. O12), which lifts the whole program's LP bound.
"""

from __future__ import annotations

from dataclasses import dataclass

import pyomo.environ as pyo

from pdopt.optimize.data import FleetData, build_fleet_data
from pdopt.optimize.model import Relaxation, create_model
from pdopt.optimize.solver import SolverReport, solve_model
from pdopt.schema import Scenario


@dataclass
class Part:
    """One model's share of the fleet, solved alone."""

    model_name: str
    data: FleetData
    model: pyo.ConcreteModel
    report: SolverReport

    @property
    def has_plan(self) -> bool:
        return self.report.status in ("optimal", "feasible")


def model_names(scenario: Scenario) -> list[str]:
    return sorted({w.model for w in scenario.workloads})


def sub_scenario(scenario: Scenario, model_name: str) -> Scenario:
    """The scenario restricted to one model, without inventories and budget."""
    return scenario.model_copy(update={
        "name": f"{scenario.name}/{model_name}",
        "instances": [i for i in scenario.instances if i.model == model_name],
        "workloads": [w for w in scenario.workloads if w.model == model_name],
        "gpus": {g: spec.model_copy(update={"count": None}) for g, spec in scenario.gpus.items()},
        "budget_per_hour": None,
    })


def solve_parts(scenario: Scenario, objective: str, *, time_limit_s: float, mip_gap: float,
                threads: int | None = None) -> list[Part]:
    """Solve every model's part; each gets an equal share of the time limit."""
    names = model_names(scenario)
    share = time_limit_s / len(names)
    parts = []
    for name in names:
        data = build_fleet_data(sub_scenario(scenario, name))
        model = create_model(data, objective, Relaxation(budget=True, inventory="drop"))
        report = solve_model(model, time_limit_s=share, mip_gap=mip_gap, threads=threads)
        parts.append(Part(name, data, model, report))
    return parts


def gpus_used(parts: list[Part]) -> dict[str, int]:
    used: dict[str, int] = {}
    for part in parts:
        for p, lvl in part.model.GROUPS:
            pool = part.data.pools[p]
            count = round(pyo.value(part.model.n[p, lvl]))
            used[pool.gpu] = used.get(pool.gpu, 0) + count * pool.gpus_per_instance
    return used


def cost_of(parts: list[Part]) -> float:
    return sum(part.data.pools[p].cost_per_hour * round(pyo.value(part.model.n[p, lvl]))
               for part in parts for p, lvl in part.model.GROUPS)


def fits_limits(scenario: Scenario, parts: list[Part]) -> bool:
    """Do the parts' plans together fit the GPU inventories and the budget?"""
    used = gpus_used(parts)
    for gpu, spec in scenario.gpus.items():
        if spec.count is not None and used.get(gpu, 0) > spec.count:
            return False
    budget = scenario.budget_per_hour
    return budget is None or cost_of(parts) <= budget + 1e-9
