"""Refit the estimator's efficiency factors and print the calibration error (docs/profiles.md).

    python benchmarks/calibrate_estimate.py [--trtllm PATH]

PATH defaults to ../shared/data/hardware/trtllm_perf_overview_throughput.csv.

Prints the fitted factors (to compare with pdopt.profiles.estimate.DEFAULT_FACTORS), the error
summary on each data set, the error per model and GPU, and the paper's points one by one.
"""

from __future__ import annotations

import argparse
import collections
from pathlib import Path

from pdopt.profiles.calibration import (
    error_summary,
    fit_factors,
    paper_errors,
    read_trtllm_rows,
    trtllm_errors,
)
from pdopt.profiles.estimate import DEFAULT_FACTORS

DEFAULT_CSV = (Path(__file__).resolve().parents[1] / ".." / "shared" / "data" / "hardware"
               / "trtllm_perf_overview_throughput.csv")


def _summary_line(name: str, s: dict[str, float]) -> str:
    return (f"| {name} | {int(s['points'])} | {100 * s['median_abs_error']:.1f}% | "
            f"{100 * s['mean_abs_error']:.1f}% | {100 * s['max_abs_error']:.1f}% | "
            f"{100 * s['median_signed_error']:+.1f}% |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trtllm", type=Path, default=DEFAULT_CSV)
    args = parser.parse_args()
    rows = read_trtllm_rows(args.trtllm)
    fitted = fit_factors(rows)
    print(f"fitted:   {fitted}")
    print(f"defaults: {DEFAULT_FACTORS}")
    header = ("| set | points | median abs error | mean abs error | max abs error | "
              "median signed error |\n|---|---|---|---|---|---|")
    print(header)
    trt = trtllm_errors(rows, DEFAULT_FACTORS)
    paper = paper_errors(DEFAULT_FACTORS)
    print(_summary_line("TensorRT-LLM perf-overview", error_summary(trt)))
    print(_summary_line("paper, DeepSeek-V3.1 8xH200", error_summary(paper)))
    groups: dict[str, list] = collections.defaultdict(list)
    for e in trt:
        model, gpu = e.what.split()[:2]
        groups[f"{model} on {gpu}"].append(e)
    print(header)
    for name, errs in sorted(groups.items()):
        print(_summary_line(name, error_summary(errs)))
    print("| paper figure | measured | estimated | error |\n|---|---|---|---|")
    for e in paper:
        print(f"| {e.what} | {e.measured:g} | {e.estimated:.1f} | "
              f"{100 * e.relative_error:+.1f}% |")


if __name__ == "__main__":
    main()
