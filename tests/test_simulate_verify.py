"""`verify_plan` and its neighbours: one fewer per pool, rerouting an emptied pool, and the greedy
walk down from a plan that holds or up from one that does not."""

from __future__ import annotations

import pytest
from test_simulate import small, small_data

from pdopt.scenario.loading import scenario_from_data
from pdopt.simulate import SimulationOptions, plan_from_counts
from pdopt.simulate.verify import counts_of, neighbour, verify_plan

FAST = SimulationOptions(duration_s=120, warmup_s=10, cooldown_s=30)


def two_prefill_types():
    data = small_data(requests_per_s=6.0, input_tokens=100, output_tokens=2)
    second = dict(data["instances"][0], name="pre2")
    data["instances"].append(second)
    return scenario_from_data(data)


def test_neighbour_keeps_flows_and_scales_cost() -> None:
    sc = small()
    plan = plan_from_counts(sc, {"pre": 3, "dec": 2})
    nb = neighbour(plan, "pre", -1)
    assert nb is not None and counts_of(nb) == {"pre": 2, "dec": 2}
    assert nb.cost_per_hour == pytest.approx(plan.cost_per_hour - 1.0)  # 1 GPU at $1/hour
    assert [f.requests_per_s for f in nb.flows] == [f.requests_per_s for f in plan.flows]
    assert counts_of(plan) == {"pre": 3, "dec": 2}  # the original is untouched


def test_emptied_pool_hands_its_flows_over_or_leaves_no_route() -> None:
    sc = two_prefill_types()
    plan = plan_from_counts(sc, {"pre": 1, "pre2": 1, "dec": 1})
    assert sorted(f.prefill_instance for f in plan.flows) == ["pre", "pre2"]
    nb = neighbour(plan, "pre2", -1)
    assert nb is not None and [f.prefill_instance for f in nb.flows] == ["pre"]
    assert nb.flows[0].requests_per_s == pytest.approx(6.0)
    assert [p.instance for p in nb.pools] == ["pre", "dec"]
    # The only decode pool cannot go.
    assert neighbour(plan, "dec", -1) is None


def test_walks_down_to_the_smallest_that_holds() -> None:
    # 5 requests/s of 100-token prompts (0.1 s each): one prefill instance is at 50 % and keeps
    # the 1000 ms mean TTFT easily, so 3 prefill instances are two too many.
    sc = small(requests_per_s=5.0, input_tokens=100, output_tokens=2)
    v = verify_plan(sc, plan_from_counts(sc, {"pre": 3, "dec": 1}), FAST)
    assert v.plan_meets_slo and not v.plan_is_smallest
    assert v.smallest == {"pre": 1, "dec": 1}
    assert [c.meets_slo for c in v.neighbours] == [True, False]  # pre 2: yes; dec 0: no route
    assert v.neighbours[1].result is None


def test_walks_up_from_a_plan_that_misses() -> None:
    # 15 requests/s on one prefill instance is 150 % load: the plan misses; one more prefill
    # instance (75 %) holds it, one more decode instance does not help.
    sc = small(requests_per_s=15.0, input_tokens=100, output_tokens=2)
    v = verify_plan(sc, plan_from_counts(sc, {"pre": 1, "dec": 1}), FAST)
    assert not v.plan_meets_slo and not v.plan_is_smallest
    assert v.smallest == {"pre": 2, "dec": 1}
    assert {tuple(sorted(c.counts.items())): c.meets_slo for c in v.search} == {
        (("dec", 1), ("pre", 2)): True, (("dec", 2), ("pre", 1)): False}


def test_no_search_reports_only_the_neighbours() -> None:
    sc = small(requests_per_s=5.0, input_tokens=100, output_tokens=2)
    v = verify_plan(sc, plan_from_counts(sc, {"pre": 2, "dec": 1}), FAST, search=False)
    # Without the walk: the cheapest of the plan and its neighbours that holds.
    assert v.search == [] and v.smallest == {"pre": 1, "dec": 1}
    assert v.to_dict()["plan_is_smallest"] is False
