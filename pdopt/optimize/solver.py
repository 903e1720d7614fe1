"""Calling HiGHS through Pyomo's redesigned solver interface, and the typed report of the outcome.

`pyomo.contrib.solver` is a preview API: it is imported here and nowhere else, and pyproject pins
the Pyomo minor version. The solve never raises on a non-optimal outcome and loads the incumbent
itself, so a time limit returns the best plan found with its gap.
"""

from __future__ import annotations

import math
import signal
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Literal

import pyomo.environ as pyo
from pyomo.contrib.solver.common.results import SolutionStatus, TerminationCondition
from pyomo.contrib.solver.solvers.highs import Highs

from pdopt.errors import PdoptError

SolveStatus = Literal["optimal", "feasible", "infeasible", "no_solution"]


@dataclass(frozen=True)
class SolverReport:
    """The solver's outcome: status, objective, dual bound, gap, time (cf. linopy's report)."""

    status: SolveStatus
    termination: str
    objective: float | None
    dual_bound: float | None
    mip_gap: float | None
    solve_seconds: float
    time_limit_hit: bool


def relative_gap(objective: float | None, bound: float | None) -> float | None:
    """|objective - bound| / |objective| (HiGHS's definition); 0 when both are 0."""
    if objective is None or bound is None or math.isinf(bound):
        return None
    if objective == 0:
        return 0.0 if abs(bound) < 1e-12 else None
    return max(0.0, abs(objective - bound) / abs(objective))


@contextmanager
def _interrupts_noted() -> Iterator[list[int]]:
    """HiGHS stops on Ctrl-C (or a SIGTERM the CLI turns into one) but reports it as an error and
    swallows the KeyboardInterrupt: note the signal here so the solve can raise it again."""
    caught: list[int] = []
    if threading.current_thread() is not threading.main_thread():
        yield caught
        return
    previous = {}
    for sig in (signal.SIGINT, signal.SIGTERM):
        handler = signal.getsignal(sig)
        if callable(handler):
            def noted(signum: int, frame: object, handler: object = handler) -> None:
                caught.append(signum)
                handler(signum, frame)  # type: ignore[operator]
            previous[sig] = signal.signal(sig, noted)
    try:
        yield caught
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def solve_model(model: pyo.ConcreteModel, *, time_limit_s: float, mip_gap: float,
                threads: int | None = None) -> SolverReport:
    """Solve with HiGHS; load the incumbent into the model when there is one."""
    options = {"threads": threads} if threads else {}
    start = time.perf_counter()
    with _interrupts_noted() as interrupted:
        results = Highs().solve(
            model,
            time_limit=time_limit_s,
            rel_gap=mip_gap,
            load_solutions=False,
            raise_exception_on_nonoptimal_result=False,
            solver_options=options,
        )
    if interrupted:
        raise KeyboardInterrupt
    seconds = time.perf_counter() - start
    tc = results.termination_condition
    if tc == TerminationCondition.error:
        raise PdoptError("HiGHS stopped with an error (run with --debug and report it)")
    has_solution = results.solution_status in (SolutionStatus.optimal, SolutionStatus.feasible)
    if has_solution:
        results.solution_loader.load_vars()
    objective = results.incumbent_objective if has_solution else None
    bound = results.objective_bound
    bound = None if bound is None or (isinstance(bound, float) and math.isinf(bound)) else bound
    time_limit_hit = tc in (TerminationCondition.maxTimeLimit,
                            TerminationCondition.iterationLimit)
    if tc in (TerminationCondition.provenInfeasible,
              TerminationCondition.infeasibleOrUnbounded,
              TerminationCondition.locallyInfeasible):
        status: SolveStatus = "infeasible"
    elif not has_solution:
        status = "no_solution"
    elif tc == TerminationCondition.convergenceCriteriaSatisfied:
        status = "optimal"
    else:
        status = "feasible"
    return SolverReport(
        status=status,
        termination=tc.name,
        objective=objective,
        dual_bound=bound,
        mip_gap=relative_gap(objective, bound) if has_solution else None,
        solve_seconds=seconds,
        time_limit_hit=time_limit_hit,
    )
