"""What operability limits cost (docs/method.md, O.7): the shipped heterogeneous fleet solved with
and without its limits, in the same run, through `pdopt.solve` (models apart, price
decomposition, whole program, as a user's solve goes) and as one monolithic program (the whole
fleet's integer program of section O handed to HiGHS at once).

    python benchmarks/limits_cost.py [--time-limit 120] [--mip-gap 1e-4] [--prices]

Prints a table: cost, GPUs, status, gap, build and solve seconds per scenario and path, and the
price of the limits (cost with them minus cost without). `--prices` adds the price of each kind
of limit: the monolithic program without that kind (the others kept), as `pdopt solve --explain`
computes it.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from pdopt.optimize import build_fleet_data, create_model, solve
from pdopt.optimize.extract import build_plan
from pdopt.optimize.solver import solve_lexicographic
from pdopt.plan import Objective, Plan
from pdopt.report import Report, Table, fmt_gap, render
from pdopt.scenario.prepare import prepare
from pdopt.scenario.schema import Scenario
from pdopt.simplicity import LIMIT_LABELS, limit_kinds, scenario_without

ROOT = Path(__file__).resolve().parent.parent
SCENARIOS = {"without limits": ROOT / "scenarios" / "fleet-heterogeneous.yaml",
             "with limits": ROOT / "scenarios" / "fleet-heterogeneous-operable.yaml"}


def monolithic(path: Path | Scenario, time_limit_s: float, mip_gap: float
               ) -> tuple[Plan, float, float]:
    """The whole fleet's program at once: (plan, build seconds, solve seconds)."""
    start = time.perf_counter()
    scenario = prepare(path).scenario
    data = build_fleet_data(scenario)
    model = create_model(data, Objective.COST)
    built = time.perf_counter() - start
    report = solve_lexicographic(model, mip_gap=mip_gap, time_limit_s=time_limit_s)
    plan = build_plan(data, model, Objective.COST, report) if report.status.has_plan else None
    return plan, built, time.perf_counter() - start - built  # type: ignore[return-value]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--time-limit", type=float, default=120.0)
    parser.add_argument("--mip-gap", type=float, default=1e-4)
    parser.add_argument("--prices", action="store_true", help="the price of each kind of limit")
    parser.add_argument("--no-solve", action="store_true", help="skip the pdopt.solve path")
    args = parser.parse_args()
    for path in SCENARIOS.values():
        prepare(path)  # resolve the estimated profiles (cached on disk) outside the timings
    rows = []
    costs: dict[tuple[str, str], float | None] = {}
    for name, path in SCENARIOS.items():
        if not args.no_solve:
            start = time.perf_counter()
            plan = solve(path, time_limit_s=args.time_limit, mip_gap=args.mip_gap)
            total = time.perf_counter() - start
            rows.append((name, "pdopt.solve", plan.status, plan.cost_per_hour, plan.total_gpus,
                         plan.mip_gap, plan.build_seconds, plan.solve_seconds, total))
            costs[(name, "pdopt.solve")] = plan.cost_per_hour
        mono, built, solved = monolithic(path, args.time_limit, args.mip_gap)
        rows.append((name, "monolithic", mono.status if mono else "no plan",
                     mono.cost_per_hour if mono else None, mono.total_gpus if mono else None,
                     mono.mip_gap if mono else None, built, solved, built + solved))
        costs[(name, "monolithic")] = mono.cost_per_hour if mono else None
    limited = prepare(SCENARIOS["with limits"]).scenario
    for kind in limit_kinds(limited) if args.prices else []:
        mono, built, solved = monolithic(scenario_without(limited, [kind]), args.time_limit,
                                         args.mip_gap)
        name = f"without {LIMIT_LABELS[kind]}"
        rows.append((name, "monolithic", mono.status if mono else "no plan",
                     mono.cost_per_hour if mono else None, mono.total_gpus if mono else None,
                     mono.mip_gap if mono else None, built, solved, built + solved))
        costs[(name, "monolithic")] = mono.cost_per_hour if mono else None
    notes = [f"time limit {args.time_limit:g} s, mip gap {fmt_gap(args.mip_gap)}"]
    for how in ("pdopt.solve", "monolithic"):
        a, b = costs.get(("with limits", how)), costs.get(("without limits", how))
        if a is not None and b is not None:
            notes.append(f"price of the limits ({how}): {a - b:+,.2f} $/h")
    for kind in limit_kinds(limited) if args.prices else []:
        a, b = costs[("with limits", "monolithic")], costs[(f"without {LIMIT_LABELS[kind]}",
                                                             "monolithic")]
        if a is not None and b is not None:
            notes.append(f"price of {LIMIT_LABELS[kind]} (monolithic): {a - b:+,.2f} $/h")
    print(render(Report({}, [Table(
        "fleet-heterogeneous with and without operability limits",
        ("scenario", "path", "status", "cost_per_hour", "gpus", "gap", "build_s", "solve_s",
         "total_s"), rows)], notes), "table"))


if __name__ == "__main__":
    main()
