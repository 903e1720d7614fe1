"""Fit the estimator's per-engine factors on measured serving runs and print the error tables
(docs/profiles.md, "Calibration" and "Validation on measured runs").

    python benchmarks/calibrate_estimate.py [--silicon PATH] [--write]

PATH defaults to the installed aiconfigurator-core's systems/silicon_sample.csv (no network).
Prints: how many rows were read, de-duplicated and describable (and why the rest are not); the
error of the shipped factors by engine, mode, batch bucket, model family and GPU; then the fitted
factors per engine. --write stores them in pdopt/data/estimate_factors.yaml with provenance.
"""

from __future__ import annotations

import argparse
import collections
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path

from pdopt.profiles.calibration import (
    FITTED_FACTORS,
    PREFILL_FACTORS,
    fit_engines,
    write_factors,
)
from pdopt.profiles.estimate import FACTORS_PATH
from pdopt.profiles.silicon import (
    SiliconRun,
    batch_bucket,
    describable,
    evaluate,
    ratios,
    read_prefill_runs,
    read_silicon,
    saturated_prefill,
    silicon_csv_path,
    why_not_describable,
)

GROUPINGS: dict[str, Callable[[SiliconRun], str]] = {
    "engine": lambda r: r.engine,
    "mode": lambda r: r.mode,
    "decode batch": lambda r: batch_bucket(r.batch),
    "model family": lambda r: r.family,
    "GPU": lambda r: r.gpu or r.system,
}


def summary_row(name: str, values: Sequence[float]) -> str:
    s = ratios(values)
    if not s["runs"]:
        return f"| {name} | 0 | | | | | |"
    return (f"| {name} | {s['runs']} | {s['median_ratio']:.2f} | "
            f"{100 * s['median_abs_error']:.0f}% | {100 * s['p90_abs_error']:.0f}% | "
            f"{100 * s['within_10']:.0f}% | {100 * s['within_25']:.0f}% |")


HEADER = ("| group | runs | median predicted/measured | median abs error | p90 abs error | "
          "within 10% | within 25% |\n|---|---|---|---|---|---|---|")


def print_error_tables(pairs: Sequence[tuple[SiliconRun, float]], title: str) -> None:
    print(f"\n## {title}\n\n{HEADER}")
    print(summary_row("all", [p / r.tpot_ms for r, p in pairs]))
    for label, key in GROUPINGS.items():
        groups: dict[str, list[float]] = collections.defaultdict(list)
        for r, p in pairs:
            groups[key(r)].append(p / r.tpot_ms)
        for name, values in sorted(groups.items()):
            print(summary_row(f"{label}: {name}", values))


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--silicon", type=Path, default=None,
                        help="silicon_sample.csv [default: the installed aiconfigurator-core's]")
    parser.add_argument("--write", action="store_true",
                        help=f"store the fitted factors in {FACTORS_PATH}")
    args = parser.parse_args(argv)
    path = args.silicon or silicon_csv_path()
    if path is None:
        sys.exit("aiconfigurator-core is not installed: pip install 'pdopt[test]' or --silicon")
    t0 = time.perf_counter()
    runs, rows, parsed = read_silicon(path)
    usable = describable(runs)
    print(f"{path}: {rows} rows, {parsed} with a TPOT and a decode layout, {len(runs)} after "
          f"removing {parsed - len(runs)} repeats of another row's numbers, {len(usable)} "
          "describable")
    reasons = collections.Counter(why_not_describable(r) for r in runs if r not in usable)
    for reason, count in reasons.most_common():
        print(f"  not describable: {count:5d}  {reason}")
    pairs, refused = evaluate(usable)
    print(f"refused as not fitting: {len(refused)}"
          + "".join(f"\n  {n} x {k}" for k, n in collections.Counter(
              f"{r.model} {r.precision} on {r.gpus} x {r.gpu}" for r in refused).most_common()))
    print_error_tables(pairs, "decode TPOT, shipped factors (in-sample)")
    prefill = saturated_prefill(read_prefill_runs(path))
    print(f"saturated prefill sweeps (Eq. V5): {len(prefill)}")
    fitted = fit_engines(usable, prefill=prefill)
    for name, f in fitted.items():
        print(f"fitted {name}: " + ", ".join(f"{k} {getattr(f, k):g}"
                                            for k in (*FITTED_FACTORS, *PREFILL_FACTORS)))
    pairs, refused = evaluate(usable, lambda r: fitted[r.engine])
    print(f"refused with the fitted factors: {len(refused)}")
    print_error_tables(pairs, "decode TPOT, fitted per-engine factors (in-sample)")
    if args.write:
        write_factors(fitted, path, len(usable), prefill=prefill)
        print(f"wrote {FACTORS_PATH}")
    print(f"\n({time.perf_counter() - t0:.1f} s)")


if __name__ == "__main__":
    main()
