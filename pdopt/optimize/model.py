"""The fleet integer program in Pyomo (docs/method.md, section O). No file formats here.

`create_model` reads like a table of contents: one `define_*` per variable or constraint family,
each returning early when it has nothing to add. Variables exist only where a route exists.
"""

from __future__ import annotations

from dataclasses import dataclass

import pyomo.environ as pyo

from pdopt.optimize.data import FleetData

# Secondary objective weight (Eq. O10): ties in the primary objective are broken by the other one
# (fewest GPUs for `cost`, cheapest for `gpus`). 1e-6 per GPU (or per $/h) cannot trade a unit of
# the primary objective unless a fleet exceeds 10^5 GPUs or $10^5/h, far beyond any scenario here.
TIE_BREAK_WEIGHT = 1e-6


@dataclass(frozen=True)
class Relaxation:
    """Which scenario limits to drop or make elastic (used to diagnose infeasibility)."""

    budget: bool = False  # drop the budget
    inventory: str = "hard"  # "hard", "drop", or "elastic" (slack GPUs, minimised)
    max_count: bool = False  # drop per-pool maxima


def create_model(data: FleetData, objective: str, relax: Relaxation | None = None
                 ) -> pyo.ConcreteModel:
    relax = relax or Relaxation()
    m = pyo.ConcreteModel(name=data.scenario.name)
    define_counts(m, data, relax)
    define_routes(m, data)
    define_demand(m, data)
    define_flow_balance(m, data)
    define_prefill_capacity(m, data)
    define_decode_capacity(m, data)
    define_inventory(m, data, relax)
    define_budget(m, data, relax)
    define_objective(m, data, objective, relax)
    return m


def define_counts(m: pyo.ConcreteModel, data: FleetData, relax: Relaxation) -> None:
    """n[pool]: integer instance count within min_count..max_count (Eq. O1)."""
    m.POOLS = pyo.Set(initialize=sorted(data.pools), ordered=True)

    def bounds(_m: pyo.ConcreteModel, p: str) -> tuple[int, int]:
        pool = data.pools[p]
        upper = pool.upper_bound
        if pool.max_count is not None and not relax.max_count:
            upper = min(upper, pool.max_count)
        return pool.min_count, max(upper, pool.min_count)

    m.n = pyo.Var(m.POOLS, domain=pyo.NonNegativeIntegers, bounds=bounds)


def define_routes(m: pyo.ConcreteModel, data: FleetData) -> None:
    """r[w, p, g]: requests/s of workload w prefilled on pool p and decoded on GPU type g;
    s[w, d]: requests/s of w decoded on pool d (Eq. O2)."""
    m.PREFILL_ROUTES = pyo.Set(
        initialize=[(r.workload, r.pool, r.decode_gpu) for r in data.prefill_routes],
        dimen=3, ordered=True)
    m.DECODE_ROUTES = pyo.Set(initialize=data.decode_routes, dimen=2, ordered=True)
    m.r = pyo.Var(m.PREFILL_ROUTES, domain=pyo.NonNegativeReals,
                  bounds=lambda _m, w, p, g: (0, data.demand_requests_per_s[w]))
    m.s = pyo.Var(m.DECODE_ROUTES, domain=pyo.NonNegativeReals,
                  bounds=lambda _m, w, d: (0, data.demand_requests_per_s[w]))


def define_demand(m: pyo.ConcreteModel, data: FleetData) -> None:
    """Every workload's demand (x headroom) is fully routed to prefill pools (Eq. O3)."""
    by_w: dict[str, list[tuple[str, str, str]]] = {w: [] for w in data.demand_requests_per_s}
    for key in m.PREFILL_ROUTES:
        by_w[key[0]].append(key)
    m.WORKLOADS = pyo.Set(initialize=sorted(by_w), ordered=True)
    m.demand = pyo.Constraint(
        m.WORKLOADS,
        rule=lambda _m, w: (sum(_m.r[k] for k in by_w[w]) == data.demand_requests_per_s[w])
        if by_w[w] else pyo.Constraint.Infeasible,
    )


def define_flow_balance(m: pyo.ConcreteModel, data: FleetData) -> None:
    """What w prefills for decode on GPU type g is decoded on pools of type g (Eq. O4)."""
    pre: dict[tuple[str, str], list[tuple[str, str, str]]] = {}
    for k in m.PREFILL_ROUTES:
        pre.setdefault((k[0], k[2]), []).append(k)
    dec: dict[tuple[str, str], list[tuple[str, str]]] = {}
    for k in m.DECODE_ROUTES:
        dec.setdefault((k[0], data.pools[k[1]].gpu), []).append(k)
    keys = sorted(set(pre) | set(dec))
    m.FLOW_KEYS = pyo.Set(initialize=keys, dimen=2, ordered=True)
    m.flow_balance = pyo.Constraint(
        m.FLOW_KEYS,
        rule=lambda _m, w, g: sum(_m.r[k] for k in pre.get((w, g), []))
        == sum(_m.s[k] for k in dec.get((w, g), [])),
    )


def define_prefill_capacity(m: pyo.ConcreteModel, data: FleetData) -> None:
    """Mixed-class M/G/1 waiting time within every routed class's budget (Eqs. O5, O7):
    sum_w R[w,p] (E[S_w^2] + 2 B_l S_w) <= 2 B_l n[p] for each budget level l of pool p; the
    loosest level always, tighter levels only when a class of that level is routed (big-M on y)."""
    rows: list[tuple[str, int]] = []
    gated: list[tuple[str, int]] = []
    routes_of_pool: dict[str, list[tuple[str, str, str]]] = {}
    for r in data.prefill_routes:
        routes_of_pool.setdefault(r.pool, []).append((r.workload, r.pool, r.decode_gpu))
    for p, levels in data.prefill_levels.items():
        for lvl in range(len(levels)):
            rows.append((p, lvl))
            if lvl < len(levels) - 1:
                gated.append((p, lvl))
    m.PREFILL_ROWS = pyo.Set(initialize=rows, dimen=2, ordered=True)
    m.PREFILL_GATED = pyo.Set(initialize=gated, dimen=2, ordered=True)
    m.y_prefill = pyo.Var(m.PREFILL_GATED, domain=pyo.Binary)

    def coef(w: str, p: str, budget: float) -> float:
        return data.second_moment_s2[(w, p)] + 2 * budget * data.service_s[(w, p)]

    def big_m(p: str, budget: float) -> float:
        ws = {k[0] for k in routes_of_pool[p]}
        return sum(data.demand_requests_per_s[w] * coef(w, p, budget) for w in ws)

    def row(_m: pyo.ConcreteModel, p: str, lvl: int) -> object:
        budget = data.prefill_levels[p][lvl]
        lhs = sum(coef(k[0], p, budget) * _m.r[k] for k in routes_of_pool[p])
        rhs = 2 * budget * _m.n[p]
        if (p, lvl) in gated:
            return lhs <= rhs + big_m(p, budget) * (1 - _m.y_prefill[p, lvl])
        return lhs <= rhs

    m.prefill_capacity = pyo.Constraint(m.PREFILL_ROWS, rule=row)
    link = [(r.workload, r.pool, r.decode_gpu, r.level) for r in data.prefill_routes
            if (r.pool, r.level) in gated]
    m.PREFILL_LINKS = pyo.Set(initialize=link, dimen=4, ordered=True)
    m.prefill_link = pyo.Constraint(
        m.PREFILL_LINKS,
        rule=lambda _m, w, p, g, lvl: _m.r[w, p, g]
        <= data.demand_requests_per_s[w] * _m.y_prefill[p, lvl],
    )


def define_decode_capacity(m: pyo.ConcreteModel, data: FleetData) -> None:
    """Output tokens within count x decode throughput at the strictest TPOT routed (Eqs. O6, O7):
    sum_i s[i,d] L_out_i / c[d,i,t] <= n[d] for each TPOT level t of pool d; gated like prefill.
    A class that cannot meet level t at its context is shut out while t is active."""
    rows: list[tuple[str, int]] = []
    gated: list[tuple[str, int]] = []
    routes_of_pool: dict[str, list[str]] = {}
    for w, d in data.decode_routes:
        routes_of_pool.setdefault(d, []).append(w)
    for d, levels in data.decode_levels.items():
        for t in range(len(levels)):
            rows.append((d, t))
            if t < len(levels) - 1:
                gated.append((d, t))
    m.DECODE_ROWS = pyo.Set(initialize=rows, dimen=2, ordered=True)
    m.DECODE_GATED = pyo.Set(initialize=gated, dimen=2, ordered=True)
    m.y_decode = pyo.Var(m.DECODE_GATED, domain=pyo.Binary)

    def load(w: str, d: str, t: int) -> float | None:
        cap = data.decode_tokens_per_s[(w, d, t)]
        return None if cap is None else data.workload(w).output_tokens / cap

    def row(_m: pyo.ConcreteModel, d: str, t: int) -> object:
        terms = [(w, load(w, d, t)) for w in routes_of_pool[d]]
        lhs = sum(a * _m.s[w, d] for w, a in terms if a is not None)
        if (d, t) in gated:
            big = sum(data.demand_requests_per_s[w] * a for w, a in terms if a is not None)
            return lhs <= _m.n[d] + big * (1 - _m.y_decode[d, t])
        return lhs <= _m.n[d]

    m.decode_capacity = pyo.Constraint(m.DECODE_ROWS, rule=row)
    links = []
    shut = []
    for w, d in data.decode_routes:
        lvl = data.decode_level_of(w, d)
        if (d, lvl) in gated:
            links.append((w, d, lvl))
        for t in range(len(data.decode_levels[d])):
            if (d, t) in gated and data.decode_tokens_per_s[(w, d, t)] is None:
                shut.append((w, d, t))
    m.DECODE_LINKS = pyo.Set(initialize=links, dimen=3, ordered=True)
    m.decode_link = pyo.Constraint(
        m.DECODE_LINKS,
        rule=lambda _m, w, d, t: _m.s[w, d] <= data.demand_requests_per_s[w] * _m.y_decode[d, t],
    )
    m.DECODE_SHUT = pyo.Set(initialize=shut, dimen=3, ordered=True)
    m.decode_shut = pyo.Constraint(
        m.DECODE_SHUT,
        rule=lambda _m, w, d, t: _m.s[w, d]
        <= data.demand_requests_per_s[w] * (1 - _m.y_decode[d, t]),
    )


def gpus_expr(m: pyo.ConcreteModel, data: FleetData, gpu: str | None = None) -> object:
    return sum(data.pools[p].gpus_per_instance * m.n[p] for p in m.POOLS
               if gpu is None or data.pools[p].gpu == gpu)


def cost_expr(m: pyo.ConcreteModel, data: FleetData) -> object:
    return sum(data.pools[p].cost_per_hour * m.n[p] for p in m.POOLS)


def define_inventory(m: pyo.ConcreteModel, data: FleetData, relax: Relaxation) -> None:
    """GPUs of each type within its inventory `count` (Eq. O8); elastic when diagnosing."""
    limited = sorted(g for g, spec in data.scenario.gpus.items()
                     if spec.count is not None and any(p.gpu == g for p in data.pools.values()))
    if relax.inventory == "drop" or not limited:
        return
    m.LIMITED_GPUS = pyo.Set(initialize=limited, ordered=True)
    if relax.inventory == "elastic":
        m.gpu_shortfall = pyo.Var(m.LIMITED_GPUS, domain=pyo.NonNegativeReals)
    m.inventory = pyo.Constraint(
        m.LIMITED_GPUS,
        rule=lambda _m, g: gpus_expr(_m, data, g) <= data.scenario.gpus[g].count
        + (_m.gpu_shortfall[g] if relax.inventory == "elastic" else 0),
    )


def define_budget(m: pyo.ConcreteModel, data: FleetData, relax: Relaxation) -> None:
    """Fleet cost within the budget in $/hour (Eq. O8)."""
    if relax.budget or data.scenario.budget_per_hour is None:
        return
    m.budget = pyo.Constraint(expr=cost_expr(m, data) <= data.scenario.budget_per_hour)


def define_objective(m: pyo.ConcreteModel, data: FleetData, objective: str,
                     relax: Relaxation) -> None:
    """Minimise $/hour or GPUs, the other as a tie-break (Eq. O10); when diagnosing an inventory,
    minimise the GPU shortfall first."""
    cost, gpus = cost_expr(m, data), gpus_expr(m, data)
    primary, secondary = (cost, gpus) if objective == "cost" else (gpus, cost)
    expr = primary + TIE_BREAK_WEIGHT * secondary
    if relax.inventory == "elastic" and hasattr(m, "gpu_shortfall"):
        # A GPU missing must weigh more than any plan: the largest possible primary objective.
        heavy = 1.0 + sum(
            p.upper_bound * (p.cost_per_hour if objective == "cost" else p.gpus_per_instance)
            for p in data.pools.values())
        expr = heavy * sum(m.gpu_shortfall[g] for g in m.LIMITED_GPUS) + expr
    m.objective = pyo.Objective(expr=expr, sense=pyo.minimize)
