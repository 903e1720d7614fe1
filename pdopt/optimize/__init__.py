"""The fleet optimizer: `solve(scenario) -> Plan` (docs/method.md, section O).

Steps: precompute capacities and routes (`data`), build the Pyomo model (`model`), solve it with
HiGHS (`solver`), read the plan back with predicted TTFT/TPOT (`extract`), and when there is no
plan, say which requirement cannot be met and why (`diagnose`). Every phase runs against one
deadline, the time limit from the call's start.
"""

from __future__ import annotations

import math
import time
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING

from pdopt.optimize.data import FleetData, build_fleet_data
from pdopt.optimize.decompose import Part, better, fits_limits, model_names, plan_key, solve_parts
from pdopt.optimize.diagnose import diagnose, no_solution_reason, unroutable_workloads
from pdopt.optimize.extract import build_plan, limit_messages
from pdopt.optimize.model import create_model
from pdopt.optimize.solver import (
    Deadline,
    ProgressFn,
    SolveProgress,
    SolverReport,
    not_started,
    relative_gap,
    solve_lexicographic,
)
from pdopt.plan import Objective, Plan, Status
from pdopt.scenario.prepare import PreparedScenario, prepare
from pdopt.scenario.schema import Scenario

if TYPE_CHECKING:  # the price decomposition (O.8) is imported when a fleet is coupled
    from pdopt.optimize.lagrange import Outcome

__all__ = ["solve", "build_fleet_data", "create_model", "FleetData", "SolverReport",
           "SolveProgress", "Objective", "Status"]

# Of the time limit, the models solved apart (O.2) get this share first; a second round on the
# parts not yet proven gets this share of what is left.
PARTS_SHARE = 0.5
PARTS_AGAIN_SHARE = 0.8
# Building the whole program straight for HiGHS (O.9) takes 9-27 microseconds per route, SLO
# share and count-table entry (fleetgen fleets of 1-10 models on 8 GPU types, queue auto and
# mm1, 2026-12-01; 1-3 % of computing the coefficients with auto's count tables): with less
# time left than this per entry it is not started.
BUILD_SECONDS_PER_ENTRY = 3e-5
# Coupled fleets (inventories or a budget over several models): the price decomposition (O.8)
# gets this share of the time, the whole program the rest when it is not proven.
DECOMPOSITION_SHARE = 0.8
# Without a plan by then, the decomposition's first round and its repair (O.8) may run this long
# past the time limit: a plan within a second of the limit rather than none.
PLAN_GRACE_S = 0.8
# False: coupled fleets go the way of uncoupled ones (models alone, then the whole program); the
# benchmarks compare both in one run.
PRICE_COUPLED_FLEETS = True
# With fewer models the whole program is small and proves tight gaps the decomposition cannot
# (its bound leaves the models' integrality gaps open, O.8): they go the way of uncoupled fleets.
PRICE_FROM_MODELS = 4
# The whole fleet's coefficients take up to this many times the models' apart, times the models
# over WHOLE_DATA_MODELS (the routes between pools grow faster than the pools: 25 models 0.9 s
# against 0.57 s, 50 models 23 s against about 5 s on a loaded machine).
WHOLE_PER_PARTS_DATA = 1.6
WHOLE_DATA_MODELS = 12
# From this many models on, the whole program is not even built in time: the price
# decomposition gets all the time.
PRICE_ALONE_FROM_MODELS = 30
# ... and without a budget or an inventory shared by models, this share (the parts' plans are the
# fleet's; the whole program is only needed when a part has no plan).
PARTS_ALONE_SHARE = 0.9
# A second round of the parts is started only with this much time left (starting workers and
# building the parts' programs cost about a second).
PARTS_AGAIN_MIN_S = 1.0


def solve(scenario: PreparedScenario | Scenario | str | Path, *,
          time_limit_s: float | None = None, mip_gap: float | None = None,
          objective: Objective | str | None = None, threads: int | None = None,
          progress: ProgressFn | None = None, dask_scheduler: str | None = None) -> Plan:
    """Cheapest (or fewest-GPU, then cheapest) plan that serves every workload within its SLOs.

    `scenario` is prepared first (`pdopt.scenario.prepare`: a path is read, `profile:` blocks
    resolved) unless it already is. Returns within about `time_limit_s` of the call (every
    phase shares one deadline) with the best plan found and its gap. Never raises for an
    infeasible scenario: the Plan's status is `infeasible` and `diagnosis` says why. Raises
    pdopt errors for invalid input (e.g. a table lookup outside its range). `progress`, when
    given, is called with the elapsed time, incumbent and bound while HiGHS searches.
    `dask_scheduler`: the address of a Dask cluster that solves the pricing programs of a
    coupled fleet (O.8) instead of local worker processes."""
    start = time.perf_counter()
    prepared = prepare(scenario)
    if prepared.scenario.plans_horizon:  # periods, reserved/spot capacity, spares (section H)
        from pdopt.optimize.periods import solve_horizon

        return solve_horizon(prepared, time_limit_s=time_limit_s, mip_gap=mip_gap,
                             threads=threads, progress=progress, objective=objective)
    scenario, estimated = prepared.scenario, prepared.estimated_sources()
    goal = Objective(objective or scenario.options.objective)
    time_limit_s = time_limit_s if time_limit_s is not None else scenario.options.time_limit_s
    mip_gap = mip_gap if mip_gap is not None else scenario.options.mip_gap
    deadline = Deadline(time.time() - (time.perf_counter() - start) + time_limit_s)

    bounds: dict[str, float] = {}
    parts: list[Part] = []
    decomposed: Plan | None = None  # the price decomposition's plan, when not proven (O.8)
    if len(model_names(scenario)) > 1:
        # Each model alone first (O.2), in worker processes that build their own programs:
        # often the parts together are the answer and the whole program is never built.
        t0 = time.perf_counter()
        from pdopt.optimize.lagrange import coupled, solve_coupled

        # With inventories or a budget, the price decomposition (O.8) solves the models alone
        # in its first round (zero prices) and keeps their programs for the next rounds.
        priced = PRICE_COUPLED_FLEETS and coupled(scenario) \
            and len(model_names(scenario)) >= PRICE_FROM_MODELS
        parts = [] if priced else _solve_parts(scenario, goal, deadline, mip_gap, progress)
        plans = [part.plan for part in parts if part.plan is not None]
        if parts and len(plans) == len(parts) and fits_limits(scenario, plans):
            seconds = time.perf_counter() - t0
            plan = _merge(plans, scenario, goal, mip_gap, seconds,
                          time.perf_counter() - start)
            return _with_estimates(plan, estimated)
        bounds = {part.model_name: part.dual_bound for part in parts
                  if part.dual_bound is not None}
        if priced:
            share = DECOMPOSITION_SHARE if len(model_names(scenario)) < PRICE_ALONE_FROM_MODELS \
                else 1.0
            outcome = solve_coupled(scenario, goal, deadline=deadline.share(share),
                                    mip_gap=mip_gap, dask_scheduler=dask_scheduler,
                                    hard_deadline=Deadline(deadline.at + PLAN_GRACE_S))
            bounds = outcome.alone_bounds  # O12 cuts for the whole program
            decomposed = _decomposed_plan(outcome, scenario, goal, mip_gap,
                                          time.perf_counter() - t0, time.perf_counter() - start)
            # proven on the primary is enough for `cost`; for `gpus`, plans tying on the GPU
            # count are the rule and the columns priced so far need not hold the cheapest of
            # them: the whole program settles the secondary (Eq. O10)
            proven = decomposed is not None and decomposed.status == Status.OPTIMAL \
                and goal == Objective.COST
            if decomposed is not None and (proven or deadline.passed()):
                return _with_estimates(decomposed, estimated)
        started = [part.data_seconds for part in parts if part.data_seconds is not None]
        # the whole fleet's coefficients take about as long as the parts' together
        # ... and more with many models (the routes between their pools)
        ratio = WHOLE_PER_PARTS_DATA * max(1.0, len(model_names(scenario)) / WHOLE_DATA_MODELS)
        expected = ratio * sum(started) / len(started) * len(parts) if started else 0.0
        if priced:  # the pricing programs' coefficients; none ready: neither would the whole's
            expected = ratio * outcome.data_seconds if outcome.data_seconds > 0 else math.inf
        if deadline.remaining() < expected:  # not even the coefficients would be ready
            if decomposed is not None:
                return _with_estimates(decomposed, estimated)
            if priced:
                return _priced_out_of_time(scenario, goal, outcome, time_limit_s, start)
            return _out_of_time(scenario.name, goal, parts, time_limit_s, deadline, start)

    data = build_fleet_data(scenario)
    blocked = unroutable_workloads(data)
    if blocked:
        return Plan.without_plan(scenario=scenario.name, status=Status.INFEASIBLE,
                                 objective=goal, diagnosis=blocked)
    if deadline.remaining() < BUILD_SECONDS_PER_ENTRY * _program_entries(data):
        # building the program would take longer than is left (the parts took the time)
        if decomposed is not None:
            return _with_estimates(decomposed, estimated)
        if parts:
            return _out_of_time(scenario.name, goal, parts, time_limit_s, deadline, start)
        return Plan.without_plan(
            scenario=scenario.name, status=Status.NO_SOLUTION, objective=goal,
            diagnosis=[no_solution_reason(data, not_started(), time_limit_s)],
            solver=replace(not_started(), build_seconds=time.perf_counter() - start))
    model = create_model(data, goal, model_bounds=bounds, backend="direct")
    build_seconds = time.perf_counter() - start
    report = solve_lexicographic(model, deadline=deadline, mip_gap=mip_gap, threads=threads,
                                 progress=progress, integral_primary=goal == Objective.GPUS)
    report = replace(report, build_seconds=build_seconds)
    if report.status == Status.INFEASIBLE:
        reasons = diagnose(data, goal, deadline=deadline, mip_gap=mip_gap)
        return Plan.without_plan(scenario=scenario.name, status=report.status, objective=goal,
                                 diagnosis=reasons, solver=report)
    if not report.status.has_plan:
        if decomposed is not None:
            return _with_estimates(decomposed, estimated)
        return Plan.without_plan(scenario=scenario.name, status=report.status, objective=goal,
                                 diagnosis=[no_solution_reason(data, report, time_limit_s)],
                                 solver=report)
    whole = build_plan(data, model, goal, report)
    return _with_estimates(_better_of(whole, decomposed, mip_gap), estimated)


def _program_entries(data: FleetData) -> int:
    """Routes, SLO shares and count-table entries: what building the program takes time for."""
    return (len(data.prefill_routes) + len(data.prefill_shares()) + len(data.decode_shares())
            + sum(len(table) for table in data.rate_tables.values()))


def _better_of(whole: Plan, decomposed: Plan | None, mip_gap: float) -> Plan:
    """The whole program's plan or the price decomposition's (O.8), whichever is cheaper, with
    the better of their bounds (both are bounds of the same fleet)."""
    if decomposed is None or whole.solver is None or decomposed.solver is None:
        return whole
    goal = whole.objective
    best = decomposed if plan_key(decomposed, goal) < plan_key(whole, goal) else whole
    assert best.solver is not None
    bounds = [b for b in (whole.solver.dual_bound, decomposed.solver.dual_bound) if b is not None]
    bound = max(bounds) if bounds else None
    gap = relative_gap(best.solver.objective_value, bound)
    proven = best.solver.status == Status.OPTIMAL or (gap is not None and gap <= mip_gap)
    report = replace(best.solver, dual_bound=bound, mip_gap=gap,
                     status=Status.OPTIMAL if proven else Status.FEASIBLE)
    return replace(best.with_solver(report), messages=limit_messages(report))


def _out_of_time(name: str, goal: Objective, parts: list[Part], time_limit_s: float,
                 deadline: Deadline, start: float) -> Plan:
    """No plan: the models solved apart did not make one, and too little time is left to build
    and solve the whole fleet's program."""
    solved = sum(part.plan is not None for part in parts)
    apart = ", not within the shared limits" if solved == len(parts) else ""
    return Plan.without_plan(
        scenario=name, status=Status.NO_SOLUTION, objective=goal,
        diagnosis=[f"no plan within the time limit ({time_limit_s:g} s): solved model by model, "
                   f"{solved} of {len(parts)} models had a plan in their share of the time{apart}"
                   f", and the {deadline.remaining():.1f} s left were too few to build and solve "
                   "the whole fleet's program; raise --time-limit"],
        solver=replace(not_started(), build_seconds=time.perf_counter() - start))


def _priced_out_of_time(scenario: Scenario, goal: Objective, outcome: Outcome,
                        time_limit_s: float, start: float) -> Plan:
    """No plan: the price decomposition (O.8) found none within the limits in time, and too
    little time is left for the whole fleet's program."""
    models = len(model_names(scenario))
    done = outcome.models_with_plans
    why = (f"only {done} of {models} models had a plan of their own in time" if done < models
           else "their plans, repaired to share the inventories and the budget, did not fit")
    return Plan.without_plan(
        scenario=scenario.name, status=Status.NO_SOLUTION, objective=goal,
        diagnosis=[f"no plan within the time limit ({time_limit_s:g} s): pricing the shared "
                   f"limits model by model (O.8), {why}, and no time was left to build and "
                   "solve the whole fleet's program; raise --time-limit"],
        solver=replace(not_started(), dual_bound=outcome.bound,
                       build_seconds=time.perf_counter() - start))


def _limits_shared(scenario: Scenario) -> bool:
    """Does a budget or a GPU inventory limit several models together?"""
    if scenario.budget_per_hour is not None:
        return True
    return any(spec.count is not None
               and len({i.model for i in scenario.instances if i.gpu == gpu}) > 1
               for gpu, spec in scenario.gpus.items())


def _solve_parts(scenario: Scenario, objective: Objective, deadline: Deadline,
                 mip_gap: float, progress: ProgressFn | None) -> list[Part]:
    """Each model alone (O.2), and again for the parts not yet proven when they fit together
    and there is time left."""
    # without shared limits the parts together are the plan: they may take nearly all the time
    share = PARTS_SHARE if _limits_shared(scenario) else PARTS_ALONE_SHARE
    parts = solve_parts(scenario, objective, deadline=deadline.share(share),
                        mip_gap=mip_gap, progress=progress)
    plans = [part.plan for part in parts if part.plan is not None]
    if len(plans) < len(parts) or not fits_limits(scenario, plans):
        return parts
    unproven = [part.model_name for part in parts
                if part.plan is not None and part.plan.status != Status.OPTIMAL]
    if not unproven or deadline.remaining() < PARTS_AGAIN_MIN_S:
        return parts
    again = {part.model_name: part for part in solve_parts(
        scenario, objective, deadline=deadline.share(PARTS_AGAIN_SHARE), mip_gap=mip_gap,
        names=unproven, progress=progress)}
    return [better(part, again[part.model_name], objective, mip_gap)
            if part.model_name in again else part for part in parts]


def _with_estimates(plan: Plan, estimated: dict[str, str]) -> Plan:
    """The plan naming its pools whose numbers are estimates, with their sources."""
    return replace(plan, estimated={p.instance: estimated[p.instance] for p in plan.pools
                                    if p.instance in estimated})


def _decomposed_plan(outcome: Outcome, scenario: Scenario, objective: Objective, mip_gap: float,
                     solve_seconds: float, total_seconds: float) -> Plan | None:
    """The fleet's plan from the price decomposition's incumbent (O.8) with its proven bound
    (Eq. O20); None without an incumbent."""
    if not outcome.plans:
        return None
    merged = _merge(outcome.plans, scenario, objective, mip_gap, solve_seconds, total_seconds)
    assert merged.solver is not None
    value = merged.solver.objective_value
    bound = outcome.bound
    gap = relative_gap(value, bound)
    status = Status.OPTIMAL if gap is not None and gap <= mip_gap else Status.FEASIBLE
    report = replace(merged.solver, status=status, dual_bound=bound, mip_gap=gap,
                     termination=f"price decomposition (O.8), {outcome.rounds} rounds",
                     time_limit_hit=status != Status.OPTIMAL)
    return replace(merged.with_solver(report), messages=limit_messages(report))


def _merge(plans: list[Plan], scenario: Scenario, objective: Objective, mip_gap: float,
           solve_seconds: float, total_seconds: float) -> Plan:
    """The fleet's plan from its models' plans (O.2): lists joined, totals and bounds added."""
    order = {w.name: k for k, w in enumerate(scenario.workloads)}
    bounds = [p.dual_bound for p in plans]
    bound = None if any(b is None for b in bounds) else sum(bounds)  # type: ignore[arg-type]
    pools = sorted((pool for p in plans for pool in p.pools), key=lambda pool: pool.instance)
    merged = Plan.of_pools(
        scenario=scenario.name, status=Status.FEASIBLE, objective=objective, pools=pools,
        workloads=sorted((w for p in plans for w in p.workloads),
                         key=lambda w: order[w.workload]),
        flows=[f for p in plans for f in p.flows])
    value = plan_key(merged, objective)[0]  # the primary objective of Eq. O10
    gap = relative_gap(value, bound)
    # each part within the gap of its bound puts the sum within the gap of the summed bound; the
    # sum can be within the gap even when some parts are not
    proven = all(p.status == Status.OPTIMAL for p in plans)
    status = Status.OPTIMAL if proven or (gap is not None and gap <= mip_gap) else Status.FEASIBLE
    report = SolverReport(
        status=status, termination="models solved apart (O.2)", objective_value=value,
        dual_bound=bound, mip_gap=gap, solve_seconds=solve_seconds,
        time_limit_hit=any(p.solver is not None and p.solver.time_limit_hit for p in plans),
        build_seconds=max(0.0, total_seconds - solve_seconds))
    return replace(merged.with_solver(report), messages=limit_messages(report))
