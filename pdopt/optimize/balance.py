"""Routing within a split pool, counts fixed: the traffic spread over a pool's SLO groups so that
the fullest group is as empty as it can be (docs/method.md, O.4, Eq. O20). No Pyomo here.

The program fixes the group counts and any routing within them that fits; it is indifferent
between filling a strict group to exactly its capacity and leaving the slack there. A model
error of a few tenths of a percent then shows in full in that group. With the counts fixed, one
small LP per split pool moves the traffic that may use either group (a looser workload in a
stricter group, Eq. O7) so as to minimise the largest group utilisation; every workload's total on
the pool, hence the flows between pools and the plan's cost, stays as it is.
"""

from __future__ import annotations

from collections import defaultdict

from pdopt.optimize.data import FleetData, table_rate

#: Utilisations within this of each other count as balanced (no LP).
BALANCE_TOLERANCE = 1e-6


def unit_load(data: FleetData, workload: str, pool: str, level: int, count: int) -> float:
    """The utilisation one request/s of `workload` adds to group `level` of `pool` on `count`
    instances: 1 / (n a_w(n)) for a tabled group (Eq. O14), (E[S^2] + 2 B S) / (2 B n) for an
    untabled prefill group (Eq. O5, or its line's, Eq. O13d), L_out / (n c) for an untabled
    decode group (Eq. O6). The plan reports the same utilisations (extract.prefill_points,
    decode_points)."""
    if pool in data.table_counts and data.rate_tables.get((workload, pool, level)):
        return 1.0 / (count * table_rate(data, workload, pool, level, count))
    if data.pools[pool].role == "prefill":
        a, c = data.prefill_row(pool, level)
        s, m2 = data.service_s[(workload, pool)], data.second_moment_s2[(workload, pool)]
        return (m2 + a * s) / (c * count)
    capacity = data.decode_tokens_per_s[(workload, pool, level)]
    assert capacity is not None  # a decode share exists only where it has a capacity
    return data.workload(workload).output_tokens / (capacity * count)


def balance_pool(data: FleetData, pool: str, counts: dict[int, int],
                 flows: dict[tuple[str, int], float],
                 strictest: dict[str, list[tuple[int, float]]]) -> dict[tuple[str, int], float]:
    """The flows (workload, level) -> requests/s of one split pool re-spread over its groups of
    `counts` (level -> instances, all > 0), minimising the largest group utilisation (Eq. O20):

        min u  s.t.  sum_w x_{w,l} k_{w,l} <= u            (every group l, k of `unit_load`)
                     sum_l x_{w,l} = X_w                    (each workload's total on the pool)
                     sum_{l <= L} x_{w,l} >= D_{w,L}        (nested admission, Eq. O7)
                     x_{w,l} = 0 for l above w's loosest level

    `strictest[w]`: (level, requests/s) of w's traffic by the loosest group it may use (one entry
    per prefill route, or one for decode); D_{w,L} sums those with level <= L. Returns `flows`
    unchanged when the LP fails or does not lower the largest utilisation."""
    levels = sorted(counts)
    workloads = sorted({w for w, _ in flows})
    loosest = {w: max(lvl for lvl, _ in strictest[w]) for w in workloads}
    cells = [(w, lvl) for w in workloads for lvl in levels if lvl <= loosest[w]
             and _admitted(data, w, pool, lvl)]
    index = {c: k for k, c in enumerate(cells)}
    size = len(cells) + 1  # the last variable is u
    units = {c: unit_load(data, c[0], pool, c[1], counts[c[1]]) for c in cells}
    before = max(sum(rate * units[(w, lvl)] for (w, lvl2), rate in flows.items()
                     if lvl2 == lvl and (w, lvl) in units) for lvl in levels)
    a_ub: list[list[float]] = []
    b_ub: list[float] = []
    for lvl in levels:  # group utilisation <= u
        row = [0.0] * size
        for c in cells:
            if c[1] == lvl:
                row[index[c]] = units[c]
        row[-1] = -1.0
        a_ub.append(row)
        b_ub.append(0.0)
    for w in workloads:  # nested admission: traffic that must sit at L or stricter does
        for top in levels:
            need = sum(rate for lvl, rate in strictest[w] if lvl <= top)
            if need <= 0 or top >= loosest[w]:
                continue
            row = [0.0] * size
            for c in cells:
                if c[0] == w and c[1] <= top:
                    row[index[c]] = -1.0
            a_ub.append(row)
            b_ub.append(-need)
    a_eq, b_eq = [], []
    for w in workloads:
        row = [0.0] * size
        for c in cells:
            if c[0] == w:
                row[index[c]] = 1.0
        a_eq.append(row)
        b_eq.append(sum(rate for (wn, _), rate in flows.items() if wn == w))
    cost = [0.0] * size
    cost[-1] = 1.0
    x = _solve_lp(cost, a_ub, b_ub, a_eq, b_eq)
    if x is None or x[-1] >= before - BALANCE_TOLERANCE:
        return flows
    return {c: x[index[c]] for c in cells if x[index[c]] > 1e-9}


def _solve_lp(cost: list[float], a_ub: list[list[float]], b_ub: list[float],
              a_eq: list[list[float]], b_eq: list[float]) -> list[float] | None:
    """min cost.x s.t. a_ub x <= b_ub, a_eq x = b_eq, x >= 0, by HiGHS (already loaded for the
    solve; scipy's linprog would import scipy, and Pyomo then scipy.stats: a second or more of
    start-up). None unless optimal."""
    import highspy
    import numpy as np

    from pdopt.optimize.solver import silent_highs

    highs = silent_highs()
    size = len(cost)
    highs.addVars(size, np.zeros(size), np.full(size, highspy.kHighsInf))
    highs.changeColsCost(size, np.arange(size, dtype=np.int32), np.array(cost, dtype=float))
    rows = a_ub + a_eq
    lower = [-highspy.kHighsInf] * len(a_ub) + b_eq
    upper = b_ub + b_eq
    starts: list[int] = []
    idx: list[int] = []
    vals: list[float] = []
    for row in rows:
        starts.append(len(idx))
        for j, v in enumerate(row):
            if v:
                idx.append(j)
                vals.append(v)
    highs.addRows(len(rows), np.array(lower, dtype=float), np.array(upper, dtype=float),
                  len(idx), np.array(starts, dtype=np.int32), np.array(idx, dtype=np.int32),
                  np.array(vals, dtype=float))
    highs.run()
    if highs.getModelStatus() != highspy.HighsModelStatus.kOptimal:
        return None
    return [float(v) for v in highs.getSolution().col_value]


def _admitted(data: FleetData, workload: str, pool: str, level: int) -> bool:
    """Whether group `level` of `pool` may serve `workload` (the program's shares, Eq. O7)."""
    if data.pools[pool].role == "prefill":
        return any(r.workload == workload and r.pool == pool and r.level >= level
                   for r in data.prefill_routes)
    return data.decode_tokens_per_s.get((workload, pool, level)) is not None


def balanced_flows(data: FleetData, n: dict[tuple[str, int], int],
                   r: dict[tuple[str, str, str], float],
                   q: dict[tuple[str, str, int], float],
                   v: dict[tuple[str, str, int], float]
                   ) -> tuple[dict[tuple[str, str, int], float], dict[tuple[str, str, int], float]]:
    """The group flows q (prefill) and v (decode) of a solved plan with every pool of two or more
    used groups balanced by `balance_pool`; pools of one group keep theirs."""
    route_level = {(rt.workload, rt.pool, rt.decode_gpu): rt.level for rt in data.prefill_routes}
    out = []
    for flows_in, role in ((q, "prefill"), (v, "decode")):
        by_pool: dict[str, dict[tuple[str, int], float]] = defaultdict(dict)
        for (w, p, lvl), rate in flows_in.items():
            by_pool[p][(w, lvl)] = rate
        result = dict(flows_in)
        for p, flows in by_pool.items():
            counts = {lvl: c for (pn, lvl), c in n.items() if pn == p and c > 0}
            if len(counts) < 2:
                continue
            strictest: dict[str, list[tuple[int, float]]] = defaultdict(list)
            if role == "prefill":
                for (w, pn, g), rate in r.items():
                    if pn == p:
                        strictest[w].append((route_level[(w, pn, g)], rate))
            else:
                for (w, _lvl) in flows:
                    if w not in strictest:
                        total = sum(x for (wn, _), x in flows.items() if wn == w)
                        strictest[w].append((data.decode_level_of(w, p), total))
            new = balance_pool(data, p, counts, flows, strictest)
            if new is not flows:
                for key in [k for k in result if k[1] == p]:
                    del result[key]
                result.update({(w, p, lvl): rate for (w, lvl), rate in new.items()})
        out.append(result)
    return out[0], out[1]
