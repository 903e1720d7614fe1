"""The solver's limits and what it says when it stops: the time limit is honoured through every
phase (parts, rounded-LP fallback, whole program, diagnosis), and the messages say what really
happened (numerical trouble is not a time limit; every binding limit is named)."""

from __future__ import annotations

import copy
import importlib.util
import time
from pathlib import Path
from typing import Any

import pytest
from fleet_cases import random_fleet

from pdopt.optimize import solve
from pdopt.optimize.data import build_fleet_data
from pdopt.optimize.diagnose import without_limits_reason
from pdopt.optimize.solver import Deadline, SolveProgress, not_started
from pdopt.plan import SolverReport, Status
from pdopt.scenario.loading import load_scenario, scenario_from_data
from pdopt.scenario.prepare import prepare

ROOT = Path(__file__).resolve().parent.parent


def _fleetgen() -> Any:
    spec = importlib.util.spec_from_file_location("fleetgen", ROOT / "benchmarks" / "fleetgen.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_time_limit_is_honoured_on_a_large_fleet() -> None:
    """25 models x 4 GPU types with binding inventories: `--time-limit 2` once took 13.8 s (the
    rounded-LP fallback had at least 10 s per part). The cap is generous for a loaded machine."""
    prepared = prepare(scenario_from_data(_fleetgen().fleet(25, 4, 4, 3)))
    start = time.perf_counter()
    plan = solve(prepared, time_limit_s=2)
    assert time.perf_counter() - start < 5.0
    if plan.has_plan:
        assert plan.status == Status.OPTIMAL or plan.mip_gap is not None
    else:
        assert plan.status == Status.NO_SOLUTION
        assert "time limit (2 s)" in plan.diagnosis[0]


def test_tiny_time_limit_returns_at_once() -> None:
    """One model, 1 ms: branch and bound and the rounded-LP fallback share the millisecond."""
    scenario = prepare(scenario_from_data(random_fleet(6, workloads=2, gpus=3,
                                                       cross_links=True)))
    start = time.perf_counter()
    plan = solve(scenario, time_limit_s=1e-3)
    assert time.perf_counter() - start < 1.5
    assert plan.status in (Status.OPTIMAL, Status.FEASIBLE, Status.NO_SOLUTION)


def test_deadline_shares() -> None:
    deadline = Deadline.after(10.0)
    half = deadline.share(0.5)
    assert 4.5 < half.remaining() <= 5.0
    assert deadline.share(1.0, keep_s=3.0).remaining() == pytest.approx(7.0, abs=0.1)
    assert Deadline.after(-1.0).passed() and Deadline.after(-1.0).share(0.5).passed()


# ---- messages ---------------------------------------------------------------------------------

def test_out_of_range_cost_is_not_called_a_time_limit(paper_scenario_path: Path) -> None:
    """The scenario format refuses `cost_per_hour: 1e20`; through the Python API past the
    validation the solver gives up at once, and the message says why, not "time limit"."""
    scenario = load_scenario(paper_scenario_path)
    gpu = scenario.gpus["H200"].model_copy(update={"cost_per_hour": 1e20})
    scenario = scenario.model_copy(update={"gpus": {"H200": gpu}})
    plan = solve(scenario, time_limit_s=60)
    assert plan.status == Status.NO_SOLUTION
    (reason,) = plan.diagnosis
    assert "time limit (60 s)" not in reason and "not at the time limit" in reason
    assert "costs $8e+20/h" in reason
    assert plan.solver is not None and not plan.solver.time_limit_hit


def test_inventory_and_budget_shortfalls_are_both_named(paper_data: dict[str, Any]) -> None:
    data = copy.deepcopy(paper_data)
    data.setdefault("options", {})["queue"] = "mm1"  # the paper's 4P4D
    data["gpus"]["H200"]["count"] = 40  # the plan needs 64
    data["budget_per_hour"] = 200.0  # the plan costs $255.36/h
    plan = solve(scenario_from_data(data))
    assert plan.status == Status.INFEASIBLE
    assert any("H200 is short by 24 GPUs" in r for r in plan.diagnosis), plan.diagnosis
    assert any("budget short by $55.36/h" in r and "beyond the inventories" in r
               for r in plan.diagnosis), plan.diagnosis


def test_no_plan_without_limits_names_its_causes(paper_data: dict[str, Any]) -> None:
    infeasible = SolverReport(Status.INFEASIBLE, "provenInfeasible", None, None, None, 0.1, False)
    data = build_fleet_data(scenario_from_data(paper_data))
    reason = without_limits_reason(data, infeasible)
    assert not reason.rstrip().endswith(":") and "bug in pdopt" in reason
    with_minimum = copy.deepcopy(paper_data)
    with_minimum["instances"][0]["min_count"] = 9
    data = build_fleet_data(scenario_from_data(with_minimum))
    name = with_minimum["instances"][0]["name"]
    assert f"min_count values: '{name}' min_count 9" in without_limits_reason(data, infeasible)
    assert "time limit ran out" in without_limits_reason(data, not_started())


# ---- progress ---------------------------------------------------------------------------------

def test_progress_reports_incumbent_and_bound() -> None:
    """One model on 8 GPU types, gap 0: HiGHS searches until the time limit, the callback sees
    the search (elapsed, bound)."""
    seen: list[SolveProgress] = []
    prepared = prepare(scenario_from_data(_fleetgen().fleet(1, 8, 4, 3)))
    solve(prepared, time_limit_s=3, mip_gap=0.0, progress=seen.append)
    assert seen, "no progress reported"
    assert all(p.elapsed_s >= 0 for p in seen)
    assert any(p.bound is not None for p in seen)


def test_cli_progress_on_request_and_silent_when_piped(tmp_path: Path) -> None:
    import yaml
    from click.testing import CliRunner

    from pdopt.cli import main

    path = tmp_path / "fleet.yaml"
    path.write_text(yaml.safe_dump(_fleetgen().fleet(2, 4, 4, 3)))
    # a gap of 0 keeps HiGHS searching until the time limit: there is progress to show
    args = ["solve", str(path), "--time-limit", "3", "--mip-gap", "0", "--format", "json"]
    shown = CliRunner().invoke(main, [*args, "--progress"])
    assert shown.exit_code in (0, 4), shown.output
    assert "\r" in shown.stderr and " s  plan " in shown.stderr and "bound" in shown.stderr
    piped = CliRunner().invoke(main, args)  # CliRunner's stderr is not a terminal
    assert piped.exit_code in (0, 4) and "\r" not in piped.stderr
