"""Small random fleet scenarios and an independent brute-force optimum for them.

The brute force enumerates every vector of instance counts in increasing cost and, for each, every
assignment of workloads to pools; it checks each assignment with a plain LP (scipy's linprog) in
which every assigned class's SLO constraint holds unconditionally. It shares only the per-instance
coefficients (the foundation's formulas) with the optimizer, not its Pyomo model or its big-M
gating of mixed pools.
"""

from __future__ import annotations

import itertools
import random
from typing import Any

import numpy as np
from scipy.optimize import linprog

from pdopt.optimize.data import FleetData, build_fleet_data
from pdopt.schema import Scenario

GPU_TYPES = {"GA": 1.0, "GB": 1.7, "GC": 2.9}  # cost per GPU-hour


def random_fleet(seed: int, *, workloads: int = 2, gpus: int = 2, cross_links: bool = False,
                 inventory: bool = False, budget: float | None = None) -> dict[str, Any]:
    """A one-model scenario with a prefill and a decode type per GPU type (1 or 2 GPUs each)."""
    rnd = random.Random(seed)
    names = list(GPU_TYPES)[:gpus]
    data: dict[str, Any] = {
        "name": f"random-{seed}",
        "gpus": {g: {"cost_per_hour": GPU_TYPES[g] * rnd.uniform(0.8, 1.2)} for g in names},
        "instances": [],
        "workloads": [],
        "models": {"m": {"kv_bytes_per_token": 160_000}},
    }
    for k, g in enumerate(names):
        speed = 1.0 + k * rnd.uniform(0.3, 1.0)
        size = rnd.choice([1, 2])
        data["instances"].append({
            "name": f"pre-{g}", "model": "m", "role": "prefill", "gpu": g,
            "gpus_per_instance": size, "prefill_tokens_per_s": round(9000 * speed * size),
        })
        base = 14.0 / speed
        data["instances"].append({
            "name": f"dec-{g}", "model": "m", "role": "decode", "gpu": g,
            "gpus_per_instance": size,
            "tpot_ms_by_batch": {8: round(base, 2), 32: round(base * 1.5, 2),
                                 64: round(base * 2.2, 2), 128: round(base * 3.6, 2)},
        })
    for j in range(workloads):
        data["workloads"].append({
            "name": f"w{j}", "model": "m",
            "requests_per_s": round(rnd.uniform(1, 12), 2),
            "input_tokens": rnd.choice([512, 2048, 4096]),
            "output_tokens": rnd.choice([128, 256, 512]),
            "slo": {"ttft_ms": rnd.choice([800, 1500, 3000]),
                    "tpot_ms": rnd.choice([25.0, 35.0, 50.0])},
            "ttft_overhead_ms": 20,
        })
    if cross_links:
        data["kv_transfer"] = {"default_gbit_per_s": rnd.choice([100, 400])}
    if inventory:
        for g in names:
            data["gpus"][g]["count"] = rnd.randint(2, 8)
    if budget is not None:
        data["budget_per_hour"] = budget
    return data


def _assignment_feasible(data: FleetData, n: dict[str, int],
                         allowed: dict[str, frozenset[Any]]) -> bool:
    """LP: can every demand be routed using only `allowed` workloads per pool, each allowed
    class's SLO constraint holding at the pool's counts?"""
    routes = [rt for rt in data.prefill_routes
              if (rt.workload, rt.decode_gpu) in allowed[rt.pool]]
    dec = [(w, d) for w, d in data.decode_routes if w in allowed[d]]  # type: ignore[operator]
    nv = len(routes) + len(dec)
    if nv == 0:
        return False
    a_ub: list[np.ndarray] = []
    b_ub: list[float] = []
    for p, ws in allowed.items():
        pool = data.pools[p]
        if not ws:
            continue
        ws = frozenset(w for w in ws if isinstance(w, str)) if pool.role == "decode" else ws
        if pool.role == "prefill":
            idx = [k for k, rt in enumerate(routes) if rt.pool == p]
            for rt_b in {rt.waiting_budget_s for rt in routes if rt.pool == p}:
                row = np.zeros(nv)
                for k in idx:
                    w = routes[k].workload
                    row[k] = data.second_moment_s2[(w, p)] + 2 * rt_b * data.service_s[(w, p)]
                a_ub.append(row)
                b_ub.append(2 * rt_b * n[p])
        else:
            targets = {data.workload(w).slo.tpot_ms for w in ws}
            for target in targets:
                t = data.decode_levels[p].index(target)
                row = np.zeros(nv)
                for k, (w, d) in enumerate(dec):
                    if d != p:
                        continue
                    cap = data.decode_tokens_per_s[(w, d, t)]
                    if cap is None:
                        return False  # these two classes cannot share this pool
                    row[len(routes) + k] = data.workload(w).output_tokens / cap
                a_ub.append(row)
                b_ub.append(n[p])
    a_eq, b_eq = [], []
    for w in data.scenario.workloads:
        row = np.zeros(nv)
        for k, rt in enumerate(routes):
            if rt.workload == w.name:
                row[k] = 1
        a_eq.append(row)
        b_eq.append(data.demand_requests_per_s[w.name])
        for g in data.scenario.gpus:
            row = np.zeros(nv)
            for k, rt in enumerate(routes):
                if rt.workload == w.name and rt.decode_gpu == g:
                    row[k] = 1
            for k, (wn, d) in enumerate(dec):
                if wn == w.name and data.pools[d].gpu == g:
                    row[len(routes) + k] = -1
            if row.any():
                a_eq.append(row)
                b_eq.append(0.0)
    res = linprog(np.zeros(nv), A_ub=np.array(a_ub) if a_ub else None,
                  b_ub=np.array(b_ub) if b_ub else None, A_eq=np.array(a_eq),
                  b_eq=np.array(b_eq), bounds=[(0, None)] * nv, method="highs")
    return res.status == 0


def counts_feasible(data: FleetData, n: dict[str, int]) -> bool:
    """Is there any assignment of workloads to pools that makes these counts serve everything?"""
    options = []
    pools = sorted(data.pools)
    for p in pools:
        # prefill: (workload, decode GPU) classes, each with its own budget; decode: workloads
        can = sorted({(rt.workload, rt.decode_gpu) for rt in data.prefill_routes if rt.pool == p}
                     | {w for w, d in data.decode_routes if d == p}, key=str)
        if n[p] == 0:
            options.append([frozenset()])
        else:
            options.append([frozenset(c) for r in range(len(can) + 1)
                            for c in itertools.combinations(can, r)])
    return any(_assignment_feasible(data, n, dict(zip(pools, combo, strict=True)))
               for combo in itertools.product(*options))


def brute_force_cost(scenario: Scenario) -> float | None:
    """Cheapest cost over all count vectors (None: none feasible). Each pool ranges up to the
    count that would carry all its possible demand at its tightest SLO (docs/method.md, Eq. O9),
    which no optimal plan exceeds."""
    data = build_fleet_data(scenario)
    pools = sorted(data.pools)
    vectors = []
    ranges = [range(data.pools[p].upper_bound + 1) for p in pools]
    for combo in itertools.product(*ranges):
        n = dict(zip(pools, combo, strict=True))
        gpus: dict[str, int] = {}
        for p in pools:
            gpus[data.pools[p].gpu] = gpus.get(data.pools[p].gpu, 0) + n[p] * data.pools[
                p].gpus_per_instance
        if any(spec.count is not None and gpus.get(g, 0) > spec.count
               for g, spec in scenario.gpus.items()):
            continue
        cost = sum(n[p] * data.pools[p].cost_per_hour for p in pools)
        if scenario.budget_per_hour is not None and cost > scenario.budget_per_hour + 1e-9:
            continue
        vectors.append((cost, sum(gpus.values()), combo))
    vectors.sort()
    for cost, _gpus, combo in vectors:
        n = dict(zip(pools, combo, strict=True))
        if not _necessary(data, n):
            continue
        if counts_feasible(data, n):
            return cost
    return None


def _necessary(data: FleetData, n: dict[str, int]) -> bool:
    """Cheap necessary condition: each workload alone fits in the pools' capacity for it."""
    for w in data.scenario.workloads:
        prefill = 0.0
        for p in data.pools.values():
            budgets = [rt.waiting_budget_s for rt in data.prefill_routes
                       if rt.pool == p.name and rt.workload == w.name]
            if budgets and n[p.name]:
                b = max(budgets)
                s, m2 = data.service_s[(w.name, p.name)], data.second_moment_s2[(w.name, p.name)]
                prefill += n[p.name] * 2 * b / (m2 + 2 * b * s)
        decode = 0.0
        for wn, d in data.decode_routes:
            if wn == w.name and n[d]:
                cap = data.decode_tokens_per_s[(w.name, d, data.decode_level_of(w.name, d))]
                decode += n[d] * (cap or 0.0) / w.output_tokens
        demand = data.demand_requests_per_s[w.name]
        if prefill < demand * (1 - 1e-9) or decode < demand * (1 - 1e-9):
            return False
    return True
