"""Solving a many-model fleet model by model (docs/method.md, O.2).

Models share nothing but the GPU inventories and the budget. Each model's part of the program, with
those two limits dropped, is a relaxation of that model's share of the whole, so:

- the sum of the parts' dual bounds is a lower bound of the whole fleet's optimum (Eq. O12);
- when the parts' plans together fit the inventories and the budget, together they are a plan for
  the fleet within that bound: no program over the whole fleet is needed;
- otherwise each part's bound is a valid cut for the whole program: the objective's share of a
  model's pools is at least that model's bound (Eq. O12), which lifts the whole program's LP bound.

Parts are independent, so with more than a few of them they are solved in parallel processes.
"""

from __future__ import annotations

import math
import os
import pickle
import subprocess
import sys
import time
from dataclasses import dataclass, replace

from pdopt.optimize.data import build_fleet_data
from pdopt.optimize.extract import build_plan
from pdopt.optimize.model import Relaxation, create_model
from pdopt.optimize.rounding import rounded_up
from pdopt.optimize.solver import Deadline, ProgressFn, relative_gap, solve_lexicographic
from pdopt.plan import Objective, Plan, PlanTotals, Status
from pdopt.scenario.schema import Scenario

# Workers in a process group of their own: the terminal's Ctrl-C reaches pdopt only, which stops
# them (a worker that got it would print a traceback of its own).
OWN_PROCESS_GROUP: dict[str, int] = {"process_group": 0} if os.name == "posix" else {}
# Below this many models, starting worker processes costs more than it saves.
PARALLEL_FROM_MODELS = 4
# With less time than this left, the parts are solved in this process: starting a worker (a
# fresh interpreter importing Pyomo) takes a few seconds on a loaded machine.
PARALLEL_FROM_SECONDS = 10.0
# How long after the deadline a worker may take to hand its parts back before it is stopped.
WORKER_GRACE_S = 0.5
# Of a part's time, branch and bound gets this share; the rest is the rounded-LP fallback's (O.3)
# when branch and bound ends without proving its plan.
BRANCH_AND_BOUND_SHARE = 0.6


@dataclass
class Part:
    """One model's share of the fleet, solved alone: its plan (None without one) and bound."""

    model_name: str
    plan: Plan | None
    dual_bound: float | None
    seconds: float
    data_seconds: float | None = None  # computing its coefficients (None: not started)


def model_names(scenario: Scenario) -> list[str]:
    return sorted({w.model for w in scenario.workloads})


def sub_scenario(scenario: Scenario, model_name: str) -> Scenario:
    """The scenario restricted to one model, without inventories and budget."""
    return scenario.model_copy(update={
        "name": f"{scenario.name}/{model_name}",
        "instances": [i for i in scenario.instances if i.model == model_name],
        "workloads": [w for w in scenario.workloads if w.model == model_name],
        "gpus": {g: spec.model_copy(update={"count": None}) for g, spec in scenario.gpus.items()},
        "budget_per_hour": None,
    })


def solve_part(scenario: Scenario, model_name: str, objective: Objective, deadline: Deadline,
               mip_gap: float, progress: ProgressFn | None = None) -> Part:
    """One model alone, lexicographically (Eq. O10), by `deadline`; when branch and bound ends
    unproven, the rounded LP relaxation (O.3) may give a better plan in the time left."""
    start = time.perf_counter()
    if deadline.passed():
        return Part(model_name, None, None, 0.0)
    data = build_fleet_data(sub_scenario(scenario, model_name))
    data_seconds = time.perf_counter() - start
    relax = Relaxation(budget=True, inventory="drop")
    model = create_model(data, objective, relax, backend="direct")
    report = solve_lexicographic(model, deadline=deadline.share(BRANCH_AND_BOUND_SHARE),
                                 mip_gap=mip_gap, integral_primary=objective == Objective.GPUS,
                                 progress=progress, phase=model_name)
    if report.status in (Status.FEASIBLE, Status.NO_SOLUTION):
        rounded = rounded_up(data, objective, relax, deadline=deadline,
                             dual_bound=report.dual_bound)
        if rounded is not None and rounded[1].objective_value is not None and (
                report.objective_value is None
                or rounded[1].objective_value < report.objective_value):
            model, report = rounded
            if report.mip_gap is not None and report.mip_gap <= mip_gap:
                report = replace(report, status=Status.OPTIMAL)
    plan = build_plan(data, model, objective, report) if report.status.has_plan else None
    return Part(model_name, plan, report.dual_bound, time.perf_counter() - start, data_seconds)


def solve_parts(scenario: Scenario, objective: Objective, *, deadline: Deadline, mip_gap: float,
                names: list[str] | None = None, workers: int | None = None,
                progress: ProgressFn | None = None) -> list[Part]:
    """Solve every model's part (or those `names`) by `deadline` (wall time, shared equally
    among the parts a worker holds). `progress` hears from parts solved in this process."""
    names = names or model_names(scenario)
    workers = min(workers or os.cpu_count() or 1, len(names))
    if len(names) < PARALLEL_FROM_MODELS or workers < 2 \
            or deadline.remaining() < PARALLEL_FROM_SECONDS:
        return solve_in_turn(scenario, names, objective, deadline, mip_gap, progress)
    # Fresh interpreters, not forked ones (a fork would inherit HiGHS's thread-pool state without
    # its threads) and not multiprocessing's spawn (which re-runs the caller's main module).
    chunks = [names[k::workers] for k in range(workers)]
    return run_part_workers(
        [pickle.dumps((scenario, chunk, objective, deadline, mip_gap)) for chunk in chunks],
        names, deadline)


def run_part_workers(inputs: list[bytes], names: list[str],
                     deadline: Deadline | None = None) -> list[Part]:
    """One `pdopt.optimize.part_worker` process per input; their parts in the order of `names`.
    A worker not done `WORKER_GRACE_S` after `deadline` is stopped: its parts have no plan.

    The workers ignore Ctrl-C and die with this process (pdopt.children); when this process
    stops early (Ctrl-C, SIGTERM, an error) they are killed and reaped before the exception goes
    on, so none is left to finish a solve nobody reads (or to print a BrokenPipe traceback)."""
    procs: list[subprocess.Popen[bytes]] = []
    try:
        for payload in inputs:
            proc = subprocess.Popen([sys.executable, "-m", "pdopt.optimize.part_worker",
                                     str(os.getpid())],
                                    stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                    process_group=OWN_PROCESS_GROUP.get("process_group"))
            procs.append(proc)
            assert proc.stdin is not None
            proc.stdin.write(payload)
            proc.stdin.close()
            proc.stdin = None  # sent: communicate() below only reads
        parts: dict[str, Part] = {name: Part(name, None, None, 0.0) for name in names}
        for proc in procs:
            try:
                out, _ = proc.communicate(timeout=None if deadline is None
                                          else deadline.remaining() + WORKER_GRACE_S)
            except subprocess.TimeoutExpired:
                continue  # killed below
            if proc.returncode != 0:
                raise RuntimeError("a worker solving models alone failed")
            parts.update({part.model_name: part for part in pickle.loads(out)})
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.kill()
            proc.wait()
            if proc.stdout is not None:
                proc.stdout.close()
    return [parts[name] for name in names]


def solve_in_turn(scenario: Scenario, names: list[str], objective: Objective,
                  deadline: Deadline, mip_gap: float,
                  progress: ProgressFn | None = None) -> list[Part]:
    """The parts `names` one after another, each by an equal share of what is left before
    `deadline` (what earlier parts leave unused goes to later ones)."""
    parts = []
    for k, name in enumerate(names):
        share = deadline.share(1.0 / (len(names) - k))
        parts.append(solve_part(scenario, name, objective, share, mip_gap, progress))
    return parts


def fits_limits(scenario: Scenario, plans: list[Plan]) -> bool:
    """Do the parts' plans together fit the GPU inventories and the budget?"""
    used = PlanTotals.of([pool for plan in plans for pool in plan.pools])
    for gpu, spec in scenario.gpus.items():
        if spec.count is not None and used.gpus_by_type.get(gpu, 0) > spec.count:
            return False
    budget = scenario.budget_per_hour
    return budget is None or used.cost_per_hour <= budget + 1e-9


def plan_key(plan: Plan | None, objective: Objective) -> tuple[float, float]:
    """Lexicographic order of plans (Eq. O10): primary, then secondary; no plan is worst."""
    if plan is None or plan.cost_per_hour is None or plan.total_gpus is None:
        return (math.inf, math.inf)
    cost, gpus = plan.cost_per_hour, float(plan.total_gpus)
    return (cost, gpus) if objective == Objective.COST else (gpus, cost)


def better(a: Part, b: Part, objective: Objective, mip_gap: float) -> Part:
    """The better plan of two solves of one model, with the better of their bounds (a new
    plan; neither is changed)."""
    best = a if plan_key(a.plan, objective) <= plan_key(b.plan, objective) else b
    bounds = [x for x in (a.dual_bound, b.dual_bound) if x is not None]
    bound = max(bounds) if bounds else None
    plan = best.plan
    if plan is not None and plan.solver is not None and bound is not None:
        gap = relative_gap(plan_key(plan, objective)[0], bound)
        proven = gap is not None and gap <= mip_gap
        solver = replace(plan.solver, dual_bound=bound, mip_gap=gap,
                         status=Status.OPTIMAL if proven else plan.solver.status)
        plan = replace(plan.with_solver(solver), messages=[] if proven else plan.messages)
    return Part(best.model_name, plan, bound, a.seconds + b.seconds,
                a.data_seconds if a.data_seconds is not None else b.data_seconds)
