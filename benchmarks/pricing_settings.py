"""What one pricing program of a coupled fleet costs in HiGHS, under several settings (issue 15).

Usage: python benchmarks/pricing_settings.py --coupled 50 [--cache DIR] [--cap 5] [--only LABEL]

The price decomposition (docs/method.md, O.8) proves its gap with the models' pricing programs:
their bounds make the Lagrangian bound L (O20) and their plans the fleet's plan. This script
takes `solve_scaling.py`'s coupled fleet, solves its whole LP once (O24; its duals are the
prices) and then solves every model's pricing program at those prices, cold and on one thread,
under each HiGHS setting of SETTINGS: to a relative gap, at the root node only, without some or
all of HiGHS's primal heuristics, and with the integer columns kept only within 1 % of the
program's LP by reduced cost (the others fixed at 0; its bound is then the lesser of HiGHS's and
the LP's value plus that 1 %, which bounds every plan using a fixed column). For each setting it
prints the CPU time in all, L (the programs' bounds, each at least its LP value, less the
inventories at their prices) and the sum of the plans less the same, which a master could reach
only if the plans fitted the inventories. Reported in docs/performance.md.
"""

from __future__ import annotations

import argparse
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

NO_HEURISTICS = {"mip_heuristic_effort": 0.0, "mip_heuristic_run_feasibility_jump": False,
                 "mip_heuristic_run_rins": False, "mip_heuristic_run_rens": False,
                 "mip_heuristic_run_root_reduced_cost": False}
# (label, relative gap, HiGHS options, integer columns kept within this share of the LP value by
# reduced cost, or None: all kept)
SETTINGS: list[tuple[str, float, dict[str, Any], float | None]] = [
    ("to 0.5 %", 0.005, {}, None),
    ("to 1 %", 0.01, {}, None),
    ("to 2 %", 0.02, {}, None),
    ("root node only, to 2 %", 0.02, {"mip_max_nodes": 1}, None),
    ("root node only, no RINS", 0.02, {"mip_max_nodes": 1, "mip_heuristic_run_rins": False},
     None),
    ("10 nodes, to 1 %", 0.01, {"mip_max_nodes": 10}, None),
    ("root node, no heuristic (a bound only)", 0.02, {"mip_max_nodes": 1, **NO_HEURISTICS}, None),
    ("to 0.5 %, columns within 1 % by reduced cost", 0.005, {}, 0.01),
]


def solve_one(source: Any, gap: float, options: dict[str, Any], keep: float | None,
              cap_s: float) -> tuple[float, float | None, float]:
    """One program (a copy of `source`'s), cold, on one thread: CPU seconds, its plan's value
    (None: no plan) and its bound (at least its LP value)."""
    import highspy

    lp = source.getLp()
    as_lp = source.getLp()
    started = time.process_time()
    relaxed = highspy.Highs()
    relaxed.setOptionValue("output_flag", False)
    relaxed.setOptionValue("threads", 1)
    as_lp.integrality_ = []
    relaxed.passModel(as_lp)
    relaxed.run()
    lp_value = relaxed.getInfo().objective_function_value
    lp_seconds = time.process_time() - started
    highs = highspy.Highs()
    highs.setOptionValue("output_flag", False)
    highs.passModel(lp)
    for option, value in {"threads": 1, "mip_rel_gap": gap, "time_limit": cap_s,
                          **options}.items():
        highs.setOptionValue(option, value)
    ceiling = np.inf
    if keep is not None:
        solution = relaxed.getSolution()
        x, reduced = np.asarray(solution.col_value), np.asarray(solution.col_dual)
        integer = np.array([int(k) != 0 for k in lp.integrality_])
        lower = np.asarray(lp.col_lower_)
        fixed = np.where(integer & (x < 1e-6) & (reduced > keep * lp_value)
                         & (lower == 0.0))[0].astype(np.int32)
        highs.changeColsBounds(len(fixed), fixed, np.zeros(len(fixed)), np.zeros(len(fixed)))
        ceiling = lp_value + keep * lp_value  # any plan using a fixed column costs more
    started = time.process_time()
    if highs.run() != highspy.HighsStatus.kOk and highs.getModelStatus() not in (
            highspy.HighsModelStatus.kTimeLimit, highspy.HighsModelStatus.kSolutionLimit):
        raise SystemExit(f"HiGHS failed: {highs.modelStatusToString(highs.getModelStatus())}")
    info = highs.getInfo()
    plan = info.objective_function_value if info.primal_solution_status == 2 else None
    bound = max(min(info.mip_dual_bound, ceiling), lp_value)
    # the relaxation counts only where the setting needs it
    return time.process_time() - started + (lp_seconds if keep is not None else 0.0), plan, bound


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--coupled", type=int, default=50, help="models in the fleet")
    parser.add_argument("--cap", type=float, default=5.0, help="seconds per program at most")
    parser.add_argument("--cache", type=Path, default=None,
                        help="folder of solve_scaling.py's cached fleets")
    parser.add_argument("--only", default=None, help="only the settings whose label has this")
    args = parser.parse_args()
    scenario, counts = coupled_fleet(args.coupled, 6, 3, 3, cache=args.cache)
    names = model_names(scenario)
    blocks = {name: Block(scenario, name, Objective.COST) for name in names}
    relaxed = solve_whole_lp(scenario, [block.lp() for block in blocks.values()],
                             Deadline.after(600.0))
    if relaxed is None:
        raise SystemExit("the whole LP was not solved")
    prices = Prices(gpu=relaxed.gpu_prices, budget=relaxed.budget_price)
    held = sum(prices.gpu.get(g, 0.0) * n for g, n in counts.items()) \
        + prices.budget * (scenario.budget_per_hour or 0.0)
    programs = []
    for block in blocks.values():
        block._set(prices, block.limits)
        programs.append(block.session.highs)
    sizes = [(lp.num_col_, sum(int(k) != 0 for k in lp.integrality_), lp.num_row_)
             for lp in (highs.getLp() for highs in programs)]
    print(f"{args.coupled} models, inventories {counts}, whole LP {relaxed.value:,.2f}, prices "
          f"{({g: round(p, 4) for g, p in prices.gpu.items()})}; programs of "
          f"{min(s[0] for s in sizes)}-{max(s[0] for s in sizes)} columns "
          f"({min(s[1] for s in sizes)}-{max(s[1] for s in sizes)} integer), "
          f"{min(s[2] for s in sizes)}-{max(s[2] for s in sizes)} rows; one thread, cold, "
          f"at most {args.cap:g} s each\n")
    # one thread from here on: HiGHS's threads option must match its process-wide scheduler,
    # which the programs' LPs started with the default
    import highspy

    highspy.Highs.resetGlobalScheduler(True)
    print("| HiGHS setting | CPU-s in all | L | plans | gap |")
    print("|---|---|---|---|---|")
    for label, gap, options, keep in SETTINGS:
        if args.only and args.only not in label:
            continue
        cpu, plans, bounds, missing = 0.0, 0.0, 0.0, 0
        for highs in programs:
            seconds, plan, bound = solve_one(highs, gap, options, keep, args.cap)
            cpu += seconds
            bounds += bound
            if plan is None:
                missing += 1
            else:
                plans += plan
        lagrangian = bounds - held
        shown = f"{plans - held:,.1f}" if not missing else f"({missing} without a plan)"
        proven = f"{100 * (plans - bounds) / (plans - held):.2f} %" if not missing else "-"
        if options.get("mip_heuristic_effort") == 0.0:
            shown, proven = "-", "-"
        print(f"| {label} | {cpu:.1f} | {lagrangian:,.1f} | {shown} | {proven} |", flush=True)


if __name__ == "__main__":
    main()
