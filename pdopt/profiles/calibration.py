"""Calibrating the estimator's efficiency factors against published measurements
(docs/profiles.md, "Calibration"). Pure functions; callers pass the data.

Two public sets of measurements:
- TensorRT-LLM's max-throughput figures (NVIDIA/TensorRT-LLM docs, perf-overview; 147 rows of five
  supported models on H100/H200/B200/GB200), predicted as aggregated serving (Eq. V1);
- the paper's DeepSeek-V3.1 case on 8xH200 (SGLang 0.5.8, FP8 weights, MTP on; arXiv 2603.04716):
  saturated prefill 28,309 input tokens/s at 6,144 input tokens and TPOT at batches 10..60. With
  MTP a decode step emits more than one token, so the comparable quantity is step time / tokens
  per step (Eq. V2).

`fit_factors` picks the three factors that minimise the squared log error over both sets, every
point weighted alike (scipy least squares, bounded to physical ranges).
"""

from __future__ import annotations

import csv
import datetime
import functools
import io
import math
import statistics
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
import yaml
from scipy.optimize import least_squares

from pdopt.inputfiles import read_limited
from pdopt.profiles.catalog import gpu_spec, model_arch
from pdopt.profiles.estimate import (
    DEFAULT_FACTORS,
    DEFAULT_MAX_BATCH,
    FACTORS_PATH,
    Estimate,
    EstimateFactors,
    InstanceShape,
)
from pdopt.profiles.measurements import RunDefaults, read_measurements
from pdopt.profiles.silicon import (
    ENGINES,
    PairTerms,
    RunTerms,
    SaturatedPrefill,
    SiliconRun,
    fits,
    pair_terms,
    prefill_pairs,
    run_terms,
    saturated_terms,
    why_not_describable,
)

# The paper's evaluation case (arXiv 2603.04716; ../shared/reference/method.md quotes it).
PAPER_MODEL = "deepseek-v3.1"
PAPER_GPU = "H200"
PAPER_GPUS = 8
PAPER_WEIGHT_DTYPE = "fp8"  # DeepSeek-V3.1 ships FP8 weights
PAPER_KV_DTYPE = "bf16"  # SGLang's default KV dtype for it ("auto" = the bf16 activations)
PAPER_INPUT_TOKENS = 6144
PAPER_OUTPUT_TOKENS = 512
PAPER_PREFILL_TOKENS_PER_S = 28309.0
PAPER_TPOT_MS_BY_BATCH = {10: 12.8, 20: 16.4, 30: 18.8, 40: 21.6, 50: 23.9, 60: 26.2}
# DeepSeek-V3 technical report (arXiv 2412.19437, section 5.4.3): the MTP draft token is accepted
# 85-90% of the time, so a decode step emits 1 + 0.875 tokens on average.
PAPER_MTP_TOKENS_PER_STEP = 1.875

# TensorRT-LLM perf-overview model names -> bundled models (Llama-4 is not a supported family).
TRTLLM_MODELS = {
    "Llama-3.1-8B": "llama-3.1-8b", "Llama-3.3-70B": "llama-3.3-70b",
    "Llama-3.1-405B": "llama-3.1-405b", "Qwen3-30B-A3B": "qwen3-30b-a3b",
    "Qwen3-235B-A22B": "qwen3-235b-a22b",
}
# NVIDIA's ModelOpt FP8/FP4 checkpoints that the perf-overview runs set kv_cache_quant_algo FP8
# (e.g. nvidia/Llama-3.1-70B-Instruct-FP8, hf_quant_config.json).
TRTLLM_KV_DTYPE = "fp8"


@dataclass(frozen=True)
class PointError:
    what: str
    measured: float
    estimated: float

    @property
    def relative_error(self) -> float:
        """(estimate - measured) / measured."""
        return (self.estimated - self.measured) / self.measured


def paper_estimate(factors: EstimateFactors) -> Estimate:
    shape = InstanceShape(gpu_spec(PAPER_GPU), PAPER_GPUS, PAPER_WEIGHT_DTYPE, PAPER_KV_DTYPE,
                          tokens_per_step=PAPER_MTP_TOKENS_PER_STEP)
    return Estimate(model_arch(PAPER_MODEL), shape, factors)


def paper_errors(factors: EstimateFactors = DEFAULT_FACTORS) -> list[PointError]:
    """The estimate against every figure of the paper: saturated prefill, and TPOT as the
    estimated step time over the MTP tokens per step (Eq. V2)."""
    est = paper_estimate(factors)
    context = PAPER_INPUT_TOKENS + PAPER_OUTPUT_TOKENS / 2
    out = [PointError(f"prefill tokens/s at {PAPER_INPUT_TOKENS} in", PAPER_PREFILL_TOKENS_PER_S,
                      est.prefill_tokens_per_s(PAPER_INPUT_TOKENS))]
    for batch, tpot in PAPER_TPOT_MS_BY_BATCH.items():
        out.append(PointError(f"TPOT ms at batch {batch}", tpot,
                              est.tpot_ms(batch, context)))
    return out


#: The published overview (trtllm_perf_overview_throughput.csv) is ~11 kB.
MAX_TRTLLM_CSV_BYTES = 16 * 1024 * 1024


@dataclass(frozen=True)
class TrtllmRow:
    model: str
    gpu: str
    tp: int
    precision: str
    isl: int
    osl: int
    output_tokens_per_s: float


def read_trtllm_rows(path: str | Path) -> list[TrtllmRow]:
    """Rows of trtllm_perf_overview_throughput.csv for the supported model families. A regular
    file of at most MAX_TRTLLM_CSV_BYTES (pdopt.inputfiles.InputFileError otherwise)."""
    text = read_limited(path, MAX_TRTLLM_CSV_BYTES, "TensorRT-LLM overview CSVs").decode("utf-8")
    rows = []
    for r in csv.DictReader(io.StringIO(text, newline="")):
        if r["model"] not in TRTLLM_MODELS:
            continue
        rows.append(TrtllmRow(TRTLLM_MODELS[r["model"]], r["gpu"], int(r["tp"]),
                              r["precision"].lower(), int(r["isl"]), int(r["osl"]),
                              float(r["total_output_tokens_per_s"])))
    return rows


def aggregated_output_tokens_per_s(est: Estimate, isl: int, osl: int,
                                   max_batch: int = DEFAULT_MAX_BATCH) -> float:
    """Eq. V1: output tokens/s of aggregated (in-flight batched) serving at the largest batch
    that fits: each request costs isl / prefill rate of GPU time plus osl steps shared by B
    sequences, osl / (isl / TP_max(isl) + osl x TPOT(B, isl + osl/2) / B) (TPOT: Eq. E11b)."""
    context = isl + osl / 2
    batch = est.max_batch(context, max_batch)
    if batch < 1:
        return 0.0
    per_request_s = (isl / est.prefill_tokens_per_s(isl)
                     + osl * est.tpot_ms(batch, context) / 1e3 / batch)
    return osl / per_request_s


def trtllm_errors(rows: Iterable[TrtllmRow], factors: EstimateFactors = DEFAULT_FACTORS
                  ) -> list[PointError]:
    """The estimate against every usable row of the validation set."""
    out = []
    for r in rows:
        shape = InstanceShape(gpu_spec(r.gpu), r.tp, r.precision, TRTLLM_KV_DTYPE)
        est = Estimate(model_arch(r.model), shape, factors)
        predicted = aggregated_output_tokens_per_s(est, r.isl, r.osl)
        out.append(PointError(f"{r.model} {r.gpu} tp{r.tp} {r.precision} {r.isl}/{r.osl}",
                              r.output_tokens_per_s, predicted))
    return out


def error_summary(errors: Iterable[PointError]) -> dict[str, float]:
    """Median and mean absolute relative error, worst case, and the median signed error."""
    rel = [e.relative_error for e in errors]
    absolute = [abs(x) for x in rel]
    return {
        "points": len(rel),
        "median_abs_error": statistics.median(absolute),
        "mean_abs_error": statistics.fmean(absolute),
        "max_abs_error": max(absolute),
        "median_signed_error": statistics.median(rel),
        "geometric_mean_ratio": math.exp(statistics.fmean(math.log(1 + x) for x in rel)),
    }


def _with(base: EstimateFactors, x: Sequence[float]) -> EstimateFactors:
    return replace(base, compute_efficiency=float(x[0]), bandwidth_efficiency=float(x[1]),
                   layer_overhead_us=float(x[2]))


def fit_factors(rows: Sequence[TrtllmRow], base: EstimateFactors = DEFAULT_FACTORS
                ) -> EstimateFactors:
    """Least-squares fit of (compute efficiency, bandwidth efficiency, per-layer overhead) to
    log(estimate / measured) over the TensorRT-LLM rows and the paper's figures."""

    def residuals(x: Sequence[float]) -> list[float]:
        f = _with(base, x)
        errors = trtllm_errors(rows, f) + paper_errors(f)
        return [math.log(e.estimated / e.measured) for e in errors]

    start = [base.compute_efficiency, base.bandwidth_efficiency, base.layer_overhead_us]
    fit = least_squares(residuals, start, bounds=([0.01, 0.01, 0.0], [1.0, 1.0, 1000.0]))
    return replace(base, compute_efficiency=round(float(fit.x[0]), 4),
                   bandwidth_efficiency=round(float(fit.x[1]), 4),
                   layer_overhead_us=round(float(fit.x[2]), 2))


# --- measured serving runs (docs/profiles.md, "Calibration", Eq. C1) -------------------------

# The factors fitted on measured runs and their bounds: no kernel reaches more than 90% of peak
# FLOP/s or 95% of peak HBM bandwidth in practice, so the fit may not claim more.
FITTED_FACTORS = ("compute_efficiency", "bandwidth_efficiency", "moe_gemm_efficiency",
                  "step_overhead_us", "layer_overhead_us", "sequence_overhead_us",
                  "moe_layer_overhead_us", "mla_layer_overhead_us", "fp4_efficiency")
FACTOR_BOUNDS = {
    "compute_efficiency": (0.05, 0.9), "bandwidth_efficiency": (0.05, 0.95),
    "moe_gemm_efficiency": (0.02, 1.0), "step_overhead_us": (0.0, 50_000.0),
    "layer_overhead_us": (0.0, 2_000.0), "sequence_overhead_us": (0.0, 500.0),
    "moe_layer_overhead_us": (0.0, 2_000.0), "mla_layer_overhead_us": (0.0, 2_000.0),
    "fp4_efficiency": (0.1, 1.0),
}
# What differs between engines: their overheads and expert kernels; the hardware efficiencies
# (dense GEMMs, HBM streaming) are shared, fitted on every engine's runs (a per-engine fit of
# all factors trades them against the overheads and generalises worse to held-out GPUs).
ENGINE_FACTORS = ("moe_gemm_efficiency", "step_overhead_us", "layer_overhead_us",
                  "sequence_overhead_us", "moe_layer_overhead_us", "mla_layer_overhead_us")
# Robust loss: residuals beyond ~10% in log ratio count linearly (soft L1), so a few runs the
# model cannot describe (engine bugs, throttled runs) do not pull the fit.
LOSS_SCALE = 0.1
ROUNDING = {"compute_efficiency": 4, "bandwidth_efficiency": 4, "moe_gemm_efficiency": 4,
            "step_overhead_us": 1, "layer_overhead_us": 2, "sequence_overhead_us": 3,
            "moe_layer_overhead_us": 2, "mla_layer_overhead_us": 2,
            "prefill_moe_gemm_efficiency": 4,
            "prefill_fp4_efficiency": 4, "fp4_efficiency": 4}
# Fitted on saturated prefill (Eq. V5) after the decode fit: the routed experts' grouped-GEMM
# efficiency of prefill, and the share of it FP4 weight GEMMs reach (Eq. E9b; fitted only on
# sweeps of both FP4 and other weight dtypes, which alone tell the two apart). Dense prefill
# keeps compute_efficiency: the saturated sweeps are all MoE models (DeepSeek, Kimi), and the
# TensorRT-LLM perf-overview rows of dense models are predicted too fast already (Table C2).
PREFILL_FACTORS = ("prefill_moe_gemm_efficiency", "prefill_fp4_efficiency")
PREFILL_BOUNDS = {"prefill_moe_gemm_efficiency": (0.02, 1.0),
                  "prefill_fp4_efficiency": (0.1, 1.0)}
# An engine with fewer saturated sweeps than this keeps the generic prefill factors.
MIN_PREFILL_POINTS = 3


# Weight of one prefill pair's residual against one run's TPOT residual: the ~80 pairs are the
# only direct prefill evidence beside ~2,600 TPOT runs, so each counts as PAIR_WEIGHT^2 runs.
PAIR_WEIGHT = 4.0


def fit_to_runs(terms: RunTerms, base: EstimateFactors,
                names: Sequence[str] = FITTED_FACTORS, pairs: PairTerms | None = None
                ) -> EstimateFactors:
    """Eq. C1: the factors `names` minimising the soft-L1 sum of log(predicted / measured TPOT)
    over the runs and PAIR_WEIGHT x log(predicted / measured prefill time) over the prompt
    pairs (Eq. V4; scipy least squares within FACTOR_BOUNDS), the others as in `base`."""
    if not len(terms.runs):
        return base
    measured = terms.measured_tpot_ms
    has_pairs = pairs is not None and len(pairs.pairs) > 0

    def with_x(x: Sequence[float]) -> EstimateFactors:
        return replace(base, **{n: float(v) for n, v in zip(names, x, strict=True)})

    def residuals(x: Sequence[float]) -> np.ndarray:
        f = with_x(x)
        out = np.log(terms.predict_tpot_ms(f) / measured)
        if has_pairs:
            assert pairs is not None
            predicted = np.maximum(pairs.predict_ms(f), 1e-6)
            out = np.concatenate([out, PAIR_WEIGHT * np.log(predicted / pairs.measured_ms)])
        return out

    lower = [FACTOR_BOUNDS[n][0] for n in names]
    upper = [FACTOR_BOUNDS[n][1] for n in names]
    start = [min(max(getattr(base, n), lo), hi) for n, lo, hi in zip(names, lower, upper,
                                                                   strict=True)]
    fit = least_squares(residuals, start, bounds=(lower, upper), loss="soft_l1",
                        f_scale=LOSS_SCALE)
    return replace(base, **{n: round(float(v), ROUNDING[n])
                            for n, v in zip(names, fit.x, strict=True)})


def fit_prefill(points: Sequence[SaturatedPrefill], base: EstimateFactors,
                names: Sequence[str] = PREFILL_FACTORS) -> EstimateFactors:
    """Eq. C3: the prefill factors `names` minimising the soft-L1 sum of log(predicted Eq. E9 /
    measured Eq. V5 saturated throughput) over the points (the others as in `base`);
    `prefill_fp4_efficiency` only when the points have FP4 and other weight dtypes."""
    if not points:
        return base
    dtypes = {p.run.weight_dtype == "fp4" for p in points}
    if len(dtypes) < 2:
        names = [n for n in names if n != "prefill_fp4_efficiency"]
    terms = saturated_terms(points, base)

    def with_x(x: Sequence[float]) -> EstimateFactors:
        return replace(base, **{n: float(v) for n, v in zip(names, x, strict=True)})

    def residuals(x: Sequence[float]) -> np.ndarray:
        return np.log(terms.predict_tokens_per_s(with_x(x)) / terms.measured_tokens_per_s)

    lower = [PREFILL_BOUNDS[n][0] for n in names]
    upper = [PREFILL_BOUNDS[n][1] for n in names]
    start = [min(max(getattr(base, n) or base.moe_gemm_efficiency, lo), hi - 1e-6)
             for n, lo, hi in zip(names, lower, upper, strict=True)]
    fit = least_squares(residuals, start, bounds=(lower, upper), loss="soft_l1",
                        f_scale=LOSS_SCALE)
    return replace(base, **{n: round(float(v), ROUNDING[n])
                            for n, v in zip(names, fit.x, strict=True)})


def fit_engines(runs: Sequence[SiliconRun], base: EstimateFactors | None = None,
                prefill: Sequence[SaturatedPrefill] = ()) -> dict[str, EstimateFactors]:
    """Generic factors fitted on every run, then each engine's fitted on its own runs starting
    from the generic ones (Eq. C1); then the prefill factors on the saturated-prefill points
    (Eq. C3: generic on all, an engine on its own when it has MIN_PREFILL_POINTS or more, else
    the generic values). Runs whose weights do not fit are left out."""
    start = base or EstimateFactors(compute_efficiency=0.4, bandwidth_efficiency=0.7,
                                    moe_gemm_efficiency=0.5, step_overhead_us=100.0,
                                    layer_overhead_us=20.0, sequence_overhead_us=1.0,
                                    mla_layer_overhead_us=20.0, fp4_efficiency=0.7)
    usable = [r for r in runs if fits(r, start)]
    pairs = prefill_pairs(usable)
    out = {"generic": fit_to_runs(run_terms(usable, start), start,
                                  pairs=pair_terms(pairs, start))}
    for engine in ENGINES:
        mine = [r for r in usable if r.engine == engine]
        if mine:
            g = out["generic"]
            mine_pairs = [p for p in pairs if p[0].engine == engine]
            out[engine] = fit_to_runs(run_terms(mine, g), g, ENGINE_FACTORS,
                                      pairs=pair_terms(mine_pairs, g))
    if prefill:
        # Eq. C3: FP4 prefill GEMMs start from (and, where the sweeps cannot tell FP4 from the
        # expert efficiency, keep) the FP4 share the decode fit measured on every family (E11e).
        g = out["generic"]
        generic = fit_prefill(prefill, replace(g, prefill_fp4_efficiency=g.fp4_efficiency))
        for name, f in out.items():
            mine_points = [p for p in prefill if p.run.engine == name]
            values = {n: getattr(generic, n) for n in PREFILL_FACTORS}
            if name == "generic" or len(mine_points) < MIN_PREFILL_POINTS:
                out[name] = replace(f, **values)
            else:
                out[name] = fit_prefill(mine_points, replace(f, **values))
    return out


def write_factors(fitted: dict[str, EstimateFactors], source: Path, runs: int,
                  path: Path = FACTORS_PATH,
                  prefill: Sequence[SaturatedPrefill] = ()) -> None:
    """Store fitted factors with their provenance as pdopt/data/estimate_factors.yaml."""
    from importlib.metadata import PackageNotFoundError, version

    try:
        aic_version = version("aiconfigurator-core")
    except PackageNotFoundError:
        aic_version = "unknown"
    fitted_on = datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d")
    data: dict[str, Any] = {"engines": {}}
    for name, f in fitted.items():
        data["engines"][name] = {
            "factors": {k: getattr(f, k) for k in (*FITTED_FACTORS, *PREFILL_FACTORS)},
            "provenance": {
                "fitted_on": fitted_on,
                "runs": ("every engine's" if name == "generic" else
                         f"efficiencies from every engine's runs; {', '.join(ENGINE_FACTORS)} "
                         f"from {name} runs"),
                "data": f"aiconfigurator-core {aic_version} systems/silicon_sample.csv "
                        f"({runs} describable de-duplicated runs of all engines)",
                "method": "docs/profiles.md Eq. C1 (python benchmarks/calibrate_estimate.py "
                          "--write)",
                "prefill": _prefill_provenance(name, prefill),
            },
        }
    header = ("# Calibrated factors of the first-principles estimator (docs/profiles.md, "
              "\"Calibration\").\n# Written by `python benchmarks/calibrate_estimate.py "
              "--write`; do not edit by hand.\n")
    path.write_text(header + yaml.safe_dump(data, sort_keys=False, width=100),
                    encoding="utf-8")


def _prefill_provenance(engine: str, prefill: Sequence[SaturatedPrefill]) -> str:
    own = [p for p in prefill if p.run.engine == engine]
    whose = (f"{len(own)} {engine} sweeps" if engine != "generic"
             and len(own) >= MIN_PREFILL_POINTS else f"all {len(prefill)} sweeps (generic)")
    return (f"{', '.join(PREFILL_FACTORS)} by Eq. C3 on saturated disaggregated prefill "
            f"(Eq. V5), {whose}")


# Runs from which a user's measurements refit the overheads and compute efficiency too.
MANY_RUNS = 20


def factors_to_fit(runs: int) -> tuple[str, ...]:
    """Which factors a user's runs refit (Eq. C2): HBM efficiency alone below MANY_RUNS runs,
    also the per-layer overhead and compute efficiency from MANY_RUNS on. Refitting more from
    a few runs made held-out predictions worse (docs/profiles.md, "Validation on measured
    runs": refit to 8 runs on another GPU type, HBM efficiency alone 16%, with the per-layer
    overhead 18%, against 13% without refit)."""
    if runs >= MANY_RUNS:
        return ("bandwidth_efficiency", "layer_overhead_us", "compute_efficiency")
    return ("bandwidth_efficiency",)


def calibrate_from_runs(runs: Sequence[SiliconRun], base: EstimateFactors
                        ) -> tuple[EstimateFactors, int]:
    """Eq. C2: `base` (an engine's calibrated factors) refitted to a user's measured runs by
    Eq. C1 over `factors_to_fit(n)`; the other factors stay. Returns the factors and the number
    of runs used (describable, weights fit)."""
    usable = [r for r in runs if why_not_describable(r) is None and fits(r, base)]
    if not usable:
        return base, 0
    return fit_to_runs(run_terms(usable, base), base, factors_to_fit(len(usable))), len(usable)


@functools.cache
def fit_to_measurements(paths: tuple[str, ...], base: EstimateFactors,
                        defaults: RunDefaults) -> tuple[EstimateFactors, int]:
    """Eq. C2 on the runs of measurement files (`pdopt.profiles.measurements` formats; what a
    file does not say about its deployment comes from `defaults`). Cached per process."""
    runs = read_measurements(list(paths), defaults)
    if defaults.engine is not None:
        runs = [r for r in runs if r.engine in (defaults.engine, "generic")] or runs
    return calibrate_from_runs(runs, base)
