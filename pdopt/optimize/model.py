"""The fleet integer program (docs/method.md, section O), built on Pyomo or straight for HiGHS by
the same functions (`backend`, O.9). No file formats here.

`create_model` reads like a table of contents: one `define_*` per variable or constraint family,
each returning early when it has nothing to add. Variables exist only where a route exists.

A pool (the instances of one instance type) is split into SLO groups: group l of a prefill pool runs
within waiting budget B_l, group t of a decode pool within TPOT target tau_t; a workload may use any
group at least as strict as its own SLO. Each group is one M/G/1-per-instance (or decode batch)
constraint with its own integer count, so no binaries or big-M terms are needed (Eqs. O5-O7).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Literal

from pdopt.optimize import direct
from pdopt.optimize.data import FleetData
from pdopt.plan import Objective

# A Pyomo ConcreteModel or a direct.ConcreteModel (the same program, O.9).
Model = Any


def _api(m: Model) -> Any:
    """The names the program is built with: pyomo.core's, or the direct backend's (O.9)."""
    if isinstance(m, direct.ConcreteModel):
        return direct
    import pyomo.core as pyo  # not pyomo.environ: its plugins cost start-up time

    return pyo


def _sum(m: Model, terms: Any) -> Any:
    """A sum of terms: built in place on the direct backend, Python's on Pyomo's (whose
    expressions it builds as before)."""
    return direct.quicksum(terms) if isinstance(m, direct.ConcreteModel) else sum(terms)


@dataclass(frozen=True)
class Relaxation:
    """Which scenario limits to drop or make elastic (used to diagnose infeasibility)."""

    budget: bool = False  # drop the budget
    inventory: str = "hard"  # "hard", "drop", or "elastic" (slack GPUs, minimised)
    max_count: bool = False  # drop per-pool maxima
    limits: bool = False  # drop the operability limits on pool usage (Eqs. O17-O19)


def create_model(data: FleetData, objective: Objective | str, relax: Relaxation | None = None,
                 model_bounds: dict[str, float] | None = None,
                 backend: Literal["pyomo", "direct"] = "pyomo") -> Model:
    """The program of section O. `model_bounds` are lower bounds of each model's share of the
    objective, from solving the models alone (Eq. O12). `backend`: a Pyomo model, or the same
    program built straight for HiGHS (`direct`, O.9: no Pyomo import, a fraction of the time)."""
    relax = relax or Relaxation()
    objective = Objective(objective)
    if backend == "direct":
        m = direct.ConcreteModel(name=data.scenario.name)
    else:
        import pyomo.core as pyo  # not pyomo.environ: its plugins cost start-up time

        m = pyo.ConcreteModel(name=data.scenario.name)
    define_group_counts(m, data)
    define_pool_limits(m, data, relax)
    define_routes(m, data)
    define_demand(m, data)
    define_flow_balance(m, data)
    define_prefill_groups(m, data)
    define_decode_groups(m, data)
    define_count_tables(m, data)
    define_cover_cuts(m, data)
    define_pool_usage(m, data, relax)
    define_instance_type_limits(m, data, relax)
    define_single_gpu_type(m, data, relax)
    define_inventory(m, data, relax)
    define_budget(m, data, relax)
    define_objective(m, data, objective, relax)
    define_model_bounds(m, data, objective, model_bounds or {})
    return m


def define_group_counts(m: Model, data: FleetData) -> None:
    """n[pool, level]: integer instances of a pool working within one SLO level (Eq. O1)."""
    pyo = _api(m)
    groups = [(p, lvl) for p in sorted(data.pools) for lvl in range(len(data.levels(p)))]
    m.POOLS = pyo.Set(initialize=sorted(data.pools), ordered=True)
    m.GROUPS = pyo.Set(initialize=groups, dimen=2, ordered=True)
    m.n = pyo.Var(m.GROUPS, domain=pyo.NonNegativeIntegers,
                  bounds=lambda _m, p, lvl: (0, data.pools[p].upper_bound))


def pool_count(m: Model, data: FleetData, p: str) -> object:
    return _sum(m, (m.n[p, lvl] for lvl in range(len(data.levels(p)))))


def define_pool_limits(m: Model, data: FleetData, relax: Relaxation) -> None:
    """min_count <= sum of a pool's groups <= min(max_count, U_p) (Eqs. O1, O9)."""
    pyo = _api(m)
    def bounds(p: str) -> tuple[int, int]:
        pool = data.pools[p]
        upper = pool.upper_bound
        if pool.max_count is not None and not relax.max_count:
            upper = min(upper, pool.max_count)
        return pool.min_count, max(upper, pool.min_count)

    limited = [p for p in sorted(data.pools) if len(data.levels(p)) > 1 or bounds(p)[0] > 0
               or bounds(p)[1] < data.pools[p].upper_bound]
    if not limited:
        return
    m.LIMITED_POOLS = pyo.Set(initialize=limited, ordered=True)
    m.pool_limits = pyo.Constraint(
        m.LIMITED_POOLS, rule=lambda _m, p: pyo.inequality(*_bounds_expr(_m, data, p, bounds)))


def _bounds_expr(m: Model, data: FleetData, p: str,
                 bounds: object) -> tuple[float, object, float]:
    lo, hi = bounds(p)  # type: ignore[operator]
    return lo, pool_count(m, data, p), hi


def define_routes(m: Model, data: FleetData) -> None:
    """r[w, p, g]: requests/s of w prefilled on pool p for decode on GPU type g;
    q[w, p, l]: of those, served in group l of p; v[w, d, t]: requests/s of w decoded in group t
    of decode pool d (Eq. O2)."""
    pyo = _api(m)
    m.PREFILL_ROUTES = pyo.Set(
        initialize=[(r.workload, r.pool, r.decode_gpu) for r in data.prefill_routes],
        dimen=3, ordered=True)
    m.PREFILL_SHARES = pyo.Set(initialize=data.prefill_shares(), dimen=3, ordered=True)
    m.DECODE_SHARES = pyo.Set(initialize=data.decode_shares(), dimen=3, ordered=True)
    demand = data.demand_requests_per_s
    m.r = pyo.Var(m.PREFILL_ROUTES, domain=pyo.NonNegativeReals,
                  bounds=lambda _m, w, p, g: (0, demand[w]))
    m.q = pyo.Var(m.PREFILL_SHARES, domain=pyo.NonNegativeReals,
                  bounds=lambda _m, w, p, lvl: (0, demand[w]))
    m.v = pyo.Var(m.DECODE_SHARES, domain=pyo.NonNegativeReals,
                  bounds=lambda _m, w, d, t: (0, demand[w]))


def define_demand(m: Model, data: FleetData) -> None:
    """Every workload's demand (x headroom) is fully routed to prefill pools (Eq. O3)."""
    pyo = _api(m)
    by_w: dict[str, list[tuple[str, str, str]]] = {}
    for key in m.PREFILL_ROUTES:
        by_w.setdefault(key[0], []).append(key)
    m.WORKLOADS = pyo.Set(initialize=sorted(by_w), ordered=True)
    m.demand = pyo.Constraint(
        m.WORKLOADS, rule=lambda _m, w: _sum(_m, (_m.r[k] for k in by_w[w]))
        == data.demand_requests_per_s[w])


def define_flow_balance(m: Model, data: FleetData) -> None:
    """What w prefills for decode on GPU type g is decoded on pools of type g (Eq. O4)."""
    pyo = _api(m)
    pre: dict[tuple[str, str], list[tuple[str, str, str]]] = {}
    for k in m.PREFILL_ROUTES:
        pre.setdefault((k[0], k[2]), []).append(k)
    dec: dict[tuple[str, str], list[tuple[str, str, int]]] = {}
    for k in m.DECODE_SHARES:
        dec.setdefault((k[0], data.pools[k[1]].gpu), []).append(k)
    keys = sorted(set(pre) | set(dec))
    m.FLOW_KEYS = pyo.Set(initialize=keys, dimen=2, ordered=True)
    m.flow_balance = pyo.Constraint(
        m.FLOW_KEYS,
        rule=lambda _m, w, g: _sum(_m, (_m.r[k] for k in pre.get((w, g), [])))
        == _sum(_m, (_m.v[k] for k in dec.get((w, g), []))),
    )


def define_prefill_groups(m: Model, data: FleetData) -> None:
    """Group l of prefill pool p keeps every class in it within budget B_l (Eq. O5):
    sum_w q[w,p,l] (E[S_w^2] + 2 B_l S_w) <= 2 B_l n[p,l] (a random-routed group of several
    classes: its line, Eq. O13d); a workload's traffic on p is split over the groups, and traffic
    whose budget is at most B_l goes to groups at most as loose (Eq. O7)."""
    pyo = _api(m)
    members: dict[tuple[str, int], list[str]] = {}
    for w, p, lvl in m.PREFILL_SHARES:
        members.setdefault((p, lvl), []).append(w)
    rows = sorted(k for k in members if k[0] not in data.table_counts)  # tabled: Eq. O14
    m.PREFILL_GROUP_ROWS = pyo.Set(initialize=rows, dimen=2, ordered=True)

    def capacity(_m: Model, p: str, lvl: int) -> object:
        a, c = data.prefill_row(p, lvl)
        return _sum(_m, ((data.second_moment_s2[(w, p)] + a * data.service_s[(w, p)])
                         * _m.q[w, p, lvl] for w in members[(p, lvl)])) \
            <= c * data.pools[p].utilization_cap * _m.n[p, lvl]

    m.prefill_capacity = pyo.Constraint(m.PREFILL_GROUP_ROWS, rule=capacity)

    routes: dict[tuple[str, str], list[tuple[str, int]]] = {}  # (w, p) -> [(g, level)]
    for r in data.prefill_routes:
        routes.setdefault((r.workload, r.pool), []).append((r.decode_gpu, r.level))
    shares: dict[tuple[str, str], list[int]] = {}
    for w, p, lvl in m.PREFILL_SHARES:
        shares.setdefault((w, p), []).append(lvl)
    m.PREFILL_SPLIT = pyo.Set(initialize=sorted(routes), dimen=2, ordered=True)
    m.prefill_split = pyo.Constraint(
        m.PREFILL_SPLIT, rule=lambda _m, w, p: _sum(_m, (_m.r[w, p, g] for g, _ in routes[(w, p)]))
        == _sum(_m, (_m.q[w, p, lvl] for lvl in shares[(w, p)])))
    # Nested admission (Hall's condition for nested intervals): for each level below w's loosest
    # budget on p, the traffic with budget <= B_l fits in groups 0..l.
    nested = [(w, p, lvl) for (w, p), rs in sorted(routes.items())
              for lvl in sorted({lv for _, lv in rs})[:-1]]
    m.PREFILL_NESTED = pyo.Set(initialize=nested, dimen=3, ordered=True)
    m.prefill_nested = pyo.Constraint(
        m.PREFILL_NESTED,
        rule=lambda _m, w, p, lvl: _sum(_m, (_m.r[w, p, g] for g, lv in routes[(w, p)]
                                             if lv <= lvl))
        <= _sum(_m, (_m.q[w, p, lv] for lv in shares[(w, p)] if lv <= lvl)))


def define_decode_groups(m: Model, data: FleetData) -> None:
    """Group t of decode pool d runs within TPOT level tau_t (Eq. O6):
    sum_w v[w,d,t] L_out,w / c[d,w,t] <= n[d,t]."""
    pyo = _api(m)
    members: dict[tuple[str, int], list[str]] = {}
    for w, d, t in m.DECODE_SHARES:
        members.setdefault((d, t), []).append(w)
    m.DECODE_GROUP_ROWS = pyo.Set(
        initialize=sorted(k for k in members if k[0] not in data.table_counts),  # tabled: O14
        dimen=2, ordered=True)
    m.decode_capacity = pyo.Constraint(
        m.DECODE_GROUP_ROWS,
        rule=lambda _m, d, t: _sum(_m, (
            data.workload(w).output_tokens / data.decode_tokens_per_s[(w, d, t)]  # type: ignore
            * _m.v[w, d, t] for w in members[(d, t)]))
        <= data.pools[d].utilization_cap * _m.n[d, t])


def table_segments(data: FleetData, pool: str) -> tuple[list[int], bool]:
    """The counts of a tabled pool's one-hot segments, and whether the last one is the tail
    (counts >= K at the capacity of K) (Eq. O14)."""
    counts, upper = data.table_counts[pool], data.pools[pool].upper_bound
    if upper <= counts:
        return list(range(1, upper + 1)), False
    return list(range(1, counts + 1)), True


def define_count_tables(m: Model, data: FleetData) -> None:
    """Groups whose per-instance capacity depends on their count (queue auto, Eq. O14): one-hot
    binaries y[p,l,k] choose the count k, the group's flows are split over the segments, and
    segment k carries sum_w f[w,k] / a_w(k) <= k y[p,l,k]; the last segment may be the tail, an
    integer count t in [K y, U y] at the capacity of K. n[p,l] = sum_k k y[p,l,k] (+ t)."""
    pyo = _api(m)
    shares = [(w, p, lvl) for w, p, lvl in list(m.PREFILL_SHARES) + list(m.DECODE_SHARES)
              if p in data.table_counts and data.rate_tables.get((w, p, lvl))]
    groups = sorted({(p, lvl) for _, p, lvl in shares})
    if not groups:
        return
    segments = {p: table_segments(data, p) for p, _ in groups}
    seg_index = [(p, lvl, k) for p, lvl in groups for k in segments[p][0]]
    tails = [(p, lvl) for p, lvl in groups if segments[p][1]]
    m.TABLE_SEGMENTS = pyo.Set(initialize=seg_index, dimen=3, ordered=True)
    m.TABLE_TAILS = pyo.Set(initialize=tails, dimen=2, ordered=True)
    m.count_is = pyo.Var(m.TABLE_SEGMENTS, domain=pyo.Binary)
    m.tail_count = pyo.Var(m.TABLE_TAILS, domain=pyo.NonNegativeIntegers,
                           bounds=lambda _m, p, lvl: (0, data.pools[p].upper_bound))
    share_seg = [(w, p, lvl, k) for w, p, lvl in shares for k in segments[p][0]]
    m.TABLE_FLOWS = pyo.Set(initialize=share_seg, dimen=4, ordered=True)
    demand = data.demand_requests_per_s
    m.table_flow = pyo.Var(m.TABLE_FLOWS, domain=pyo.NonNegativeReals,
                           bounds=lambda _m, w, p, lvl, k: (0, demand[w]))

    def is_tail(p: str, k: int) -> bool:
        return segments[p][1] and k == segments[p][0][-1]

    def flow_var(w: str, p: str, lvl: int) -> object:
        return m.q[w, p, lvl] if data.pools[p].role == "prefill" else m.v[w, p, lvl]

    m.table_one_hot = pyo.Constraint(
        pyo.Set(initialize=groups, dimen=2, ordered=True),
        rule=lambda _m, p, lvl: _sum(_m, (_m.count_is[p, lvl, k] for k in segments[p][0])) <= 1)
    m.table_count = pyo.Constraint(
        pyo.Set(initialize=groups, dimen=2, ordered=True),
        rule=lambda _m, p, lvl: _m.n[p, lvl] == _sum(_m, (
            (_m.tail_count[p, lvl] if is_tail(p, k) else k * _m.count_is[p, lvl, k])
            for k in segments[p][0])))
    if tails:
        m.tail_low = pyo.Constraint(m.TABLE_TAILS, rule=lambda _m, p, lvl: _m.tail_count[p, lvl]
                                    >= segments[p][0][-1] * _m.count_is[p, lvl, segments[p][0][-1]])
        m.tail_high = pyo.Constraint(m.TABLE_TAILS, rule=lambda _m, p, lvl: _m.tail_count[p, lvl]
                                     <= data.pools[p].upper_bound
                                     * _m.count_is[p, lvl, segments[p][0][-1]])
    by_group: dict[tuple[str, int], list[str]] = {}
    for w, p, lvl in shares:
        by_group.setdefault((p, lvl), []).append(w)
    m.table_split = pyo.Constraint(
        pyo.Set(initialize=shares, dimen=3, ordered=True),
        rule=lambda _m, w, p, lvl: flow_var(w, p, lvl) == _sum(_m, (
            _m.table_flow[w, p, lvl, k] for k in segments[p][0])))

    def capacity(_m: Model, p: str, lvl: int, k: int) -> object:
        load = _sum(_m, (_m.table_flow[w, p, lvl, k] / data.rate_tables[(w, p, lvl)][k - 1]
                         for w in by_group[(p, lvl)]))
        return load <= data.pools[p].utilization_cap * (
            _m.tail_count[p, lvl] if is_tail(p, k) else k * _m.count_is[p, lvl, k])

    m.table_capacity = pyo.Constraint(m.TABLE_SEGMENTS, rule=capacity)


def _per_instance_requests_per_s(data: FleetData, w: str, pool: str, lvl: int) -> float:
    """Requests/s one instance of a group serves of workload w alone (Eqs. P5, D6); for a tabled
    pool the table's largest (Eq. O14)."""
    cap = data.pools[pool].utilization_cap  # Eq. O16
    table = data.rate_tables.get((w, pool, lvl))
    if table:
        return cap * max(table)
    if data.pools[pool].role == "prefill":
        a, c = data.prefill_row(pool, lvl)
        return cap * c / (data.second_moment_s2[(w, pool)] + a * data.service_s[(w, pool)])
    return cap * data.decode_tokens_per_s[(w, pool, lvl)] / data.workload(w).output_tokens  # type: ignore


def define_cover_cuts(m: Model, data: FleetData) -> None:
    """Valid inequalities that tighten the LP relaxation (Eq. O11). An instance's shares of the
    workloads it serves, each over the most that one instance of any admitting group can serve of
    it, add up to at most 1; so the instances of a model's role number at least
    ceil(sum_w demand_w / best_w), and those admitting w at least ceil(demand_w / best_w). Any
    positive demand needs at least one instance per role: a rate far below one instance's
    capacity would otherwise fit in the solver's feasibility tolerance with no instance at all."""
    pyo = _api(m)
    admitting: dict[tuple[str, str], list[tuple[str, int]]] = {}
    for w, p, lvl in list(m.PREFILL_SHARES) + list(m.DECODE_SHARES):
        admitting.setdefault((w, data.pools[p].role), []).append((p, lvl))
    need: dict[tuple[str, str], float] = {}  # (w, role) -> demand in best-instance units
    for (w, role), groups in admitting.items():
        best = max(_per_instance_requests_per_s(data, w, p, lvl) for p, lvl in groups)
        need[(w, role)] = data.demand_requests_per_s[w] / best
    m.COVER = pyo.Set(initialize=sorted(admitting), dimen=2, ordered=True)
    m.cover = pyo.Constraint(
        m.COVER, rule=lambda _m, w, role: _sum(_m, (_m.n[g] for g in admitting[(w, role)]))
        >= _at_least_one(need[(w, role)]))
    by_model: dict[tuple[str, str], float] = {}
    for (w, role), units in need.items():
        key = (data.workload(w).model, role)
        by_model[key] = by_model.get(key, 0.0) + units
    groups_of = {key: sorted({g for (w, role), gs in admitting.items()
                              if (data.workload(w).model, role) == key for g in gs})
                 for key in by_model}
    m.MODEL_COVER = pyo.Set(initialize=sorted(by_model), dimen=2, ordered=True)
    m.model_cover = pyo.Constraint(
        m.MODEL_COVER, rule=lambda _m, model, role: _sum(
            _m, (_m.n[g] for g in groups_of[(model, role)]))
        >= _at_least_one(by_model[(model, role)]))


def _at_least_one(units: float) -> int:
    """Instances needed for `units` of demand in best-instance units: at least 1 when positive."""
    return max(1, _ceil(units)) if units > 0 else 0


def _ceil(x: float) -> int:
    """Ceiling that ignores floating-point excess below 1e-9 (as Eq. C1's rounding)."""
    return max(0, math.ceil(x - 1e-9))


def _pool_ceiling(data: FleetData, p: str, relax: Relaxation) -> int:
    """The largest count pool p may have: U_p (Eq. O9), within max_count unless relaxed."""
    pool = data.pools[p]
    upper = pool.upper_bound
    if pool.max_count is not None and not relax.max_count:
        upper = min(upper, pool.max_count)
    return max(upper, pool.min_count)


def define_pool_usage(m: Model, data: FleetData, relax: Relaxation) -> None:
    """u[p] = 1 when pool p is used, for the pools of models with usage limits (Eq. O17):
    k_p u_p <= sum_l n[p,l] <= Ubar_p u_p, with Ubar_p = min(U_p, max_count_p) the bound of
    Eqs. O1 and O9 (no big-M beyond it) and k_p = min_count_if_used (1 when not set)."""
    pyo = _api(m)
    used = [p for p in sorted(data.pools)
            if data.scenario.limits_of(data.pools[p].model).needs_usage and not relax.limits
            and data.levels(p) and _pool_ceiling(data, p, relax) > 0]
    if not used:
        return
    m.USED_POOLS = pyo.Set(initialize=used, ordered=True)
    m.pool_used = pyo.Var(m.USED_POOLS, domain=pyo.Binary)
    m.pool_used_high = pyo.Constraint(
        m.USED_POOLS, rule=lambda _m, p: pool_count(_m, data, p)
        <= _pool_ceiling(data, p, relax) * _m.pool_used[p])
    m.pool_used_low = pyo.Constraint(
        m.USED_POOLS, rule=lambda _m, p: pool_count(_m, data, p)
        >= (data.pools[p].min_count_if_used or 1) * _m.pool_used[p])


def define_instance_type_limits(m: Model, data: FleetData,
                                relax: Relaxation) -> None:
    """At most K_{m,r} pools of model m in role r are used (Eq. O18):
    sum_{p of m in r} u_p <= K_{m,r}; rows that cannot bind are left out."""
    pyo = _api(m)
    if not hasattr(m, "pool_used"):
        return
    by_key: dict[tuple[str, str], list[str]] = {}
    for p in m.USED_POOLS:
        pool = data.pools[p]
        by_key.setdefault((pool.model, pool.role), []).append(p)
    rows = {key: k for key, pools in by_key.items()
            if (k := data.scenario.limits_of(key[0]).max_instance_types.get(key[1])) is not None
            and k < len(pools)}
    if not rows:
        return
    m.TYPE_LIMITS = pyo.Set(initialize=sorted(rows), dimen=2, ordered=True)
    m.instance_types = pyo.Constraint(
        m.TYPE_LIMITS, rule=lambda _m, model, role: _sum(_m, (_m.pool_used[p]
                                                              for p in by_key[(model, role)]))
        <= rows[(model, role)])


def define_single_gpu_type(m: Model, data: FleetData, relax: Relaxation) -> None:
    """A model with single_gpu_type runs every pool on one GPU type (Eq. O19): z[m,g] binary,
    u_p <= z[m, g_p] and sum_g z[m,g] <= 1."""
    pyo = _api(m)
    if not hasattr(m, "pool_used"):
        return
    gpus: dict[str, set[str]] = {}
    for p in m.USED_POOLS:
        pool = data.pools[p]
        if data.scenario.limits_of(pool.model).single_gpu_type:
            gpus.setdefault(pool.model, set()).add(pool.gpu)
    pairs = sorted((model, g) for model, gs in gpus.items() if len(gs) > 1 for g in gs)
    if not pairs:
        return
    m.MODEL_GPUS = pyo.Set(initialize=pairs, dimen=2, ordered=True)
    m.model_on_gpu = pyo.Var(m.MODEL_GPUS, domain=pyo.Binary)
    linked = [p for p in m.USED_POOLS if (data.pools[p].model, data.pools[p].gpu) in set(pairs)]
    m.SINGLE_GPU_POOLS = pyo.Set(initialize=linked, ordered=True)
    m.pool_on_gpu = pyo.Constraint(
        m.SINGLE_GPU_POOLS, rule=lambda _m, p: _m.pool_used[p]
        <= _m.model_on_gpu[data.pools[p].model, data.pools[p].gpu])
    models = sorted({model for model, _ in pairs})
    m.SINGLE_GPU_MODELS = pyo.Set(initialize=models, ordered=True)
    m.one_gpu_type = pyo.Constraint(
        m.SINGLE_GPU_MODELS, rule=lambda _m, model: _sum(_m, (
            _m.model_on_gpu[model, g] for mm, g in pairs if mm == model)) <= 1)


def gpus_expr(m: Model, data: FleetData, gpu: str | None = None) -> Any:
    """GPUs of the fleet (of one type): a Pyomo expression, compared in constraints."""
    return _sum(m, (data.pools[p].gpus_per_instance * m.n[p, lvl] for p, lvl in m.GROUPS
                    if gpu is None or data.pools[p].gpu == gpu))


def cost_expr(m: Model, data: FleetData) -> Any:
    """Fleet cost in $/hour: a Pyomo expression, compared in constraints."""
    return _sum(m, (data.pools[p].cost_per_hour * m.n[p, lvl] for p, lvl in m.GROUPS))


def define_inventory(m: Model, data: FleetData, relax: Relaxation) -> None:
    """GPUs of each type within its inventory `count` (Eq. O8); elastic when diagnosing."""
    pyo = _api(m)
    counts = {g: spec.count for g, spec in data.scenario.gpus.items()
              if spec.count is not None and any(p.gpu == g for p in data.pools.values())}
    limited = sorted(counts)
    if relax.inventory == "drop" or not limited:
        return
    m.LIMITED_GPUS = pyo.Set(initialize=limited, ordered=True)
    if relax.inventory == "elastic":
        m.gpu_shortfall = pyo.Var(m.LIMITED_GPUS, domain=pyo.NonNegativeReals)
    m.inventory = pyo.Constraint(
        m.LIMITED_GPUS,
        rule=lambda _m, g: gpus_expr(_m, data, g) <= counts[g]
        + (_m.gpu_shortfall[g] if relax.inventory == "elastic" else 0),
    )


def define_budget(m: Model, data: FleetData, relax: Relaxation) -> None:
    """Fleet cost within the budget in $/hour (Eq. O8)."""
    pyo = _api(m)
    if relax.budget or data.scenario.budget_per_hour is None:
        return
    m.budget = pyo.Constraint(expr=cost_expr(m, data) <= data.scenario.budget_per_hour)


def objective_coefficient(data: FleetData, pool: str, objective: Objective) -> float:
    """What one instance of a pool adds to the primary objective (Eq. O10)."""
    p = data.pools[pool]
    return p.cost_per_hour if objective == Objective.COST else p.gpus_per_instance


def define_model_bounds(m: Model, data: FleetData, objective: Objective,
                        bounds: dict[str, float]) -> None:
    """Each model's share of the objective is at least its bound when solved alone (Eq. O12)."""
    pyo = _api(m)
    models = sorted(k for k in bounds if any(p.model == k for p in data.pools.values()))
    if not models:
        return
    m.BOUNDED_MODELS = pyo.Set(initialize=models, ordered=True)
    m.model_bound = pyo.Constraint(
        m.BOUNDED_MODELS,
        rule=lambda _m, model: _sum(_m, (objective_coefficient(data, p, objective) * _m.n[p, lvl]
                                         for p, lvl in _m.GROUPS
                                         if data.pools[p].model == model))
        >= bounds[model] - 1e-9 * max(1.0, abs(bounds[model])))


def define_objective(m: Model, data: FleetData, objective: Objective,
                     relax: Relaxation) -> None:
    """Minimise $/hour or GPUs (Eq. O10): `objective` is the primary, `secondary` the other, which
    `solve_lexicographic` minimises with the primary held at its optimum. When diagnosing an
    inventory, minimise the GPU shortfall first."""
    pyo = _api(m)
    cost, gpus = cost_expr(m, data), gpus_expr(m, data)
    primary, secondary = (cost, gpus) if objective == Objective.COST else (gpus, cost)
    expr = primary
    m.secondary = pyo.Expression(expr=secondary)
    if relax.inventory == "elastic" and hasattr(m, "gpu_shortfall"):
        # A GPU missing must weigh more than any plan: the largest possible primary objective.
        heavy = 1.0 + sum(
            p.upper_bound * (p.cost_per_hour if objective == Objective.COST
                             else p.gpus_per_instance)
            for p in data.pools.values())
        expr = heavy * _sum(m, (m.gpu_shortfall[g] for g in m.LIMITED_GPUS)) + expr
    m.objective = pyo.Objective(expr=expr, sense=pyo.minimize)
