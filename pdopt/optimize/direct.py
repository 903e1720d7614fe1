"""The fleet program built straight for HiGHS, without Pyomo (docs/method.md, O.9).

model.py's `define_*` functions are the one formulation of the program. They build it through
the names of this module when `create_model(..., backend="direct")` is asked for, and through
Pyomo's (`pyomo.core`) otherwise: `Set`, `Var`, `Constraint`, `Expression`, `Objective`,
`inequality`, `quicksum` and the domains mean here what they mean there, for the linear
programs model.py writes. `compile_program` hands the result to one highspy instance with the
columns and rows in the order Pyomo's HiGHS interface gives them (columns as the constraints
first use them, then the objective's; rows as declared), so both backends give HiGHS the same
program (tests/test_direct.py compares them on every bundled scenario and random fleets).

Why a second backend: importing Pyomo and walking its expressions cost a sixth of a small
solve's instructions and three quarters of the time of building a large fleet's pricing programs
(docs/performance.md). The Pyomo model stays the reference the tests compare against, and the
day plans of section H (one program per period joined in Pyomo blocks) are built on it.
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np

__all__ = ["Binary", "ConcreteModel", "Constraint", "Expression", "LinExpr", "NonNegativeIntegers",
           "NonNegativeReals", "Objective", "Program", "Row", "Set", "Var", "compile_program",
           "expression_value", "inequality", "minimize", "quicksum"]

INF = math.inf
NUMBER = (int, float, np.integer, np.floating)
minimize = 1  # Pyomo's sense constant


@dataclass(frozen=True)
class Domain:
    """A variable's domain: integer or not, and its own bounds."""

    integer: bool
    lower: float
    upper: float


NonNegativeReals = Domain(False, 0.0, INF)
NonNegativeIntegers = Domain(True, 0.0, INF)
Binary = Domain(True, 0.0, 1.0)


class _Linear(ABC):
    """Arithmetic of columns and expressions: sums, differences, products with numbers (a new
    expression each time) and relations (rows)."""

    __slots__ = ()

    @abstractmethod
    def expr(self) -> LinExpr:
        """A new expression equal to this one."""

    def __add__(self, other: object) -> LinExpr:
        return self.expr().add_in_place(other)

    __radd__ = __add__

    def __sub__(self, other: object) -> LinExpr:
        return self.expr().add_in_place(other, -1.0)

    def __rsub__(self, other: object) -> LinExpr:
        return self.expr().scaled(-1.0).add_in_place(other)

    def __neg__(self) -> LinExpr:
        return self.expr().scaled(-1.0)

    def __mul__(self, factor: object) -> LinExpr:
        if not isinstance(factor, NUMBER):
            raise TypeError("linear expressions are multiplied by numbers only")
        return self.expr().scaled(float(factor))

    __rmul__ = __mul__

    def __truediv__(self, divisor: float) -> LinExpr:
        return self.expr().scaled(1.0 / divisor)

    def __le__(self, other: object) -> Row:
        return _relation(self, other, upper=True)

    def __ge__(self, other: object) -> Row:
        return _relation(other, self, upper=True)

    def __eq__(self, other: object) -> Row:  # type: ignore[override]
        return _relation(self, other, upper=False)

    __hash__ = None  # type: ignore[assignment]  # == builds a row


class LinExpr(_Linear):
    """sum_j coef_j x_j + constant; terms keyed by column id in the order they first appear (as
    Pyomo's standard representation orders them), zero coefficients kept as Pyomo keeps them."""

    __slots__ = ("terms", "constant")

    def __init__(self, terms: dict[int, float] | None = None, constant: float = 0.0) -> None:
        self.terms = terms if terms is not None else {}
        self.constant = constant

    def expr(self) -> LinExpr:
        return LinExpr(dict(self.terms), self.constant)

    def add_in_place(self, other: object, sign: float = 1.0) -> LinExpr:
        if isinstance(other, VarData):
            self.terms[other.id] = self.terms.get(other.id, 0.0) + sign
        elif isinstance(other, LinExpr):
            terms = self.terms
            for j, c in other.terms.items():
                terms[j] = terms.get(j, 0.0) + sign * c
            self.constant += sign * other.constant
        elif isinstance(other, NUMBER):
            self.constant += sign * float(other)
        else:
            raise TypeError(f"cannot add {type(other).__name__} to a linear expression")
        return self

    def scaled(self, factor: float) -> LinExpr:
        """This expression times `factor`, in place."""
        self.terms = {j: factor * c for j, c in self.terms.items()}
        self.constant *= factor
        return self


class VarData(_Linear):
    """One column: its id (creation order), bounds, integrality and, after a solve, value. Bounds
    and integrality may be changed until the model is compiled (the rounding of O.3 relaxes and
    fixes counts)."""

    __slots__ = ("id", "name", "lower", "upper", "integer", "model")
    __hash__ = object.__hash__  # type: ignore[assignment]

    def __init__(self, model: ConcreteModel, name: str, domain: Domain,
                 bounds: tuple[float | None, float | None]) -> None:
        self.model = model
        self.id = len(model.columns)
        model.columns.append(self)
        self.name = name
        self.integer = domain.integer
        lo, hi = bounds
        self.lower = max(domain.lower, -INF if lo is None else float(lo))
        self.upper = min(domain.upper, INF if hi is None else float(hi))

    @property
    def value(self) -> float | None:
        return self.model.values.get(self.id)

    def fix(self, value: float) -> None:
        """Hold the column at `value` (an integer column at an integer)."""
        self.lower = self.upper = float(value)

    def expr(self) -> LinExpr:
        return LinExpr({self.id: 1.0})


def _linear(x: object) -> LinExpr:
    if isinstance(x, LinExpr):
        return x
    if isinstance(x, VarData):
        return x.expr()
    if isinstance(x, NUMBER):
        return LinExpr(constant=float(x))
    raise TypeError(f"not a linear expression: {type(x).__name__}")


def _is_constant(x: object) -> bool:
    return isinstance(x, NUMBER)


@dataclass
class Row:
    """lower <= body <= upper; the body's constant is moved into the bounds when compiled."""

    lower: float
    body: LinExpr
    upper: float


def _relation(lhs: object, rhs: object, *, upper: bool) -> Row:
    """`lhs <= rhs` (upper) or `lhs == rhs`, normalised as Pyomo does: a constant side becomes
    the bound, otherwise the body is lhs - rhs against 0."""
    if _is_constant(rhs):
        body, bound = _linear(lhs), float(rhs)  # type: ignore[arg-type]
    elif _is_constant(lhs):
        body, bound = _linear(rhs), float(lhs)  # type: ignore[arg-type]
        return Row(bound, body, INF if upper else bound)
    else:
        body, bound = _linear(lhs) - _linear(rhs), 0.0
    return Row(-INF if upper else bound, body, bound)


def inequality(lower: float, body: object, upper: float) -> Row:
    return Row(float(lower), _linear(body), float(upper))


def quicksum(terms: Iterable[object], start: float = 0) -> LinExpr | float:
    """A sum built in place (the builtin `sum` would copy the partial sum at every term); a
    number when no column is in it, as Pyomo's."""
    out = LinExpr(constant=start)
    for term in terms:
        if isinstance(term, VarData):
            out.terms[term.id] = out.terms.get(term.id, 0.0) + 1.0
        else:
            out.add_in_place(term)
    return out if out.terms else out.constant


class _Component(ABC):
    """A part of a model, built when it is assigned to the model (m.x = Var(...))."""

    @abstractmethod
    def construct(self, model: ConcreteModel, name: str) -> None:
        """Build this part for `model` under `name`."""


class Set(_Component):
    """An ordered index set (keys: strings, numbers or tuples)."""

    def __init__(self, initialize: Iterable[Any] = (), dimen: int = 1,
                 ordered: bool = True) -> None:
        self.keys = list(initialize)
        self.dimen = dimen

    def __iter__(self) -> Iterator[Any]:
        return iter(self.keys)

    def __len__(self) -> int:
        return len(self.keys)

    def construct(self, model: ConcreteModel, name: str) -> None:
        pass


def _keys(index: object) -> list[Any]:
    if isinstance(index, Set):
        return index.keys
    if isinstance(index, Iterable):
        return list(index)
    raise TypeError(f"not an index: {type(index).__name__}")


def _call(rule: Callable[..., Any], model: ConcreteModel, key: Any) -> Any:
    return rule(model, *key) if isinstance(key, tuple) else rule(model, key)


def _key_name(key: Any) -> str:
    return ",".join(map(str, key)) if isinstance(key, tuple) else str(key)


class Var(_Component):
    """Columns indexed by a set (or one column)."""

    def __init__(self, index: object = None, domain: Domain = NonNegativeReals,
                 bounds: Callable[..., tuple[float | None, float | None]]
                 | tuple[float | None, float | None] | None = None) -> None:
        self.index = index
        self.domain = domain
        self.bounds = bounds
        self.data: dict[Any, VarData] = {}

    def construct(self, model: ConcreteModel, name: str) -> None:
        keys = [None] if self.index is None else _keys(self.index)
        for key in keys:
            if callable(self.bounds):
                bounds = _call(self.bounds, model, key)
            else:
                bounds = self.bounds or (None, None)
            label = name if key is None else f"{name}[{_key_name(key)}]"
            self.data[key] = VarData(model, label, self.domain, bounds)

    def __getitem__(self, key: Any) -> VarData:
        return self.data[key]

    def __iter__(self) -> Iterator[Any]:
        return iter(self.data)

    def __len__(self) -> int:
        return len(self.data)

    def items(self) -> Iterable[tuple[Any, VarData]]:
        return self.data.items()

    def values(self) -> Iterable[VarData]:
        return self.data.values()


class Constraint(_Component):
    """Rows indexed by a set, from a rule (model, *key) -> Row, or one row from `expr`."""

    def __init__(self, index: object = None, rule: Callable[..., Row] | None = None,
                 expr: Row | None = None) -> None:
        self.index, self.rule, self.expr = index, rule, expr
        self.rows: list[Row] = []
        self.active = True

    def deactivate(self) -> None:
        """Leave these rows out of the programs compiled from now on."""
        self.active = False

    def construct(self, model: ConcreteModel, name: str) -> None:
        if self.expr is not None:
            self.rows = [self.expr]
        else:
            assert self.rule is not None
            self.rows = [_call(self.rule, model, key) for key in _keys(self.index)]
        for row in self.rows:
            if not isinstance(row, Row):
                raise TypeError(f"constraint {name} is not a linear relation")


class Expression(_Component):
    def __init__(self, expr: object) -> None:
        self.expr = _linear(expr)

    def construct(self, model: ConcreteModel, name: str) -> None:
        pass


class Objective(_Component):
    def __init__(self, expr: object, sense: int = minimize) -> None:
        if sense != minimize:
            raise ValueError("only minimisation")
        self.expr = _linear(expr)

    def construct(self, model: ConcreteModel, name: str) -> None:
        pass


class ConcreteModel:
    """Components in declaration order; assigning one (m.x = Var(...)) constructs it."""

    def __init__(self, name: str = "") -> None:
        object.__setattr__(self, "name", name)
        object.__setattr__(self, "columns", [])
        object.__setattr__(self, "components", [])
        object.__setattr__(self, "values", {})

    name: str
    columns: list[VarData]
    components: list[tuple[str, _Component]]
    values: dict[int, float]

    def __getattr__(self, name: str) -> Any:  # components are set as attributes
        raise AttributeError(name)

    def __setattr__(self, name: str, component: object) -> None:
        if isinstance(component, _Component):
            component.construct(self, name)
            self.components.append((name, component))
        object.__setattr__(self, name, component)

    def constraints(self) -> Iterator[Row]:
        """The active rows, in declaration order."""
        for _, component in self.components:
            if isinstance(component, Constraint) and component.active:
                yield from component.rows

    def objective_expr(self) -> LinExpr:
        objectives = [c for _, c in self.components if isinstance(c, Objective)]
        if len(objectives) != 1:
            raise ValueError(f"{len(objectives)} objectives")
        return objectives[0].expr


@dataclass
class Program:
    """The program as HiGHS gets it: `order[k]` is the id of column k."""

    order: list[int]
    col_lower: np.ndarray
    col_upper: np.ndarray
    integer: np.ndarray
    cost: np.ndarray
    offset: float
    row_lower: np.ndarray
    row_upper: np.ndarray
    starts: np.ndarray
    indices: np.ndarray
    values: np.ndarray


def build_program(model: ConcreteModel, objective: LinExpr | None = None) -> Program:
    """Columns in the order the rows first use them, then the objective's new ones (unused
    columns are left out, as Pyomo leaves them); rows in declaration order."""
    position: dict[int, int] = {}
    starts: list[int] = []
    indices: list[int] = []
    values: list[float] = []
    lower: list[float] = []
    upper: list[float] = []
    for row in model.constraints():
        starts.append(len(indices))
        for j, c in row.body.terms.items():
            k = position.get(j)
            if k is None:
                k = position[j] = len(position)
            indices.append(k)
            values.append(c)
        lower.append(row.lower - row.body.constant)
        upper.append(row.upper - row.body.constant)
    objective = objective if objective is not None else model.objective_expr()
    for j in objective.terms:
        if j not in position:
            position[j] = len(position)
    order = list(position)
    columns = [model.columns[j] for j in order]
    cost = np.zeros(len(order))
    for j, c in objective.terms.items():
        cost[position[j]] += c
    return Program(
        order=order,
        col_lower=np.array([c.lower for c in columns], dtype=np.float64),
        col_upper=np.array([c.upper for c in columns], dtype=np.float64),
        integer=np.array([c.integer for c in columns], dtype=bool),
        cost=cost, offset=objective.constant,
        row_lower=np.array(lower, dtype=np.float64), row_upper=np.array(upper, dtype=np.float64),
        starts=np.array(starts, dtype=np.int32), indices=np.array(indices, dtype=np.int32),
        values=np.array(values, dtype=np.float64))


def compile_program(model: ConcreteModel, highs: Any) -> Program:
    """Load the model into `highs` (an empty highspy.Highs) as Pyomo's interface would."""
    import highspy

    program = build_program(model)
    n = len(program.order)
    inf = highspy.kHighsInf
    highs.addVars(n, np.clip(program.col_lower, -inf, inf), np.clip(program.col_upper, -inf, inf))
    integers = np.flatnonzero(program.integer).astype(np.int32)
    if len(integers):
        highs.changeColsIntegrality(
            len(integers), integers,
            np.array([highspy.HighsVarType.kInteger] * len(integers)))
    highs.addRows(len(program.row_lower), np.clip(program.row_lower, -inf, inf),
                  np.clip(program.row_upper, -inf, inf), len(program.values), program.starts,
                  program.indices, program.values)
    highs.changeColsCost(n, np.arange(n, dtype=np.int32), program.cost)
    highs.changeObjectiveOffset(program.offset)
    highs.changeObjectiveSense(highspy.ObjSense.kMinimize)
    return program


def row_positions(model: ConcreteModel) -> dict[str, list[int]]:
    """The rows of each constraint component, by its name: their positions in the program."""
    out: dict[str, list[int]] = {}
    k = 0
    for name, component in model.components:
        if isinstance(component, Constraint) and component.active:
            out[name] = list(range(k, k + len(component.rows)))
            k += len(component.rows)
    return out


def load_values(model: ConcreteModel, program: Program, col_value: Iterable[float]) -> None:
    """The solution's column values into the model's columns."""
    model.values.clear()
    model.values.update(zip(program.order, col_value, strict=True))


def expression_value(model: ConcreteModel, expr: object) -> float:
    """An expression's value at the loaded solution."""
    linear = _linear(expr)
    return linear.constant + sum(c * model.values[j] for j, c in linear.terms.items())
