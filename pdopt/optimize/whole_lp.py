"""The LP relaxation of a coupled fleet's whole program, put together from its models' pricing
programs (docs/method.md, O.8, Eq. O24).

Each model's pricing program (`lagrange.Block`) is already in HiGHS: its matrix, bounds and
primary costs are read back (`block_lp`, at zero prices), the rows of the shared limits taken out
of each and summed over the models into one row per inventory and one budget row, and the whole
LP solved once by HiGHS. Its optimum is a lower bound of the fleet's optimum; its row duals on the
shared limits are the first prices of the decomposition; each model's share of the limits in its
solution is the first repair's caps (O23); and each model's priced LP value is a lower bound of
its pricing program at those prices.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from pdopt.optimize.solver import Deadline
from pdopt.scenario.schema import Scenario

# The key of the budget row among a block's shared rows (GPU types are the others).
BUDGET = "$"
# The rounding of the whole LP (O25) tries at most this many reserves of the shared limits.
ROUNDING_TRIES = 4
# ... and prices a unit over a shared limit at this many times the dearest price of a unit, so
# its elastic program overshoots the limits as little as the neighbourhood allows.
OVERSHOOT_PENALTY = 100.0
# An LP value this close to an integer counts as that integer when rounding (O25).
INTEGRAL = 1e-6


@dataclass
class BlockLP:
    """One model's pricing program at zero prices as an LP: costs, bounds, its own rows (COO
    entries) and its entries in the shared rows (by GPU type, and BUDGET)."""

    model_name: str
    cost: np.ndarray
    offset: float
    col_lower: np.ndarray
    col_upper: np.ndarray
    row_lower: np.ndarray
    row_upper: np.ndarray
    rows: np.ndarray
    cols: np.ndarray
    values: np.ndarray
    shared: dict[str, tuple[np.ndarray, np.ndarray]] = field(default_factory=dict)
    integer: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=bool))


def block_lp(model_name: str, highs: Any, shared_rows: dict[str, int]) -> BlockLP:
    """The LP of a HiGHS instance (integrality dropped), with the rows `shared_rows` (key: row
    index) taken out as shared entries."""
    import highspy

    lp = highs.getLp()
    a = lp.a_matrix_
    start = np.asarray(a.start_, dtype=np.int64)
    index = np.asarray(a.index_, dtype=np.int64)
    values = np.asarray(a.value_, dtype=np.float64)
    major = np.repeat(np.arange(len(start) - 1, dtype=np.int64), np.diff(start))
    rows, cols = (major, index) if a.format_ == highspy.MatrixFormat.kRowwise else (index, major)
    n_rows = int(lp.num_row_)
    own = np.ones(n_rows, dtype=bool)
    shared = {}
    for key, r in shared_rows.items():
        at = rows == r
        shared[key] = (cols[at], values[at])
        own[r] = False
    renumber = np.cumsum(own) - 1
    keep = own[rows]
    integer = np.array([kind == highspy.HighsVarType.kInteger for kind in lp.integrality_],
                       dtype=bool)
    return BlockLP(model_name, np.asarray(lp.col_cost_, dtype=np.float64), float(lp.offset_),
                   np.asarray(lp.col_lower_, dtype=np.float64),
                   np.asarray(lp.col_upper_, dtype=np.float64),
                   np.asarray(lp.row_lower_, dtype=np.float64)[own],
                   np.asarray(lp.row_upper_, dtype=np.float64)[own],
                   renumber[rows[keep]], cols[keep], values[keep], shared,
                   integer if len(integer) == len(lp.col_cost_)
                   else np.zeros(len(lp.col_cost_), dtype=bool))


@dataclass
class Relaxed:
    """The whole LP's answer (O24): its optimum (a bound of the fleet), the shared rows' duals as
    prices ($ or GPUs per GPU of each limited type, and per $ of budget), each model's GPUs of
    the limited types and cost in its solution, and each model's priced LP value (a bound of
    its pricing program at those prices); `whole` and `x`, the program and its solution, for
    the rounding (O25)."""

    value: float
    gpu_prices: dict[str, float]
    budget_price: float
    gpus: dict[str, dict[str, float]]
    cost: dict[str, float]
    block_values: dict[str, float]
    whole: WholeLP | None = field(default=None, repr=False)
    x: np.ndarray | None = field(default=None, repr=False)


class WholeLP:
    """The whole program put together from its models' pricing programs (O24): each model's
    own rows, and one row per shared limit (inventory, budget) summing the models' entries."""

    @classmethod
    def of(cls, scenario: Scenario, parts: list[BlockLP]) -> WholeLP:
        """The whole LP of a scenario's limits (its inventories, then its budget)."""
        limited = sorted(g for g, spec in scenario.gpus.items() if spec.count is not None)
        limits = {g: float(scenario.gpus[g].count or 0) for g in limited}
        if scenario.budget_per_hour is not None:
            limits[BUDGET] = float(scenario.budget_per_hour)
        return cls(parts, limits)

    def __init__(self, parts: list[BlockLP], limits: dict[str, float]) -> None:
        """`limits`: each shared row's right-hand side, by key (GPU type, or BUDGET)."""
        import highspy

        self.parts = parts
        self.keys = list(limits)
        self.limits = np.array([limits[key] for key in self.keys], dtype=np.float64)
        self.col_at = np.cumsum([0] + [len(p.cost) for p in parts])
        row_at = np.cumsum([0] + [len(p.row_lower) for p in parts])
        self.n_cols, self.n_own = int(self.col_at[-1]), int(row_at[-1])
        rows = [p.rows + row_at[k] for k, p in enumerate(parts)]
        cols = [p.cols + self.col_at[k] for k, p in enumerate(parts)]
        values = [p.values for p in parts]
        for r, key in enumerate(self.keys):
            for k, p in enumerate(parts):
                if key in p.shared:
                    c, v = p.shared[key]
                    rows.append(np.full(len(c), self.n_own + r, dtype=np.int64))
                    cols.append(c + self.col_at[k])
                    values.append(v)
        row, col, value = np.concatenate(rows), np.concatenate(cols), np.concatenate(values)
        order = np.lexsort((col, row))
        row, self.index, self.value = row[order], col[order].astype(np.int32), value[order]
        self.n_rows = self.n_own + len(self.keys)
        self.starts = np.searchsorted(row, np.arange(self.n_rows)).astype(np.int32)
        self.row_lower = np.concatenate([p.row_lower for p in parts]
                                        + [np.full(len(self.keys), -highspy.kHighsInf)])
        self.row_upper = np.concatenate([p.row_upper for p in parts] + [self.limits])
        self.col_lower = np.concatenate([p.col_lower for p in parts])
        self.col_upper = np.concatenate([p.col_upper for p in parts])
        self.cost = np.concatenate([p.cost for p in parts])
        self.integer = np.concatenate([p.integer if len(p.integer) == len(p.cost)
                                       else np.zeros(len(p.cost), dtype=bool) for p in parts])
        self.offset = sum(p.offset for p in parts)
        self.lp: Any = None  # the LP's HiGHS instance, kept for re-solves at other limits

    def _program(self, col_lower: np.ndarray, col_upper: np.ndarray,
                 penalty: np.ndarray | None = None) -> Any:
        """A HiGHS instance of the whole program with these column bounds; with `penalty`, the
        shared rows elastic (one slack per row, priced at its penalty)."""
        import highspy

        from pdopt.optimize.solver import silent_highs

        highs = silent_highs()
        highs.addVars(self.n_cols, col_lower, col_upper)
        highs.changeColsCost(self.n_cols, np.arange(self.n_cols, dtype=np.int32), self.cost)
        highs.addRows(self.n_rows, self.row_lower, self.row_upper, len(self.value), self.starts,
                      self.index, self.value)
        if penalty is not None:
            k = len(self.keys)
            highs.addVars(k, np.zeros(k), np.full(k, highspy.kHighsInf))
            slack = np.arange(self.n_cols, self.n_cols + k, dtype=np.int32)
            highs.changeColsCost(k, slack, penalty)
            for r in range(k):
                highs.changeCoeff(self.n_own + r, self.n_cols + r, -1.0)
        return highs

    def solve_lp(self, deadline: Deadline, limits: np.ndarray | None = None) -> np.ndarray | None:
        """The LP's solution with the shared rows at `limits` (default: the scenario's), from
        the last LP's basis; None when HiGHS does not solve it to optimality in time."""
        import highspy

        if deadline.passed():
            return None
        if self.lp is None:
            self.lp = self._program(self.col_lower, self.col_upper)
        k = len(self.keys)
        rows = np.arange(self.n_own, self.n_rows, dtype=np.int32)
        self.lp.changeRowsBounds(k, rows, np.full(k, -highspy.kHighsInf),
                                 self.limits if limits is None else limits)
        self.lp.setOptionValue("time_limit", max(0.01, deadline.remaining()))
        self.lp.run()
        if self.lp.getModelStatus() != highspy.HighsModelStatus.kOptimal:
            return None
        return np.asarray(self.lp.getSolution().col_value, dtype=np.float64)

    def use(self, x: np.ndarray) -> np.ndarray:
        """The shared rows' left-hand sides at `x`: GPUs of each limited type, and cost."""
        out = np.zeros(len(self.keys))
        for r, key in enumerate(self.keys):
            for k, p in enumerate(self.parts):
                if key in p.shared:
                    c, v = p.shared[key]
                    out[r] += float(v @ x[c + self.col_at[k]])
        return out

    def priced_values(self, x: np.ndarray, prices: dict[str, float]) -> dict[str, float]:
        """Each model's objective at `x` plus its use of the shared limits at `prices` (its
        pricing program's objective, O20)."""
        out = {}
        for k, p in enumerate(self.parts):
            mine = x[self.col_at[k]:self.col_at[k + 1]]
            out[p.model_name] = float(p.cost @ mine) + p.offset + sum(
                prices.get(key, 0.0) * float(v @ mine[c]) for key, (c, v) in p.shared.items())
        return out

    def split(self, x: np.ndarray) -> dict[str, np.ndarray]:
        """`x` cut into each model's columns (its pricing program's order)."""
        return {p.model_name: np.array(x[self.col_at[k]:self.col_at[k + 1]])
                for k, p in enumerate(self.parts)}

    def near(self, x: np.ndarray, deadline: Deadline, penalty: np.ndarray,
             up: bool = False) -> np.ndarray | None:
        """The best integer solution whose every count is x's rounded down or up (`up`: or any
        higher; the binaries free), with the shared rows elastic at `penalty` per unit over
        (Eq. O25); None without one in time."""
        import highspy

        if deadline.passed():
            return None
        lower, upper = self.col_lower.copy(), self.col_upper.copy()
        # the counts near x; the binaries (the count tables' choices, O14) free: a count
        # rounded may need another entry of its table
        at = self.integer & (self.col_upper > 1)
        lower[at] = np.maximum(lower[at], np.floor(x[at] + INTEGRAL))
        if not up:
            upper[at] = np.minimum(upper[at], np.ceil(x[at] - INTEGRAL))
        highs = self._program(lower, upper, penalty)
        columns = np.nonzero(self.integer)[0].astype(np.int32)
        highs.changeColsIntegrality(len(columns), columns,
                                    np.full(len(columns), highspy.HighsVarType.kInteger))
        highs.setOptionValue("time_limit", max(0.01, deadline.remaining()))
        highs.run()
        if highs.getModelStatus() != highspy.HighsModelStatus.kOptimal and \
                highs.getInfo().primal_solution_status != 2:  # 2: feasible
            return None
        return np.asarray(highs.getSolution().col_value, dtype=np.float64)[:self.n_cols]


def solve_whole_lp(scenario: Scenario, parts: list[BlockLP], deadline: Deadline
                   ) -> Relaxed | None:
    """The LP relaxation of the whole program from its models' pricing programs (O24), solved
    by `deadline`; None when HiGHS does not solve it to optimality in time."""
    if deadline.passed() or not parts:
        return None
    whole = WholeLP.of(scenario, parts)
    x = whole.solve_lp(deadline)
    if x is None:
        return None
    solution = whole.lp.getSolution()
    duals = np.asarray(solution.row_dual, dtype=np.float64)[whole.n_own:]
    keys = whole.keys
    prices = {key: max(0.0, -float(d)) for key, d in zip(keys, duals, strict=True)}
    limited = [key for key in keys if key != BUDGET]
    gpus: dict[str, dict[str, float]] = {}
    cost: dict[str, float] = {}
    for k, p in enumerate(parts):
        mine = x[whole.col_at[k]:whole.col_at[k + 1]]
        use = {key: float(v @ mine[c]) for key, (c, v) in p.shared.items()}
        gpus[p.model_name] = {g: use.get(g, 0.0) for g in limited}
        cost[p.model_name] = use.get(BUDGET, 0.0)
    block_values = whole.priced_values(x, prices)
    optimum = float(whole.lp.getInfo().objective_function_value) + whole.offset
    return Relaxed(optimum, {g: prices[g] for g in limited}, prices.get(BUDGET, 0.0), gpus, cost,
                   block_values, whole, x)


def rounding_excess(relaxed: Relaxed, rounding: dict[str, np.ndarray]) -> dict[str, float]:
    """Each model's rounded plan (O25) at the whole LP's prices less its priced LP value (O24):
    how much its pricing program at those prices can improve on the plan, and its bound on
    the LP value (Eq. O26)."""
    whole = relaxed.whole
    if whole is None:
        return {}
    prices = dict(relaxed.gpu_prices)
    prices[BUDGET] = relaxed.budget_price
    x = np.concatenate([rounding[p.model_name] for p in whole.parts])
    return {name: value - relaxed.block_values[name]
            for name, value in whole.priced_values(x, prices).items()}


def settled_models(excess: dict[str, float], allowance: float) -> set[str]:
    """The models whose rounded plans (O25) are within `allowance` together of their priced LP
    values (`excess`, `rounding_excess`): their pricing programs at the LP's prices can
    improve the bound and their plans by no more than that much together, so they are not
    solved (Eq. O26). The cheapest to round first."""
    settled, used = set(), 0.0
    for name in sorted(excess, key=lambda n: excess[n]):
        used += max(0.0, excess[name])
        if used > allowance:
            break
        settled.add(name)
    return settled


def rounded_plan(relaxed: Relaxed, deadline: Deadline, penalty: np.ndarray
                 ) -> dict[str, np.ndarray] | None:
    """A plan of the fleet from the whole LP (Eq. O25): every count rounded down or up (the best
    such rounding, the shared rows elastic at `penalty` per unit over; when there is none, the
    best with every count at least the LP's rounded down); when the best
    rounding overshoots a shared limit, the LP is solved again with that much of the limit
    held back, and rounded again, up to ROUNDING_TRIES times. Returns each model's columns, or
    None without a rounding within the limits in time."""
    whole, x = relaxed.whole, relaxed.x
    if whole is None or x is None:
        return None
    reserve = np.zeros(len(whole.keys))
    for _ in range(ROUNDING_TRIES):
        # a count tabled by count (O14) may need more than the LP's rounded up: its LP mixes
        # the table's entries, whose capacity per instance grows with the count
        near = whole.near(x, deadline, penalty)
        if near is None:
            near = whole.near(x, deadline, penalty, up=True)
        if near is None:
            return None
        over = whole.use(near) - whole.limits
        if np.all(over <= 1e-6 * np.maximum(1.0, whole.limits)):
            return whole.split(near)
        # GPUs come whole: hold back whole GPUs (the budget row's overshoot as it is)
        held = np.array([math.ceil(o - 1e-9) if key != BUDGET else o
                         for key, o in zip(whole.keys, np.maximum(over, 0.0), strict=True)])
        # never more than the whole limit (an inventory of one GPU that a rounding overshoots
        # by an instance of four)
        reserve = np.minimum(reserve + held, whole.limits)
        x = whole.solve_lp(deadline, whole.limits - reserve)
        if x is None:
            return None
    return None
