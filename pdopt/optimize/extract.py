"""Read a solved model back into a `Plan`, with the predicted TTFT and TPOT at the plan's load."""

from __future__ import annotations

import math
from collections import defaultdict

import pyomo.environ as pyo

from pdopt.capacity import decode_context_tokens, instance_decode_curve, instance_kv_cache_tokens
from pdopt.optimize.data import FleetData
from pdopt.plan import Flow, PoolPlan, WorkloadPlan
from pdopt.queueing import percentile_factor

# Flows and counts below this are solver noise (HiGHS's primal feasibility tolerance is 1e-7).
ZERO_RATE = 1e-7


def counts(m: pyo.ConcreteModel) -> dict[str, int]:
    return {p: int(round(pyo.value(m.n[p]))) for p in m.POOLS}


def routes(m: pyo.ConcreteModel) -> tuple[dict[tuple[str, str, str], float],
                                           dict[tuple[str, str], float]]:
    r = {k: max(0.0, pyo.value(m.r[k])) for k in m.PREFILL_ROUTES}
    s = {k: max(0.0, pyo.value(m.s[k])) for k in m.DECODE_ROUTES}
    return ({k: v for k, v in r.items() if v > ZERO_RATE}, {k: v for k, v in s.items()
                                                             if v > ZERO_RATE})


def prefill_waits_s(data: FleetData, n: dict[str, int],
                    r: dict[tuple[str, str, str], float]) -> dict[str, float]:
    """Mean FCFS wait per prefill pool with its mixed classes, each instance taking 1/n of the
    pool's load (Eq. P3)."""
    per_pool: dict[str, dict[str, float]] = defaultdict(lambda: defaultdict(float))
    for (w, p, _g), rate in r.items():
        per_pool[p][w] += rate
    waits = {}
    for p, by_w in per_pool.items():
        count = max(n[p], 1)
        rho = sum(rate / count * data.service_s[(w, p)] for w, rate in by_w.items())
        num = sum(rate / count * data.second_moment_s2[(w, p)] for w, rate in by_w.items())
        waits[p] = math.inf if rho >= 1 else num / (2 * (1 - rho))
    return waits


def decode_operating_points(data: FleetData, n: dict[str, int], s: dict[tuple[str, str], float]
                            ) -> dict[str, tuple[float, float, float]]:
    """Per decode pool: (batch, TPOT ms, mean context) at which each instance runs to serve its
    share of output tokens (Little's law on the measured curve at the token-weighted context)."""
    per_pool: dict[str, dict[str, float]] = defaultdict(dict)
    for (w, d), rate in s.items():
        per_pool[d][w] = rate
    points = {}
    for d, by_w in per_pool.items():
        out = {w: rate * data.workload(w).output_tokens for w, rate in by_w.items()}
        total = sum(out.values())
        context = sum(
            out[w] * decode_context_tokens(data.workload(w).input_tokens,
                                           data.workload(w).output_tokens)
            for w in by_w) / total
        curve = instance_decode_curve(data.scenario.instance(d), context)
        batch = curve.batch_at_throughput(total / max(n[d], 1))
        points[d] = (batch, curve.tpot_at(batch), context)
    return points


def pool_plans(data: FleetData, n: dict[str, int], r: dict[tuple[str, str, str], float],
               s: dict[tuple[str, str], float], points: dict[str, tuple[float, float, float]]
               ) -> list[PoolPlan]:
    routed: dict[str, dict[str, float]] = defaultdict(lambda: defaultdict(float))
    for (w, p, _g), rate in r.items():
        routed[p][w] += rate
    for (w, d), rate in s.items():
        routed[d][w] += rate
    plans = []
    for name in sorted(data.pools):
        pool = data.pools[name]
        if n[name] == 0:
            continue
        by_w = dict(sorted(routed[name].items()))
        kv_util = None
        if pool.role == "prefill":
            util = _prefill_utilization(data, name, n[name], r)
        else:
            util = _decode_utilization(data, name, n[name], by_w)
            kv_tokens = instance_kv_cache_tokens(data.scenario, data.scenario.instance(name))
            if kv_tokens and name in points:
                batch, _tpot, context = points[name]
                kv_util = batch * context / kv_tokens
        plans.append(PoolPlan(
            instance=name, model=pool.model, role=pool.role,  # type: ignore[arg-type]
            gpu=pool.gpu, gpus_per_instance=pool.gpus_per_instance, count=n[name],
            cost_per_hour=n[name] * pool.cost_per_hour, utilization=util,
            routed_requests_per_s=by_w, kv_utilization=kv_util,
        ))
    return plans


def _prefill_utilization(data: FleetData, p: str, count: int,
                         r: dict[tuple[str, str, str], float]) -> float:
    """Load / capacity at the tightest budget routed (left side over right side of Eq. O5)."""
    routed = [(rt, r[(rt.workload, rt.pool, rt.decode_gpu)]) for rt in data.prefill_routes
              if rt.pool == p and (rt.workload, rt.pool, rt.decode_gpu) in r]
    if not routed:
        return 0.0
    budget = min(rt.waiting_budget_s for rt, _ in routed)
    lhs = sum(rate * (data.second_moment_s2[(rt.workload, p)]
                      + 2 * budget * data.service_s[(rt.workload, p)]) for rt, rate in routed)
    return lhs / (2 * budget * count)


def _decode_utilization(data: FleetData, d: str, count: int, by_w: dict[str, float]) -> float:
    """Load / capacity at the strictest TPOT routed (left side over right side of Eq. O6)."""
    if not by_w:
        return 0.0
    t = min(data.decode_level_of(w, d) for w in by_w)
    load = 0.0
    for w, rate in by_w.items():
        cap = data.decode_tokens_per_s[(w, d, t)]
        load += math.inf if cap is None else rate * data.workload(w).output_tokens / cap
    return load / count


def workload_plans(data: FleetData, n: dict[str, int], r: dict[tuple[str, str, str], float],
                   s: dict[tuple[str, str], float],
                   points: dict[str, tuple[float, float, float]]) -> list[WorkloadPlan]:
    waits = prefill_waits_s(data, n, r)
    transfer = {(rt.workload, rt.pool, rt.decode_gpu): rt.kv_transfer_ms
                for rt in data.prefill_routes}
    plans = []
    for w in data.scenario.workloads:
        k = percentile_factor(w.slo.ttft_percentile)
        ttft_num = ttft_den = 0.0
        for (wn, p, g), rate in r.items():
            if wn != w.name:
                continue
            ttft_ms = (w.ttft_overhead_ms + transfer[(wn, p, g)]
                       + 1e3 * k * (waits[p] + data.service_s[(wn, p)]))
            ttft_num += rate * ttft_ms
            ttft_den += rate
        tpot_num = tpot_den = 0.0
        for (wn, d), rate in s.items():
            if wn == w.name:
                tpot_num += rate * points[d][1]
                tpot_den += rate
        plans.append(WorkloadPlan(
            workload=w.name, model=w.model,
            demand_requests_per_s=data.demand_requests_per_s[w.name],
            ttft_target_ms=w.slo.ttft_ms, ttft_percentile=w.slo.ttft_percentile,
            tpot_target_ms=w.slo.tpot_ms,
            expected_ttft_ms=ttft_num / ttft_den if ttft_den else math.nan,
            expected_tpot_ms=tpot_num / tpot_den if tpot_den else math.nan,
        ))
    return plans


def flows(data: FleetData, r: dict[tuple[str, str, str], float],
          s: dict[tuple[str, str], float]) -> list[Flow]:
    """Pair prefill and decode routes of each (workload, decode GPU type) proportionally."""
    transfer = {(rt.workload, rt.pool, rt.decode_gpu): rt.kv_transfer_ms
                for rt in data.prefill_routes}
    out = []
    for (w, p, g), rate in sorted(r.items()):
        decode = {d: v for (wn, d), v in s.items() if wn == w and data.pools[d].gpu == g}
        total = sum(decode.values())
        for d, v in sorted(decode.items()):
            share = rate * v / total
            if share > ZERO_RATE:
                out.append(Flow(w, p, d, share, transfer[(w, p, g)]))
    return out
