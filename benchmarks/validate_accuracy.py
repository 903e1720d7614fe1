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
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np

from pdopt.capacity import instance_decode_curve
from pdopt.errors import PdoptError
from pdopt.queueing import service_second_moment_s2, ttft_at_load_ms
from pdopt.scenario.loading import load_scenario, scenario_from_data
from pdopt.scenario.schema import Scenario
from pdopt.simulate import SimulationOptions, plan_from_counts, simulate_plan
from pdopt.simulate.verify import slo_ratio, verify_plan

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


# --- sizing: hold and smallest, the paper's method against queue auto (issue 12) --------------

OTHER_PREFILL = {"name": "other-prefill-4xh100", "model": "deepseek-v3.1", "role": "prefill",
                 "gpu": "H100", "gpus_per_instance": 4,
                 "prefill_tokens_per_s": {1024: 9000.0, 4096: 11000.0, 8192: 10000.0},
                 "extrapolation": "nearest"}
OTHER_DECODE = {"name": "other-decode-4xh100", "model": "deepseek-v3.1", "role": "decode",
                "gpu": "H100", "gpus_per_instance": 4,
                "tpot_ms_by_batch": {1: 9.0, 16: 12.0, 32: 15.5, 64: 22.0, 96: 30.0},
                "extrapolation": "nearest"}


def sizing_scenario(rng: np.random.Generator, routing: str) -> tuple[Scenario, str]:
    """A one-model scenario of 1-3 workloads sharing the pools, on the paper's instance types or
    on another pair (4xH100, prefill table over length): fixed, lognormal CV 0.5 or 1.0 lengths,
    mean or p90 TTFT targets, the given routing. Returns it and a one-line description."""
    data = load_scenario(PAPER).model_dump(exclude_none=True)
    family = str(rng.choice(["paper", "other"]))
    if family == "other":
        data["gpus"]["H100"] = {"cost_per_hour": 2.5}
        data["instances"] = [dict(OTHER_PREFILL), dict(OTHER_DECODE)]
    else:
        dec = next(i for i in data["instances"] if i["role"] == "decode")
        dec.pop("measured_at", None)
    prefill = data["instances"][0]
    tp = prefill["prefill_tokens_per_s"]
    kind = str(rng.choice(["fixed", "lognormal 0.5", "lognormal 1.0"]))
    total = float(rng.choice([1.0e6, 2.0e6, 4.0e6, 6.0e6, 10.0e6]))
    count = int(rng.integers(1, 4))
    shares = rng.dirichlet(np.ones(count)) if count > 1 else np.ones(1)
    template = data["workloads"][0]
    workloads = []
    for k in range(count):
        li = int(rng.choice([1024, 2048, 4096, 6144, 8192]))
        lo = int(rng.choice([128, 256, 512, 1024]))
        rate = tp if not isinstance(tp, dict) else np.interp(li, sorted(tp), [tp[x] for x in
                                                                               sorted(tp)])
        service_ms = 1e3 * li / float(rate)
        p90 = bool(rng.random() < 0.4)
        factor = float(rng.choice([3.0, 4.0, 8.0] if p90 else [1.5, 2.5, 4.0, 8.0]))
        slo: dict[str, Any] = {"ttft_ms": round(100 + service_ms * factor),
                               "tpot_ms": float(rng.choice([18.0, 20.0, 22.0, 25.0, 30.0]))}
        if p90:
            slo["ttft_percentile"] = 90.0
        dist: dict[str, Any] = ({"kind": "fixed"} if kind == "fixed" else
                                {"kind": "lognormal", "input_cv": float(kind.split()[1]),
                                 "output_cv": float(kind.split()[1])})
        workloads.append({
            "name": f"w{k}", "model": template["model"],
            "tokens_per_minute": max(2e4, total * float(shares[k])),
            "input_tokens": li, "output_tokens": lo, "slo": slo,
            "ttft_overhead_ms": template.get("ttft_overhead_ms", 100.0),
            "length_distribution": dist})
    data["workloads"] = workloads
    data.setdefault("options", {})["routing"] = routing
    what = (f"{family}, {count} workload(s), {kind}, "
            + ", ".join(f"{w['input_tokens']}/{w['output_tokens']} "
                        f"{'p90' if 'ttft_percentile' in w['slo'] else 'mean'} "
                        f"{w['slo']['ttft_ms']}/{w['slo']['tpot_ms']:g} ms" for w in workloads))
    return scenario_from_data(data), what


def _with_options(scenario: Scenario, **options: Any) -> Scenario:
    return scenario.model_copy(update={"options": scenario.options.model_copy(update=options)})


def section_sizing(hours: float, seed: int, n: int, verify: bool, skip: int = 0,
                   only: set[int] | None = None, methods: list[str] | None = None,
                   window: dict[str, Any] | None = None) -> None:
    """Hold and smallest rates of the paper's method (queue mm1) and of queue auto (and, with
    `verify`, of solve --verify) on `n` generated scenarios, half round-robin, half random.
    `only`: the scenario numbers (1-based) to run; `methods`: a subset of the three; `window`:
    options.slo_window_minutes / slo_confidence for the auto methods (method.md section W)."""
    from pdopt.optimize import solve

    methods = methods or ["mm1", "auto"] + (["auto --verify"] if verify else [])
    print(f"\n## Sizing: {n} generated scenarios, {hours:g} h simulations\n")
    rng = np.random.default_rng(seed)
    seeds = rng.integers(0, 2**31, n)
    tally: dict[str, dict[str, int]] = defaultdict(lambda: defaultdict(int))
    costs: dict[str, list[float]] = defaultdict(list)
    rows = []
    started = time.perf_counter()
    for k in range(skip, n):
        if only and k + 1 not in only:
            continue
        routing = "round-robin" if k % 2 == 0 else "random"
        base, what = sizing_scenario(np.random.default_rng(seeds[k]), routing)
        opts = SimulationOptions(duration_s=3600 * hours, seed=seed,
                                 routing=routing)  # type: ignore[arg-type]
        verdicts = []
        for method in methods:
            sc = (_with_options(base, queue="mm1") if method == "mm1" else
                  _with_options(base, queue="auto", **(window or {})))
            t0 = time.perf_counter()
            try:
                if method.endswith("--verify"):
                    from pdopt.simulate.verify import solve_verified

                    outcome = solve_verified(sc, opts)
                    plan = outcome.plan
                    tally[method][f"stop: {outcome.stop_reason.split(':')[0]}"] += 1
                else:
                    plan = solve(sc)
            except PdoptError as e:
                tally[method]["no plan"] += 1
                verdicts.append(f"{method}: no plan ({str(e)[:40]})")
                continue
            if not plan.has_plan:
                tally[method]["no plan"] += 1
                verdicts.append(f"{method}: {plan.status}")
                continue
            costs[method].append(time.perf_counter() - t0)  # the solve (and --verify's loop)
            v = verify_plan(sc, plan, opts, search=False)
            verdict = ("misses" if not v.plan_meets_slo else
                       "smallest" if v.plan_is_smallest else "too big")
            tally[method][verdict] += 1
            res = v.plan.result
            assert res is not None
            if verdict == "misses":  # which target, by how much (worst workload)
                worst = max(res.workloads, key=lambda r: max(
                    r.ttft_at_target_ms / r.ttft_target_ms, r.tpot_ms.mean / r.tpot_target_ms))
                ttft, tpot = (worst.ttft_at_target_ms / worst.ttft_target_ms,
                              worst.tpot_ms.mean / worst.tpot_target_ms)
                why = f"TTFT x{ttft:.3f}" if ttft > tpot else f"TPOT x{tpot:.3f}"
                tally[method][f"misses {why.split()[0]}"] += 1
                verdict += f" ({why})"
            elif verdict == "too big":  # which one-fewer neighbours hold too
                held = [c.changed.replace("ds-", "").replace("other-", "").split("-")[0]
                        + (c.changed[c.changed.index(" ["):] if " [" in c.changed else "")
                        for c in v.neighbours if c.meets_slo]
                for h in held:
                    tally[method][f"-1 {h.split()[0]}"] += 1
                verdict += f" (-1 {', '.join(held)})"
            tally[method]["plans"] += 1
            # The same plan on another seed: --verify's own check ran the judge's seed.
            fresh = simulate_plan(sc, plan, replace(opts, seed=opts.seed + 1000))
            tally[method]["holds, other seed"] += int(fresh.meets_slo)
            if not fresh.meets_slo:
                verdict += f", other seed misses (x{slo_ratio(fresh):.3f})"
            counts = "+".join(f"{c}" for _, c in sorted(v.plan.counts.items()))
            if method.endswith("--verify"):
                verdict += f"; {len(outcome.iterations)} solve(s), {outcome.stop_reason}"
            verdicts.append(f"{method}: {counts} {verdict}")
        print(f"scenario {k + 1}/{n}: {'; '.join(verdicts)} "
              f"({time.perf_counter() - started:.0f} s)", file=sys.stderr, flush=True)
        rows.append((k + 1, routing, what, "; ".join(verdicts)))
    print("| method | plans | hold their SLOs | smallest | too big | misses | no plan | "
          "solve s per scenario | hold, other seed | one-fewer that holds / missed target |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    for method in methods:
        t = tally[method]
        plans = t["plans"]
        print(f"| {method} | {plans} | {t['smallest'] + t['too big']} "
              f"({100 * (t['smallest'] + t['too big']) / max(plans, 1):.0f}%) | {t['smallest']} "
              f"({100 * t['smallest'] / max(plans, 1):.0f}%) | {t['too big']} | {t['misses']} | "
              f"{t['no plan']} | {np.mean(costs[method]) if costs[method] else 0:.1f} | "
              f"{t['holds, other seed']} ({100 * t['holds, other seed'] / max(plans, 1):.0f}%) | "
              + ", ".join(f"{k}: {v}" for k, v in sorted(t.items())
                          if k.startswith(("-1 ", "misses ", "stop: "))) + " |")
    print("\n| # | routing | scenario | plans (instance counts: decode+prefill) |")
    print("|---|---|---|---|")
    for row in rows:
        print("| " + " | ".join(str(x) for x in row) + " |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--section", choices=("paper", "queue", "generated", "sizing", "all"),
                        default="all")
    parser.add_argument("--hours", type=float, default=1.0, help="Simulated hours per run.")
    parser.add_argument("--scenarios", type=int, default=40, help="Generated scenarios.")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--routing", choices=("round-robin", "random", "least-loaded"),
                        default="round-robin", help="Routing in the generated section.")
    parser.add_argument("--verify", action="store_true",
                        help="sizing: also solve with --verify (simulation-corrected capacities)")
    parser.add_argument("--skip", type=int, default=0,
                        help="sizing: start after this many of the seed's scenarios (to split a "
                             "run over processes; the scenarios are the same)")
    parser.add_argument("--only", default="",
                        help="sizing: comma-separated scenario numbers (1-based) to run")
    parser.add_argument("--methods", default="",
                        help="sizing: comma-separated subset of mm1, auto, 'auto --verify'")
    parser.add_argument("--slo-window", default="",
                        help="sizing: options.slo_window_minutes for auto ('none': long-run "
                             "sizing; default: the scenario's, 30)")
    parser.add_argument("--confidence", type=float, default=None,
                        help="sizing: options.slo_confidence for auto (default 0.99)")
    args = parser.parse_args()
    if args.section in ("paper", "all"):
        section_paper(args.hours, args.seed)
    if args.section in ("queue", "all"):
        section_queue(args.hours, args.seed)
    if args.section in ("generated", "all"):
        section_generated(args.hours, args.seed, args.scenarios, args.routing)
    if args.section == "sizing":
        only = {int(x) for x in args.only.split(",") if x.strip()}
        methods = [x.strip() for x in args.methods.split(",") if x.strip()]
        window: dict[str, Any] = {}
        if args.slo_window:
            window["slo_window_minutes"] = (None if args.slo_window == "none"
                                            else float(args.slo_window))
        if args.confidence is not None:
            window["slo_confidence"] = args.confidence
        section_sizing(args.hours, args.seed, args.scenarios, args.verify, args.skip,
                       only or None, methods or None, window)


if __name__ == "__main__":
    main()
