"""Accuracy of the analytic method against the simulator (the figures in docs/validation.md).

    python benchmarks/validate_accuracy.py [--section paper|queue|generated|all]
                                           [--hours H] [--scenarios N] [--seed S]

Sections, each printed as markdown tables:

- paper: the paper's DeepSeek-V3.1 8xH200 case. Simulated mean TTFT/TPOT of 3P4D and 3P3D at
  4.0-5.0 M tokens/minute next to the analytic prediction; the highest load each fleet holds in
  simulation next to the paper's measurements (3P4D ~4.8 M, 3P3D ~3.6 M, TPOT-bound) and the
  model's capacity (4.875 M, 3.98 M).
- queue: one prefill pool alone; simulated mean TTFT against M/M/1, M/D/1 and M/G/1 predictions
  over utilisation, prompt-length CV and routing: where each model is conservative or optimistic.
- generated: random scenarios (load, lengths and their CVs, SLOs, queue model); each is solved
  (`pdopt.optimize.solve`), its plan simulated with its one-fewer neighbours: how often the plan
  meets its SLOs in simulation, and how often it is also the smallest that does.

Everything is seeded; the same command prints the same numbers.
"""

from __future__ import annotations

import argparse
import math
import sys
import time
from collections import defaultdict
from pathlib import Path
from typing import Any

import numpy as np

from pdopt.capacity import instance_decode_curve
from pdopt.errors import PdoptError
from pdopt.queueing import service_second_moment_s2, ttft_at_load_ms
from pdopt.scenario.loading import load_scenario, scenario_from_data
from pdopt.scenario.schema import Scenario
from pdopt.simulate import SimulationOptions, plan_from_counts, simulate_plan
from pdopt.simulate.verify import verify_plan

ROOT = Path(__file__).resolve().parents[1]
PAPER = ROOT / "scenarios" / "paper-deepseek-v31-h200.yaml"
PRE, DEC = "ds-prefill-8xh200", "ds-decode-8xh200"
# The paper's measurements (arXiv 2603.04716): tokens/minute each fleet held within both targets.
PAPER_MEASURED = {"3P4D": (4.8e6, "both targets met"), "3P3D": (3.6e6, "TPOT-bound")}


def with_workload(scenario: Scenario, **fields: Any) -> Scenario:
    """The scenario with fields of its (only) workload replaced, validated again."""
    data = scenario.model_dump(exclude_none=True)
    w = data["workloads"][0]
    for key in ("requests_per_s", "tokens_per_s", "tokens_per_minute"):
        if key in fields:
            for other in ("requests_per_s", "tokens_per_s", "tokens_per_minute"):
                w.pop(other, None)
    w.update(fields)
    return scenario_from_data(data)


def analytic_prediction(scenario: Scenario, n_pre: int, n_dec: int) -> tuple[float, float]:
    """The method's mean TTFT (M/M/1, or the scenario's queue model) and TPOT at the scenario's
    load on n_pre + n_dec instances (Eqs. P3/P4 and D1 with Little's law)."""
    w = scenario.workloads[0]
    pre, dec = scenario.instance(PRE), scenario.instance(DEC)
    rate = w.rate_requests_per_s
    tp = float(pre.prefill_tokens_per_s)  # type: ignore[arg-type]
    s = w.input_tokens / tp
    queue, scv = scenario.queue_of(w)
    c2 = {"mm1": 1.0, "md1": 0.0}.get(queue, scv or 0.0)
    ttft = ttft_at_load_ms(rates_per_s=[rate / n_pre], services_s=[s],
                           second_moments_s2=[service_second_moment_s2(s, c2)], own_service_s=s,
                           overhead_ms=w.ttft_overhead_ms)
    curve = instance_decode_curve(dec, w.input_tokens + w.output_tokens / 2)
    batch = curve.batch_at_throughput(rate * w.output_tokens / n_dec)
    return ttft, curve.tpot_at(batch)


def simulate_counts(scenario: Scenario, n_pre: int, n_dec: int, options: SimulationOptions):
    plan = plan_from_counts(scenario, {PRE: n_pre, DEC: n_dec})
    return simulate_plan(scenario, plan, options)


def highest_load_held(scenario: Scenario, n_pre: int, n_dec: int, options: SimulationOptions,
                      lo: float = 2.0e6, hi: float = 6.5e6, tol: float = 0.025e6) -> float:
    """Largest tokens/minute at which the fleet meets both mean targets in simulation
    (bisection; the same seed at every load)."""
    def holds(tpm: float) -> bool:
        return simulate_counts(with_workload(scenario, tokens_per_minute=tpm), n_pre, n_dec,
                               options).meets_slo
    if not holds(lo):
        return math.nan
    while hi - lo > tol:
        mid = (lo + hi) / 2
        lo, hi = (mid, hi) if holds(mid) else (lo, mid)
    return lo


def section_paper(hours: float, seed: int) -> None:
    paper = load_scenario(PAPER)
    variants = [
        ("fixed lengths, round-robin", paper, "round-robin"),
        ("fixed lengths, random routing", paper, "random"),
        ("lognormal lengths CV 0.5, round-robin",
         with_workload(paper, length_distribution={"kind": "lognormal", "input_cv": 0.5,
                                                   "output_cv": 0.5}), "round-robin"),
    ]
    options = {r: SimulationOptions(duration_s=3600 * hours, seed=seed, routing=r)  # type: ignore[arg-type]
               for r in ("round-robin", "random")}
    print("## Paper case: simulated vs predicted at 4.0-5.0 M tokens/minute\n")
    print("Targets: mean TTFT 2000 ms, mean TPOT 20 ms. Predicted: the method's M/M/1 TTFT and "
          "table TPOT at the load. Simulated means for three variants: fixed lengths with "
          "round-robin routing / fixed lengths with random routing / lognormal lengths (CV 0.5) "
          f"with round-robin; {hours:g} h each, seed {seed}.\n")
    print("| fleet | M tokens/min | TTFT predicted | TTFT simulated | TPOT predicted | "
          "TPOT simulated | TPOT p90, fixed RR | both targets met |")
    print("|---|---|---|---|---|---|---|---|")
    for fleet, (n_pre, n_dec) in (("3P4D", (3, 4)), ("3P3D", (3, 3))):
        for tpm in (4.0e6, 4.2e6, 4.4e6, 4.6e6, 4.8e6, 5.0e6):
            runs = [simulate_counts(with_workload(sc, tokens_per_minute=tpm), n_pre, n_dec,
                                    options[routing]).workloads[0]
                    for _, sc, routing in variants]
            pt, pp = analytic_prediction(with_workload(paper, tokens_per_minute=tpm), n_pre,
                                         n_dec)
            print(f"| {fleet} | {tpm / 1e6:.1f} | {pt:,.0f} | "
                  + " / ".join(f"{r.ttft_ms.mean:,.0f}" for r in runs) + f" | {pp:.2f} | "
                  + " / ".join(f"{r.tpot_ms.mean:.2f}" for r in runs)
                  + f" | {runs[0].tpot_ms.p90:.2f} | "
                  + "/".join("yes" if r.meets_slo else "no" for r in runs) + " |")
    print("\n## Paper case: highest load held in simulation\n")
    print("| fleet | paper measured | model capacity (Eq. C4) | simulated, fixed lengths RR | "
          "simulated, fixed random | simulated, lognormal CV 0.5 RR | binding in simulation |")
    print("|---|---|---|---|---|---|---|")
    from pdopt.ratio import ratio_from_scenario, sustainable_tokens_per_s
    r = ratio_from_scenario(paper)
    for fleet, (n_pre, n_dec) in (("3P4D", (3, 4)), ("3P3D", (3, 3))):
        model, bottleneck = sustainable_tokens_per_s(
            n_pre, n_dec, input_tokens=r.input_tokens, output_tokens=r.output_tokens,
            prefill_tokens_per_s=r.prefill_tokens_per_s,
            decode_tokens_per_s=r.decode_tokens_per_s)
        held = [highest_load_held(sc, n_pre, n_dec, options[routing])
                for _, sc, routing in variants]
        at = simulate_counts(with_workload(paper, tokens_per_minute=held[0] + 0.05e6), n_pre,
                             n_dec, options["round-robin"]).workloads[0]
        binding = ", ".join(k for k, ok in (("TTFT", at.meets_ttft), ("TPOT", at.meets_tpot))
                            if not ok) or "-"
        measured, note = PAPER_MEASURED[fleet]
        print(f"| {fleet} | {measured / 1e6:.1f} M ({note}) | {60 * model / 1e6:.3f} M "
              f"({bottleneck}-bound) | " + " | ".join(f"{h / 1e6:.2f} M" for h in held)
              + f" | {binding} |")


def section_queue(hours: float, seed: int) -> None:
    """Prefill alone (one-token outputs): simulated mean TTFT vs the three queue models."""
    paper = load_scenario(PAPER)
    print("\n## Prefill queueing: simulated mean TTFT vs M/M/1, M/D/1, M/G/1\n")
    print("3 prefill instances of the paper's type, 6144-token mean prompts (lognormal with the "
          "given CV; 0 = fixed), 100 ms overhead, Poisson arrivals. Ratios are predicted / "
          "simulated mean TTFT: above 1 the model is conservative, below 1 optimistic.\n")
    print("| utilisation | prompt CV | routing | sim mean TTFT ms | M/M/1 ratio | M/D/1 ratio | "
          "M/G/1 ratio |")
    print("|---|---|---|---|---|---|---|")
    tp = float(paper.instance(PRE).prefill_tokens_per_s)  # type: ignore[arg-type]
    for rho in (0.5, 0.7, 0.8, 0.9):
        for cv in (0.0, 0.5, 1.0, 1.5):
            s = 6144 / tp
            rate = 3 * rho / s
            dist = ({"kind": "fixed"} if cv == 0 else
                    {"kind": "lognormal", "input_cv": cv, "output_cv": 0.0})
            sc = with_workload(paper, requests_per_s=rate, output_tokens=1,
                               length_distribution=dist)
            preds = []
            for c2 in (1.0, 0.0, cv * cv):
                preds.append(ttft_at_load_ms(
                    rates_per_s=[rate / 3], services_s=[s],
                    second_moments_s2=[service_second_moment_s2(s, c2)], own_service_s=s,
                    overhead_ms=100.0))
            for routing in ("random", "round-robin"):
                opts = SimulationOptions(duration_s=3600 * hours, seed=seed,
                                         routing=routing)  # type: ignore[arg-type]
                sim = simulate_counts(sc, 3, 1, opts).workloads[0].ttft_ms.mean
                print(f"| {rho:.1f} | {cv:.1f} | {routing} | {sim:,.0f} | "
                      + " | ".join(f"{p / sim:.2f}" for p in preds) + " |")


def random_scenario(rng: np.random.Generator, queue: str) -> Scenario:
    """A one-model scenario on the paper's instance types with random load, lengths, length
    CVs and SLOs (the decode table is taken to hold at any context)."""
    data = load_scenario(PAPER).model_dump(exclude_none=True)
    dec = next(i for i in data["instances"] if i["role"] == "decode")
    dec.pop("measured_at", None)
    li = int(rng.choice([1024, 2048, 4096, 6144, 8192]))
    lo = int(rng.choice([128, 256, 512, 1024]))
    cv_in = float(rng.choice([0.0, 0.5, 1.0]))
    cv_out = float(rng.choice([0.0, 0.5, 1.0]))
    service_ms = 1e3 * li / 28309
    w = data["workloads"][0]
    w.pop("tokens_per_minute")
    w.update(
        tokens_per_minute=float(rng.choice([1.0e6, 2.0e6, 4.0e6, 6.0e6, 10.0e6])),
        input_tokens=li, output_tokens=lo,
        slo={"ttft_ms": round(100 + service_ms * float(rng.choice([1.5, 2.5, 4.0, 8.0]))),
             "tpot_ms": float(rng.choice([15.0, 18.0, 20.0, 22.0, 25.0]))},
        length_distribution={"kind": "lognormal", "input_cv": cv_in, "output_cv": cv_out},
        queue=queue,
    )
    if queue == "mg1":
        w["service_scv"] = cv_in * cv_in
    return scenario_from_data(data)


def section_generated(hours: float, seed: int, n: int, routing: str) -> None:
    from pdopt.optimize import solve

    print("\n## Generated scenarios: does the analytic plan hold in simulation?\n")
    print(f"{n} random scenarios x 3 queue models, each solved and simulated for {hours:g} h "
          f"({routing} routing) with its one-fewer neighbours. 'smallest': the plan meets its "
          "SLOs and no neighbour does; 'too big': a neighbour meets them too; 'misses': the plan "
          "does not.\n")
    rng = np.random.default_rng(seed)
    seeds = rng.integers(0, 2**31, n)
    tally: dict[str, dict[str, int]] = defaultdict(lambda: defaultdict(int))
    reasons: dict[str, dict[str, int]] = defaultdict(lambda: defaultdict(int))
    rows = []
    started = time.perf_counter()
    for k in range(n):
        for queue in ("mm1", "md1", "mg1"):
            sc = random_scenario(np.random.default_rng(seeds[k]), queue)
            w = sc.workloads[0]
            try:
                plan = solve(sc)
            except PdoptError as e:
                tally[queue]["no plan"] += 1
                rows.append((k, queue, "-", str(e)[:60]))
                continue
            if not plan.has_plan:
                tally[queue]["no plan"] += 1
                continue
            opts = SimulationOptions(duration_s=3600 * hours, seed=seed,
                                     routing=routing)  # type: ignore[arg-type]
            v = verify_plan(sc, plan, opts, search=False)
            res = v.plan.result
            assert res is not None
            ws = res.workloads[0]
            if not v.plan_meets_slo:
                verdict = "misses"
                reasons[queue]["TTFT" if not ws.meets_ttft else "TPOT"] += 1
            elif v.plan_is_smallest:
                verdict = "smallest"
            else:
                verdict = "too big"
                for c in v.neighbours:
                    if c.meets_slo:
                        role = "prefill" if c.counts.get(PRE, 0) < v.plan.counts[PRE] else "decode"
                        reasons[queue][f"{role} one fewer ok"] += 1
            tally[queue][verdict] += 1
            print(f"scenario {k + 1}/{n} {queue}: {verdict} "
                  f"({time.perf_counter() - started:.0f} s)", file=sys.stderr, flush=True)
            cv = w.length_distribution
            rows.append((k, queue, f"{v.plan.counts.get(PRE, 0)}P{v.plan.counts.get(DEC, 0)}D",
                         f"{verdict}; L {w.input_tokens}/{w.output_tokens} CV "
                         f"{cv.input_cv:g}/{cv.output_cv:g}; TTFT {ws.ttft_ms.mean:,.0f}/"  # type: ignore[union-attr]
                         f"{w.slo.ttft_ms:g} ms; TPOT {ws.tpot_ms.mean:.1f}/{w.slo.tpot_ms:g} ms"))
    print("| queue model | plans | meets in simulation | smallest | too big | misses | no plan |"
          " details |")
    print("|---|---|---|---|---|---|---|---|")
    for queue in ("mm1", "md1", "mg1"):
        t = tally[queue]
        plans = t["smallest"] + t["too big"] + t["misses"]
        meets = t["smallest"] + t["too big"]
        detail = ", ".join(f"{k}: {v}" for k, v in sorted(reasons[queue].items()))
        print(f"| {queue} | {plans} | {meets} ({100 * meets / max(plans, 1):.0f}%) | "
              f"{t['smallest']} ({100 * t['smallest'] / max(plans, 1):.0f}%) | {t['too big']} | "
              f"{t['misses']} | {t['no plan']} | {detail} |")
    print(f"\n({time.perf_counter() - started:.0f} s)\n")
    print("| # | queue | plan | outcome |")
    print("|---|---|---|---|")
    for row in rows:
        print("| " + " | ".join(str(x) for x in row) + " |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--section", choices=("paper", "queue", "generated", "all"),
                        default="all")
    parser.add_argument("--hours", type=float, default=1.0, help="Simulated hours per run.")
    parser.add_argument("--scenarios", type=int, default=40, help="Generated scenarios.")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--routing", choices=("round-robin", "random", "least-loaded"),
                        default="round-robin", help="Routing in the generated section.")
    args = parser.parse_args()
    if args.section in ("paper", "all"):
        section_paper(args.hours, args.seed)
    if args.section in ("queue", "all"):
        section_queue(args.hours, args.seed)
    if args.section in ("generated", "all"):
        section_generated(args.hours, args.seed, args.scenarios, args.routing)


if __name__ == "__main__":
    main()
