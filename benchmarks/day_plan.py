"""Day plans (issue 13, docs/method.md section H): solve time of the horizon program for the
shipped day-ahead scenario at 24 one-hour and 144 ten-minute periods, the new way (the
(model, period) parts' cuts, bound and start, H20-H24) beside the first version (the horizon
program alone) in the same run, the savings against static peak sizing and all on demand, and the
one-period check on the heterogeneous fleet.

    python benchmarks/day_plan.py [--periods 24 144] [--time-limit 30 120] [--gap 0.01]
                                  [--methods parts monolithic] [--compare] [--one-period]

144 periods follow ServeGen's ten-minute curves (../shared/data/load, averaged by time of day)
when ../shared is there, else repeat each hourly multiplier of scenarios/day-ahead.yaml six times.
Columns: time limit, build s (coefficients, parts, Pyomo model, HiGHS handed the program), solve s
(HiGHS, both lexicographic stages), wall s, status, proven gap, total cost over the day and the
proven bound; the load average (1, 5, 15 min) after each run; with --compare (24 periods), the
same demand sized statically for its peak and bought all on demand, and what the day plan saves.
"""

from __future__ import annotations

import argparse
import csv
import os
import sys
import time
from pathlib import Path
from typing import Any

from pdopt.optimize import solve
from pdopt.optimize.periods import solve_horizon
from pdopt.report import Report, Table, render
from pdopt.scenario.prepare import PreparedScenario, prepare

ROOT = Path(__file__).resolve().parent.parent
DAY = ROOT / "scenarios" / "day-ahead.yaml"
FLEET = ROOT / "scenarios" / "fleet-heterogeneous.yaml"


LOAD = ROOT.parent / "shared" / "data" / "load" / "aggregate_rate_600s.csv"
#: the ServeGen model class whose curve each model of the day-ahead scenario follows (its comments)
CURVES = {"llama-3.1-8b": "language/m-small", "llama-3.1-70b": "language/m-large",
          "deepseek-v3": "reason/deepseek-r1"}


def ten_minute_curves() -> dict[str, list[float]] | None:
    """ServeGen's 600 s windows averaged by time of day (144 per day) and divided by their mean,
    per model of the scenario; None without ../shared."""
    if not LOAD.is_file():
        return None
    sums: dict[str, list[float]] = {c: [0.0] * 144 for c in CURVES.values()}
    days: dict[str, set[int]] = {c: set() for c in CURVES.values()}
    with LOAD.open(encoding="utf-8") as f:
        for row in csv.DictReader(f):
            if row["model"] in sums:
                t = int(row["window_start_s"])
                sums[row["model"]][(t // 600) % 144] += float(row["sum_client_rate_rps"])
                days[row["model"]].add(t // 86400)
    out = {}
    for model, curve in CURVES.items():
        values = [v / len(days[curve]) for v in sums[curve]]
        mean = sum(values) / len(values)
        out[model] = [v / mean for v in values]
    return out


def day_scenario(periods: int) -> tuple[PreparedScenario, str]:
    """The day-ahead scenario over `periods` equal periods, and where its curves come from: the
    file's hourly curves for 24; for 144, ServeGen's ten-minute curves when ../shared is there,
    else each hourly multiplier six times."""
    base = prepare(DAY)
    if periods == 24:
        return base, "hourly curves of the file"
    if periods % 24:
        raise SystemExit("--periods: a multiple of 24")
    repeat = periods // 24
    fine = ten_minute_curves() if periods == 144 else None
    overrides: dict[str, Any] = {"periods": {"count": periods, "length_h": 24 / periods,
                                             "warm_up_minutes": 10}}
    for w in base.scenario.workloads:
        assert w.demand is not None and w.demand.multipliers is not None
        values = fine[w.model] if fine else [m for m in w.demand.multipliers
                                              for _ in range(repeat)]
        overrides[f"workloads.{w.name}.demand"] = {"multipliers": values}
    source = "ServeGen ten-minute curves" if fine else "hourly curves repeated"
    return prepare(DAY, overrides=overrides), source


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--periods", type=int, nargs="+", default=[24, 144])
    ap.add_argument("--methods", nargs="+", choices=("parts", "monolithic"),
                    default=["parts", "monolithic"],
                    help="parts: the (model, period) parts' cuts, bound and start (method H20-H24)"
                    "; monolithic: the horizon program alone (the first version)")
    ap.add_argument("--time-limit", type=float, nargs="+", default=[30.0, 120.0],
                    help="seconds per periods value (one value: for all)")
    ap.add_argument("--gap", type=float, default=0.01, help="relative MIP gap (default 1%%)")
    ap.add_argument("--compare", action="store_true",
                    help="also solve the comparisons (static peak, all on demand) at 24 periods "
                    "(parts method; the time limit covers the three plans)")
    ap.add_argument("--one-period", action="store_true",
                    help="also check the heterogeneous fleet as a one-period horizon")
    args = ap.parse_args(argv)
    limits = {n: args.time_limit[min(k, len(args.time_limit) - 1)]
              for k, n in enumerate(args.periods)}
    rows = []
    notes = [f"load average before: {_load()}"]
    for periods in args.periods:
        prepared, source = day_scenario(periods)
        runs = [(m, False) for m in args.methods]
        if args.compare and periods == 24:
            runs.append(("parts", True))
        for method, compare in runs:
            t0 = time.perf_counter()
            plan = solve_horizon(prepared, time_limit_s=limits[periods], mip_gap=args.gap,
                                 compare=compare, period_parts=method == "parts")
            wall = time.perf_counter() - t0
            gap = "-" if plan.mip_gap is None else f"{100 * plan.mip_gap:.2f}%"
            total = plan.total_cost
            bound = plan.solver.dual_bound if plan.solver is not None else None
            row: list[Any] = [periods, source, method + (" + comparisons" if compare else ""),
                              f"{limits[periods]:g}", f"{plan.build_seconds:.1f}",
                              f"{plan.solve_seconds:.1f}", f"{wall:.1f}", plan.status.value, gap,
                              "-" if total is None else f"{total:,.2f}",
                              "-" if bound is None else f"{bound:,.2f}", _load()]
            for key in ("static_peak_total_cost", "all_on_demand_total_cost"):
                other = plan.comparison.get(key)
                ogap = plan.comparison.get(key.replace("total_cost", "mip_gap"))
                row.append("-" if other is None or total is None
                           else f"{other:,.0f} ({100 * (1 - total / other):.1f}%; gap "
                           f"{'-' if ogap is None else f'{100 * ogap:.2f}%'})")
            rows.append(row)
            print(" | ".join(str(c) for c in row), file=sys.stderr, flush=True)
            if plan.reserved_gpus_by_type:
                notes.append(f"{periods} periods, {method}: reserved " + ", ".join(
                    f"{g} {n}" for g, n in plan.reserved_gpus_by_type.items()))
    tables = [Table("day plans (scenarios/day-ahead.yaml)",
                    ("periods", "curves", "method", "limit s", "build s", "solve s", "wall s",
                     "status", "gap", "total $", "bound $", "load avg after",
                     "static peak $ (saved)", "all on demand $ (saved)"), rows)]
    if args.one_period:
        one = prepare(FLEET, overrides={"periods": {"count": 1, "length_h": 1}})
        t0 = time.perf_counter()
        horizon = solve_horizon(one, time_limit_s=max(limits.values()), mip_gap=1e-4,
                                compare=False)
        t1 = time.perf_counter()
        today = solve(prepare(FLEET), time_limit_s=max(limits.values()))
        t2 = time.perf_counter()
        same = {p.instance: p.count for p in horizon.pools} == \
            {p.instance: p.count for p in today.pools}
        tables.append(Table("one period = today's plan (fleet-heterogeneous)",
                            ("program", "status", "$/hour", "wall s", "same counts"),
                            [("horizon, 1 period", horizon.status.value, horizon.total_cost,
                              f"{t1 - t0:.1f}", same),
                             ("pdopt solve", today.status.value, today.cost_per_hour,
                              f"{t2 - t1:.1f}", same)]))
    print(render(Report({}, tables, notes), "table"))
    return 0


def _load() -> str:
    """The 1-, 5- and 15-minute load averages (2 cores: above 2 the machine is shared)."""
    return " ".join(f"{x:.1f}" for x in os.getloadavg())


if __name__ == "__main__":
    sys.exit(main())
