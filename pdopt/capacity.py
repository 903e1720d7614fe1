"""Per-instance capacities of scenario instance types for scenario workloads.

The glue between the scenario objects (`pdopt.scenario.schema`) and the pure formulas
(`pdopt.queueing`, `pdopt.decode`): it looks measured numbers up at a workload's lengths and
applies the targets.
No Pyomo and no I/O here.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

from pdopt.decode import (
    DecodeCapacity,
    DecodeCurve,
    MeasuredTable,
    SlotQueue,
    batch_peakedness,
    decode_capacity,
    decode_curve,
    fluctuating_decode_capacity,
    kv_batch_cap,
    kv_cache_tokens_from_memory,
    request_tpot_ms,
    table_lookup,
)
from pdopt.errors import PdoptError, UnreachableTargetError
from pdopt.queueing import (
    PrefillCapacity,
    ServiceMoments,
    arrival_scv,
    largest_rate_within,
    lognormal_service_moments,
    max_rate_per_instance,
    mean_wait_s,
    prefill_capacity,
    quantile_points,
    service_moments,
    ttft_statistic_s,
)
from pdopt.scenario.schema import (
    EmpiricalLengths,
    Instance,
    LognormalLengths,
    Scenario,
    Workload,
)
from pdopt.window import (
    SloWindow,
    quantile_spread_factor,
    tpot_window_rel_sd,
    wait_window_rel_sd,
    windowed_value,
)

BITS_PER_BYTE = 8


def decode_context_tokens(input_tokens: float, output_tokens: float) -> float:
    """Mean resident context of a decoding request, L_in + L_out/2 (Eq. D3)."""
    return input_tokens + output_tokens / 2


def saturated_prefill_tokens_per_s(instance: Instance, input_tokens: float) -> float:
    """TP_max of a prefill instance at this input length (Eq. P0)."""
    if instance.prefill_tokens_per_s is None:
        raise ValueError(f"instance '{instance.name}' is not a prefill instance")
    value = table_lookup(
        instance.prefill_tokens_per_s, input_tokens, extrapolation=instance.extrapolation,
        what=f"instance '{instance.name}': input length",
    )
    if value <= 0:
        raise PdoptError(
            f"instance '{instance.name}': extrapolated prefill throughput at {input_tokens:g} "
            "input tokens is not positive"
        )
    return value


def kv_transfer_ms(scenario: Scenario, model: str, prefill_gpu: str, decode_gpu: str,
                   input_tokens: float) -> float | None:
    """Extra TTFT for moving a prompt's KV cache between different GPU types (Eq. T1):
    L_in x KV bytes/token x 8 / link bits/s. 0 for the same type (part of ttft_overhead_ms);
    None when the pair has no link in the scenario (such a pairing is not allowed)."""
    if prefill_gpu == decode_gpu:
        return 0.0
    gbit = scenario.kv_transfer.default_gbit_per_s
    for link in scenario.kv_transfer.links:
        if link.prefill_gpu == prefill_gpu and link.decode_gpu == decode_gpu:
            gbit = link.gbit_per_s
    spec = scenario.models.get(model)
    kv_bytes = spec.kv_bytes_per_token_total if spec else None
    if gbit is None or kv_bytes is None:
        return None
    return 1e3 * input_tokens * kv_bytes * BITS_PER_BYTE / (gbit * 1e9)


def instance_prefill_capacity(
    scenario: Scenario, instance: Instance, workload: Workload, extra_overhead_ms: float = 0.0,
    *, input_lengths: Sequence[float] | None = None,
) -> PrefillCapacity:
    """Per-instance prefill capacity for a workload under its TTFT target (Eqs. P0-P6); under
    queue auto, one instance under random routing with the length distribution's service moments
    (Eqs. Q1, Q9), whose waiting budget is the route's level (Eq. O13)."""
    queue, scv = scenario.queue_of(workload)
    if queue == "auto":
        return _auto_prefill_capacity(scenario, instance, workload, extra_overhead_ms,
                                      input_lengths)
    try:
        return prefill_capacity(
            input_tokens=workload.input_tokens,
            saturated_tokens_per_s=saturated_prefill_tokens_per_s(instance, workload.input_tokens)
            / prefill_work_share(workload),
            ttft_ms=workload.slo.ttft_ms,
            ttft_overhead_ms=workload.ttft_overhead_ms + extra_overhead_ms,
            queue=queue,
            scv=scv,
            ttft_percentile=workload.slo.ttft_percentile,
        )
    except UnreachableTargetError as e:
        raise UnreachableTargetError(
            f"workload '{workload.name}' on instance '{instance.name}': {e}"
        ) from None


def instance_decode_curve(instance: Instance, context_tokens: float) -> DecodeCurve:
    """The instance's TPOT-vs-batch curve at a context length (Eqs. D1, D2)."""
    tables = [MeasuredTable(t.context_tokens, t.tpot_ms_by_batch) for t in instance.decode_tables]
    return decode_curve(tables, context_tokens, instance.extrapolation)


def instance_kv_cache_tokens(scenario: Scenario, instance: Instance) -> int | None:
    """KV-cache tokens of one instance: given by the instance, or computed from memory facts
    (Eq. D5a); None when the scenario does not say enough to compute it."""
    if instance.kv_cache_tokens is not None:
        return instance.kv_cache_tokens
    spec = scenario.models.get(instance.model)
    gpu = scenario.gpus.get(instance.gpu)
    if spec is None or gpu is None or gpu.memory_gib is None or spec.weight_gib is None:
        return None
    kv_bytes = spec.kv_bytes_per_token_total
    if kv_bytes is None:
        return None
    utilization = scenario.options.gpu_memory_utilization
    usable = instance.gpus_per_instance * gpu.memory_gib * utilization
    if spec.weight_gib >= usable:
        raise UnreachableTargetError(
            f"instance '{instance.name}': model '{instance.model}' weights "
            f"({spec.weight_gib:g} GiB) do not fit in {usable:.1f} GiB usable memory "
            f"({instance.gpus_per_instance} x {gpu.memory_gib:g} GiB x {utilization:g})"
        )
    return kv_cache_tokens_from_memory(
        gpus_per_instance=instance.gpus_per_instance, memory_gib=gpu.memory_gib,
        gpu_memory_utilization=scenario.options.gpu_memory_utilization,
        weight_gib=spec.weight_gib, kv_bytes_per_token=kv_bytes,
    )


def instance_decode_capacity(
    scenario: Scenario,
    instance: Instance,
    workload: Workload,
    tpot_ms: float | None = None,
    *,
    cache: dict[tuple[str, float], tuple[DecodeCurve, int | None]] | None = None,
) -> DecodeCapacity:
    """Per-instance decode capacity for a workload's lengths under a TPOT target (the workload's
    own unless `tpot_ms` is given), capped by KV-cache memory (Eqs. D3-D6).

    `cache` (optional, owned by the caller) keeps the curve and KV size per (instance, context)
    for callers that ask about many targets and workloads of one scenario."""
    target = workload.slo.tpot_ms if tpot_ms is None else tpot_ms
    context = decode_context_tokens(workload.input_tokens, workload.output_tokens)
    try:
        key = (instance.name, context)
        if cache is not None and key in cache:
            curve, kv_tokens = cache[key]
        else:
            curve = instance_decode_curve(instance, context)
            kv_tokens = instance_kv_cache_tokens(scenario, instance)
            if cache is not None:
                cache[key] = (curve, kv_tokens)
        kv_batch = None if kv_tokens is None else kv_batch_cap(kv_tokens, context)
        return decode_capacity(curve, target, kv_batch)
    except PdoptError as e:
        raise type(e)(f"workload '{workload.name}' on instance '{instance.name}': {e}") from None


# --- queue auto: the deployment's routing and the length distribution (method.md Q, F, O13) ----

#: Largest count with its own capacity (Eq. O14): counts above it take this count's capacity.
MAX_TABLE_COUNT = 24


def prefill_work_share(workload: Workload) -> float:
    """Share of a prompt prefill computes: 1 - prefix_cache_hit_rate (docs/method.md, Eq. H9).
    The cached tokens are read, not computed; the prompt is read at the throughput of its whole
    length (attention over the cached prefix still costs), so the service time is
    (1 - h) L_in / TP_max(L_in). Decode context stays the whole prompt."""
    return 1.0 - workload.prefix_cache_hit_rate


def _tokens_per_s_for_integration(instance: Instance, input_tokens: float) -> float:
    """TP_max at a length of the distribution (Eq. Q1): lengths outside a table whose
    extrapolation is `error` are read at the table's nearer end."""
    table = instance.prefill_tokens_per_s
    if isinstance(table, dict) and instance.extrapolation == "error":
        input_tokens = min(max(input_tokens, min(table)), max(table))
    return saturated_prefill_tokens_per_s(instance, input_tokens)


def scaled_lengths(workload: Workload, lengths: Sequence[float], *, output: bool = False
                   ) -> list[float]:
    """An empirical file's lengths, scaled to the workload's mean when it says so (as the
    simulator samples them)."""
    dist = workload.length_distribution
    mean = workload.output_tokens if output else workload.input_tokens
    if isinstance(dist, EmpiricalLengths) and dist.scale_to_means and lengths:
        factor = mean / max(sum(lengths) / len(lengths), 1e-9)
        return [max(1.0, round(x * factor)) for x in lengths]
    return [max(1.0, float(x)) for x in lengths]


def prefill_service_moments(scenario: Scenario, instance: Instance, workload: Workload,
                            input_lengths: Sequence[float] | None = None) -> ServiceMoments:
    """E[S], E[S^2] of the prefill time over the workload's input lengths (Eqs. Q1, Q2): fixed,
    lognormal, or the empirical file's lengths (`input_lengths`, read by the caller). A given
    `service_scv` overrides c_s^2."""
    dist = workload.length_distribution

    def tp(length: float) -> float:
        return _tokens_per_s_for_integration(instance, length) / prefill_work_share(workload)

    if isinstance(dist, LognormalLengths) and dist.input_cv > 0:
        moments = lognormal_service_moments(workload.input_tokens, dist.input_cv, tp)
    elif isinstance(dist, EmpiricalLengths):
        if not input_lengths:
            raise ValueError(f"workload '{workload.name}': the empirical lengths are needed")
        moments = service_moments(scaled_lengths(workload, input_lengths), tp)
    else:
        moments = service_moments([workload.input_tokens], tp)
    _, scv = scenario.queue_of(workload)
    if scv is not None:
        moments = ServiceMoments(moments.mean_s, (1.0 + scv) * moments.mean_s ** 2,
                                 moments.points_s)
    return moments


def output_scv(workload: Workload, output_lengths: Sequence[float] | None = None) -> float:
    """Squared coefficient of variation of the output length (Eq. F1)."""
    dist = workload.length_distribution
    if isinstance(dist, LognormalLengths):
        return dist.output_cv ** 2
    if isinstance(dist, EmpiricalLengths) and output_lengths:
        xs = scaled_lengths(workload, output_lengths, output=True)
        mean = sum(xs) / len(xs)
        return sum((x - mean) ** 2 for x in xs) / len(xs) / (mean * mean)
    return 0.0


def pool_routing(routings: Sequence[str]) -> str:
    """The queue model of a group whose classes the router spreads with these policies: one
    policy is used as it is; a mix falls back to random (Poisson at every instance, Eq. Q3)."""
    kinds = set(routings)
    return kinds.pop() if len(kinds) == 1 else "random"


def slo_window_of(scenario: Scenario) -> SloWindow | None:
    """The window queue auto sizes the SLOs for (options.slo_window_minutes, slo_confidence;
    method.md section W); None for the long-run values (no window, or a confidence of 0.5)."""
    options = scenario.options
    if options.slo_window_minutes is None or options.slo_confidence <= 0.5:
        return None
    return SloWindow(60.0 * options.slo_window_minutes, options.slo_confidence)


def windowed_prefill_rate(routing: str, count: int, moments: ServiceMoments, limit_s: float,
                          percentile: float | None, window: SloWindow) -> float:
    """a(n) under a window (Eq. W3 on Eqs. Q9, W1, W2): the largest per-instance requests/s on
    `count` instances whose TTFT statistic plus z_q window spreads of its queueing part stays
    within `limit_s` (TTFT target - overhead)."""
    kappa = quantile_spread_factor(percentile)
    unloaded = ttft_statistic_s(routing, 0.0, count, moments, percentile)

    def holds(rate: float) -> bool:
        statistic = ttft_statistic_s(routing, rate, count, moments, percentile)
        spread = kappa * wait_window_rel_sd(rate * moments.mean_s, moments.mean_s, moments.scv,
                                            count, window.window_s)
        return statistic <= limit_s and (
            windowed_value(statistic, unloaded, spread, window.z) <= limit_s)

    return largest_rate_within(holds, 1.0 / moments.mean_s, rel_tol=1e-7)


@functools.lru_cache(maxsize=4096)
def windowed_prefill_rates(routing: str, moments: ServiceMoments, limit_s: float,
                           percentile: float | None, counts: int, window: SloWindow
                           ) -> tuple[float, ...]:
    """a(n) under the window on n = 1..counts instances (Eq. W3), every routing."""
    return tuple(windowed_prefill_rate(routing, n, moments, limit_s, percentile, window)
                 for n in range(1, counts + 1))


@functools.lru_cache(maxsize=4096)
def auto_waiting_budgets_s(routing: str, moments: ServiceMoments, limit_s: float,
                           percentile: float | None, counts: int,
                           window: SloWindow | None = None) -> tuple[float, ...]:
    """The mean wait a class may see on n = 1..counts instances (Eq. O13a): TTFT - o - E[S] for
    a mean target at every count; for a percentile target the mean wait at its own capacity
    a(n) of Eq. Q9 on n instances (0 when the target is out of reach). Random routing: a(1)'s
    wait at every count. With a window (Eq. W3) the wait at the windowed capacity on each count,
    whatever the routing (the window's spread falls with the count)."""
    if window is not None:
        rates = windowed_prefill_rates(routing, moments, limit_s, percentile, counts, window)
        if min(rates) <= 0:
            return (0.0,) * counts
        return tuple(mean_wait_s(routing, rate, n, moments)
                     for n, rate in enumerate(rates, start=1))
    if percentile is None:
        return (limit_s - moments.mean_s,) * counts
    top = 1 if routing == "random" else counts
    waits = []
    for n in range(1, top + 1):
        rate = max_rate_per_instance(routing, n, moments, limit_s, percentile, rel_tol=1e-6)
        if rate <= 0:
            return (0.0,) * counts
        waits.append(mean_wait_s(routing, rate, n, moments))
    return tuple(waits + [waits[-1]] * (counts - top))


def count_for_demand(demand: float, capacity_at: Callable[[int], float], counts: int) -> int:
    """The smallest n in 1..counts with n capacity_at(n) >= demand (counts when none): the count a
    class would need alone, at which an untabled pool (random routing) takes its window margin
    (Eq. W6)."""
    for n in range(1, counts + 1):
        if n * capacity_at(n) >= demand:
            return n
    return counts


def random_window_count(scenario: Scenario, workload: Workload, moments: ServiceMoments,
                        limit_s: float, window: SloWindow) -> int:
    """The count at which a random-routed class takes its window margin (Eq. W6): the fewest
    instances whose windowed capacity (Eq. W3) carries its demand alone."""
    demand = workload.rate_requests_per_s * scenario.headroom_of(workload)
    rates = windowed_prefill_rates("random", moments, limit_s, workload.slo.ttft_percentile,
                                   MAX_TABLE_COUNT, window)
    return count_for_demand(demand, lambda k: rates[k - 1], len(rates))


#: Mixes (points of utilisation on the mean-wait line) where Eq. O13c checks a percentile class.
MIXED_PERCENTILE_POINTS = 33


@functools.lru_cache(maxsize=4096)
def _unloaded_statistic_s(moments: ServiceMoments, percentile: float) -> float:
    return ttft_statistic_s("random", 0.0, 1, moments, percentile)


def _exceedance(points: np.ndarray, rhos: np.ndarray, scales: np.ndarray, t: np.ndarray
                ) -> np.ndarray:
    """P(W + S > t) of Eq. Q8 element by element: W is 0 with probability 1 - rho and otherwise
    exponential with mean `scales`; S takes `points` with equal weights."""
    u = t[:, None] - points[None, :]
    return np.mean(np.where(u < 0, 1.0, rhos[:, None]
                            * np.exp(-np.maximum(u, 0) / scales[:, None])), axis=1)


def _random_statistic_s(moments: ServiceMoments, percentile: float, count: int,
                        window: SloWindow | None, rhos: np.ndarray, waits_s: np.ndarray
                        ) -> np.ndarray:
    """A percentile class's TTFT statistic less the overhead in an M/G/1 group (Poisson arrivals:
    random routing) at utilisations `rhos` and mean waits `waits_s` (element by element): Eq. Q8's
    quantile with P_W = rho and, with a window, its windowed value (Eq. W3, W1's noise 2 rho r / n
    on n = `count` instances, r = E[S^2] / E[S] of the group's mix = 2 Wq (1 - rho) / rho)."""
    points = quantile_points(moments)
    tail = 1.0 - percentile / 100.0
    scale = waits_s / rhos  # the mean of a positive wait (Eq. Q8, P_W = rho)
    lo = np.zeros_like(rhos)
    hi = points.max() + scale * np.maximum(1.0, np.log(np.maximum(rhos, 1e-300) / tail))
    for _ in range(48):  # bisection of P(W + S > t) = 1 - p/100 on every point at once
        mid = (lo + hi) / 2
        exceed = _exceedance(points, rhos, scale, mid)
        lo, hi = np.where(exceed > tail, mid, lo), np.where(exceed > tail, hi, mid)
    if window is None:
        return hi
    kappa = quantile_spread_factor(percentile)
    unloaded = _unloaded_statistic_s(moments, percentile)
    return np.array([windowed_value(q, unloaded, kappa * wait_window_rel_sd(
        rho, 2 * wait * (1 - rho) / rho, 0.0, count, window.window_s), window.z)
        for q, rho, wait in zip(hi.tolist(), rhos.tolist(), waits_s.tolist(), strict=True)])


@functools.lru_cache(maxsize=4096)
def mixed_percentile_budget_s(budget_s: float, moments: ServiceMoments, limit_s: float,
                              percentile: float, residuals_s: tuple[float, ...], count: int,
                              window: SloWindow | None) -> float:
    """The largest mean wait B' <= `budget_s` at which a percentile class keeps its target in an
    M/G/1 group (Poisson arrivals: random routing) whatever mix of the admitted classes it
    carries (Eq. O13c). On the boundary of the group's constraint (O5) every mix waits B', at
    utilisation rho = 2 B' / (r + 2 B') for the mix's r = E[S^2] / E[S], which lies between the
    admitted classes' extremes (`residuals_s`; a mediant). There the class's percentile (Eq. Q8
    with P_W = rho and mean wait B') and, with a window, its windowed value (Eq. W3, W1's noise
    2 rho r / n on n = `count` instances) must stay within `limit_s`: the worst rho is found on
    MIXED_PERCENTILE_POINTS points of that range and as many again between the worst point's
    neighbours, and B' by bisection (along a mix's ray the statistic rises with the load, so the
    budgets that hold form an interval)."""
    low, high = min(residuals_s), max(residuals_s)

    def values(wait_s: float, rhos: np.ndarray) -> np.ndarray:  # the statistic at each rho
        return _random_statistic_s(moments, percentile, count, window, rhos,
                                   np.full_like(rhos, wait_s))

    def worst(wait_s: float) -> float:
        grid = np.linspace(2 * wait_s / (high + 2 * wait_s), 2 * wait_s / (low + 2 * wait_s),
                           MIXED_PERCENTILE_POINTS)
        found = values(wait_s, grid)
        k = int(np.argmax(found))  # then a finer grid between the worst point's neighbours
        fine = np.linspace(grid[max(k - 1, 0)], grid[min(k + 1, len(grid) - 1)],
                           MIXED_PERCENTILE_POINTS)
        return max(float(found[k]), float(np.max(values(wait_s, fine))))

    tolerance = 1e-9 * limit_s
    if budget_s <= 0 or worst(budget_s) <= limit_s + tolerance:
        return budget_s
    lo, hi = 0.0, budget_s
    for _ in range(32):
        mid = (lo + hi) / 2
        if worst(mid) <= limit_s + tolerance:
            lo = mid
        else:
            hi = mid
    return lo


#: Mixes (ratios r = E[S^2] / E[S] across the admitted classes' range) on which Eq. O13d reads
#: each percentile class's frontier first; then, GROUP_LINE_REFINEMENTS times, 7 more between the
#: neighbours of each point where the line comes within GROUP_LINE_NEAR of the frontier (each
#: time a quarter of the spacing there).
GROUP_LINE_POINTS = 33
GROUP_LINE_REFINEMENTS = 3
GROUP_LINE_NEAR = 1e-3


@dataclass(frozen=True)
class GroupLine:
    """A random-routed prefill group's capacity row (Eq. O13d): one instance carries per-class
    rates x_i within sum_i x_i (alpha S_i + beta E[S_i^2]) <= 1, i.e. rho (alpha + beta r) <= 1
    for its mix's r = E[S^2] / E[S]. Eq. O5 at mean-wait budget B is alpha = 1, beta = 1 / (2 B)."""

    alpha: float
    beta_per_s: float

    def unit(self, service_s: float, second_moment_s2: float) -> float:
        """Instances one request/s of a class (S, E[S^2]) takes at the row's boundary."""
        return self.alpha * service_s + self.beta_per_s * second_moment_s2

    def wait_s(self, residual_s: float) -> float:
        """The mean wait (P-K) on the row's boundary for a mix of ratio r = E[S^2] / E[S]."""
        rho = 1.0 / (self.alpha + self.beta_per_s * residual_s)
        return rho * residual_s / (2.0 * (1.0 - rho))


def percentile_frontier(moments: ServiceMoments, limit_s: float, percentile: float, count: int,
                        window: SloWindow | None, residuals_s: np.ndarray) -> np.ndarray:
    """g(r) = 1 / rho*(r) of Eq. O13d: rho*(r) the largest utilisation of an M/G/1 group whose mix
    has ratio r = E[S^2] / E[S] at which the percentile class keeps its statistic within
    `limit_s`; inf where no load holds. On a mix's ray the mean wait at rho is rho r / (2 (1 -
    rho)) and the statistic rises with rho. The class holds where Eq. Q8's exceedance at the
    limit is at most 1 - p/100; with a window, at the limit L' = (L + z s u) / (1 + z s) that
    Eq. W3 leaves the long-run quantile (s = kappa times W1's spread at rho, u the unloaded
    quantile). By bisection on every r at once."""
    points = quantile_points(moments)
    tail = 1.0 - percentile / 100.0
    unloaded = _unloaded_statistic_s(moments, percentile) if window is not None else 0.0
    kappa = quantile_spread_factor(percentile)

    def holds(rhos: np.ndarray) -> np.ndarray:
        limit = np.full_like(rhos, limit_s)
        if window is not None:
            spread = window.z * kappa * np.array([
                wait_window_rel_sd(rho, r, 0.0, count, window.window_s)
                for rho, r in zip(rhos.tolist(), residuals_s.tolist(), strict=True)])
            limit = (limit_s + spread * unloaded) / (1 + spread)
        scale = residuals_s / (2 * (1 - rhos))  # the mean of a positive wait, Wq / rho
        return (_exceedance(points, rhos, scale, limit) <= tail) & (limit >= unloaded)

    lo, hi = np.zeros_like(residuals_s), np.ones_like(residuals_s)
    for _ in range(48):
        mid = (lo + hi) / 2
        ok = holds(mid)
        lo, hi = np.where(ok, mid, lo), np.where(ok, hi, mid)
    with np.errstate(divide="ignore"):
        return 1.0 / lo


@functools.lru_cache(maxsize=4096)
def group_line(percentile_classes: tuple[tuple[ServiceMoments, float, float, int], ...],
               mean_budgets_s: tuple[float, ...], residual_range_s: tuple[float, float],
               target_residual_s: float, window: SloWindow | None) -> GroupLine | None:
    """The capacity row of a random-routed (M/G/1) prefill group whose admitted classes' ratios
    r_i = E[S_i^2] / S_i span `residual_range_s` (Eq. O13d): the line h(r) = alpha + beta r that
    lies above g(r) = max over the classes of 1 / rho*(r) on that range (so every mix, whose r is
    a mediant of the r_i, keeps every class on or inside the row's boundary) and is lowest at
    the group's own mix `target_residual_s`, then lowest at the range's middle: a linear program
    over the values of r where g is read (GROUP_LINE_POINTS, refined where the line comes close
    to g). `percentile_classes`: (service moments, limit less the overhead, percentile, Eq. W6's
    count) per percentile route; `mean_budgets_s`: the mean waits the mean-target routes allow
    (g(r) = 1 + r / (2 B), a line, so its ends suffice). None for a single ratio, without a
    percentile class, or where a class holds at no load."""
    low, high = residual_range_s
    if not percentile_classes or high <= low * (1 + 1e-9) or min(mean_budgets_s, default=1) <= 0:
        return None

    def frontier(residuals: np.ndarray) -> np.ndarray:  # g of the percentile classes
        need = np.ones_like(residuals)
        for moments, limit, percentile, count in percentile_classes:
            need = np.maximum(need, percentile_frontier(moments, limit, percentile, count, window,
                                                        residuals))
        return need

    ends = np.array([low, high])
    means = [1 + ends / (2 * budget) for budget in mean_budgets_s]  # lines: their ends suffice
    points = np.linspace(low, high, GROUP_LINE_POINTS)
    need = frontier(points)
    if not np.all(np.isfinite(need)):
        return None

    def lowest() -> GroupLine | None:
        return _lowest_line_above(np.concatenate([points] + [ends] * len(means)),
                                  np.concatenate([need] + means), target_residual_s,
                                  (low + high) / 2)

    for _ in range(GROUP_LINE_REFINEMENTS):
        line = lowest()
        if line is None:
            return None
        # g may bulge above the line between two points where the line (nearly) touches it and
        # g is not convex (a convex g lies below its chords)
        above = line.alpha + line.beta_per_s * points
        bend = np.diff(np.diff(need) / np.diff(points))  # slope changes at the inner points
        concave = np.concatenate([[bend[0]], bend, [bend[-1]]]) < 0
        near = np.flatnonzero((above - need <= GROUP_LINE_NEAR * above) & concave).tolist()
        if not near:
            return line
        last = len(points) - 1
        extra = np.unique(np.concatenate(
            [np.linspace(points[max(k - 1, 0)], points[min(k + 1, last)], 9)[1:-1]
             for k in near]))
        extra = extra[~np.isin(extra, points)]
        order = np.argsort(np.concatenate([points, extra]))
        points = np.concatenate([points, extra])[order]
        need = np.concatenate([need, frontier(extra)])[order]
    return lowest()


def _lowest_line_above(points: np.ndarray, need: np.ndarray, target: float, middle: float
                       ) -> GroupLine | None:
    """The line alpha + beta r >= need at every point that is lowest at `target`, then at
    `middle` (two small linear programs; HiGHS through scipy)."""
    from scipy.optimize import linprog

    rows, bounds = -np.column_stack([np.ones_like(points), points]), -need
    free = [(None, None), (None, None)]
    first = linprog([1.0, target], A_ub=rows, b_ub=bounds, bounds=free)
    if first.status != 0:
        return None
    second = linprog([1.0, middle], A_ub=np.vstack([rows, [1.0, target]]),
                     b_ub=np.append(bounds, first.fun + 1e-12 * abs(first.fun)), bounds=free)
    alpha, beta = (second.x if second.status == 0 else first.x).tolist()
    # g rises with r, so beta > 0; a line about flat over the range is left to O13c's row (its
    # row, scaled by 1 / beta as O5's by 2 B, would carry huge coefficients)
    return GroupLine(alpha, beta) if beta * points[-1] > 1e-6 * alpha else None


def prefill_rate_table(routing: str, moments: ServiceMoments, budget_s: float,
                       counts: int) -> list[float]:
    """a(n), n = 1..counts: requests/s per instance whose mean wait stays within the budget
    (Eqs. Q9, O13); one value repeated under random routing."""
    if routing == "random":
        return prefill_rate_table_by_count(routing, moments, [budget_s]) * counts
    return prefill_rate_table_by_count(routing, moments, [budget_s] * counts)


def prefill_rate_table_by_count(routing: str, moments: ServiceMoments,
                                budgets_s: Sequence[float]) -> list[float]:
    """a(n) on n = 1..len(budgets_s) instances, each within its own count's mean-wait budget
    B(n) (Eqs. Q9, O13a); 0 where B(n) <= 0."""
    return [max_rate_per_instance(routing, n, moments, budget + moments.mean_s, rel_tol=1e-10)
            if budget > 0 else 0.0 for n, budget in enumerate(budgets_s, start=1)]


def _auto_prefill_capacity(scenario: Scenario, instance: Instance, workload: Workload,
                           extra_overhead_ms: float, input_lengths: Sequence[float] | None
                           ) -> PrefillCapacity:
    moments = prefill_service_moments(scenario, instance, workload, input_lengths)
    limit = (workload.slo.ttft_ms - workload.ttft_overhead_ms - extra_overhead_ms) / 1e3
    pct = workload.slo.ttft_percentile
    routing = scenario.routing_of(workload)
    window = slo_window_of(scenario)
    budgets = auto_waiting_budgets_s(routing, moments, limit, pct, MAX_TABLE_COUNT, window)
    budget = min(budgets)
    if window is not None and routing == "random" and budget > 0:  # Eq. W6
        budget = budgets[random_window_count(scenario, workload, moments, limit, window) - 1]
    if budget <= 0:
        what = "mean TTFT" if pct is None else f"p{pct:g} TTFT"
        raise UnreachableTargetError(
            f"workload '{workload.name}' on instance '{instance.name}': {what} target "
            f"{workload.slo.ttft_ms:g} ms is unreachable: the prefill alone (mean "
            f"{1e3 * moments.mean_s:.1f} ms) plus {workload.ttft_overhead_ms + extra_overhead_ms:g}"
            " ms overhead leave no time to wait"
        )
    rate = prefill_rate_table("random", moments, budget, 1)[0]
    return PrefillCapacity(
        saturated_tokens_per_s=workload.input_tokens / moments.mean_s,
        service_s=moments.mean_s, second_moment_s2=moments.second_moment_s2,
        waiting_budget_s=budget, max_requests_per_s=rate,
        tokens_per_s=rate * workload.input_tokens,
    )


def admission_batch_cap(scenario: Scenario, instance: Instance, workload: Workload
                        ) -> float | None:
    """Requests a decode instance admits when each reserves its whole context, L_in + L_out
    (Eq. F4); None without memory facts."""
    kv = instance_kv_cache_tokens(scenario, instance)
    if kv is None:
        return None
    return kv / (workload.input_tokens + workload.output_tokens)


#: Fixed-point steps of Eq. W5 (the margin's spread evaluated at the previous step's batch).
WINDOW_FIXED_POINT_STEPS = 3


def tpot_elasticity(curve: DecodeCurve, mean_batch: float, peakedness: float) -> float:
    """eps = b T'(b) / T(b) of the TPOT requests see (Eq. F2) at mean batch b, by a central
    difference of 1% of b (Eq. W4)."""
    step = max(1e-6, 0.01 * mean_batch)
    lower = max(0.0, mean_batch - step)
    slope = ((request_tpot_ms(curve, mean_batch + step, peakedness)
              - request_tpot_ms(curve, lower, peakedness)) / (mean_batch + step - lower))
    return mean_batch * slope / request_tpot_ms(curve, mean_batch, peakedness)


#: Decode capacities remembered per process: a pool's table computes count 1 twice (for the bound
#: U_p, then with the other counts) and a fleet's models often share a curve, target and output
#: lengths (on the 50-model coupled fleet of docs/performance.md 60 % of the calls).
DECODE_CAPACITY_CACHE = 65536


@functools.lru_cache(maxsize=DECODE_CAPACITY_CACHE)
def windowed_decode_capacity(curve: DecodeCurve, tpot_ms: float, peakedness: float,
                             batch_cap: float | None, output_scv_: float, output_tokens: float,
                             count: int, window: SloWindow | None, *, arrival_scv_: float = 1.0,
                             slot_wait: bool = True) -> DecodeCapacity:
    """Decode capacity on one of `count` instances whose window mean TPOT stays within target
    with the window's confidence (Eq. W5), the slot wait of Eq. F4b included (arrivals of SCV
    `arrival_scv_` at the instance; without `slot_wait`, F4's room instead): F3's capacity at a
    lowered target t' with
    T(b) (1 + z r(b)) <= target, r of Eq. W4 at the pool's rate count b / (L_out T(b)); t' by
    WINDOW_FIXED_POINT_STEPS steps t' = target / (1 + z r(b)) from the unlowered capacity's b.
    Where the elasticity reaches 1 (the batch of highest throughput, below the target) no
    margin applies."""
    queue = SlotQueue(output_tokens, output_scv_, arrival_scv_) if slot_wait else None
    capacity = fluctuating_decode_capacity(curve, tpot_ms, peakedness, batch_cap, queue)
    if window is None:
        return capacity
    for _ in range(WINDOW_FIXED_POINT_STEPS):
        batch = capacity.tokens_per_s * capacity.tpot_ms / 1e3
        spread = tpot_window_rel_sd(
            tpot_elasticity(curve, batch, peakedness), output_scv_,
            count * capacity.tokens_per_s / output_tokens, window.window_s)
        if not math.isfinite(spread):
            break
        lowered = tpot_ms / (1.0 + window.z * spread)
        try:
            capacity = fluctuating_decode_capacity(curve, lowered, peakedness, batch_cap, queue)
        except UnreachableTargetError as e:
            raise UnreachableTargetError(
                f"{e}: the TPOT target {tpot_ms:g} ms is lowered to {lowered:.4g} ms so that a "
                f"{window.window_s / 60:g}-minute window holds it with probability "
                f"{window.confidence:g} (docs/method.md W5; options.slo_window_minutes: null "
                "sizes for the long-run value)") from None
    return capacity


def decode_rate_table(scenario: Scenario, instance: Instance, workload: Workload,
                      tpot_ms: float, counts: int, *, output_lengths: Sequence[float] | None = None,
                      routing: str | None = None, shared: bool = False
                      ) -> list[DecodeCapacity]:
    """Decode capacity at counts n = 1..counts with a fluctuating batch (Eqs. F1-F4b): arrivals
    of SCV 1/n (round-robin, least-loaded) or 1 (random) at each of n instances; with the
    scenario's SLO window, each count's capacity within its window margin (Eq. W5). `shared`:
    the pool may carry other classes, whose output lengths share the slot wait, and keeps F4's
    room (F4b is for a pool of one class)."""
    routing = routing or scenario.routing_of(workload)
    top = 1 if routing == "random" and slo_window_of(scenario) is None else counts
    row = decode_capacity_by_count(scenario, instance, workload, tpot_ms, output_lengths, routing,
                                   shared)
    rows = [row(n) for n in range(1, top + 1)]
    return rows + [rows[-1]] * (counts - top)


def decode_capacity_by_count(scenario: Scenario, instance: Instance, workload: Workload,
                             tpot_ms: float, output_lengths: Sequence[float] | None, routing: str,
                             shared: bool = False) -> Callable[[int], DecodeCapacity]:
    """count -> the decode capacity on one of `count` instances (Eqs. F1-F4b, W5), the rows of
    decode_rate_table, with the curve, output SCV, admission cap and window looked up once;
    `shared` as in decode_rate_table."""
    def named(e: PdoptError) -> PdoptError:
        return type(e)(f"workload '{workload.name}' on instance '{instance.name}': {e}")

    context = decode_context_tokens(workload.input_tokens, workload.output_tokens)
    try:
        curve = instance_decode_curve(instance, context)
        out_scv = output_scv(workload, output_lengths)
        cap = admission_batch_cap(scenario, instance, workload)
    except PdoptError as e:
        raise named(e) from None
    window = slo_window_of(scenario)
    arrivals = "round-robin" if routing != "random" else "random"

    def row(count: int) -> DecodeCapacity:
        ca2 = arrival_scv(arrivals, count)
        try:
            return windowed_decode_capacity(
                curve, tpot_ms, batch_peakedness(ca2, out_scv), cap, out_scv,
                workload.output_tokens, count, window, arrival_scv_=ca2, slot_wait=not shared)
        except PdoptError as e:
            raise named(e) from None

    return row


def table_counts(upper_bound: int) -> int:
    """Counts with their own capacity in a pool's table (Eq. O14)."""
    return max(1, min(upper_bound, MAX_TABLE_COUNT))

