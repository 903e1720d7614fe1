"""How often a "too big" plan's holding one-fewer neighbour holds over many windows
(docs/validation.md section 6, third pass).

    python benchmarks/neighbour_windows.py --cases 1:2,1:26 [--seeds 8] [--minutes 30]

For each generated sizing scenario (seed:number, as `validate_accuracy.py --section sizing`
numbers them), the `queue: auto` plan and each of its one-fewer neighbours (one instance fewer
in a pool, or in a split pool's group) are simulated over windows with seeds 1..K: the share of
windows each holds its SLOs in, and the worst SLO ratio (median / max). A neighbour that holds in
the judge's single window but misses in some of these is one the SLO window's confidence
(method.md section W) rightly rules out. Each workload's mean TPOT and judged TTFT statistic
(mean or percentile) are given as mean / standard deviation over the windows.
"""

from __future__ import annotations

import argparse
import statistics
import sys
from collections.abc import Callable
from operator import attrgetter
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

import validate_accuracy as va  # noqa: E402

from pdopt.optimize import solve  # noqa: E402
from pdopt.simulate import SimulationOptions, SimulationResult, simulate_plan  # noqa: E402
from pdopt.simulate.verify import move_label, moves, neighbour, slo_ratio  # noqa: E402


def case_scenario(seed: int, number: int):
    rng = np.random.default_rng(seed)
    seeds = rng.integers(0, 2**31, max(number, 30))
    routing = "round-robin" if (number - 1) % 2 == 0 else "random"
    base, what = va.sizing_scenario(np.random.default_rng(seeds[number - 1]), routing)
    return va._with_options(base, queue="auto"), routing, what


# the statistics a window judges: each workload's mean TPOT, and its TTFT statistic (mean or
# percentile, as the target is)
TPOT, TTFT = attrgetter("tpot_ms.mean"), attrgetter("ttft_at_target_ms")


def window_summary(results: list[SimulationResult], value: Callable[[Any], float],
                   target: str, digits: int) -> str:
    """Each workload's `value` over the windows: mean and standard deviation of the windows'
    values, ms, and its `target` field (what method.md W1-W3 and W4-W5 predict the spread of)."""
    parts = []
    for k, first in enumerate(results[0].workloads):
        values = [value(r.workloads[k]) for r in results]
        spread = statistics.stdev(values) if len(values) > 1 else 0.0
        parts.append(f"{first.workload} {statistics.mean(values):.{digits}f} / "
                     f"{spread:.{digits}f} ({getattr(first, target):g})")
    return ", ".join(parts)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cases", required=True, help="seed:number pairs, e.g. 1:2,2:14")
    parser.add_argument("--seeds", type=int, default=8)
    parser.add_argument("--first-seed", type=int, default=1,
                        help="simulation seeds first-seed .. first-seed + seeds - 1")
    parser.add_argument("--minutes", type=float, default=30.0)
    args = parser.parse_args()
    print("| case | plan / neighbour | windows held | worst SLO ratio median / max "
          "| mean TPOT per workload, ms: mean / sd over the windows (target) "
          "| TTFT statistic per workload, ms: mean / sd over the windows (target) |")
    print("|---|---|---|---|---|---|")
    for item in args.cases.split(","):
        seed, number = (int(x) for x in item.split(":"))
        scenario, routing, what = case_scenario(seed, number)
        plan = solve(scenario)
        candidates = [("plan", plan)]
        for pool, group in moves(plan):
            other = neighbour(plan, pool, -1, group)
            if other is not None:
                candidates.append((move_label(pool, group) + " -1", other))
        for label, candidate in candidates:
            results = [simulate_plan(scenario, candidate, SimulationOptions(
                duration_s=60 * args.minutes, seed=s, routing=routing))
                for s in range(args.first_seed, args.first_seed + args.seeds)]
            ratios = [slo_ratio(r) for r in results]
            held = sum(r <= 1.0 for r in ratios)
            print(f"| {seed}:{number} | {label} | {held} / {len(ratios)} | "
                  f"{statistics.median(ratios):.3f} / {max(ratios):.3f} | "
                  f"{window_summary(results, TPOT, 'tpot_target_ms', 3)} | "
                  f"{window_summary(results, TTFT, 'ttft_target_ms', 1)} |", flush=True)
        print(f"case {seed}:{number}: {what}", file=sys.stderr, flush=True)


if __name__ == "__main__":
    main()
