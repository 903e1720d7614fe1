"""Batch throughput: variants per second of `pdopt batch` and the per-variant overhead outside the
solver, for a 200-variant sweep of the paper's scenario and of the heterogeneous fleet scenario, at
--jobs 1 and --jobs 2 (issue 4; target: >= 20 variants/s on the paper's scenario with --jobs 2).

    python benchmarks/batch_throughput.py [--variants 200] [--fleet-variants 20] [--repeat 3]
                                          [--jobs 1 2]

Each run is what `pdopt batch SWEEP --output DIR --jobs N --quiet` does: expand the sweep, start the
workers, validate, build, solve, write every plan and both summaries. Wall time is the median of
--repeat runs (the fleet sweep runs once), each into a fresh folder. The columns:

- variants/s: variants / wall seconds;
- solve ms, build ms: mean `Plan.solve_seconds` (HiGHS) and `Plan.build_seconds` (Pyomo model);
- other ms/variant (jobs 1 only): wall / variants - solve - build: sweep expansion, validation,
  precomputation, plan extraction, JSON and file writes, all outside the solver.

The paper sweep crosses 20 loads (1e6 to 1e8 tokens/minute, log) with 10 TPOT targets (14 to 23
ms). The fleet sweep crosses values of options.headroom (1.0 to 3.0) with 10 B200 prices (3.75 to
8.00 USD/hour, cloud_prices.csv's range) when the scenario has a B200, else headroom alone. One
fleet variant is a 9-workload, 6-GPU-type integer program that takes seconds to solve, so the
default is 20 fleet variants; --fleet-variants 200 gives the issue's full sweep (about 10 x longer).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import yaml

from pdopt.batch import collect_entries, make_executor, run_batch
from pdopt.optimize import solve
from pdopt.report import Report, Table, render
from pdopt.scenario.loading import load_scenario

ROOT = Path(__file__).resolve().parent.parent
PAPER = ROOT / "scenarios" / "paper-deepseek-v31-h200.yaml"
FLEET = ROOT / "scenarios" / "fleet-heterogeneous.yaml"


def paper_sweep(n: int) -> dict[str, Any]:
    loads = n // 10
    return {"extends": str(PAPER), "sweep": {
        "workloads.chat.tokens_per_minute": {"start": 1e6, "stop": 1e8, "num": loads,
                                             "scale": "log", "label": "rate"},
        "workloads.chat.slo.tpot_ms": {"start": 14, "stop": 23, "num": n // loads}}}


def fleet_sweep(n: int) -> dict[str, Any]:
    if "B200" in load_scenario(FLEET).gpus and n >= 10:
        return {"extends": str(FLEET), "sweep": {
            "options.headroom": {"start": 1.0, "stop": 3.0, "num": n // 10},
            "gpus.B200.cost_per_hour": {"start": 3.75, "stop": 8.0, "num": 10}}}
    return {"extends": str(FLEET), "sweep": {
        "options.headroom": {"start": 1.0, "stop": 3.0, "num": n}}}


def measure(sweep: dict[str, Any], jobs: int, repeat: int, tmp: Path) -> dict[str, float]:
    source = tmp / "sweep.yaml"
    source.write_text(yaml.safe_dump(sweep, sort_keys=False))
    walls, rows = [], []
    for k in range(repeat):
        start = time.perf_counter()
        entries = collect_entries([str(source)])
        result = run_batch(entries, solve, tmp / f"out-{jobs}-{k}", executor=make_executor(jobs))
        walls.append(time.perf_counter() - start)
        rows = result.rows
    wall = statistics.median(walls)
    n = len(rows)
    solved = [r for r in rows if r["solve_seconds"] is not None]
    solve_s = statistics.fmean(r["solve_seconds"] for r in solved) if solved else 0.0
    build_s = statistics.fmean(r["build_seconds"] for r in solved) if solved else 0.0
    return {"n": n, "failed": sum(r["status"] not in ("optimal", "feasible") for r in rows),
            "wall": wall, "rate": n / wall, "solve_ms": 1e3 * solve_s, "build_ms": 1e3 * build_s,
            "other_ms": 1e3 * (wall / n - solve_s - build_s) if jobs == 1 else None}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--variants", type=int, default=200)
    parser.add_argument("--fleet-variants", type=int, default=20)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--jobs", type=int, nargs="+", default=[1, 2])
    args = parser.parse_args(argv)

    cases = [("paper", paper_sweep(args.variants), args.repeat)]
    notes = []
    if FLEET.exists() and args.fleet_variants > 0:
        cases.append(("fleet-heterogeneous", fleet_sweep(args.fleet_variants), 1))
    elif not FLEET.exists():
        notes.append(f"{FLEET.relative_to(ROOT)} is absent: paper scenario only")
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for name, sweep, repeat in cases:
            for jobs in args.jobs:
                folder = Path(tmp) / f"{name}-{jobs}"
                folder.mkdir()
                m = measure(sweep, jobs, repeat, folder)
                rows.append((name, jobs, m["n"], m["failed"], round(m["wall"], 3),
                             round(m["rate"], 1), round(m["solve_ms"], 2), round(m["build_ms"], 2),
                             None if m["other_ms"] is None else round(m["other_ms"], 2)))
    table = Table(f"pdopt batch throughput (paper: median of {args.repeat} runs)",
                  ("scenario", "jobs", "variants", "failed", "wall s", "variants/s", "solve ms",
                   "build ms", "other ms/variant"), rows)
    print(render(Report({}, [table], notes), "table"))
    return 0


if __name__ == "__main__":
    sys.exit(main())
