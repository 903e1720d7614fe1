"""The TTFT percentile of Eq. Q8 against the simulator, one prefill pool alone (the figures in
docs/validation.md section 6, "The p90 under round-robin", and docs/method.md Eqs. Q8b-Q8c).

    python benchmarks/validate_percentile.py [--engine simulator|lindley] [--requests N]
                                             [--replications K] [--counts 1,2,3,6,12]
                                             [--utilizations 0.5,0.7,0.8,0.9,0.95] [--seed S]
    python benchmarks/validate_percentile.py --boundary-plans 2:1,1:21 [--plan-seeds 8]

One pool of n prefill instances with a flat 1,000 tokens/s, prompts of 1,000 tokens on average
(E[S] = 1 s): fixed, lognormal CV 0.5 or 1.0. Round-robin over n = 1, 2, 3, 6, 12 and, as the
control where each instance is an M/G/1 queue, random routing over 2 and 6. For each utilisation
rho the pool gets rho n requests/s; the p90 and p99 of the prefill part of TTFT (no overhead) are
measured and set beside two predictions:

- *before*: Eq. Q8 as it was, wait probability P_W = rho and conditional mean Wq / rho (Q5's
  mean wait);
- *after*: Eq. Q8 with Eqs. Q8b-Q8c (`pdopt.queueing.ttft_statistic_s`): Whitt's wait probability
  for smooth arrivals and the heavy-traffic conditional wait with its finite-load factor. Under
  random routing (and n = 1) both are the same M/G/1 model.

Engines: `simulator` runs pdopt's discrete-event simulator (`simulate_plan`, arrivals Poisson,
the simulator's own routing); `lindley` samples one instance's E_n/G/1 (M/G/1 for random)
waiting times exactly by Lindley's recursion W' = max(0, W + S - A), vectorised as W_k = X_k -
min_{j<=k} X_j over the partial sums X of S - A (the engine Eq. Q8c's factor was fitted on). Each
cell is K independent replications of N/K requests (warm-up 5 % of each run not measured); the
estimate is their mean and "se" the standard error from their spread (sd / sqrt(K)), the sampling
noise to read the ratios against. Seeded: the same command prints the same numbers.

`--boundary-plans` instead solves generated sizing scenarios of `validate_accuracy.py --section
sizing` (seed:number) with `queue: auto` and prints their plans' worst SLO ratio over 30-minute
simulations with seeds 1-8 (docs/validation.md section 6, the seed-to-seed table).
"""

from __future__ import annotations

import argparse
import math
import statistics
import sys
import time
from dataclasses import dataclass

import numpy as np

from pdopt import queueing
from pdopt.queueing import (
    ServiceMoments,
    lognormal_service_moments,
    mean_wait_s,
    service_moments,
    ttft_quantile_s,
    ttft_statistic_s,
)
from pdopt.scenario.loading import scenario_from_data
from pdopt.simulate import SimulationOptions, plan_from_counts, simulate_plan

TOKENS, TOKENS_PER_S = 1000, 1000.0  # E[S] = 1 s
LENGTHS = (("fixed", 0.0), ("lognormal 0.5", 0.5), ("lognormal 1.0", 1.0))
PERCENTILES = (90.0, 99.0)


@dataclass(frozen=True)
class Cell:
    routing: str
    count: int
    cv: float
    utilization: float


def moments(cv: float) -> ServiceMoments:
    """The service moments the sizing uses for these lengths (Eqs. Q1, Q2)."""
    if cv == 0:
        return service_moments([TOKENS], lambda _length: TOKENS_PER_S)
    return lognormal_service_moments(TOKENS, cv, lambda _length: TOKENS_PER_S)


def predictions_s(cell: Cell, percentile: float) -> tuple[float, float]:
    """(before, after): Eq. Q8 with P_W = rho and mean Wq / rho, and with Eqs. Q8b-Q8c."""
    m = moments(cell.cv)
    rate = cell.utilization / m.mean_s
    wait = mean_wait_s(cell.routing, rate, cell.count, m)
    before = ttft_quantile_s(wait, min(1.0, cell.utilization), m, percentile)
    return before, ttft_statistic_s(cell.routing, rate, cell.count, m, percentile)


def _scenario(cell: Cell):  # noqa: ANN202
    dist = ({"kind": "lognormal", "input_cv": cell.cv, "output_cv": 0.0} if cell.cv
            else {"kind": "fixed"})
    return scenario_from_data({
        "name": "percentile", "gpus": {"g": {"cost_per_hour": 1.0}},
        "instances": [
            {"name": "pre", "model": "m", "role": "prefill", "gpu": "g", "gpus_per_instance": 1,
             "prefill_tokens_per_s": TOKENS_PER_S},
            {"name": "dec", "model": "m", "role": "decode", "gpu": "g", "gpus_per_instance": 1,
             "tpot_ms_by_batch": {1: 1.0, 512: 1.0}},
        ],
        "workloads": [{"name": "w", "model": "m",
                       "requests_per_s": cell.utilization * cell.count * TOKENS_PER_S / TOKENS,
                       "input_tokens": TOKENS, "output_tokens": 2, "ttft_overhead_ms": 0,
                       "slo": {"ttft_ms": 1e7, "tpot_ms": 1e3}, "length_distribution": dist}],
    })


def simulated_s(cell: Cell, requests: int, seed: int) -> tuple[float, ...]:
    """p90, p99 and mean of one simulator run of about `requests` measured requests, seconds."""
    sc = _scenario(cell)
    rate = sc.workloads[0].rate_requests_per_s
    window = requests / rate
    res = simulate_plan(sc, plan_from_counts(sc, {"pre": cell.count, "dec": 1}),
                        SimulationOptions(duration_s=window, warmup_s=0.05 * window,
                                          cooldown_s=10.0, seed=seed,
                                          routing=cell.routing))  # type: ignore[arg-type]
    ttft = res.workload("w").ttft_ms
    return ttft.p90 / 1e3, ttft.p99 / 1e3, ttft.mean / 1e3


def lindley_s(cell: Cell, requests: int, seed: int) -> tuple[float, ...]:
    """p90, p99 and mean of W + S of one instance by Lindley's recursion (E_n or M arrivals)."""
    rng = np.random.default_rng(seed)
    n = int(requests * 1.05)
    rate = cell.utilization * TOKENS_PER_S / TOKENS  # per instance
    if cell.routing == "round-robin":
        gaps = rng.gamma(cell.count, 1.0 / (cell.count * rate), n)
    else:
        gaps = rng.exponential(1.0 / rate, n)
    if cell.cv == 0:
        lengths = np.full(n, float(TOKENS))
    else:
        sigma2 = math.log1p(cell.cv * cell.cv)
        lengths = np.maximum(np.rint(rng.lognormal(math.log(TOKENS) - sigma2 / 2,
                                                   math.sqrt(sigma2), n)), 1.0)
    service = lengths / TOKENS_PER_S
    walk = np.concatenate([[0.0], np.cumsum(service[:-1] - gaps[1:])])
    wait = walk - np.minimum.accumulate(walk)
    total = (wait + service)[n - requests:]
    return (*(float(np.quantile(total, p / 100.0, method="inverted_cdf")) for p in PERCENTILES),
            float(total.mean()))


def mean_predictions_s(cell: Cell) -> tuple[float, float]:
    """Mean prefill time by Q5 (Wq + E[S], what mean targets are sized with) and by the mean
    Eqs. Q8b-Q8c imply (P_W E[W | W > 0] + E[S])."""
    m = moments(cell.cv)
    rate = cell.utilization / m.mean_s
    implied = queueing.percentile_wait(cell.routing, rate, cell.count, m)[0]
    return mean_wait_s(cell.routing, rate, cell.count, m) + m.mean_s, implied + m.mean_s


def summary_row(routing: str, lengths: str, percentile: float,
                pairs: list[tuple[float, float]]) -> str:
    """One summary line: min / median / max of the before and after ratios, and their mean
    absolute log error."""
    cols = []
    for i in (0, 1):
        xs = sorted(pair[i] for pair in pairs)
        cols.append(f"{xs[0]:.3f} / {statistics.median(xs):.3f} / {xs[-1]:.3f}")
    err = [100 * statistics.fmean(abs(math.log(pair[i])) for pair in pairs) for i in (0, 1)]
    return (f"| {routing} | {lengths} | p{percentile:g} | {len(pairs)} | {cols[0]} | {cols[1]} | "
            f"{err[0]:.1f}% / {err[1]:.1f}% |")


def grid(counts: list[int], random_counts: list[int], utilizations: list[float]) -> list[Cell]:
    cells: list[Cell] = []
    for routing, ns in (("round-robin", counts), ("random", random_counts)):
        for _name, cv in LENGTHS:
            for n in ns:
                cells.extend(Cell(routing, n, cv, rho) for rho in utilizations)
    return cells


def boundary_plans(cases: str, seeds: int) -> None:
    """The worst SLO ratio (`slo_ratio`, <= 1: every target met) of the `queue: auto` plan of
    generated sizing scenarios (`validate_accuracy.py --section sizing --scenarios 30`, given as
    seed:number) over 30-minute simulations with seeds 1..`seeds`: min / median / max / sd."""
    from validate_accuracy import _with_options, sizing_scenario

    from pdopt.optimize import solve
    from pdopt.simulate.verify import slo_ratio

    print("| scenario | plan (decode+prefill) | worst SLO ratio: min / median / max (sd) | "
          "worst TTFT ratio: median |")
    print("|---|---|---|---|")
    for case in cases.split(","):
        seed, number = (int(x) for x in case.split(":"))
        scenario_seeds = np.random.default_rng(seed).integers(0, 2**31, 30)
        routing = "round-robin" if (number - 1) % 2 == 0 else "random"
        base, _what = sizing_scenario(np.random.default_rng(scenario_seeds[number - 1]), routing)
        sc = _with_options(base, queue="auto")
        plan = solve(sc)
        worst, ttft = [], []
        for k in range(1, seeds + 1):
            res = simulate_plan(sc, plan, SimulationOptions(duration_s=1800, seed=k,
                                                            routing=routing))  # type: ignore
            worst.append(slo_ratio(res))
            ttft.append(max(w.ttft_at_target_ms / w.ttft_target_ms for w in res.workloads))
        counts = "+".join(str(c) for _, c in sorted(plan.instances_by_role.items()))
        print(f"| seed {seed} #{number} | {counts} | {min(worst):.3f} / "
              f"{statistics.median(worst):.3f} / {max(worst):.3f} ({statistics.stdev(worst):.3f})"
              f" | {statistics.median(ttft):.3f} |", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--engine", choices=("simulator", "lindley"), default="simulator")
    parser.add_argument("--requests", type=int, default=1_000_000,
                        help="Measured requests per cell (over all replications).")
    parser.add_argument("--replications", type=int, default=4)
    parser.add_argument("--counts", default="1,2,3,6,12", help="Round-robin pool sizes.")
    parser.add_argument("--random-counts", default="2,6", help="Random-routing pool sizes.")
    parser.add_argument("--utilizations", default="0.5,0.7,0.8,0.9,0.95")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--conditional-wait-factor", type=float, default=None,
                        help="k of Eq. Q8c for the 'after' column (default: pdopt's, 3/4).")
    parser.add_argument("--boundary-plans", default="",
                        help="Instead of the grid: seed:number,... of generated sizing scenarios "
                             "whose auto plan is simulated over seeds 1..--plan-seeds.")
    parser.add_argument("--plan-seeds", type=int, default=8)
    parser.add_argument("--means", action="store_true",
                        help="Also print the mean: Q5's and the one Eqs. Q8b-Q8c imply.")
    args = parser.parse_args()
    if args.boundary_plans:
        boundary_plans(args.boundary_plans, args.plan_seeds)
        return
    if args.conditional_wait_factor is not None:
        queueing.CONDITIONAL_WAIT_FACTOR = args.conditional_wait_factor
    ints = lambda text: [int(x) for x in text.split(",") if x]  # noqa: E731
    cells = grid(ints(args.counts), ints(args.random_counts),
                 [float(x) for x in args.utilizations.split(",") if x])
    measure = simulated_s if args.engine == "simulator" else lindley_s
    per_run = args.requests // args.replications
    started = time.perf_counter()
    print(f"## TTFT percentiles of one prefill pool: Eq. Q8 before and after Eqs. Q8b-Q8c "
          f"({args.engine}, {args.replications} x {per_run:,} requests per cell, seed {args.seed}, "
          f"k = {queueing.CONDITIONAL_WAIT_FACTOR:g})\n")
    print("E[S] = 1 s; times in s; ratio = predicted / measured; se = the measurement's standard "
          "error (relative).\n")
    print("| routing | n | lengths | rho | p90 measured (se) | before | after | ratio before | "
          "ratio after | p99 measured (se) | ratio before | ratio after |")
    print("|---|---|---|---|---|---|---|---|---|---|---|---|")
    ratios: dict[tuple[str, str, float], list[tuple[float, float]]] = {}
    mean_rows = []
    for cell in cells:
        runs = [measure(cell, per_run, args.seed * 1000 + k) for k in range(args.replications)]
        means = [r[2] for r in runs]
        mean = statistics.fmean(means)
        q5, implied = mean_predictions_s(cell)
        se = statistics.stdev(means) / math.sqrt(len(means)) / mean if len(means) > 1 else 0.0
        mean_rows.append(f"| {cell.routing} | {cell.count} | {cell.cv:g} | {cell.utilization:.2f} "
                         f"| {mean:.3f} ({100 * se:.1f}%) | {q5:.3f} | {q5 / mean:.3f} | "
                         f"{implied:.3f} | {implied / mean:.3f} |")
        row = [cell.routing, str(cell.count), dict((cv, name) for name, cv in LENGTHS)[cell.cv],
               f"{cell.utilization:.2f}"]
        for i, p in enumerate(PERCENTILES):
            values = [r[i] for r in runs]
            est = statistics.fmean(values)
            se = statistics.stdev(values) / math.sqrt(len(values)) / est if len(values) > 1 else 0
            before, after = predictions_s(cell, p)
            key = (cell.routing, row[2], p)
            ratios.setdefault(key, []).append((before / est, after / est))
            if p == 90.0:
                row += [f"{est:.3f} ({100 * se:.1f}%)", f"{before:.3f}", f"{after:.3f}",
                        f"{before / est:.3f}", f"{after / est:.3f}"]
            else:
                row += [f"{est:.3f} ({100 * se:.1f}%)", f"{before / est:.3f}",
                        f"{after / est:.3f}"]
        print("| " + " | ".join(row) + " |", flush=True)
    print("\n| routing | lengths | percentile | cells | ratio before: min / median / max | "
          "ratio after: min / median / max | mean abs log error before / after |")
    print("|---|---|---|---|---|---|---|")
    for (routing, lengths, p), pairs in ratios.items():
        print(summary_row(routing, lengths, p, pairs))
    for routing in ("round-robin", "random"):
        for p in PERCENTILES:
            pairs = [x for (r, _l, q), xs in ratios.items() if r == routing and q == p for x in xs]
            if pairs:
                print(summary_row(routing, "all", p, pairs))
    if args.means:
        print("\n| routing | n | lengths CV | rho | mean measured (se) | Q5 | ratio | "
              "implied by Q8b-Q8c | ratio |")
        print("|---|---|---|---|---|---|---|---|---|")
        print("\n".join(mean_rows))
    print(f"\n({time.perf_counter() - started:.0f} s)", file=sys.stderr)


if __name__ == "__main__":
    main()
