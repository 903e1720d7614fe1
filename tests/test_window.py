"""SLOs judged over a window (docs/method.md, section W): hand values of Eqs. W1-W6, the paper's
case unchanged, monotonicity, and the spread of W1/W4 against the simulator."""

from __future__ import annotations

import math
import statistics
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pdopt.capacity import count_for_demand, slo_window_of, windowed_prefill_rate
from pdopt.optimize import solve
from pdopt.queueing import ServiceMoments, mean_wait_s
from pdopt.scenario.loading import load_scenario, scenario_from_data
from pdopt.simulate import SimulationOptions, plan_from_counts, simulate_plan
from pdopt.window import (
    SloWindow,
    normal_quantile,
    quantile_spread_factor,
    tpot_window_rel_sd,
    wait_window_rel_sd,
    windowed_value,
)

PAPER = Path(__file__).resolve().parents[1] / "scenarios" / "paper-deepseek-v31-h200.yaml"
HALF_HOUR = SloWindow(1800.0, 0.99)


def test_w1_hand_value() -> None:
    # rho 0.8, E[S] 0.25 s, fixed prompts, one instance, 30 minutes:
    # sqrt(2 x 0.8 x 0.25 x 1 / 1800) / 0.2 = 0.0149071 / 0.2
    assert wait_window_rel_sd(0.8, 0.25, 0.0, 1, 1800.0) == pytest.approx(0.0745356, rel=1e-6)
    # n instances and the service SCV: (1 + c_s^2) / n under the root
    assert wait_window_rel_sd(0.8, 0.25, 1.0, 4, 1800.0) == pytest.approx(
        0.0745356 * math.sqrt(2 / 4), rel=1e-6)
    assert wait_window_rel_sd(0.0, 0.25, 0.0, 1, 1800.0) == 0.0
    assert wait_window_rel_sd(1.0, 0.25, 0.0, 1, 1800.0) == math.inf


def test_w2_hand_values() -> None:
    # u = 0.1: sqrt((0.9 - 0.2302585) / 0.1) / 2.302585 = 2.587936 / 2.302585
    assert quantile_spread_factor(90.0) == pytest.approx(1.12393, rel=1e-5)
    # u = 0.01: sqrt((0.99 - 0.0460517) / 0.01) / 4.605170 = 9.71570 / 4.605170
    assert quantile_spread_factor(99.0) == pytest.approx(2.10974, rel=1e-5)
    assert quantile_spread_factor(None) == 1.0


def test_w3_and_w4_hand_values() -> None:
    assert normal_quantile(0.99) == pytest.approx(2.326348, rel=1e-6)
    assert windowed_value(1.0, 0.25, 0.1, 2.0) == pytest.approx(1.0 + 2.0 * 0.1 * 0.75)
    # eps 0.4, fixed outputs, 10 requests/s, 30 minutes: (0.4 / 0.6) sqrt(1 / 18000)
    assert tpot_window_rel_sd(0.4, 0.0, 10.0, 1800.0) == pytest.approx(0.0049690, rel=1e-5)
    assert tpot_window_rel_sd(1.0, 0.0, 10.0, 1800.0) == math.inf
    assert tpot_window_rel_sd(0.4, 0.0, 10.0, math.inf) == 0.0


def test_windowed_prefill_rate_hand_value() -> None:
    # method.md W3's check: fixed 0.25 s prompts, random routing, one instance, 1.0 s for
    # queue + prefill; without a window rho = 6/7 (3.4286/s), with it rho = 0.83210 (3.3284/s)
    moments = ServiceMoments(0.25, 0.0625, (0.25,))
    rate = windowed_prefill_rate("random", 1, moments, 1.0, None, HALF_HOUR)
    assert rate == pytest.approx(3.32841, rel=1e-5)
    assert mean_wait_s("random", rate, 1, moments) == pytest.approx(0.61950, rel=1e-4)
    # the spread falls with the count: more instances, more per instance (never above 6/7)
    rates = [windowed_prefill_rate("random", n, moments, 1.0, None, HALF_HOUR)
             for n in (1, 2, 8)]
    assert rates == sorted(rates) and rates[-1] < 6 / 7 / 0.25


def test_count_for_demand_is_the_smallest_sufficient_count() -> None:
    caps = {1: 1.0, 2: 1.2, 3: 1.3, 4: 1.35}
    assert count_for_demand(2.5, caps.__getitem__, 4) == 3  # 2 x 1.2 < 2.5 <= 3 x 1.3
    assert count_for_demand(0.5, caps.__getitem__, 4) == 1
    assert count_for_demand(99.0, caps.__getitem__, 4) == 4


def _paper(**options: Any) -> dict[str, Any]:
    data = load_scenario(PAPER).model_dump(exclude_none=True)
    data.setdefault("options", {}).update(options)
    return data


def test_paper_case_keeps_3p4d_and_mm1_is_untouched() -> None:
    windowed = solve(scenario_from_data(_paper()))
    assert sorted(p.count for p in windowed.pools) == [3, 4]
    assert all("SLO window 30 min at 99%" in (p.queue_model or "") for p in windowed.pools)
    assert slo_window_of(scenario_from_data(_paper())) == SloWindow(1800.0, 0.99)
    assert slo_window_of(scenario_from_data(_paper(slo_window_minutes=None))) is None
    assert slo_window_of(scenario_from_data(_paper(slo_confidence=0.5))) is None
    mm1 = solve(scenario_from_data(_paper(queue="mm1")))
    mm1_no_window = solve(scenario_from_data(_paper(queue="mm1", slo_window_minutes=None)))
    counts = [p.count for p in mm1.pools]
    assert counts == [p.count for p in mm1_no_window.pools] and sorted(counts) == [4, 4]


def _small(load_tpm: float, routing: str, **options: Any) -> dict[str, Any]:
    data = _paper(routing=routing, **options)
    data["workloads"][0]["tokens_per_minute"] = load_tpm
    data["workloads"][0]["length_distribution"] = {"kind": "lognormal", "input_cv": 0.5,
                                                   "output_cv": 0.5}
    return data


@settings(max_examples=12, deadline=None)
@given(load=st.floats(1.0e6, 8.0e6), routing=st.sampled_from(["round-robin", "random"]),
       q=st.sampled_from([0.9, 0.99]), window=st.sampled_from([10.0, 30.0, 120.0]))
def test_a_window_never_makes_a_plan_cheaper(load: float, routing: str, q: float,
                                             window: float) -> None:
    """Long-run <= windowed; a higher confidence or a shorter window never costs less."""
    def cost(**options: Any) -> float:
        plan = solve(scenario_from_data(_small(load, routing, **options)))
        assert plan.cost_per_hour is not None
        return plan.cost_per_hour

    base = cost(slo_window_minutes=window, slo_confidence=q)
    assert cost(slo_window_minutes=None) <= base + 1e-9
    assert base <= cost(slo_window_minutes=window, slo_confidence=0.999) + 1e-9
    assert base <= cost(slo_window_minutes=window / 2, slo_confidence=q) + 1e-9


def test_spreads_against_the_simulator() -> None:
    """Measured / predicted relative sd of a window's mean TTFT and mean TPOT within 0.6-1.6
    over 20 windows of 10 minutes (random routing, 2 prefill at utilisation 0.8, 3 decode, fixed
    lengths); docs/method.md section W gives the 30-minute table."""
    from pdopt.capacity import (
        decode_context_tokens,
        instance_decode_curve,
        prefill_service_moments,
        tpot_elasticity,
    )
    from pdopt.decode import request_tpot_ms

    window_s = 600.0
    data = _paper(routing="random")
    w = data["workloads"][0]
    w["length_distribution"] = {"kind": "fixed"}
    w["slo"] = {"ttft_ms": 100000, "tpot_ms": 1000}
    dec = next(i for i in data["instances"] if i["role"] == "decode")
    dec.pop("measured_at", None)
    sc = scenario_from_data(data)
    pre_i = next(i for i in sc.instances if i.role == "prefill")
    dec_i = next(i for i in sc.instances if i.role == "decode")
    moments = prefill_service_moments(sc, pre_i, sc.workloads[0], None)
    w.pop("tokens_per_minute", None)
    w["requests_per_s"] = 0.8 * 2 / moments.mean_s
    sc = scenario_from_data(data)
    wl = sc.workloads[0]
    rate = wl.rate_requests_per_s / 2
    wait = mean_wait_s("random", rate, 2, moments)
    r_wait = wait_window_rel_sd(rate * moments.mean_s, moments.mean_s, moments.scv, 2, window_s)
    curve = instance_decode_curve(dec_i, decode_context_tokens(wl.input_tokens,
                                                               wl.output_tokens))
    per_instance = wl.rate_requests_per_s * wl.output_tokens / 3
    lo, hi = 0.0, 512.0
    for _ in range(60):  # the mean batch carrying this load (Little's law with F2)
        mid = (lo + hi) / 2
        lo, hi = ((mid, hi) if mid / (request_tpot_ms(curve, mid, 1.0) / 1e3) < per_instance
                  else (lo, mid))
    r_tpot = tpot_window_rel_sd(tpot_elasticity(curve, lo, 1.0), 0.0, wl.rate_requests_per_s,
                                window_s)
    plan = plan_from_counts(sc, {pre_i.name: 2, dec_i.name: 3})
    waits, tpots = [], []
    for seed in range(1, 21):
        res = simulate_plan(sc, plan, SimulationOptions(duration_s=window_s, seed=seed,
                                                        routing="random"))
        stats = res.workloads[0]
        waits.append(stats.ttft_ms.mean - wl.ttft_overhead_ms - 1e3 * moments.mean_s)
        tpots.append(stats.tpot_ms.mean)
    measured_wait = statistics.stdev(waits) / statistics.fmean(waits)
    measured_tpot = statistics.stdev(tpots) / statistics.fmean(tpots)
    assert statistics.fmean(waits) == pytest.approx(1e3 * wait, rel=0.15)
    assert 0.6 <= measured_wait / r_wait <= 1.6
    assert 0.6 <= measured_tpot / r_tpot <= 1.6


def test_a_target_the_window_margin_makes_unreachable_says_so() -> None:
    """A TPOT target just above what a batch of one sees (F2: 13.28 ms on this steep curve): the
    window's margin lowers it below, and the error names the window (long-run sizing still has a
    capacity)."""
    from pdopt.capacity import windowed_decode_capacity
    from pdopt.decode import DecodeCurve
    from pdopt.errors import UnreachableTargetError

    curve = DecodeCurve((1.0, 100.0), (10.0, 400.0), extend_linearly=False)
    assert windowed_decode_capacity(curve, 13.5, 1.0, None, 0.0, 256, 1, None).tokens_per_s > 0
    with pytest.raises(UnreachableTargetError, match="30-minute window"):
        windowed_decode_capacity(curve, 13.5, 1.0, None, 0.0, 256, 1, HALF_HOUR)
