"""The TTFT percentile under round-robin (docs/method.md, Eqs. Q8, Q8b, Q8c): hand-computed
values, the Poisson cases unchanged, monotonicity, and agreement with the simulator."""

from __future__ import annotations

import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pdopt.queueing import (
    ServiceMoments,
    capacity_table,
    conditional_wait_s,
    lognormal_service_moments,
    mean_wait_s,
    percentile_wait,
    smooth_arrival_wait_probability,
    ttft_quantile_s,
    ttft_statistic_s,
    wait_probability,
)
from pdopt.simulate import SimulationOptions, plan_from_counts, simulate_plan

FIXED_1S = ServiceMoments(1.0, 1.0, (1.0,))  # S = 1 s, deterministic


def test_wait_probability_hand_values() -> None:
    # Eq. Q8b, rho 0.5, c_a^2 1/3, c_s^2 0: h = (4/3) / (1 - 0.5 + 0.25 x 4/3) = 1.6,
    # P_W = 0.5 - (2/3) x 0.5 x 0.5 x 1.6 = 7/30 (E_3/D/1 sampled: 0.225)
    assert smooth_arrival_wait_probability(0.5, 1 / 3, 0.0) == pytest.approx(7 / 30, rel=1e-12)
    # rho 0.8, c_a^2 1/6, c_s^2 1: h = (1 + 1/6 + 0.8) / (1 + 0 + 0.64 x (2/3 + 1)) = 0.95161,
    # P_W = 0.8 - (5/6) x 0.8 x 0.2 x h = 0.67312 (E_6/lognormal/1 sampled: 0.650)
    h = (1 + 1 / 6 + 0.8) / (1 + 0.64 * (4 / 6 + 1))
    assert smooth_arrival_wait_probability(0.8, 1 / 6, 1.0) == pytest.approx(
        0.8 - (5 / 6) * 0.8 * 0.2 * h, rel=1e-12)
    assert smooth_arrival_wait_probability(0.8, 1 / 6, 1.0) == pytest.approx(0.67312, abs=1e-5)
    # Poisson arrivals: rho (M/G/1, exact); round-robin over one instance is Poisson
    assert smooth_arrival_wait_probability(0.7, 1.0, 0.3) == 0.7
    assert wait_probability("round-robin", 0.5, 3, FIXED_1S) == pytest.approx(7 / 30)
    assert wait_probability("round-robin", 0.5, 1, FIXED_1S) == 0.5
    assert wait_probability("random", 0.5, 3, FIXED_1S) == 0.5


def test_conditional_wait_hand_values() -> None:
    # Eq. Q8c, n = 3 (c_a^2 1/3), fixed S = 1 s, rho 0.5: heavy traffic (1/3) / (2 x 0.5) = 1/3 s,
    # times 1 + 0.75 x (2/3)^2 x 0.5 = 7/6: 7/18 s (E_3/D/1 sampled: 0.387 s)
    assert conditional_wait_s("round-robin", 0.5, 3, FIXED_1S) == pytest.approx(7 / 18)
    # Poisson arrivals: Wq / rho, the M/D/1 conditional mean (1 + 0) / (2 x 0.5) = 1 s
    assert conditional_wait_s("random", 0.5, 3, FIXED_1S) == pytest.approx(1.0)
    assert conditional_wait_s("round-robin", 0.5, 1, FIXED_1S) == pytest.approx(1.0)
    assert conditional_wait_s("round-robin", 1.0, 3, FIXED_1S) == math.inf
    assert percentile_wait("round-robin", 0.5, 3, FIXED_1S) == pytest.approx(
        (7 / 30 * 7 / 18, 7 / 30))


def test_p90_hand_value() -> None:
    # Eq. Q8 with Q8b-Q8c, fixed S = 1 s: t = 1 + (7/18) ln((7/30) / 0.1) = 1.32951 s
    # (E_3/D/1 sampled: 1.371 s). Q8 with P_W = rho and Q5's mean (Wq = e^(-8/9) / 6) said
    # 1 + (e^(-8/9) / 3) ln 5 = 1.2206 s
    expected = 1 + 7 / 18 * math.log(7 / 3)
    assert ttft_statistic_s("round-robin", 0.5, 3, FIXED_1S, 90.0) == pytest.approx(expected)
    old = ttft_quantile_s(mean_wait_s("round-robin", 0.5, 3, FIXED_1S), 0.5, FIXED_1S, 90.0)
    assert old == pytest.approx(1 + math.exp(-8 / 9) / 3 * math.log(5), rel=1e-9)


@pytest.mark.parametrize("cv", [0.0, 0.5, 1.0])
@pytest.mark.parametrize("routing", ["random", "least-loaded"])
def test_poisson_and_pooled_percentiles_unchanged(routing: str, cv: float) -> None:
    # random routing and least-loaded keep Q8 as it was: P_W = rho or C(c, a), mean Wq / P_W
    m = lognormal_service_moments(1000, cv, lambda _length: 5000.0)
    for rate in (1.0, 3.0, 4.5):
        wait = mean_wait_s(routing, rate, 4, m)
        prob = wait_probability(routing, rate, 4, m)
        assert ttft_statistic_s(routing, rate, 4, m, 90.0) == pytest.approx(
            ttft_quantile_s(wait, prob, m, 90.0), rel=1e-12)


@settings(max_examples=40, deadline=None)
@given(rho=st.floats(0.02, 0.98), cs2=st.floats(0.0, 3.0), n=st.integers(1, 24))
def test_wait_probability_bounds_and_monotone(rho: float, cs2: float, n: int) -> None:
    p = smooth_arrival_wait_probability(rho, 1 / n, cs2)
    assert 0.0 <= p <= rho
    assert smooth_arrival_wait_probability(min(rho * 1.05, 0.99), 1 / n, cs2) >= p - 1e-12
    assert smooth_arrival_wait_probability(rho, 1 / (n + 1), cs2) <= p + 1e-12  # smoother


@settings(max_examples=25, deadline=None)
@given(limit=st.floats(1.2, 10.0), cs2=st.floats(0.0, 1.5), pct=st.sampled_from([90.0, 99.0]))
def test_round_robin_percentile_capacity_rises_with_count(limit: float, cs2: float,
                                                          pct: float) -> None:
    # the tail segment of O14 needs a(n) non-decreasing in n (checked on a grid of c_s^2 0-3,
    # limits 1.2-10 E[S], n 1-24: it holds there)
    table = capacity_table("round-robin", 12, ServiceMoments(1.0, 1.0 + cs2, (1.0,)), limit, pct)
    assert all(b >= a - 1e-9 for a, b in zip(table, table[1:], strict=False))


@pytest.mark.parametrize(("count", "cv"), [(6, 0.5), (12, 0.0)])
def test_round_robin_p90_against_the_simulator(count: int, cv: float) -> None:
    """Round-robin at utilisation 0.85, 1000-token prompts at 5,000 tokens/s (E[S] = 0.2 s),
    200,000 requests (about 2 s each): Eq. Q8 with Q8b-Q8c predicts the p90 of the prefill time
    within 6 %. Seeds 3, 4, 5, predicted / simulated: 6 instances, lognormal CV 0.5: 1.022, 1.014,
    1.026 (Q8 with P_W = rho and Q5's mean: about 0.90); 12 instances, fixed prompts: 1.031,
    1.022, 1.034 (before: 0.810, 0.802, 0.812)."""
    from tests.test_queueing_routing import _prefill_bench

    rho, s_mean = 0.85, 0.2
    dist = {"kind": "lognormal", "input_cv": cv, "output_cv": 0.0} if cv else {"kind": "fixed"}
    sc = _prefill_bench([{"name": "w", "model": "m", "requests_per_s": rho * count / s_mean,
                          "input_tokens": 1000, "output_tokens": 2, "ttft_overhead_ms": 0,
                          "slo": {"ttft_ms": 100000, "tpot_ms": 50}, "length_distribution": dist}])
    window = 200_000 / (rho * count / s_mean)
    res = simulate_plan(sc, plan_from_counts(sc, {"pre": count, "dec": 1}),
                        SimulationOptions(duration_s=window, warmup_s=0.05 * window,
                                          cooldown_s=10, seed=3, routing="round-robin"))
    simulated = res.workload("w").ttft_ms.p90 / 1e3
    m = lognormal_service_moments(1000, cv, lambda _length: 5000.0)
    predicted = ttft_statistic_s("round-robin", rho / s_mean, count, m, 90.0)
    assert predicted == pytest.approx(simulated, rel=0.06)


def test_plan_predicts_a_p90_with_the_sizing_tail() -> None:
    """The plan's predicted p90 TTFT of a round-robin group is Q8 on Q8b-Q8c's wait (the tail
    the sizing reads), not on Q5's mean wait."""
    from pathlib import Path

    from pdopt.capacity import prefill_service_moments
    from pdopt.optimize import solve
    from pdopt.queueing import percentile_wait, ttft_quantile_s
    from pdopt.scenario.loading import load_scenario, scenario_from_data

    data = load_scenario(Path(__file__).resolve().parents[1] / "scenarios"
                         / "paper-deepseek-v31-h200.yaml").model_dump(exclude_none=True)
    data["workloads"][0]["slo"] = {"ttft_ms": 1500, "tpot_ms": 20, "ttft_percentile": 90}
    data["workloads"][0]["tokens_per_minute"] = 8.0e6
    scenario = scenario_from_data(data)
    plan = solve(scenario)
    pool = next(p for p in plan.pools if p.role == "prefill")
    assert len(pool.groups) == 1
    workload = scenario.workloads[0]
    moments = prefill_service_moments(scenario, scenario.instance(pool.instance), workload, None)
    rate = workload.rate_requests_per_s / pool.count
    wait, prob = percentile_wait("round-robin", rate, pool.count, moments)
    expected = workload.ttft_overhead_ms + 1e3 * ttft_quantile_s(wait, prob, moments, 90.0)
    assert plan.workloads[0].expected_ttft_ms == pytest.approx(expected, rel=1e-9)


def test_mixture_quantile_hand_value() -> None:
    """Q8d's hand check (method.md): half the requests wait (P_W 0.5, Wq 0.05 s) before fixed
    0.1 s prompts, half never wait on 0.05 s prompts: p90 = 0.1 + 0.1 ln 2.5."""
    from pdopt.queueing import ServiceMoments, ttft_mixture_quantile_s, ttft_quantile_s

    waiting = ServiceMoments(0.1, 0.01, (0.1,))
    quick = ServiceMoments(0.05, 0.0025, (0.05,))
    mixture = ttft_mixture_quantile_s([(1.0, 0.05, 0.5, waiting, 0.0),
                                       (1.0, 0.0, 0.0, quick, 0.0)], 90.0)
    assert mixture == pytest.approx(0.1 + 0.1 * math.log(2.5), rel=1e-9)
    assert ttft_quantile_s(0.05, 0.5, waiting, 90.0) == pytest.approx(0.1 + 0.1 * math.log(5))
    # one part (or identical parts) is Q8 itself, offsets shift it
    alone = ttft_mixture_quantile_s([(3.0, 0.05, 0.5, waiting, 0.02)], 90.0)
    assert alone == pytest.approx(0.02 + 0.1 + 0.1 * math.log(5))
    twice = ttft_mixture_quantile_s([(1.0, 0.05, 0.5, waiting, 0.02)] * 2, 90.0)
    assert twice == pytest.approx(alone, rel=1e-9)
