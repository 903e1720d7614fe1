"""Prefill under a TTFT target: queueing formulas (pure functions; docs/method.md, section P).

Each prefill instance is one FCFS server; a request's service time is its prompt length over the
instance's saturated prefill throughput. TTFT = waiting + service + overhead. With one workload
class and M/M/1 at the mean this is exactly the paper's
`TP_prefill = TP_max - L_in / (TTFT - T_overhead)`.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from statistics import NormalDist

import numpy as np

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


# --- Queueing that matches the deployment (docs/method.md, section Q) -------------------------

#: Service-time points the percentile of Eq. Q8 integrates over (midpoint quantiles): 256, the
#: lognormal's quadrature (Q2), puts a step of 1/256 in P(S > t); 32 read a p90 of lognormal
#: CV 1 prompts 3.4 % low at low load (the prefill's own p90), a miss in docs/validation.md W.
QUANTILE_POINTS = 256

#: How the router spreads a pool's requests over its instances (docs/method.md, section Q).
ROUTINGS: tuple[str, ...] = ("round-robin", "random", "least-loaded")


@dataclass(frozen=True)
class ServiceMoments:
    """First two moments of the prefill service time S = L / TP_max(L) over the input-length
    distribution (Eq. Q1), and the distribution itself as equally likely points (for percentiles).
    """

    mean_s: float  # E[S]
    second_moment_s2: float  # E[S^2]
    points_s: tuple[float, ...]  # equally likely service times (one point for fixed lengths)

    @property
    def scv(self) -> float:
        """c_s^2 = E[S^2] / E[S]^2 - 1 (Eq. Q1)."""
        return max(0.0, self.second_moment_s2 / (self.mean_s * self.mean_s) - 1.0)


def lognormal_quantile_lengths(mean_tokens: float, cv: float, points: int = 256) -> list[float]:
    """Input lengths at the midpoint quantiles (k - 1/2)/K, k = 1..K, of a lognormal with this mean
    and coefficient of variation (Eq. Q2); cv = 0 gives the mean K times."""
    if cv <= 0:
        return [float(mean_tokens)] * points
    sigma2 = math.log1p(cv * cv)
    mu, sigma = math.log(mean_tokens) - sigma2 / 2.0, math.sqrt(sigma2)
    normal = NormalDist()
    return [math.exp(mu + sigma * normal.inv_cdf((k + 0.5) / points)) for k in range(points)]


def service_moments(
    lengths_tokens: Sequence[float], tokens_per_s_at: Callable[[float], float]
) -> ServiceMoments:
    """E[S] and E[S^2] of S = L / TP_max(L) over equally likely lengths (Eq. Q1): fixed lengths
    (one point), lognormal quantiles (Eq. Q2) or an empirical file's lengths."""
    if not lengths_tokens:
        raise ValueError("service_moments needs at least one length")
    cache: dict[float, float] = {}
    times = []
    for length in lengths_tokens:
        s = cache.get(length)
        if s is None:
            s = cache[length] = length / tokens_per_s_at(length)
        times.append(s)
    mean = math.fsum(times) / len(times)
    second = math.fsum(s * s for s in times) / len(times)
    return ServiceMoments(mean, second, tuple(times))


def lognormal_service_moments(
    mean_tokens: float, cv: float, tokens_per_s_at: Callable[[float], float], points: int = 256
) -> ServiceMoments:
    """Eq. Q1 over the lognormal quantiles of Eq. Q2, with the midpoint rule's missing tail put
    back: E[S] and E[S^2] are scaled by the exact-over-quadrature ratios of E[L] and E[L^2]
    (E[L] = mean, E[L^2] = mean^2 (1 + cv^2)), which makes them exact when TP_max is flat."""
    lengths = lognormal_quantile_lengths(mean_tokens, cv, points)
    raw = service_moments(lengths, tokens_per_s_at)
    if cv <= 0:
        return raw
    first = math.fsum(lengths) / len(lengths)
    second = math.fsum(x * x for x in lengths) / len(lengths)
    exact_second = mean_tokens * mean_tokens * (1.0 + cv * cv)
    return ServiceMoments(raw.mean_s * mean_tokens / first,
                          raw.second_moment_s2 * exact_second / second, raw.points_s)


def arrival_scv(routing: str, count: int) -> float:
    """Squared coefficient of variation of one instance's interarrival times when a Poisson
    stream is split over `count` instances (Eq. Q3): every count-th arrival (round-robin) is an
    Erlang-count interval, c_a^2 = 1/count; a random split stays Poisson, c_a^2 = 1."""
    if count < 1:
        raise ValueError("count must be >= 1")
    return 1.0 / count if routing == "round-robin" else 1.0


def klb_correction(utilization: float, arrival_scv_: float, service_scv_: float) -> float:
    """Kraemer-Langenbach-Belz factor g <= 1 on Kingman's GI/G/1 wait for c_a^2 <= 1 (Eq. Q4):
    g = exp(-2 (1 - rho) (1 - c_a^2)^2 / (3 rho (c_a^2 + c_s^2)))."""
    if arrival_scv_ >= 1.0 or utilization <= 0.0:
        return 1.0
    denominator = 3.0 * utilization * (arrival_scv_ + service_scv_)
    if denominator <= 0.0:
        return 0.0
    return math.exp(-2.0 * (1.0 - utilization) * (1.0 - arrival_scv_) ** 2 / denominator)


def gig1_mean_wait_s(rate_per_s: float, service: ServiceMoments, arrival_scv_: float) -> float:
    """Mean wait of a GI/G/1 FCFS queue, Kingman / Allen-Cunneen with the KLB correction (Eq. Q5):
    Wq = g (c_a^2 + c_s^2)/2 rho/(1 - rho) E[S]. With c_a^2 = 1 it is Pollaczek-Khinchine (P3)."""
    rho = rate_per_s * service.mean_s
    if rho >= 1.0:
        return math.inf
    if rho <= 0.0:
        return 0.0
    cs2 = service.scv
    g = klb_correction(rho, arrival_scv_, cs2)
    return g * (arrival_scv_ + cs2) / 2.0 * rho / (1.0 - rho) * service.mean_s


#: Points on each two-class edge of the mixing simplex where Eq. O15b looks for its maximum.
MIXTURE_EDGE_POINTS = 129


def mixed_klb_factor(budget_s: float, arrival_scv_: float,
                     classes: Sequence[tuple[float, float]], tangent_s: float) -> float:
    """A factor g* with Q5's wait within B at every load the mixed-group constraint of Eq. O15a
    admits (Eq. O15b): with c_i = E[S_i^2] - (1 - c_a^2) (2 m S_i - m^2) (m = `tangent_s`), the
    smallest g* >= max over mixtures p of F(p; g*) = r(p) exp(-(1 - c_a^2)^2 g* E_p[S] /
    (3 B r(p))), r = (Kingman's numerator) / sum p_i c_i <= 1, KLB's g at the constraint's
    boundary times the tangent's slack. F rises with E_p[S^2] at a fixed E_p[S], so the
    maximum lies on a two-class edge of the simplex (searched on MIXTURE_EDGE_POINTS points
    each); F falls in g*, so the fixed point is found by bisection. 1 for Poisson arrivals."""
    if arrival_scv_ >= 1.0 or budget_s <= 0.0:
        return 1.0
    return _mixed_klb_factor(budget_s, arrival_scv_, tuple(classes), tangent_s)


@functools.lru_cache(maxsize=4096)
def _mixed_klb_factor(budget_s: float, arrival_scv_: float,
                      classes: tuple[tuple[float, float], ...], tangent_s: float) -> float:
    m, smooth = tangent_s, 1.0 - arrival_scv_
    share = np.linspace(0.0, 1.0, MIXTURE_EDGE_POINTS)
    means, seconds = [], []
    for i, (s1, a1) in enumerate(classes):
        for s2, a2 in classes[i:]:
            means.append(share * s1 + (1.0 - share) * s2)
            seconds.append(share * a1 + (1.0 - share) * a2)
    mean, second = np.concatenate(means), np.concatenate(seconds)
    kingman = second - smooth * mean * mean  # Kingman's numerator per request, E_p
    linear = second - smooth * (2.0 * m * mean - m * m)  # sum p_i c_i
    slack = kingman / np.maximum(linear, 1e-300)  # r(p) <= 1: the tangent's slack
    rate = smooth * smooth * mean / (3.0 * budget_s * slack)

    def worst(g: float) -> float:  # max_p F(p; g): KLB's g at the boundary, times r (O15b)
        return float(np.max(slack * np.exp(-rate * g)))

    lo, hi = 0.0, 1.0
    for _ in range(50):
        mid = (lo + hi) / 2.0
        if mid >= worst(mid):
            hi = mid
        else:
            lo = mid
    return hi


def mixed_wait_coefficient_s2(service_s: float, second_moment_s2: float, arrival_scv_: float,
                              tangent_s: float) -> float:
    """c_i = E[S_i^2] - (1 - c_a^2) (2 m S_i - m^2) (Eq. O15a): class i's share of Kingman's
    numerator lambda (E[S^2] - (1 - c_a^2) E[S]^2) for a mixture, with lambda E[S]^2 (convex,
    homogeneous in the rates) replaced by its tangent at a mixture of mean m, which lies below
    it for any rates: exact when the group's mixture has mean m. Never negative."""
    m = tangent_s
    return second_moment_s2 - (1.0 - arrival_scv_) * (2.0 * m * service_s - m * m)


def erlang_c(servers: int, offered_load: float) -> float:
    """Probability that an arrival waits in an M/M/c queue, c servers, offered load a = lambda E[S]
    (Erlang's C formula, Eq. Q6), by the stable Erlang-B recursion. 1 when a >= c."""
    if offered_load >= servers:
        return 1.0
    if offered_load <= 0.0:
        return 0.0
    blocking = 1.0
    for k in range(1, servers + 1):
        blocking = offered_load * blocking / (k + offered_load * blocking)
    rho = offered_load / servers
    return blocking / (1.0 - rho + rho * blocking)


def mgc_mean_wait_s(total_rate_per_s: float, servers: int, service: ServiceMoments) -> float:
    """Mean wait of an M/G/c FCFS queue (one queue in front of c instances), Allen-Cunneen
    (Eq. Q7): Wq = C(c, a) E[S^2] / (2 E[S] c (1 - rho)), rho = a / c. With c = 1 it is P3."""
    a = total_rate_per_s * service.mean_s
    rho = a / servers
    if rho >= 1.0:
        return math.inf
    if rho <= 0.0:
        return 0.0
    return (erlang_c(servers, a) * service.second_moment_s2
            / (2.0 * service.mean_s * servers * (1.0 - rho)))


#: Finite-load factor k of the round-robin conditional wait (Eq. Q8c), fitted to exact E_n/G/1
#: sample paths (benchmarks/validate_percentile.py --engine lindley).
CONDITIONAL_WAIT_FACTOR = 0.75


def smooth_arrival_wait_probability(utilization: float, arrival_scv_: float,
                                    service_scv_: float) -> float:
    """P(W > 0) of a GI/G/1 queue with smooth arrivals, c_a^2 <= 1 (Eq. Q8b, Whitt's QNA):
    rho + (c_a^2 - 1) rho (1 - rho) h, h = (1 + c_a^2 + rho c_s^2) / (1 + rho (c_s^2 - 1) +
    rho^2 (4 c_a^2 + c_s^2)). rho at c_a^2 = 1 (exact for M/G/1)."""
    rho = min(max(utilization, 0.0), 1.0)
    if arrival_scv_ >= 1.0:
        return rho
    ca2, cs2 = arrival_scv_, service_scv_
    h = (1.0 + ca2 + rho * cs2) / (1.0 + rho * (cs2 - 1.0) + rho * rho * (4.0 * ca2 + cs2))
    return min(rho, max(0.0, rho + (ca2 - 1.0) * rho * (1.0 - rho) * h))


def wait_probability(routing: str, per_instance_rate_per_s: float, count: int,
                     service: ServiceMoments) -> float:
    """P(W > 0): rho for one instance fed by a Poisson stream (random routing, or one instance;
    exact for M/G/1), Whitt's smooth-arrival probability at c_a^2 = 1/count under round-robin
    (Eq. Q8b), Erlang's C for the pooled least-loaded queue (Eqs. Q6, Q8)."""
    if routing == "least-loaded":
        return erlang_c(count, per_instance_rate_per_s * count * service.mean_s)
    rho = min(1.0, per_instance_rate_per_s * service.mean_s)
    return smooth_arrival_wait_probability(rho, arrival_scv(routing, count), service.scv)


def conditional_wait_s(routing: str, per_instance_rate_per_s: float, count: int,
                       service: ServiceMoments) -> float:
    """Mean wait of a request that waits, E[W | W > 0], the mean of Eq. Q8's exponential: Wq /
    P_W for random and least-loaded routing (for M/G/1 exactly (1 + c_s^2) E[S] / (2 (1 - rho)));
    under round-robin the heavy-traffic value (c_a^2 + c_s^2) E[S] / (2 (1 - rho)) times the
    finite-load factor 1 + k (1 - c_a^2)^2 (1 - rho), k = 3/4 (Eq. Q8c). Infinite at rho >= 1."""
    rho = per_instance_rate_per_s * service.mean_s
    if rho >= 1.0:
        return math.inf
    ca2 = arrival_scv(routing, count) if routing != "least-loaded" else 1.0
    if ca2 >= 1.0:
        prob = wait_probability(routing, per_instance_rate_per_s, count, service)
        wait = mean_wait_s(routing, per_instance_rate_per_s, count, service)
        return wait / prob if prob > 0 else 0.0
    heavy_traffic = (ca2 + service.scv) / (2.0 * (1.0 - rho)) * service.mean_s
    return heavy_traffic * (1.0 + CONDITIONAL_WAIT_FACTOR * (1.0 - ca2) ** 2 * (1.0 - rho))


def percentile_wait(routing: str, per_instance_rate_per_s: float, count: int,
                    service: ServiceMoments) -> tuple[float, float]:
    """(P_W E[W | W > 0], P_W): the mean wait and wait probability that Eq. Q8 takes, whose
    ratio is the mean of its exponential. For random and least-loaded routing the mean is Q5 /
    Q7's; under round-robin it is Eqs. Q8b-Q8c's own (Q5's KLB mean stays the mean target's)."""
    prob = wait_probability(routing, per_instance_rate_per_s, count, service)
    if prob <= 0.0:
        return 0.0, 0.0
    return prob * conditional_wait_s(routing, per_instance_rate_per_s, count, service), prob


def mean_wait_s(routing: str, per_instance_rate_per_s: float, count: int,
                service: ServiceMoments) -> float:
    """Mean prefill wait at `per_instance_rate_per_s` on each of `count` instances under a routing
    (Eqs. Q5, Q7): round-robin GI/G/1 with c_a^2 = 1/count, random M/G/1 (P-K), least-loaded
    M/G/c over the pool."""
    if routing == "least-loaded":
        return mgc_mean_wait_s(per_instance_rate_per_s * count, count, service)
    return gig1_mean_wait_s(per_instance_rate_per_s, service, arrival_scv(routing, count))


def quantile_points(service: ServiceMoments) -> np.ndarray:
    """The service times Eq. Q8 sums over: the distribution's points, at most QUANTILE_POINTS
    midpoint quantiles of them."""
    points = np.asarray(service.points_s, dtype=np.float64)
    if points.size > QUANTILE_POINTS:
        points = np.sort(points)[((np.arange(QUANTILE_POINTS) + 0.5) * points.size
                                  / QUANTILE_POINTS).astype(np.int64)]
    return points


def _exceedance(mean_wait: float, wait_prob: float, service: ServiceMoments
                ) -> Callable[[float], float]:
    """t -> P(W + S > t) of Eq. Q8: W is 0 with probability 1 - P_W and otherwise exponential
    with mean Wq / P_W; S takes the distribution's points (at most QUANTILE_POINTS midpoint
    quantiles of them)."""
    points = quantile_points(service)
    scale = mean_wait / wait_prob if wait_prob > 0 and mean_wait > 0 else 0.0

    def exceed(t: float) -> float:
        u = t - points
        if scale <= 0:
            return float(np.mean(u < 0))
        return float(np.mean(np.where(u < 0, 1.0, wait_prob * np.exp(-np.maximum(u, 0) / scale))))

    return exceed


def _largest_exceeding(exceed: Callable[[float], float], tail: float, lo: float, hi: float,
                       steps: int = 40) -> float:
    """The t in [lo, hi] where a falling P(T > t) crosses `tail` (hi doubled until it is below)."""
    while exceed(hi) > tail:
        hi = 2.0 * hi + 1e-9
    for _ in range(steps):
        mid = (lo + hi) / 2.0
        if exceed(mid) > tail:
            lo = mid
        else:
            hi = mid
    return hi


def ttft_quantile_s(mean_wait: float, wait_prob: float, service: ServiceMoments,
                    percentile: float) -> float:
    """p-quantile of W + S, without the overhead (Eq. Q8): W is 0 with probability 1 - P_W and
    otherwise exponential with mean Wq / P_W; S takes the distribution's points (at most
    QUANTILE_POINTS midpoint quantiles of them). Solved by bisection on P(W + S > t) = 1 - p/100."""
    tail = 1.0 - percentile / 100.0
    if not math.isfinite(mean_wait):
        return math.inf
    if len(service.points_s) == 1:  # fixed lengths: closed form
        s = service.points_s[0]
        if wait_prob <= tail or mean_wait <= 0:
            return s
        return s + mean_wait / wait_prob * math.log(wait_prob / tail)
    scale = mean_wait / wait_prob if wait_prob > 0 and mean_wait > 0 else 0.0
    top = max(service.points_s)
    return _largest_exceeding(
        _exceedance(mean_wait, wait_prob, service), tail, 0.0,
        top + (scale * max(1.0, math.log(max(wait_prob, 1e-300) / tail)) if scale > 0 else 0.0))


def ttft_mixture_quantile_s(parts: Sequence[tuple[float, float, float, ServiceMoments, float]],
                            percentile: float) -> float:
    """p-quantile of the TTFT of requests split over prefill groups (Eq. Q8d): part i, a share
    w_i of the requests, waits and is served as Q8 with (Wq_i, P_W,i, S_i) after a fixed o_i
    (overhead and KV transfer, seconds); P(T > t) = sum_i w_i P(W_i + S_i > t - o_i) / sum_i w_i,
    solved by bisection between the parts' own quantiles (a mixture's quantile lies between)."""
    parts = [p for p in parts if p[0] > 0]
    if not parts:
        raise ValueError("ttft_mixture_quantile_s needs a part with a positive share")
    own = [offset + ttft_quantile_s(wait, prob, service, percentile)
           for _, wait, prob, service, offset in parts]
    if len(parts) == 1 or not all(math.isfinite(q) for q in own):
        return max(own)
    total = math.fsum(p[0] for p in parts)
    exceeds = [(w / total, offset, _exceedance(wait, prob, service))
               for w, wait, prob, service, offset in parts]

    def exceed(t: float) -> float:
        return math.fsum(share * e(t - offset) for share, offset, e in exceeds)

    return _largest_exceeding(exceed, 1.0 - percentile / 100.0, min(own), max(own), steps=50)


def ttft_statistic_s(routing: str, per_instance_rate_per_s: float, count: int,
                     service: ServiceMoments, percentile: float | None = None) -> float:
    """Mean (Wq + E[S]) or p-quantile (Eq. Q8, with Eqs. Q8b-Q8c's wait probability and
    conditional wait) of the prefill part of TTFT, overhead excluded."""
    if percentile is None:
        return mean_wait_s(routing, per_instance_rate_per_s, count, service) + service.mean_s
    wait, prob = percentile_wait(routing, per_instance_rate_per_s, count, service)
    return ttft_quantile_s(wait, prob, service, percentile)


def largest_rate_within(holds: Callable[[float], bool], upper: float,
                        rel_tol: float = 1e-9) -> float:
    """Largest x in [0, upper) with holds(x), for a condition that fails beyond some point (a TTFT
    statistic, or its windowed value, rising with the rate: Eqs. Q9, W3), by bisection to
    `rel_tol`; 0 when holds(0) fails."""
    if not holds(0.0):
        return 0.0
    lo, hi = 0.0, upper
    while hi - lo > rel_tol * hi:
        mid = (lo + hi) / 2.0
        if holds(mid):
            lo = mid
        else:
            hi = mid
    return lo


def max_rate_per_instance(routing: str, count: int, service: ServiceMoments, limit_s: float,
                          percentile: float | None = None, *, rel_tol: float = 1e-9) -> float:
    """Largest per-instance arrival rate a(count) whose TTFT statistic (mean or percentile, Eq. Q8)
    stays within `limit_s` = (TTFT target - overhead) (Eq. Q9). The statistic rises with the rate,
    so bisection over [0, 1/E[S]); 0 when even an empty pool misses the target."""
    return largest_rate_within(
        lambda rate: ttft_statistic_s(routing, rate, count, service, percentile) <= limit_s,
        1.0 / service.mean_s, rel_tol)


def capacity_table(routing: str, counts: int, service: ServiceMoments, limit_s: float,
                   percentile: float | None = None) -> list[float]:
    """a(n) for n = 1..counts, per-instance requests/s within the target (Eq. Q9). Random routing
    gives one value for every n; round-robin and least-loaded rise with n."""
    if routing == "random":
        return [max_rate_per_instance(routing, 1, service, limit_s, percentile)] * counts
    return [max_rate_per_instance(routing, n, service, limit_s, percentile)
            for n in range(1, counts + 1)]
