"""Decode-table lookup cost: time to turn TPOT tables of growing size into a curve and a
capacity, and to validate and solve a scenario whose decode instance has such a table.

    python benchmarks/table_lookup.py [--sizes 1000 10000 100000] [--no-solve]

Prints a table. Target (issue 10): a 100,000-entry TPOT table solves in seconds (it took ~14
minutes when every batch of the curve re-sorted the table; pdopt/decode.py sorts each table once).
"""

from __future__ import annotations

import argparse
import copy
import sys
import time
from pathlib import Path
from typing import Any

import yaml

from pdopt.decode import MeasuredTable, decode_capacity, decode_curve
from pdopt.scenario.loading import scenario_from_data

ROOT = Path(__file__).resolve().parent.parent
PAPER = ROOT / "scenarios" / "paper-deepseek-v31-h200.yaml"


def table(entries: int, scale: float = 1.0) -> dict[int, float]:
    """A TPOT table rising linearly with the batch (ms), one entry per batch 1..entries."""
    return {b: round(scale * (10.0 + 20.0 * b / entries), 6) for b in range(1, entries + 1)}


def curve_seconds(entries: int) -> tuple[float, int]:
    """Two tables at two contexts, interpolated at the middle one; then the capacity at 25 ms."""
    started = time.perf_counter()
    curve = decode_curve([MeasuredTable(1000.0, table(entries)),
                          MeasuredTable(3000.0, table(entries, 1.1))], 2000.0, "nearest")
    capacity = decode_capacity(curve, 25.0)
    return time.perf_counter() - started, capacity.batch


def solve_seconds(entries: int) -> tuple[float, float, str]:
    """Validate and solve the paper's scenario with a decode table of `entries` batches."""
    from pdopt.optimize import solve

    data: dict[str, Any] = copy.deepcopy(yaml.safe_load(PAPER.read_text(encoding="utf-8")))
    data["instances"][1]["tpot_ms_by_batch"] = table(entries)
    data["instances"][1].pop("measured_at", None)
    started = time.perf_counter()
    scenario = scenario_from_data(data)
    validated = time.perf_counter()
    plan = solve(scenario)
    return validated - started, time.perf_counter() - validated, str(plan.status)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[1000, 10_000, 100_000])
    parser.add_argument("--no-solve", action="store_true", help="Only the curve and capacity.")
    args = parser.parse_args()
    print(f"{'entries':>8}  {'curve+capacity_s':>16}  {'batch':>7}  {'validate_s':>10}  "
          f"{'solve_s':>8}  status")
    for entries in args.sizes:
        curve_s, batch = curve_seconds(entries)
        if args.no_solve:
            print(f"{entries:>8}  {curve_s:>16.3f}  {batch:>7}")
            continue
        validate_s, solve_s, status = solve_seconds(entries)
        print(f"{entries:>8}  {curve_s:>16.3f}  {batch:>7}  {validate_s:>10.3f}  {solve_s:>8.3f}"
              f"  {status}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
