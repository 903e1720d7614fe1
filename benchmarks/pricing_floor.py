"""How much integer-programming work a proof within 1 % needs on a coupled fleet (issue 15).

Usage: python benchmarks/pricing_floor.py --coupled 50 [--cap 10] [--cache DIR] [--json FILE]

The price decomposition (docs/method.md, O.8) proves its gap with a bound L (the whole LP's
optimum z_LP, O24, or the Lagrangian bound O20 from the models' pricing programs) and a plan of
the fleet built from the models' plans. This script measures the floor of that work on
`solve_scaling.py`'s coupled fleet: it solves the whole LP once (its duals are the prices), then
each model's pricing program at those prices alone, on one thread, to 0.1 % or `--cap` CPU
seconds, recording every improving plan (CPU time, priced value) and HiGHS's dual bound over
time. From those runs it prints, for a uniform time T per model, the Lagrangian bound L(T) and
the value an ideal master would reach from the plans found by T (each model's best priced plan
less the limits at their prices: the master fitting the inventories exactly, which it cannot
beat), and then, for bounds reachable early, the least CPU time a proof within 1 % needs when each
model stops at the best moment (chosen in hindsight, greedily by dollars gained per CPU second).
Both are optimistic: a real schedule knows neither when a model's next plan comes nor whether
the master can fit the plans. The coefficients and programs, built before any of this, are timed
apart. Reported in docs/performance.md.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from solve_scaling import coupled_fleet  # noqa: E402

from pdopt.optimize.decompose import model_names  # noqa: E402
from pdopt.optimize.lagrange import Block, Prices  # noqa: E402
from pdopt.optimize.solver import Deadline  # noqa: E402
from pdopt.optimize.whole_lp import solve_whole_lp  # noqa: E402
from pdopt.plan import Objective  # noqa: E402

# HiGHS's dual bound is sampled at most this often (CPU seconds) from its interrupt callback.
BOUND_SAMPLE_S = 0.02
# The pricing programs are solved to this relative gap (or the cap).
PRICING_GAP = 0.001
# The proof asked for (issue 15).
PROOF_GAP = 0.01
# HiGHS's own (wall-clock) limit, as a multiple of the CPU cap: only a backstop.
WALL_LIMIT_PER_CAP = 20.0
# Uniform times per model tabled, CPU seconds.
TIMES_S = (0.1, 0.2, 0.3, 0.5, 0.75, 1.0, 1.5, 2.0, 3.0, 5.0, 10.0)


def run_pricing(block: Block, prices: Prices, cap_s: float) -> dict[str, Any]:
    """One pricing program at `prices`, one thread, to PRICING_GAP or `cap_s` CPU seconds: its
    improving plans (CPU s, priced value) and its dual bound over time (CPU s, bound)."""
    block._set(prices, block.limits)
    highs = block.session.highs
    # the cap is on CPU time (stopped from the callback): a wall-clock limit would cut the
    # programs short on a loaded machine
    for option, value in (("threads", 1), ("time_limit", WALL_LIMIT_PER_CAP * cap_s),
                          ("mip_rel_gap", PRICING_GAP)):
        highs.setOptionValue(option, value)
    plans: list[tuple[float, float]] = []
    bounds: list[tuple[float, float]] = []
    started = time.process_time()

    def improved(event: Any) -> None:
        plans.append((time.process_time() - started,
                      float(event.data_out.objective_function_value)))

    def tick(event: Any) -> None:
        now = time.process_time() - started
        if not bounds or now - bounds[-1][0] > BOUND_SAMPLE_S:
            bounds.append((now, float(event.data_out.mip_dual_bound)))
        if now > cap_s:
            event.interrupt()

    highs.cbMipImprovingSolution.subscribe(improved)
    highs.cbMipInterrupt.subscribe(tick)
    highs.run()
    bounds.append((time.process_time() - started, float(highs.getInfo().mip_dual_bound)))
    return {"plans": plans, "bounds": bounds}


def uniform_rows(runs: dict[str, dict[str, Any]], held: float, lp: float
                 ) -> list[tuple[float, float, float, float, float]]:
    """For each T of TIMES_S: CPU s in all, L(T), the ideal plan's value and its proven gap
    against the better of L(T) and z_LP."""
    rows = []
    for t in TIMES_S:
        bound = plan = cpu = 0.0
        for run in runs.values():
            bounds = [b for s, b in run["bounds"] if s <= t]
            bound += bounds[-1] if bounds else run["bounds"][0][1]
            values = [v for s, v in run["plans"] if s <= t]
            plan += min(values) if values else float("inf")
            cpu += min(t, run["bounds"][-1][0])
        lagrangian, ideal = bound - held, plan - held
        rows.append((t, cpu, lagrangian, ideal, ideal / max(lagrangian, lp) - 1.0))
    return rows


def least_cpu_s(runs: dict[str, dict[str, Any]], target: float) -> float:
    """The least CPU time, stopping each model at one of its improving plans (chosen greedily
    by dollars gained per CPU second, in hindsight), for plans whose priced values sum to at
    most `target`; inf when even the last plans do not."""
    steps: dict[str, list[tuple[float, float]]] = {}
    for name, run in runs.items():
        best, kept = float("inf"), []
        for s, value in run["plans"]:
            if value < best:
                best = value
                kept.append((s, value))
        steps[name] = kept
    if any(not kept for kept in steps.values()):
        return float("inf")
    at = dict.fromkeys(steps, 0)
    total = sum(kept[0][1] for kept in steps.values())
    cpu = sum(kept[0][0] for kept in steps.values())
    while total > target:
        best_step: tuple[float, str, int] | None = None
        for name, kept in steps.items():
            k = at[name]
            for j in range(k + 1, len(kept)):
                rate = (kept[k][1] - kept[j][1]) / max(kept[j][0] - kept[k][0], 1e-6)
                if best_step is None or rate > best_step[0]:
                    best_step = (rate, name, j)
        if best_step is None:
            return float("inf")
        _, name, j = best_step
        k = at[name]
        total -= steps[name][k][1] - steps[name][j][1]
        cpu += steps[name][j][0] - steps[name][k][0]
        at[name] = j
    return cpu


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--coupled", type=int, default=50, help="models in the fleet")
    parser.add_argument("--cap", type=float, default=10.0,
                        help="CPU seconds per pricing program at most")
    parser.add_argument("--cache", type=Path, default=None,
                        help="folder of solve_scaling.py's cached fleets")
    parser.add_argument("--json", type=Path, default=None,
                        help="write every program's run to this file")
    args = parser.parse_args()
    scenario, counts = coupled_fleet(args.coupled, 6, 3, 3, cache=args.cache)
    names = model_names(scenario)
    started = time.perf_counter()
    blocks = {name: Block(scenario, name, Objective.COST) for name in names}
    coefficients_s = sum(block.data_seconds or 0.0 for block in blocks.values())
    parts = [block.lp() for block in blocks.values()]
    built_s = time.perf_counter() - started
    started = time.perf_counter()
    relaxed = solve_whole_lp(scenario, parts, Deadline.after(600.0))
    if relaxed is None:
        raise SystemExit("the whole LP was not solved")
    lp_s = time.perf_counter() - started
    prices = Prices(gpu=relaxed.gpu_prices, budget=relaxed.budget_price)
    held = sum(prices.gpu.get(g, 0.0) * n for g, n in counts.items()) \
        + prices.budget * (scenario.budget_per_hour or 0.0)
    print(f"{args.coupled} models, inventories {counts}: programs and their LPs in {built_s:.1f} s "
          f"(coefficients {coefficients_s:.1f} s), whole LP {relaxed.value:,.2f} in {lp_s:.1f} s "
          f"(wall, one process), prices {({g: round(p, 4) for g, p in prices.gpu.items()})}")
    # one thread from here on: HiGHS's threads option must match its process-wide scheduler,
    # which the programs' LPs started with the default
    import highspy

    highspy.Highs.resetGlobalScheduler(True)
    runs = {}
    for name in names:
        runs[name] = run_pricing(blocks[name], prices, args.cap)
        print(f"  {name}: {runs[name]['bounds'][-1][0]:.2f} CPU-s, "
              f"{len(runs[name]['plans'])} plans", file=sys.stderr, flush=True)
    if args.json is not None:
        args.json.write_text(json.dumps(runs))
    print("\n| CPU-s per model | CPU-s in all | bound L(T) | ideal plan from T's plans "
          "| its proven gap (better of L(T) and z_LP) |")
    print("|---|---|---|---|---|")
    rows = uniform_rows(runs, held, relaxed.value)
    for t, cpu, lagrangian, ideal, gap in rows:
        print(f"| {t:g} | {cpu:.1f} | {lagrangian:,.1f} | {ideal:,.1f} | {100 * gap:.2f} % |")
    print("\n| bound | from | least CPU-s for plans within 1 % of it (hindsight) |")
    print("|---|---|---|")
    early = [(relaxed.value, "whole LP")] + [(row[2], f"L({row[0]:g} s)") for row in rows
                                              if row[0] <= 0.3]
    for bound, source in early:
        need = least_cpu_s(runs, (1 + PROOF_GAP) * bound + held)
        print(f"| {bound:,.1f} | {source} | {need:.1f} |")
    sizes = np.array([run["bounds"][-1][0] for run in runs.values()])
    print(f"\npricing programs: median {np.median(sizes):.2f} CPU-s, max {sizes.max():.2f} "
          f"to 0.1 % or the cap ({args.cap:g} s)")


if __name__ == "__main__":
    main()
