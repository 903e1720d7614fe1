"""Day plans with `objective: gpus` (fewest GPU-hours, then cheapest, Eq. O10 over the horizon)
and with operability limits (issue 16) over the horizon (docs/method.md, Eq. H26)."""

from __future__ import annotations

import copy
from typing import Any

import pytest
from fleet_cases import paper_day

from pdopt.optimize import solve
from pdopt.optimize.period_parts import reserve_for
from pdopt.optimize.periods import solve_horizon
from pdopt.plan import Objective, Plan, Status
from pdopt.scenario.loading import scenario_from_data


def _gpu_hours(plan: Plan) -> float:
    return sum(p.hours * sum(p.gpus_by_type.values()) for p in plan.periods)


@pytest.mark.parametrize("multipliers", [[0.3, 1.0, 2.0], [1.5, 0.4]])
def test_fewest_gpu_hours_then_cheapest(paper_data: dict[str, Any],
                                        multipliers: list[float]) -> None:
    """Without scale limits the GPU-hours separate by period: the fewest are each period's
    fewest GPUs (the static program with objective gpus) times its hours; the cost plan uses at
    least as many and costs at most as much."""
    data = paper_day(paper_data, multipliers, reserved={"cost_per_hour": 2.5})
    sc = scenario_from_data(data)
    fewest = solve_horizon(sc, compare=False, objective="gpus")
    cheapest = solve_horizon(sc, compare=False)
    assert fewest.status == cheapest.status == Status.OPTIMAL
    assert fewest.objective == Objective.GPUS
    expected = 0.0
    for m in multipliers:
        static = copy.deepcopy(paper_data)
        static.setdefault("options", {})["queue"] = "mm1"
        static["workloads"][0]["tokens_per_minute"] *= m
        gpus = solve(scenario_from_data(static), objective="gpus").total_gpus
        assert gpus is not None
        expected += 6 * gpus
    assert _gpu_hours(fewest) == pytest.approx(expected)
    # then the cheapest: with its GPUs per period, the best reserved count and on demand the rest
    needs = [float(sum(p.gpus_by_type.values())) for p in fewest.periods]
    best = reserve_for(needs, [6.0] * len(needs), 2.5, 3.99)
    assert fewest.total_cost == pytest.approx(sum(
        6 * (2.5 * best + 3.99 * max(0, g - best)) for g in needs))
    assert _gpu_hours(cheapest) >= _gpu_hours(fewest) - 1e-9
    assert cheapest.total_cost <= fewest.total_cost * (1 + 1e-9)  # type: ignore[operator]
    # the scenario's option is the default
    data["options"]["objective"] = "gpus"
    by_option = solve_horizon(scenario_from_data(data), compare=False)
    assert _gpu_hours(by_option) == pytest.approx(expected)


def _two_prefill_types(paper: dict[str, Any]) -> dict[str, Any]:
    """The paper's case with a second, half-size prefill instance type on its own GPU type
    (90% of the 8xH200's throughput per GPU): small periods take the small type, large ones the
    large."""
    data = paper_day(paper, [0.1, 1.0])
    data["models"] = {"deepseek-v3.1": {"kv_bytes_per_token": 70272}}
    data["kv_transfer"] = {"default_gbit_per_s": 400}
    data["gpus"]["S"] = {"cost_per_hour": 3.99, "memory_gib": 141}
    small = copy.deepcopy(data["instances"][0])
    small.update(name="ds-prefill-4xs", gpu="S", gpus_per_instance=4,
                 prefill_tokens_per_s=data["instances"][0]["prefill_tokens_per_s"] / 2 * 0.9)
    data["instances"].append(small)
    return data


def _prefill_types(plan: Plan) -> set[str]:
    return {pool for p in plan.periods for pool in p.counts if "prefill" in pool}


def test_instance_type_limit_holds_over_the_horizon(paper_data: dict[str, Any]) -> None:
    data = _two_prefill_types(paper_data)
    free = solve_horizon(scenario_from_data(data), compare=False)
    assert len(_prefill_types(free)) == 2  # the case needs the limit
    data["options"]["limits"] = {"max_instance_types": 1}
    limited = solve_horizon(scenario_from_data(data), compare=False)
    assert limited.status == Status.OPTIMAL
    assert len(_prefill_types(limited)) == 1  # in every period the same one
    assert limited.total_cost > free.total_cost  # type: ignore[operator]


def test_single_gpu_type_holds_over_the_horizon(paper_data: dict[str, Any]) -> None:
    data = _two_prefill_types(paper_data)
    data["models"]["deepseek-v3.1"]["limits"] = {"single_gpu_type": True}
    plan = solve_horizon(scenario_from_data(data), compare=False)
    assert plan.status == Status.OPTIMAL
    # decode runs on H200 only, so the model's one type is H200 (in each period, this alone
    # would follow from the per-period limit O19 as well)
    assert {g for p in plan.periods for g in p.gpus_by_type} == {"H200"}
