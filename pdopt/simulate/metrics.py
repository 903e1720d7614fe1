"""Statistics of a simulation run: per-request TTFT/TPOT, per-workload summaries with SLO
attainment and its confidence interval, per-pool utilisation (docs/simulation.md, "Metrics")."""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from statistics import NormalDist
from typing import Any

import numpy as np

#: Two-sided confidence level of the attainment intervals.
CONFIDENCE = 0.95
#: Batches (consecutive runs of requests in arrival order) for the batch-means interval.
BATCHES = 30
#: Fewest requests per batch for batch means; below BATCHES x this, the Wilson interval is used.
MIN_PER_BATCH = 10
#: Percent levels of the quantile arrays in the JSON (0, 1, ..., 100): a latency CDF to plot.
CDF_LEVELS = tuple(range(101))


def percentile(values: np.ndarray, p: float) -> float:
    """The p-th percentile as the smallest value with at least p% of the values at or below it
    (the inverted empirical CDF: always one of the values; +inf stays +inf). NaN when empty."""
    if values.size == 0:
        return math.nan
    return float(np.quantile(values, p / 100.0, method="inverted_cdf"))


def mean(values: np.ndarray) -> float:
    return float(values.mean()) if values.size else math.nan


def wilson_interval(successes: int, n: int, confidence: float = CONFIDENCE) -> tuple[float, float]:
    """Wilson score interval of a proportion (Eq. S4):
    (p + z^2/2n -+ z sqrt(p(1-p)/n + z^2/4n^2)) / (1 + z^2/n)."""
    if n == 0:
        return (math.nan, math.nan)
    z = NormalDist().inv_cdf(0.5 + confidence / 2)
    p = successes / n
    centre = p + z * z / (2 * n)
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n))
    denom = 1 + z * z / n
    return (max(0.0, (centre - half) / denom), min(1.0, (centre + half) / denom))


def attainment_interval(hits: np.ndarray, confidence: float = CONFIDENCE) -> tuple[float, float]:
    """Confidence interval of the share of True in `hits` (requests in arrival order).

    Consecutive requests see the same queues, so their outcomes are correlated and a binomial
    interval is too narrow. With enough requests the interval is by batch means (Eq. S5): the
    requests are cut into BATCHES consecutive batches, and mean +- z * sd(batch shares)/sqrt(k).
    Otherwise the Wilson interval (Eq. S4)."""
    n = int(hits.size)
    if n < BATCHES * MIN_PER_BATCH:
        return wilson_interval(int(hits.sum()), n, confidence)
    shares = np.array([b.mean() for b in np.array_split(hits.astype(np.float64), BATCHES)])
    z = NormalDist().inv_cdf(0.5 + confidence / 2)
    centre = float(hits.mean())
    half = z * float(shares.std(ddof=1)) / math.sqrt(BATCHES)
    return (max(0.0, centre - half), min(1.0, centre + half))


@dataclass
class Summary:
    """Mean and percentiles of one per-request quantity, ms."""

    mean: float
    p50: float
    p90: float
    p99: float

    @classmethod
    def of(cls, values: np.ndarray) -> Summary:
        return cls(mean(values), percentile(values, 50), percentile(values, 90),
                   percentile(values, 99))


@dataclass
class WorkloadStats:
    """Simulated service of one workload over the measurement window."""

    workload: str
    requests: int  # arrived in the measurement window
    unfinished: int  # of those, not finished by the end of the run (counted as misses)
    rejected: int  # larger than a decode instance's whole KV cache (counted as misses)
    ttft_ms: Summary
    tpot_ms: Summary  # per-request mean time between output tokens (requests with >1 output)
    e2e_ms: Summary
    ttft_target_ms: float
    ttft_percentile: float | None
    tpot_target_ms: float
    ttft_at_target_ms: float  # the statistic the TTFT target is about: mean or the percentile
    attainment_ttft: float  # share of requests with TTFT <= target
    attainment_tpot: float
    attainment_both: float
    attainment_both_ci: tuple[float, float]
    requests_per_s: float  # finished requests of the window / window length
    tokens_per_s: float  # their input + output tokens / window length
    predicted_ttft_ms: float  # from the plan (NaN: not given)
    predicted_tpot_ms: float
    meets_ttft: bool
    meets_tpot: bool
    # per-request TTFT and TPOT at each level of CDF_LEVELS (inverted empirical CDF, ms; +inf:
    # not reached); empty when no request was measured
    ttft_quantiles_ms: list[float] = field(default_factory=list)
    tpot_quantiles_ms: list[float] = field(default_factory=list)

    @property
    def meets_slo(self) -> bool:
        return self.meets_ttft and self.meets_tpot

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["meets_slo"] = self.meets_slo
        return d


def request_times_ms(arrival_s: np.ndarray, first_token_s: np.ndarray, finish_s: np.ndarray,
                     output_tokens: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per-request TTFT = first token - arrival, TPOT = (finish - first token) / (output - 1) and
    end-to-end = finish - arrival, in ms (Eqs. S2, S3). Not reached: +inf. TPOT of a one-token
    output is NaN (it has no gap between tokens)."""
    ttft = np.where(np.isnan(first_token_s), np.inf, (first_token_s - arrival_s) * 1e3)
    e2e = np.where(np.isnan(finish_s), np.inf, (finish_s - arrival_s) * 1e3)
    gaps = np.maximum(output_tokens - 1, 1).astype(np.float64)
    tpot = np.where(np.isnan(finish_s), np.inf, (finish_s - first_token_s) * 1e3 / gaps)
    tpot = np.where(output_tokens > 1, tpot, np.nan)
    return ttft, tpot, e2e


def workload_stats(
    *, name: str, ttft_ms: np.ndarray, tpot_ms: np.ndarray, e2e_ms: np.ndarray,
    tokens: np.ndarray, rejected: np.ndarray, window_s: float, ttft_target_ms: float,
    ttft_percentile: float | None, tpot_target_ms: float, predicted_ttft_ms: float,
    predicted_tpot_ms: float,
) -> WorkloadStats:
    """Summaries of one workload's measured requests (arrays in arrival order)."""
    n = int(ttft_ms.size)
    has_gap = ~np.isnan(tpot_ms)
    tpot_valid = tpot_ms[has_gap]
    ok_ttft = ttft_ms <= ttft_target_ms
    ok_tpot = np.where(has_gap, np.nan_to_num(tpot_ms, nan=0.0) <= tpot_target_ms,
                       np.isfinite(e2e_ms))
    both = ok_ttft & ok_tpot
    finished = np.isfinite(e2e_ms)
    at_target = mean(ttft_ms) if ttft_percentile is None else percentile(ttft_ms, ttft_percentile)
    mean_tpot = mean(tpot_valid)
    return WorkloadStats(
        workload=name,
        requests=n,
        unfinished=int((~finished).sum()),
        rejected=int(rejected.sum()),
        ttft_ms=Summary.of(ttft_ms),
        tpot_ms=Summary.of(tpot_valid),
        e2e_ms=Summary.of(e2e_ms),
        ttft_target_ms=ttft_target_ms,
        ttft_percentile=ttft_percentile,
        tpot_target_ms=tpot_target_ms,
        ttft_at_target_ms=at_target,
        attainment_ttft=mean(ok_ttft.astype(np.float64)),
        attainment_tpot=mean(ok_tpot.astype(np.float64)),
        attainment_both=mean(both.astype(np.float64)),
        attainment_both_ci=attainment_interval(both),
        requests_per_s=float(finished.sum()) / window_s if window_s > 0 else math.nan,
        tokens_per_s=float(tokens[finished].sum()) / window_s if window_s > 0 else math.nan,
        predicted_ttft_ms=predicted_ttft_ms,
        predicted_tpot_ms=predicted_tpot_ms,
        meets_ttft=bool(n == 0 or at_target <= ttft_target_ms),
        meets_tpot=bool(tpot_valid.size == 0 or mean_tpot <= tpot_target_ms),
        ttft_quantiles_ms=quantiles(ttft_ms),
        tpot_quantiles_ms=quantiles(tpot_valid),
    )


def quantiles(values: np.ndarray) -> list[float]:
    """The values at every level of CDF_LEVELS (as `percentile`); empty when there are none."""
    if values.size == 0:
        return []
    levels = np.asarray(CDF_LEVELS, dtype=np.float64) / 100.0
    return [float(v) for v in np.quantile(values, levels, method="inverted_cdf")]


@dataclass
class PoolStats:
    """Time averages of one pool over the measurement window, per instance."""

    pool: str
    role: str
    count: int
    busy: float  # share of time computing (prefill batches or decode steps)
    mean_queue: float  # requests waiting (prefill: queued, not in service; decode: not admitted)
    mean_batch: float  # prefill: requests per batch; decode: running requests while stepping
    kv_utilization: float | None  # decode: reserved KV tokens / capacity (None: not modelled)
    batches: int  # prefill batches or decode steps in the window, whole pool

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)
