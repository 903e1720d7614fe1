"""The direct backend (docs/method.md O.9): the fleet program built without Pyomo must be the very
program Pyomo's HiGHS interface builds (same columns, rows, bounds, costs, integrality, in the
same order), and solve to the same plans."""

from __future__ import annotations

import math
import subprocess
import sys
from pathlib import Path
from typing import Any

import highspy
import numpy as np
import pytest
from fleet_cases import random_fleet

from pdopt.optimize import direct, solve
from pdopt.optimize.data import build_fleet_data
from pdopt.optimize.model import Relaxation, create_model
from pdopt.optimize.solver import silent_highs, solve_lexicographic
from pdopt.plan import Objective, Status
from pdopt.scenario.prepare import prepare
from pdopt.scenario.schema import Scenario

ROOT = Path(__file__).resolve().parents[1]
BUNDLED = sorted((ROOT / "scenarios").glob("*.yaml"))
RELAXATIONS = [None, Relaxation(budget=True, inventory="drop"),
               Relaxation(budget=True, inventory="elastic"),
               Relaxation(budget=True, inventory="drop", max_count=True, limits=True)]


def _pyomo_lp(model: Any) -> Any:
    from pyomo.contrib.solver.solvers.highs import Highs

    opt = Highs()
    opt.set_instance(model)
    return opt._solver_model.getLp()


def _direct_lp(model: direct.ConcreteModel) -> Any:
    highs = silent_highs()
    direct.compile_program(model, highs)
    return highs.getLp()


def _arrays(lp: Any) -> dict[str, Any]:
    a = lp.a_matrix_
    return {"cost": np.array(lp.col_cost_), "col_lower": np.array(lp.col_lower_),
            "col_upper": np.array(lp.col_upper_), "row_lower": np.array(lp.row_lower_),
            "row_upper": np.array(lp.row_upper_), "start": np.array(a.start_),
            "index": np.array(a.index_), "value": np.array(a.value_),
            "integrality": [int(x) for x in lp.integrality_], "offset": lp.offset_,
            "format": str(a.format_)}


def assert_same_program(scenario: Scenario, objective: Objective | str,
                        relax: Relaxation | None) -> int:
    data = build_fleet_data(scenario)
    pyomo = _arrays(_pyomo_lp(create_model(data, objective, relax)))
    built = _arrays(_direct_lp(create_model(data, objective, relax, backend="direct")))
    for key, expected in pyomo.items():
        got = built[key]
        if isinstance(expected, np.ndarray):
            assert got.shape == expected.shape, key
            assert np.array_equal(got, expected), key  # bit for bit
        else:
            assert got == expected, key
    return len(pyomo["cost"])


@pytest.mark.parametrize("path", [p for p in BUNDLED if "day-ahead" not in p.name],
                         ids=lambda p: p.stem)
def test_bundled_scenarios_give_hiGHS_the_same_program(path: Path) -> None:
    scenario = prepare(path).scenario
    for relax in RELAXATIONS:
        assert assert_same_program(scenario, scenario.options.objective, relax) > 0


@pytest.mark.parametrize("seed", range(6))
def test_random_fleets_give_the_same_program(seed: int) -> None:
    options = dict(workloads=1 + seed % 3, gpus=1 + seed % 3, cross_links=seed % 2 == 1,
                   inventory=seed % 3 == 0, budget=500.0 if seed % 4 == 1 else None)
    data = random_fleet(seed, **options)  # type: ignore[arg-type]
    if seed % 2:  # count tables (queue auto with the SLO window, Eq. O14) and operability
        data["options"] = {"limits": {"min_count_if_used": 2, "max_instance_types":
                                      {"prefill": 1}}}
    scenario = Scenario.model_validate(data)
    for objective in ("cost", "gpus"):
        for relax in RELAXATIONS:
            assert_same_program(scenario, objective, relax)


def test_expressions_by_hand() -> None:
    m = direct.ConcreteModel()
    m.I = direct.Set(initialize=["a", "b"])
    m.x = direct.Var(m.I, domain=direct.NonNegativeIntegers,
                     bounds=lambda _m, i: (0, 3 if i == "a" else None))
    m.y = direct.Var(domain=direct.Binary)
    m.unused = direct.Var()
    x, y = m.x["a"], m.x["b"]
    expr = 2 * x + 3 - x / 4 + 0 * y
    assert expr.terms == {x.id: 1.75, y.id: 0.0} and expr.constant == 3.0
    assert direct.quicksum([]) == 0 and direct.quicksum([x, x, 1.5]).terms == {x.id: 2.0}
    # a constant side is the bound; otherwise lhs - rhs against 0 (as Pyomo normalises)
    row = 5 >= x + 1  # noqa: SIM300  # the reflected comparison
    assert (row.lower, row.upper, row.body.terms, row.body.constant) == (-math.inf, 5, {x.id: 1},
                                                                        1)
    row = x + 2 * m.y[None] == y
    assert (row.lower, row.upper, row.body.terms) == (0, 0, {x.id: 1, m.y[None].id: 2,
                                                              y.id: -1})
    m.c = direct.Constraint(m.I, rule=lambda _m, i: _m.x[i] >= 1)
    m.d = direct.Constraint(expr=direct.inequality(1, x + 2 * m.y[None] - 4, 6))
    m.objective = direct.Objective(expr=3 * y + 2 * x + 7 * m.y[None])
    program = direct.build_program(m)
    # columns as the rows first use them (a, b, y); the unused column left out
    assert program.order == [x.id, y.id, m.y[None].id]
    assert list(program.col_upper) == [3, math.inf, 1] and list(program.integer) == [1, 1, 1]
    assert list(program.row_lower) == [1, 1, 5] and list(program.row_upper) == [math.inf,
                                                                                 math.inf, 10]
    assert list(program.cost) == [2, 3, 7]
    with pytest.raises(TypeError):
        x * y  # noqa: B018  # not linear


@pytest.mark.parametrize("objective", ["cost", "gpus"])
def test_both_backends_solve_to_the_same_plan(objective: str) -> None:
    scenario = Scenario.model_validate(random_fleet(3, workloads=2, gpus=3))
    data = build_fleet_data(scenario)
    values = []
    for backend in ("pyomo", "direct"):
        model = create_model(data, objective, backend=backend)  # type: ignore[arg-type]
        report = solve_lexicographic(model, time_limit_s=30, mip_gap=0.0,
                                     integral_primary=objective == "gpus")
        assert report.status == Status.OPTIMAL
        counts = {k: round(model.n[k].value) for k in model.n}
        secondary = sum(c * (data.pools[p].gpus_per_instance if objective == "cost"
                             else data.pools[p].cost_per_hour) for (p, _), c in counts.items())
        values.append((report.objective_value, secondary, report.termination))
    assert values[0][0] == pytest.approx(values[1][0], rel=1e-9)
    assert values[0][1] == pytest.approx(values[1][1], rel=1e-9)
    assert values[0][2] == values[1][2] == "convergenceCriteriaSatisfied"


def test_infeasible_program_reports_infeasible() -> None:
    data = random_fleet(2, inventory=True)
    for g in data["gpus"].values():
        g["count"] = 1
    data["workloads"][0]["requests_per_s"] = 500
    scenario = Scenario.model_validate(data)
    model = create_model(build_fleet_data(scenario), "cost", backend="direct")
    report = solve_lexicographic(model, time_limit_s=30, mip_gap=0.01)
    assert report.status == Status.INFEASIBLE and report.objective_value is None
    plan = solve(scenario)  # and the diagnosis, on the direct backend, names the shortfall
    assert plan.status == Status.INFEASIBLE
    assert any("inventory too small" in reason for reason in plan.diagnosis)


def _run(code: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          cwd=ROOT, timeout=120, check=True)


def test_silent_highs_keeps_the_banner_off_the_output() -> None:
    out = _run("from pdopt.optimize.solver import silent_highs\n"
               "print('before'); silent_highs(); print('after')").stdout
    assert out == "before\nafter\n"


def test_a_one_model_solve_does_not_import_pyomo() -> None:
    out = _run("import sys\nfrom pdopt.optimize import solve\n"
               "plan = solve('scenarios/paper-deepseek-v31-h200.yaml')\n"
               "print(plan.status.value, sorted(m for m in sys.modules if m.startswith('pyomo')))"
               ).stdout
    assert out.split(" ", 1) == ["optimal", "[]\n"]


def test_highspy_status_names_are_all_mapped() -> None:
    from pdopt.optimize.solver import _HIGHS_TERMINATION

    names = {s.name for s in highspy.HighsModelStatus.__members__.values()}
    assert names - set(_HIGHS_TERMINATION) <= {"kInterrupt", "kMemoryLimit", "kHighsInterrupt"}


def test_rounding_every_count_up_on_the_direct_backend(monkeypatch: pytest.MonkeyPatch) -> None:
    """O.3's second way (every count of the LP rounded up, the counts fixed, the flows solved
    again) on a direct model: counts fixed by bounds, pool limits left out."""
    from pdopt.optimize import rounding
    from pdopt.optimize.extract import build_plan
    from pdopt.optimize.solver import Deadline

    monkeypatch.setattr(rounding, "_near_lp", lambda *args, **kwargs: None)
    scenario = Scenario.model_validate(random_fleet(6, cross_links=True))
    data = build_fleet_data(scenario)
    result = rounding.rounded_up(data, Objective.COST, Relaxation(),
                                 deadline=Deadline.after(30), dual_bound=None)
    assert result is not None
    model, report = result
    assert isinstance(model, direct.ConcreteModel)
    assert report.termination == "rounded LP relaxation"
    plan = build_plan(data, model, Objective.COST, report)
    optimum = solve(scenario, mip_gap=0.0).cost_per_hour
    assert report.dual_bound is not None
    assert report.dual_bound <= optimum + 1e-6 <= plan.cost_per_hour + 2e-6  # type: ignore
    for var in model.n.values():  # every count held at an integer
        assert var.lower == var.upper == round(var.value)
    for pool in plan.pools:
        assert all(g.utilization <= 1 + 1e-6 for g in pool.groups)
