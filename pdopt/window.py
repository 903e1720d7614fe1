"""SLOs judged over a finite window (pure functions; docs/method.md, section W).

A TTFT or TPOT statistic measured over a window of T seconds (a dashboard's half hour, a load
test, a simulation) is a sample: it scatters around the long-run value the queueing and decode
models predict. A plan sized at the long-run value holds in about half of the windows once a
count is right at its boundary. With a window and a confidence q, queue `auto` sizes for the
long-run value plus z_q standard deviations of the window's statistic (Eq. W3), so that the
statistic of a window stays within target with probability about q.

The spread of a window's mean wait comes from the slow fluctuation of the queue's workload, read
through the heavy-traffic reflected-Brownian approximation of the GI/G/1 queue (Eqs. W1, W2); the
spread of a window's mean TPOT from the work that arrives in the window, amplified by the decode
batch's feedback on its own step time (Eq. W4).
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass


@dataclass(frozen=True)
class SloWindow:
    """The window over which a planner judges the SLOs and the share of windows that must hold."""

    window_s: float  # T, seconds
    confidence: float  # q in (0.5, 1): P(window statistic within target) sized for

    @property
    def z(self) -> float:
        """z_q, the standard normal quantile of the confidence (Eq. W3)."""
        return normal_quantile(self.confidence)


@functools.cache
def normal_quantile(probability: float) -> float:
    """Standard normal quantile (statistics.NormalDist, imported on first use: start-up)."""
    from statistics import NormalDist

    return NormalDist().inv_cdf(probability)


def wait_window_rel_sd(utilization: float, mean_service_s: float, service_scv: float,
                       instances: int, window_s: float) -> float:
    """Relative standard deviation of a T-second window's mean wait over a pool of n instances
    (Eq. W1):

        sd / mean = sqrt(2 rho E[S] (1 + c_s^2) / (n T)) / (1 - rho).

    One instance's workload is close to a reflected Brownian motion of drift -(1 - rho) and
    variance rate sigma^2 = rho E[S] (c_a^2 + c_s^2); its stationary mean sigma^2 / (2 (1 - rho)) is
    Kingman's wait and its time average over T has variance sigma^6 / (2 (1 - rho)^4 T) (Whitt
    1989: canonical RBM's asymptotic variance 1/2). Read as a linear response, sigma^4 / (1 -
    rho)^4 is the queue's kernel and one sigma^2 the noise; over the pool the arrival noise is the
    whole stream's (Poisson, whatever the routing: under round-robin it is shared by all n
    instances, under random routing split into n independent parts) and the service noise
    independent, so the pool's mean has noise rho E[S] (1 + c_s^2) / n. The pooled least-loaded
    queue gives the same expression."""
    if utilization <= 0.0 or window_s <= 0.0 or math.isinf(window_s):
        return 0.0
    if utilization >= 1.0:
        return math.inf
    noise = 2.0 * utilization * mean_service_s * (1.0 + service_scv) / instances
    return math.sqrt(noise / window_s) / (1.0 - utilization)


@functools.cache
def quantile_spread_factor(percentile: float | None) -> float:
    """kappa(p): the relative spread of a window's p-quantile of the wait over that of its mean
    (Eq. W2), from the same Brownian approximation: with u = 1 - p/100,

        kappa(p) = sqrt((1 - u + u ln u) / u) / (-ln u),

    1.12 at p90, 2.11 at p99; 1 for a mean target. (The occupation time above the quantile x has
    asymptotic variance 2u (1 - u + u ln u) for canonical RBM; divided by the density 2u at x.)"""
    if percentile is None:
        return 1.0
    u = 1.0 - percentile / 100.0
    return math.sqrt((1.0 - u + u * math.log(u)) / u) / -math.log(u)


def windowed_value(statistic: float, unloaded: float, rel_sd: float, z: float) -> float:
    """The statistic a window reaches with confidence q (Eq. W3): the long-run value plus z_q
    standard deviations of its fluctuating part, statistic + z r (statistic - unloaded). For a
    TTFT statistic r is Eq. W1 times kappa of Eq. W2 and `unloaded` its value without waiting
    (E[S] for a mean, S's own quantile for a percentile); for TPOT r is Eq. W4, unloaded 0."""
    return statistic + z * rel_sd * max(0.0, statistic - unloaded)


def tpot_window_rel_sd(elasticity: float, output_scv: float, pool_requests_per_s: float,
                       window_s: float) -> float:
    """Relative standard deviation of a T-second window's mean TPOT over a decode pool (Eq. W4):

        sd / mean = eps / (1 - eps) sqrt((1 + c_out^2) / (lambda T)),

    with eps = b TPOT'(b) / TPOT(b) the elasticity of the TPOT requests see (Eq. F2) at the mean
    batch b and lambda the pool's requests/s. The pool's mean batch is lambda L_out TPOT(b)
    (Little's law); over a window the work that arrives, the sum of the decode times of about
    lambda T requests, has relative variance (1 + c_out^2) / (lambda T) (a compound Poisson sum),
    and the batch answers with 1 / (1 - eps) because a larger batch decodes each token more
    slowly and so holds its requests longer. Infinite (no margin holds) at eps >= 1."""
    if window_s <= 0.0 or math.isinf(window_s) or elasticity <= 0.0:
        return 0.0
    if elasticity >= 1.0 or pool_requests_per_s <= 0.0:
        return math.inf
    return (elasticity / (1.0 - elasticity)
            * math.sqrt((1.0 + output_scv) / (pool_requests_per_s * window_s)))
