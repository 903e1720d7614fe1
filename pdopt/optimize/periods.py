"""Plans over a horizon of periods (docs/method.md, section H): one copy of the fleet program
(section O) per period, linked by what is bought (reserved GPUs constant over the horizon,
on-demand and spot GPUs per period), spare instances (N+k), scale limits and warm-up; the
objective is the total cost over the horizon.

    plan = solve_horizon("scenarios/day-ahead.yaml")

The coefficients are computed once, at each workload's peak rate (a pool's bound U_p at the peak
is a bound in every period), and each period's copy gets its own demand (Eq. H1). Pyomo only
here and in `model`; no file formats.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import pyomo.environ as pyo

from pdopt.optimize.data import FleetData, build_fleet_data
from pdopt.optimize.diagnose import unroutable_workloads
from pdopt.optimize.extract import build_plan, limit_messages
from pdopt.optimize.model import Relaxation, create_model, pool_count
from pdopt.optimize.period_parts import (
    PeriodParts,
    purchase_bound,
    smooth,
    solve_period_parts,
    start_values,
)
from pdopt.optimize.solver import Deadline, ProgressFn, relative_gap, solve_lexicographic
from pdopt.plan import Objective, PeriodPlan, Plan, SolverReport, Status
from pdopt.scenario.demand import period_rates
from pdopt.scenario.prepare import PreparedScenario, prepare
from pdopt.scenario.schema import Gpu, Scenario

__all__ = ["HorizonData", "build_horizon_data", "create_horizon_model", "solve_horizon"]

# Of the time limit, the (model, period) parts (Eqs. H20-H23) may take at most this share; the
# horizon program gets the rest.
PARTS_SHARE = 0.5
# With the parts and objective cost, the second lexicographic stage (GPU-hours at the cost found,
# Eq. O10) gets at most this many times the first stage's time: it only breaks ties, and the
# first stage's plan stays when it finds nothing better. (With objective gpus the second stage
# is the cost: it gets all the time left.)
SECONDARY_FACTOR = 0.5
# Reading a period's plan back from the solved program (build_plan) takes about this long on the
# development machine under load (144 periods: 8 s at load average 10).
EXTRACT_S_PER_PERIOD = 0.05


@dataclass
class HorizonData:
    """The program's coefficients: the fleet's at peak demand, one demand per period."""

    scenario: Scenario
    hours: list[float]
    periods: list[FleetData]  # the peak coefficients with each period's demand (Eq. H1)
    rates: dict[str, list[float]]  # workload -> requests/s per period (headroom not applied)

    @property
    def peak(self) -> FleetData:
        return self.periods[0]

    def gpu_types(self) -> list[str]:
        return sorted({p.gpu for p in self.peak.pools.values()})

    def spares(self, pool: str) -> tuple[int, float]:
        """(k spare instances, spare fraction) of a pool (Eqs. H5, H6)."""
        red = self.scenario.redundancy
        if red is None:
            return 0, 0.0
        return red.of(pool, self.peak.pools[pool].model)


def peak_scenario(scenario: Scenario, rates: dict[str, list[float]]) -> Scenario:
    """The scenario with every workload at its highest rate over the horizon."""
    workloads = [w.model_copy(update={"requests_per_s": max(rates[w.name]), "tokens_per_s": None,
                                      "tokens_per_minute": None, "demand": None})
                 for w in scenario.workloads]
    return scenario.model_copy(update={"workloads": workloads})


def build_horizon_data(scenario: Scenario) -> HorizonData:
    """Coefficients at peak demand, and each period's demand with headroom (Eq. H1)."""
    rates = period_rates(scenario)
    peak = build_fleet_data(peak_scenario(scenario, rates))
    periods = []
    for t in range(len(scenario.horizon_hours)):
        demand = {w.name: rates[w.name][t] * scenario.headroom_of(w) for w in scenario.workloads}
        periods.append(replace(peak, demand_requests_per_s=demand))
    return HorizonData(scenario, scenario.horizon_hours, periods, rates)


def _price(gpu: Gpu, option: str) -> float:
    if option == "reserved":
        return gpu.reserved.cost_per_hour if gpu.reserved is not None else 0.0
    if option == "spot":
        return gpu.spot.cost_per_hour if gpu.spot is not None else 0.0
    return gpu.cost_per_hour


def create_horizon_model(hd: HorizonData, *,
                         period_cuts: Sequence[tuple[dict[str, float],
                                                    dict[tuple[str, int], float]]] = (),
                         gpu_prices: dict[str, float] | None = None,
                         counted_pools: set[str] | None = None,
                         objective: Objective | str = Objective.COST) -> pyo.ConcreteModel:
    """The program of section H: period blocks `p0..`, purchases, spares, scale limits.

    `period_cuts`: (GPU prices p, (model, period) -> a proven lower bound of that model's fleet
    in that period priced at p), added as cuts (Eq. H21). With `gpu_prices` the
    program is instead the priced period program of Eq. H20: no purchases, budget, inventories,
    scale limits or warm-up; the objective is sum_t h_t sum_g c_g G_{g,t} over `counted_pools`
    (all pools when None). `objective` `gpus`: GPU-hours first, then the cost (Eq. O10)."""
    sc = hd.scenario
    m = pyo.ConcreteModel(name=sc.name)
    T = range(len(hd.hours))
    relax = Relaxation(budget=True, inventory="drop" if gpu_prices is not None else "hard")
    for t in T:
        # each period's copy of section O, without its objective and budget (both are the
        # horizon's: Eqs. H7, H8)
        block = create_model(hd.periods[t], Objective.COST, relax)
        block.objective.deactivate()
        m.add_component(f"p{t}", block)
    blocks = [getattr(m, f"p{t}") for t in T]
    if gpu_prices is None:
        define_horizon_limits(m, hd, blocks)
    pools = sorted(hd.peak.pools)
    gpus = hd.gpu_types()
    m.T = pyo.Set(initialize=list(T), ordered=True)
    m.POOLS = pyo.Set(initialize=pools, ordered=True)
    m.GPU_TYPES = pyo.Set(initialize=gpus, ordered=True)

    def upper(p: str) -> int:
        return hd.peak.pools[p].upper_bound

    # spares s[p,t] (Eqs. H5, H6): k when the pool is used, at least f of its serving count
    spare_pools = [p for p in pools if any(hd.spares(p))]
    m.SPARE_POOLS = pyo.Set(initialize=spare_pools, ordered=True)
    m.spare = pyo.Var(m.SPARE_POOLS, m.T, domain=pyo.NonNegativeIntegers,
                      bounds=lambda _m, p, t: (0, max(hd.spares(p)[0],
                                                      _ceil_fraction(hd.spares(p)[1], upper(p)))))
    k_pools = [p for p in spare_pools if hd.spares(p)[0] > 0]
    m.K_POOLS = pyo.Set(initialize=k_pools, ordered=True)
    m.used = pyo.Var(m.K_POOLS, m.T, domain=pyo.Binary)
    m.used_link = pyo.Constraint(m.K_POOLS, m.T, rule=lambda _m, p, t: pool_count(
        blocks[t], hd.periods[t], p) <= upper(p) * _m.used[p, t])
    m.spare_k = pyo.Constraint(m.K_POOLS, m.T, rule=lambda _m, p, t: _m.spare[p, t]
                               >= hd.spares(p)[0] * _m.used[p, t])
    f_pools = [p for p in spare_pools if hd.spares(p)[1] > 0]
    m.F_POOLS = pyo.Set(initialize=f_pools, ordered=True)
    m.spare_f = pyo.Constraint(m.F_POOLS, m.T, rule=lambda _m, p, t: _m.spare[p, t]
                               >= hd.spares(p)[1] * _serving(blocks[t], hd.periods[t], p))

    def total(p: str, t: int) -> Any:
        """Instances of pool p running in period t: serving plus spares."""
        serving = pool_count(blocks[t], hd.periods[t], p)
        return serving + m.spare[p, t] if p in spare_pools else serving

    def gpus_needed(g: str, t: int) -> Any:
        return sum(hd.peak.pools[p].gpus_per_instance * total(p, t) for p in pools
                   if hd.peak.pools[p].gpu == g)

    def spare_gpus(g: str, t: int) -> Any:
        return sum(hd.peak.pools[p].gpus_per_instance * m.spare[p, t] for p in spare_pools
                   if hd.peak.pools[p].gpu == g)

    # a role of a model with demand keeps a pool in use, and every pool of it has k spares when
    # used: at least one u of them is 1 (Eq. H25, a valid inequality that tightens H5)
    by_role: dict[tuple[str, str], list[str]] = {}
    for p in pools:
        by_role.setdefault((hd.peak.pools[p].model, hd.peak.pools[p].role), []).append(p)
    one_used = [(key, t) for key, members in sorted(by_role.items()) for t in T
                if all(p in k_pools for p in members)
                and _model_demand(hd.periods[t], key[0]) > 0]
    m.ROLE_IN_USE = pyo.Set(initialize=range(len(one_used)), ordered=True)
    m.role_in_use = pyo.Constraint(m.ROLE_IN_USE, rule=lambda _m, i: sum(
        _m.used[p, one_used[i][1]] for p in by_role[one_used[i][0]]) >= 1)

    def priced_gpus(model: str | None, t: int, prices: dict[str, float]) -> Any:
        """sum_g c_g G_{g,t} over the pools of `model` (all when None) (Eqs. H20, H21)."""
        return sum(prices[hd.peak.pools[p].gpu] * hd.peak.pools[p].gpus_per_instance
                   * total(p, t) for p in pools
                   if (model is None or hd.peak.pools[p].model == model)
                   and (counted_pools is None or p in counted_pools))

    if gpu_prices is not None:
        m.objective = pyo.Objective(expr=sum(hd.hours[t] * priced_gpus(None, t, gpu_prices)
                                             for t in T), sense=pyo.minimize)
        return m
    cuts = [(prices, key, bound) for prices, bounds in period_cuts
            for key, bound in sorted(bounds.items())]
    if cuts:
        m.PERIOD_BOUNDS = pyo.Set(initialize=range(len(cuts)), ordered=True)
        m.period_bound = pyo.Constraint(m.PERIOD_BOUNDS, rule=lambda _m, i: priced_gpus(
            cuts[i][1][0], cuts[i][1][1], cuts[i][0]) >= cuts[i][2])

    # purchases (Eqs. H2-H4)
    spec = sc.gpus
    reserved = [g for g in gpus if spec[g].reserved is not None]
    spot = [g for g in gpus if spec[g].spot is not None]
    m.RESERVED = pyo.Set(initialize=reserved, ordered=True)
    m.SPOT = pyo.Set(initialize=spot, ordered=True)
    m.reserved = pyo.Var(m.RESERVED, domain=pyo.NonNegativeIntegers,
                         bounds=lambda _m, g: (spec[g].reserved.min_gpus, None))  # type: ignore
    m.on_demand = pyo.Var(m.GPU_TYPES, m.T, domain=pyo.NonNegativeIntegers)
    m.spot = pyo.Var(m.SPOT, m.T, domain=pyo.NonNegativeIntegers,
                     bounds=lambda _m, g, t: (0, spec[g].spot.max_gpus))  # type: ignore

    def bought(g: str, t: int, effective: bool) -> Any:
        expr = m.on_demand[g, t] + (m.reserved[g] if g in reserved else 0)
        if g in spot:
            share = spec[g].spot.interruption_share if effective else 0.0  # type: ignore
            expr = expr + (1 - share) * m.spot[g, t]
        return expr

    m.cover_gpus = pyo.Constraint(m.GPU_TYPES, m.T, rule=lambda _m, g, t: bought(g, t, True)
                                  >= gpus_needed(g, t))
    limited = [g for g in gpus if spec[g].count is not None]
    m.INVENTORY = pyo.Set(initialize=limited, ordered=True)
    m.horizon_inventory = pyo.Constraint(m.INVENTORY, m.T, rule=lambda _m, g, t: bought(
        g, t, False) <= spec[g].count)
    m.spot_share = pyo.Constraint(
        [(g, t) for g in spot for t in T if spec[g].spot.max_share is not None],  # type: ignore
        rule=lambda _m, g, t: _m.spot[g, t]
        <= spec[g].spot.max_share * gpus_needed(g, t))  # type: ignore
    m.spot_covered = pyo.Constraint(
        [(g, t) for g in spot for t in T if spec[g].spot.covered_by_spares],  # type: ignore
        rule=lambda _m, g, t: _m.spot[g, t] <= spare_gpus(g, t))

    # scale limits and warm-up between consecutive periods (Eqs. H10, H11)
    per = sc.periods
    steps = [(t - 1, t) for t in T if t > 0]
    if per is not None and per.cyclic and len(hd.hours) > 1:
        steps.append((len(hd.hours) - 1, 0))
    if per is not None and per.max_add is not None:
        m.scale_up = pyo.Constraint(m.POOLS, steps, rule=lambda _m, p, a, b: total(p, b)
                                    - total(p, a) <= per.max_add)
    if per is not None and per.max_remove is not None:
        m.scale_down = pyo.Constraint(m.POOLS, steps, rule=lambda _m, p, a, b: total(p, a)
                                      - total(p, b) <= per.max_remove)
    warm_h = per.warm_up_minutes / 60 if per is not None else 0.0
    warm_cost: Any = 0.0
    if warm_h > 0 and steps:
        m.added = pyo.Var(m.POOLS, steps, domain=pyo.NonNegativeReals)
        m.added_at_least = pyo.Constraint(m.POOLS, steps, rule=lambda _m, p, a, b: _m.added[
            p, a, b] >= total(p, b) - total(p, a))
        warm_cost = sum(warm_h * hd.peak.pools[p].cost_per_hour * m.added[p, a, b]
                        for p in pools for a, b in steps)

    def period_cost_per_hour(t: int) -> Any:
        return sum(_price(spec[g], "on_demand") * m.on_demand[g, t] for g in gpus) \
            + sum(_price(spec[g], "reserved") * m.reserved[g] for g in reserved) \
            + sum(_price(spec[g], "spot") * m.spot[g, t] for g in spot)

    m.period_cost_per_hour = pyo.Expression(m.T, rule=lambda _m, t: period_cost_per_hour(t))
    if sc.budget_per_hour is not None:
        m.horizon_budget = pyo.Constraint(m.T, rule=lambda _m, t: _m.period_cost_per_hour[t]
                                          <= sc.budget_per_hour)
    m.warm_up_cost = pyo.Expression(expr=warm_cost)
    m.total_cost = pyo.Expression(
        expr=sum(hd.hours[t] * m.period_cost_per_hour[t] for t in T) + m.warm_up_cost)
    gpu_hours = sum(hd.hours[t] * gpus_needed(g, t) for g in gpus for t in T)
    # Eq. O10 over the horizon: cost then GPU-hours, or GPU-hours then cost
    primary, secondary = (m.total_cost, gpu_hours) if Objective(objective) == Objective.COST \
        else (gpu_hours, m.total_cost)
    m.objective = pyo.Objective(expr=primary, sense=pyo.minimize)
    m.secondary = pyo.Expression(expr=secondary)
    return m


def define_horizon_limits(m: pyo.ConcreteModel, hd: HorizonData, blocks: list[Any]) -> None:
    """The instance types a model may use per role (O18) and its one GPU type (O19) hold over the
    whole horizon, not only in each period (Eq. H26): e_p = 1 when pool p is used in any period,
    u_{p,t} <= e_p, sum_{p of m in r} e_p <= K_{m,r}; with single_gpu_type e_p <= z_{m,g_p} and
    sum_g z_{m,g} <= 1. (min_count_if_used and the utilisation cap are per period: O17, O16.)"""
    first = blocks[0]
    if len(blocks) < 2 or not hasattr(first, "pool_used") or not (
            hasattr(first, "instance_types") or hasattr(first, "one_gpu_type")):
        return
    data, pools = hd.peak, list(first.USED_POOLS)
    m.EVER_USED = pyo.Set(initialize=pools, ordered=True)
    m.ever_used = pyo.Var(m.EVER_USED, domain=pyo.Binary)
    m.ever_used_link = pyo.Constraint(m.EVER_USED, range(len(blocks)), rule=lambda _m, p, t:
                                      blocks[t].pool_used[p] <= _m.ever_used[p])
    if hasattr(first, "instance_types"):
        rows = list(first.TYPE_LIMITS)
        m.horizon_instance_types = pyo.Constraint(rows, rule=lambda _m, model, role: sum(
            _m.ever_used[p] for p in pools
            if (data.pools[p].model, data.pools[p].role) == (model, role))
            <= data.scenario.limits_of(model).max_instance_types[role])
    if hasattr(first, "one_gpu_type"):
        pairs = list(first.MODEL_GPUS)
        m.HORIZON_MODEL_GPUS = pyo.Set(initialize=pairs, dimen=2, ordered=True)
        m.horizon_model_on_gpu = pyo.Var(m.HORIZON_MODEL_GPUS, domain=pyo.Binary)
        linked = [p for p in first.SINGLE_GPU_POOLS]
        m.horizon_pool_on_gpu = pyo.Constraint(linked, rule=lambda _m, p: _m.ever_used[p]
                                               <= _m.horizon_model_on_gpu[
                                                   data.pools[p].model, data.pools[p].gpu])
        models = sorted({model for model, _ in pairs})
        m.horizon_one_gpu_type = pyo.Constraint(models, rule=lambda _m, model: sum(
            _m.horizon_model_on_gpu[model, g] for mm, g in pairs if mm == model) <= 1)


def cheapest_gpu_prices(sc: Scenario, gpus: list[str]) -> dict[str, float]:
    """c_g: the least a GPU of type g can cost per hour of serving (Eq. H20): on demand,
    reserved, or spot per GPU not away (price / (1 - interruption share))."""
    out = {}
    for g in gpus:
        spec = sc.gpus[g]
        prices = [spec.cost_per_hour]
        if spec.reserved is not None:
            prices.append(spec.reserved.cost_per_hour)
        if spec.spot is not None and spec.spot.interruption_share < 1:
            prices.append(spec.spot.cost_per_hour / (1 - spec.spot.interruption_share))
        out[g] = min(prices)
    return out


def _model_demand(data: FleetData, model: str) -> float:
    return sum(rate for w, rate in data.demand_requests_per_s.items()
               if data.workload(w).model == model)


def _serving(block: pyo.ConcreteModel, data: FleetData, pool: str) -> Any:
    """A pool's serving instances in one period's copy of section O (its n summed over groups)."""
    return pool_count(block, data, pool)


def _ceil_fraction(fraction: float, count: int) -> int:
    return int(-(-fraction * count // 1)) if fraction > 0 else 0


def solve_horizon(scenario: PreparedScenario | Scenario | str | Path, *,
                  time_limit_s: float | None = None, mip_gap: float | None = None,
                  threads: int | None = None, progress: ProgressFn | None = None,
                  compare: bool = True, period_parts: bool = True,
                  objective: Objective | str | None = None) -> Plan:
    """The cheapest plan over the horizon (section H). The plan's `pools` are those of its
    dearest period; `periods` has every period's counts and cost. With `compare`, the plan's
    `comparison` holds the total cost of the same demand sized statically for its peak and
    bought all on demand (each solved in a share of the time limit). `period_parts`: start
    from the (model, period) parts' cuts and plan (Eqs. H20-H23); False solves the horizon
    program alone (the first version, kept for benchmarks). `objective` (default the
    scenario's): `cost`, or `gpus` for the fewest GPU-hours, then the cheapest (Eq. O10); the
    comparisons are always the cheapest."""
    start = time.perf_counter()
    prepared = prepare(scenario)
    sc = prepared.scenario
    time_limit_s = time_limit_s if time_limit_s is not None else sc.options.time_limit_s
    mip_gap = mip_gap if mip_gap is not None else sc.options.mip_gap
    deadline = Deadline(time.time() + time_limit_s - (time.perf_counter() - start))
    own = deadline.share(0.6) if compare else deadline
    goal = Objective(objective or sc.options.objective)
    plan = _solve(sc, own, mip_gap, threads, progress, start, period_parts, goal)
    if not compare or not plan.has_plan:
        return plan
    comparison: dict[str, float | None] = {}
    for name, variant in (("static_peak", static_peak(sc)), ("all_on_demand", all_on_demand(sc))):
        other = _solve(variant, deadline.share(0.5 if name == "static_peak" else 1.0),
                       mip_gap, threads, None, time.perf_counter(), period_parts)
        comparison[f"{name}_total_cost"] = other.total_cost if other.has_plan else None
        comparison[f"{name}_mip_gap"] = other.mip_gap
    return replace(plan, comparison=comparison)


def static_peak(scenario: Scenario) -> Scenario:
    """The same horizon with one fleet for all of it, sized for every workload's peak: one
    period as long as the horizon at peak demand (purchase options unchanged)."""
    rates = period_rates(scenario)
    peak = peak_scenario(scenario, rates)
    hours = sum(scenario.horizon_hours)
    periods = None if scenario.periods is None else scenario.periods.model_copy(
        update={"count": None, "length_h": None, "lengths_h": [hours]})
    return peak.model_copy(update={"periods": periods})


def all_on_demand(scenario: Scenario) -> Scenario:
    """The same scenario with neither reserved nor spot capacity."""
    gpus = {g: spec.model_copy(update={"reserved": None, "spot": None})
            for g, spec in scenario.gpus.items()}
    return scenario.model_copy(update={"gpus": gpus})


def _solve(sc: Scenario, deadline: Deadline, mip_gap: float, threads: int | None,
           progress: ProgressFn | None, start: float, period_parts: bool = True,
           goal: Objective = Objective.COST) -> Plan:
    hd = build_horizon_data(sc)
    blocked = unroutable_workloads(hd.peak)
    if blocked:
        return Plan.without_plan(scenario=sc.name, status=Status.INFEASIBLE,
                                 objective=goal, diagnosis=blocked)
    parts: PeriodParts | None = None
    cut_sets: list[PeriodParts] = []
    if period_parts and len(hd.hours) > 1:
        # each model in each period alone (Eqs. H20-H23): cuts and a plan to start from; one
        # period is the program of section O as it is
        until = deadline.share(PARTS_SHARE)
        parts = solve_period_parts(hd, until)
        # and priced by the GPU (the fewest GPUs of each model in each period): cuts only
        cut_sets = [parts, solve_period_parts(hd, until, prices={g: 1.0 for g in hd.gpu_types()})]
    m = create_horizon_model(hd, period_cuts=[(p.prices, p.bounds) for p in cut_sets],
                             objective=goal)
    first, bound = None, None
    if parts is not None:
        smooth(hd, parts)  # fewer instances started and stopped (Eq. H23)
        first = start_values(hd, m, parts)
        bound = purchase_bound(hd, parts, cut_sets[1:])  # Eq. H24
        if bound is not None:  # a proven bound as a row: HiGHS's bound starts there
            m.horizon_bound = pyo.Constraint(expr=m.total_cost >= bound)
    build_seconds = time.perf_counter() - start
    # reading the plan back takes time per period: HiGHS stops early enough for it
    until = deadline.share(1.0, keep_s=EXTRACT_S_PER_PERIOD * len(hd.hours)) if parts \
        else deadline
    report = solve_lexicographic(m, deadline=until, mip_gap=mip_gap, threads=threads,
                                 progress=progress, start=first,
                                 secondary_factor=SECONDARY_FACTOR
                                 if parts and goal == Objective.COST else None,
                                 known_bound=bound if goal == Objective.COST else None)
    if parts and report.status == Status.INFEASIBLE:
        # the cuts are proven bounds; should HiGHS's tolerances disagree, the program alone
        # decides infeasibility
        return _solve(sc, deadline, mip_gap, threads, progress, start, False, goal)
    if bound is not None and report.objective_value is not None and goal == Objective.COST:
        best = max(bound, report.dual_bound if report.dual_bound is not None else bound)
        gap = relative_gap(report.objective_value, best)
        proven = report.status == Status.OPTIMAL or (gap is not None and gap <= mip_gap)
        report = replace(report, dual_bound=best, mip_gap=gap,
                         status=Status.OPTIMAL if proven else report.status)
    report = replace(report, build_seconds=build_seconds)
    if not report.status.has_plan:
        why = ("no plan meets every requirement in every period (solve the peak period alone "
               "with `pdopt solve` for a diagnosis)" if report.status == Status.INFEASIBLE
               else "no plan within the time limit; raise --time-limit")
        return Plan.without_plan(scenario=sc.name, status=report.status,
                                 objective=goal, diagnosis=[why], solver=report)
    return horizon_plan(hd, m, report, goal)


def horizon_plan(hd: HorizonData, m: pyo.ConcreteModel, report: SolverReport,
                 objective: Objective = Objective.COST) -> Plan:
    """The solved horizon program as a Plan (Eq. H12): every period's counts and cost; the
    dearest period's pools, workloads and flows at the top."""
    gpus = hd.gpu_types()
    reserved = {g: int(round(pyo.value(m.reserved[g]))) for g in m.RESERVED}
    periods: list[PeriodPlan] = []
    plans: list[Plan] = []
    for t, hours in enumerate(hd.hours):
        block = getattr(m, f"p{t}")
        plan = build_plan(hd.periods[t], block, objective, report)
        plans.append(plan)
        counts = {p.instance: p.count for p in plan.pools}
        spares = {p: int(round(pyo.value(m.spare[p, t]))) for p in m.SPARE_POOLS
                  if round(pyo.value(m.spare[p, t])) > 0}
        by_type: dict[str, int] = {}
        for name, pool in hd.peak.pools.items():
            n = counts.get(name, 0) + spares.get(name, 0)
            if n:
                by_type[pool.gpu] = by_type.get(pool.gpu, 0) + n * pool.gpus_per_instance
        on_demand = {g: int(round(pyo.value(m.on_demand[g, t]))) for g in gpus
                     if round(pyo.value(m.on_demand[g, t])) > 0}
        spot = {g: int(round(pyo.value(m.spot[g, t]))) for g in m.SPOT
                if round(pyo.value(m.spot[g, t])) > 0}
        per_hour = float(pyo.value(m.period_cost_per_hour[t]))
        periods.append(PeriodPlan(
            index=t, hours=hours, counts=dict(sorted(counts.items())), spares=spares,
            cost=per_hour * hours, cost_per_hour=per_hour, gpus_by_type=dict(sorted(
                by_type.items())), on_demand_gpus_by_type=on_demand, spot_gpus_by_type=spot,
            demand_requests_per_s={w: hd.periods[t].demand_requests_per_s[w]
                                   for w in sorted(hd.rates)},
            pools=plan.pools, flows=plan.flows))
    warm_up = float(pyo.value(m.warm_up_cost))
    total = sum(p.cost for p in periods) + warm_up
    top = max(range(len(periods)), key=lambda t: (periods[t].cost_per_hour, -t))
    return replace(plans[top], periods=periods,
                   reserved_gpus_by_type={g: n for g, n in sorted(reserved.items()) if n},
                   total_cost=total, warm_up_cost=warm_up,
                   cost_per_hour=total / sum(hd.hours),
                   messages=limit_messages(report))
