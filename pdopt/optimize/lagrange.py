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
import time
from dataclasses import dataclass, field
from typing import Any

from pdopt.optimize.decompose import OWN_PROCESS_GROUP, WORKER_GRACE_S, model_names, sub_scenario
from pdopt.optimize.solver import Deadline, relative_gap
from pdopt.plan import Objective, Plan, PlanTotals
from pdopt.scenario.schema import Scenario

log = logging.getLogger(__name__)

# Below this many models the pricing programs stay in this process.
WORKERS_FROM_MODELS = 4
# Prices of the next round: this share of the master LP's duals, the rest the best prices so far
# (Wentges smoothing; plain duals oscillate between rounds).
SMOOTHING = 0.5
# The pricing programs are solved to this share of the requested gap (their bounds count, not
# their plans, so a looser gap only costs bound).
PRICING_GAP_SHARE = 0.5
# Of the time left, a pricing round gets at most this share (the master and later rounds the rest);
# the first round, which also starts the workers and builds the programs, gets more.
ROUND_SHARE = 0.5
FIRST_ROUND_SHARE = 0.8


@dataclass(frozen=True)
class Prices:
    """Prices of the coupling rows: $ (or GPUs) per GPU of each type, and per $ of budget."""

    gpu: dict[str, float] = field(default_factory=dict)
    budget: float = 0.0


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
    """What one pricing solve of one model returned: its bound (None: none) and plan."""

    model_name: str
    bound: float | None
    plan: Plan | None


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
    objective plus mutable prices on its GPUs by type and its cost (O20)."""

    def __init__(self, scenario: Scenario, model_name: str, objective: Objective) -> None:
        import pyomo.core as pyo
        from pyomo.contrib.solver.solvers.highs import Highs

        from pdopt.optimize.data import build_fleet_data
        from pdopt.optimize.model import Relaxation, cost_expr, create_model, gpus_expr

        self.model_name, self.objective = model_name, objective
        self.data = build_fleet_data(sub_scenario(scenario, model_name))
        m = create_model(self.data, objective, Relaxation(budget=True, inventory="drop"))
        gpus = sorted({pool.gpu for pool in self.data.pools.values()})
        m.GPU_TYPES = pyo.Set(initialize=gpus, ordered=True)
        m.gpu_price = pyo.Param(m.GPU_TYPES, mutable=True, initialize=0.0)
        m.budget_price = pyo.Param(mutable=True, initialize=0.0)
        primary = m.objective.expr
        m.objective.deactivate()
        m.priced = pyo.Objective(
            expr=primary + sum(m.gpu_price[g] * gpus_expr(m, self.data, g) for g in gpus)
            + m.budget_price * cost_expr(m, self.data), sense=pyo.minimize)
        self.model, self.gpus = m, gpus
        self.opt = Highs()
        self.opt.set_instance(m)
        # the last plan found: feasible at any prices (only the objective changes), so it
        # starts the next round's search
        self.start: list[float] | None = None
        self.rounded_tried = False

    def price(self, prices: Prices, deadline: Deadline, mip_gap: float) -> Priced:
        """Solve the pricing program at `prices` by `deadline`: its dual bound and its plan."""
        from pdopt.optimize.extract import build_plan
        from pdopt.optimize.solver import MIN_SOLVE_S, _report

        seconds = deadline.remaining()
        if seconds < MIN_SOLVE_S:
            return Priced(self.model_name, None, None)
        m = self.model
        for g in self.gpus:
            m.gpu_price[g] = prices.gpu.get(g, 0.0)
        m.budget_price = prices.budget
        import highspy

        start = time.perf_counter()
        self.opt.update()
        highs = self.opt._solver_model  # the highspy object behind Pyomo's (pinned) interface
        if self.start is not None:
            solution = highspy.HighsSolution()
            solution.col_value = self.start
            solution.value_valid = True
            highs.setSolution(solution)
        results = self.opt.solve(m, time_limit=seconds, rel_gap=mip_gap, load_solutions=False,
                                 raise_exception_on_nonoptimal_result=False,
                                 auto_updates={key: False for key in self.opt.config.auto_updates})
        report = _report(results, time.perf_counter() - start)
        if report.status.has_plan:
            self.start = list(highs.getSolution().col_value)
            return Priced(self.model_name, report.dual_bound,
                          build_plan(self.data, m, self.objective, report))
        return Priced(self.model_name, report.dual_bound, self._rounded(deadline))

    def _rounded(self, deadline: Deadline) -> Plan | None:
        """Without a plan from branch and bound, the rounded LP relaxation's (O.3): any plan of
        the model is a column; tried once per model."""
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
        return build_plan(self.data, rounded[0], self.objective, rounded[1])


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

    def price(self, prices: Prices, deadline: Deadline, mip_gap: float) -> list[Priced]:
        out = []
        for k, name in enumerate(self.names):
            block = self.blocks.get(name)
            share = deadline.share(1.0 / (len(self.names) - k))
            out.append(block.price(prices, share, mip_gap) if block is not None
                       else Priced(name, None, None))
        return out

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
        for chunk in self.chunks:
            proc = subprocess.Popen([sys.executable, "-m", "pdopt.optimize.pricing_worker",
                                     str(os.getpid())], stdin=subprocess.PIPE,
                                    stdout=subprocess.PIPE,
                                    process_group=OWN_PROCESS_GROUP.get("process_group"))
            self.procs.append(proc)
            _send(proc.stdin, ("init", scenario, chunk, objective, deadline))

    def price(self, prices: Prices, deadline: Deadline, mip_gap: float) -> list[Priced]:
        for proc in self.procs:
            if proc is not None:
                _send(proc.stdin, ("price", prices, deadline, mip_gap))
        got: dict[str, Priced] = {}
        for k, proc in enumerate(self.procs):
            if proc is None:
                continue
            assert proc.stdout is not None
            answer = _receive(proc.stdout.fileno(), deadline.at + WORKER_GRACE_S)
            if answer is None:  # late or gone: stopped, its models unpriced from now on
                self._stop(k)
                continue
            got.update({p.model_name: p for p in answer})
        return [got.get(name, Priced(name, None, None)) for name in self.names]

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


# In a Dask worker: the pricing programs of the solves it serves, kept between rounds (a worker
# runs one task of a solve at a time: each round sends one task per worker).
_WORKER_BLOCKS: dict[tuple[str, str], Block] = {}


def price_on_worker(solve_key: str, scenario: Scenario, names: list[str], objective: Objective,
                    prices: Prices, deadline: Deadline, mip_gap: float) -> list[Priced]:
    """A Dask task: price `names` at `prices`, building their programs on first use."""
    out = []
    for k, name in enumerate(names):
        block = _WORKER_BLOCKS.get((solve_key, name))
        if block is None and not deadline.passed():
            block = _WORKER_BLOCKS[(solve_key, name)] = Block(scenario, name, objective)
        share = deadline.share(1.0 / (len(names) - k))
        out.append(block.price(prices, share, mip_gap) if block is not None
                   else Priced(name, None, None))
    return out


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

    def price(self, prices: Prices, deadline: Deadline, mip_gap: float) -> list[Priced]:
        futures = [self.client.submit(price_on_worker, self.key, self.scenario, chunk,
                                      self.objective, prices, deadline, mip_gap, workers=[w],
                                      allow_other_workers=False, pure=False)
                   for w, chunk in self.chunks.items()]
        until = deadline.at + WORKER_GRACE_S
        got: dict[str, Priced] = {}
        for future in futures:
            try:
                got.update({p.model_name: p
                            for p in future.result(timeout=max(0.01, until - time.time()))})
            except Exception:  # late (cancelled), or the worker failed: no bound this round
                self.client.cancel([future])
        return [got.get(name, Priced(name, None, None)) for name in self.names]

    def close(self) -> None:
        try:
            self.client.run(forget_on_worker, self.key)
        finally:
            self.client.close()


# -- the restricted master (O21, O22) ----------------------------------------------------------

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


def master_prices(scenario: Scenario, names: list[str], columns: list[Column],
                  objective: Objective = Objective.COST) -> Prices | None:
    """The master LP over the columns (a convex combination of each model's columns within the
    inventories and the budget, made elastic at the price caps): its row duals as prices (O21).
    None when the LP fails."""
    import numpy as np
    from scipy.optimize import linprog

    limited, budget = _rows(scenario, columns)
    index = {name: k for k, name in enumerate(names)}
    per_gpu, per_dollar = price_caps(scenario, objective)
    n_cols, n_slack = len(columns), len(limited) + (budget is not None)
    cost = np.array([c.primary for c in columns] + [per_gpu] * len(limited)
                    + [per_dollar] * (budget is not None))
    a_eq = np.zeros((len(names), n_cols + n_slack))
    for j, c in enumerate(columns):
        a_eq[index[c.model_name], j] = 1.0
    a_ub = np.zeros((n_slack, n_cols + n_slack))
    b_ub = np.zeros(n_slack)
    for r, g in enumerate(limited):
        for j, c in enumerate(columns):
            a_ub[r, j] = c.gpus.get(g, 0)
        a_ub[r, n_cols + r] = -1.0
        b_ub[r] = float(scenario.gpus[g].count or 0)
    if budget is not None:
        r = len(limited)
        a_ub[r, :n_cols] = [c.cost for c in columns]
        a_ub[r, n_cols + r] = -1.0
        b_ub[r] = budget
    result = linprog(cost, A_ub=a_ub if n_slack else None, b_ub=b_ub if n_slack else None,
                     A_eq=a_eq, b_eq=np.ones(len(names)), bounds=(0, None), method="highs")
    if result.status != 0 or not n_slack:
        return None if result.status != 0 else Prices()
    duals = [max(0.0, -float(d)) for d in result.ineqlin.marginals]
    return Prices(gpu=dict(zip(limited, duals[:len(limited)], strict=True)),
                  budget=duals[-1] if budget is not None else 0.0)


def master_plan(scenario: Scenario, names: list[str], columns: list[Column],
                deadline: Deadline) -> list[Column] | None:
    """The best choice of one column per model within the inventories and the budget (O22), by
    a small integer program; None when no choice fits (or the deadline passes first)."""
    import numpy as np
    from scipy.optimize import Bounds, LinearConstraint, milp

    limited, budget = _rows(scenario, columns)
    index = {name: k for k, name in enumerate(names)}
    if deadline.passed() or {c.model_name for c in columns} != set(names):
        return None
    n = len(columns)
    rows, lo, hi = [], [], []
    for name in names:
        rows.append([1.0 if c.model_name == name else 0.0 for c in columns])
        lo.append(1.0)
        hi.append(1.0)
    for g in limited:
        rows.append([float(c.gpus.get(g, 0)) for c in columns])
        lo.append(-np.inf)
        hi.append(float(scenario.gpus[g].count or 0))
    if budget is not None:
        rows.append([c.cost for c in columns])
        lo.append(-np.inf)
        hi.append(budget + 1e-9)
    # the secondary objective breaks ties among plans of the same primary (Eq. O10)
    secondary = [c.cost if c.primary != c.cost else float(sum(c.gpus.values()))
                 for c in columns]
    weight = 1e-7 / max(1.0, max(secondary, default=1.0))
    result = milp(np.array([c.primary + weight * s for c, s in zip(columns, secondary,
                                                                     strict=True)]),
                  constraints=LinearConstraint(np.array(rows), lo, hi),
                  integrality=np.ones(n), bounds=Bounds(0, 1),
                  options={"time_limit": max(0.01, deadline.remaining())})
    if result.x is None:
        return None
    chosen = [columns[j] for j in range(n) if result.x[j] > 0.5]
    if sorted(c.model_name for c in chosen) != sorted(index):
        return None
    return chosen


# -- the loop --------------------------------------------------------------------------------

def solve_coupled(scenario: Scenario, objective: Objective, *, deadline: Deadline,
                  mip_gap: float, seed_plans: dict[str, Plan] | None = None,
                  seed_bounds: dict[str, float] | None = None,
                  workers: int | None = None, dask_scheduler: str | None = None) -> Outcome:
    """Price, master, repeat until the incumbent is within `mip_gap` of the best bound (O20)
    or `deadline` passes. `seed_plans` (each model alone, O.2) are the first columns and
    `seed_bounds` (their bounds: L at zero prices is their sum, O12) the first bound; with
    them the first round is priced at the master's duals, without them at zero prices.
    `dask_scheduler`: price on that Dask cluster instead of local processes."""
    start = time.perf_counter()
    names = model_names(scenario)
    columns: list[Column] = [Column.of(name, plan, objective)
                             for name, plan in (seed_plans or {}).items()]
    alone: dict[str, float] = dict(seed_bounds or {})
    best_bound = sum(alone.values()) if len(alone) == len(names) else None
    best_prices = Prices()
    incumbent: list[Column] | None = master_plan(scenario, names, columns, deadline)
    value = None if incumbent is None else sum(c.primary for c in incumbent)
    rounds = 0
    workers = min(workers or os.cpu_count() or 1, len(names))
    pricer: LocalPricer | ProcessPricer | DaskPricer
    if dask_scheduler:
        pricer = DaskPricer(scenario, names, objective, dask_scheduler)
    elif workers >= 2 and len(names) >= WORKERS_FROM_MODELS:
        pricer = ProcessPricer(scenario, names, objective, deadline, workers)
    else:
        pricer = LocalPricer(scenario, names, objective, deadline)
    try:
        while not deadline.passed():
            gap = relative_gap(value, best_bound)
            if gap is not None and gap <= mip_gap:
                break
            # until every model has a column, the models alone (zero prices)
            complete = {c.model_name for c in columns} == set(names)
            prices = master_prices(scenario, names, columns, objective) if complete \
                else Prices()
            if prices is None:
                break
            if rounds and best_bound is not None:  # smoothed towards the best prices so far
                prices = Prices(
                    gpu={g: SMOOTHING * prices.gpu.get(g, 0.0)
                         + (1 - SMOOTHING) * best_prices.gpu.get(g, 0.0)
                         for g in set(prices.gpu) | set(best_prices.gpu)},
                    budget=SMOOTHING * prices.budget + (1 - SMOOTHING) * best_prices.budget)
            priced = pricer.price(prices, deadline.share(ROUND_SHARE if rounds else
                                                         FIRST_ROUND_SHARE),
                                  mip_gap * PRICING_GAP_SHARE)
            rounds += 1
            if not prices.gpu and not prices.budget:
                alone.update({p.model_name: p.bound for p in priced if p.bound is not None})
            bound = lagrangian_bound(scenario, priced, prices, alone)
            if bound is not None and (best_bound is None or bound > best_bound):
                best_bound, best_prices = bound, prices
            known = {(c.model_name, c.primary, tuple(sorted(c.gpus.items()))) for c in columns}
            new = [Column.of(p.model_name, p.plan, objective) for p in priced
                   if p.plan is not None]
            new = [c for c in new if (c.model_name, c.primary, tuple(sorted(c.gpus.items())))
                   not in known]
            columns.extend(new)
            chosen = master_plan(scenario, names, columns, deadline)
            if chosen is not None:
                chosen_value = sum(c.primary for c in chosen)
                if value is None or chosen_value < value:
                    incumbent, value = chosen, chosen_value
            log.debug("round %d at %.1f s: bound %s (best %s), incumbent %s, %d new columns",
                      rounds, time.perf_counter() - start, bound, best_bound, value, len(new))
            answered = all(p.bound is not None for p in priced)
            if not new and answered and bound is not None and bound <= (best_bound or -math.inf):
                break  # every program answered with nothing new: the master cannot improve
    finally:
        pricer.close()
    plans = [c.plan for c in incumbent] if incumbent is not None else []
    return Outcome(plans, best_bound, value, rounds, time.perf_counter() - start, alone)


def lagrangian_bound(scenario: Scenario, priced: list[Priced], prices: Prices,
                     alone: dict[str, float] | None = None) -> float | None:
    """L(mu, beta) of Eq. O20 from the pricing programs' dual bounds; a program without one
    (out of time) counts with its bound at zero prices from `alone`, which bounds it at any
    prices >= 0 (GPUs and cost are never negative), or else with 0."""
    alone = alone or {}
    # without either, 0: the primary objective (cost or GPUs) and the prices are never negative
    total = sum(p.bound if p.bound is not None else max(0.0, alone.get(p.model_name, 0.0))
                for p in priced)
    total -= sum(price * float(scenario.gpus[g].count or 0) for g, price in prices.gpu.items()
                 if g in scenario.gpus and scenario.gpus[g].count is not None)
    if scenario.budget_per_hour is not None:
        total -= prices.budget * scenario.budget_per_hour
    return total
