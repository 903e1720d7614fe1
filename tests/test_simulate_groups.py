"""The simulated fleet follows the plan's SLO groups (docs/simulation.md, "SLO groups")."""

from __future__ import annotations

import pytest

from pdopt.optimize import solve
from pdopt.scenario.loading import scenario_from_data
from pdopt.simulate.fleet import build_fleet

DATA = {
    "name": "split-groups",
    "options": {"queue": "mm1"},
    "gpus": {"G": {"cost_per_hour": 1.0}},
    "instances": [
        {"name": "pre", "model": "m", "role": "prefill", "gpu": "G", "gpus_per_instance": 1,
         "prefill_tokens_per_s": 1_000_000},
        {"name": "dec", "model": "m", "role": "decode", "gpu": "G", "gpus_per_instance": 1,
         "tpot_ms_by_batch": {1: 10.0, 64: 20.0, 256: 40.0}},
    ],
    "workloads": [
        {"name": "tight", "model": "m", "requests_per_s": 28.8, "input_tokens": 100,
         "output_tokens": 100, "slo": {"ttft_ms": 1000, "tpot_ms": 20}},
        {"name": "loose", "model": "m", "requests_per_s": 57.6, "input_tokens": 100,
         "output_tokens": 100, "slo": {"ttft_ms": 1000, "tpot_ms": 40}},
    ],
}


def test_two_groups_of_one_pool_run_as_two_pools() -> None:
    """The plan splits 'dec' into a 20 ms and a 40 ms group of one instance each (see
    tests/test_optimize.py); the fleet has one decode pool per group with the group's count, and
    the tight workload's requests only reach its own group (and the loose one's only theirs)."""
    scenario = scenario_from_data(DATA)
    plan = solve(scenario, mip_gap=0.0)
    groups = plan.pool("dec").groups
    assert [g.count for g in groups] == [1, 1]
    fleet = build_fleet(scenario, plan)
    assert [(d.name, d.group, d.count) for d in fleet.decode_pools] == [
        ("dec", g.level, g.count) for g in groups]
    assert [(p.name, p.group, p.count) for p in fleet.prefill_pools] == [
        ("pre", None, plan.pool("pre").count)]
    names = [w.name for w in scenario.workloads]
    used = {names[k]: {f.decode_pool for f in fs} for k, fs in enumerate(fleet.flows)}
    assert used == {"tight": {0}, "loose": {1}}
    assert sum(f.share for f in fleet.flows[0]) == pytest.approx(28.8)
    assert sum(f.share for f in fleet.flows[1]) == pytest.approx(57.6)


def test_one_group_pool_is_one_simulated_pool() -> None:
    """With one workload the pool has one group: one simulated pool, as before."""
    data = dict(DATA, workloads=[DATA["workloads"][1]])  # type: ignore[index]
    scenario = scenario_from_data(data)
    plan = solve(scenario, mip_gap=0.0)
    fleet = build_fleet(scenario, plan)
    assert [(d.name, d.group, d.count) for d in fleet.decode_pools] == [
        ("dec", None, plan.pool("dec").count)]


def test_neighbours_of_a_split_pool_change_one_group() -> None:
    """verify's one-fewer neighbours of a split pool take one instance from one SLO group (the
    simulator runs the groups' counts, so a pool-level count change alone would simulate the plan
    again); an emptied group is dropped and the pool runs as one group for both workloads."""
    from pdopt.simulate.verify import moves, neighbour

    scenario = scenario_from_data(DATA)
    plan = solve(scenario, mip_gap=0.0)
    levels = [g.level for g in plan.pool("dec").groups]
    assert sorted(moves(plan), key=str) == [*[("dec", lv) for lv in levels], ("pre", None)]
    with pytest.raises(ValueError, match="SLO groups"):
        neighbour(plan, "dec", -1)
    nb = neighbour(plan, "dec", -1, levels[0])
    assert nb is not None and nb.pool("dec").count == plan.pool("dec").count - 1
    assert [g.level for g in nb.pool("dec").groups] == levels[1:]
    fleet = build_fleet(scenario, nb)
    assert [(d.group, d.count) for d in fleet.decode_pools] == [(None, 1)]
    assert {f.decode_pool for fs in fleet.flows for f in fs} == {0}
    up = neighbour(plan, "dec", +1, levels[1])
    assert up is not None and [g.count for g in up.pool("dec").groups] == [1, 2]
    assert [g.count for g in plan.pool("dec").groups] == [1, 1]  # the plan is untouched
