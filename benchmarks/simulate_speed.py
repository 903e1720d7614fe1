"""Simulator speed: simulated requests and decode steps per wall-clock second (docs/validation.md).

    python benchmarks/simulate_speed.py [--hours H] [--repeat N]

Target (issue 5): one hour of the paper's fleet (3 prefill + 4 decode DeepSeek-V3.1 8xH200
instances) at 5 M tokens/minute, about 45,000 requests and 720,000 decode steps, in under 30 s on
one core. Prints a markdown table, best of N runs per case. The simulator is single-threaded.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from pdopt.scenario.loading import load_scenario, scenario_from_data
from pdopt.scenario.schema import Scenario
from pdopt.simulate import SimulationOptions, plan_from_counts, read_trace, simulate_plan

ROOT = Path(__file__).resolve().parents[1]
PAPER = ROOT / "scenarios" / "paper-deepseek-v31-h200.yaml"
AZURE_CONV = ROOT.parent / "shared" / "data" / "traces" / "AzureLLMInferenceTrace_conv.csv"
COUNTS = {"ds-prefill-8xh200": 3, "ds-decode-8xh200": 4}
TARGET_S = 30.0


def with_lengths(scenario: Scenario, input_cv: float, output_cv: float) -> Scenario:
    """The scenario with lognormal request lengths around the same means."""
    data = scenario.model_dump(exclude_none=True)
    data["workloads"][0]["length_distribution"] = {
        "kind": "lognormal", "input_cv": input_cv, "output_cv": output_cv}
    return scenario_from_data(data)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--hours", type=float, default=1.0, help="Simulated hours per case.")
    parser.add_argument("--repeat", type=int, default=3, help="Runs per case; the best counts.")
    args = parser.parse_args()
    paper = load_scenario(PAPER)
    lognormal = with_lengths(paper, 0.5, 0.5)
    plan = plan_from_counts(paper, COUNTS)
    duration = 3600.0 * args.hours
    cases = [
        ("paper 3P4D, 5 M tok/min, fixed lengths, round-robin", paper,
         SimulationOptions(duration_s=duration), None),
        ("same, random routing", paper,
         SimulationOptions(duration_s=duration, routing="random"), None),
        ("same, least-loaded routing", paper,
         SimulationOptions(duration_s=duration, routing="least-loaded"), None),
        ("same, lognormal lengths (CV 0.5)", lognormal,
         SimulationOptions(duration_s=duration), None),
        ("same, prefill batches of 16384 tokens", paper,
         SimulationOptions(duration_s=duration, max_prefill_tokens_per_batch=16384), None),
    ]
    if AZURE_CONV.is_file():
        trace = read_trace(AZURE_CONV, "azure")
        cases.append((f"Azure conv trace x10 rate ({AZURE_CONV.name})", paper,
                      SimulationOptions(duration_s=None, rate_scale=10.0), trace))
    print(f"| case | simulated s | requests | decode steps | wall s (best of {args.repeat}) | "
          "requests/s wall | steps/s wall | target met |")
    print("|---|---|---|---|---|---|---|---|")
    for name, sc, options, trace in cases:
        best = None
        for _ in range(args.repeat):
            start = time.perf_counter()
            result = simulate_plan(sc, plan, options, trace=trace)
            wall = time.perf_counter() - start
            best = wall if best is None else min(best, wall)
        assert best is not None
        span = result.window_s[1] + options.cooldown_s
        target = "yes" if best * 3600.0 / span < TARGET_S else "no"
        print(f"| {name} | {span:,.0f} | {result.simulated_requests:,} | "
              f"{result.decode_steps:,} | {best:.2f} | {result.simulated_requests / best:,.0f} | "
              f"{result.decode_steps / best:,.0f} | {target} |")


if __name__ == "__main__":
    main()
