"""Decode under a TPOT target and measured-table lookups (pure functions; docs/method.md, D).

A decode instance's TPOT grows with its batch; the largest batch whose TPOT meets the target,
capped by KV-cache memory, sets its throughput: batch / TPOT(batch) output tokens/s.
"""

from __future__ import annotations

import bisect
import functools
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np

from pdopt.errors import ExtrapolationError, UnreachableTargetError

Extrapolation = Literal["error", "nearest", "linear"]
GIB = 1024**3


def interpolate(
    xs: Sequence[float], ys: Sequence[float], x: float, *, extrapolation: Extrapolation,
    what: str = "value",
) -> float:
    """Piecewise-linear interpolation through sorted points (Eqs. P0, D1, D2).

    Outside [xs[0], xs[-1]]: `error` raises ExtrapolationError, `nearest` clamps, `linear` extends
    the end segment. A single point is returned as is only when x equals it (or not `error`)."""
    if len(xs) != len(ys) or not xs:
        raise ValueError("interpolate needs matching, non-empty point lists")
    if x < xs[0] or x > xs[-1]:
        if extrapolation == "error":
            span = f"{xs[0]:g}" if len(xs) == 1 else f"{xs[0]:g}..{xs[-1]:g}"
            raise ExtrapolationError(
                f"{what} {x:g} is outside the measured range {span} "
                "(add a measurement there, or set extrapolation: nearest|linear)"
            )
        if extrapolation == "nearest" or len(xs) == 1:
            return ys[0] if x < xs[0] else ys[-1]
        i = 0 if x < xs[0] else len(xs) - 2
    else:
        i = max(0, min(bisect.bisect_right(xs, x) - 1, len(xs) - 2))
        if len(xs) == 1:
            return ys[0]
    x0, x1, y0, y1 = xs[i], xs[i + 1], ys[i], ys[i + 1]
    return y0 + (y1 - y0) * (x - x0) / (x1 - x0)


def table_lookup(
    table: Mapping[int, float] | float, x: float, *, extrapolation: Extrapolation, what: str
) -> float:
    """Look up a number-or-table field (e.g. prefill tokens/s over input length) at x."""
    if not isinstance(table, Mapping):
        return float(table)
    xs = sorted(table)
    return interpolate(xs, [table[k] for k in xs], x, extrapolation=extrapolation, what=what)


@dataclass(frozen=True)
class DecodeCurve:
    """TPOT (ms) as a function of batch size at one context length.

    Built from one or more measured tables; between tables TPOT is interpolated linearly in context
    (Eq. D2), within a table linearly in batch (Eq. D1). Below the first measured batch TPOT is
    taken as the first measurement (conservative: TPOT does not fall as batch grows)."""

    batches: tuple[float, ...]
    tpot_ms: tuple[float, ...]
    extend_linearly: bool  # beyond the largest measured batch (extrapolation: linear)

    @property
    def largest_measured_batch(self) -> int:
        return int(self.batches[-1])

    def tpot_at_many(self, batches: np.ndarray) -> np.ndarray:
        """`tpot_at` for an array of batches (Eqs. D1, F2)."""
        out = np.interp(batches, self.batches, self.tpot_ms)
        if self.extend_linearly and len(self.batches) > 1:
            slope = ((self.tpot_ms[-1] - self.tpot_ms[-2])
                     / (self.batches[-1] - self.batches[-2]))
            above = batches > self.batches[-1]
            out[above] = self.tpot_ms[-1] + slope * (batches[above] - self.batches[-1])
        return out

    def tpot_at(self, batch: float) -> float:
        if batch <= self.batches[0]:
            return self.tpot_ms[0]
        if batch > self.batches[-1] and not self.extend_linearly:
            return self.tpot_ms[-1]
        return interpolate(self.batches, self.tpot_ms, batch, extrapolation="linear")

    def max_batch(self, tpot_target_ms: float) -> int:
        """Largest integer batch b with TPOT(b) <= target (Eq. D4).

        Beyond the largest measured batch only with linear extrapolation and a rising last segment;
        otherwise capped there. Raises UnreachableTargetError below the fastest TPOT measured."""
        if tpot_target_ms < self.tpot_ms[0]:
            raise UnreachableTargetError(
                f"TPOT target {tpot_target_ms:g} ms is below the fastest TPOT measured "
                f"({self.tpot_ms[0]:g} ms at batch {self.batches[0]:g})"
            )
        top = self.largest_measured_batch
        if self.tpot_at(top) <= tpot_target_ms:
            if not self.extend_linearly or len(self.batches) < 2:
                return top
            slope = (self.tpot_ms[-1] - self.tpot_ms[-2]) / (self.batches[-1] - self.batches[-2])
            if slope <= 0:
                return top
            return int(math.floor(self.batches[-1] + (tpot_target_ms - self.tpot_ms[-1]) / slope))
        lo, hi = 1, top  # tpot_at(lo) <= target < tpot_at(hi)
        while hi - lo > 1:
            mid = (lo + hi) // 2
            if self.tpot_at(mid) <= tpot_target_ms:
                lo = mid
            else:
                hi = mid
        return lo

    def batch_at_throughput(self, tokens_per_s: float) -> float:
        """Batch b at which b / TPOT(b) equals the given output tokens/s per instance (Little's law
        at the operating point); used to predict TPOT below capacity. May exceed the tables."""
        if tokens_per_s <= 0:
            return 0.0

        def rate(b: float) -> float:
            return b / (self.tpot_at(b) / 1e3)

        lo, hi = 0.0, float(self.batches[-1])
        while rate(hi) < tokens_per_s:
            hi *= 2
            if hi > 1e9:
                return math.inf
        for _ in range(100):
            mid = (lo + hi) / 2
            if rate(mid) < tokens_per_s:
                lo = mid
            else:
                hi = mid
        return hi


@dataclass(frozen=True)
class MeasuredTable:
    """A TPOT table and the context length (input + output/2) at which it was measured."""

    context_tokens: float | None
    tpot_ms_by_batch: Mapping[int, float]


def decode_curve(
    tables: Sequence[MeasuredTable], context_tokens: float, extrapolation: Extrapolation = "error"
) -> DecodeCurve:
    """The TPOT curve at `context_tokens` from tables at one or more contexts (Eq. D2)."""
    if not tables:
        raise ValueError("no decode TPOT table")
    if len(tables) == 1 and tables[0].context_tokens is None:
        t = tables[0].tpot_ms_by_batch
        bs = sorted(t)
        return DecodeCurve(
            tuple(map(float, bs)), tuple(t[b] for b in bs), extrapolation == "linear"
        )
    if any(t.context_tokens is None for t in tables):
        raise ValueError("with several TPOT tables, each needs measured_at")
    tables = sorted(tables, key=lambda t: t.context_tokens)  # type: ignore[arg-type, return-value]
    contexts = [float(t.context_tokens) for t in tables]  # type: ignore[arg-type]
    # Validate the context range once (raises with the policy's message).
    interpolate(contexts, contexts, context_tokens, extrapolation=extrapolation,
                what="decode context (input + output/2) of")
    # Batch grid: every measured batch, up to the smallest "largest measured batch" among the
    # tables unless extrapolating linearly (clamping a shorter table would be optimistic).
    top = min(max(t.tpot_ms_by_batch) for t in tables)
    batches = sorted(
        {b for t in tables for b in t.tpot_ms_by_batch if extrapolation == "linear" or b <= top}
    )

    def lookups(t: MeasuredTable) -> list[float]:
        """TPOT of table t at every batch of the grid; the table is sorted once (a per-batch sort
        made a 100,000-entry table take minutes)."""
        xs = sorted(t.tpot_ms_by_batch)
        ys = [t.tpot_ms_by_batch[x] for x in xs]
        # below the first measured batch: the first measurement (conservative)
        return [ys[0] if b <= xs[0] else interpolate(xs, ys, b, extrapolation="linear")
                for b in batches]

    per_table = [lookups(t) for t in tables]
    tpot = []
    for k in range(len(batches)):
        tpot.append(
            interpolate(contexts, [row[k] for row in per_table], context_tokens,
                        extrapolation=extrapolation, what="decode context")
        )
    for k in range(1, len(tpot)):  # interpolation of monotone tables stays monotone; keep it exact
        tpot[k] = max(tpot[k], tpot[k - 1])
    if tpot[0] <= 0:  # only linear extrapolation in context can get here
        raise ExtrapolationError(
            f"decode context {context_tokens:g} extrapolated linearly from the tables at "
            f"{contexts[0]:g}..{contexts[-1]:g} gives a TPOT of {tpot[0]:.3g} ms at batch "
            f"{batches[0]:g}, not a time (measure at this context, or use extrapolation: nearest)"
        )
    return DecodeCurve(tuple(map(float, batches)), tuple(tpot), extrapolation == "linear")


def kv_cache_tokens_from_memory(
    *, gpus_per_instance: int, memory_gib: float, gpu_memory_utilization: float,
    weight_gib: float, kv_bytes_per_token: float,
) -> int:
    """KV-cache capacity of an instance in tokens (Eq. D5a):
    (gpus x memory x utilisation - weights) / KV bytes per token."""
    free_bytes = (gpus_per_instance * memory_gib * gpu_memory_utilization - weight_gib) * GIB
    return max(0, int(free_bytes // kv_bytes_per_token))


def kv_batch_cap(kv_cache_tokens: int, context_tokens: float) -> int:
    """Largest batch whose mean resident context fits in the KV cache (Eq. D5b)."""
    return int(kv_cache_tokens // context_tokens)


@dataclass(frozen=True)
class DecodeCapacity:
    """What one decode instance achieves for one workload under its TPOT target."""

    batch: int
    tpot_ms: float  # TPOT at that batch
    tokens_per_s: float  # output tokens/s = batch / TPOT (Eq. D6)
    limited_by: Literal["tpot", "kv_cache"]
    tpot_batch: int  # batch the TPOT target alone allows
    kv_batch: int | None  # batch the KV cache allows (None: no memory facts)


def best_batch(curve: DecodeCurve, limit: int) -> int:
    """The batch b in 1..limit of highest throughput b / TPOT(b) (Eq. D6); the largest on ties.

    TPOT is linear in b between measured batches, and b / (a + s b) is monotone on each piece, so
    the best batch is the limit or one of the measured batches below it."""
    candidates = [limit] + [int(b) for b in curve.batches if 1 <= b < limit]
    return max(candidates, key=lambda b: (b / curve.tpot_at(b), b))


def decode_capacity(
    curve: DecodeCurve, tpot_target_ms: float, kv_batch: int | None = None
) -> DecodeCapacity:
    """Per-instance decode capacity (Eqs. D4-D6). Raises UnreachableTargetError when the TPOT target
    is below the fastest TPOT measured or the KV cache cannot hold one request.

    The batch is the one of highest throughput b / TPOT(b) among 1..limit, the limit being the
    TPOT batch (Eq. D4) or the KV cap (Eq. D5b). That is the limit itself whenever TPOT grows no
    faster than in proportion to the batch (every measured table we know of, the paper's too);
    a table that grows faster would otherwise make a looser TPOT target give less throughput."""
    tpot_batch = curve.max_batch(tpot_target_ms)
    limit, limited_by = tpot_batch, "tpot"
    if kv_batch is not None and kv_batch < tpot_batch:
        if kv_batch < 1:
            raise UnreachableTargetError(
                "the KV cache cannot hold even one request at this context"
            )
        limit, limited_by = kv_batch, "kv_cache"
    batch = best_batch(curve, limit)
    tpot = curve.tpot_at(batch)
    return DecodeCapacity(
        batch=batch,
        tpot_ms=tpot,
        tokens_per_s=batch / (tpot / 1e3),
        limited_by=limited_by,  # type: ignore[arg-type]
        tpot_batch=tpot_batch,
        kv_batch=kv_batch,
    )


# --- Decode with a fluctuating batch (docs/method.md, section F) -------------------------------

#: The running batch may exceed its mean by this many standard deviations before requests queue
#: for a slot (Eq. F4).
ADMISSION_SIGMAS = 2.0


def batch_peakedness(arrival_scv: float, output_scv: float) -> float:
    """Variance over mean of the running batch (Eq. F1): z = 1 + (c_a^2 - 1) kappa with
    kappa = 1 / (1 + c_out^2) (1 for fixed output lengths, 1/2 for exponential ones)."""
    return max(0.0, 1.0 + (arrival_scv - 1.0) / (1.0 + output_scv))


#: Number of Gauss-Hermite points of the expectation over the running batch in Eq. F2.
BATCH_QUADRATURE_POINTS = 48


@functools.cache
def batch_quadrature() -> tuple[np.ndarray, np.ndarray]:
    """Gauss-Hermite nodes and weights (probabilists', weights normalised to sum 1) of Eq. F2;
    computed on first use so that importing pdopt does not import numpy.polynomial (start-up)."""
    from numpy.polynomial.hermite_e import hermegauss

    nodes, weights = hermegauss(BATCH_QUADRATURE_POINTS)
    return nodes, weights / weights.sum()


def request_tpot_ms(curve: DecodeCurve, mean_batch: float, peakedness: float) -> float:
    """Mean TPOT a request sees when the running batch B fluctuates with mean b and variance z b
    (Eq. F2): a request is in a step in proportion to the step's batch, so it sees
    E[B TPOT(B)] / E[B], here over B ~ Normal(b, z b) (clipped at 0) by 48-point Gauss-Hermite
    quadrature on the measured curve. Where TPOT is linear over the batch's spread this is
    TPOT(b) + z TPOT'(b); across a measured batch it follows the change of slope."""
    if peakedness <= 0.0 or mean_batch <= 0.0:
        return curve.tpot_at(mean_batch)
    nodes, weights = batch_quadrature()
    batches = np.maximum(mean_batch + math.sqrt(peakedness * mean_batch) * nodes, 0.0)
    weighted = weights * batches
    return float(weighted @ curve.tpot_at_many(batches) / weighted.sum())


@dataclass(frozen=True)
class SlotQueue:
    """What the slot wait of Eq. F4b needs besides the curve: the mean output length, its SCV and
    the SCV of one instance's arrivals (Eq. Q3)."""

    output_tokens: float
    output_scv: float
    arrival_scv: float


class SlotWait:
    """The slot wait of Eq. F4b for one curve, slot count and queue: what does not depend on the
    load (the step times TPOT(k) for k = 1..c and the cumulated log of TPOT(k) / k) computed once,
    since a capacity's bisection evaluates the wait at many loads."""

    def __init__(self, curve: DecodeCurve, slots: int, queue: SlotQueue) -> None:
        batches = np.arange(1.0, slots + 1.0)
        steps_ms = curve.tpot_at_many(batches)
        self.slots, self.queue = slots, queue
        self.full_step_ms = float(steps_ms[-1])
        self.counts = batches
        self.log_steps = np.cumsum(np.log(steps_ms / batches))  # sum_{j<=k} log(TPOT(j) / j)
        self.factor = ((queue.arrival_scv + queue.output_scv) / 2.0 * (1.0 + queue.output_scv)
                       / max(queue.output_tokens - 1.0, 1.0))

    def per_token_ms(self, mean_batch: float, batch_tpot_ms: float) -> float:
        """The wait per output token at mean batch b whose requests see T(b) = `batch_tpot_ms`
        (Eq. F2); inf when rho_c >= 1."""
        if mean_batch <= 0.0:
            return 0.0
        tokens = self.queue.output_tokens
        rate = mean_batch / (tokens * batch_tpot_ms)  # requests per ms
        full = rate * tokens * self.full_step_ms / self.slots  # rho_c
        if full >= 1.0:
            return math.inf
        # log pi_k / pi_0 = k log(lambda L_out) + sum_{j<=k} log(TPOT(j) / j), k = 0..c
        log_weights = self.counts * math.log(rate * tokens) + self.log_steps
        top = max(0.0, float(log_weights.max()))
        weights = np.exp(log_weights - top)
        at_limit = weights[-1] / (math.exp(-top) + weights[:-1].sum()
                                  + weights[-1] / (1.0 - full))  # pi_c
        wait_ms = at_limit * full / (1.0 - full) ** 2 / rate
        return float(wait_ms * self.factor)


def admission_wait_ms_per_token(curve: DecodeCurve, mean_batch: float, peakedness: float,
                                slots: int, queue: SlotQueue) -> float:
    """The slot wait a request's mean TPOT carries (Eq. F4b). The running batch as a birth-death
    process: requests arrive at lambda = b / (L_out T(b)) (b the mean batch at T(b) of Eq. F2),
    and with k of them running each finishes at rate 1 / (L_out TPOT(k)), above the `slots` c at
    c / (L_out TPOT(c)); pi_k = pi_0 prod_{j <= k} lambda L_out TPOT(j) / j, the tail geometric
    of ratio rho_c = lambda L_out TPOT(c) / c. Mean queue L_q = pi_c rho_c / (1 - rho_c)^2, wait
    L_q / lambda (exact for Poisson arrivals and exponential outputs), times (c_a^2 + c_out^2) / 2
    (Allen-Cunneen), spread over the request's L_out - 1 gaps with E[1 / L_out] ~ (1 + c_out^2) /
    L_out. inf when rho_c >= 1."""
    if mean_batch <= 0.0:
        return 0.0
    return SlotWait(curve, slots, queue).per_token_ms(
        mean_batch, request_tpot_ms(curve, mean_batch, peakedness))


def admitted_tpot_ms(curve: DecodeCurve, mean_batch: float, peakedness: float, slots: int,
                     queue: SlotQueue, wait: SlotWait | None = None) -> float:
    """The mean TPOT of Eq. F2 plus the slot wait of Eq. F4b (`wait`: the curve's, computed
    once by a caller evaluating many loads)."""
    batch_tpot = request_tpot_ms(curve, mean_batch, peakedness)
    wait = wait or SlotWait(curve, slots, queue)
    return batch_tpot + wait.per_token_ms(mean_batch, batch_tpot)


#: Regula falsi steps before _largest_within falls back to bisection (it converges in 10-20).
ILLINOIS_STEPS = 60


def _largest_within(f: Callable[[float], float], target: float, lo: float, f_lo: float,
                    hi: float, f_hi: float) -> float:
    """The largest x in [lo, hi] with f(x) <= target, for f rising with f(lo) <= target < f(hi):
    regula falsi with the Illinois step (an end that stays twice has its excess halved), until
    the bracket is within 1e-9 of hi or f(lo) within 1e-10 of the target; 15 evaluations on
    average where bisection needed 30 (the 50-model coupled fleet's decode tables). Returns the
    bracket's low end (within the target)."""
    g_lo, g_hi = f_lo - target, f_hi - target
    stale = 0  # the end that stayed last time: -1 low, +1 high
    for step in range(4 * ILLINOIS_STEPS):
        if hi - lo <= 1e-9 * hi or -g_lo <= 1e-10 * abs(target):
            break
        mid = lo - g_lo * (hi - lo) / (g_hi - g_lo) if step < ILLINOIS_STEPS else (lo + hi) / 2.0
        if not lo < mid < hi:
            mid = (lo + hi) / 2.0
        g_mid = f(mid) - target
        if g_mid <= 0.0:
            lo, g_lo = mid, g_mid
            if stale == 1:
                g_hi /= 2.0
            stale = 1
        else:
            hi, g_hi = mid, g_mid
            if stale == -1:
                g_lo /= 2.0
            stale = -1
    return lo


def fluctuating_decode_capacity(curve: DecodeCurve, tpot_target_ms: float, peakedness: float,
                                batch_cap: float | None, queue: SlotQueue | None = None
                                ) -> DecodeCapacity:
    """Per-instance decode capacity when the batch fluctuates (Eqs. F2-F4b): the mean batch b of
    highest throughput b / T(b), T(b) = request_tpot_ms (Little's law with the TPOT requests see),
    among those within the target. The slot or KV limit c = min(largest measured batch,
    batch_cap) makes requests queue for admission: with `queue` (output lengths and arrival SCV)
    the slot wait of Eq. F4b is added to T(b) in the target; without it the mean batch keeps
    ADMISSION_SIGMAS sqrt(z b) below c (Eq. F4). Raises UnreachableTargetError when no batch
    qualifies."""
    if tpot_target_ms < curve.tpot_ms[0]:
        raise UnreachableTargetError(
            f"TPOT target {tpot_target_ms:g} ms is below the fastest TPOT measured "
            f"({curve.tpot_ms[0]:g} ms at batch {curve.batches[0]:g})"
        )
    top = math.inf if curve.extend_linearly else float(curve.batches[-1])
    if batch_cap is not None:
        top = min(top, batch_cap)
    slots = math.floor(top) if math.isfinite(top) else 0

    wait = SlotWait(curve, slots, queue) if queue is not None and slots else None

    def tpot(b: float) -> float:  # what the target bounds: T(b), plus the slot wait (F4b)
        if wait is None or queue is None:
            return request_tpot_ms(curve, b, peakedness)
        return admitted_tpot_ms(curve, b, peakedness, slots, queue, wait)

    if queue is not None and slots:
        top = float(slots)  # F4b: the wait grows without bound as a_c approaches c
    elif math.isfinite(top):  # F4: b + k sqrt(z b) <= top, solved for sqrt(b)
        k = ADMISSION_SIGMAS * math.sqrt(peakedness)
        root = (-k + math.sqrt(k * k + 4.0 * top)) / 2.0
        top = root * root
    if top < 1.0:
        raise UnreachableTargetError(
            "the batch cannot average one request with room for its fluctuation (KV cache or "
            "largest measured batch)"
        )
    # T(b) rises with b: on each measured segment (and up to the admission limit) the largest b
    # with T(b) <= target, by bisection; the one of highest throughput b / T(b) wins (Eq. F3).
    edges = sorted({1.0, *[b for b in curve.batches if 1.0 < b < top], top})
    candidates: list[float] = []
    for lo, hi in zip(edges, edges[1:] + [edges[-1]], strict=True):
        at_lo = tpot(lo)
        if at_lo > tpot_target_ms:
            continue
        at_hi = tpot(hi)
        if at_hi <= tpot_target_ms:
            candidates.append(hi)
            continue
        candidates.append(_largest_within(tpot, tpot_target_ms, lo, at_lo, hi, at_hi))
    if not candidates:
        raise UnreachableTargetError(
            f"TPOT target {tpot_target_ms:g} ms is below the TPOT a fluctuating batch of one "
            f"request sees ({tpot(1.0):.3g} ms)"
        )
    batch = max(candidates, key=lambda b: (b / request_tpot_ms(curve, b, peakedness), b))
    batch_tpot = request_tpot_ms(curve, batch, peakedness)
    if queue is not None and slots:  # F4b: the KV cache's slots cost over 1 % of the TPOT
        kv_slots = batch_cap is not None and slots == math.floor(batch_cap)
        limited = "kv_cache" if kv_slots and tpot(batch) > 1.01 * batch_tpot else "tpot"
    else:
        limited = "tpot" if batch < top - 1e-9 or batch_cap is None else "kv_cache"
    return DecodeCapacity(
        batch=int(math.floor(batch)), tpot_ms=batch_tpot, tokens_per_s=batch / (batch_tpot / 1e3),
        limited_by=limited,  # type: ignore[arg-type]
        tpot_batch=int(math.floor(batch)), kv_batch=None if batch_cap is None else int(batch_cap),
    )
