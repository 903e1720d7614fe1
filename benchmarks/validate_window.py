"""How much a window's TTFT and TPOT statistics scatter: Eqs. W1 and W4 against the simulator
(the table in docs/method.md, section W).

    python benchmarks/validate_window.py [--seeds K] [--minutes M] [--only 1,3]

One workload of the paper's scenario on n prefill and m decode instances of the paper's types,
at a load that puts the prefill pool near its boundary. Each case is simulated K times for M
minutes (seeds 1..K, the same plan); the table gives the measured standard deviation of the
window's mean TTFT, p90 TTFT and mean TPOT over the K windows next to the predicted one:
Eq. W1 (times the queueing part of the long-run value and, for p90, kappa of Eq. W2: Eq. W3
with z = 1) and Eq. W4. Both
predicted and measured values are relative to the statistic's mean over the K windows (the
predicted one to the long-run value with the overhead). "with sampling" is a candidate for the
mean TTFT at light load, not used by the sizing (`sampled_mean_rel_sd`).
"""

from __future__ import annotations

import argparse
import math
import statistics
import sys
from pathlib import Path

import numpy as np

from pdopt.capacity import (
    decode_context_tokens,
    instance_decode_curve,
    output_scv,
    prefill_service_moments,
)
from pdopt.decode import batch_peakedness, fluctuating_decode_capacity, request_tpot_ms
from pdopt.queueing import (
    ServiceMoments,
    arrival_scv,
    mean_wait_s,
    percentile_wait,
    ttft_statistic_s,
)
from pdopt.scenario.loading import load_scenario, scenario_from_data
from pdopt.simulate import SimulationOptions, plan_from_counts, simulate_plan
from pdopt.window import quantile_spread_factor, tpot_window_rel_sd, wait_window_rel_sd

ROOT = Path(__file__).resolve().parents[1]
PAPER = ROOT / "scenarios" / "paper-deepseek-v31-h200.yaml"
PRE, DEC = "ds-prefill-8xh200", "ds-decode-8xh200"

# (routing, prefill count, prefill utilisation, length kind); the decode count is the smallest
# whose F3 capacity at DECODE_TPOT_MS carries the load
DECODE_TPOT_MS = 20.0
CASES = [
    ("round-robin", 1, 0.80, "fixed"),
    ("round-robin", 3, 0.90, "fixed"),
    ("round-robin", 3, 0.85, "lognormal 1.0"),
    ("round-robin", 8, 0.90, "lognormal 0.5"),
    ("random", 2, 0.80, "fixed"),
    ("random", 4, 0.85, "lognormal 1.0"),
    ("random", 8, 0.85, "lognormal 0.5"),
    # light load (docs/validation.md section 6, seventh pass: W1 is a heavy-traffic reading)
    ("random", 1, 0.30, "lognormal 1.0"),
    ("round-robin", 2, 0.30, "lognormal 1.0"),
    ("random", 4, 0.30, "fixed"),
]


def case_scenario(routing: str, n_pre: int, utilization: float, kind: str):
    data = load_scenario(PAPER).model_dump(exclude_none=True)
    dec = next(i for i in data["instances"] if i["role"] == "decode")
    dec.pop("measured_at", None)
    w = data["workloads"][0]
    dist = ({"kind": "fixed"} if kind == "fixed" else
            {"kind": "lognormal", "input_cv": float(kind.split()[1]),
             "output_cv": float(kind.split()[1])})
    w["length_distribution"] = dist
    w["slo"] = {"ttft_ms": 100000, "tpot_ms": 1000}  # not judged here
    data.setdefault("options", {})["routing"] = routing
    for key in ("requests_per_s", "tokens_per_s", "tokens_per_minute"):
        w.pop(key, None)
    w["requests_per_s"] = 1.0
    sc = scenario_from_data(data)
    moments = prefill_service_moments(sc, sc.instance(PRE), sc.workloads[0], None)
    w["requests_per_s"] = utilization * n_pre / moments.mean_s
    return scenario_from_data(data)


def daley_factor(rho: float) -> float:
    """How much the mean of N consecutive waits of an M/M/1 queue varies more than N independent
    waits: the waits' asymptotic variance rho (2 + 5 rho - 4 rho^2 + rho^3) / (mu^2 (1 - rho)^4)
    (Daley 1968) over their stationary variance rho (2 - rho) / (mu^2 (1 - rho)^2)."""
    return (2 + 5 * rho - 4 * rho ** 2 + rho ** 3) / ((2 - rho) * (1 - rho) ** 2)


def sampled_mean_rel_sd(routing: str, rate: float, count: int, moments: ServiceMoments,
                        total_rate: float, window_s: float, w1_rel_sd: float,
                        mean_ttft_s: float) -> float:
    """A candidate for the spread of a window's mean TTFT at light load (docs/method.md section
    W, the light-load rows; not in the sizing): the window averages N = lambda T requests, whose
    prompt lengths add Var(S) / N and whose waits add D(rho) Var(W) / N (W as Eq. Q8 takes it:
    0 with probability 1 - P_W, else exponential; D of `daley_factor` for the correlation within
    busy periods), the latter at least W1's heavy-traffic variance of the wait's time average."""
    n_requests = total_rate * window_s
    wait_mean, prob = percentile_wait(routing, rate, count, moments)
    conditional = wait_mean / prob if prob > 0 else 0.0
    var_wait = prob * 2 * conditional ** 2 - wait_mean ** 2
    var_service = moments.second_moment_s2 - moments.mean_s ** 2
    rho = rate * moments.mean_s
    var_waits = max((w1_rel_sd * mean_wait_s(routing, rate, count, moments)) ** 2,
                    daley_factor(rho) * var_wait / n_requests)
    return math.sqrt(var_waits + var_service / n_requests) / mean_ttft_s


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=8)
    parser.add_argument("--minutes", type=float, default=30.0)
    parser.add_argument("--only", default="", help="Case numbers, e.g. 1,3.")
    args = parser.parse_args()
    only = {int(x) for x in args.only.split(",") if x}
    window_s = 60.0 * args.minutes
    print("| # | routing | P/D | prefill rho | lengths | mean TTFT sd meas / pred | "
          "with sampling | p90 TTFT sd meas / pred | mean TPOT sd meas / pred "
          "| TTFT mean meas / pred ms |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    for k, (routing, n_pre, rho, kind) in enumerate(CASES, start=1):
        if only and k not in only:
            continue
        sc = case_scenario(routing, n_pre, rho, kind)
        w, pre, dec = sc.workloads[0], sc.instance(PRE), sc.instance(DEC)
        moments = prefill_service_moments(sc, pre, w, None)
        rate = w.rate_requests_per_s / n_pre
        model_routing = "round-robin" if routing == "round-robin" else "random"
        mean_ttft = ttft_statistic_s(model_routing, rate, n_pre, moments)
        p90_ttft = ttft_statistic_s(model_routing, rate, n_pre, moments, 90.0)
        p90_empty = ttft_statistic_s(model_routing, 0.0, n_pre, moments, 90.0)
        r_wait = wait_window_rel_sd(rate * moments.mean_s, moments.mean_s, moments.scv, n_pre,
                                    window_s)
        # relative to the statistic with the overhead, as the simulator measures it
        overhead_s = w.ttft_overhead_ms / 1e3
        pred_mean = (r_wait * mean_wait_s(model_routing, rate, n_pre, moments)
                     / (mean_ttft + overhead_s))
        pred_p90 = (r_wait * quantile_spread_factor(90.0) * (p90_ttft - p90_empty)
                    / (p90_ttft + overhead_s))
        pred_sampled = sampled_mean_rel_sd(
            model_routing, rate, n_pre, moments, w.rate_requests_per_s, window_s, r_wait,
            mean_ttft + overhead_s)
        # decode: the mean batch at this load and Eq. W4
        curve = instance_decode_curve(dec, decode_context_tokens(w.input_tokens,
                                                                 w.output_tokens))
        out_scv = output_scv(w, None)
        peak = batch_peakedness(arrival_scv(model_routing, n_pre), out_scv)
        demand = w.rate_requests_per_s * w.output_tokens
        n_dec = max(1, math.ceil(demand / fluctuating_decode_capacity(
            curve, DECODE_TPOT_MS, peak, None).tokens_per_s))
        peak = batch_peakedness(arrival_scv(model_routing, n_dec), out_scv)
        tokens_per_s = demand / n_dec
        lo, hi = 0.0, 4096.0
        for _ in range(60):  # mean batch b with b / T(b) = the instance's output tokens/s
            mid = (lo + hi) / 2
            if mid / (request_tpot_ms(curve, mid, peak) / 1e3) < tokens_per_s:
                lo = mid
            else:
                hi = mid
        batch = lo
        tpot = request_tpot_ms(curve, batch, peak)
        step = max(1e-3, 0.01 * batch)
        slope = (request_tpot_ms(curve, batch + step, peak)
                 - request_tpot_ms(curve, batch - step, peak)) / (2 * step)
        pred_tpot = tpot_window_rel_sd(batch * slope / tpot, out_scv, w.rate_requests_per_s,
                                       window_s)
        plan = plan_from_counts(sc, {PRE: n_pre, DEC: n_dec})
        means, p90s, tpots = [], [], []
        for seed in range(1, args.seeds + 1):
            res = simulate_plan(sc, plan, SimulationOptions(duration_s=window_s, seed=seed,
                                                            routing=routing))  # type: ignore
            st = res.workloads[0]
            means.append(st.ttft_ms.mean)
            p90s.append(st.ttft_ms.p90)
            tpots.append(st.tpot_ms.mean)
            print(f"case {k} seed {seed}: {st.ttft_ms.mean:.0f} {st.ttft_ms.p90:.0f} "
                  f"{st.tpot_ms.mean:.2f}", file=sys.stderr, flush=True)

        def rel(xs: list[float]) -> float:
            return statistics.stdev(xs) / statistics.fmean(xs)

        print(f"| {k} | {routing} | {n_pre}/{n_dec} | {rho:.2f} | {kind} | "
              f"{rel(means):.3f} / {pred_mean:.3f} | {pred_sampled:.3f} | "
              f"{rel(p90s):.3f} / {pred_p90:.3f} | "
              f"{rel(tpots):.4f} / {pred_tpot:.4f} | {np.mean(means):.0f} / "
              f"{1e3 * mean_ttft + w.ttft_overhead_ms:.0f} |", flush=True)


if __name__ == "__main__":
    main()
