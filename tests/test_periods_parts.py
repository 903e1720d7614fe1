"""The horizon program's (model, period) parts (docs/method.md, Eqs. H20-H24): their bounds are
bounds, the plan they start from is a plan, the bisection over demands gives the same bounds as
solving every period, and the program with them finds the optimum of the program without."""

from __future__ import annotations

import copy
import itertools
from typing import Any

import pyomo.core as pyo
import pytest

from pdopt.optimize.period_parts import (
    purchase_bound,
    reserve_for,
    solve_period_parts,
    start_values,
)
from pdopt.optimize.periods import (
    HorizonData,
    build_horizon_data,
    cheapest_gpu_prices,
    create_horizon_model,
    solve_horizon,
)
from pdopt.optimize.solver import Deadline, solve_model
from pdopt.plan import Status
from pdopt.scenario.loading import scenario_from_data


def _two_models(paper: dict[str, Any], first: list[float], second: list[float],
                **gpu: Any) -> dict[str, Any]:
    """The paper's scenario (queue mm1) with a second model on copies of its instance types,
    both on H200, over len(first) periods of 6 hours: the models share only the GPUs bought."""
    data = copy.deepcopy(paper)
    data.setdefault("options", {})["queue"] = "mm1"
    data["options"]["mip_gap"] = 0.0
    data["periods"] = {"count": len(first), "length_h": 6}
    twin = []
    for inst in data["instances"]:
        copy_ = copy.deepcopy(inst)
        copy_["name"] = inst["name"] + "-twin"
        copy_["model"] = "twin"
        twin.append(copy_)
    data["instances"] += twin
    work = copy.deepcopy(data["workloads"][0])
    work.update(name="twin-chat", model="twin", tokens_per_minute=work["tokens_per_minute"] / 2)
    data["workloads"][0]["demand"] = {"multipliers": first}
    work["demand"] = {"multipliers": second}
    data["workloads"].append(work)
    data["gpus"]["H200"].update(gpu)
    return data


CASES = [
    ([0.3, 1.0, 2.0], [1.5, 0.5, 0.5], {"reserved": {"cost_per_hour": 2.5}}, None),
    ([1.0, 1.0, 0.2, 1.5], [0.4, 1.2, 1.2, 0.4], {"reserved": {"cost_per_hour": 3.0}},
     {"spare_instances": 1}),
    ([0.5, 2.0], [2.0, 0.5], {"reserved": {"cost_per_hour": 2.0, "min_gpus": 40},
                              "spot": {"cost_per_hour": 2.5, "max_share": 0.25}}, None),
]


@pytest.mark.parametrize("first,second,gpu,redundancy", CASES)
def test_parts_find_the_optimum_of_the_whole_program(
        paper_data: dict[str, Any], first: list[float], second: list[float], gpu: dict[str, Any],
        redundancy: dict[str, Any] | None) -> None:
    data = _two_models(paper_data, first, second, **gpu)
    if redundancy:
        data["redundancy"] = redundancy
    sc = scenario_from_data(data)
    whole = solve_horizon(sc, compare=False, period_parts=False)
    parts = solve_horizon(sc, compare=False)
    assert whole.status == parts.status == Status.OPTIMAL
    assert parts.total_cost == pytest.approx(whole.total_cost, rel=1e-9)


@pytest.mark.parametrize("first,second,gpu,redundancy", CASES)
def test_part_bounds_and_purchase_bound_are_below_the_optimum(
        paper_data: dict[str, Any], first: list[float], second: list[float], gpu: dict[str, Any],
        redundancy: dict[str, Any] | None) -> None:
    """Z_{m,t} <= the optimal plan's priced GPUs of model m in period t (Eq. H21), the purchase
    program's value <= the optimum (Eq. H24), and the start is a plan (Eq. H23)."""
    data = _two_models(paper_data, first, second, **gpu)
    if redundancy:
        data["redundancy"] = redundancy
    sc = scenario_from_data(data)
    hd = build_horizon_data(sc)
    parts = solve_period_parts(hd, Deadline.after(60))
    assert parts.complete
    m = create_horizon_model(hd)
    report = solve_model(m, mip_gap=0.0, time_limit_s=60)
    assert report.status == Status.OPTIMAL and report.objective_value is not None
    prices = cheapest_gpu_prices(sc, hd.gpu_types())
    for (model, t), bound in parts.bounds.items():
        block = getattr(m, f"p{t}")
        priced = sum(prices[pool.gpu] * pool.gpus_per_instance * (
            sum(pyo.value(block.n[p, lvl]) for lvl in range(len(hd.peak.levels(p))))
            + (pyo.value(m.spare[p, t]) if p in m.SPARE_POOLS else 0.0))
            for p, pool in hd.peak.pools.items() if pool.model == model)
        assert bound <= priced + 1e-6
    whole = purchase_bound(hd, parts)
    assert whole is not None and whole <= report.objective_value * (1 + 1e-9)
    # priced by the GPU: Z is the fewest GPUs of the model in the period (Eq. H21 with p = 1)
    counts = solve_period_parts(hd, Deadline.after(60), prices={"H200": 1.0})
    for (model, t), fewest in counts.bounds.items():
        gpus = sum(pool.gpus_per_instance * (
            sum(pyo.value(getattr(m, f"p{t}").n[p, lvl]) for lvl in range(len(hd.peak.levels(p))))
            + (pyo.value(m.spare[p, t]) if p in m.SPARE_POOLS else 0.0))
            for p, pool in hd.peak.pools.items() if pool.model == model)
        assert fewest <= gpus + 1e-6
    both = purchase_bound(hd, parts, [counts])
    assert both is not None and whole - 1e-6 <= both <= report.objective_value * (1 + 1e-9)
    # the start: the parts' integers and the purchases fixed, the rest completed by HiGHS
    fixed = create_horizon_model(hd)
    start = start_values(hd, fixed, parts)
    assert len(start) > 0
    for var, value in start.items():
        var.fix(value)
    completed = solve_model(fixed, mip_gap=0.0, time_limit_s=60)
    assert completed.status == Status.OPTIMAL
    assert whole <= completed.objective_value  # type: ignore[operator]


def test_bisection_gives_the_bounds_of_solving_every_period(paper_data: dict[str, Any]) -> None:
    """Periods bracketed by two solved demands with equal values take them (Eq. H22): fewer
    parts solved than distinct demands, and each period's bound is its own part's optimum."""
    curve = [0.3, 0.32, 0.34, 0.36, 0.38, 0.4, 1.0, 1.02, 1.04, 1.06, 2.0, 2.02]
    data = _two_models(paper_data, curve, list(reversed(curve)))
    hd = build_horizon_data(scenario_from_data(data))
    parts = solve_period_parts(hd, Deadline.after(60))
    assert parts.complete and parts.solved < 2 * len(set(curve))
    prices = cheapest_gpu_prices(hd.scenario, hd.gpu_types())
    for t in range(len(curve)):
        for model in ("deepseek-v3.1", "twin"):
            alone = HorizonData(hd.scenario, [1.0], [hd.periods[t]], {})
            pools = {p for p, pool in hd.peak.pools.items() if pool.model == model}
            m = create_horizon_model(alone, gpu_prices=prices, counted_pools=pools)
            report = solve_model(m, mip_gap=0.0, time_limit_s=30)
            assert report.status == Status.OPTIMAL and report.objective_value is not None
            assert parts.bounds[(model, t)] == pytest.approx(report.objective_value, rel=1e-5)


@pytest.mark.parametrize("needs,hours,least", [
    ([10, 20, 30], [1, 1, 1], 0), ([5, 5, 50, 5], [6, 6, 1, 11], 0), ([0, 3, 0], [1, 1, 1], 4),
    ([7.5, 2, 9], [2, 3, 1], 0)])
def test_reserved_count_against_enumeration(needs: list[float], hours: list[float],
                                            least: int) -> None:
    reserved, on_demand = 2.0, 2.5

    def cost(r: int) -> float:
        return sum(h * (reserved * r + on_demand * max(0.0, g - r))
                   for g, h in zip(needs, hours, strict=True))

    best = min(cost(r) for r in range(least, 60))
    assert cost(reserve_for(needs, hours, reserved, on_demand, least)) == pytest.approx(best)
    assert reserve_for(needs, hours, reserved, on_demand, least) >= least


def test_one_period_takes_no_parts(paper_data: dict[str, Any],
                                   monkeypatch: pytest.MonkeyPatch) -> None:
    """A one-period horizon is the program of section O as it is (today's plan): no parts."""
    import pdopt.optimize.periods as periods

    def fail(*_: Any, **__: Any) -> None:
        raise AssertionError("parts solved for one period")

    monkeypatch.setattr(periods, "solve_period_parts", fail)
    data = _two_models(paper_data, [1.0], [1.0])
    assert solve_horizon(scenario_from_data(data), compare=False).has_plan


def test_start_is_empty_without_a_plan_for_every_part(paper_data: dict[str, Any]) -> None:
    data = _two_models(paper_data, [0.5, 1.0], [1.0, 0.5])
    hd = build_horizon_data(scenario_from_data(data))
    parts = solve_period_parts(hd, Deadline.after(60))
    parts.values.pop(next(iter(itertools.islice(parts.values, 1))))
    assert len(start_values(hd, create_horizon_model(hd), parts)) == 0


def _path_cost(hd: HorizonData, parts: Any, model: str) -> float:
    """sum_t h_t (plan's GPUs at c) + warm-up of the instances added between periods (cyclic)."""
    prices = cheapest_gpu_prices(hd.scenario, hd.gpu_types())
    pools = [p for p, pool in hd.peak.pools.items() if pool.model == model]
    T = len(hd.hours)

    def total(t: int, p: str) -> float:
        return sum(v for (name, index), v in parts.values[(model, t % T)].items()
                   if name in ("p0.n", "spare") and index[0] == p)

    assert hd.scenario.periods is not None
    warm = hd.scenario.periods.warm_up_minutes / 60
    cost = 0.0
    for t in range(T):
        for p in pools:
            pool = hd.peak.pools[p]
            cost += hd.hours[t] * prices[pool.gpu] * pool.gpus_per_instance * total(t, p)
            cost += warm * pool.cost_per_hour * max(0.0, total(t, p) - total(t - 1, p))
    return cost


def test_smoothing_keeps_instances_through_short_dips(paper_data: dict[str, Any]) -> None:
    """Eq. H23's shortest path: every period gets a plan that serves its demand, and the path
    costs no more (instance-hours at c plus warm-up) than each period's own part."""
    from pdopt.optimize.period_parts import smooth

    curve = [1.0, 0.6, 1.0, 0.5, 1.0, 0.6, 1.0, 0.4]
    data = _two_models(paper_data, curve, curve[::-1])
    data["periods"].update(length_h=0.25, warm_up_minutes=30)
    hd = build_horizon_data(scenario_from_data(data))
    parts = solve_period_parts(hd, Deadline.after(60))
    before = {model: _path_cost(hd, parts, model) for model in ("deepseek-v3.1", "twin")}
    own = dict(parts.values)
    smooth(hd, parts)
    for model in ("deepseek-v3.1", "twin"):
        for t in range(len(curve)):
            plan = parts.values[(model, t)]
            assert any(plan is parts.plans[model][k] for k in parts.serving[(model, t)])
        assert _path_cost(hd, parts, model) <= before[model] + 1e-9
    # with 15-minute periods and 30 minutes of warm-up, keeping instances through the dips wins
    assert any(parts.values[k] is not own[k] for k in own)


def test_search_stops_within_the_gap_of_a_known_bound(paper_data: dict[str, Any],
                                                      caplog: pytest.LogCaptureFixture) -> None:
    """solve_lexicographic(known_bound=B) stops HiGHS once its plan is within the gap of B, a
    bound proven elsewhere (the purchase bound H24 in solve_horizon): with B the start's own
    value, the start is returned at once."""
    from pdopt.optimize.solver import KNOWN_BOUND_REACHED, solve_lexicographic

    data = _two_models(paper_data, [1.0, 1.0, 0.2, 1.5], [0.4, 1.2, 1.2, 0.4],
                       reserved={"cost_per_hour": 3.0})
    hd = build_horizon_data(scenario_from_data(data))
    parts = solve_period_parts(hd, Deadline.after(60))
    fixed = create_horizon_model(hd)
    for var, value in start_values(hd, fixed, parts).items():
        var.fix(value)
    value = solve_model(fixed, mip_gap=0.0, time_limit_s=60).objective_value
    assert value is not None
    m = create_horizon_model(hd)
    report = solve_lexicographic(m, mip_gap=1e-9, time_limit_s=60,
                                 start=start_values(hd, m, parts), known_bound=value,
                                 progress=lambda _: None)  # callbacks on in both stages
    assert report.termination == KNOWN_BOUND_REACHED
    assert report.objective_value == pytest.approx(value, rel=1e-9)
    # the interrupt is ours: Pyomo's warning about it is not passed on, and no later run of the
    # session (the GPU-hours stage) ends interrupted
    assert not any("kInterrupt" in r.getMessage() for r in caplog.records)
