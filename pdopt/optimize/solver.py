"""Calling HiGHS through Pyomo's redesigned solver interface, and the typed report of the outcome.

`pyomo.contrib.solver` is a preview API: it is imported here and nowhere else, and pyproject pins
the Pyomo minor version. The solve never raises on a non-optimal outcome and loads the incumbent
itself, so a time limit returns the best plan found with its gap.

Every phase of a solve runs against one `Deadline` (an absolute wall-clock time, so worker
processes share it): HiGHS gets what is left of it, never more. `solve_lexicographic` minimises the
primary objective, then fixes it and minimises the secondary (docs/method.md, Eq. O10). A
`progress` callback, when given, receives the elapsed time, incumbent and bound while HiGHS
searches (through HiGHS's MIP callback; the library prints nothing itself).
"""

from __future__ import annotations

import logging
import math
import os
import signal
import sys
import threading
import time
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator, Mapping
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, replace
from typing import Any

import highspy
import numpy as np

from pdopt.errors import PdoptError
from pdopt.optimize import direct
from pdopt.plan import SolverReport, Status

__all__ = ["Deadline", "SolveProgress", "SolverReport", "relative_gap", "solve_lexicographic",
           "solve_model"]

# HiGHS's MIP callback fires many times a second; progress is passed on at most this often.
PROGRESS_EVERY_S = 0.5
# Below this, HiGHS is not started at all (it would only report the time limit).
MIN_SOLVE_S = 0.01
# Relative slack on the fixed primary objective in the second stage (HiGHS's feasibility
# tolerance is 1e-7 absolute on rows; the incumbent must stay feasible).
FIX_SLACK = 1e-9
# A second stage capped by `secondary_factor` still gets at least this long.
MIN_SECONDARY_S = 1.0
# The termination of a search stopped within the gap of a bound proven elsewhere.
KNOWN_BOUND_REACHED = "withinGapOfKnownBound"


@dataclass(frozen=True)
class Deadline:
    """An absolute wall-clock time (time.time()) every phase of a solve must finish by."""

    at: float

    @classmethod
    def after(cls, seconds: float) -> Deadline:
        return cls(time.time() + seconds)

    def remaining(self) -> float:
        return max(0.0, self.at - time.time())

    def passed(self) -> bool:
        """Too little time left to start another solve (or build a program for one)."""
        return self.remaining() < MIN_SOLVE_S

    def share(self, fraction: float, keep_s: float = 0.0) -> Deadline:
        """A deadline `fraction` of the way from now to this one, and at least `keep_s` before
        it (never after it)."""
        now = time.time()
        left = max(0.0, self.at - now)
        return Deadline(min(now + fraction * left, max(now, self.at - keep_s)))


@dataclass(frozen=True)
class SolveProgress:
    """What HiGHS reports while it searches: elapsed seconds of this phase, the best plan's
    objective (None before the first), the dual bound and the relative gap."""

    phase: str
    elapsed_s: float
    incumbent: float | None
    bound: float | None
    gap: float | None


ProgressFn = Callable[[SolveProgress], None]


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


def _finite(x: float | None) -> float | None:
    return None if x is None or math.isinf(x) or math.isnan(x) or abs(x) >= 1e30 else x


@contextmanager
def _progress_hook(progress: ProgressFn, phase: str) -> Iterator[Callable[[Any], None]]:
    """HiGHS's MIP callback turned into `progress` calls (at most every PROGRESS_EVERY_S).

    Pyomo captures stdout and stderr while HiGHS runs (its log), down to the file descriptors:
    the callback runs with the stderr of before (a duplicate of its descriptor), so what the
    caller prints there reaches the terminal."""
    start, last = time.perf_counter(), [-math.inf]
    stderr = sys.stderr
    try:
        real: Any = open(os.dup(stderr.fileno()), "w", encoding=stderr.encoding,  # noqa: SIM115
                         errors="replace")
    except (AttributeError, OSError, ValueError):  # not a descriptor (a test's buffer)
        real = None

    def on_event(event: Any) -> None:
        now = time.perf_counter()
        if now - last[0] < PROGRESS_EVERY_S:
            return
        last[0] = now
        out = event.data_out
        incumbent, bound = _finite(out.mip_primal_bound), _finite(out.mip_dual_bound)
        captured = sys.stderr
        sys.stderr = real or stderr
        try:
            progress(SolveProgress(phase, now - start, incumbent, bound,
                                   relative_gap(incumbent, bound)))
            sys.stderr.flush()
        finally:
            sys.stderr = captured

    try:
        yield on_event
    finally:
        if real is not None:
            real.close()


class _Session(ABC):
    """One HiGHS instance of one model: solved once, then changed and solved again (the second
    stage of a lexicographic solve re-uses it, starting from the first stage's plan). The two
    kinds below differ in how the model reaches HiGHS and how its values come back."""

    highs: highspy.Highs

    def __init__(self, threads: int | None) -> None:
        self.options: dict[str, Any] = {"threads": threads} if threads else {}
        # HiGHS keeps a callback's interrupt request for the next run: cleared there
        self.interrupt_left = False

    def run(self, *, deadline: Deadline, mip_gap: float, progress: ProgressFn | None,
            phase: str, start_from: list[float] | None = None,
            start_values: Mapping[Any, float] | None = None,
            known_bound: float | None = None) -> SolverReport:
        start = time.perf_counter()
        seconds = deadline.remaining()
        if seconds < MIN_SOLVE_S:
            return not_started()
        self._update()
        if start_from is not None:
            solution = highspy.HighsSolution()
            solution.col_value = start_from
            solution.value_valid = True
            self.highs.setSolution(solution)
        elif start_values:
            # a (partial) plan as HiGHS's first incumbent; HiGHS completes the columns not given
            cols = self._columns_of(start_values)
            self.highs.setSolution(len(cols), np.array([c for c, _ in cols], dtype=np.int32),
                                   np.array([v for _, v in cols], dtype=np.float64))
        with ExitStack() as stack:
            if progress is not None:
                hook = stack.enter_context(_progress_hook(progress, phase))
                self.highs.cbMipInterrupt.subscribe(hook)
                stack.callback(self.highs.cbMipInterrupt.unsubscribe, hook)
            if self.interrupt_left:
                self._clear_interrupt(stack)
            stopped = self._stop_within(stack, known_bound, mip_gap) \
                if known_bound is not None else [False]
            interrupted = stack.enter_context(_interrupts_noted())
            try:
                report = self._solve(seconds, mip_gap)
            except PdoptError:  # HiGHS's word for the interrupt, when there was one
                if not interrupted:
                    raise
        if interrupted:
            raise KeyboardInterrupt
        report = replace(report, solve_seconds=time.perf_counter() - start)
        if stopped[0]:
            self.interrupt_left = True
            return replace(report, termination=KNOWN_BOUND_REACHED)
        return report

    # what the two kinds of session do their own way
    @abstractmethod
    def _update(self) -> None:
        """Pass the model's changes on to HiGHS."""

    @abstractmethod
    def _columns_of(self, values: Mapping[Any, float]) -> list[tuple[int, float]]:
        """HiGHS's column index of each model variable given, with its value."""

    @abstractmethod
    def _solve(self, seconds: float, mip_gap: float) -> SolverReport:
        """Run HiGHS; load the incumbent into the model when there is one."""

    @abstractmethod
    def hold_primary(self, limit: float) -> None:
        """Keep the objective within `limit` and minimise the model's secondary (Eq. O10)."""

    @abstractmethod
    def release_primary(self) -> None:
        """Undo hold_primary: the primary objective again, no row holding it."""

    @abstractmethod
    def primary_value(self) -> float:
        """The primary objective at the loaded solution."""

    @abstractmethod
    def saved_values(self) -> Callable[[], None]:
        """A function that puts the model's values back as they are now."""

    def _clear_interrupt(self, stack: ExitStack) -> None:
        def clear(event: Any) -> None:
            event.data_in.user_interrupt = False

        for hook in (self.highs.cbMipInterrupt, self.highs.cbSimplexInterrupt,
                     self.highs.cbIpmInterrupt):
            hook.subscribe(clear)
            stack.callback(hook.unsubscribe, clear)

    def _stop_within(self, stack: ExitStack, bound: float, mip_gap: float) -> list[bool]:
        """Stop HiGHS as soon as its incumbent is within `mip_gap` of `bound`, a lower bound
        proven elsewhere (HiGHS's own bound may need a long root LP to get there); the list
        returned holds whether it was stopped so."""
        best, stopped = [math.inf], [False]

        def improved(event: Any) -> None:
            best[0] = min(best[0], event.data_out.objective_function_value)

        def check(event: Any) -> None:
            gap = relative_gap(_finite(best[0]), bound)
            if gap is not None and gap <= mip_gap:
                stopped[0] = True
                event.interrupt()

        for hook, callback in ((self.highs.cbMipImprovingSolution, improved),
                               (self.highs.cbMipInterrupt, check),
                               (self.highs.cbSimplexInterrupt, check)):
            hook.subscribe(callback)
            stack.callback(hook.unsubscribe, callback)
        # Pyomo warns of HiGHS's interrupt status, which is ours here
        quiet = _DropInterruptWarning()
        logging.getLogger("pyomo.contrib.solver.solvers.highs").addFilter(quiet)
        stack.callback(logging.getLogger("pyomo.contrib.solver.solvers.highs").removeFilter,
                       quiet)
        return stopped

    def columns(self) -> list[float]:
        return list(self.highs.getSolution().col_value)


class _PyomoSession(_Session):
    """A Pyomo model through Pyomo's HiGHS interface (its persistent solver)."""

    def __init__(self, model: Any, threads: int | None) -> None:
        from pyomo.contrib.solver.solvers.highs import Highs

        super().__init__(threads)
        self.model = model
        self.opt = Highs()
        self.opt.set_instance(model)
        # the highspy object behind Pyomo's interface (a preview API, pinned in pyproject)
        self.highs = self.opt._solver_model

    def _update(self) -> None:
        self.opt.update()

    def _columns_of(self, values: Mapping[Any, float]) -> list[tuple[int, float]]:
        index = self.opt._pyomo_var_to_solver_var_map
        return [(index[id(var)], value) for var, value in values.items() if id(var) in index]

    def _solve(self, seconds: float, mip_gap: float) -> SolverReport:
        results = self.opt.solve(
            self.model, time_limit=seconds, rel_gap=mip_gap, load_solutions=False,
            raise_exception_on_nonoptimal_result=False, solver_options=self.options,
            auto_updates={key: False for key in self.opt.config.auto_updates})
        return pyomo_report(results)

    def hold_primary(self, limit: float) -> None:
        import pyomo.core as pyo

        model = self.model
        model.primary_held = pyo.Constraint(expr=model.objective.expr <= limit)
        model.objective.deactivate()
        model.secondary_objective = pyo.Objective(expr=model.secondary.expr, sense=pyo.minimize)

    def release_primary(self) -> None:
        model = self.model
        model.del_component(model.secondary_objective)
        model.del_component(model.primary_held)
        model.objective.activate()

    def primary_value(self) -> float:
        import pyomo.core as pyo

        return float(pyo.value(self.model.objective.expr))

    def saved_values(self) -> Callable[[], None]:
        import pyomo.core as pyo

        saved = [(v, v.value) for v in self.model.component_data_objects(pyo.Var)]

        def restore() -> None:
            for var, val in saved:
                var.set_value(val, skip_validation=True)

        return restore


class _DirectSession(_Session):
    """A model of the direct backend (O.9) compiled onto highspy, the options set as Pyomo's
    interface sets them."""

    def __init__(self, model: direct.ConcreteModel, threads: int | None) -> None:
        super().__init__(threads)
        self.model = model
        self.highs = silent_highs()
        self.program = direct.compile_program(model, self.highs)
        self.position = {j: k for k, j in enumerate(self.program.order)}
        self.highs.HandleKeyboardInterrupt = True
        self.held_row: int | None = None

    def _update(self) -> None:
        """Nothing to pass on: this session changes HiGHS itself (costs, rows)."""

    def _columns_of(self, values: Mapping[Any, float]) -> list[tuple[int, float]]:
        return [(self.position[var.id], value) for var, value in values.items()
                if var.id in self.position]

    def _solve(self, seconds: float, mip_gap: float) -> SolverReport:
        highs = self.highs
        for key, option in {"time_limit": seconds, "mip_rel_gap": mip_gap,
                            **self.options}.items():
            highs.setOptionValue(key, option)
        highs.run()
        status, info = highs.getModelStatus(), highs.getInfo()
        has_solution = info.primal_solution_status == 2  # 2: feasible
        termination = _HIGHS_TERMINATION.get(status.name, "unknown")
        if status == highspy.HighsModelStatus.kOptimal:
            termination = "convergenceCriteriaSatisfied"
        if has_solution:
            direct.load_values(self.model, self.program, highs.getSolution().col_value)
        objective = info.objective_function_value if has_solution else None
        if info.mip_node_count == -1:  # an LP: its optimum is its bound
            bound = objective if termination == "convergenceCriteriaSatisfied" else None
        else:
            bound = info.mip_dual_bound
        return _make_report(termination, has_solution, objective, bound)

    def hold_primary(self, limit: float) -> None:
        primary = self.model.objective.expr
        cols = [(self.position[j], c) for j, c in primary.terms.items()]
        self.held_row = self.highs.getNumRow()
        self.highs.addRow(-highspy.kHighsInf, limit - primary.constant, len(cols),
                          np.array([k for k, _ in cols], dtype=np.int32),
                          np.array([c for _, c in cols], dtype=np.float64))
        self._set_costs(self.model.secondary.expr)

    def release_primary(self) -> None:
        assert self.held_row is not None
        self.highs.deleteRows(1, np.array([self.held_row], dtype=np.int32))
        self.held_row = None
        self._set_costs(self.model.objective.expr)

    def _set_costs(self, expr: direct.LinExpr) -> None:
        cost = np.zeros(len(self.program.order))
        for j, c in expr.terms.items():
            cost[self.position[j]] += c
        self.highs.changeColsCost(len(cost), np.arange(len(cost), dtype=np.int32), cost)
        self.highs.changeObjectiveOffset(expr.constant)

    def primary_value(self) -> float:
        return direct.expression_value(self.model, self.model.objective.expr)

    def saved_values(self) -> Callable[[], None]:
        saved = dict(self.model.values)

        def restore() -> None:
            self.model.values.clear()
            self.model.values.update(saved)

        return restore


def direct_session(model: direct.ConcreteModel, threads: int | None = None) -> _DirectSession:
    """A HiGHS session of a direct model (O.9), for callers that change its costs and row
    bounds between runs (the pricing programs of O.8)."""
    return _DirectSession(model, threads)


def _session(model: Any, threads: int | None) -> _Session:
    if isinstance(model, direct.ConcreteModel):
        return _DirectSession(model, threads)
    return _PyomoSession(model, threads)


class _DropInterruptWarning(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        return "kInterrupt" not in record.getMessage()


def not_started() -> SolverReport:
    """The report of a solve the deadline left no time for."""
    return SolverReport(Status.NO_SOLUTION, "maxTimeLimit", None, None, None, 0.0, True)


# HiGHS's model status -> the termination's name, as Pyomo's HiGHS interface names it
# (pyomo.contrib.solver's TerminationCondition), so both kinds of session report alike.
_HIGHS_TERMINATION = {
    "kNotset": "unknown", "kLoadError": "error", "kModelError": "error",
    "kPresolveError": "error", "kSolveError": "error", "kPostsolveError": "error",
    "kModelEmpty": "unknown", "kOptimal": "convergenceCriteriaSatisfied",
    "kInfeasible": "provenInfeasible", "kUnboundedOrInfeasible": "infeasibleOrUnbounded",
    "kUnbounded": "unbounded", "kObjectiveBound": "objectiveLimit",
    "kObjectiveTarget": "objectiveLimit", "kTimeLimit": "maxTimeLimit",
    "kIterationLimit": "iterationLimit", "kSolutionLimit": "iterationLimit",
    "kUnknown": "unknown",
}
_INFEASIBLE = ("provenInfeasible", "infeasibleOrUnbounded", "locallyInfeasible")


def _make_report(termination: str, has_solution: bool, objective: float | None,
                 bound: float | None) -> SolverReport:
    if termination == "error":
        raise PdoptError("HiGHS stopped with an error (run with --debug and report it)")
    bound = _finite(bound)
    if termination in _INFEASIBLE:
        status = Status.INFEASIBLE
    elif not has_solution:
        status = Status.NO_SOLUTION
    elif termination == "convergenceCriteriaSatisfied":
        status = Status.OPTIMAL
    else:
        status = Status.FEASIBLE
    return SolverReport(
        status=status,
        termination=termination,
        objective_value=objective if has_solution else None,
        dual_bound=bound,
        mip_gap=relative_gap(objective, bound) if has_solution else None,
        solve_seconds=0.0,
        time_limit_hit=termination in ("maxTimeLimit", "iterationLimit"),
    )


def pyomo_report(results: Any, seconds: float = 0.0) -> SolverReport:
    """The report of Pyomo's results, the incumbent loaded into the model."""
    from pyomo.contrib.solver.common.results import SolutionStatus

    has_solution = results.solution_status in (SolutionStatus.optimal, SolutionStatus.feasible)
    termination = results.termination_condition.name
    if has_solution and termination != "error":
        results.solution_loader.load_vars()
    return replace(_make_report(termination, has_solution,
                                results.incumbent_objective if has_solution else None,
                                results.objective_bound), solve_seconds=seconds)


def _deadline(time_limit_s: float | None, deadline: Deadline | None) -> Deadline:
    if deadline is None and time_limit_s is None:
        raise ValueError("a time limit or a deadline is needed")
    limits = [d for d in (deadline, None if time_limit_s is None
                          else Deadline.after(time_limit_s)) if d is not None]
    return min(limits, key=lambda d: d.at)


def solve_model(model: Any, *, time_limit_s: float | None = None,
                mip_gap: float, deadline: Deadline | None = None, threads: int | None = None,
                progress: ProgressFn | None = None, phase: str = "solve") -> SolverReport:
    """Solve with HiGHS within `time_limit_s` and `deadline` (the earlier); load the incumbent
    into the model when there is one."""
    until = _deadline(time_limit_s, deadline)
    if until.passed():
        return not_started()
    return _session(model, threads).run(deadline=until, mip_gap=mip_gap, progress=progress,
                                        phase=phase)


def solve_lexicographic(model: Any, *, mip_gap: float,
                        time_limit_s: float | None = None, deadline: Deadline | None = None,
                        threads: int | None = None, progress: ProgressFn | None = None,
                        integral_primary: bool = False, phase: str = "",
                        start: Mapping[Any, float] | None = None,
                        secondary_factor: float | None = None,
                        known_bound: float | None = None) -> SolverReport:
    """Minimise `model.objective` (the primary, Eq. O10), then, with the primary held at the
    plan found, minimise `model.secondary` from that plan (when the model has one).

    The report is the primary's: its status, bound and gap, with the plan's primary value after
    the second stage (which can only lower it). `integral_primary`: the primary takes integer
    values only (GPUs), so a bound within 1 of the plan proves it. The second stage gets what is
    left of the deadline; if it finds nothing better the first stage's plan stays. `start`: values
    of some of the model's variables (a ComponentMap, VarData -> value) forming a plan HiGHS
    starts from. `secondary_factor`: the second stage gets at most this many times the first
    stage's time (and at least MIN_SECONDARY_S). `known_bound`: a lower bound of the primary
    proven elsewhere; the first stage stops once its plan is within `mip_gap` of it."""
    until = _deadline(time_limit_s, deadline)
    if until.passed():
        return not_started()
    session = _session(model, threads)
    first = session.run(deadline=until, mip_gap=mip_gap, progress=progress,
                        phase=f"{phase} primary".strip(), start_values=start,
                        known_bound=known_bound)
    if first.objective_value is None or not hasattr(model, "secondary"):
        return first
    value = first.objective_value
    if integral_primary and first.dual_bound is not None and \
            math.ceil(first.dual_bound - 1e-6) >= round(value):
        first = replace(first, status=Status.OPTIMAL, mip_gap=0.0,
                        dual_bound=float(round(value)))
    start_from = session.columns()
    restore = session.saved_values()
    limit = round(value) + 1e-6 if integral_primary else \
        value + FIX_SLACK * max(1.0, abs(value))
    session.hold_primary(limit)
    try:
        second = session.run(deadline=until if secondary_factor is None else min(
            until, Deadline.after(max(MIN_SECONDARY_S, secondary_factor * first.solve_seconds)),
            key=lambda d: d.at),
                             mip_gap=mip_gap, progress=progress,
                             phase=f"{phase} secondary".strip(), start_from=start_from)
    finally:
        session.release_primary()
    seconds = first.solve_seconds + second.solve_seconds
    if second.objective_value is None:
        restore()
        return replace(first, solve_seconds=seconds,
                       time_limit_hit=first.time_limit_hit or second.time_limit_hit)
    primary = session.primary_value()
    return replace(first, objective_value=primary, solve_seconds=seconds,
                   mip_gap=relative_gap(primary, first.dual_bound)
                   if first.status != Status.OPTIMAL or not integral_primary else 0.0,
                   time_limit_hit=first.time_limit_hit or second.time_limit_hit)


def silent_highs() -> Any:
    """A silent highspy instance for programs built straight on HiGHS. Its first construction
    in a process prints a banner on the standard output, which is the command's: the output's
    descriptor points at the null device meanwhile."""
    sys.stdout.flush()
    try:
        out = 1  # HiGHS writes to the process's standard output descriptor
        saved = os.dup(out)
    except OSError:  # no descriptor to silence
        highs = highspy.Highs()
    else:
        null = os.open(os.devnull, os.O_WRONLY)
        try:
            os.dup2(null, out)
            highs = highspy.Highs()
        finally:
            os.dup2(saved, out)
            os.close(saved)
            os.close(null)
    highs.setOptionValue("output_flag", False)
    return highs
