"""The price decomposition of coupled fleets (docs/method.md, O.8): its bound is a bound of the
whole program, its plans fit the shared limits, and `solve` still finds the brute-force optimum."""

from __future__ import annotations

import time
from typing import Any

import pytest
from fleet_cases import brute_force_cost, random_fleet

from pdopt.optimize import solve
from pdopt.optimize.decompose import fits_limits
from pdopt.optimize.lagrange import (
    LocalPricer,
    Prices,
    coupled,
    lagrangian_bound,
    solve_coupled,
)
from pdopt.optimize.solver import Deadline
from pdopt.plan import Objective, Status
from pdopt.scenario.loading import scenario_from_data


def _two_models(seed: int) -> dict[str, Any]:
    """Two one-workload models on the same two GPU types (small enough for the brute force)."""
    a, b = random_fleet(seed, workloads=1), random_fleet(seed + 100, workloads=1)
    for inst in b["instances"]:
        inst["name"] += "-m2"
        inst["model"] = "m2"
    for w in b["workloads"]:
        w["name"] += "-m2"
        w["model"] = "m2"
    a["instances"] += b["instances"]
    a["workloads"] += b["workloads"]
    a["models"]["m2"] = b["models"]["m"]
    return a


def _binding(seed: int, limit: str) -> dict[str, Any]:
    """The two models with an inventory on GA one GPU below, or a budget 1% above, what they use
    alone: the limit couples them."""
    data = _two_models(seed)
    free = solve(scenario_from_data(data), mip_gap=0.0)
    assert free.status == Status.OPTIMAL and free.cost_per_hour is not None
    if limit == "inventory":
        data["gpus"]["GA"]["count"] = free.gpus_by_type["GA"] - 1
    else:  # a budget that forces fewer GPUs than the cheapest plan (objective gpus)
        data["budget_per_hour"] = free.cost_per_hour * 1.01
    return data


@pytest.mark.parametrize("seed", [0, 3, 6])
def test_bound_is_below_and_incumbent_above_the_brute_force_optimum(seed: int) -> None:
    scenario = scenario_from_data(_binding(seed, "inventory"))
    assert coupled(scenario)
    optimum = brute_force_cost(scenario)
    assert optimum is not None
    parts = solve_coupled(scenario, Objective.COST, deadline=Deadline.after(20), mip_gap=0.0)
    assert parts.bound is not None and parts.rounds >= 1
    assert parts.bound <= optimum * (1 + 1e-9)
    if parts.plans:  # any incumbent fits the inventory and costs at least the optimum
        assert fits_limits(scenario, parts.plans)
        assert parts.value is not None and parts.value >= optimum * (1 - 1e-9)
    plan = solve(scenario, mip_gap=0.0)  # decomposition, then the whole program if unproven
    assert plan.status == Status.OPTIMAL
    assert plan.cost_per_hour == pytest.approx(optimum, rel=1e-9)
    assert plan.dual_bound is not None and plan.dual_bound <= optimum * (1 + 1e-9)


@pytest.mark.parametrize("gpu_price,budget_price", [(0.0, 0.0), (0.7, 0.0), (3.0, 0.2)])
def test_lagrangian_bound_holds_at_any_prices(gpu_price: float, budget_price: float) -> None:
    """Eq. O20: for any prices >= 0 the priced parts less the priced limits bound the optimum."""
    data = _binding(0, "inventory")
    data["budget_per_hour"] = 1000.0
    scenario = scenario_from_data(data)
    optimum = brute_force_cost(scenario)
    assert optimum is not None
    names = ["m", "m2"]
    pricer = LocalPricer(scenario, names, Objective.COST, Deadline.after(20))
    prices = Prices(gpu={"GA": gpu_price}, budget=budget_price)
    priced = pricer.price(prices, Deadline.after(20), 0.0)
    bound = lagrangian_bound(scenario, priced, prices)
    assert bound is not None and bound <= optimum * (1 + 1e-9)
    assert all(p.plan is not None for p in priced)


def test_budget_coupling_gpus_objective() -> None:
    """A budget couples the models when the objective is GPUs: the decomposition's bound stays
    below the whole program's optimum and its plan is within the budget."""
    scenario = scenario_from_data(_binding(4, "budget"))
    whole = solve(scenario, mip_gap=0.0, objective="gpus")
    assert whole.status == Status.OPTIMAL and whole.total_gpus is not None
    parts = solve_coupled(scenario, Objective.GPUS, deadline=Deadline.after(20), mip_gap=0.0)
    assert parts.bound is not None and parts.bound <= whole.total_gpus + 1e-9
    if parts.plans:
        assert fits_limits(scenario, parts.plans)
        assert parts.value is not None and parts.value >= whole.total_gpus - 1e-9


def test_returns_by_the_deadline() -> None:
    scenario = scenario_from_data(_binding(3, "inventory"))
    start = time.perf_counter()
    solve_coupled(scenario, Objective.COST, deadline=Deadline.after(0.3), mip_gap=0.0)
    assert time.perf_counter() - start < 1.3


def test_pricing_on_a_dask_cluster_gives_a_valid_bound() -> None:
    distributed = pytest.importorskip("distributed")
    scenario = scenario_from_data(_binding(0, "inventory"))
    optimum = brute_force_cost(scenario)
    assert optimum is not None
    with distributed.LocalCluster(n_workers=1, threads_per_worker=1, processes=False,
                                  dashboard_address=None) as cluster:
        parts = solve_coupled(scenario, Objective.COST, deadline=Deadline.after(30),
                              mip_gap=0.0, dask_scheduler=cluster.scheduler_address)
    assert parts.bound is not None and parts.rounds >= 1
    assert parts.bound <= optimum * (1 + 1e-9)
    if parts.plans:
        assert fits_limits(scenario, parts.plans)
        assert parts.value is not None and parts.value >= optimum * (1 - 1e-9)
