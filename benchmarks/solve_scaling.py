"""Solve speed and scale: build time, solve time and gap for growing synthetic fleets, and the
paper's scenario end to end (`pdopt solve`, process start to exit).

    python benchmarks/solve_scaling.py [--quick] [--time-limit 60] [--mip-gap 0.01]
    python benchmarks/solve_scaling.py --coupled 50 [--gpu-types 6 --sizes 3 --time-limit 60]
        [--cache DIR] [--dask-workers 2] [--only decomposition]

Prints a table. Targets (issue 3, on a 2-core machine): the paper's scenario end to end under 1 s;
the largest fleet (50 models x 8 GPU types x 4 sizes per role x 3 classes per model) to a proven
1% gap within 60 s. Each fleet goes through `pdopt.solve` as a user's would (docs/method.md, O.2);
`total_s` is the wall time of that call, `build_s` and `solve_s` its parts.

`--coupled MODELS` (issue 15): the fleet with inventories that bind, the monolithic way beside the
price decomposition (O.8) in the same run; targets 50 models within 1% in <= 10 s, 200 in <= 60 s
(2 cores), 500 on a local Dask cluster of 2 workers (`--dask-workers 2`) reported. `--cache DIR`
keeps each fleet with its inventories (finding them solves the fleet without inventories first).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from fleetgen import fleet  # noqa: E402

from pdopt.optimize import build_fleet_data, create_model, solve  # noqa: E402
from pdopt.scenario.loading import scenario_from_data  # noqa: E402
from pdopt.scenario.schema import Scenario  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
# From this many models on, a coupled fleet's inventories come from its models' plans alone (the
# fleet's solve without inventories, 2,000 s for 500 models, left one model without a plan).
ALONE_FROM_MODELS = 300
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


def coupled_fleet(models: int, gpu_types: int, sizes: int, classes: int,
                  share: float = 0.7, cache: Path | None = None) -> tuple[Scenario, dict[str, int]]:
    """The fleet with inventories on the two GPU types it uses most when unconstrained, each at
    `share` of that use (so they bind; issue 15). The unconstrained use comes from a solve of
    the fleet without inventories (5% gap, not timed). `cache`: a folder keeping the fleet
    with its inventories between runs (the unconstrained solve of 200 models takes minutes)."""
    path = None if cache is None else \
        cache / f"coupled-{models}m-{gpu_types}g-{sizes}s-{classes}w-{share:g}.json"
    if path is not None and path.exists():
        saved = json.loads(path.read_text())
        return scenario_from_data(saved["scenario"]), saved["inventories"]
    data = fleet(models, gpu_types, sizes, classes, inventory=False)
    if models < ALONE_FROM_MODELS:
        free = solve(scenario_from_data(data), time_limit_s=max(120.0, 4.0 * models),
                     mip_gap=0.05)
        if not free.has_plan:
            raise SystemExit(f"the fleet without inventories has no plan: {free.diagnosis}")
        used = free.gpus_by_type
    else:  # (500 models: one had no plan in its share) the plans of the models alone
        used = _used_alone(scenario_from_data(data), 2.0 * models)
    use = sorted(used.items(), key=lambda kv: -kv[1])[:2]
    counts = {g: int(share * n) for g, n in use}
    for g, n in counts.items():
        data["gpus"][g]["count"] = n
    if path is not None:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps({"scenario": data, "inventories": counts}))
    return scenario_from_data(data), counts


def _used_alone(scenario: Scenario, seconds: float) -> dict[str, int]:
    """GPUs by type of the models' plans solved alone (5% gap), of the models with a plan."""
    from pdopt.optimize.decompose import solve_parts
    from pdopt.optimize.solver import Deadline
    from pdopt.plan import Objective, PlanTotals

    parts = solve_parts(scenario, Objective.COST, deadline=Deadline.after(seconds), mip_gap=0.05)
    plans = [part.plan for part in parts if part.plan is not None]
    if not plans:
        raise SystemExit("the fleet without inventories has no plan")
    print(f"inventories from {len(plans)} of {len(parts)} models alone", file=sys.stderr)
    return dict(PlanTotals.of([pool for plan in plans for pool in plan.pools]).gpus_by_type)


def compare_coupled(models: int, gpu_types: int, sizes: int, classes: int, time_limit: float,
                    mip_gap: float, cache: Path | None = None, dask_workers: int = 0,
                    only: str | None = None) -> None:
    """The monolithic way (models alone, then the whole program) beside the price decomposition
    (O.8), in the same run on the same fleet; with `dask_workers`, the decomposition prices on
    a local Dask cluster of that many worker processes (one thread each)."""
    import pdopt.optimize as optimize

    scenario, counts = coupled_fleet(models, gpu_types, sizes, classes, cache=cache)
    print(f"{models}m x {gpu_types}g x {sizes}s x {classes}w, inventories {counts} "
          f"(70% of unconstrained use), --time-limit {time_limit:g} --mip-gap {mip_gap:g}")
    header = ("method", "wall_s", "status", "gap", "cost", "bound", "load", "termination")
    print("  ".join(f"{h:>14}" for h in header))
    cluster = None
    if dask_workers:
        from distributed import LocalCluster

        cluster = LocalCluster(n_workers=dask_workers, threads_per_worker=1,
                               dashboard_address=None)
    methods = [m for m in ("monolithic", "decomposition") if only in (None, m)]
    try:
        for method in methods:
            optimize.PRICE_COUPLED_FLEETS = method == "decomposition"
            t0 = time.perf_counter()
            plan = solve(scenario, time_limit_s=time_limit, mip_gap=mip_gap,
                         dask_scheduler=cluster.scheduler_address
                         if cluster is not None and method == "decomposition" else None)
            wall = time.perf_counter() - t0
            gap = f"{100 * plan.mip_gap:.2f}%" if plan.mip_gap is not None else "-"
            name = f"{method} (dask {dask_workers})" if cluster and method != "monolithic" \
                else method
            cells = (name, f"{wall:.1f}", plan.status.value, gap,
                     f"{plan.cost_per_hour or 0:.2f}", f"{plan.dual_bound or 0:.2f}",
                     f"{os.getloadavg()[0]:.1f}",
                     plan.solver.termination if plan.solver else "-")
            print("  ".join(f"{c:>14}" for c in cells), flush=True)
    finally:
        optimize.PRICE_COUPLED_FLEETS = True
        if cluster is not None:
            cluster.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="only the small fleets")
    parser.add_argument("--time-limit", type=float, default=60.0)
    parser.add_argument("--mip-gap", type=float, default=0.01)
    parser.add_argument("--coupled", type=int, metavar="MODELS",
                        help="only a coupled fleet of MODELS models: monolithic beside the "
                             "price decomposition (O.8)")
    parser.add_argument("--gpu-types", type=int, default=6)
    parser.add_argument("--sizes", type=int, default=3)
    parser.add_argument("--cache", type=Path, metavar="DIR",
                        help="keep the coupled fleets (with their inventories) in DIR")
    parser.add_argument("--dask-workers", type=int, default=0,
                        help="price on a local Dask cluster of this many worker processes")
    parser.add_argument("--only", choices=["monolithic", "decomposition"])
    args = parser.parse_args()
    if args.coupled:
        compare_coupled(args.coupled, args.gpu_types, args.sizes, 3, args.time_limit,
                        args.mip_gap, args.cache, args.dask_workers, args.only)
        return

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
