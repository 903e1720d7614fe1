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

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from pdopt.optimize.solver import Deadline
from pdopt.scenario.schema import Scenario

# The key of the budget row among a block's shared rows (GPU types are the others).
BUDGET = "$"


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
    return BlockLP(model_name, np.asarray(lp.col_cost_, dtype=np.float64), float(lp.offset_),
                   np.asarray(lp.col_lower_, dtype=np.float64),
                   np.asarray(lp.col_upper_, dtype=np.float64),
                   np.asarray(lp.row_lower_, dtype=np.float64)[own],
                   np.asarray(lp.row_upper_, dtype=np.float64)[own],
                   renumber[rows[keep]], cols[keep], values[keep], shared)


@dataclass
class Relaxed:
    """The whole LP's answer (O24): its optimum (a bound of the fleet), the shared rows' duals as
    prices ($ or GPUs per GPU of each limited type, and per $ of budget), each model's GPUs of
    the limited types and cost in its solution, and each model's priced LP value (a bound of
    its pricing program at those prices)."""

    value: float
    gpu_prices: dict[str, float]
    budget_price: float
    gpus: dict[str, dict[str, float]]
    cost: dict[str, float]
    block_values: dict[str, float]


def solve_whole_lp(scenario: Scenario, parts: list[BlockLP], deadline: Deadline
                   ) -> Relaxed | None:
    """The LP relaxation of the whole program from its models' pricing programs (O24), solved
    by `deadline`; None when HiGHS does not solve it to optimality in time."""
    import highspy

    from pdopt.optimize.solver import silent_highs

    if deadline.passed() or not parts:
        return None
    limited = sorted(g for g, spec in scenario.gpus.items() if spec.count is not None)
    keys = limited + ([BUDGET] if scenario.budget_per_hour is not None else [])
    col_at = np.cumsum([0] + [len(p.cost) for p in parts])
    row_at = np.cumsum([0] + [len(p.row_lower) for p in parts])
    n_cols, n_own = int(col_at[-1]), int(row_at[-1])
    rows = [p.rows + row_at[k] for k, p in enumerate(parts)]
    cols = [p.cols + col_at[k] for k, p in enumerate(parts)]
    values = [p.values for p in parts]
    for r, key in enumerate(keys):
        for k, p in enumerate(parts):
            if key in p.shared:
                c, v = p.shared[key]
                rows.append(np.full(len(c), n_own + r, dtype=np.int64))
                cols.append(c + col_at[k])
                values.append(v)
    row, col, value = np.concatenate(rows), np.concatenate(cols), np.concatenate(values)
    order = np.lexsort((col, row))
    row, col, value = row[order], col[order], value[order]
    n_rows = n_own + len(keys)
    starts = np.searchsorted(row, np.arange(n_rows)).astype(np.int32)
    caps = [float(scenario.gpus[g].count or 0) for g in limited]
    if scenario.budget_per_hour is not None:
        caps.append(float(scenario.budget_per_hour))
    lower = np.concatenate([p.row_lower for p in parts] + [np.full(len(keys), -highspy.kHighsInf)])
    upper = np.concatenate([p.row_upper for p in parts] + [np.array(caps, dtype=np.float64)])
    highs = silent_highs()
    highs.addVars(n_cols, np.concatenate([p.col_lower for p in parts]),
                  np.concatenate([p.col_upper for p in parts]))
    highs.changeColsCost(n_cols, np.arange(n_cols, dtype=np.int32),
                         np.concatenate([p.cost for p in parts]))
    highs.addRows(n_rows, lower, upper, len(value), starts, col.astype(np.int32), value)
    highs.setOptionValue("time_limit", max(0.01, deadline.remaining()))
    highs.run()
    if highs.getModelStatus() != highspy.HighsModelStatus.kOptimal:
        return None
    solution = highs.getSolution()
    x = np.asarray(solution.col_value, dtype=np.float64)
    duals = np.asarray(solution.row_dual, dtype=np.float64)[n_own:]
    prices = {key: max(0.0, -float(d)) for key, d in zip(keys, duals, strict=True)}
    gpus: dict[str, dict[str, float]] = {}
    cost: dict[str, float] = {}
    block_values: dict[str, float] = {}
    for k, p in enumerate(parts):
        mine = x[col_at[k]:col_at[k + 1]]
        use = {key: float(v @ mine[c]) for key, (c, v) in p.shared.items()}
        gpus[p.model_name] = {g: use.get(g, 0.0) for g in limited}
        cost[p.model_name] = use.get(BUDGET, 0.0)
        block_values[p.model_name] = float(p.cost @ mine) + p.offset + sum(
            prices[key] * u for key, u in use.items() if key in prices)
    optimum = float(highs.getInfo().objective_function_value) + sum(p.offset for p in parts)
    return Relaxed(optimum, {g: prices[g] for g in limited}, prices.get(BUDGET, 0.0), gpus, cost,
                   block_values)
