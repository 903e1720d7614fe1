"""The estimator's calibration (docs/profiles.md, "Calibration"): the documented factors are the
fit, and the documented errors are what they give."""

from __future__ import annotations

from pathlib import Path

import pytest

from pdopt.profiles.calibration import (
    PAPER_MTP_TOKENS_PER_STEP,
    aggregated_output_tokens_per_s,
    error_summary,
    fit_factors,
    paper_errors,
    read_trtllm_rows,
    trtllm_errors,
)
from pdopt.profiles.catalog import gpu_spec, model_arch
from pdopt.profiles.estimate import (
    DEFAULT_FACTORS,
    Estimate,
    EstimateFactors,
    InstanceShape,
    engine_factors,
)


def test_paper_errors_are_the_documented_ones() -> None:
    errors = {e.what: e for e in paper_errors(engine_factors("sglang"))}
    # docs/profiles.md, Table C2 (SGLang factors): prefill +1.9%; TPOT -4.9% .. +4.7%
    assert errors["prefill tokens/s at 6144 in"].relative_error == pytest.approx(0.019, abs=0.001)
    tpot = [e.relative_error for w, e in errors.items() if w.startswith("TPOT")]
    assert [round(100 * x, 1) for x in tpot] == [0.1, 3.0, 4.7, 0.8, -1.9, -4.9]


def test_paper_tpot_is_step_time_over_mtp_tokens() -> None:
    factors = EstimateFactors(0.5, 0.5)
    est = Estimate(model_arch("deepseek-v3.1"),
                   InstanceShape(gpu_spec("H200"), 8, "fp8", "bf16", tokens_per_step=1.875),
                   factors)
    point = next(e for e in paper_errors(factors) if e.what == "TPOT ms at batch 10")
    assert point.estimated == pytest.approx(est.decode_step_ms(10, 6144 + 256) / 1.875)
    assert PAPER_MTP_TOKENS_PER_STEP == 1 + (0.85 + 0.90) / 2


def test_aggregated_throughput_eq_v1_by_hand() -> None:
    factors = EstimateFactors(0.5, 0.5, layer_overhead_us=10.0)
    est = Estimate(model_arch("llama-3.1-8b"), InstanceShape(gpu_spec("H100"), 1), factors)
    # KV: 0.9 x (80e9 - 4e9 - 16,059,990,016) / 131,072 = 411,575 tokens // 1,100 (1,000 in +
    # 200/2) = 374 sequences
    assert est.max_batch(1100) == 374
    per_request = 1000 / est.prefill_tokens_per_s(1000) + 200 * est.decode_step_ms(374, 1100) \
        / 1e3 / 374
    assert aggregated_output_tokens_per_s(est, 1000, 200) == pytest.approx(200 / per_request)


def test_error_summary() -> None:
    from pdopt.profiles.calibration import PointError

    s = error_summary([PointError("a", 100, 110), PointError("b", 100, 80),
                       PointError("c", 100, 100)])
    assert s["points"] == 3
    assert s["median_abs_error"] == pytest.approx(0.10)
    assert s["max_abs_error"] == pytest.approx(0.20)
    assert s["median_signed_error"] == pytest.approx(0.0)


def test_trtllm_perf_overview_errors_as_documented(shared_data: Path) -> None:
    rows = read_trtllm_rows(shared_data / "hardware" / "trtllm_perf_overview_throughput.csv")
    assert len(rows) == 147  # five supported models; Llama-4 rows are skipped
    s = error_summary(trtllm_errors(rows, engine_factors("trtllm")))
    # docs/profiles.md, Table C2: median 16.7%, mean 24.8%, worst 166.8%
    assert (round(100 * s["median_abs_error"], 1), round(100 * s["mean_abs_error"], 1),
            round(100 * s["max_abs_error"], 1)) == (16.7, 24.8, 166.8)


def test_the_old_three_factor_fit_still_runs_on_a_few_rows(shared_data: Path) -> None:
    rows = read_trtllm_rows(shared_data / "hardware" / "trtllm_perf_overview_throughput.csv")
    fitted = fit_factors(rows[:10], DEFAULT_FACTORS)
    assert 0.01 <= fitted.compute_efficiency <= 1 and 0.01 <= fitted.bandwidth_efficiency <= 1


def test_shipped_factors_are_the_fit_on_the_silicon_runs() -> None:
    from pdopt.profiles.calibration import FITTED_FACTORS, fit_engines
    from pdopt.profiles.silicon import describable, read_silicon, silicon_csv_path

    path = silicon_csv_path()
    if path is None:
        pytest.skip("aiconfigurator-core is not installed")
    runs, _, _ = read_silicon(path)
    fitted = fit_engines(describable(runs))
    for engine, f in fitted.items():
        shipped = engine_factors(engine)
        for name in FITTED_FACTORS:
            assert getattr(f, name) == pytest.approx(getattr(shipped, name), rel=1e-3, abs=0.5)
