"""Each model in each period alone, at the cheapest GPU prices (docs/method.md, Eqs. H20-H24):
proven lower bounds that become cuts of the horizon program, a bound of the whole horizon from
them, and a first plan for HiGHS to start from (the parts' counts, reserved GPUs chosen for them,
the rest on demand).

For fixed prices c_g per GPU-hour the period programs of different models share nothing (the
inventories, budget, spot caps, scale limits and warm-up that link them are left out: each part
is a relaxation), so a model's fleet in a period costs at least the optimum Z_{m,t} of its part
(Eq. H21). Z is nondecreasing in the demand, so most periods take their bound and plan from
solved neighbours (Eq. H22). No file formats; Pyomo only through `periods` and `solver`.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from typing import Any

import pyomo.core as pyo
from pyomo.common.collections import ComponentMap

from pdopt.optimize.data import FleetData
from pdopt.optimize.solver import Deadline, solve_model
from pdopt.plan import Status

__all__ = ["PeriodParts", "reserve_for", "solve_period_parts", "start_values"]

# the parts are small: each is solved to this relative gap (its bound is what the cut uses)
PART_GAP = 1e-4


@dataclass
class PeriodParts:
    """What the parts gave: a bound per (model, period), and per (model, period) the integer
    values of a plan serving at least that period's demand of the model: (name of the component,
    index) -> value."""

    bounds: dict[tuple[str, int], float] = field(default_factory=dict)
    values: dict[tuple[str, int], dict[tuple[str, Any], float]] = field(default_factory=dict)
    solved: int = 0  # parts solved (Eq. H22: most periods take theirs from a neighbour)
    complete: bool = True  # every period has a proven bound and a plan
    prices: dict[str, float] = field(default_factory=dict)  # the parts' GPU prices p_g
    # per model, the parts' plans (integer values) and, per period, those serving its demand
    plans: dict[str, list[dict[tuple[str, Any], float]]] = field(default_factory=dict)
    serving: dict[tuple[str, int], list[int]] = field(default_factory=dict)


def _models(data: FleetData) -> list[str]:
    return sorted({pool.model for pool in data.pools.values()})


def _model_data(data: FleetData, model: str, rates: tuple[float, ...]) -> FleetData:
    """One period's coefficients restricted to one model's pools, routes and workloads, with
    the workloads' demand `rates` (in the order of `_workloads`)."""
    names = _workloads(data, model)
    pools = {p: pool for p, pool in data.pools.items() if pool.model == model}
    return replace(
        data, demand_requests_per_s=dict(zip(names, rates, strict=True)), pools=pools,
        prefill_routes=[r for r in data.prefill_routes if r.pool in pools],
        decode_routes=[(w, d) for w, d in data.decode_routes if d in pools],
        table_counts={p: k for p, k in data.table_counts.items() if p in pools})


def _workloads(data: FleetData, model: str) -> list[str]:
    return sorted(w for w in data.demand_requests_per_s if data.workload(w).model == model)


def _below(a: tuple[float, ...], b: tuple[float, ...]) -> bool:
    return all(x <= y for x, y in zip(a, b, strict=True))


@dataclass
class _Solved:
    bound: float | None  # proven lower bound of the part's optimum
    objective: float | None  # its plan's value
    values: dict[tuple[str, Any], float]  # the plan's integer values


def solve_period_parts(hd: Any, deadline: Deadline,
                       prices: dict[str, float] | None = None) -> PeriodParts:
    """A proven bound and a plan for every (model, period) part (Eqs. H20-H22) within
    `deadline`. The optimum Z(d) of a part is nondecreasing in its demand d (a plan for more
    demand serves less with the same integers, its flows scaled down), so a part solved at
    d' <= d bounds Z(d) from below and one at d'' >= d gives a plan for d; when the two meet,
    d needs no solve of its own. The demands of a model are solved in bisection order until
    every period is bracketed (or the time is up: what is left gets the nearest bracket).
    `prices`: the GPU prices p_g of the parts (default c_g of Eq. H20; any p >= 0 gives valid
    cuts, Eq. H21)."""
    from pdopt.optimize.periods import HorizonData, cheapest_gpu_prices

    assert isinstance(hd, HorizonData)
    prices = prices or cheapest_gpu_prices(hd.scenario, hd.gpu_types())
    out = PeriodParts(prices=prices)
    T = range(len(hd.hours))
    for model in _models(hd.peak):
        names = _workloads(hd.peak, model)
        demand = {t: tuple(hd.periods[t].demand_requests_per_s[w] for w in names) for t in T}
        levels = sorted(set(demand.values()), key=lambda d: (sum(d), d))
        parts = _ModelParts(hd, model, prices, deadline)
        # bisection over the levels sorted by total demand: the ends first, then the middle
        # of every run of levels not yet closed
        for d in (levels[0], levels[-1]):
            if not deadline.passed() and d not in parts.solved:
                parts.solve(d)
        spans = [(0, len(levels) - 1)]
        while spans and not deadline.passed():
            lo, hi = spans.pop(0)
            inner = [k for k in range(lo + 1, hi) if levels[k] not in parts.solved
                     and not parts.closed(levels[k])]
            if not inner:
                continue
            mid = inner[len(inner) // 2]
            parts.solve(levels[mid])
            spans += [(lo, mid), (mid, hi)]
        out.solved += len(parts.solved)
        found = [(d, s) for d, s in parts.solved.items() if s.objective is not None]
        out.plans[model] = [s.values for _, s in found]
        for t in T:
            out.serving[(model, t)] = [k for k, (d, _) in enumerate(found)
                                       if _below(demand[t], d)]
        for t in T:
            low, high = parts.bracket(demand[t])  # (its own part when solved)
            if low is not None and low.bound is not None:
                # HiGHS's bound within its tolerances: keep the cut a hair below it
                out.bounds[(model, t)] = low.bound - 1e-6 * max(1.0, abs(low.bound))
            else:
                out.complete = False
            if high is not None:
                out.values[(model, t)] = high.values
            else:
                out.complete = False
    return out


class _ModelParts:
    """One model's parts, by demand (the workloads' rates in `_workloads` order)."""

    def __init__(self, hd: Any, model: str, prices: dict[str, float],
                 deadline: Deadline) -> None:
        self.hd, self.model, self.prices, self.deadline = hd, model, prices, deadline
        self.solved: dict[tuple[float, ...], _Solved] = {}

    def solve(self, d: tuple[float, ...]) -> None:
        from pdopt.optimize.periods import HorizonData, create_horizon_model

        part = create_horizon_model(HorizonData(
            self.hd.scenario, [1.0], [_model_data(self.hd.peak, self.model, d)], {}),
            gpu_prices=self.prices)
        report = solve_model(part, mip_gap=PART_GAP, deadline=self.deadline.share(0.5))
        bound = report.dual_bound
        if bound is None and report.status == Status.OPTIMAL:
            bound = report.objective_value
        values: dict[tuple[str, Any], float] = {}
        if report.status.has_plan:
            for var in part.component_data_objects(pyo.Var):
                if var.is_integer() and var.value is not None:
                    name = var.parent_component().getname(fully_qualified=True,
                                                           relative_to=part)
                    values[(name, var.index())] = round(var.value)
        self.solved[d] = _Solved(bound, report.objective_value if values else None, values)

    def bracket(self, d: tuple[float, ...]) -> tuple[_Solved | None, _Solved | None]:
        """The solved part with the highest bound at a demand <= d, and the one with the
        cheapest plan at a demand >= d."""
        low = [s for e, s in self.solved.items() if _below(e, d) and s.bound is not None]
        high = [s for e, s in self.solved.items() if _below(d, e) and s.objective is not None]
        return (max(low, key=lambda s: s.bound or 0.0, default=None),
                min(high, key=lambda s: s.objective or 0.0, default=None))

    def closed(self, d: tuple[float, ...]) -> bool:
        low, high = self.bracket(d)
        return low is not None and high is not None and low.bound is not None \
            and high.objective is not None \
            and low.bound >= high.objective - 1e-6 * max(1.0, abs(high.objective))


def smooth(hd: Any, parts: PeriodParts) -> None:
    """Re-choose each model's plan per period among the parts' plans that serve its demand,
    trading the warm-up of instances added (Eq. H11) against the instance-hours kept (priced at
    c, Eq. H20): a shortest path over the periods (around the cycle when the periods are
    cyclic), one per model (Eq. H23). Changes `parts.values`; bounds are untouched."""
    import numpy as np

    sc = hd.scenario
    warm_h = sc.periods.warm_up_minutes / 60 if sc.periods is not None else 0.0
    if warm_h <= 0 or len(hd.hours) < 2:
        return
    from pdopt.optimize.periods import cheapest_gpu_prices

    prices = cheapest_gpu_prices(sc, hd.gpu_types())
    T = len(hd.hours)
    cyclic = sc.periods is not None and sc.periods.cyclic
    for model, plans in parts.plans.items():
        if not plans or any(not parts.serving[(model, t)] for t in range(T)):
            continue
        pools = sorted(p for p, pool in hd.peak.pools.items() if pool.model == model)
        totals = np.array([[sum(v for (name, index), v in plan.items()
                                if (name == "p0.n" and index[0] == p)
                                or (name == "spare" and index[0] == p)) for p in pools]
                           for plan in plans])
        od = np.array([hd.peak.pools[p].cost_per_hour for p in pools])
        priced = totals @ np.array([prices[hd.peak.pools[p].gpu]
                                    * hd.peak.pools[p].gpus_per_instance for p in pools])
        # warm[i, j]: warm-up of going from plan i to plan j
        warm = warm_h * (np.maximum(0.0, totals[None, :, :] - totals[:, None, :]) @ od)
        big = np.inf
        stages = np.full((T, len(plans)), big)  # h_t c-priced value of each plan serving t
        for t in range(T):
            ok = parts.serving[(model, t)]
            stages[t, ok] = hd.hours[t] * priced[ok]
        best_total, best_path = big, None
        for first in (parts.serving[(model, 0)] if cyclic else [None]):
            value = stages[0].copy()
            if first is not None:
                value = np.where(np.arange(len(plans)) == first, value, big)
            back = []
            for t in range(1, T):
                step = value[:, None] + warm
                arg = step.argmin(axis=0)
                back.append(arg)
                value = step[arg, np.arange(len(plans))] + stages[t]
            if first is not None:
                value = value + warm[:, first]
            last = int(value.argmin())
            if value[last] < best_total:
                path = [last]
                for arg in reversed(back):
                    path.append(int(arg[path[-1]]))
                best_total, best_path = float(value[last]), list(reversed(path))
        if best_path is not None:
            for t, k in enumerate(best_path):
                parts.values[(model, t)] = plans[k]


def reserve_for(needs: list[float], hours: list[float], reserved: float, on_demand: float,
                least: int = 0) -> int:
    """Reserved GPUs R minimising sum_t h_t (reserved R + on_demand max(0, G_t - R)) for the GPUs
    G_t needed in each period (Eq. H23): a convex piecewise-linear function of R with its
    breakpoints at the needs, so the best is one of them (or the minimum `least`)."""
    def cost(r: int) -> float:
        return sum(h * (reserved * r + on_demand * max(0.0, g - r))
                   for g, h in zip(needs, hours, strict=True))

    candidates = {least} | {max(least, math.ceil(g - 1e-9)) for g in needs}
    return min(sorted(candidates), key=cost)


def start_values(hd: Any, m: pyo.ConcreteModel, parts: PeriodParts) -> ComponentMap:
    """A plan of the horizon program from the parts (Eq. H23): each model's counts, spares and
    flows in each period as its part chose them, reserved GPUs per type by `reserve_for`, the
    rest on demand. Empty when some part has no plan (HiGHS then starts from nothing)."""
    from pdopt.optimize.periods import HorizonData

    assert isinstance(hd, HorizonData)
    models = _models(hd.peak)
    T = range(len(hd.hours))
    if any((model, t) not in parts.values for model in models for t in T):
        return ComponentMap()
    start = ComponentMap()
    for (_, t), values in parts.values.items():
        for (name, index), value in values.items():
            if name.startswith("p0."):  # the period block
                target = m.find_component(f"p{t}." + name[3:])
            elif name in ("spare", "used"):
                target, index = m.find_component(name), (index[0], t)
            else:
                continue
            if target is not None and index in target:
                start[target[index]] = value
    gpus = hd.gpu_types()
    need = {g: [0.0 for _ in T] for g in gpus}
    for t in T:
        for p, pool in hd.peak.pools.items():
            serving = sum(start.get(m.find_component(f"p{t}").n[p, lvl], 0.0)
                          for lvl in range(len(hd.peak.levels(p))))
            spare = start.get(m.spare[p, t], 0.0) if p in m.SPARE_POOLS else 0.0
            need[pool.gpu][t] += pool.gpus_per_instance * (round(serving) + round(spare))
    spec = hd.scenario.gpus
    for g in gpus:
        r = 0
        if g in m.RESERVED:
            option = spec[g].reserved
            assert option is not None
            r = reserve_for(need[g], hd.hours, option.cost_per_hour, spec[g].cost_per_hour,
                            option.min_gpus)
            start[m.reserved[g]] = r
        for t in T:
            start[m.on_demand[g, t]] = max(0, math.ceil(need[g][t] - r - 1e-9))
            if g in m.SPOT:
                start[m.spot[g, t]] = 0
    return start


def purchase_bound(hd: Any, parts: PeriodParts, more: Sequence[PeriodParts] = ()) -> float | None:
    """A lower bound of the horizon program from the parts' bounds alone (Eq. H24): the linear
    program over GPUs x_{m,t,g} of model m on type g in period t, reserved R_g, on-demand O_{g,t}
    and spot S_{g,t} GPUs (all continuous) with the purchase rows H3, H4, H8, the parts' cuts
    sum_g p_g x_{m,t,g} >= Z_{m,t} of `parts` and of each of `more` (their own prices p) and a
    lower bound of the warm-up; the fleets' other rows left out.
    None when HiGHS does not solve it to optimality."""
    import highspy

    from pdopt.optimize.periods import HorizonData, cheapest_gpu_prices

    assert isinstance(hd, HorizonData)
    sc = hd.scenario
    gpus = hd.gpu_types()
    prices = cheapest_gpu_prices(sc, gpus)
    T = range(len(hd.hours))
    models = _models(hd.peak)
    types_of = {m: sorted({p.gpu for p in hd.peak.pools.values() if p.model == m})
                for m in models}
    h = highspy.Highs()
    h.setOptionValue("output_flag", False)
    inf = highspy.kHighsInf
    cols: dict[tuple[Any, ...], int] = {}

    def col(key: tuple[Any, ...], cost: float, low: float = 0.0, high: float = inf) -> None:
        cols[key] = h.getNumCol()
        h.addCol(cost, low, high, 0, [], [])

    hours = sum(hd.hours)
    for g in gpus:
        spec = sc.gpus[g]
        if spec.reserved is not None:
            col(("R", g), hours * spec.reserved.cost_per_hour, spec.reserved.min_gpus)
        for t in T:
            col(("O", g, t), hd.hours[t] * spec.cost_per_hour)
            if spec.spot is not None:
                high = inf if spec.spot.max_gpus is None else spec.spot.max_gpus
                col(("S", g, t), hd.hours[t] * spec.spot.cost_per_hour, 0.0, high)
    for m in models:
        for t in T:
            for g in types_of[m]:
                col(("x", m, t, g), 0.0)

    def row(entries: list[tuple[tuple[Any, ...], float]], low: float, high: float) -> None:
        present = [(cols[k], v) for k, v in entries if k in cols]
        h.addRow(low, high, len(present), [c for c, _ in present], [v for _, v in present])

    for t in T:
        budget: list[tuple[tuple[Any, ...], float]] = []
        for g in gpus:
            spec = sc.gpus[g]
            users = [(("x", m, t, g), -1.0) for m in models if g in types_of[m]]
            share = spec.spot.interruption_share if spec.spot is not None else 0.0
            row([(("R", g), 1.0), (("O", g, t), 1.0), (("S", g, t), 1 - share)] + users,
                0.0, inf)  # H3
            if spec.count is not None:
                row([(("R", g), 1.0), (("O", g, t), 1.0), (("S", g, t), 1.0)], -inf,
                    spec.count)  # H4
            if spec.spot is not None and spec.spot.max_share is not None:
                row([(("S", g, t), 1.0)] + [(k, -spec.spot.max_share * -v) for k, v in users],
                    -inf, 0.0)  # H4: S <= max_share G
            budget += [(("R", g), spec.reserved.cost_per_hour if spec.reserved else 0.0),
                       (("O", g, t), spec.cost_per_hour),
                       (("S", g, t), spec.spot.cost_per_hour if spec.spot else 0.0)]
        if sc.budget_per_hour is not None:
            row(budget, -inf, sc.budget_per_hour)  # H8
        for m in models:
            for cuts in (parts, *more):
                if (m, t) in cuts.bounds:
                    row([(("x", m, t, g), cuts.prices[g]) for g in types_of[m]],
                        cuts.bounds[(m, t)], inf)  # H21
    # warm-up (Eq. H11): an instance of pool p added costs (w/60) od_g G_p >= (w/60) rho_m c_g G_p
    # with rho_m = min od_g / c_g over model m's types, so model m pays at least
    # (w/60) rho_m max(0, X_{m,b} - X_{m,a}) per step a -> b, X_{m,t} = sum_g c_g x_{m,t,g}
    warm_h = sc.periods.warm_up_minutes / 60 if sc.periods is not None else 0.0
    steps = [(t - 1, t) for t in T if t > 0]
    if sc.periods is not None and sc.periods.cyclic and len(hd.hours) > 1:
        steps.append((len(hd.hours) - 1, 0))
    if warm_h > 0:
        for m in models:
            rho = min(sc.gpus[g].cost_per_hour / prices[g] for g in types_of[m])
            for a, b in steps:
                col(("a", m, a, b), warm_h * rho)
                row([(("a", m, a, b), 1.0)]
                    + [(("x", m, b, g), -prices[g]) for g in types_of[m]]
                    + [(("x", m, a, g), prices[g]) for g in types_of[m]], 0.0, inf)
    h.run()
    if h.getModelStatus() != highspy.HighsModelStatus.kOptimal:
        return None
    # the dual objective would be the safe side; HiGHS's primal value at optimality is within
    # its tolerances of it, so keep a hair below
    value = h.getInfo().objective_function_value
    return value - 1e-6 * max(1.0, abs(value))
