"""Routing within a split pool with the counts fixed (pdopt.optimize.balance, method.md Eq.
O20): the largest group utilisation minimised, each workload's total on the pool kept."""

from __future__ import annotations

from typing import Any

import pytest

from pdopt.optimize import solve
from pdopt.optimize.balance import balance_pool, unit_load
from pdopt.optimize.data import build_fleet_data
from pdopt.scenario.loading import scenario_from_data

S = 6144 / 28309  # the paper's prefill time, fixed prompts


def _two_targets(rates: tuple[float, float] = (6.0, 6.0)) -> dict[str, Any]:
    def workload(name: str, ttft_ms: float, rate: float) -> dict[str, Any]:
        return {"name": name, "model": "m", "requests_per_s": rate, "input_tokens": 6144,
                "output_tokens": 256, "slo": {"ttft_ms": ttft_ms, "tpot_ms": 30.0},
                "ttft_overhead_ms": 100, "length_distribution": {"kind": "fixed"}}

    return {
        "name": "two-targets", "gpus": {"G": {"cost_per_hour": 1.0}},
        "options": {"routing": "random", "slo_window_minutes": None},  # long-run (hand values)
        "instances": [
            {"name": "pre", "model": "m", "role": "prefill", "gpu": "G", "gpus_per_instance": 1,
             "prefill_tokens_per_s": 28309},
            {"name": "dec", "model": "m", "role": "decode", "gpu": "G", "gpus_per_instance": 1,
             "tpot_ms_by_batch": {1: 10.0, 64: 20.0, 128: 40.0}}],
        "workloads": [workload("strict", 1000, rates[0]), workload("loose", 2000, rates[1])],
    }


def test_unit_load_is_o5_for_an_untabled_prefill_group() -> None:
    data = build_fleet_data(scenario_from_data(_two_targets()))
    b0 = 0.9 - S  # level 0: the strict workload's budget, TTFT - o - S
    assert data.prefill_levels["pre"][0] == pytest.approx(b0)
    assert unit_load(data, "loose", "pre", 0, 3) == pytest.approx(
        (S * S + 2 * b0 * S) / (2 * b0 * 3))


def test_balance_hand_value() -> None:
    # groups of 3 (strict, B0) and 1 (loose, B1); strict 6/s must stay in group 0, loose 6/s may
    # use either. With k_l = (S^2 + 2 B_l S) / (2 B_l n_l), moving x of the loose workload into
    # group 0 gives u0 = (6 + x) k0 and u1 = (6 - x) k1, equal at x = 6 (k1 - k0) / (k0 + k1).
    data = build_fleet_data(scenario_from_data(_two_targets()))
    b0, b1 = data.prefill_levels["pre"]
    k0 = (S * S + 2 * b0 * S) / (2 * b0 * 3)
    k1 = (S * S + 2 * b1 * S) / (2 * b1 * 1)
    x = 6 * (k1 - k0) / (k0 + k1)
    assert 0 < x < 6
    flows = {("strict", 0): 6.0, ("loose", 1): 6.0}
    out = balance_pool(data, "pre", {0: 3, 1: 1}, flows,
                       {"strict": [(0, 6.0)], "loose": [(1, 6.0)]})
    assert out[("strict", 0)] == pytest.approx(6.0)
    assert out[("loose", 0)] == pytest.approx(x, rel=1e-6)
    assert out[("loose", 1)] == pytest.approx(6 - x, rel=1e-6)
    # already balanced the other way round: nothing to gain, the flows come back unchanged
    assert balance_pool(data, "pre", {0: 3, 1: 1}, out,
                        {"strict": [(0, 6.0)], "loose": [(1, 6.0)]}) is out


def test_solved_split_pools_leave_no_group_fuller_than_it_must_be() -> None:
    # With a loose workload in the strict group, the strict group is no fuller than the loose
    # one (else some of it could move); each workload's total is its demand.
    for rates in ((6.0, 6.0), (3.0, 9.0), (9.0, 2.0)):
        plan = solve(scenario_from_data(_two_targets(rates)), mip_gap=0.0)
        assert plan.has_plan
        for pool in plan.pools:
            if len(pool.groups) < 2:
                continue
            strict, loose = pool.groups[0], pool.groups[-1]
            if strict.routed_requests_per_s.get("loose", 0.0) > 1e-6:
                assert strict.utilization <= loose.utilization + 1e-6
        for w in plan.workloads:
            routed = sum(p.routed_requests_per_s.get(w.workload, 0.0) for p in plan.pools
                         if p.role == "prefill")
            assert routed == pytest.approx(w.demand_requests_per_s)
