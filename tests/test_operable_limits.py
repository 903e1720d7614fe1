"""Operability limits (docs/method.md, O.7; docs/scenario-format.md, Limits): each against brute
force enumeration on small fleets, the plans obey them, and bad values are one-line errors."""

from __future__ import annotations

import functools
import json
from typing import Any

import pytest
import yaml
from click.testing import CliRunner
from fleet_cases import brute_force_cost, random_fleet

from pdopt.cli import main
from pdopt.optimize import solve
from pdopt.plan import Plan, Status
from pdopt.scenario.loading import scenario_from_data

LIMITS: list[dict[str, Any]] = [
    {"max_instance_types": 1},
    {"max_instance_types": {"prefill": 1}},
    {"single_gpu_type": True},
    {"min_count_if_used": 2},
    {"min_count_if_used": 3},
    {"max_utilization": 0.85},
    {"max_utilization": {"decode": 0.5}},
    {"max_instance_types": 1, "min_count_if_used": 2, "max_utilization": 0.8},
]


def _fleet(seed: int, limits: dict[str, Any], where: str = "options", **kw: Any
           ) -> dict[str, Any]:
    data = random_fleet(seed, **kw)
    data.setdefault("options", {})["queue"] = "mm1"
    if where == "options":
        data["options"]["limits"] = limits
    else:
        data["models"]["m"]["limits"] = limits
    return data


def _check_plan_obeys(plan: Plan, limits: dict[str, Any]) -> None:
    pools = [p for p in plan.pools if p.count > 0]
    types = limits.get("max_instance_types")
    for role in ("prefill", "decode"):
        k = types if isinstance(types, int) else (types or {}).get(role)
        if k is not None:
            assert sum(p.role == role for p in pools) <= k
        cap = limits.get("max_utilization")
        cap = cap if isinstance(cap, float) else (cap or {}).get(role)
        if cap is not None:
            assert all(p.utilization <= cap + 1e-6 for p in pools if p.role == role)
    if limits.get("single_gpu_type"):
        assert len({p.gpu for p in pools}) <= 1
    if limits.get("min_count_if_used"):
        assert all(p.count >= limits["min_count_if_used"] for p in pools)


# Seeds where the limits bind (each costs more than the unlimited optimum, checked below).
CASES = [(2, {}, lim) for lim in LIMITS] + [(11, {}, lim) for lim in LIMITS]


@functools.cache
def _brute(seed: int, limits: str) -> float | None:
    return brute_force_cost(scenario_from_data(_fleet(seed, json.loads(limits))))


@pytest.mark.parametrize("seed,kwargs,limits", CASES)
def test_limits_match_brute_force(seed: int, kwargs: dict[str, Any],
                                  limits: dict[str, Any]) -> None:
    scenario = scenario_from_data(_fleet(seed, limits, **kwargs))
    plan = solve(scenario, mip_gap=0.0)
    expected = _brute(seed, json.dumps(limits))
    if expected is None:
        assert plan.status == Status.INFEASIBLE
        return
    assert plan.status == Status.OPTIMAL
    assert plan.cost_per_hour == pytest.approx(expected, rel=1e-9)
    _check_plan_obeys(plan, limits)


def test_the_brute_force_cases_bind() -> None:
    """Every limit raises the cost in at least one of the cases (else the tests could not fail)."""
    for limits in LIMITS:
        raised = False
        for seed, _, lim in CASES:
            if lim is not limits:
                continue
            free, limited = _brute(seed, "{}"), _brute(seed, json.dumps(limits))
            raised |= free is not None and (limited is None or limited > free + 1e-6)
        assert raised, limits


def test_model_limits_override_the_scenario_wide_ones() -> None:
    """models.<m>.limits overrides options.limits field by field."""
    data = _fleet(2, {"min_count_if_used": 3, "max_instance_types": 1})
    data["models"]["m"]["limits"] = {"min_count_if_used": 2}
    limits = scenario_from_data(data).limits_of("m")
    assert limits.min_count_if_used == 2
    assert limits.max_instance_types == {"prefill": 1, "decode": 1}
    assert limits.max_utilization == {} and not limits.single_gpu_type


@pytest.mark.parametrize("limits,message", [
    ({"max_utilization": 1.5}, "options.limits.max_utilization.prefill: must be <= 1"),
    ({"max_instance_types": True}, "options.limits.max_instance_types: must be a number"),
    ({"min_count_if_used": 0}, "options.limits.min_count_if_used: must be > 0"),
    ({"single_gpu_typ": True}, "options.limits.single_gpu_typ"),
])
def test_bad_limits_are_one_line_errors(tmp_path: Any, limits: dict[str, Any],
                                        message: str) -> None:
    path = tmp_path / "s.yaml"
    path.write_text(yaml.safe_dump(_fleet(2, limits)))
    result = CliRunner().invoke(main, ["check", str(path)])
    assert result.exit_code == 2
    assert message in result.output and "Traceback" not in result.output


def test_limits_that_admit_no_plan_are_named() -> None:
    """Prefill allowed on GA only and decode on GB only: one GPU type per model admits no plan,
    and the diagnosis says so."""
    data = _fleet(2, {"single_gpu_type": True}, cross_links=True)
    data["models"]["m"].update(allowed_prefill_gpus=["GA"], allowed_decode_gpus=["GB"])
    plan = solve(scenario_from_data(data))
    assert plan.status == Status.INFEASIBLE
    assert any("operability limits (single_gpu_type) admit no plan" in r
               for r in plan.diagnosis), plan.diagnosis


def test_price_of_each_limit_against_brute_force() -> None:
    """The price of a limit is the plan's cost minus the optimum without that kind of limit (the
    others kept); with two kinds, one more row removes both."""
    from pdopt.report import render
    from pdopt.simplicity import add_limit_prices, limit_prices

    both = {"min_count_if_used": 3, "max_utilization": {"decode": 0.5}}
    scenario = scenario_from_data(_fleet(11, both))
    plan = solve(scenario, mip_gap=0.0)
    prices = {p.limit: p for p in limit_prices(scenario, plan, mip_gap=0.0)}
    assert list(prices) == ["min_count_if_used", "max_utilization", "all"]
    assert plan.cost_per_hour is not None
    expected = {"min_count_if_used": _brute(11, json.dumps({"max_utilization": {"decode": 0.5}})),
                "max_utilization": _brute(11, json.dumps({"min_count_if_used": 3})),
                "all": _brute(11, "{}")}
    for kind, cost_without in expected.items():
        assert cost_without is not None
        assert prices[kind].cost_without_per_hour == pytest.approx(cost_without, rel=1e-9)
        assert prices[kind].price_per_hour == pytest.approx(plan.cost_per_hour - cost_without)
    assert prices["all"].price_per_hour > 0
    from pdopt.plan_report import plan_report

    text = render(add_limit_prices(plan_report(plan), list(prices.values())), "table")
    assert f"price of all limits: +${plan.cost_per_hour - expected['all']:,.2f}/h" in text


def test_no_limits_no_prices() -> None:
    from pdopt.simplicity import limit_prices

    scenario = scenario_from_data(_fleet(11, {}))
    assert limit_prices(scenario, solve(scenario)) == []
