"""Small random fleet scenarios and an independent brute-force optimum for them.

A pool may be split into SLO groups (docs/method.md, O7): group (p, B) of a prefill pool keeps a
waiting budget B and admits every class (workload, decode GPU type) whose own budget on p is at
least B; group (d, tau) of a decode pool runs within TPOT tau and admits every workload whose target
is at least tau. The brute force enumerates every vector of group counts (each pool's total up to
the bound of Eq. O9) in increasing cost and checks each with a plain LP (scipy's linprog) that
assigns classes to admitting groups directly. It shares only the per-instance coefficients (the
foundation's formulas) with the optimizer, not its Pyomo model, its routes or its nested-admission
constraints.
"""

from __future__ import annotations

import copy
import itertools
import random
from typing import Any

import numpy as np
from scipy.optimize import linprog

from pdopt.optimize.data import FleetData, build_fleet_data
from pdopt.scenario.schema import Scenario

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
        # long-run sizing: the brute force reads the count-1 capacities and these cases test
        # the optimizer, not the window margins of method.md section W
        "options": {"slo_window_minutes": None},
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


MAX_VECTORS = 400_000


def _groups(data: FleetData) -> list[tuple[str, float]]:
    out = []
    for p in sorted(data.pools):
        if data.pools[p].role == "prefill":
            levels = sorted({rt.waiting_budget_s for rt in data.prefill_routes if rt.pool == p})
        else:
            levels = sorted({data.workload(w).slo.tpot_ms for w, d in data.decode_routes
                             if d == p})
        out += [(p, lvl) for lvl in levels]
    return out


def groups_feasible(data: FleetData, n: dict[tuple[str, float], int]) -> bool:
    """LP: can every demand be assigned to admitting groups within their capacities?"""
    pre = [(rt, grp) for rt in data.prefill_routes for grp in n
           if grp[0] == rt.pool and n[grp] > 0 and rt.waiting_budget_s >= grp[1] - 1e-12]
    dec = []
    for w, d in data.decode_routes:
        for grp in n:
            if grp[0] != d or n[grp] == 0 or data.workload(w).slo.tpot_ms < grp[1] - 1e-12:
                continue
            t = data.decode_levels[d].index(grp[1])
            cap = data.decode_tokens_per_s[(w, d, t)]
            if cap is not None:
                dec.append((w, grp, cap))
    nv = len(pre) + len(dec)
    if nv == 0:
        return False
    a_ub, b_ub = [], []
    for grp, count in n.items():
        if count == 0:
            continue
        row = np.zeros(nv)
        if data.pools[grp[0]].role == "prefill":
            budget = grp[1]
            for k, (rt, g2) in enumerate(pre):
                if g2 == grp:
                    w = rt.workload
                    row[k] = (data.second_moment_s2[(w, rt.pool)]
                              + 2 * budget * data.service_s[(w, rt.pool)])
            b_ub.append(2 * budget * count * _cap(data, grp[0]))
        else:
            for k, (w, g2, cap) in enumerate(dec):
                if g2 == grp:
                    row[len(pre) + k] = data.workload(w).output_tokens / cap
            b_ub.append(count * _cap(data, grp[0]))
        a_ub.append(row)
    a_eq, b_eq = [], []
    for workload in data.scenario.workloads:
        row = np.zeros(nv)
        for k, (rt, _) in enumerate(pre):
            row[k] = rt.workload == workload.name
        a_eq.append(row)
        b_eq.append(data.demand_requests_per_s[workload.name])
        for g in data.scenario.gpus:
            row = np.zeros(nv)
            for k, (rt, _) in enumerate(pre):
                row[k] = rt.workload == workload.name and rt.decode_gpu == g
            for k, (wn, grp, _) in enumerate(dec):
                if wn == workload.name and data.pools[grp[0]].gpu == g:
                    row[len(pre) + k] = -1
            if row.any():
                a_eq.append(row)
                b_eq.append(0.0)
    res = linprog(np.zeros(nv), A_ub=np.array(a_ub), b_ub=np.array(b_ub), A_eq=np.array(a_eq),
                  b_eq=np.array(b_eq), bounds=[(0, None)] * nv, method="highs")
    return res.status == 0


def brute_force_cost(scenario: Scenario) -> float | None:
    """Cheapest cost over all group-count vectors (None: none feasible). Each pool's total ranges
    up to the count that would carry all its possible demand at its tightest SLO (Eq. O9), which
    no optimal plan exceeds."""
    best = brute_force_best(scenario, "cost")
    return None if best is None else best[0]


def brute_force_best(scenario: Scenario, objective: str) -> tuple[float, int] | None:
    """(cost, GPUs) of the best group-count vector in lexicographic order (Eq. O10): cheapest,
    then fewest GPUs for `cost`; fewest GPUs, then cheapest for `gpus` (None: none feasible)."""
    data = build_fleet_data(scenario)
    groups = _groups(data)
    pools = sorted(data.pools)
    per_pool = []
    for p in pools:
        mine = [grp for grp in groups if grp[0] == p]
        ub = data.pools[p].upper_bound
        splits = [split for split in itertools.product(range(ub + 1), repeat=len(mine))
                  if sum(split) <= ub]
        per_pool.append([dict(zip(mine, split, strict=True)) for split in splits])
    size = 1
    for options in per_pool:
        size *= len(options)
    if size > MAX_VECTORS:
        raise ValueError(f"brute force over {size} vectors is too large for a test case")
    vectors = []
    for combo in itertools.product(*per_pool):
        n = {k: v for part in combo for k, v in part.items()}
        totals = {p: sum(part.values()) for p, part in zip(pools, combo, strict=True)}
        gpus: dict[str, int] = {}
        for p in pools:
            pool = data.pools[p]
            gpus[pool.gpu] = gpus.get(pool.gpu, 0) + totals[p] * pool.gpus_per_instance
        if any(spec.count is not None and gpus.get(g, 0) > spec.count
               for g, spec in scenario.gpus.items()):
            continue
        cost = sum(totals[p] * data.pools[p].cost_per_hour for p in pools)
        if scenario.budget_per_hour is not None and cost > scenario.budget_per_hour + 1e-9:
            continue
        if not operable(data, totals):
            continue
        vectors.append((cost, sum(gpus.values()), tuple(sorted(n.items()))))
    # costs rounded for the order only: equal costs summed in another order must tie
    vectors.sort(key=lambda v: (round(v[0], 9), v[1]) if objective == "cost"
                 else (v[1], round(v[0], 9)))
    for cost, n_gpus, items in vectors:
        n = dict(items)
        if _necessary(data, n) and groups_feasible(data, n):
            return cost, n_gpus
    return None


def _necessary(data: FleetData, n: dict[tuple[str, float], int]) -> bool:
    """Cheap necessary condition: each workload alone fits in the capacity of the groups that
    admit it."""
    for w in data.scenario.workloads:
        prefill = decode = 0.0
        for (p, level), count in n.items():
            if count == 0:
                continue
            if data.pools[p].role == "prefill":
                if any(rt.workload == w.name and rt.pool == p
                       and rt.waiting_budget_s >= level - 1e-12 for rt in data.prefill_routes):
                    s, m2 = data.service_s[(w.name, p)], data.second_moment_s2[(w.name, p)]
                    prefill += count * 2 * level / (m2 + 2 * level * s) * _cap(data, p)
            elif (w.name, p) in data.decode_routes and w.slo.tpot_ms >= level - 1e-12:
                cap = data.decode_tokens_per_s[(w.name, p, data.decode_levels[p].index(level))]
                decode += count * (cap or 0.0) / w.output_tokens * _cap(data, p)
        demand = data.demand_requests_per_s[w.name]
        if prefill < demand * (1 - 1e-9) or decode < demand * (1 - 1e-9):
            return False
    return True


def _cap(data: FleetData, pool: str) -> float:
    """The utilisation cap of a pool, read from the scenario's limits (not the optimizer's)."""
    p = data.pools[pool]
    return data.scenario.limits_of(p.model).max_utilization.get(p.role, 1.0)


def operable(data: FleetData, totals: dict[str, int]) -> bool:
    """Whether pool totals meet the scenario's operability limits: at most K instance types per
    model and role, one GPU type per model, every used pool at least min_count_if_used."""
    used = [p for p, count in totals.items() if count > 0]
    for p in used:
        least = data.scenario.limits_of(data.pools[p].model).min_count_if_used
        if least is not None and totals[p] < least:
            return False
    for model in {data.pools[p].model for p in used}:
        limits = data.scenario.limits_of(model)
        mine = [data.pools[p] for p in used if data.pools[p].model == model]
        for role, k in limits.max_instance_types.items():
            if sum(pool.role == role for pool in mine) > k:
                return False
        if limits.single_gpu_type and len({pool.gpu for pool in mine}) > 1:
            return False
    return True


def paper_day(paper: dict[str, Any], multipliers: list[float], **gpu: Any) -> dict[str, Any]:
    """The paper's scenario (queue mm1) over len(multipliers) periods of 6 hours."""
    data = copy.deepcopy(paper)
    data.setdefault("options", {})["queue"] = "mm1"
    data["options"]["mip_gap"] = 0.0
    data["periods"] = {"count": len(multipliers), "length_h": 6}
    data["workloads"][0]["demand"] = {"multipliers": multipliers}
    data["gpus"]["H200"].update(gpu)
    return data
