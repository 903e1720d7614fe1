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
from pdopt.optimize.solver import relative_gap, solve_model
from pdopt.plan import Plan
from pdopt.scenario.schema import Scenario

# Workers in a process group of their own: the terminal's Ctrl-C reaches pdopt only, which stops
# them (a worker that got it would print a traceback of its own).
OWN_PROCESS_GROUP: dict[str, int] = {"process_group": 0} if os.name == "posix" else {}
# Below this many models, starting worker processes costs more than it saves.
PARALLEL_FROM_MODELS = 4
# The rounding fallback solves two LPs of one model (well under a second alone); on a loaded
# machine a part's share of the time limit can be shorter than that, so the LPs get at least this.
ROUNDING_MIN_SECONDS = 10.0


@dataclass
class Part:
    """One model's share of the fleet, solved alone: its plan (None without one) and bound."""

    model_name: str
    plan: Plan | None
    dual_bound: float | None
    seconds: float


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


def solve_part(scenario: Scenario, model_name: str, objective: str, time_limit_s: float,
               mip_gap: float) -> Part:
    start = time.perf_counter()
    data = build_fleet_data(sub_scenario(scenario, model_name))
    model = create_model(data, objective, Relaxation(budget=True, inventory="drop"))
    report = solve_model(model, time_limit_s=time_limit_s, mip_gap=mip_gap)
    if report.status in ("feasible", "no_solution"):
        # out of time: the rounded LP relaxation may beat a weak incumbent (O.3)
        rounded = rounded_up(data, objective, Relaxation(budget=True, inventory="drop"),
                             time_limit_s=max(time_limit_s, ROUNDING_MIN_SECONDS),
                             dual_bound=report.dual_bound, near_time_s=max(time_limit_s, 1.0))
        if rounded is not None and (report.objective is None
                                    or rounded[1].objective < report.objective):  # type: ignore
            model, report = rounded
            if report.mip_gap is not None and report.mip_gap <= mip_gap:
                report = replace(report, status="optimal")
    plan = None
    if report.status in ("optimal", "feasible"):
        plan = build_plan(data, model, objective, report, 0.0)
    return Part(model_name, plan, report.dual_bound, time.perf_counter() - start)


def solve_parts(scenario: Scenario, objective: str, *, time_limit_s: float, mip_gap: float,
                names: list[str] | None = None, workers: int | None = None) -> list[Part]:
    """Solve every model's part (or those `names`) within about `time_limit_s` in all (wall
    time, shared equally among the parts a worker holds)."""
    names = names or model_names(scenario)
    workers = min(workers or os.cpu_count() or 1, len(names))
    if len(names) < PARALLEL_FROM_MODELS or workers < 2:
        return solve_in_turn(scenario, names, objective, time_limit_s, mip_gap)
    # Fresh interpreters, not forked ones (a fork would inherit HiGHS's thread-pool state without
    # its threads) and not multiprocessing's spawn (which re-runs the caller's main module).
    chunks = [names[k::workers] for k in range(workers)]
    return run_part_workers(
        [pickle.dumps((scenario, chunk, objective, time_limit_s, mip_gap)) for chunk in chunks],
        names)


def run_part_workers(inputs: list[bytes], names: list[str]) -> list[Part]:
    """One `pdopt.optimize.part_worker` process per input; their parts in the order of `names`.

    The workers ignore Ctrl-C and die with this process (pdopt.children); when this process
    stops early (Ctrl-C, SIGTERM, an error) they are killed and reaped before the exception goes
    on, so none is left to finish a solve nobody reads (or to print a BrokenPipe traceback)."""
    procs: list[subprocess.Popen[bytes]] = []
    try:
        for payload in inputs:
            proc = subprocess.Popen([sys.executable, "-m", "pdopt.optimize.part_worker",
                                     str(os.getpid())],
                                    stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                    **OWN_PROCESS_GROUP)
            procs.append(proc)
            assert proc.stdin is not None
            proc.stdin.write(payload)
            proc.stdin.close()
        parts: dict[str, Part] = {}
        for proc in procs:
            assert proc.stdout is not None
            out = proc.stdout.read()
            if proc.wait() != 0:
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


def solve_in_turn(scenario: Scenario, names: list[str], objective: str, time_limit_s: float,
                   mip_gap: float) -> list[Part]:
    parts, deadline = [], time.perf_counter() + time_limit_s
    for k, name in enumerate(names):
        # what earlier parts leave unused goes to later ones
        share = max((deadline - time.perf_counter()) / (len(names) - k), 0.1)
        parts.append(solve_part(scenario, name, objective, share, mip_gap))
    return parts


def fits_limits(scenario: Scenario, plans: list[Plan]) -> bool:
    """Do the parts' plans together fit the GPU inventories and the budget?"""
    used: dict[str, int] = {}
    for plan in plans:
        for gpu, n in plan.gpus_by_type.items():
            used[gpu] = used.get(gpu, 0) + n
    for gpu, spec in scenario.gpus.items():
        if spec.count is not None and used.get(gpu, 0) > spec.count:
            return False
    budget = scenario.budget_per_hour
    return budget is None or sum(p.cost_per_hour or 0.0 for p in plans) <= budget + 1e-9


def better(a: Part, b: Part, objective: str, mip_gap: float) -> Part:
    """The better plan of two solves of one model, with the better of their bounds."""
    def value(part: Part) -> float:
        if part.plan is None:
            return float("inf")
        return part.plan.cost_per_hour if objective == "cost" else part.plan.total_gpus  # type: ignore
    best = a if value(a) <= value(b) else b
    bounds = [x for x in (a.dual_bound, b.dual_bound) if x is not None]
    bound = max(bounds) if bounds else None
    if best.plan is not None and bound is not None:
        best.plan.dual_bound = bound
        best.plan.mip_gap = relative_gap(value(best), bound)
        if best.plan.mip_gap is not None and best.plan.mip_gap <= mip_gap:
            best.plan.status = "optimal"
            best.plan.messages = []
    return Part(best.model_name, best.plan, bound, a.seconds + b.seconds)
