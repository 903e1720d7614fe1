"""Prefill under a TTFT target (docs/method.md, Eqs. P1-P6), against hand-computed values.

The simple case used throughout: L_in = 1000 tokens at TP_max = 1000 tokens/s, so the bare service
time is S = 1 s; TTFT target 3 s with no overhead leaves a waiting budget B = 3 - 1 = 2 s.
"""

from __future__ import annotations

import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from pdopt.errors import UnreachableTargetError
from pdopt.queueing import (
    max_arrival_rate_per_s,
    mean_waiting_time_s,
    percentile_factor,
    prefill_capacity,
    service_scv,
    service_second_moment_s2,
    service_time_s,
    smallest_reachable_ttft_s,
    ttft_at_load_ms,
    waiting_budget_s,
)


def simple(queue: str = "mm1", **kw: float | None) -> float:
    return prefill_capacity(
        input_tokens=1000, saturated_tokens_per_s=1000, ttft_ms=3000, queue=queue, **kw
    ).tokens_per_s


def test_service_time_and_second_moment() -> None:
    # Eq. P1: S = 6144 / 28309 s; Eq. P2: E[S^2] = (1 + c^2) S^2.
    assert service_time_s(6144, 28309) == pytest.approx(0.21703345, rel=1e-7)
    assert service_second_moment_s2(2.0, 1.0) == 8.0  # exponential: 2 S^2
    assert service_second_moment_s2(2.0, 0.0) == 4.0  # deterministic: S^2
    assert service_second_moment_s2(2.0, 0.5) == 6.0
    assert service_scv("mm1") == 1.0 and service_scv("md1") == 0.0
    assert service_scv("mg1", 0.25) == 0.25
    with pytest.raises(ValueError, match="coefficient of variation"):
        service_scv("mg1")
    with pytest.raises(ValueError, match="unknown queue"):
        service_scv("gg1")


def test_percentile_factor() -> None:
    assert percentile_factor(None) == 1.0
    assert percentile_factor(90) == pytest.approx(math.log(10))  # ln(1/(1-0.9))
    assert percentile_factor(99) == pytest.approx(math.log(100))
    assert percentile_factor(50) == pytest.approx(math.log(2))


def test_waiting_budget() -> None:
    # Eq. P4: B = (TTFT - o)/k - S
    assert waiting_budget_s(3.0, 0.0, 1.0) == 2.0
    assert waiting_budget_s(2.0, 0.1, 6144 / 28309) == pytest.approx(1.9 - 0.21703345, rel=1e-7)
    assert waiting_budget_s(3.0, 0.0, 1.0, 90) == pytest.approx(3 / math.log(10) - 1)


def test_max_arrival_rate_mm1_md1_mg1() -> None:
    # Eq. P5 with S = 1, B = 2: lambda = 2B / (E[S^2] + 2BS)
    assert max_arrival_rate_per_s(2.0, 1.0, 2.0) == pytest.approx(4 / 6)  # mm1: E[S^2] = 2
    assert max_arrival_rate_per_s(2.0, 1.0, 1.0) == pytest.approx(4 / 5)  # md1: E[S^2] = 1
    assert max_arrival_rate_per_s(2.0, 1.0, 1.5) == pytest.approx(4 / 5.5)  # mg1 c^2 = 0.5
    assert max_arrival_rate_per_s(0.0, 1.0, 2.0) == 0.0
    assert max_arrival_rate_per_s(-1.0, 1.0, 2.0) == 0.0


def test_mm1_mean_is_the_papers_formula() -> None:
    # TP_prefill = TP_max - L_in / (TTFT - o) = 1000 - 1000/3
    assert simple("mm1") == pytest.approx(666.6667, rel=1e-6)


def test_mm1_mean_time_in_system_at_capacity_equals_target() -> None:
    # M/M/1: W = 1/(mu - lambda) = 1/(1 - 2/3) = 3 s at the capacity found above.
    cap = prefill_capacity(input_tokens=1000, saturated_tokens_per_s=1000, ttft_ms=3000)
    assert cap.max_requests_per_s == pytest.approx(2 / 3)
    assert cap.waiting_budget_s == pytest.approx(2.0)
    assert cap.second_moment_s2 == pytest.approx(2.0)
    ttft = ttft_at_load_ms(rates_per_s=[2 / 3], services_s=[1.0], second_moments_s2=[2.0],
                           own_service_s=1.0, overhead_ms=0.0)
    assert ttft == pytest.approx(3000.0)


def test_md1_mean() -> None:
    # lambda = 0.8 req/s; M/D/1 check: W = S + rho S / (2 (1 - rho)) = 1 + 0.8/0.4 = 3 s
    assert simple("md1") == pytest.approx(800.0)
    rho = 0.8
    assert 1 + rho * 1 / (2 * (1 - rho)) == pytest.approx(3.0)


def test_mg1_mean() -> None:
    # c^2 = 0.5: lambda = 4/5.5 = 0.72727 req/s; P-K: Wq = lambda E[S^2] / (2 (1 - rho)) = 2 s
    assert simple("mg1", scv=0.5) == pytest.approx(727.2727, rel=1e-6)
    lam = 4 / 5.5
    assert mean_waiting_time_s([lam], [1.0], [1.5]) == pytest.approx(2.0)
    # c^2 = 1 is M/M/1 and c^2 = 0 is M/D/1
    assert simple("mg1", scv=1.0) == pytest.approx(simple("mm1"))
    assert simple("mg1", scv=0.0) == pytest.approx(simple("md1"))


def test_mm1_percentile() -> None:
    # p90: TP = TP_max - L_in ln(10) / (TTFT - o) = 1000 - 1000 * 2.302585 / 3 = 232.47
    assert simple("mm1", ttft_percentile=90) == pytest.approx(232.4716, rel=1e-6)
    # the p-th percentile of an exponential sojourn time with rate mu - lambda is exactly TTFT
    cap = prefill_capacity(input_tokens=1000, saturated_tokens_per_s=1000, ttft_ms=3000,
                           ttft_percentile=90)
    rate = 1.0 - cap.max_requests_per_s  # mu - lambda, 1/s
    assert 1 - math.exp(-rate * 3.0) == pytest.approx(0.9)


def test_percentile_needs_mm1() -> None:
    with pytest.raises(ValueError, match="mm1"):
        simple("md1", ttft_percentile=90)


def test_paper_prefill() -> None:
    # arXiv 2603.04716: 28,309 - 6144 / 1.9 = 25,075 tokens/s
    cap = prefill_capacity(input_tokens=6144, saturated_tokens_per_s=28309, ttft_ms=2000,
                           ttft_overhead_ms=100)
    assert cap.tokens_per_s == pytest.approx(25075.3158, rel=1e-8)
    assert cap.saturated_tokens_per_s == 28309
    p90 = prefill_capacity(input_tokens=6144, saturated_tokens_per_s=28309, ttft_ms=2000,
                           ttft_overhead_ms=100, ttft_percentile=90)
    assert p90.tokens_per_s == pytest.approx(20863.1669, rel=1e-8)  # 28309 - 6144 ln10 / 1.9


def test_paper_case_under_other_queue_models() -> None:
    # docs/method.md: md1 26,594.2, mg1 (c^2 = 0.5) 25,812.4 input tokens/s; p90 floor 599.7 ms
    def paper(**kw: float | str | None) -> float:
        return prefill_capacity(input_tokens=6144, saturated_tokens_per_s=28309, ttft_ms=2000,
                                ttft_overhead_ms=100, **kw).tokens_per_s  # type: ignore[arg-type]

    assert paper(queue="md1") == pytest.approx(26594.2198, rel=1e-8)
    assert paper(queue="mg1", scv=0.5) == pytest.approx(25812.4426, rel=1e-8)
    floor_s = smallest_reachable_ttft_s(0.1, 6144 / 28309, 90)  # 0.1 + ln(10) x 0.21703
    assert floor_s == pytest.approx(0.599738, rel=1e-6)


def test_unreachable_ttft_states_smallest_reachable() -> None:
    # S = 1 s plus 100 ms overhead: nothing below 1,100 ms is reachable.
    with pytest.raises(UnreachableTargetError, match=r"at least 1100\.0 ms") as info:
        prefill_capacity(input_tokens=1000, saturated_tokens_per_s=1000, ttft_ms=1000,
                         ttft_overhead_ms=100)
    assert "mean TTFT target 1000 ms is unreachable" in str(info.value)
    # exactly at the floor there is no room for any queueing either
    with pytest.raises(UnreachableTargetError):
        prefill_capacity(input_tokens=1000, saturated_tokens_per_s=1000, ttft_ms=1100,
                         ttft_overhead_ms=100)
    # percentile: floor is o + k S = 100 + 2302.6 ms
    with pytest.raises(UnreachableTargetError, match=r"p90 TTFT .* at least 2402\.6 ms"):
        prefill_capacity(input_tokens=1000, saturated_tokens_per_s=1000, ttft_ms=2000,
                         ttft_overhead_ms=100, ttft_percentile=90)
    assert smallest_reachable_ttft_s(0.1, 1.0, 90) == pytest.approx(2.4025851)


def test_paper_smallest_reachable_ttft() -> None:
    # 100 ms + 6144/28309 s = 317.03 ms
    with pytest.raises(UnreachableTargetError, match=r"at least 317\.0 ms"):
        prefill_capacity(input_tokens=6144, saturated_tokens_per_s=28309, ttft_ms=300,
                         ttft_overhead_ms=100)


def test_mean_waiting_time_several_classes() -> None:
    # rho = 0.2*1 + 0.1*2 = 0.4; numerator 0.2*2 + 0.1*8 = 1.2; Wq = 1.2 / (2 * 0.6) = 1 s
    assert mean_waiting_time_s([0.2, 0.1], [1.0, 2.0], [2.0, 8.0]) == pytest.approx(1.0)
    assert mean_waiting_time_s([1.0], [1.0], [2.0]) == math.inf  # rho = 1
    assert mean_waiting_time_s([0.0], [1.0], [2.0]) == 0.0
    # percentile TTFT at load: o + k (Wq + S)
    ttft = ttft_at_load_ms(rates_per_s=[0.5], services_s=[1.0], second_moments_s2=[2.0],
                           own_service_s=1.0, overhead_ms=50.0, ttft_percentile=90)
    assert ttft == pytest.approx(50 + 1e3 * math.log(10) * 2.0)


queues = st.sampled_from([("mm1", None), ("md1", None), ("mg1", 0.5), ("mg1", 3.0)])
lengths = st.integers(min_value=1, max_value=200_000)
throughputs = st.floats(min_value=100, max_value=1e6)


@given(queues, lengths, throughputs, st.floats(0, 500), st.floats(1, 60_000), st.floats(1, 60_000),
       st.one_of(st.none(), st.floats(1, 99.9)))
def test_looser_ttft_never_lowers_prefill_capacity(
    queue: tuple[str, float | None], l_in: int, tp_max: float, overhead_ms: float,
    ttft_a: float, ttft_b: float, percentile: float | None,
) -> None:
    if percentile is not None and queue[0] != "mm1":
        percentile = None
    lo, hi = sorted((ttft_a, ttft_b))

    def cap(ttft: float) -> float:
        try:
            return prefill_capacity(input_tokens=l_in, saturated_tokens_per_s=tp_max, ttft_ms=ttft,
                                    ttft_overhead_ms=overhead_ms, queue=queue[0], scv=queue[1],
                                    ttft_percentile=percentile).tokens_per_s
        except UnreachableTargetError:
            return 0.0

    assert cap(hi) >= cap(lo) - 1e-9 * tp_max
    assert cap(hi) < tp_max  # never reaches saturation: queueing delay would be infinite


@given(lengths, throughputs, st.floats(1, 60_000), st.floats(0.0, 0.999))
def test_capacity_meets_target_exactly(l_in: int, tp_max: float, ttft: float, scv: float) -> None:
    """At lambda_max the P-K mean TTFT equals the target (the formula inverts Eq. P3)."""
    try:
        cap = prefill_capacity(input_tokens=l_in, saturated_tokens_per_s=tp_max, ttft_ms=ttft,
                               queue="mg1", scv=scv)
    except UnreachableTargetError:
        return
    predicted = ttft_at_load_ms(rates_per_s=[cap.max_requests_per_s], services_s=[cap.service_s],
                                second_moments_s2=[cap.second_moment_s2],
                                own_service_s=cap.service_s, overhead_ms=0.0)
    assert predicted == pytest.approx(ttft, rel=1e-6)


@given(lengths, throughputs, st.floats(1, 60_000), st.floats(0, 5), st.floats(0, 5))
def test_more_variable_service_never_raises_capacity(
    l_in: int, tp_max: float, ttft: float, scv_a: float, scv_b: float
) -> None:
    """A larger c^2 (mg1) means longer waits, so never more capacity; md1 >= mm1 in particular."""
    lo, hi = sorted((scv_a, scv_b))
    try:
        low_var = prefill_capacity(input_tokens=l_in, saturated_tokens_per_s=tp_max, ttft_ms=ttft,
                                   queue="mg1", scv=lo).tokens_per_s
    except UnreachableTargetError:
        return
    high_var = prefill_capacity(input_tokens=l_in, saturated_tokens_per_s=tp_max, ttft_ms=ttft,
                                queue="mg1", scv=hi).tokens_per_s
    assert high_var <= low_var * (1 + 1e-12)
    assert simple("md1") >= simple("mg1", scv=0.5) >= simple("mm1")
