"""Solve speed and scale: build time, solve time and gap for growing synthetic fleets, and the
paper's scenario end to end (`pdopt solve`, process start to exit).

    python benchmarks/solve_scaling.py [--quick] [--time-limit 60] [--mip-gap 0.01]

Prints a table. Targets (issue 3, on a 2-core machine): the paper's scenario end to end under 1 s;
the largest fleet (50 models x 8 GPU types x 4 sizes per role x 3 classes per model) to a proven
1% gap within 60 s. Each fleet goes through `pdopt.solve` as a user's would (docs/method.md, O.2);
`total_s` is the wall time of that call, `build_s` and `solve_s` its parts.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from fleetgen import fleet  # noqa: E402

from pdopt.optimize import build_fleet_data, create_model, solve  # noqa: E402
from pdopt.scenario.loading import scenario_from_data  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
PAPER = ROOT / "scenarios" / "paper-deepseek-v31-h200.yaml"


def end_to_end(repeats: int = 5) -> list[float]:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        subprocess.run([sys.executable, "-m", "pdopt", "solve", str(PAPER)], check=True,
                       capture_output=True)
        times.append(time.perf_counter() - start)
    return times


def run(models: int, gpu_types: int, sizes: int, classes: int, time_limit: float,
        mip_gap: float) -> dict[str, object]:
    """One fleet through `pdopt.solve` (model by model first, then the whole program if the
    inventories couple the models), timed end to end; the program's size for reference."""
    t0 = time.perf_counter()
    scenario = scenario_from_data(fleet(models, gpu_types, sizes, classes))
    t1 = time.perf_counter()
    plan = solve(scenario, time_limit_s=time_limit, mip_gap=mip_gap)
    t2 = time.perf_counter()
    model = create_model(build_fleet_data(scenario), "cost")
    return {
        "fleet": f"{models}m x {gpu_types}g x {sizes}s x {classes}w",
        "pools": len(model.POOLS), "int_vars": len(model.n),
        "cont_vars": len(model.r) + len(model.q) + len(model.v),
        "validate_s": t1 - t0, "build_s": plan.build_seconds, "solve_s": plan.solve_seconds,
        "total_s": t2 - t1, "status": plan.status, "gap": plan.mip_gap,
        "cost": plan.cost_per_hour,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="only the small fleets")
    parser.add_argument("--time-limit", type=float, default=60.0)
    parser.add_argument("--mip-gap", type=float, default=0.01)
    args = parser.parse_args()

    e2e = end_to_end()
    print(f"paper scenario, `pdopt solve` process start to exit: median "
          f"{statistics.median(e2e):.3f} s, min {min(e2e):.3f} s over {len(e2e)} runs "
          f"(target < 1 s)\n")

    sizes = [(1, 2, 1, 1), (5, 4, 2, 2), (10, 8, 4, 3), (25, 8, 4, 3), (50, 8, 4, 3)]
    if args.quick:
        sizes = sizes[:3]
    header = ("fleet", "pools", "int_vars", "cont_vars", "validate_s", "build_s", "solve_s",
              "total_s", "status", "gap", "cost")
    print("  ".join(f"{h:>12}" for h in header))
    for m, g, s, c in sizes:
        row = run(m, g, s, c, args.time_limit, args.mip_gap)
        cells = []
        for h in header:
            v = row[h]
            if isinstance(v, float):
                v = f"{100 * v:.3f}%" if h == "gap" else f"{v:.3f}"
            cells.append(f"{v!s:>12}")
        print("  ".join(cells), flush=True)


if __name__ == "__main__":
    main()
