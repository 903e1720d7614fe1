"""Read a solved model back into a `Plan`, with the predicted TTFT and TPOT at the plan's load
(docs/method.md, O.1)."""

from __future__ import annotations

import math
from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any

from pdopt.capacity import decode_context_tokens, instance_decode_curve, instance_kv_cache_tokens
from pdopt.optimize import data as auto
from pdopt.optimize.balance import balanced_flows
from pdopt.optimize.data import FleetData
from pdopt.plan import (
    Flow,
    Objective,
    Plan,
    PoolGroup,
    PoolPlan,
    SolverReport,
    Status,
    WorkloadPlan,
)
from pdopt.queueing import percentile_factor, ttft_mixture_quantile_s

# Flows below this are solver noise (HiGHS's primal feasibility tolerance is 1e-7).
ZERO_RATE = 1e-7


@dataclass
class Solution:
    """The solved values, with noise removed: group counts and the three kinds of flow."""

    n: dict[tuple[str, int], int]
    r: dict[tuple[str, str, str], float]  # (w, prefill pool, decode gpu)
    q: dict[tuple[str, str, int], float]  # (w, prefill pool, level)
    v: dict[tuple[str, str, int], float]  # (w, decode pool, level)
    pool_counts: dict[str, int] = field(default_factory=dict)

    def decode_rates(self) -> dict[tuple[str, str], float]:
        out: dict[tuple[str, str], float] = defaultdict(float)
        for (w, d, _t), rate in self.v.items():
            out[(w, d)] += rate
        return dict(out)


def read_solution(m: Any) -> Solution:
    """The solved values of a model (either backend, O.9)."""
    def positive(var: Any) -> dict[Any, float]:
        return {k: val for k in var for val in [var[k].value] if val > ZERO_RATE}

    n = {k: int(round(m.n[k].value)) for k in m.n}
    sol = Solution(n=n, r=positive(m.r), q=positive(m.q), v=positive(m.v))
    for (p, _lvl), count in n.items():
        sol.pool_counts[p] = sol.pool_counts.get(p, 0) + count
    return sol


@dataclass(frozen=True)
class GroupPoint:
    """Predicted operating point of one SLO group."""

    utilization: float
    wait_s: float = 0.0  # prefill: mean wait Wq
    budget_s: float | None = None  # prefill: the mean wait its capacity row allows at its mix
    batch: float = 0.0  # decode: resident requests per instance
    tpot_ms: float = 0.0  # decode: TPOT at that batch
    context_tokens: float = 0.0  # decode: output-token-weighted mean context


def prefill_points(data: FleetData, sol: Solution) -> dict[tuple[str, int], GroupPoint]:
    """Per prefill group: P-K wait with its classes, each instance taking 1/n of the group's load
    (Eq. P3), load over capacity (Eq. O5 or the group's line, O13d) and the mean wait its row
    allows at the group's mix (B_l; on a line, its wait at the mix's E[S^2] / E[S])."""
    members: dict[tuple[str, int], dict[str, float]] = defaultdict(dict)
    for (w, p, lvl), rate in sol.q.items():
        members[(p, lvl)][w] = rate
    points = {}
    for (p, lvl), by_w in members.items():
        count = max(sol.n.get((p, lvl), 0), 1)
        rho = sum(rate / count * data.service_s[(w, p)] for w, rate in by_w.items())
        num = sum(rate / count * data.second_moment_s2[(w, p)] for w, rate in by_w.items())
        wait = math.inf if rho >= 1 else num / (2 * (1 - rho))
        a, c = data.prefill_row(p, lvl)
        load = sum(rate * (data.second_moment_s2[(w, p)] + a * data.service_s[(w, p)])
                   for w, rate in by_w.items())
        utilization = load / (c * count)
        line = data.prefill_lines.get((p, lvl))
        budget = line.wait_s(num / rho) if line is not None and rho > 0 \
            else data.prefill_levels[p][lvl]
        if p in data.prefill_routing:  # queue auto: the routing's model (Eqs. Q5-Q7, O14)
            wait = auto.group_wait(data, p, by_w, count)[0]
            if p in data.table_counts:
                utilization = sum(rate / auto.table_rate(data, w, p, lvl, count)
                                  for w, rate in by_w.items()) / count
        points[(p, lvl)] = GroupPoint(utilization=utilization, wait_s=wait, budget_s=budget)
    return points


def decode_points(data: FleetData, sol: Solution) -> dict[tuple[str, int], GroupPoint]:
    """Per decode group: the batch b with b / TPOT(b) = the per-instance output rate (Little's
    law on the measured curve at the output-token-weighted context), and load over capacity
    (Eq. O6)."""
    members: dict[tuple[str, int], dict[str, float]] = defaultdict(dict)
    for (w, d, t), rate in sol.v.items():
        members[(d, t)][w] = rate
    points = {}
    for (d, t), by_w in members.items():
        count = max(sol.n.get((d, t), 0), 1)
        out = {w: rate * data.workload(w).output_tokens for w, rate in by_w.items()}
        total = sum(out.values())
        contexts = {w: decode_context_tokens(data.workload(w).input_tokens,
                                             data.workload(w).output_tokens) for w in by_w}
        # a weighted mean of contexts each inside the measured range is inside it too; the clamp
        # only removes floating-point noise
        context = min(max(sum(out[w] * contexts[w] for w in by_w) / total,
                          min(contexts.values())), max(contexts.values()))
        curve = instance_decode_curve(data.scenario.instance(d), context)
        batch = curve.batch_at_throughput(total / count)
        tpot = curve.tpot_at(batch)
        load = 0.0
        for w in by_w:
            capacity = data.decode_tokens_per_s[(w, d, t)]
            assert capacity is not None  # a decode route exists only where it has a capacity
            load += out[w] / capacity
        if d in data.decode_routing:  # queue auto: fluctuating batch (Eqs. F1, F2, O14)
            batch, tpot = auto.fluctuating_operating_point(data, d, curve, list(by_w),
                                                           total / count, count)
            if d in data.table_counts:
                load = sum(rate / auto.table_rate(data, w, d, t, count)
                           for w, rate in by_w.items())
        points[(d, t)] = GroupPoint(utilization=load / count, batch=batch,
                                    tpot_ms=tpot, context_tokens=context)
    return points


def pool_plans(data: FleetData, sol: Solution, pre: dict[tuple[str, int], GroupPoint],
               dec: dict[tuple[str, int], GroupPoint]) -> list[PoolPlan]:
    shares: dict[tuple[str, int], dict[str, float]] = defaultdict(dict)
    for (w, p, lvl), rate in list(sol.q.items()) + list(sol.v.items()):
        shares[(p, lvl)][w] = rate
    plans = []
    for name in sorted(data.pools):
        pool = data.pools[name]
        count = sol.pool_counts.get(name, 0)
        if count == 0:
            continue
        points = pre if pool.role == "prefill" else dec
        kv_tokens = (instance_kv_cache_tokens(data.scenario, data.scenario.instance(name))
                     if pool.role == "decode" else None)
        groups: list[PoolGroup] = []
        routed: defaultdict[str, float] = defaultdict(float)
        for lvl, level in enumerate(data.levels(name)):
            n = sol.n.get((name, lvl), 0)
            if n == 0:
                continue
            point = points.get((name, lvl), GroupPoint(utilization=0.0))
            by_w = dict(sorted(shares.get((name, lvl), {}).items()))
            for w, rate in by_w.items():
                routed[w] += rate
            if pool.role == "prefill":
                group = PoolGroup(lvl, n, point.utilization, by_w, ttft_waiting_budget_ms=1e3 * (
                    level if point.budget_s is None else point.budget_s))
            else:
                group = PoolGroup(lvl, n, point.utilization, by_w, tpot_target_ms=level,
                                  kv_utilization=(point.batch * point.context_tokens / kv_tokens
                                                  if kv_tokens else None))
            groups.append(group)
        kv = [g.kv_utilization for g in groups if g.kv_utilization is not None]
        plans.append(PoolPlan(
            instance=name, model=pool.model, role=pool.role,  # type: ignore[arg-type]
            gpu=pool.gpu, gpus_per_instance=pool.gpus_per_instance, count=count,
            cost_per_hour=count * pool.cost_per_hour,
            utilization=max(g.utilization for g in groups),
            routed_requests_per_s=dict(sorted(routed.items())),
            kv_utilization=max(kv) if kv else None,
            groups=groups,
            queue_model=data.queue_models.get(name),
        ))
    return plans


def _prefill_assignment(data: FleetData, sol: Solution
                        ) -> dict[tuple[str, str, str, int], float]:
    """Which route's traffic sits in which group: per (workload, pool), routes by budget ascending
    fill groups ascending (the nested admission of Eq. O7 guarantees this fits)."""
    out: dict[tuple[str, str, str, int], float] = {}
    by_wp: dict[tuple[str, str], list[Any]] = defaultdict(list)
    for rt in data.prefill_routes:
        rate = sol.r.get((rt.workload, rt.pool, rt.decode_gpu), 0.0)
        if rate > 0:
            by_wp[(rt.workload, rt.pool)].append((rt.level, rt.decode_gpu, rate))
    for (w, p), routes in by_wp.items():
        groups = sorted((lvl, rate) for (wn, pn, lvl), rate in sol.q.items() if (wn, pn) == (w, p))
        k, left = 0, [rate for _, rate in groups]
        for _level, g, rate in sorted(routes):
            while rate > ZERO_RATE and k < len(groups):
                take = min(rate, left[k])
                if take > 0:
                    key = (w, p, g, groups[k][0])
                    out[key] = out.get(key, 0.0) + take
                rate -= take
                left[k] -= take
                if left[k] <= ZERO_RATE:
                    k += 1
    return out


def workload_plans(data: FleetData, sol: Solution, pre: dict[tuple[str, int], GroupPoint],
                   dec: dict[tuple[str, int], GroupPoint]) -> list[WorkloadPlan]:
    transfer = {(rt.workload, rt.pool, rt.decode_gpu): rt.kv_transfer_ms
                for rt in data.prefill_routes}
    assignment = _prefill_assignment(data, sol)
    plans = []
    for w in data.scenario.workloads:
        k = percentile_factor(w.slo.ttft_percentile)
        ttft_num = ttft_den = 0.0
        tail_parts = []  # a percentile over queue-auto groups: the mixture's quantile (Q8d)
        for (wn, p, g, lvl), rate in assignment.items():
            if wn == w.name and p in data.prefill_routing:  # queue auto (Eqs. Q5-Q8)
                rates = {x: r for (x, pn, lv), r in sol.q.items() if (pn, lv) == (p, lvl)}
                if w.slo.ttft_percentile is None:  # the mean TTFT reads the mean wait alone
                    ttft_num += rate * auto.predicted_ttft_ms(data, wn, p, pre[(p, lvl)].wait_s,
                                                              0.0, transfer[(wn, p, g)])
                    ttft_den += rate
                    continue
                # the tail the sizing reads (Q8 with Q8b-Q8c under round-robin)
                wait_s, prob = auto.group_percentile_wait(data, p, rates,
                                                          max(sol.n.get((p, lvl), 0), 1))
                tail_parts.append((rate, wait_s, prob, auto.workload_service(data, wn, p),
                                   (w.ttft_overhead_ms + transfer[(wn, p, g)]) / 1e3))
            elif wn == w.name:
                ttft_ms = (w.ttft_overhead_ms + transfer[(wn, p, g)]
                           + 1e3 * k * (pre[(p, lvl)].wait_s + data.service_s[(wn, p)]))
                ttft_num += rate * ttft_ms
                ttft_den += rate
        if tail_parts and w.slo.ttft_percentile is not None:
            ttft_num += 1e3 * ttft_mixture_quantile_s(tail_parts, w.slo.ttft_percentile) * sum(
                part[0] for part in tail_parts)
            ttft_den += sum(part[0] for part in tail_parts)
        tpot_num = tpot_den = 0.0
        for (wn, d, t), rate in sol.v.items():
            if wn == w.name:
                tpot_num += rate * dec[(d, t)].tpot_ms
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


def flows(data: FleetData, sol: Solution) -> list[Flow]:
    """Pair prefill and decode routes of each (workload, decode GPU type) proportionally."""
    transfer = {(rt.workload, rt.pool, rt.decode_gpu): rt.kv_transfer_ms
                for rt in data.prefill_routes}
    decode = sol.decode_rates()
    out = []
    for (w, p, g), rate in sorted(sol.r.items()):
        on_g = {d: v for (wn, d), v in decode.items() if wn == w and data.pools[d].gpu == g}
        total = sum(on_g.values())
        for d, v in sorted(on_g.items()):
            share = rate * v / total
            if share > ZERO_RATE:
                out.append(Flow(w, p, d, share, transfer[(w, p, g)]))
    return out


def build_plan(data: FleetData, model: Any, objective: Objective,
               report: SolverReport) -> Plan:
    """The plan of a solved model, with its predictions (O.1) and the solver's report."""
    sol = read_solution(model)
    # split pools: the slack spread over the groups, counts fixed (method.md Eq. O20)
    sol.q, sol.v = balanced_flows(data, sol.n, sol.r, sol.q, sol.v)
    pre, dec = prefill_points(data, sol), decode_points(data, sol)
    return Plan.of_pools(
        scenario=data.scenario.name, status=report.status, objective=objective,
        pools=pool_plans(data, sol, pre, dec), workloads=workload_plans(data, sol, pre, dec),
        flows=flows(data, sol), solver=report, messages=limit_messages(report))


def limit_messages(report: SolverReport) -> list[str]:
    """What a plan that is not proven optimal says about itself."""
    if report.status != Status.FEASIBLE:
        return []
    gap = f"{100 * report.mip_gap:.2f}%" if report.mip_gap is not None else "unknown"
    why = ("time limit reached" if report.time_limit_hit
           else f"solver stopped ({report.termination})")
    return [f"{why}: best plan found, gap to the bound {gap}"]
