"""Coupled fleets by price decomposition (docs/method.md, O.8, Eqs. O20-O22).

Models share only the GPU inventories and the budget (O8): a few coupling rows over many
independent model blocks. With prices mu_g >= 0 on the inventories and beta >= 0 on the budget,
the Lagrangian relaxation of those rows splits into one pricing program per model (its own
program with each pool's objective coefficient raised by mu_g G_p + beta pi_p), and

    L(mu, beta) = sum_m z_m(mu, beta) - sum_g mu_g count_g - beta budget                   (O20)

is a lower bound of the fleet's optimum for any prices, with z_m any dual bound of model m's
pricing program (HiGHS's bound, so the pricing programs need not be solved to optimality). Every
pricing solve also gives a plan of that model (a column). A restricted master over the columns,
one column per model within the inventories and the budget, gives

  - as an LP (with elastic rows), the next prices (its duals, smoothed with the best prices so
    far) (O21);
  - as a small integer program, the incumbent: a plan of the whole fleet (O22).

The reported gap is the incumbent's against the best L, so it is proven. Pricing programs are
built once per model and kept, in worker processes (`pdopt.optimize.pricing_worker`) when there
are enough models and cores, else in this process; each round only changes their objectives.
"""

from __future__ import annotations

import contextlib
import logging
import math
import os
import pickle
import select
import struct
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field, replace
from typing import Any, NamedTuple

import numpy as np

from pdopt.optimize.decompose import (
    BRANCH_AND_BOUND_SHARE,
    OWN_PROCESS_GROUP,
    WORKER_GRACE_S,
    fits_limits,
    model_names,
    sub_scenario,
)
from pdopt.optimize.solver import Deadline, relative_gap, silent_highs
from pdopt.optimize.whole_lp import (
    BlockLP,
    Relaxed,
    rounded_plan,
    rounding_excess,
    settled_models,
    solve_whole_lp,
)
from pdopt.plan import Objective, Plan, PlanTotals
from pdopt.scenario.schema import Scenario

log = logging.getLogger(__name__)

# Below this many models the pricing programs stay in this process.
WORKERS_FROM_MODELS = 4
# Prices of the next round: this share of the master LP's duals, the rest the best prices so far
# (Wentges smoothing; plain duals oscillate between rounds).
SMOOTHING = 0.5
# The pricing programs are solved to this share of the requested gap (their bounds count, not
# their plans, so a looser gap only costs bound) ...
PRICING_GAP_SHARE = 0.5
# ... once the incumbent is close: to this share of the incumbent's gap, and in the first round
# (zero prices, whose bound is weak anyway: the limits bind) to FIRST_ROUND_GAP, which is also
# the loosest (proving each model's plan takes most of a pricing solve's time).
PRICING_GAP_OF_GAP = 0.25
FIRST_ROUND_GAP = 0.02
# ... or to an absolute gap: this share of the requested gap of the best bound, over the models
# (together at most this share of the requested gap: small models, whose relative gaps close
# slowly, weigh little in the fleet's)
ABS_GAP_SHARE = 0.25
# The whole LP relaxation (O24) gets at most this share of the time left; the repair of its mix
# (O23) this share of the first round's.
LP_SHARE = 0.5
LP_REPAIR_SHARE = 0.5
# The rounding of the whole LP (O25) gets at most this share of the time left (the repairs the
# rest when it fails: on 200 models, 160,000 columns, it took 13 s at load 5).
ROUNDING_SHARE = 0.35
# Without a plan yet, it gets this share of the time to the hard deadline (the repairs' first
# plans of every model take longer: 50 models at load 2.5 had none after 3 s).
NO_PLAN_ROUNDING_SHARE = 0.6
# ... and is started only with at least this many times the LP's time in it (its LP solved again,
# its roundings of the whole program and the plans took 0.5-1.3 times the LP on 50 and 200
# models).
ROUNDING_PER_LP = 1.0
# The first repair (O23) is within the whole LP's shares, unless each model would get less than
# this long: then within its rounded plan's use (O25), from that plan (never worse than it;
# with more time the LP's shares give better plans: 8,354 against 8,367 $/hour on the 50-model
# coupled fleet at 1.5 s per model, 8,583 against 8,432 at 0.5 s).
ROUNDED_CAPS_BELOW_S = 0.5
# The models whose rounded plans (O25) are together within this share of the requested gap of
# their LP values are not priced at the LP's prices (O26).
SETTLED_GAP_SHARE = 0.25
# A round is not started with less time than this share of the last one took (its programs would
# stop with weak bounds and no new plans).
MIN_ROUND_OF_LAST = 0.5
# Of the time left, a pricing round gets at most this share (the master and later rounds the rest);
# the first round, which also starts the workers and builds the programs, gets more.
ROUND_SHARE = 0.5
FIRST_ROUND_SHARE = 0.8
# Of a round's time, the repairs of the master's mix (O23) get at most this share, first.
REPAIR_SHARE = 0.4
# Without a plan, the first round and one last repair may run on to a hard deadline after the
# deadline (time limits are kept to within a second, with a plan when there is one to be had):
# the repair gets this long before it, and in the first round each pricing program at least
# this long.
RESCUE_S = 0.35
FIRST_LEAST_S = 0.05
# ... and then a worker late by more than this is stopped (not WORKER_GRACE_S: the deadline is
# already past).
LATE_GRACE_S = 0.1
# The master's integer program after the last repair gets at least this long.
MIN_MASTER_S = 0.1


@dataclass(frozen=True)
class Prices:
    """Prices of the coupling rows: $ (or GPUs) per GPU of each type, and per $ of budget;
    `models`: the models a round prices at them (None: every model); `order`: the models
    priced first, in that order (the others after them)."""

    gpu: dict[str, float] = field(default_factory=dict)
    budget: float = 0.0
    models: frozenset[str] | None = None
    order: tuple[str, ...] = ()  # these models first, in this order


@dataclass
class Column:
    """One plan of one model: its primary objective, cost and GPUs by type (O21, O22)."""

    model_name: str
    plan: Plan
    primary: float
    cost: float
    gpus: dict[str, int]

    @classmethod
    def of(cls, model_name: str, plan: Plan, objective: Objective) -> Column:
        totals = PlanTotals.of(list(plan.pools))
        cost, gpus = totals.cost_per_hour, dict(totals.gpus_by_type)
        primary = cost if objective == Objective.COST else float(sum(gpus.values()))
        return cls(model_name, plan, primary, cost, gpus)


@dataclass
class Priced:
    """What one pricing solve of one model returned: its bound (None: none) and plan, and the
    seconds its coefficients took (on its first answer only)."""

    model_name: str
    bound: float | None
    plan: Plan | None
    data_seconds: float | None = None


class Gaps(NamedTuple):
    """The gaps a round's programs are solved to: relative, and absolute in the objective's
    units (HiGHS stops at whichever is reached first)."""

    rel: float
    abs: float = 0.0

    @classmethod
    def of(cls, gaps: Gaps | float) -> Gaps:
        return gaps if isinstance(gaps, Gaps) else cls(float(gaps))


@dataclass(frozen=True)
class Limits:
    """Caps on one model's GPUs by type and its cost (O23), or the fleet's limits."""

    gpu: dict[str, int] = field(default_factory=dict)
    budget: float | None = None


def limits_of(scenario: Scenario, gpus: list[str] | None = None) -> Limits:
    """The fleet's inventories (of `gpus`, or all) and budget."""
    return Limits({g: spec.count for g, spec in scenario.gpus.items()
                   if spec.count is not None and (gpus is None or g in gpus)},
                  scenario.budget_per_hour)


@dataclass
class Outcome:
    """The decomposition's result: the chosen plan of each model (empty: no incumbent), the best
    Lagrangian bound (O20) and the rounds run."""

    plans: list[Plan]
    bound: float | None
    value: float | None
    rounds: int
    seconds: float
    alone_bounds: dict[str, float] = field(default_factory=dict)  # at zero prices (O12)
    data_seconds: float = 0.0  # the pricing programs' coefficients took, together
    models_with_plans: int = 0  # models with at least one plan (column)
    lp_bound: float | None = None  # the whole LP relaxation's optimum (O24)

    @property
    def gap(self) -> float | None:
        return relative_gap(self.value, self.bound)


def coupled(scenario: Scenario) -> bool:
    """Does the scenario have a coupling row (an inventory or a budget) and several models?"""
    limited = any(spec.count is not None for spec in scenario.gpus.values())
    return len(model_names(scenario)) > 1 and (limited or scenario.budget_per_hour is not None)


# -- pricing programs (built once, re-priced every round) -----------------------------------

class Block:
    """One model's pricing program: its program without inventories and budget, with the primary
    objective plus prices on its GPUs by type and its cost (O20), built straight for HiGHS
    (O.9): a round changes its column costs and the bounds of its cap rows."""

    def __init__(self, scenario: Scenario, model_name: str, objective: Objective) -> None:
        from pdopt.optimize import direct
        from pdopt.optimize.data import build_fleet_data
        from pdopt.optimize.model import Relaxation, cost_expr, create_model, gpus_expr
        from pdopt.optimize.solver import direct_session

        self.model_name, self.objective = model_name, objective
        started = time.perf_counter()
        self.data = build_fleet_data(sub_scenario(scenario, model_name))
        self.data_seconds: float | None = time.perf_counter() - started
        m = create_model(self.data, objective, Relaxation(budget=True, inventory="drop"),
                         backend="direct")
        gpus = sorted({pool.gpu for pool in self.data.pools.values()})
        # the shared limits as this model's own caps: at the fleet's counts and budget (a valid
        # tightening: no plan of the fleet gives one model more), lowered to its share of them
        # when repairing the master's choice (O23)
        self.limits = limits_of(scenario, gpus)
        self.capped = sorted(self.limits.gpu)
        m.gpu_capped = direct.Constraint(
            self.capped, rule=lambda m, g: gpus_expr(m, self.data, g) <= float(self.limits.gpu[g]))
        if self.limits.budget is not None:
            m.budget_capped = direct.Constraint(
                expr=cost_expr(m, self.data) <= self.limits.budget)
        self.model, self.gpus = m, gpus
        self.session = direct_session(m)
        position = self.session.position
        rows = direct.row_positions(m)

        def costs(expr: object) -> np.ndarray:
            vector = np.zeros(len(position))
            if isinstance(expr, direct.LinExpr):
                for j, c in expr.terms.items():
                    vector[position[j]] += c
            return vector

        # the priced objective (O20) is primary + sum_g price_g GPUs_g + price_budget cost
        self.primary_costs = costs(m.objective.expr)
        self.gpu_costs = {g: costs(gpus_expr(m, self.data, g)) for g in gpus}
        self.cost_costs = costs(cost_expr(m, self.data))
        self.cap_rows = dict(zip(self.capped, rows["gpu_capped"], strict=True))
        self.budget_row = rows["budget_capped"][0] if self.limits.budget is not None else None
        # the last plan found: feasible at any prices (only the objective changes), so it
        # starts the next round's search
        self.start: list[float] | None = None
        self.rounded_tried = False

    def _set(self, prices: Prices, limits: Limits) -> None:
        """The costs at `prices` and the cap rows at `limits`."""
        highs = self.session.highs
        cost = self.primary_costs + prices.budget * self.cost_costs
        for g in self.gpus:
            cost = cost + prices.gpu.get(g, 0.0) * self.gpu_costs[g]
        n = len(cost)
        highs.changeColsCost(n, np.arange(n, dtype=np.int32), cost)
        for g, row in self.cap_rows.items():
            highs.changeRowBounds(row, -np.inf, float(limits.gpu.get(g, self.limits.gpu[g])))
        if self.budget_row is not None:
            budget = limits.budget if limits.budget is not None else self.limits.budget
            assert budget is not None  # the row exists because the fleet has a budget
            highs.changeRowBounds(self.budget_row, -np.inf, budget)

    def lp(self) -> BlockLP:
        """This program at zero prices as an LP, its rows of the shared limits apart (O24)."""
        from pdopt.optimize.whole_lp import BUDGET, block_lp

        self._set(Prices(), self.limits)
        shared: dict[str, int] = dict(self.cap_rows)
        if self.budget_row is not None:
            shared[BUDGET] = self.budget_row
        return block_lp(self.model_name, self.session.highs, shared)

    def price(self, prices: Prices, deadline: Deadline, mip_gap: float,
              caps: Limits | None = None, abs_gap: float = 0.0) -> Priced:
        """Solve the pricing program at `prices` by `deadline`: its dual bound and its plan.
        With `caps` (a repair, O23): the model's plan within those caps at zero prices, whose
        bound is no Lagrangian bound (the caps are not the fleet's)."""
        from pdopt.optimize.extract import build_plan
        from pdopt.optimize.solver import MIN_SOLVE_S

        data_seconds, self.data_seconds = self.data_seconds, None  # reported once
        if deadline.remaining() < MIN_SOLVE_S:
            return Priced(self.model_name, None, None, data_seconds)
        self._set(Prices() if caps is not None else prices, caps or self.limits)
        first = self.start is None and caps is None and not self.rounded_tried
        # no plan of this model yet: branch and bound gets a share, the rounded LP relaxation
        # (O.3) the rest when it ends without one (as for the models alone, O.2)
        self.session.options["mip_abs_gap"] = abs_gap
        # the last plan starts the search (HiGHS rejects it when it breaks the caps)
        report = self.session.run(
            deadline=deadline.share(BRANCH_AND_BOUND_SHARE) if first else deadline,
            mip_gap=mip_gap, progress=None, phase=self.model_name, start_from=self.start)
        if report.status.has_plan:
            self.start = self.session.columns()
            return Priced(self.model_name, report.dual_bound,
                          build_plan(self.data, self.model, self.objective, report),
                          data_seconds)
        return Priced(self.model_name, report.dual_bound,
                      self._rounded(deadline) if first else None, data_seconds)

    def plan_of(self, values: Any) -> Priced:
        """The plan of this program's columns at `values` (the rounded whole LP's, O25), kept
        as the start of its next search."""
        from pdopt.optimize import direct
        from pdopt.optimize.extract import build_plan
        from pdopt.plan import SolverReport, Status

        data_seconds, self.data_seconds = self.data_seconds, None  # reported once
        self.start = [float(v) for v in values]
        direct.load_values(self.model, self.session.program, self.start)
        report = SolverReport(Status.FEASIBLE, "rounded whole LP", None, None, None, 0.0, False)
        return Priced(self.model_name, None,
                      build_plan(self.data, self.model, self.objective, report), data_seconds)

    def _rounded(self, deadline: Deadline) -> Plan | None:
        """Without a plan from branch and bound, the rounded LP relaxation's (O.3), tried once
        per model: any plan of the model is a column. Its values start the next branch and
        bound (when they fit the caps)."""
        from pdopt.optimize import direct
        from pdopt.optimize.extract import build_plan
        from pdopt.optimize.model import Relaxation
        from pdopt.optimize.rounding import rounded_up

        if self.rounded_tried or deadline.passed():
            return None
        self.rounded_tried = True
        rounded = rounded_up(self.data, self.objective, Relaxation(budget=True, inventory="drop"),
                             deadline=deadline, dual_bound=None)
        if rounded is None:
            return None
        model, report = rounded

        def columns(m: direct.ConcreteModel) -> dict[tuple[str, Any], direct.VarData]:
            return {(name, key): var for name, component in m.components
                    if isinstance(component, direct.Var) for key, var in component.items()}

        # the same program (same data, same relaxation): its columns by component and index
        values = {k: var.value for k, var in columns(model).items()}
        position = self.session.position
        start = [0.0] * len(position)
        for k, var in columns(self.model).items():
            at = position.get(var.id)
            if at is not None:
                start[at] = float(values.get(k) or 0.0)
        self.start = start
        return build_plan(self.data, model, self.objective, report)


Round = tuple[list["Priced"], list["Priced"]]  # the pricing programs' answers, the repairs'


def price_in_turn(blocks: dict[str, Block], names: list[str], prices: Prices | None,
                  deadline: Deadline, mip_gap: Gaps | float, repairs: dict[str, Limits],
                  least: tuple[float, Deadline] | None = None) -> Round:
    """One round over `names` one after another: first the repairs (O23, in their order), each
    a share of REPAIR_SHARE of the time (all of it without `prices`), then every pricing
    program (those of `prices.order` first), each an equal share of what is left (what one
    leaves unused goes to the next). `least`: a pricing
    program left less than that many seconds gets that many, or an equal share of the time to
    that deadline if more, but never past it (the first round: without a column of every model
    there is no plan at all)."""
    gaps = Gaps.of(mip_gap)
    todo = [name for name in repairs if name in names]  # in the repairs' order
    repaired = []
    until = deadline.share(REPAIR_SHARE) if todo and prices is not None else deadline
    for k, name in enumerate(todo):
        block = blocks.get(name)
        share = _at_least(until.share(1.0 / (len(todo) - k)), least, len(todo) - k)
        repaired.append(block.price(Prices(), share, gaps.rel, repairs[name], gaps.abs)
                        if block is not None else Priced(name, None, None))
    priced: list[Priced] = []
    todo = [] if prices is None else [name for name in names if prices.models is None
                                      or name in prices.models]
    if prices is not None and prices.order:
        rank = {name: k for k, name in enumerate(prices.order)}
        todo.sort(key=lambda name: rank.get(name, len(rank)))
    for k, name in enumerate(todo):
        block = blocks.get(name)
        share = _at_least(deadline.share(1.0 / (len(todo) - k)), least, len(todo) - k)
        priced.append(block.price(prices, share, gaps.rel, abs_gap=gaps.abs)
                      if block is not None and prices
                      is not None else Priced(name, None, None))
    return priced + [Priced(name, None, None) for name in names if name not in todo], repaired


def plans_of(blocks: dict[str, Block], values: dict[str, Any]) -> list[Priced]:
    """Each model's plan at its columns' `values` (the rounded whole LP's, O25)."""
    return [blocks[name].plan_of(v) for name, v in values.items() if name in blocks]


def _at_least(share: Deadline, least: tuple[float, Deadline] | None, left: int) -> Deadline:
    """`share`, or with `least` and less than least[0] seconds in it: an equal share (of
    `left` programs) of the time to least[1], and at least least[0] (up to least[1])."""
    if least is None or share.remaining() >= least[0]:
        return share
    return Deadline(max(min(time.time() + least[0], least[1].at),
                        least[1].share(1.0 / left).at))


class LocalPricer:
    """Pricing programs in this process, solved one after another."""

    def __init__(self, scenario: Scenario, names: list[str], objective: Objective,
                 deadline: Deadline) -> None:
        self.blocks: dict[str, Block] = {}
        for name in names:
            if deadline.passed():
                break
            self.blocks[name] = Block(scenario, name, objective)
        self.names = names

    def price(self, prices: Prices | None, deadline: Deadline, mip_gap: Gaps | float,
              repairs: dict[str, Limits] | None = None,
              least: tuple[float, Deadline] | None = None,
              grace: float = WORKER_GRACE_S) -> Round:
        return price_in_turn(self.blocks, self.names, prices, deadline, mip_gap, repairs or {},
                             least)

    def lps(self, deadline: Deadline, grace: float = WORKER_GRACE_S) -> list[BlockLP]:
        """The pricing programs as LPs (O24)."""
        return [block.lp() for block in self.blocks.values()]

    def plans(self, values: dict[str, Any], deadline: Deadline,
              grace: float = WORKER_GRACE_S) -> list[Priced]:
        """The plans of the models' columns at `values` (O25)."""
        return plans_of(self.blocks, values)

    def close(self) -> None:
        self.blocks.clear()


def _send(stream: Any, message: object) -> None:
    payload = pickle.dumps(message)
    stream.write(struct.pack("<Q", len(payload)) + payload)
    stream.flush()


def _read_exact(fd: int, size: int, until: float | None) -> bytes | None:
    chunks, left = [], size
    while left:
        if until is not None:
            wait = until - time.time()
            if wait <= 0 or not select.select([fd], [], [], wait)[0]:
                return None
        chunk = os.read(fd, min(left, 1 << 20))
        if not chunk:
            return None
        chunks.append(chunk)
        left -= len(chunk)
    return b"".join(chunks)


def _receive(fd: int, until: float | None) -> Any:
    """The next framed message from `fd`, or None when it did not come by `until` (time.time())
    or the writer is gone."""
    head = _read_exact(fd, 8, until)
    if head is None:
        return None
    body = _read_exact(fd, struct.unpack("<Q", head)[0], until)
    return None if body is None else pickle.loads(body)


class ProcessPricer:
    """Pricing programs in persistent worker processes (`pdopt.optimize.pricing_worker`), each
    holding its share of the models' programs across rounds. A worker late by more than
    WORKER_GRACE_S is stopped; its models have no bound from then on."""

    def __init__(self, scenario: Scenario, names: list[str], objective: Objective,
                 deadline: Deadline, workers: int) -> None:
        self.names = names
        self.chunks = [names[k::workers] for k in range(workers)]
        self.procs: list[subprocess.Popen[bytes] | None] = []
        self.sending: list[threading.Thread | None] = []
        for chunk in self.chunks:
            proc = subprocess.Popen([sys.executable, "-m", "pdopt.optimize.pricing_worker",
                                     str(os.getpid())], stdin=subprocess.PIPE,
                                    stdout=subprocess.PIPE,
                                    process_group=OWN_PROCESS_GROUP.get("process_group"))
            self.procs.append(proc)
            # the scenario is larger than a pipe holds: sent while the worker starts (a fresh
            # interpreter), so the workers start together, not one after the other
            sender = threading.Thread(target=_send_quietly,
                                      args=(proc.stdin, ("init", scenario, chunk, objective,
                                                         deadline)), daemon=True)
            sender.start()
            self.sending.append(sender)

    def price(self, prices: Prices | None, deadline: Deadline, mip_gap: Gaps | float,
              repairs: dict[str, Limits] | None = None,
              least: tuple[float, Deadline] | None = None,
              grace: float = WORKER_GRACE_S) -> Round:
        repairs = repairs or {}
        until = max(deadline.at, least[1].at if least else 0.0) + grace
        answers = self._ask(lambda k: ("price", prices, deadline, mip_gap, {
            name: caps for name, caps in repairs.items() if name in self.chunks[k]}, least),
            until)
        got: dict[str, Priced] = {}
        fixed: dict[str, Priced] = {}
        for answer in answers:
            got.update({p.model_name: p for p in answer[0]})
            fixed.update({p.model_name: p for p in answer[1]})
        return ([got.get(name, Priced(name, None, None)) for name in self.names],
                [fixed.get(name, Priced(name, None, None)) for name in repairs])

    def lps(self, deadline: Deadline, grace: float = WORKER_GRACE_S) -> list[BlockLP]:
        """The pricing programs as LPs (O24), from the workers that answer by `deadline`."""
        return [lp for answer in self._ask(lambda k: ("lp",), deadline.at + grace)
                for lp in answer]

    def plans(self, values: dict[str, Any], deadline: Deadline,
              grace: float = WORKER_GRACE_S) -> list[Priced]:
        """The plans of the models' columns at `values` (O25), from the workers that answer by
        `deadline`."""
        return [p for answer in self._ask(lambda k: ("plans", {
            name: v for name, v in values.items() if name in self.chunks[k]}),
            deadline.at + grace) for p in answer]

    def _ask(self, request: Any, until: float) -> list[Any]:
        """Send `request(k)` to each worker k and gather the answers by `until` (time.time());
        a worker not reading its programs by then, or not answering, is stopped."""
        for k, proc in enumerate(self.procs):
            sender = self.sending[k]
            if sender is not None:
                sender.join(max(0.0, until - time.time()))
                if sender.is_alive():  # still not reading its programs: stopped
                    self._stop(k)
                    continue
                self.sending[k] = None
            if proc is not None:
                _send(proc.stdin, request(k))
        answers = []
        for k, proc in enumerate(self.procs):
            if proc is None:
                continue
            assert proc.stdout is not None
            answer = _receive(proc.stdout.fileno(), until)
            if answer is None:  # late or gone: stopped, its models unpriced from now on
                self._stop(k)
                continue
            answers.append(answer)
        return answers

    def _stop(self, k: int) -> None:
        proc = self.procs[k]
        if proc is None:
            return
        if proc.poll() is None:
            proc.kill()
        proc.wait()
        for stream in (proc.stdin, proc.stdout):
            if stream is not None:
                with contextlib.suppress(OSError):
                    stream.close()
        self.procs[k] = None

    def close(self) -> None:
        for k in range(len(self.procs)):
            self._stop(k)


def _send_quietly(stream: Any, message: object) -> None:
    """_send from a thread: a worker stopped before it read its message is no error."""
    with contextlib.suppress(OSError, ValueError):
        _send(stream, message)


# In a Dask worker: the pricing programs of the solves it serves, kept between rounds (a worker
# runs one task of a solve at a time: each round sends one task per worker).
_WORKER_BLOCKS: dict[tuple[str, str], Block] = {}


def price_on_worker(solve_key: str, scenario: Scenario, names: list[str], objective: Objective,
                    prices: Prices | None, deadline: Deadline, mip_gap: Gaps | float,
                    repairs: dict[str, Limits] | None = None,
                    least: tuple[float, Deadline] | None = None) -> Round:
    """A Dask task: price `names` at `prices` (and repair those in `repairs`, O23), building
    their programs on first use."""
    blocks = _worker_blocks(solve_key, scenario, names, objective, deadline)
    return price_in_turn(blocks, names, prices, deadline, mip_gap, repairs or {}, least)


def lps_on_worker(solve_key: str, scenario: Scenario, names: list[str], objective: Objective,
                  deadline: Deadline) -> list[BlockLP]:
    """A Dask task: the programs of `names` as LPs (O24), building them on first use."""
    return [block.lp() for block in _worker_blocks(solve_key, scenario, names, objective,
                                                   deadline).values()]


def plans_on_worker(solve_key: str, scenario: Scenario, names: list[str], objective: Objective,
                    values: dict[str, Any], deadline: Deadline) -> list[Priced]:
    """A Dask task: the plans of `names` at their columns' `values` (O25)."""
    return plans_of(_worker_blocks(solve_key, scenario, names, objective, deadline), values)


def _worker_blocks(solve_key: str, scenario: Scenario, names: list[str], objective: Objective,
                   deadline: Deadline) -> dict[str, Block]:
    blocks: dict[str, Block] = {}
    for name in names:
        block = _WORKER_BLOCKS.get((solve_key, name))
        if block is None and not deadline.passed():
            block = _WORKER_BLOCKS[(solve_key, name)] = Block(scenario, name, objective)
        if block is not None:
            blocks[name] = block
    return blocks


def forget_on_worker(solve_key: str) -> None:
    """A Dask task: drop the pricing programs of a finished solve."""
    for key in [key for key in _WORKER_BLOCKS if key[0] == solve_key]:
        del _WORKER_BLOCKS[key]


class DaskPricer:
    """Pricing programs on a Dask cluster (the batch executor's, `--dask-scheduler`): each
    worker holds its share of the models' programs across rounds; a round is one task per
    worker. Tasks not done WORKER_GRACE_S after the round's deadline are cancelled."""

    def __init__(self, scenario: Scenario, names: list[str], objective: Objective,
                 address: str) -> None:
        import uuid

        from distributed import Client

        from pdopt.batch.executors import DASK_CONNECT_TIMEOUT_S, check_dask_scheduler

        check_dask_scheduler(address, DASK_CONNECT_TIMEOUT_S)
        self.client = Client(address, timeout=DASK_CONNECT_TIMEOUT_S, set_as_default=False)
        workers = sorted(self.client.scheduler_info()["workers"])
        self.chunks = {w: names[k::len(workers)] for k, w in enumerate(workers)
                       if names[k::len(workers)]}
        self.names, self.objective = names, objective
        self.key = uuid.uuid4().hex
        self.scenario = self.client.scatter(scenario, broadcast=True)

    def price(self, prices: Prices | None, deadline: Deadline, mip_gap: Gaps | float,
              repairs: dict[str, Limits] | None = None,
              least: tuple[float, Deadline] | None = None,
              grace: float = WORKER_GRACE_S) -> Round:
        repairs = repairs or {}
        futures = [self.client.submit(price_on_worker, self.key, self.scenario, chunk,
                                      self.objective, prices, deadline, mip_gap,
                                      {n: c for n, c in repairs.items() if n in chunk}, least,
                                      workers=[w], allow_other_workers=False, pure=False)
                   for w, chunk in self.chunks.items()]
        until = max(deadline.at, least[1].at if least else 0.0) + grace
        got: dict[str, Priced] = {}
        fixed: dict[str, Priced] = {}
        for future in futures:
            try:
                priced, repaired = future.result(timeout=max(0.01, until - time.time()))
            except Exception:  # late (cancelled), or the worker failed: no bound this round
                self.client.cancel([future])
                continue
            got.update({p.model_name: p for p in priced})
            fixed.update({p.model_name: p for p in repaired})
        return ([got.get(name, Priced(name, None, None)) for name in self.names],
                [fixed.get(name, Priced(name, None, None)) for name in repairs])

    def lps(self, deadline: Deadline, grace: float = WORKER_GRACE_S) -> list[BlockLP]:
        """The pricing programs as LPs (O24), from the workers that answer by `deadline`."""
        futures = [self.client.submit(lps_on_worker, self.key, self.scenario, chunk,
                                      self.objective, deadline, workers=[w],
                                      allow_other_workers=False, pure=False)
                   for w, chunk in self.chunks.items()]
        lps: list[BlockLP] = []
        for future in futures:
            try:
                lps.extend(future.result(timeout=max(0.01, deadline.at + grace - time.time())))
            except Exception:  # late (cancelled), or the worker failed: no LP from it
                self.client.cancel([future])
        return lps

    def plans(self, values: dict[str, Any], deadline: Deadline,
              grace: float = WORKER_GRACE_S) -> list[Priced]:
        """The plans of the models' columns at `values` (O25), from the workers that answer by
        `deadline`."""
        futures = [self.client.submit(plans_on_worker, self.key, self.scenario, chunk,
                                      self.objective,
                                      {n: v for n, v in values.items() if n in chunk}, deadline,
                                      workers=[w], allow_other_workers=False, pure=False)
                   for w, chunk in self.chunks.items()]
        planned: list[Priced] = []
        for future in futures:
            try:
                planned.extend(future.result(timeout=max(0.01,
                                                         deadline.at + grace - time.time())))
            except Exception:  # late (cancelled), or the worker failed: no plans from it
                self.client.cancel([future])
        return planned

    def close(self) -> None:
        try:
            self.client.run(forget_on_worker, self.key)
        finally:
            self.client.close()


# -- the restricted master (O21, O22) and its repair (O23) -------------------------------------

def _rows(scenario: Scenario, columns: list[Column]) -> tuple[list[str], float | None]:
    limited = sorted(g for g, spec in scenario.gpus.items() if spec.count is not None
                     and any(c.gpus.get(g, 0) for c in columns))
    return limited, scenario.budget_per_hour


def price_caps(scenario: Scenario, objective: Objective) -> tuple[float, float]:
    """The most the master's prices may reach, per GPU and per $ of budget (O21): the dearest
    GPU-hour (cost) or 2 GPUs (gpus) per GPU, and 1 (cost) or the GPUs one $ buys at the cheapest
    GPU (gpus) per $. Any prices >= 0 give a valid bound (O20); the caps only keep the first
    rounds, whose columns do not yet fit, from pricing at the elastic rows' penalty."""
    prices = [spec.cost_per_hour for spec in scenario.gpus.values() if spec.cost_per_hour > 0]
    if objective == Objective.COST:
        return max(prices, default=1.0), 1.0
    return 2.0, 1.0 / min(prices, default=1.0)


def rounding_penalty(scenario: Scenario, objective: Objective, relaxed: Relaxed) -> Any:
    """The price of a unit over each shared limit in the rounding of the whole LP (O25):
    OVERSHOOT_PENALTY times the master's price cap of that unit (O21)."""
    import numpy as np

    from pdopt.optimize.whole_lp import BUDGET, OVERSHOOT_PENALTY

    per_gpu, per_dollar = price_caps(scenario, objective)
    keys = relaxed.whole.keys if relaxed.whole is not None else []
    return OVERSHOOT_PENALTY * np.array([per_dollar if key == BUDGET else per_gpu
                                         for key in keys], dtype=float)


def _master(scenario: Scenario, names: list[str], columns: list[Column], objective: Objective,
            *, integer: bool, deadline: Deadline) -> tuple[Any, list[str], int] | None:
    """The restricted master solved by HiGHS: the LP of O21 (elastic rows) or the integer
    program of O22 (binary choices, hard rows). Returns the solved instance, the limited GPU
    types (its rows after the models') and the number of columns; None when it fails."""
    import highspy
    import numpy as np

    limited, budget = _rows(scenario, columns)
    index = {name: k for k, name in enumerate(names)}
    n_cols = len(columns)
    n_slack = 0 if integer else len(limited) + (budget is not None)
    per_gpu, per_dollar = price_caps(scenario, objective)
    if integer:  # the secondary objective breaks ties among plans of the same primary (O10)
        secondary = [c.cost if c.primary != c.cost else float(sum(c.gpus.values()))
                     for c in columns]
        weight = 1e-7 / max(1.0, max(secondary, default=1.0))
        cost = [c.primary + weight * s for c, s in zip(columns, secondary, strict=True)]
    else:
        cost = [c.primary for c in columns] + [per_gpu] * len(limited) \
            + [per_dollar] * (budget is not None)
    n = n_cols + n_slack
    highs = silent_highs()
    inf = highspy.kHighsInf
    highs.addVars(n, np.zeros(n), np.ones(n) if integer else np.full(n, inf))
    highs.changeColsCost(n, np.arange(n, dtype=np.int32), np.array(cost, dtype=float))
    starts: list[int] = []
    idx: list[int] = []
    vals: list[float] = []
    lo: list[float] = []
    hi: list[float] = []

    def row(entries: list[tuple[int, float]], low: float, high: float) -> None:
        starts.append(len(idx))
        for j, v in entries:
            if v:
                idx.append(j)
                vals.append(v)
        lo.append(low)
        hi.append(high)

    for name in names:
        row([(j, 1.0) for j, c in enumerate(columns) if index[c.model_name] == index[name]],
            1.0, 1.0)
    for r, g in enumerate(limited):
        entries = [(j, float(c.gpus.get(g, 0))) for j, c in enumerate(columns)]
        if not integer:
            entries.append((n_cols + r, -1.0))
        row(entries, -inf, float(scenario.gpus[g].count or 0))
    if budget is not None:
        entries = [(j, c.cost) for j, c in enumerate(columns)]
        if not integer:
            entries.append((n_cols + len(limited), -1.0))
        row(entries, -inf, budget + (1e-9 if integer else 0.0))
    highs.addRows(len(lo), np.array(lo), np.array(hi), len(idx),
                  np.array(starts, dtype=np.int32), np.array(idx, dtype=np.int32),
                  np.array(vals, dtype=float))
    if integer:
        highs.changeColsIntegrality(n, np.arange(n, dtype=np.int32),
                                    np.array([highspy.HighsVarType.kInteger] * n))
        highs.setOptionValue("time_limit", max(0.01, deadline.remaining()))
    highs.run()
    if highs.getModelStatus() != highspy.HighsModelStatus.kOptimal and not (
            integer and highs.getInfo().primal_solution_status == 2):  # 2: feasible
        return None
    return highs, limited, n_cols


@dataclass
class Master:
    """The master LP's answer (O21): the next prices and its mix of each model's columns."""

    prices: Prices
    weights: list[float]  # lambda of each column


def master_lp(scenario: Scenario, names: list[str], columns: list[Column],
              objective: Objective = Objective.COST) -> Master | None:
    """The master LP over the columns (a convex combination of each model's columns within the
    inventories and the budget, made elastic at the price caps): its row duals as prices (O21)
    and its weights of the columns. None when the LP fails."""
    solved = _master(scenario, names, columns, objective, integer=False,
                     deadline=Deadline.after(math.inf))
    if solved is None:
        return None
    highs, limited, n_cols = solved
    solution = highs.getSolution()
    duals = [max(0.0, -float(d)) for d in list(solution.row_dual)[len(names):]]
    prices = Prices(gpu=dict(zip(limited, duals[:len(limited)], strict=True)),
                    budget=duals[len(limited)] if scenario.budget_per_hour is not None else 0.0)
    return Master(prices, [float(x) for x in list(solution.col_value)[:n_cols]])


def master_prices(scenario: Scenario, names: list[str], columns: list[Column],
                  objective: Objective = Objective.COST) -> Prices | None:
    """The master LP's prices (O21); None when the LP fails."""
    master = master_lp(scenario, names, columns, objective)
    return None if master is None else master.prices


def master_plan(scenario: Scenario, names: list[str], columns: list[Column],
                deadline: Deadline) -> list[Column] | None:
    """The best choice of one column per model within the inventories and the budget (O22), by
    a small integer program; None when no choice fits (or the deadline passes first)."""
    if deadline.passed() or {c.model_name for c in columns} != set(names):
        return None
    solved = _master(scenario, names, columns, Objective.COST, integer=True, deadline=deadline)
    if solved is None:
        return None
    x = list(solved[0].getSolution().col_value)
    chosen = [columns[j] for j in range(len(columns)) if x[j] > 0.5]
    if sorted(c.model_name for c in chosen) != sorted(names) or not fits_limits(
            scenario, [c.plan for c in chosen]):
        return None
    return chosen


def repair_caps(scenario: Scenario, names: list[str], columns: list[Column],
                weights: list[float]) -> dict[str, Limits]:
    """Each model's share of the inventories and the budget from the master LP's mix (O23): its
    GPUs of each limited type and its cost in the mix, scaled down to the limits where the mix
    overuses them, rounded down, the GPUs left over handed out by largest remainder. The shares
    together fit the limits, so plans within them do too. Returns the caps of the models whose
    mix is no single column within its share (the others keep that column)."""
    limited, _ = _rows(scenario, columns)
    gpus = {name: dict.fromkeys(limited, 0.0) for name in names}
    cost = dict.fromkeys(names, 0.0)
    for c, w in zip(columns, weights, strict=True):
        for g in limited:
            gpus[c.model_name][g] += w * c.gpus.get(g, 0)
        cost[c.model_name] += w * c.cost
    shares = share_limits(scenario, names, gpus, cost)
    out = {}
    for name in names:
        limits = shares[name]
        mixed = [w for c, w in zip(columns, weights, strict=True)
                 if c.model_name == name and w > 1e-6]
        fits = any(_within(c, limits) for c, w in zip(columns, weights, strict=True)
                   if c.model_name == name and w > 1e-6)
        if len(mixed) > 1 or not fits:
            out[name] = limits
    return out


def share_limits(scenario: Scenario, names: list[str], gpus: dict[str, dict[str, float]],
                 cost: dict[str, float]) -> dict[str, Limits]:
    """Each model's share of the inventories and the budget from its use of them in a mix (the
    master LP's, or the whole LP's, O23-O24): `gpus` of each limited type and `cost` by model.
    The GPUs by `_shares`; the budget in proportion to cost, scaled down when the mix overuses
    it, what is left split evenly. The shares together fit the limits."""
    limited = sorted({g for use in gpus.values() for g in use})
    caps: dict[str, dict[str, int]] = {name: {} for name in names}
    for g in limited:
        count = int(scenario.gpus[g].count or 0)
        caps_g = _shares({name: gpus[name].get(g, 0.0) for name in names}, count)
        for name in names:
            caps[name][g] = caps_g[name]
    dollars: dict[str, float | None] = dict.fromkeys(names)
    budget = scenario.budget_per_hour
    if budget is not None:
        total = sum(cost.values())
        scale = min(1.0, budget / total) if total > 0 else 1.0
        spare = (budget - scale * total) / len(names)
        dollars = {name: scale * cost[name] + spare for name in names}
    return {name: Limits(caps[name], dollars[name]) for name in names}


def _shares(use: dict[str, float], count: int) -> dict[str, int]:
    """Whole shares of `count` GPUs by their use in the master's mix (O23). Within the count:
    the use rounded down, the GPUs left handed out by largest remainder. Over it (the columns do
    not fit yet): the lightest users keep their use and the heaviest, the fewest that must,
    share what is left in proportion to their use (the fewer models repaired, the sooner)."""
    total = sum(use.values())
    if total <= count + 1e-9:
        caps = {name: math.floor(u + 1e-9) for name, u in use.items()}
        left = count - sum(caps.values())
        for name in sorted(use, key=lambda n: caps[n] - use[n]):
            if left <= 0 or use[name] - caps[name] <= 1e-9:
                break
            caps[name] += 1
            left -= 1
        return caps
    caps, kept = {}, 0
    heaviest: list[str] = []
    for name in sorted(use, key=lambda n: use[n]):
        whole = math.ceil(use[name] - 1e-9)
        if not heaviest and kept + whole <= count:
            caps[name], kept = whole, kept + whole
        else:
            heaviest.append(name)
    spare, weight = count - kept, sum(use[n] for n in heaviest)
    shares = {n: spare * use[n] / weight if weight > 0 else 0.0 for n in heaviest}
    caps.update(_shares(shares, spare) if heaviest else {})
    return caps


def use_of(column: Column, share: Limits) -> Limits:
    """A column's own use of the limited GPU types (those of `share`) and, with a budget, its
    cost: caps within which it is a plan (O23 from the rounded whole LP, O25)."""
    return Limits({g: column.gpus.get(g, 0) for g in share.gpu},
                  None if share.budget is None else column.cost)


def _within(column: Column, limits: Limits) -> bool:
    return all(column.gpus.get(g, 0) <= n for g, n in limits.gpu.items()) and (
        limits.budget is None or column.cost <= limits.budget + 1e-9)


# -- the loop --------------------------------------------------------------------------------

def solve_coupled(scenario: Scenario, objective: Objective, *, deadline: Deadline,
                  mip_gap: float, seed_plans: dict[str, Plan] | None = None,
                  seed_bounds: dict[str, float] | None = None,
                  workers: int | None = None, dask_scheduler: str | None = None,
                  hard_deadline: Deadline | None = None,
                  relax_first: bool | None = None) -> Outcome:
    """Price, master, repair, repeat until the incumbent is within `mip_gap` of the best bound
    (O20) or `deadline` passes. `seed_plans` (each model alone, O.2) are the first columns and
    `seed_bounds` (their bounds: L at zero prices is their sum, O12) the first bound.
    `dask_scheduler`: price on that Dask cluster instead of local processes.

    First (`relax_first`; by default from WORKERS_FROM_MODELS models on) the whole program's LP
    relaxation, put together from the pricing programs (O24): its optimum is the first bound,
    its duals the first prices and its mix the first repair's shares (O23); without it (out of
    time, failed, or fewer models: their zero-price plans are columns the repairs combine
    well), the first round prices at zero prices (or the master's duals, with `seed_plans`).

    Without a plan, the first round and one last repair of the master's mix may run on to
    `hard_deadline` (default: `deadline`): the first round gives every program at least
    FIRST_LEAST_S, up to RESCUE_S before the hard deadline, and without an incumbent at the
    deadline the repair (O23) gets what is left until the hard deadline."""
    hard = hard_deadline or deadline
    first = (FIRST_LEAST_S, Deadline(max(deadline.at, hard.at - RESCUE_S)))
    start = time.perf_counter()
    names = model_names(scenario)
    columns: list[Column] = []
    known: set[tuple[str, float, tuple[tuple[str, int], ...]]] = set()
    alone: dict[str, float] = dict(seed_bounds or {})
    best_bound = sum(alone.values()) if len(alone) == len(names) else None
    best_prices = Prices()
    incumbent: list[Column] | None = None
    value: float | None = None
    rounds, data_seconds, last_round_s, lp_seconds = 0, 0.0, 0.0, 0.0
    workers = min(workers or os.cpu_count() or 1, len(names))
    relaxed: Relaxed | None = None
    lp_prices: Prices | None = None  # the whole LP's duals, priced next (O24)
    settled: set[str] = set()  # models not priced at them: their rounded plans suffice (O26)
    order: tuple[str, ...] = ()  # the others, the dearest to round first
    within_rounded = False  # the first repair within the rounded plans' use (O25)

    def add(answers: list[Priced]) -> list[Column]:
        """The answers' plans not yet among the columns, added to them."""
        fresh = []
        for p in answers:
            if p.plan is None:
                continue
            column = Column.of(p.model_name, p.plan, objective)
            key = (column.model_name, column.primary, tuple(sorted(column.gpus.items())))
            if key not in known:
                known.add(key)
                fresh.append(column)
        columns.extend(fresh)
        return fresh

    def choose(until: Deadline) -> None:
        nonlocal incumbent, value
        chosen = master_plan(scenario, names, columns, until)
        if chosen is not None:
            chosen_value = sum(c.primary for c in chosen)
            if value is None or chosen_value < value:
                incumbent, value = chosen, chosen_value

    def gaps(gap: float | None, tight: bool = False) -> Gaps:
        """The next round's gaps: relative (pricing_gap; `tight` (at the whole LP's prices, and
        its first repair): PRICING_GAP_SHARE of the requested gap, the bound and the plans the
        proof needs) and
        absolute, ABS_GAP_SHARE of the requested gap of the best bound over the models
        (together at most that share of it: the small models' relative gaps close slowly and
        weigh little)."""
        spread = ABS_GAP_SHARE * mip_gap * max(0.0, best_bound or 0.0) / len(names)
        return Gaps(PRICING_GAP_SHARE * mip_gap if tight
                    else pricing_gap(mip_gap, gap, rounds), spread)

    add([Priced(name, None, plan) for name, plan in (seed_plans or {}).items()])
    choose(deadline)
    pricer: LocalPricer | ProcessPricer | DaskPricer
    if dask_scheduler:
        pricer = DaskPricer(scenario, names, objective, dask_scheduler)
    elif workers >= 2 and len(names) >= WORKERS_FROM_MODELS:  # programs built by first[1]
        pricer = ProcessPricer(scenario, names, objective, first[1], workers)
    else:
        pricer = LocalPricer(scenario, names, objective, first[1])
    if relax_first is None:
        relax_first = len(names) >= WORKERS_FROM_MODELS
    try:
        if relax_first:
            lps = pricer.lps(first[1], LATE_GRACE_S)
            lp_start = time.perf_counter()
            if len(lps) == len(names):
                relaxed = solve_whole_lp(scenario, lps, Deadline(max(
                    deadline.share(LP_SHARE).at, first[1].share(LP_SHARE).at)))
            lp_seconds = time.perf_counter() - lp_start
            log.debug("whole LP at %.1f s (%d of %d programs, %.1f s): %s",
                      time.perf_counter() - start, len(lps), len(names), lp_seconds,
                      None if relaxed is None else relaxed.value)
        if relaxed is not None:  # its bound, and its mix repaired to fit the limits (O23)
            lp_prices = Prices(gpu=relaxed.gpu_prices, budget=relaxed.budget_price)
            if best_bound is None or relaxed.value > best_bound:
                best_bound, best_prices = relaxed.value, lp_prices
            # a first plan: the whole LP rounded within the limits (O25), by the hard deadline
            # when there is no plan yet
            until = deadline.share(ROUNDING_SHARE) if incumbent is not None \
                else Deadline(max(deadline.share(ROUNDING_SHARE).at,
                                  first[1].share(NO_PLAN_ROUNDING_SHARE).at))
            # not started when it would not be done in time: the repairs need the time
            rounding = rounded_plan(relaxed, until, rounding_penalty(
                scenario, objective, relaxed)) \
                if until.remaining() >= ROUNDING_PER_LP * lp_seconds else None
            repairs = share_limits(scenario, names, relaxed.gpus, relaxed.cost)
            if rounding is not None:
                planned = pricer.plans(rounding, first[1], LATE_GRACE_S)
                data_seconds += sum(p.data_seconds or 0.0 for p in planned)
                add(planned)
                choose(Deadline(max(deadline.at, time.time() + MIN_MASTER_S)))
                if incumbent is not None:
                    # the models it settles are not priced (O26); all are repaired, the
                    # dearest to round first: within the LP's shares, or with little time for
                    # each, within their rounded plans' use, from those plans (O23)
                    excess = rounding_excess(relaxed, rounding)
                    settled = settled_models(excess, SETTLED_GAP_SHARE * mip_gap
                                             * max(0.0, relaxed.value))
                    order = tuple(sorted(set(names) - settled, key=lambda n: -excess[n]))
                    each = deadline.share(FIRST_ROUND_SHARE * LP_REPAIR_SHARE).remaining() \
                        / math.ceil(len(names) / workers)
                    chosen = {c.model_name: c for c in incumbent}
                    within_rounded = each < ROUNDED_CAPS_BELOW_S
                    log.debug("first repair: %.2f s per model, within the %s", each,
                              "rounded plans' use" if within_rounded else "LP's shares")
                    repairs = {name: use_of(chosen[name], repairs[name])
                               if within_rounded else repairs[name]
                               for name in sorted(names, key=lambda n: -excess[n])}
            log.debug("rounded LP at %.1f s: incumbent %s, %d models settled",
                      time.perf_counter() - start, value, len(settled))
            round_start = time.perf_counter()
            # with almost no time left and no plan yet: each model's first good plan
            hurried = incumbent is None and deadline.remaining() < RESCUE_S
            _, repaired = pricer.price(
                None, deadline.share(FIRST_ROUND_SHARE * LP_REPAIR_SHARE),
                Gaps(FIRST_ROUND_GAP) if hurried else gaps(None, tight=within_rounded),
                repairs,
                *((None, WORKER_GRACE_S) if incumbent is not None else (first, LATE_GRACE_S)))
            rounds += 1
            last_round_s = time.perf_counter() - round_start
            data_seconds += sum(p.data_seconds or 0.0 for p in repaired)
            add(repaired)
            choose(deadline)
            log.debug("LP repair at %.1f s: incumbent %s", time.perf_counter() - start, value)
        # the first round runs even when the deadline has passed (until first[1])
        while not deadline.passed() or not (rounds or incumbent is not None or first[1].passed()):
            gap = relative_gap(value, best_bound)
            if gap is not None and gap <= mip_gap:
                break
            # until every model has a column, the models alone (zero prices)
            repairs = {}
            fallback = alone
            if lp_prices is not None:  # every model not settled at the whole LP's prices
                prices, lp_prices = lp_prices, None
                if order:  # the models not settled, the dearest to round first (O26)
                    prices = replace(prices, models=frozenset(order), order=order)
                assert relaxed is not None
                fallback = {name: max(relaxed.block_values[name], alone.get(name, -math.inf))
                            for name in names}
            elif {c.model_name for c in columns} == set(names):
                master = master_lp(scenario, names, columns, objective)
                if master is None:
                    break
                repairs = repair_caps(scenario, names, columns, master.weights)
                # towards the best prices so far (smoothing)
                prices = Prices(
                    gpu={g: SMOOTHING * master.prices.gpu.get(g, 0.0)
                         + (1 - SMOOTHING) * best_prices.gpu.get(g, 0.0)
                         for g in set(master.prices.gpu) | set(best_prices.gpu)},
                    budget=SMOOTHING * master.prices.budget
                    + (1 - SMOOTHING) * best_prices.budget) \
                    if rounds and best_bound is not None else master.prices
            else:  # the models without a plan yet, alone
                have = {c.model_name for c in columns}
                prices = Prices(models=frozenset(n for n in names if n not in have)
                                if rounds else None)
            share = ROUND_SHARE if rounds else FIRST_ROUND_SHARE
            if prices.models is not None:  # a few models: their share of a whole round's time
                share *= len(prices.models) / len(names)
            until = deadline.share(share)
            if rounds >= 2 and prices.models is None \
                    and until.remaining() < MIN_ROUND_OF_LAST * last_round_s:
                break
            round_start = time.perf_counter()
            priced, repaired = pricer.price(
                prices, until, gaps(gap, tight=relaxed is not None and prices.gpu
                                    == relaxed.gpu_prices and prices.budget
                                    == relaxed.budget_price), repairs,
                *((None, WORKER_GRACE_S) if rounds or incumbent is not None
                  else (first, LATE_GRACE_S)))
            rounds += 1
            last_round_s = time.perf_counter() - round_start
            data_seconds += sum(p.data_seconds or 0.0 for p in priced + repaired)
            if not prices.gpu and not prices.budget:
                alone.update({p.model_name: p.bound for p in priced if p.bound is not None})
            bound = lagrangian_bound(scenario, priced, prices, fallback)
            improved = bound is not None and (best_bound is None or bound > best_bound)
            if improved:
                best_bound, best_prices = bound, prices
            new = add(priced) + add(repaired)
            choose(deadline)
            log.debug("round %d at %.1f s: bound %s (best %s), incumbent %s, %d new columns "
                      "(%d repairs)", rounds, time.perf_counter() - start, bound, best_bound,
                      value, len(new), len(repairs))
            answered = all(p.bound is not None for p in priced)
            if not new and answered and not improved:
                break  # every program answered with nothing new: the master cannot improve
            if not new and not improved and all(p.bound is None for p in priced):
                # no pricing program answered (they failed, or had no time) and the repairs
                # brought nothing new: the next round's master, prices and repairs would be
                # these again, so the rounds stop rather than repeat until the deadline
                break
        gap = relative_gap(value, best_bound)
        if {c.model_name for c in columns} == set(names) and (gap is None or gap > mip_gap):
            # the master's mix repaired to fit the limits (O23) in the time left; without a
            # plan yet, up to the hard deadline
            rescue = deadline if incumbent is not None else \
                Deadline(max(deadline.at, hard.at - LATE_GRACE_S))
            master = None if rescue.passed() else master_lp(scenario, names, columns, objective)
            if master is not None:
                repairs = repair_caps(scenario, names, columns, master.weights)
                _, repaired = pricer.price(None, rescue, gaps(gap), repairs, grace=LATE_GRACE_S)
                add(repaired)
                choose(Deadline(max(rescue.at, time.time() + MIN_MASTER_S)))
                log.debug("last repair at %.1f s: incumbent %s", time.perf_counter() - start,
                          value)
    finally:
        pricer.close()
    plans = [c.plan for c in incumbent] if incumbent is not None else []
    return Outcome(plans, best_bound, value, rounds, time.perf_counter() - start, alone,
                   data_seconds, len({c.model_name for c in columns}),
                   None if relaxed is None else relaxed.value)


def pricing_gap(mip_gap: float, gap: float | None, rounds: int) -> float:
    """The relative gap the pricing programs of the next round are solved to."""
    tight = mip_gap * PRICING_GAP_SHARE
    if not rounds:
        return max(tight, FIRST_ROUND_GAP)
    if gap is None:
        return tight
    return min(FIRST_ROUND_GAP, max(tight, PRICING_GAP_OF_GAP * gap))


def lagrangian_bound(scenario: Scenario, priced: list[Priced], prices: Prices,
                     alone: dict[str, float] | None = None) -> float | None:
    """L(mu, beta) of Eq. O20 from the pricing programs' dual bounds; a program counts with the
    better of its bound and its bound from `alone` (at zero prices, which bounds it at any
    prices >= 0: GPUs and cost are never negative; or its LP value at the whole LP's prices,
    O24), or else with 0."""
    alone = alone or {}
    # the best of the program's bound, the one from `alone` and 0 (the primary objective and the
    # prices are never negative): each bounds the same pricing program (a search stopped early
    # may report a bound below its LP's at these prices, O24)
    total = sum(max(p.bound if p.bound is not None else 0.0, alone.get(p.model_name, 0.0), 0.0)
                for p in priced)
    total -= sum(price * float(scenario.gpus[g].count or 0) for g, price in prices.gpu.items()
                 if g in scenario.gpus and scenario.gpus[g].count is not None)
    if scenario.budget_per_hour is not None:
        total -= prices.budget * scenario.budget_per_hour
    return total
