"""Prefill under a TTFT target: queueing formulas (pure functions; docs/method.md, section P).

Each prefill instance is one FCFS server; a request's service time is its prompt length over the
instance's saturated prefill throughput. TTFT = waiting + service + overhead. With one workload
class and M/M/1 at the mean this is exactly the paper's
`TP_prefill = TP_max - L_in / (TTFT - T_overhead)`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from pdopt.errors import UnreachableTargetError

#: Squared coefficient of variation of service time implied by each queue model (Eq. P2).
QUEUE_SCV = {"mm1": 1.0, "md1": 0.0}


def service_time_s(input_tokens: float, prefill_tokens_per_s: float) -> float:
    """Bare prefill time of one request, S = L_in / TP_max (Eq. P1)."""
    return input_tokens / prefill_tokens_per_s


def service_scv(queue: str, scv: float | None = None) -> float:
    """Squared coefficient of variation c^2 of service time: 1 for mm1, 0 for md1, given for mg1."""
    if queue in QUEUE_SCV:
        return QUEUE_SCV[queue]
    if queue == "mg1":
        if scv is None:
            raise ValueError("queue mg1 needs the service-time squared coefficient of variation")
        return scv
    raise ValueError(f"unknown queue model '{queue}'")


def service_second_moment_s2(service_s: float, scv: float) -> float:
    """E[S^2] = (1 + c^2) S^2 (Eq. P2)."""
    return (1.0 + scv) * service_s * service_s


def percentile_factor(percentile: float | None) -> float:
    """k in Eq. P4: 1 for a mean target; ln(1/(1-p)) for the p-th percentile of an exponential
    M/M/1 time in system."""
    if percentile is None:
        return 1.0
    return math.log(1.0 / (1.0 - percentile / 100.0))


def waiting_budget_s(
    ttft_s: float, overhead_s: float, service_s: float, percentile: float | None = None
) -> float:
    """Largest mean queueing delay Wq that keeps the TTFT target: B = (TTFT - o)/k - S (Eq. P4).

    May be <= 0, meaning the target is unreachable at any load."""
    return (ttft_s - overhead_s) / percentile_factor(percentile) - service_s


def smallest_reachable_ttft_s(
    overhead_s: float, service_s: float, percentile: float | None = None
) -> float:
    """TTFT at zero load: o + k S (Eq. P4 with B = 0)."""
    return overhead_s + percentile_factor(percentile) * service_s


def mean_waiting_time_s(
    rates_per_s: list[float], services_s: list[float], second_moments_s2: list[float]
) -> float:
    """Pollaczek-Khinchine mean wait of an FCFS M/G/1 queue with several classes (Eq. P3):
    Wq = sum_i(lambda_i E[S_i^2]) / (2 (1 - sum_i lambda_i S_i)). Infinite when rho >= 1."""
    rho = sum(lam * s for lam, s in zip(rates_per_s, services_s, strict=True))
    if rho >= 1.0:
        return math.inf
    numerator = sum(lam * m2 for lam, m2 in zip(rates_per_s, second_moments_s2, strict=True))
    return numerator / (2.0 * (1.0 - rho))


def max_arrival_rate_per_s(budget_s: float, service_s: float, second_moment_s2: float) -> float:
    """Largest single-class arrival rate with Wq <= B: lambda = 2B / (E[S^2] + 2 B S) (Eq. P5)."""
    if budget_s <= 0:
        return 0.0
    return 2.0 * budget_s / (second_moment_s2 + 2.0 * budget_s * service_s)


@dataclass(frozen=True)
class PrefillCapacity:
    """What one prefill instance achieves for one workload under its TTFT target."""

    saturated_tokens_per_s: float  # TP_max at this input length
    service_s: float  # S
    second_moment_s2: float  # E[S^2]
    waiting_budget_s: float  # B
    max_requests_per_s: float  # lambda_max
    tokens_per_s: float  # TP_prefill = lambda_max * L_in (Eq. P6)


def prefill_capacity(
    *,
    input_tokens: float,
    saturated_tokens_per_s: float,
    ttft_ms: float,
    ttft_overhead_ms: float = 0.0,
    queue: str = "mm1",
    scv: float | None = None,
    ttft_percentile: float | None = None,
) -> PrefillCapacity:
    """Per-instance prefill capacity under a TTFT target (Eqs. P1-P6).

    Raises UnreachableTargetError, naming the smallest reachable TTFT, when no load meets it."""
    if ttft_percentile is not None and queue != "mm1":
        raise ValueError("percentile TTFT targets are only modelled for queue mm1")
    service = service_time_s(input_tokens, saturated_tokens_per_s)
    second = service_second_moment_s2(service, service_scv(queue, scv))
    budget = waiting_budget_s(ttft_ms / 1e3, ttft_overhead_ms / 1e3, service, ttft_percentile)
    if budget <= 0:
        floor_ms = 1e3 * smallest_reachable_ttft_s(ttft_overhead_ms / 1e3, service, ttft_percentile)
        what = "mean TTFT" if ttft_percentile is None else f"p{ttft_percentile:g} TTFT"
        raise UnreachableTargetError(
            f"{what} target {ttft_ms:g} ms is unreachable: {input_tokens:g} input tokens at "
            f"{saturated_tokens_per_s:g} tokens/s plus {ttft_overhead_ms:g} ms overhead give at "
            f"least {floor_ms:.1f} ms even with no queueing"
        )
    lam = max_arrival_rate_per_s(budget, service, second)
    return PrefillCapacity(
        saturated_tokens_per_s=saturated_tokens_per_s,
        service_s=service,
        second_moment_s2=second,
        waiting_budget_s=budget,
        max_requests_per_s=lam,
        tokens_per_s=lam * input_tokens,
    )


def ttft_at_load_ms(
    *,
    rates_per_s: list[float],
    services_s: list[float],
    second_moments_s2: list[float],
    own_service_s: float,
    overhead_ms: float,
    ttft_percentile: float | None = None,
) -> float:
    """Predicted TTFT of one class in a (possibly shared) prefill server at the given per-server
    rates: o + k (Wq + S_own) (Eqs. P3, P4). k = 1 gives the mean."""
    wq = mean_waiting_time_s(rates_per_s, services_s, second_moments_s2)
    return overhead_ms + 1e3 * percentile_factor(ttft_percentile) * (wq + own_service_s)
