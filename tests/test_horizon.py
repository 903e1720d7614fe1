"""Plans over a horizon (docs/method.md, section H): the format, demand per period, the program
against brute force, its monotonicity, one period = today's plan, and the plan's JSON."""

from __future__ import annotations

import copy
import itertools
import json
import math
from pathlib import Path
from typing import Any

import pytest
from fleet_cases import _groups, groups_feasible, paper_day
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pdopt.optimize import solve
from pdopt.optimize.periods import build_horizon_data, solve_horizon
from pdopt.plan import Plan, Status
from pdopt.scenario.demand import period_rates
from pdopt.scenario.loading import scenario_from_data
from pdopt.scenario.prepare import prepare
from pdopt.scenario.problems import ScenarioError

SLOW = settings(max_examples=6, deadline=None, derandomize=True,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])


# ---- format ------------------------------------------------------------------------------------

@pytest.mark.parametrize("change,where", [
    ({"periods": {"count": 2}}, "periods"),
    ({"periods": {"count": 2, "length_h": 1, "lengths_h": [1, 1]}}, "periods"),
    ({"periods": {"lengths_h": []}}, "periods"),
    ({"periods": {"count": 0, "length_h": 1}}, "periods.count"),
    ({"periods": {"count": 2, "length_h": 0}}, "periods.length_h"),
    ({"periods": {"count": 2, "length_h": 1, "max_add": -1}}, "periods.max_add"),
    ({"redundancy": {"spare_instances": 1, "spare_fraction": 0.1}}, "redundancy"),
    ({"redundancy": {"instances": {"nope": {"spare_instances": 1}}}}, "redundancy.instances.nope"),
    ({"redundancy": {"models": {"m": {}}}}, "redundancy.models.m"),
])
def test_bad_horizon_fields_are_one_line_errors(paper_data: dict[str, Any],
                                                change: dict[str, Any], where: str) -> None:
    paper_data.update(change)
    with pytest.raises(ScenarioError) as e:
        scenario_from_data(paper_data)
    assert any(p.location.startswith(where) for p in e.value.problems), e.value
    assert all("\n" not in str(p) for p in e.value.problems)


@pytest.mark.parametrize("gpu,where", [
    ({"reserved": {"cost_per_hour": -1}}, "gpus.H200.reserved.cost_per_hour"),
    ({"reserved": {"cost_per_hour": 2, "min_gpus": -3}}, "gpus.H200.reserved.min_gpus"),
    ({"spot": {"cost_per_hour": 1, "max_share": 1.5}}, "gpus.H200.spot.max_share"),
    ({"spot": {"cost_per_hour": 1, "interruption_share": 1}},
     "gpus.H200.spot.interruption_share"),
])
def test_bad_purchase_options(paper_data: dict[str, Any], gpu: dict[str, Any],
                              where: str) -> None:
    paper_data["gpus"]["H200"].update(gpu)
    with pytest.raises(ScenarioError) as e:
        scenario_from_data(paper_data)
    assert [p.location for p in e.value.problems] == [where]


def test_demand_must_fit_the_horizon(paper_data: dict[str, Any]) -> None:
    paper_data["workloads"][0]["demand"] = {"multipliers": [1, 2]}
    with pytest.raises(ScenarioError, match="needs `periods`"):
        scenario_from_data(paper_data)
    paper_data["periods"] = {"count": 3, "length_h": 1}
    with pytest.raises(ScenarioError, match="2 values for 3 periods"):
        scenario_from_data(paper_data)
    paper_data["workloads"][0]["demand"] = {"multipliers": [1, 2, 3], "requests_per_s": [1, 2, 3]}
    with pytest.raises(ScenarioError, match="exactly one of"):
        scenario_from_data(paper_data)
    paper_data["workloads"][0]["prefix_cache_hit_rate"] = 1.0
    with pytest.raises(ScenarioError, match="prefix_cache_hit_rate"):
        scenario_from_data(paper_data)


# ---- demand per period (Eq. H1) ---------------------------------------------------------------

def test_rates_from_multipliers_and_lists(paper_data: dict[str, Any]) -> None:
    rate = 5_000_000 / 60 / (6144 + 512)
    data = paper_day(paper_data, [0.5, 1.0, 2.0])
    assert period_rates(scenario_from_data(data))["chat"] == pytest.approx(
        [0.5 * rate, rate, 2 * rate])
    data["workloads"][0]["demand"] = {"requests_per_s": [1, 0, 3]}
    assert period_rates(scenario_from_data(data))["chat"] == [1, 0, 3]


def _curve_scenario(tmp_path: Path, paper: dict[str, Any], curve: dict[str, Any]) -> Path:
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "load.csv").write_text(
        "model,t,rate\na,0,1\na,1,3\nb,0,100\na,2,2\na,3,6\nb,1,100\n", encoding="utf-8")
    data = paper_day(paper, [1, 1])
    data["workloads"][0]["demand"] = {"curve": curve}
    path = tmp_path / "day.yaml"
    path.write_text(json.dumps(data), encoding="utf-8")
    return path


def test_curve_file_is_binned_and_read_relative_to_its_file(
        tmp_path: Path, paper_data: dict[str, Any], monkeypatch: pytest.MonkeyPatch) -> None:
    path = _curve_scenario(tmp_path, paper_data, {"file": "sub/load.csv", "column": "rate",
                                                  "where": {"model": "a"}})
    monkeypatch.chdir("/")
    sc = prepare(path).scenario
    rate = sc.workloads[0].rate_requests_per_s
    # rows of model a: 1, 3, 2, 6 -> periods (1+3)/2 = 2 and (2+6)/2 = 4, mean 3 (shape)
    assert period_rates(sc)["chat"] == pytest.approx([rate * 2 / 3, rate * 4 / 3])


@pytest.mark.parametrize("curve,message", [
    ({"file": "sub/load.csv", "column": "nope"}, "no column 'nope'"),
    ({"file": "sub/missing.csv", "column": "rate"}, "cannot read"),
    ({"file": "sub/load.csv", "column": "rate", "where": {"model": "a"}, "rows": 3},
     "3 rows do not split into 2 periods"),
    ({"file": "sub/load.csv", "column": "model"}, "is not a number"),
    ({"file": "sub/load.csv", "column": "rate", "first_row": 9}, "rows 9"),
])
def test_bad_curve_files(tmp_path: Path, paper_data: dict[str, Any], curve: dict[str, Any],
                         message: str) -> None:
    path = _curve_scenario(tmp_path, paper_data, curve)
    with pytest.raises(ScenarioError, match=message) as e:
        solve_horizon(path, compare=False)
    assert "workloads[0].demand.curve" in str(e.value)
    assert "\n" not in str(e.value)


# ---- the program against brute force ---------------------------------------------------------

def brute_force_horizon(data: dict[str, Any]) -> float:
    """Cheapest total over the horizon by enumeration: in each period every feasible vector of
    pool totals (group counts checked by fleet_cases' LP), kept when no other feasible vector is
    smaller in every pool; spares added per pool (k when used, ceil(f n)); then every reserved
    count, on demand for the rest of each period. One GPU type, no spot, no scale limits."""
    sc = scenario_from_data(data)
    hd = build_horizon_data(sc)
    gpu = next(iter(sc.gpus.values()))
    red = sc.redundancy
    choices = []
    for fd in hd.periods:
        groups, pools = _groups(fd), sorted(fd.pools)
        feasible = set()
        for combo in itertools.product(*(range(fd.pools[p].upper_bound + 1) for p, _ in groups)):
            n = dict(zip(groups, combo, strict=True))
            totals = tuple(sum(v for (p, _), v in n.items() if p == name) for name in pools)
            if any(t > fd.pools[p].upper_bound for t, p in zip(totals, pools, strict=True)):
                continue
            if groups_feasible(fd, n):
                feasible.add(totals)
        minimal = [v for v in feasible if not any(
            o != v and all(a <= b for a, b in zip(o, v, strict=True)) for o in feasible)]
        gpus = []
        for v in minimal:
            total = 0
            for name, n in zip(pools, v, strict=True):
                k, f = red.of(name, fd.pools[name].model) if red else (0, 0.0)
                spare = max(k if n else 0, math.ceil(f * n - 1e-9))
                total += (n + spare) * fd.pools[name].gpus_per_instance
            gpus.append(total)
        choices.append(sorted(set(gpus)))
    best = math.inf
    reserved_price = gpu.reserved.cost_per_hour if gpu.reserved else None
    for need in itertools.product(*choices):
        for r in range(max(need) + 1) if reserved_price else [0]:
            cost = sum(h * ((reserved_price or 0) * r + gpu.cost_per_hour * max(0, g - r))
                       for h, g in zip(hd.hours, need, strict=True))
            best = min(best, cost)
    return best


@pytest.mark.parametrize("multipliers,gpu,redundancy", [
    ([0.3, 1.0, 2.0], {}, None),
    ([0.3, 1.0, 2.0], {"reserved": {"cost_per_hour": 2.5}}, None),
    ([1.0, 1.0, 0.2, 1.5], {"reserved": {"cost_per_hour": 3.0}}, None),
    ([0.5, 1.5], {"reserved": {"cost_per_hour": 2.0}}, {"spare_instances": 1}),
    ([0.5, 2.5], {}, {"spare_fraction": 0.3}),
    ([0.5, 1.2], {"reserved": {"cost_per_hour": 2.2}},
     {"instances": {"ds-decode-8xh200": {"spare_instances": 2}}}),
])
def test_horizon_optimum_equals_brute_force(paper_data: dict[str, Any], multipliers: list[float],
                                            gpu: dict[str, Any],
                                            redundancy: dict[str, Any] | None) -> None:
    data = paper_day(paper_data, multipliers, **gpu)
    if redundancy:
        data["redundancy"] = redundancy
    plan = solve_horizon(scenario_from_data(data), compare=False)
    assert plan.status == Status.OPTIMAL
    assert plan.total_cost == pytest.approx(brute_force_horizon(data), rel=1e-9)
    assert plan.total_cost == pytest.approx(sum(p.cost for p in plan.periods))


def test_reserved_minimum_and_spot_cap(paper_data: dict[str, Any]) -> None:
    data = paper_day(paper_data, [0.5, 2.0], reserved={"cost_per_hour": 2.5, "min_gpus": 80},
                spot={"cost_per_hour": 1.0, "max_gpus": 8})
    plan = solve_horizon(scenario_from_data(data), compare=False)
    assert plan.reserved_gpus_by_type["H200"] >= 80
    assert all(p.spot_gpus_by_type.get("H200", 0) <= 8 for p in plan.periods)
    # spot at $1 is the cheapest: the cap is used wherever anything beyond the reserve runs
    for p in plan.periods:
        beyond = p.gpus_by_type["H200"] - plan.reserved_gpus_by_type["H200"]
        assert p.spot_gpus_by_type.get("H200", 0) == min(8, max(0, beyond))


def test_spot_covered_by_spares(paper_data: dict[str, Any]) -> None:
    data = paper_day(paper_data, [1.0, 1.0], spot={"cost_per_hour": 0.5, "covered_by_spares": True})
    data["redundancy"] = {"spare_instances": 1}
    plan = solve_horizon(scenario_from_data(data), compare=False)
    for p in plan.periods:
        spare_gpus = 8 * sum(p.spares.values())
        assert 0 < p.spot_gpus_by_type["H200"] <= spare_gpus


def test_scale_limits_and_warm_up(paper_data: dict[str, Any]) -> None:
    free = solve_horizon(scenario_from_data(paper_day(paper_data, [0.2, 2.5, 0.2])), compare=False)
    counts = [sum(p.counts.values()) for p in free.periods]
    assert max(counts) - min(counts) > 2
    data = paper_day(paper_data, [0.2, 2.5, 0.2])
    data["periods"].update(max_add=2, max_remove=1, warm_up_minutes=30)
    limited = solve_horizon(scenario_from_data(data), compare=False)
    steps = [(0, 1), (1, 2), (2, 0)]  # cyclic: the last period is followed by the first
    added = 0
    for pool in ("ds-prefill-8xh200", "ds-decode-8xh200"):
        counts = [p.counts.get(pool, 0) for p in limited.periods]
        for a, b in steps:
            assert counts[b] - counts[a] <= 2 and counts[a] - counts[b] <= 1
        added += sum(max(0, counts[b] - counts[a]) for a, b in steps)
    assert limited.total_cost > free.total_cost
    # warm-up: every instance added pays 30 minutes on demand before its period
    assert limited.warm_up_cost == pytest.approx(added * 0.5 * 8 * 3.99)


# ---- properties ----------------------------------------------------------------------------------

@SLOW
@given(st.lists(st.floats(0.2, 2.0), min_size=2, max_size=3), st.data())
def test_lower_curve_never_costs_more(paper_data: dict[str, Any], curve: list[float],
                                      data: st.DataObject) -> None:
    """Less demand in some periods never raises the bill (pointwise monotone). "A flatter curve
    never costs more per served request" is false with whole instances (method H, "Flatter
    curves"): this and the static-peak bound below are what holds."""
    lower = [m * data.draw(st.floats(0.3, 1.0)) for m in curve]
    reserved = {"cost_per_hour": 2.6}
    high = solve_horizon(scenario_from_data(paper_day(paper_data, curve, reserved=reserved)),
                         compare=False)
    low = solve_horizon(scenario_from_data(paper_day(paper_data, lower, reserved=reserved)),
                        compare=False)
    assert low.total_cost <= high.total_cost * (1 + 1e-9)


@SLOW
@given(st.lists(st.floats(0.2, 2.0), min_size=2, max_size=3))
def test_flattest_curve_at_the_peak_costs_most(paper_data: dict[str, Any],
                                               curve: list[float]) -> None:
    """The flattest curve with the same peak (every period at the peak) is static peak sizing;
    it never costs less than the curve's own plan."""
    reserved = {"cost_per_hour": 2.6}
    plan = solve_horizon(scenario_from_data(paper_day(paper_data, curve, reserved=reserved)),
                         compare=False)
    flat = solve_horizon(scenario_from_data(paper_day(paper_data, [max(curve)] * len(curve),
                                                 reserved=reserved)), compare=False)
    assert plan.total_cost <= flat.total_cost * (1 + 1e-9)


def test_flatter_curve_can_cost_more_per_request(paper_data: dict[str, Any]) -> None:
    """The counterexample of method H: whole instances round each period up, so moving demand
    from a period that fills its instances to one that does not can cost more per request."""
    # find the decode-bound rate a whole number of instances fills: bisect the rate at which
    # the plan needs one more instance, then compare [x, 2x] with its flattened [1.5x, 1.5x]
    lo, hi = 0.1, 20.0
    base = _cost_at(paper_data, [lo])
    for _ in range(30):
        mid = (lo + hi) / 2
        lo, hi = (mid, hi) if _cost_at(paper_data, [mid]) == base else (lo, mid)
    x = lo  # the most one plan's fleet serves
    spiky = _cost_at(paper_data, [x, 2 * x])
    flat = _cost_at(paper_data, [1.5 * x, 1.5 * x])
    # same requests served; the paper's case: $1,149.12 for [x, 2x], $1,532.16 for [1.5x, 1.5x]
    assert flat > spiky


def _cost_at(paper: dict[str, Any], rates: list[float]) -> float:
    data = paper_day(paper, [1.0] * len(rates))
    data["workloads"][0]["demand"] = {"requests_per_s": rates}
    return solve_horizon(scenario_from_data(data), compare=False).total_cost  # type: ignore


@SLOW
@given(st.lists(st.floats(0.2, 2.0), min_size=2, max_size=3), st.floats(1.0, 3.9),
       st.floats(0.05, 1.0))
def test_cheaper_reserved_never_raises_the_bill(paper_data: dict[str, Any], curve: list[float],
                                                price: float, cut: float) -> None:
    dear = solve_horizon(scenario_from_data(paper_day(paper_data, curve, reserved={
        "cost_per_hour": price})), compare=False)
    cheap = solve_horizon(scenario_from_data(paper_day(paper_data, curve, reserved={
        "cost_per_hour": price * cut})), compare=False)
    assert cheap.total_cost <= dear.total_cost * (1 + 1e-9)


@SLOW
@given(st.lists(st.floats(0.2, 2.0), min_size=1, max_size=3), st.integers(0, 2),
       st.integers(1, 2))
def test_more_spares_never_lower_the_bill(paper_data: dict[str, Any], curve: list[float],
                                          k: int, more: int) -> None:
    def cost(spares: int) -> float:
        data = paper_day(paper_data, curve, reserved={"cost_per_hour": 2.5})
        data["redundancy"] = {"spare_instances": spares}
        return solve_horizon(scenario_from_data(data), compare=False).total_cost  # type: ignore

    assert cost(k + more) >= cost(k) * (1 - 1e-9)


# ---- one period is today's plan ----------------------------------------------------------------

SHIPPED_FAST = ["paper-deepseek-v31-h200.yaml", "split-prefill-decode.yaml",
                "gpu-choice-estimated.yaml"]


@pytest.mark.parametrize("name", SHIPPED_FAST)
def test_one_period_is_todays_plan(project_root: Path, name: str) -> None:
    """A one-period horizon of a shipped scenario: the same cost and counts as `solve` (the
    heterogeneous fleet, ~1 min, is checked by benchmarks/day_plan.py)."""
    prepared = prepare(project_root / "scenarios" / name,
                       overrides={"periods": {"count": 1, "length_h": 1}})
    today = solve(prepare(project_root / "scenarios" / name))
    horizon = solve_horizon(prepared, compare=False)
    assert horizon.total_cost == pytest.approx(today.cost_per_hour, rel=1e-9)
    assert {p.instance: p.count for p in horizon.pools} == \
        {p.instance: p.count for p in today.pools}


def test_static_peak_and_on_demand_comparison(paper_data: dict[str, Any]) -> None:
    data = paper_day(paper_data, [0.3, 1.0, 2.0, 0.7], reserved={"cost_per_hour": 2.5})
    plan = solve_horizon(scenario_from_data(data))
    static, on_demand = (plan.comparison["static_peak_total_cost"],
                         plan.comparison["all_on_demand_total_cost"])
    assert static is not None and on_demand is not None
    assert plan.total_cost <= static and plan.total_cost <= on_demand
    paper_data.setdefault("options", {})["queue"] = "mm1"
    paper_data["workloads"][0]["tokens_per_minute"] *= 2
    peak = solve(scenario_from_data(paper_data))
    # the static fleet: the peak's GPUs for 24 hours, all reserved (cheaper than on demand)
    assert static == pytest.approx(peak.total_gpus * 2.5 * 24)  # type: ignore[operator]


def test_plan_json_round_trips(paper_data: dict[str, Any]) -> None:
    data = paper_day(paper_data, [0.5, 1.5], reserved={"cost_per_hour": 2.5})
    data["redundancy"] = {"spare_instances": 1}
    plan = solve_horizon(scenario_from_data(data))
    d = json.loads(json.dumps(plan.to_dict()))
    assert [set(p) >= {"counts", "cost", "gpus_by_type"} for p in d["periods"]] == [True, True]
    assert d["reserved_gpus_by_type"] == plan.reserved_gpus_by_type
    assert d["total_cost"] == plan.total_cost
    assert Plan.from_dict(d) == plan


def test_prefix_cache_reduces_prefill_only(paper_data: dict[str, Any]) -> None:
    """Half the prompt from cache: prefill service time halves (Eq. H9), decode unchanged."""
    paper_data.setdefault("options", {})["queue"] = "mm1"
    base = solve(scenario_from_data(paper_data))
    paper_data["workloads"][0]["prefix_cache_hit_rate"] = 0.5
    cached = solve(scenario_from_data(paper_data))
    assert cached.pool("ds-prefill-8xh200").count < base.pool("ds-prefill-8xh200").count
    assert cached.pool("ds-decode-8xh200").count == base.pool("ds-decode-8xh200").count


# ---- simulating a day plan -----------------------------------------------------------------------

def test_day_plan_simulated_period_by_period(paper_data: dict[str, Any]) -> None:
    from pdopt.simulate.day import day_report, simulate_day
    from pdopt.simulate.simulator import SimulationOptions

    data = paper_day(paper_data, [0.4, 1.8])
    plan = solve_horizon(scenario_from_data(data), compare=False)
    again = Plan.from_dict(json.loads(json.dumps(plan.to_dict())))  # as `--plan` reads it
    runs = simulate_day(scenario_from_data(data), again, SimulationOptions(duration_s=120))
    assert [r.result.counts for r in runs] == [
        {p.instance: p.count for p in period.pools} for period in plan.periods]
    # each period at its own rate: the busier period simulates about 1.8 / 0.4 as many requests
    low, high = (r.result.workloads[0].requests for r in runs)
    assert 3.5 < high / low < 5.5
    assert day_report(runs).data["meets_slo"] == all(r.result.meets_slo for r in runs)


def test_simulating_a_plan_without_periods_is_refused(paper_data: dict[str, Any]) -> None:
    from pdopt.simulate.day import simulate_day
    from pdopt.simulate.fleet import SimulationError

    with pytest.raises(SimulationError, match="no periods"):
        simulate_day(scenario_from_data(paper_data), solve(scenario_from_data(paper_data)))


def test_shipped_day_ahead_scenario(project_root: Path) -> None:
    """The day-ahead scenario solves without ../shared (its curves are embedded) and its plan
    has N+1 on every pool in use in every period."""
    plan = solve_horizon(project_root / "scenarios" / "day-ahead.yaml", time_limit_s=40,
                         mip_gap=0.05, compare=False)
    assert plan.has_plan and len(plan.periods) == 24 and plan.total_cost is not None
    assert plan.total_cost == pytest.approx(sum(p.cost for p in plan.periods)
                                            + plan.warm_up_cost)
    for period in plan.periods:
        assert all(n >= 1 for n in period.spares.values())  # N+1 on every pool in use
        assert set(period.spares) == {p.instance for p in period.pools}


def test_solve_plans_a_horizon_scenario(paper_data: dict[str, Any]) -> None:
    """pdopt.solve hands scenarios with periods, reserved/spot capacity or spares to the horizon
    program."""
    data = paper_day(paper_data, [0.5, 1.5])
    assert solve(scenario_from_data(data)).periods
    spares_only = copy.deepcopy(paper_data) | {"redundancy": {"spare_instances": 1}}
    plan = solve(scenario_from_data(spares_only))
    assert len(plan.periods) == 1 and plan.periods[0].spares == {
        p.instance: 1 for p in plan.pools}


def test_curve_paths_in_overrides_are_relative_to_their_file(tmp_path: Path) -> None:
    from pdopt.scenario.paths import absolutize_value

    for key, value in [("workloads.chat.demand", {"curve": {"file": "c.csv", "column": "r"}}),
                       ("workloads.chat.demand.curve", {"file": "c.csv", "column": "r"}),
                       ("workloads.chat.demand.curve.file", "c.csv")]:
        out = absolutize_value(key, value, tmp_path)
        got = out if isinstance(out, str) else out.get("file") or out["curve"]["file"]
        assert got == str(tmp_path / "c.csv")
