"""The price decomposition of coupled fleets (docs/method.md, O.8): its bound is a bound of the
whole program, its plans fit the shared limits, and `solve` still finds the brute-force optimum."""

from __future__ import annotations

import math
import time
from dataclasses import replace
from typing import Any

import numpy as np
import pytest
from fleet_cases import brute_force_cost, random_fleet

from pdopt.optimize import solve
from pdopt.optimize.decompose import fits_limits
from pdopt.optimize.lagrange import (
    Column,
    LocalPricer,
    Prices,
    _shares,
    coupled,
    lagrangian_bound,
    repair_caps,
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
    priced, _ = pricer.price(prices, Deadline.after(20), 0.0)
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


@pytest.mark.parametrize("seed", [0, 1, 2, 4, 5, 6])
def test_decomposition_alone_reaches_the_brute_force_optimum(seed: int) -> None:
    """The decomposition's own plan (columns, repairs of the master's mix, O23) is the optimum
    of two coupled models, and its bound stays below it."""
    scenario = scenario_from_data(_binding(seed, "inventory"))
    optimum = brute_force_cost(scenario)
    assert optimum is not None
    parts = solve_coupled(scenario, Objective.COST, deadline=Deadline.after(30), mip_gap=0.0,
                          workers=1)
    assert parts.plans and fits_limits(scenario, parts.plans)
    assert parts.value == pytest.approx(optimum, rel=1e-9)
    assert parts.bound is not None and parts.bound <= optimum * (1 + 1e-9)


def test_a_plan_when_the_deadline_passes_in_the_first_round() -> None:
    """The deadline gone before the first round: each pricing program still gets its least
    time and the master's mix is repaired to fit the inventory (O23) before the hard deadline."""
    scenario = scenario_from_data(_binding(0, "inventory"))
    optimum = brute_force_cost(scenario)
    assert optimum is not None
    start = time.perf_counter()
    parts = solve_coupled(scenario, Objective.COST, deadline=Deadline.after(0.0), mip_gap=0.0,
                          workers=1, hard_deadline=Deadline.after(5.0))
    assert time.perf_counter() - start < 6.0
    assert parts.plans and fits_limits(scenario, parts.plans)
    assert parts.value is not None and parts.value >= optimum * (1 - 1e-9)


@pytest.mark.parametrize("use,count", [
    ({"a": 3.0, "b": 2.5, "c": 0.5}, 6),  # within the count: rounded by largest remainder
    ({"a": 3.0, "b": 2.5, "c": 0.5}, 4),  # over it: the heaviest give way
    ({"a": 10.0, "b": 1.0}, 3),
    ({"a": 0.0, "b": 0.0}, 2),
])
def test_repair_shares_fit_the_inventory(use: dict[str, float], count: int) -> None:
    shares = _shares(use, count)
    assert set(shares) == set(use)
    assert all(n >= 0 for n in shares.values())
    assert sum(shares.values()) <= count
    if sum(use.values()) <= count:  # nobody loses more than the rounding
        assert all(shares[m] >= math.floor(u + 1e-9) for m, u in use.items())
    else:  # the lightest users keep what they use
        lightest = min(use, key=lambda m: use[m])
        if math.ceil(use[lightest]) <= count:
            assert shares[lightest] == math.ceil(use[lightest])


def test_repair_caps_leave_a_single_fitting_column_alone() -> None:
    """A model whose mix is one column within its share needs no repair; a mixed one does."""
    scenario = scenario_from_data(_binding(0, "inventory"))
    plan = solve(scenario, mip_gap=0.0)
    assert plan.has_plan
    by_model = {name: replace(plan, pools=[p for p in plan.pools if p.instance in names])
                for name, names in (("m", [i["name"] for i in _binding(0, "inventory")
                                              ["instances"] if i["model"] == "m"]),
                                    ("m2", [i["name"] for i in _binding(0, "inventory")
                                            ["instances"] if i["model"] == "m2"]))}
    columns = [Column.of(name, p, Objective.COST) for name, p in by_model.items()]
    assert repair_caps(scenario, ["m", "m2"], columns, [1.0, 1.0]) == {}
    half = [Column.of("m", by_model["m"], Objective.COST), columns[0], columns[1]]
    caps = repair_caps(scenario, ["m", "m2"], half, [0.5, 0.5, 1.0])
    assert set(caps) == {"m"}


@pytest.mark.parametrize("time_limit_s", [0.2, 1.5])
def test_tiny_time_limits_return_the_best_plan_so_far(time_limit_s: float) -> None:
    """A coupled fleet of four models (the price decomposition's way) with a tiny limit: the
    solve returns soon after it (the bound is generous for a loaded machine), with a plan
    within the inventories and its proven gap when one was found in time, else no plan and a
    reason naming the limit."""
    from test_solver_limits import _fleetgen

    scenario = scenario_from_data(_fleetgen().fleet(4, 4, 2, 2))
    assert coupled(scenario)
    start = time.perf_counter()
    plan = solve(scenario, time_limit_s=time_limit_s, mip_gap=0.0)
    assert time.perf_counter() - start < time_limit_s + 5.0
    if plan.has_plan:
        assert fits_limits(scenario, [plan])
        assert plan.dual_bound is not None and plan.mip_gap is not None
        assert plan.dual_bound <= (plan.cost_per_hour or 0.0) * (1 + 1e-9)
    else:
        assert plan.status == Status.NO_SOLUTION
        assert f"time limit ({time_limit_s:g} s)" in plan.diagnosis[0]


def _whole_lp_relaxation(scenario: Any) -> float:
    """The whole program's LP relaxation (every count continuous), built the monolithic way."""
    import pyomo.core as pyo

    from pdopt.optimize import build_fleet_data, create_model
    from pdopt.optimize.solver import solve_model

    model = create_model(build_fleet_data(scenario), Objective.COST)
    for var in model.component_data_objects(pyo.Var):
        if var.domain is not pyo.NonNegativeReals and not var.is_continuous():
            var.domain = pyo.Reals if var.lb is None or var.lb < 0 else pyo.NonNegativeReals
    report = solve_model(model, time_limit_s=20, mip_gap=0.0)
    assert report.status == Status.OPTIMAL and report.objective_value is not None
    return report.objective_value


@pytest.mark.parametrize("seed", [0, 3])
def test_whole_lp_from_the_pricing_programs_is_the_whole_relaxation(seed: int) -> None:
    """Eq. O24: the LP put together from the models' pricing programs is the whole program's LP
    relaxation (the same optimum), a bound below the brute-force optimum; the models' priced LP
    values less the priced limits add up to it (LP duality)."""
    from pdopt.optimize.whole_lp import solve_whole_lp

    scenario = scenario_from_data(_binding(seed, "inventory"))
    optimum = brute_force_cost(scenario)
    assert optimum is not None
    pricer = LocalPricer(scenario, ["m", "m2"], Objective.COST, Deadline.after(20))
    relaxed = solve_whole_lp(scenario, pricer.lps(Deadline.after(20)), Deadline.after(20))
    assert relaxed is not None
    assert relaxed.value == pytest.approx(_whole_lp_relaxation(scenario), rel=1e-6)
    assert relaxed.value <= optimum * (1 + 1e-9)
    count = float(scenario.gpus["GA"].count or 0)
    assert sum(relaxed.block_values.values()) - relaxed.gpu_prices["GA"] * count \
        == pytest.approx(relaxed.value, rel=1e-6)
    assert sum(use["GA"] for use in relaxed.gpus.values()) <= count + 1e-6


@pytest.mark.parametrize("seed", [0, 1, 2, 3, 4, 5, 6])
def test_relaxation_first_bound_below_and_plan_above_the_optimum(seed: int) -> None:
    """The decomposition started from the whole LP (O24, as from four models on): its bound
    stays below the brute-force optimum, at least the LP's, and its plan fits the inventory."""
    scenario = scenario_from_data(_binding(seed, "inventory"))
    optimum = brute_force_cost(scenario)
    assert optimum is not None
    parts = solve_coupled(scenario, Objective.COST, deadline=Deadline.after(30), mip_gap=0.0,
                          workers=1, relax_first=True)
    assert parts.lp_bound is not None and parts.bound is not None
    assert parts.lp_bound <= parts.bound <= optimum * (1 + 1e-9)
    assert parts.plans and fits_limits(scenario, parts.plans)
    assert parts.value is not None and parts.value >= optimum * (1 - 1e-9)


def test_whole_lp_prices_a_binding_inventory() -> None:
    """Four fleetgen models whose inventories bind in the LP too: the shared rows' duals are
    positive, a priced inventory is used to the full, and the priced LP values less the priced
    inventories add up to the whole LP's optimum (LP duality, O24)."""
    from test_solver_limits import _fleetgen

    from pdopt.optimize.decompose import model_names
    from pdopt.optimize.whole_lp import solve_whole_lp

    data = _fleetgen().fleet(4, 4, 2, 2)
    data["gpus"]["B200"]["count"] = 80  # the LP alone uses 109 B200s
    scenario = scenario_from_data(data)
    names = model_names(scenario)
    pricer = LocalPricer(scenario, names, Objective.COST, Deadline.after(20))
    relaxed = solve_whole_lp(scenario, pricer.lps(Deadline.after(20)), Deadline.after(20))
    assert relaxed is not None
    # at most the whole program's: each model alone may table more counts exactly (O14's K
    # depends on the program's number of tabled groups), which only loosens its capacities
    assert relaxed.value <= _whole_lp_relaxation(scenario) * (1 + 1e-6)
    assert any(price > 0 for price in relaxed.gpu_prices.values())
    priced = sum(price * float(scenario.gpus[g].count or 0)
                 for g, price in relaxed.gpu_prices.items())
    assert sum(relaxed.block_values.values()) - priced == pytest.approx(relaxed.value, rel=1e-6)
    for g, price in relaxed.gpu_prices.items():  # a priced inventory is used to the full
        if price > 1e-9:
            used = sum(use[g] for use in relaxed.gpus.values())
            assert used == pytest.approx(float(scenario.gpus[g].count or 0), rel=1e-6)


def _rounded(scenario: Any) -> tuple[Any, Any, dict[str, Any], list[Column]]:
    """The whole LP of a fleet's pricing programs (O24), its rounding within the limits (O25)
    and the plans of the rounding, as columns."""
    from pdopt.optimize.decompose import model_names
    from pdopt.optimize.lagrange import rounding_penalty
    from pdopt.optimize.whole_lp import rounded_plan, solve_whole_lp

    names = model_names(scenario)
    pricer = LocalPricer(scenario, names, Objective.COST, Deadline.after(20))
    relaxed = solve_whole_lp(scenario, pricer.lps(Deadline.after(20)), Deadline.after(20))
    assert relaxed is not None
    rounding = rounded_plan(relaxed, Deadline.after(20),
                            rounding_penalty(scenario, Objective.COST, relaxed))
    assert rounding is not None and set(rounding) == set(names)
    planned = pricer.plans(rounding, Deadline.after(20))
    assert all(p.plan is not None for p in planned)
    columns = [Column.of(p.model_name, p.plan, Objective.COST) for p in planned
               if p.plan is not None]
    return pricer, relaxed, rounding, columns


@pytest.mark.parametrize("seed", [0, 1, 2, 3, 4, 5, 6])
def test_rounded_whole_lp_is_a_plan_within_the_limits(seed: int) -> None:
    """Eq. O25: the whole LP rounded (every integer column down or up, part of the limit held
    back while the best rounding overshoots) is a plan of the fleet: it fits the inventory,
    costs at least the brute-force optimum, and its plans cost what the rounded columns do."""
    scenario = scenario_from_data(_binding(seed, "inventory"))
    optimum = brute_force_cost(scenario)
    assert optimum is not None
    _, relaxed, rounding, columns = _rounded(scenario)
    assert fits_limits(scenario, [c.plan for c in columns])
    value = sum(c.primary for c in columns)
    assert value >= optimum * (1 - 1e-9) >= relaxed.value * (1 - 1e-9)
    whole = relaxed.whole
    assert whole is not None
    x = np.concatenate([rounding[p.model_name] for p in whole.parts])
    assert np.all(np.abs(x[whole.integer] - np.round(x[whole.integer])) <= 1e-6)
    assert float(whole.cost @ x) + whole.offset == pytest.approx(value, rel=1e-6)


def test_rounding_holds_back_what_the_best_rounding_overshoots() -> None:
    """Eq. O25 by hand: two models, each serving a load of 0.5 with instances of GPU type G
    ($1 each) or of another type ($3); one G in stock. The LP takes half a G instance each
    ($1); rounded near it, each needs a whole G (2 > 1), so one G is held back: the LP with
    none takes half an instance of the other type each, rounded to one each ($6, no G)."""
    from pdopt.optimize.whole_lp import BlockLP, Relaxed, WholeLP, rounded_plan

    def block(name: str) -> BlockLP:  # columns: G instances, other instances; row: serve 0.5
        return BlockLP(name, np.array([1.0, 3.0]), 0.0, np.zeros(2), np.full(2, 10.0),
                       np.array([0.5]), np.array([np.inf]), np.array([0, 0]), np.array([0, 1]),
                       np.array([1.0, 1.0]), {"G": (np.array([0]), np.array([1.0]))},
                       np.array([True, True]))

    whole = WholeLP([block("a"), block("b")], {"G": 1.0})
    x = whole.solve_lp(Deadline.after(10))
    assert x is not None and float(whole.cost @ x) == pytest.approx(1.0)
    relaxed = Relaxed(1.0, {}, 0.0, {}, {}, {}, whole, x)
    rounding = rounded_plan(relaxed, Deadline.after(10), np.array([100.0]))
    assert rounding is not None
    for name in ("a", "b"):
        assert rounding[name] == pytest.approx([0.0, 1.0])
    assert whole.use(np.concatenate([rounding["a"], rounding["b"]])) == pytest.approx([0.0])


def test_rounding_holds_back_at_most_the_whole_limit() -> None:
    """Eq. O25 with an overshoot larger than the limit: instances of two G GPUs, a load of 0.25
    each, one G in stock. The LP takes a quarter instance each (one G); rounded, each needs a
    whole instance (4 G, 3 over), so all of the one G is held back, not 3 (the LP at -2 would
    have no solution): each takes an instance of the other type."""
    from pdopt.optimize.whole_lp import BlockLP, Relaxed, WholeLP, rounded_plan

    def block(name: str) -> BlockLP:  # columns: G instances, other instances; row: serve 0.25
        return BlockLP(name, np.array([2.0, 3.0]), 0.0, np.zeros(2), np.full(2, 10.0),
                       np.array([0.25]), np.array([np.inf]), np.array([0, 0]),
                       np.array([0, 1]), np.array([1.0, 1.0]),
                       {"G": (np.array([0]), np.array([2.0]))}, np.array([True, True]))

    whole = WholeLP([block("a"), block("b")], {"G": 1.0})
    x = whole.solve_lp(Deadline.after(10))
    assert x is not None and float(whole.cost @ x) == pytest.approx(1.0)
    rounding = rounded_plan(Relaxed(1.0, {}, 0.0, {}, {}, {}, whole, x), Deadline.after(10),
                            np.array([100.0]))
    assert rounding is not None
    for name in ("a", "b"):
        assert rounding[name] == pytest.approx([0.0, 1.0])


def test_rounding_a_binding_inventory_fits_it() -> None:
    """Four fleetgen models whose B200 inventory binds in the LP (O24): the rounding (O25) is
    a plan within it; each model's priced value at the LP's prices is its plan's cost plus the
    priced GPUs."""
    from test_solver_limits import _fleetgen

    data = _fleetgen().fleet(4, 4, 2, 2)
    data["gpus"]["B200"]["count"] = 80  # the LP alone uses 109 B200s
    scenario = scenario_from_data(data)
    _, relaxed, rounding, columns = _rounded(scenario)
    assert fits_limits(scenario, [c.plan for c in columns])
    assert sum(c.gpus.get("B200", 0) for c in columns) <= 80
    whole = relaxed.whole
    assert whole is not None and relaxed.x is not None
    x = np.concatenate([rounding[p.model_name] for p in whole.parts])
    priced = whole.priced_values(x, relaxed.gpu_prices)
    for c in columns:
        assert priced[c.model_name] == pytest.approx(
            c.cost + sum(relaxed.gpu_prices[g] * c.gpus.get(g, 0)
                         for g in relaxed.gpu_prices), rel=1e-6)


def test_settled_models_fit_their_allowance() -> None:
    """Eq. O26: the models settled by their rounded plans are the cheapest to round, taken in
    order while their excesses over their LP values add up to at most the allowance."""
    from test_solver_limits import _fleetgen

    from pdopt.optimize.whole_lp import rounding_excess, settled_models

    data = _fleetgen().fleet(4, 4, 2, 2)
    data["gpus"]["B200"]["count"] = 80
    scenario = scenario_from_data(data)
    _, relaxed, rounding, columns = _rounded(scenario)
    excess = {c.model_name: c.cost + sum(relaxed.gpu_prices[g] * c.gpus.get(g, 0)
                                         for g in relaxed.gpu_prices)
              - relaxed.block_values[c.model_name] for c in columns}
    assert rounding_excess(relaxed, rounding) == pytest.approx(excess, rel=1e-6)
    assert all(e >= -1e-6 for e in excess.values())  # each LP value bounds its model (O24)
    order = sorted(excess, key=lambda n: excess[n])
    assert settled_models(excess, math.inf) == set(order)
    assert settled_models(excess, -1.0) == set()
    two = excess[order[0]] + excess[order[1]]
    assert settled_models(excess, two * (1 + 1e-9)) == set(order[:2])
    assert settled_models(excess, two * (1 - 1e-6)) == {order[0]}
    # by hand: 1 + 2 <= 3.5 < 1 + 2 + 4
    assert settled_models({"a": 4.0, "b": 1.0, "c": 2.0}, 3.5) == {"b", "c"}


def test_lagrangian_bound_takes_the_better_bound_of_each_program() -> None:
    """O20 with O24: a program counts with the better of its own bound and the one it is given
    (its LP value at the whole LP's prices), and never below 0; the priced inventory is taken
    off. By hand: max(3, 5) + max(7, 2) + max(0, 1) - 0.5 x 4 = 11."""
    from pdopt.optimize.lagrange import Priced

    data = _binding(0, "inventory")
    data["gpus"]["GA"]["count"] = 4
    scenario = scenario_from_data(data)
    priced = [Priced("a", 3.0, None), Priced("b", 7.0, None), Priced("c", None, None)]
    bound = lagrangian_bound(scenario, priced, Prices(gpu={"GA": 0.5}),
                             {"a": 5.0, "b": 2.0, "c": 1.0})
    assert bound == pytest.approx(11.0)
    assert lagrangian_bound(scenario, [Priced("a", -2.0, None)], Prices()) == 0.0


def test_rounds_stop_when_no_pricing_program_answers(monkeypatch: pytest.MonkeyPatch) -> None:
    """Pricing programs that answer nothing (a failing solver) end the rounds: the loop does
    not repeat them at once until the deadline, and the plan found before is kept."""
    from pdopt.optimize import lagrange

    scenario = scenario_from_data(_binding(0, "inventory"))
    answers: list[int] = []
    real = lagrange.Block.price

    def failing(self: Any, prices: Prices, deadline: Deadline, mip_gap: float,
                caps: Any = None, abs_gap: float = 0.0) -> Any:
        if caps is not None or len(answers) < 2:  # the repairs and the first round answer
            answers.append(0)
            return real(self, prices, deadline, mip_gap, caps, abs_gap)
        answers.append(1)
        return lagrange.Priced(self.model_name, None, None)

    monkeypatch.setattr(lagrange.Block, "price", failing)
    start = time.perf_counter()
    parts = solve_coupled(scenario, Objective.COST, deadline=Deadline.after(20), mip_gap=0.0,
                          workers=1, relax_first=False)
    assert time.perf_counter() - start < 10.0
    assert parts.rounds <= 4 and answers.count(1) <= 6
    assert parts.plans and fits_limits(scenario, parts.plans)
