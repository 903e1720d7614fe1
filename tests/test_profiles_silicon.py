"""The rebuilt estimator's terms against hand-computed values (docs/profiles.md, Eqs. E9-E12a,
V3, V4, V5, C2, C3), the silicon-CSV pipeline, and validation / calibration from measured runs."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import pytest
from click.testing import CliRunner

from pdopt.cli import main
from pdopt.profiles.calibration import (
    calibrate_from_runs,
    factors_to_fit,
    fit_engines,
    fit_prefill,
    fit_to_runs,
)
from pdopt.profiles.catalog import gpu_spec, model_arch
from pdopt.profiles.estimate import Estimate, EstimateFactors, InstanceShape, engine_factors
from pdopt.profiles.measurements import (
    RunDefaults,
    read_measurements,
    read_prefill_measurements,
    validate_prefill,
    validate_runs,
)
from pdopt.profiles.silicon import (
    SaturatedPrefill,
    SiliconRun,
    dedupe,
    pair_terms,
    parse_row,
    peak_tokens_per_s,
    predicted_tpot_ms,
    prefill_pairs,
    prefill_run_estimate,
    ratios,
    read_prefill_runs,
    run_terms,
    saturated_prefill,
    saturated_terms,
)
from pdopt.scenario.problems import ScenarioError

FIXTURE = Path(__file__).parent / "data" / "measured_decode_runs.csv"
F = EstimateFactors(compute_efficiency=0.5, bandwidth_efficiency=0.5, moe_gemm_efficiency=0.25,
                    step_overhead_us=100.0, layer_overhead_us=10.0, sequence_overhead_us=2.0,
                    moe_layer_overhead_us=5.0)


def est(model: str, gpu: str = "H100", gpus: int = 1, **kw: object) -> Estimate:
    return Estimate(model_arch(model), InstanceShape(gpu_spec(gpu), gpus, **kw), F)  # type: ignore[arg-type]


# --- the terms ---------------------------------------------------------------------------------

def test_overheads_per_step_layer_moe_layer_and_sequence_eq_e11() -> None:
    # Llama-3.1-8B (32 layers, no MoE) at batch 4: 100 + 32 x 10 + 4 x 2 = 428 us on top of the
    # operator classes; one more sequence adds 2 us of overhead plus its HBM/FLOP time.
    e = est("llama-3.1-8b")
    zero = replace(F, step_overhead_us=0.0, layer_overhead_us=0.0, sequence_overhead_us=0.0)
    bare = Estimate(e.arch, e.shape, zero)
    assert e.decode_step_ms(4, 1000) - bare.decode_step_ms(4, 1000) == pytest.approx(0.428)
    # Mixtral: 32 MoE layers add 32 x 5 us
    m = est("mixtral-8x7b", gpus=2)
    mb = Estimate(m.arch, m.shape, replace(zero, moe_layer_overhead_us=0.0))
    assert m.decode_step_ms(4, 1000) - mb.decode_step_ms(4, 1000) == pytest.approx(
        (100 + 32 * 10 + 32 * 5 + 4 * 2) * 1e-3)


def test_distinct_experts_grow_with_batch_times_tokens_per_step_eq_e10a() -> None:
    # Mixtral, k/E = 2/8: batch 2 with 1.5 tokens per step touches 8 (1 - 0.75^3) = 4.625
    mtp = est("mixtral-8x7b", gpus=2, tokens_per_step=1.5)
    assert mtp.distinct_experts(3) == pytest.approx(4.625)
    a = mtp.arch
    plain = est("mixtral-8x7b", gpus=2)
    # expert bytes per GPU: 32 layers x distinct x 3 x 4096 x 14336 x 2 bytes / 2 GPUs
    per_expert = 32 * 3 * 4096 * 14336 * 2 / 2
    assert a.expert_params == 3 * 4096 * 14336
    # ... and MTP's one draft pass (Eq. E11c) reads one layer's attention and router weights,
    # the 8 (1 - 0.75^2) experts batch 2 touches in one MoE layer, and the output head
    draft = ((a.attention_params + a.always_active_mlp_params) / 32 * 2 / 2
             + 8 * (1 - 0.75 ** 2) * a.expert_params * 2 / 2 + a.lm_head_params * 2 / 2)
    diff = mtp.decode_bytes_per_gpu(2, 0) - plain.decode_bytes_per_gpu(2, 0)
    assert diff == pytest.approx(per_expert * (4.625 - 8 * (1 - 0.75 ** 2)) + draft)


def test_expert_parallel_all_to_all_eq_e11a() -> None:
    # DeepSeek-V3 on 8 GPUs, EP 8, TP attention: 61 attention all-reduces and 3 dense-MLP
    # all-reduces of 2 x 7/8 x 7168 x 2 bytes; 58 MoE layers send each token to
    # 8 (1 - (7/8)^8) x 7/8 other GPUs, there and back, shared by 8 GPUs.
    e = est("deepseek-v3", "H200", 8, weight_dtype="fp8")
    d_bytes = 7168 * 2
    all_reduce = 2 * 7 / 8 * d_bytes
    remote = 8 * (1 - (7 / 8) ** 8) * 7 / 8
    expected = (61 * all_reduce + 3 * all_reduce + 58 * 2 * remote * d_bytes / 8) / 450e9
    assert e.comm_seconds_per_token() == pytest.approx(expected)
    # EP 1 (tensor-parallel experts): an all-reduce per MoE layer instead
    tp_moe = est("deepseek-v3", "H200", 8, weight_dtype="fp8", moe_ep=1)
    assert tp_moe.comm_seconds_per_token() == pytest.approx(122 * all_reduce / 450e9)
    with pytest.raises(ScenarioError, match="moe_ep: must divide the 8 GPUs"):
        est("deepseek-v3", "H200", 8, weight_dtype="fp8", moe_ep=3)


def test_prefill_routed_experts_at_grouped_gemm_efficiency_and_additive_link_eq_e9() -> None:
    e = est("qwen3-30b-a3b", "H100", 2, weight_dtype="fp8")
    a = e.arch
    n = 2048
    moe_flops = 2 * a.moe_layers * a.experts_per_token * a.expert_params
    # the attention products at BF16 (a BF16 KV cache, Eq. E7b): 48 x 32 x 256 x 2049
    attention = 48 * 32 * (128 + 128) * (n + 1)
    assert a.prefill_attention_flops_per_token(n) == attention
    dense_flops = a.prefill_flops_per_token(n) - moe_flops - attention
    peak, peak_bf16 = 2 * 1979e12, 2 * 989.5e12
    compute = (dense_flops / (peak * 0.5) + attention / (peak_bf16 * 0.5)
               + moe_flops / (peak * 0.5 * 0.25))
    # the link time adds (Eq. E11a): 48 layers x (attention all-reduce 2 x 1/2 x 2048 x 2 =
    # 4,096 bytes + MoE all-to-all 2 x 2 (1 - (1/2)^8) x 1/2 x 2048 x 2 / 2 = 4,080 bytes) =
    # 392,448 bytes over 450 GB/s
    link = 48 * (2 * 0.5 * 2048 * 2 + 2 * 2 * (1 - 0.5 ** 8) * 0.5 * 2048 * 2 / 2) / 450e9
    assert link * 450e9 == pytest.approx(392_448)
    assert e.comm_seconds_per_token() == pytest.approx(link)
    assert e.prefill_tokens_per_s(n) == pytest.approx(1 / (compute + link))


def test_mla_layers_carry_their_own_overhead_eq_e11d() -> None:
    mla = replace(F, mla_layer_overhead_us=7.0)
    plain = est("deepseek-v3", "H200", 8, weight_dtype="fp8")
    with_mla = Estimate(plain.arch, plain.shape, mla)
    # 61 MLA layers x 7 us = 0.427 ms per step, at any batch
    for batch in (1, 64):
        assert with_mla.decode_step_ms(batch, 2000) - plain.decode_step_ms(batch, 2000) == \
            pytest.approx(61 * 7e-3)
    # MTP with 2 tokens per step: one draft pass of one more MLA layer (Eq. E11c): 62 x 7 us
    shape = replace(plain.shape, tokens_per_step=2.0)
    assert Estimate(plain.arch, shape, mla).decode_step_ms(8, 2000) - Estimate(
        plain.arch, shape, F).decode_step_ms(8, 2000) == pytest.approx(62 * 7e-3)
    # GQA attention: no MLA layers, no change
    gqa = est("llama-3.1-8b")
    assert Estimate(gqa.arch, gqa.shape, mla).decode_step_ms(4, 1000) == gqa.decode_step_ms(4, 1000)


def test_operator_classes_each_take_their_own_max_eq_e11() -> None:
    # Llama-3.1-8B, batch 1: every class is HBM-bound: the step is the bytes over 0.5 x HBM plus
    # overheads (the old single max gives the same here)
    e = est("llama-3.1-8b")
    bytes_ = e.decode_bytes_per_gpu(1, 1000)
    assert e.decode_step_ms(1, 1000) == pytest.approx(
        1e3 * bytes_ / (3.35e12 * 0.5) + (100 + 320 + 2) * 1e-3)


def test_engine_factors_are_package_data_with_provenance() -> None:
    from pdopt.profiles.estimate import calibrated_factors

    data = calibrated_factors()["engines"]
    assert set(data) == {"generic", "vllm", "sglang", "trtllm"}
    for entry in data.values():
        assert "silicon_sample.csv" in entry["provenance"]["data"]
        assert entry["provenance"]["fitted_on"]
    assert engine_factors("vllm") != engine_factors("trtllm")
    assert engine_factors(None) == engine_factors("generic")
    with pytest.raises(ScenarioError, match="unknown engine 'tgi'"):
        engine_factors("tgi")


# --- the silicon CSV ---------------------------------------------------------------------------

def _row(**kw: str) -> dict[str, str]:
    row = {"id": "r", "backend": "trtllm", "backend_version": "1.0", "model_path":
           "deepseek-ai/DeepSeek-R1", "system": "b200_sxm", "precision": "fp8", "mode": "agg",
           "isl": "1024", "osl": "1024", "batch_size": "16", "tp_size": "4",
           "attention_dp_size": "2", "moe_tp_size": "1", "moe_ep_size": "8",
           "silicon_data_source": "db; silicon_concurrency=32; x", "silicon_ttft_ms": "100.0",
           "silicon_tpot_ms": "20.0"}
    row.update(kw)
    return row


def test_parse_row_batch_is_per_attention_dp_rank() -> None:
    run = parse_row(_row())
    assert run is not None
    # 4 TP x 2 attention-DP ranks = 8 GPUs; batch 16 per rank = 32 = the recorded concurrency
    assert (run.gpus, run.batch, run.concurrency, run.model, run.gpu) == (
        8, 32, 32, "deepseek-v3", "B200")
    assert run.attention is None  # ranks of 4 GPUs: a hybrid the estimator does not describe
    disagg = parse_row(_row(mode="disagg", batch_size="", tp_size="", decode_batch_size="64",
                            decode_tp_size="1", decode_attention_dp_size="8",
                            decode_moe_ep_size="8", prefill_tp_size="4",
                            prefill_attention_dp_size="1"))
    assert disagg is not None and (disagg.gpus, disagg.batch, disagg.attention) == (8, 512, "dp")
    assert parse_row(_row(mode="disagg", batch_size="")) is None  # no decode batch recorded


def test_dedupe_drops_a_run_filed_again_under_another_model_name() -> None:
    a = parse_row(_row())
    b = parse_row(_row(id="again", model_path="deepseek-ai/DeepSeek-V3"))
    c = parse_row(_row(id="other", silicon_tpot_ms="21.0"))
    assert a and b and c
    assert dedupe([a, b, c]) == [a, c]


def test_aggregated_runs_carry_the_prompts_they_prefill_eq_v3() -> None:
    run = SiliconRun("r", "vllm", "0", "m", "llama-3.1-8b", "H100", "h100_sxm", "bf16", "agg",
                     1000, 200, 1, 1, 1, 1, 8, 8, 50.0, 10.0)
    e = Estimate(model_arch("llama-3.1-8b"), InstanceShape(gpu_spec("H100"), 1, "bf16", "bf16"),
                 F)
    t = e.decode_terms(8, 1100)
    p = e.prefill_terms(1000)
    prompt = 8 * 1000 / 200  # 40 prompt tokens ride along each step
    mem, comp = t.memory_s, t.compute_s
    expected = (max(mem[0] / 0.5, comp[0] / 0.5) + max(mem[1] / 0.5, (comp[1] + prompt
                * p.dense_s) / 0.5) + max(mem[2] / 0.5, comp[2] / 0.125)
                + max(mem[3] / 0.5, comp[3] / 0.5) + (100 + 320 + 16) * 1e-6)
    assert predicted_tpot_ms(run, F) == pytest.approx(1e3 * expected)
    assert predicted_tpot_ms(replace(run, mode="disagg"), F) == pytest.approx(
        e.decode_step_ms(8, 1100))


def test_fp4_aggregated_runs_split_gemms_from_attention_products_eq_e11e_v3() -> None:
    # An FP4 run on one B200 (FP8 KV): the weight GEMMs of the step and of the 1,280 prompt
    # tokens it carries (64 x 4,000 / 200) run at e_4 e_c = 0.6 x 0.5, their attention
    # products (E7b) at e_c alone
    run = SiliconRun("r", "vllm", "0", "m", "llama-3.1-8b", "B200", "b200_sxm", "fp4", "agg",
                     4000, 200, 1, 1, 1, 1, 64, 64, 50.0, 10.0)
    f = replace(F, fp4_efficiency=0.6)
    e = Estimate(model_arch("llama-3.1-8b"), InstanceShape(gpu_spec("B200"), 1, "fp4", "fp8"),
                 f)
    t, p, prompt = e.decode_terms(64, 4100), e.prefill_terms(4000), 64 * 4000 / 200
    mem, comp, products = t.memory_s, t.compute_s, t.products_s[0]
    assert products == pytest.approx(64 * 2 * 32 * 32 * 256 * 4100 / 4.5e15)  # at FP8's peak
    expected = (max(mem[0] / 0.5, ((comp[0] - products) / 0.6 + products) / 0.5)
                + max(mem[1] / 0.5, ((comp[1] + prompt * (p.dense_s - p.attention_s)) / 0.6
                                     + prompt * p.attention_s) / 0.5)
                + max(mem[3] / 0.5, comp[3] / 0.6 / 0.5) + (100 + 320 + 2 * 64) * 1e-6)
    assert predicted_tpot_ms(run, f) == pytest.approx(1e3 * expected)
    # the prompt's GEMMs make the MLP class compute-bound, so e_4 shows in the TPOT
    assert predicted_tpot_ms(run, f) > predicted_tpot_ms(run, F)


def test_fp4_share_is_fitted_on_decode_runs_and_carried_to_prefill_eq_c1_c3() -> None:
    # Runs made by the estimate at e_4 = 0.6 (compute-bound FP4 steps: aggregated, batch 256)
    # give e_4 back; FP8 runs beside them pin e_c
    truth = replace(F, fp4_efficiency=0.6)
    runs = []
    for dtype in ("fp4", "fp8"):
        for batch in (64, 128, 256):
            r = SiliconRun(f"{dtype}{batch}", "vllm", "0", "m", "llama-3.1-8b", "B200",
                           "b200_sxm", dtype, "agg", 4000, 200, 1, 1, 1, 1, batch, batch, 50.0,
                           1.0)
            runs.append(replace(r, tpot_ms=predicted_tpot_ms(r, truth)))
    fitted = fit_to_runs(run_terms(runs, F), F, ("fp4_efficiency",))
    assert fitted.fp4_efficiency == pytest.approx(0.6, abs=1e-3)
    # Eq. C3: FP4 sweeps alone cannot tell e_p4 from e_pmoe: e_p4 is the decode fit's e_4
    point = saturated_prefill(read_prefill_runs(SWEEPS))[0]
    fp4_run = replace(point.run, gpu="B200", system="B200", precision="fp4")
    out = fit_engines(runs, F, prefill=[replace(point, run=fp4_run)])
    assert out["generic"].prefill_fp4_efficiency == out["generic"].fp4_efficiency != 1.0
    assert out["vllm"].prefill_fp4_efficiency == out["generic"].fp4_efficiency


def test_prefill_pairs_eq_v4() -> None:
    short = SiliconRun("s", "vllm", "0", "m", "llama-3.1-8b", "H100", "h100_sxm", "bf16", "agg",
                       1024, 1024, 1, 1, 1, 1, 4, 4, 50.0, 10.0)
    long = replace(short, run_id="l", input_tokens=8192, ttft_ms=450.0)
    busy = replace(short, run_id="b", batch=64, input_tokens=8192, ttft_ms=900.0)
    assert prefill_pairs([short, long, busy]) == [(short, long)]
    t = pair_terms([(short, long)], F)
    e = est("llama-3.1-8b")
    assert t.measured_ms[0] == 400.0
    assert t.predict_ms(F)[0] == pytest.approx(
        1e3 * (8192 / e.prefill_tokens_per_s(8192) - 1024 / e.prefill_tokens_per_s(1024)))


def test_ratios_summary() -> None:
    s = ratios([1.0, 1.2, 0.7, 1.05])
    assert s["runs"] == 4 and s["median_ratio"] == pytest.approx(1.025)
    assert s["median_abs_error"] == pytest.approx(0.125)  # |errors| 0, .05, .2, .3
    assert s["within_10"] == 0.5 and s["within_25"] == 0.75
    assert s["p90_abs_error"] == pytest.approx(0.3)


# --- measured runs: validate and calibrate_from ------------------------------------------------

def test_measurements_read_the_generic_csv_with_shape_columns() -> None:
    runs = read_measurements([str(FIXTURE)])
    assert len(runs) == 5  # the prefill row is skipped
    first, last = runs[0], runs[-1]
    assert (first.model, first.gpu, first.gpus, first.batch, first.tpot_ms, first.engine) == (
        "llama-3.1-8b", "H100", 1, 1, 7.0, "vllm")
    assert (last.model, last.gpu, last.gpus, last.weight_dtype, last.kv_dtype) == (
        "qwen3-32b", "H200", 2, "fp8", "fp8")


def test_measurements_without_a_gpu_need_the_flag(tmp_path: Path) -> None:
    path = tmp_path / "runs.csv"
    path.write_text("role,concurrency,input_tokens,output_tokens,tpot_ms\n"
                    "decode,4,1000,200,8.0\n")
    with pytest.raises(ScenarioError, match="does not name its model"):
        read_measurements([str(path)])
    runs = read_measurements([str(path)], RunDefaults(model="llama-3.1-8b", gpu="H100"))
    assert runs[0].gpu == "H100" and runs[0].batch == 4


def test_validate_runs_compares_each_run_with_the_estimate() -> None:
    runs = read_measurements([str(FIXTURE)])
    result = validate_runs(runs, F)
    by_run = {r["run"].rsplit(" ", 1)[1]: r for r in result["runs"]}
    assert by_run["2"]["predicted_tpot_ms"] == pytest.approx(predicted_tpot_ms(runs[0], F))
    assert by_run["2"]["ratio"] == pytest.approx(by_run["2"]["predicted_tpot_ms"] / 7.0)
    assert result["summary"]["all"]["runs"] == 5
    assert set(result["summary"]["engine"]) == {"vllm", "sglang"}
    assert set(result["summary"]["batch"]) == {"1-8", "9-64"}


def test_profile_validate_command_formats() -> None:
    runner = CliRunner()
    table = runner.invoke(main, ["profile", "validate", str(FIXTURE)])
    assert table.exit_code == 0, table.output
    assert "decode TPOT per run" in table.output and "median predicted/measured" in table.output
    js = runner.invoke(main, ["profile", "validate", str(FIXTURE), "--format", "json"])
    data = json.loads(js.output)
    assert data["summary"]["all"]["runs"] == 5 and len(data["runs"]) == 5
    csv_out = runner.invoke(main, ["profile", "validate", str(FIXTURE), "--format", "csv"])
    assert csv_out.exit_code == 0 and "by,group,runs" in csv_out.output
    bad = runner.invoke(main, ["profile", "validate", str(FIXTURE.parent / "missing.csv")])
    assert bad.exit_code == 2 and "Traceback" not in bad.output


def test_calibrate_from_refits_the_engine_factors_eq_c2() -> None:
    assert factors_to_fit(1) == factors_to_fit(19) == ("bandwidth_efficiency",)
    assert factors_to_fit(20) == ("bandwidth_efficiency", "layer_overhead_us",
                                  "compute_efficiency")
    runs = [r for r in read_measurements([str(FIXTURE)]) if r.engine == "vllm"]
    base = engine_factors("vllm")
    fitted, used = calibrate_from_runs(runs, base)
    assert used == 4
    unchanged = ("compute_efficiency", "layer_overhead_us", "moe_gemm_efficiency",
                 "step_overhead_us", "sequence_overhead_us")
    assert all(getattr(fitted, n) == getattr(base, n) for n in unchanged)
    before = validate_runs(runs, base)["summary"]["all"]["median_abs_error"]
    after = validate_runs(runs, fitted)["summary"]["all"]["median_abs_error"]
    assert after <= before


def test_calibrate_from_in_an_estimate_block_says_so_in_source() -> None:
    from pdopt.profiles.resolve import estimated_instances

    items, est_ = estimated_instances("llama-3.1-8b", "B200", 1, roles=("decode",),
                                      lengths=[(1000, 200)], engine="vllm",
                                      calibrate_from=[str(FIXTURE)])
    assert "calibrated to 4 measured run(s) of measured_decode_runs.csv" in items[0]["source"]
    assert est_.factors != engine_factors("vllm")


def test_a_scenario_estimate_block_with_engine_and_calibrate_from(tmp_path: Path) -> None:
    import shutil

    from pdopt.profiles.resolve import resolve_profiles
    from pdopt.scenario.loading import scenario_from_data

    runs = tmp_path / "h100-runs.csv"
    shutil.copy(FIXTURE, runs)
    block = {"model": "llama-3.1-8b", "engine": "vllm", "engine_version": "0.11.0",
             "calibrate_from": [str(runs)]}
    data = {
        "name": "x", "gpus": {"B200": {"cost_per_hour": 5.0}},
        "instances": [{"name": "p", "model": "llama-3.1-8b", "role": "prefill", "gpu": "B200",
                       "gpus_per_instance": 1, "profile": {"estimate": {"model": "llama-3.1-8b"}}},
                      {"name": "d", "model": "llama-3.1-8b", "role": "decode", "gpu": "B200",
                       "gpus_per_instance": 1, "profile": {"estimate": block}}],
        "workloads": [{"name": "w", "model": "llama-3.1-8b", "requests_per_s": 1,
                       "input_tokens": 1000, "output_tokens": 200,
                       "slo": {"ttft_ms": 1000, "tpot_ms": 30}}]}
    resolved = resolve_profiles(scenario_from_data(data), use_cache=False)
    source = resolved.instances[1].source
    assert "vllm 0.11.0 factors" in source
    assert "calibrated to 4 measured run(s) of h100-runs.csv" in source
    plain = dict(block, calibrate_from=None)
    data["instances"][1]["profile"] = {"estimate": plain}
    other = resolve_profiles(scenario_from_data(data), use_cache=False).instances[1]
    assert other.tpot_tables != resolved.instances[1].tpot_tables


# --- saturated prefill of disaggregated sweeps (Eqs. V5, V5a, C3) -----------------------------

SWEEPS = Path(__file__).parent / "data" / "silicon_prefill_sweeps.csv"


def test_served_prefill_throughput_by_littles_law_eq_v5a() -> None:
    runs = {r.run_id: r for r in read_prefill_runs(SWEEPS)}
    assert len(runs) == 12
    r = runs["sat_c256"]
    # 8 GPUs (1 TP x 8 attention-DP ranks), EP 8, one worker
    assert (r.gpus, r.attention_dp, r.moe_ep, r.workers, r.model, r.gpu) == (
        8, 8, 8, 1, "deepseek-v3", "H200")
    # 256 requests / (20 s + 1023 x 30 ms) x 8192 prompt tokens / 1 worker
    assert r.served_tokens_per_s == pytest.approx(256 / (20 + 1023 * 0.030) * 8192)
    assert r.served_tokens_per_s == pytest.approx(41_372.1, abs=0.1)
    assert replace(r, workers=2).served_tokens_per_s == pytest.approx(41_372.1 / 2, abs=0.1)


def test_saturated_sweeps_follow_the_documented_rule_eq_v5() -> None:
    points = saturated_prefill(read_prefill_runs(SWEEPS))
    # kept: the sweep whose TTFT rose 40x (500 ms -> 20 s); dropped: the sweep whose TTFT
    # stayed under 4x its lowest, the 8,192-token outputs (decode-bound), and the sweep implying
    # 2.1 M tokens/s, above 0.9 x the 172,337 tokens/s of 8 x H200 at peak FP8 FLOP/s
    assert [(p.run.run_id, p.sweep_runs) for p in points] == [("sat_c256", 3)]
    fast = {r.run_id: r for r in read_prefill_runs(SWEEPS)}["fast_c4096"]
    assert fast.served_tokens_per_s > 0.9 * peak_tokens_per_s(fast)
    assert peak_tokens_per_s(fast) == pytest.approx(
        8 * 1979e12 / model_arch("deepseek-v3").prefill_flops_per_token(8192))


def test_prefill_fit_recovers_the_grouped_gemm_efficiency_eq_c3() -> None:
    points = saturated_prefill(read_prefill_runs(SWEEPS))
    base = replace(F, prefill_moe_gemm_efficiency=0.5)
    est = prefill_run_estimate(points[0].run, replace(F, prefill_moe_gemm_efficiency=0.2))
    # a measurement that the estimate at e_pmoe = 0.2 matches exactly is fitted back to 0.2
    exact = replace(points[0], tokens_per_s=est.prefill_tokens_per_s(8192))
    fitted = fit_prefill([exact], base)
    assert fitted.prefill_moe_gemm_efficiency == pytest.approx(0.2, abs=1e-3)
    assert fitted.compute_efficiency == F.compute_efficiency  # decode factors untouched
    assert saturated_terms([exact], fitted).predict_tokens_per_s(fitted)[0] == pytest.approx(
        exact.tokens_per_s, rel=1e-3)


def test_prefill_fit_separates_fp4_gemms_only_with_both_dtypes_eq_c3() -> None:
    point = saturated_prefill(read_prefill_runs(SWEEPS))[0]  # DeepSeek-V3 FP8 on 8 x H200
    fp4_run = replace(point.run, gpu="B200", system="B200", precision="fp4")
    truth = replace(F, prefill_moe_gemm_efficiency=0.2, prefill_fp4_efficiency=0.5)
    fp8 = replace(point, tokens_per_s=prefill_run_estimate(point.run, truth)
                  .prefill_tokens_per_s(8192))
    fp4 = SaturatedPrefill(fp4_run, prefill_run_estimate(fp4_run, truth)
                           .prefill_tokens_per_s(8192), 3)
    base = replace(F, prefill_moe_gemm_efficiency=0.5)
    fitted = fit_prefill([fp8, fp4], base)
    assert fitted.prefill_moe_gemm_efficiency == pytest.approx(0.2, abs=1e-3)
    assert fitted.prefill_fp4_efficiency == pytest.approx(0.5, abs=1e-3)
    # FP4 sweeps alone cannot tell e_p4 from e_pmoe: e_p4 stays as in `base`
    assert fit_prefill([fp4], base).prefill_fp4_efficiency == base.prefill_fp4_efficiency


def test_profile_validate_compares_saturated_prefill() -> None:
    points = read_prefill_measurements([str(SWEEPS)])
    result = validate_prefill(points, F)
    [run] = result["runs"]
    predicted = prefill_run_estimate(points[0].run, F).prefill_tokens_per_s(8192)
    assert run["predicted_tokens_per_s"] == pytest.approx(predicted)
    assert run["ratio"] == pytest.approx(predicted / 41_372.104951667)
    out = CliRunner().invoke(main, ["profile", "validate", str(SWEEPS), "--format", "json"])
    assert out.exit_code == 0, out.output
    data = json.loads(out.output)
    assert data["prefill"]["summary"]["all"]["runs"] == 1
    table = CliRunner().invoke(main, ["profile", "validate", str(SWEEPS)])
    assert "saturated prefill per sweep" in table.output and "sat_c256" in table.output
