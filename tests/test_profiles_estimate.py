"""The first-principles estimator against hand-computed values (docs/profiles.md, Eqs. E1-E13)."""

from __future__ import annotations

import csv
import json
from dataclasses import replace
from pathlib import Path

import pytest

from pdopt.errors import UnreachableTargetError
from pdopt.profiles.architecture import arch_from_config
from pdopt.profiles.catalog import bundled_models, gpu_catalog, gpu_spec, model_arch
from pdopt.profiles.estimate import (
    Estimate,
    EstimateFactors,
    InstanceShape,
    batch_grid,
    estimate_tables,
)
from pdopt.scenario.problems import ScenarioError
from pdopt.scenario.schema import Instance

FACTORS = EstimateFactors(compute_efficiency=0.5, bandwidth_efficiency=0.5,
                          layer_overhead_us=10.0, memory_utilization=0.9)


def llama8b(gpu: str = "H100", gpus: int = 1, **kw: str) -> Estimate:
    return Estimate(model_arch("llama-3.1-8b"), InstanceShape(gpu_spec(gpu), gpus, **kw), FACTORS)


# --- parameters and per-token quantities (Eqs. E1-E8) ----------------------------------------

def test_llama_8b_parameters_by_hand() -> None:
    a = model_arch("llama-3.1-8b")
    # Eq. E1: 4096 x (32 + 2x8) x 128 + 32 x 128 x 4096 = 25,165,824 + 16,777,216
    assert a.attention_params_per_layer == 41_943_040
    assert a.dense_mlp_params == 3 * 4096 * 14336 == 176_160_768  # Eq. E3
    # Eq. E4: 32 x 218,103,808 + 2 x 128,256 x 4,096 (untied embedding and head)
    assert a.total_params == 32 * 218_103_808 + 2 * 525_336_576 == 8_029_995_008
    # Meta publishes 8,030,261,248 including the norms (266,240) that the estimator leaves out.
    assert a.total_params + 32 * 2 * 4096 + 4096 == 8_030_261_248
    assert a.active_params == 32 * 218_103_808 + 525_336_576  # Eq. E5: no embedding lookup


@pytest.mark.parametrize(("model", "total_b", "active_b", "tolerance"), [
    # Published sizes; "active" as the model cards count it (with the input embedding).
    ("deepseek-v3", 671, 37, 0.015),        # DeepSeek-V3 report: 671B total, 37B activated
    ("qwen3-235b-a22b", 235, 22, 0.03),     # Qwen3 model card: 235B total, 22B activated
    ("qwen3-30b-a3b", 30.5, 3.3, 0.03),     # 30.5B total, 3.3B activated
    ("mixtral-8x7b", 46.7, 12.9, 0.01),     # Mistral: 46.7B total, 12.9B per token
    ("llama-3.1-405b", 405, 405, 0.01),
])
def test_published_parameter_counts(model: str, total_b: float, active_b: float,
                                    tolerance: float) -> None:
    a = model_arch(model)
    assert a.total_params / 1e9 == pytest.approx(total_b, rel=tolerance)
    assert (a.active_params + a.embedding_params) / 1e9 == pytest.approx(active_b, rel=tolerance)


def test_deepseek_structure() -> None:
    a = model_arch("deepseek-v3.1")
    assert (a.moe_layers, a.dense_layers, a.is_mla) == (58, 3, True)
    # Eq. E2 by hand: q 7168x1536 + 1536x128x192, kv 7168x576 + 512x128x256, o 128x128x7168
    q = 7168 * 1536 + 1536 * 128 * 192
    kv = 7168 * 576 + 512 * 128 * 256
    o = 128 * 128 * 7168
    assert a.attention_params_per_layer == q + kv + o == 187_105_280
    assert a.shared_expert_params == 3 * 7168 * 2048


def test_kv_bytes_per_token_eq_e6() -> None:
    assert model_arch("llama-3.1-8b").kv_bytes_per_token(2) == 2 * 32 * 8 * 128 * 2 == 131_072
    assert model_arch("deepseek-v3").kv_bytes_per_token(2) == 61 * (512 + 64) * 2 == 70_272
    assert model_arch("qwen3-32b").kv_bytes_per_token(1) == 2 * 64 * 8 * 128 == 131_072


def test_flops_per_token_eqs_e7_e8() -> None:
    a = model_arch("llama-3.1-8b")
    # Eq. E7 at n = 1023: 2 x 6,979,321,856 + 32 x 32 x (128 + 128) x 1024
    assert a.prefill_flops_per_token(1023) == 13_958_643_712 + 268_435_456
    # Eq. E8 at context 1000: 2 x 7,504,658,432 + 2 x 32 x 32 x 256 x 1000
    assert a.decode_flops_per_token(1000) == 15_009_316_864 + 524_288_000


# --- the roofline (Eqs. E9-E13) --------------------------------------------------------------

def test_prefill_throughput_eq_e9() -> None:
    # one GPU: no communication; 494.75e12 FLOP/s / 14,227,079,168 FLOPs per token
    assert llama8b(weight_dtype="bf16").prefill_tokens_per_s(1023) == pytest.approx(34_775.23,
                                                                                     abs=0.01)


def test_tensor_parallel_communication_eq_e11a() -> None:
    est = Estimate(model_arch("llama-3.1-70b"), InstanceShape(gpu_spec("H100"), 2), FACTORS)
    # 80 layers x 2 all-reduces x 2 x (1/2) x 8192 x 2 bytes = 2,621,440 bytes at 450 GB/s
    assert est.comm_seconds_per_token() == pytest.approx(2_621_440 / 450e9)
    assert llama8b().comm_seconds_per_token() == 0.0


def test_decode_step_eq_e11_by_hand() -> None:
    est = llama8b()
    # bytes: weights without the embedding table (8,029,995,008 - 525,336,576) x 2 bytes
    # + KV 4 x 1000 x 131,072 = 15,009,316,864 + 524,288,000
    assert est.decode_bytes_per_gpu(4, 1000) == 15_533_604_864
    memory_ms = 15_533_604_864 / (3.35e12 * 0.5) * 1e3  # 9.2738 ms, above compute (0.126 ms)
    assert est.decode_step_ms(4, 1000) == pytest.approx(memory_ms + 32 * 10e-3)
    assert est.decode_step_ms(4, 1000) == pytest.approx(9.5938, abs=1e-4)


def test_tpot_with_mtp_eq_e11b_e11c() -> None:
    plain = llama8b()
    mtp = llama8b(tokens_per_step=1.875)
    assert (mtp.draft_passes(), llama8b(tokens_per_step=3).draft_passes(), plain.draft_passes()) \
        == (1, 2, 0)
    # Eq. E11c: one draft pass = one layer's mean share of attention weights + KV and MLP
    # weights, and the whole output head: (2 x 1,342,177,280 + 4 x 1000 x 131,072) / 32
    # + 2 x 5,637,144,576 / 32 + 2 x 525,336,576 = 1,503,264,768 bytes (memory-bound at batch
    # 4), plus one more layer's 10 us overhead; the step verifies 4 x 1.875 tokens, which
    # stays memory-bound, so its own time is the plain step's.
    draft_ms = 1_503_264_768 / (3.35e12 * 0.5) * 1e3 + 10e-3
    assert mtp.decode_step_ms(4, 1000) == pytest.approx(plain.decode_step_ms(4, 1000) + draft_ms)
    assert mtp.decode_step_ms(4, 1000) == pytest.approx(10.5013, abs=1e-4)
    assert mtp.tpot_ms(4, 1000) == pytest.approx(10.5013 / 1.875, abs=1e-4)
    assert mtp.tpot_table(1000, 100, max_batch=4)[4] == pytest.approx(mtp.tpot_ms(4, 1050),
                                                                       abs=1e-3)
    with pytest.raises(ScenarioError, match="tokens_per_step: must be >= 1"):
        llama8b(tokens_per_step=0.5)


def test_attention_runs_at_the_kv_dtype_eq_e7b() -> None:
    # FP8 weights over a BF16 KV cache on H100: the weight GEMMs (2 x 6,979,321,856 FLOPs per
    # token) at FP8's 1979 TFLOP/s, the attention products (32 x 32 x 256 x 1024) at BF16's 989.5
    fp8 = llama8b(weight_dtype="fp8")
    assert fp8.attention_dtype == "bf16"
    assert fp8.prefill_tokens_per_s(1023) == pytest.approx(
        1 / (13_958_643_712 / (1979e12 * 0.5) + 268_435_456 / (989.5e12 * 0.5)))
    assert fp8.prefill_tokens_per_s(1023) == pytest.approx(68_262.50, abs=0.01)
    # an FP8 KV cache: attention in FP8 too (TensorRT-LLM's FP8 FMHA)
    both = llama8b(weight_dtype="fp8", kv_dtype="fp8")
    assert both.attention_dtype == "fp8"
    assert both.prefill_tokens_per_s(1023) == pytest.approx(0.5 * 1979e12 / 14_227_079_168)
    # FP4 weights never make attention FP4
    assert llama8b("B200", weight_dtype="fp4", kv_dtype="fp8").attention_dtype == "fp8"
    assert llama8b("B200", weight_dtype="fp4").attention_dtype == "bf16"


def test_prefill_has_its_own_efficiencies() -> None:
    base = llama8b(weight_dtype="bf16").prefill_tokens_per_s(1023)
    own = Estimate(model_arch("llama-3.1-8b"), InstanceShape(gpu_spec("H100"), 1),
                   replace(FACTORS, prefill_compute_efficiency=0.25))
    assert own.prefill_tokens_per_s(1023) == pytest.approx(base / 2)
    assert FACTORS.prefill_efficiencies == (0.5, 1.0)  # None: the decode fit's
    assert replace(FACTORS, prefill_moe_gemm_efficiency=0.2).prefill_efficiencies == (0.5, 0.2)


def test_fp4_prefill_gemms_eq_e9b_by_hand() -> None:
    # Llama-3.1-8B on one B200, FP4 weights, BF16 KV, prompt of 1,023: E7 14,227,079,168 FLOPs
    # per token, 268,435,456 of them attention products (32 x 32 x 256 x 1,024) at BF16's
    # 2,250 TFLOP/s x e_p 0.5; the 13,958,643,712 weight-GEMM FLOPs at FP4's 9,000 TFLOP/s x
    # e_p 0.5 x e_p4 0.6: 1 / (5.16987e-6 + 2.38609e-7 s) = 184,894.9 tokens/s
    shape = InstanceShape(gpu_spec("B200"), 1, "fp4", "bf16")
    fp4 = Estimate(model_arch("llama-3.1-8b"), shape, replace(FACTORS, prefill_fp4_efficiency=0.6))
    assert 13_958_643_712 + 268_435_456 == 14_227_079_168
    assert fp4.prefill_tokens_per_s(1023) == pytest.approx(
        1 / (13_958_643_712 / (9e15 * 0.5 * 0.6) + 268_435_456 / (2.25e15 * 0.5)))
    assert fp4.prefill_tokens_per_s(1023) == pytest.approx(184_894.9, abs=0.1)
    # e_p4 = 1 (the default): 299,353.7 tokens/s; FP8 weights ignore e_p4
    plain = Estimate(model_arch("llama-3.1-8b"), shape, FACTORS)
    assert plain.prefill_tokens_per_s(1023) == pytest.approx(299_353.7, abs=0.1)
    fp8 = InstanceShape(gpu_spec("B200"), 1, "fp8", "bf16")
    assert Estimate(model_arch("llama-3.1-8b"), fp8, replace(
        FACTORS, prefill_fp4_efficiency=0.6)).prefill_tokens_per_s(1023) == pytest.approx(
        Estimate(model_arch("llama-3.1-8b"), fp8, FACTORS).prefill_tokens_per_s(1023))


def test_decode_turns_compute_bound_at_large_batch() -> None:
    # Eq. E11 at batch 4096, context 100, per operator class (1 x H100, bf16, e_c = e_b = 0.5):
    # attention: HBM 32 x 41,943,040 x 2 + 4096 x 100 x 131,072 bytes = 56,371,445,760 bytes
    #   -> 33.655 ms; FLOPs 4096 x (2 x 1,342,177,280 + 2 x 32 x 32 x 256 x 100) = 1.1209e16
    #   -> 22.656 ms: memory-bound
    # MLP: HBM 32 x 176,160,768 x 2 bytes -> 6.731 ms; FLOPs 4096 x 2 x 5,637,144,576
    #   -> 93.341 ms: compute-bound
    # head: HBM 525,336,576 x 2 -> 0.627 ms; FLOPs 4096 x 2 x 525,336,576 -> 8.699 ms
    est = llama8b()
    hbm, flops = 3.35e12 * 0.5, 989.5e12 * 0.5
    attention = max(56_371_445_760 / hbm, 4096 * (2 * 1_342_177_280 + 2 * 32 * 32 * 256 * 100)
                    / flops)
    mlp = max(32 * 176_160_768 * 2 / hbm, 4096 * 2 * 5_637_144_576 / flops)
    head = max(525_336_576 * 2 / hbm, 4096 * 2 * 525_336_576 / flops)
    expected_ms = 1e3 * (attention + mlp + head) + 32 * 10e-3
    assert expected_ms == pytest.approx(33.655 + 93.341 + 8.699 + 0.32, abs=5e-3)
    assert est.decode_step_ms(4096, 100) == pytest.approx(expected_ms)


def test_fp4_decode_gemms_eq_e11e_by_hand() -> None:
    # Eq. E11e: Llama-3.1-8B on 1 x B200, FP4 weights, BF16 KV, batch 4096, context 100,
    # e_c = e_b = 0.5, e_4 = 0.6 (HBM 8 TB/s x 0.5 = 4e12 B/s; FP4 GEMMs at 9,000 TFLOP/s x
    # 0.5 x 0.6 = 2.7e15 FLOP/s; attention products at BF16's 2,250 x 0.5 = 1.125e15):
    # attention: HBM 1,342,177,280 x 0.5 + 4096 x 100 x 131,072 = 54,358,179,840 B -> 13.5895
    #   ms; FLOPs 4096 x 2 x 1,342,177,280 / 2.7e15 + 4096 x 2 x 32 x 32 x 256 x 100 / 1.125e15
    #   = 4.0722 + 0.1909 ms: memory-bound
    # MLP: HBM 5,637,144,576 x 0.5 -> 0.7046 ms; FLOPs 4096 x 2 x 5,637,144,576 / 2.7e15
    #   = 17.1037 ms: compute-bound
    # head: HBM 525,336,576 x 0.5 -> 0.0657 ms; FLOPs 4096 x 2 x 525,336,576 / 2.7e15
    #   = 1.5940 ms; plus 32 layers x 10 us
    shape = InstanceShape(gpu_spec("B200"), 1, "fp4", "bf16")
    est = Estimate(model_arch("llama-3.1-8b"), shape, replace(FACTORS, fp4_efficiency=0.6))
    attention = max(54_358_179_840 / 4e12, 4096 * 2 * 1_342_177_280 / 2.7e15
                    + 4096 * 2 * 32 * 32 * 256 * 100 / 1.125e15)
    mlp = 4096 * 2 * 5_637_144_576 / 2.7e15
    head = 4096 * 2 * 525_336_576 / 2.7e15
    assert est.decode_step_ms(4096, 100) == pytest.approx(1e3 * (attention + mlp + head) + 0.32)
    assert est.decode_step_ms(4096, 100) == pytest.approx(13.5895 + 17.1037 + 1.5940 + 0.32,
                                                          abs=1e-3)
    # e_4 = 1 (the default): the MLP and head at the full 4.5e15 (10.2622 + 0.9564 ms); FP8
    # weights ignore e_4; at batch 1 the step is memory-bound and e_4 changes nothing
    plain = Estimate(model_arch("llama-3.1-8b"), shape, FACTORS)
    assert plain.decode_step_ms(4096, 100) == pytest.approx(13.5895 + 10.2622 + 0.9564 + 0.32,
                                                            abs=1e-3)
    assert est.decode_step_ms(1, 100) == pytest.approx(plain.decode_step_ms(1, 100))
    fp8 = InstanceShape(gpu_spec("B200"), 1, "fp8", "bf16")
    assert Estimate(model_arch("llama-3.1-8b"), fp8, replace(
        FACTORS, fp4_efficiency=0.6)).decode_step_ms(4096, 100) == pytest.approx(
        Estimate(model_arch("llama-3.1-8b"), fp8, FACTORS).decode_step_ms(4096, 100))


def test_distinct_experts_eq_e10a() -> None:
    est = Estimate(model_arch("mixtral-8x7b"), InstanceShape(gpu_spec("H100"), 2), FACTORS)
    assert est.distinct_experts(1) == pytest.approx(2.0)  # 8 (1 - 6/8)
    assert est.distinct_experts(2) == pytest.approx(3.5)  # 8 (1 - (6/8)^2)
    assert llama8b().distinct_experts(10) == 0.0


def test_moe_decode_reads_only_touched_experts() -> None:
    est = Estimate(model_arch("mixtral-8x7b"), InstanceShape(gpu_spec("H100"), 2), FACTORS)
    a = est.arch
    full = est.decode_bytes_per_gpu(10_000, 0)  # every expert touched
    one = est.decode_bytes_per_gpu(1, 0)
    untouched = 32 * (8 - 2) * a.expert_params * 2 / 2  # 6 experts x 32 layers, bf16, 2 GPUs
    assert full - one == pytest.approx(untouched, rel=1e-6)


def test_kv_cache_tokens_eq_e12() -> None:
    # 0.9 x (80e9 - 4e9 reserve - 16,059,990,016 bytes of weights) / 131,072 bytes per token
    assert llama8b().kv_cache_tokens() == 411_575
    # TP 2: each GPU holds half the weights and half the KV heads
    assert llama8b(gpus=2).kv_cache_tokens() == int(2 * 0.9 * (76e9 - 8_029_995_008)
                                                    // 131_072)


def test_weights_above_the_utilisation_cap_still_fit_eq_e12a() -> None:
    # DeepSeek-V3 FP8 on 4 x B200 runs in the silicon CSV: 168.7 GB of weights per GPU is more
    # than 0.9 x 180 GB, but less than 180 - 4 GB reserve, so the engine keeps 0.9 x the rest.
    est = Estimate(model_arch("deepseek-v3"), InstanceShape(gpu_spec("B200"), 4, "fp8", "fp8"),
                   FACTORS)
    per_gpu = model_arch("deepseek-v3").total_params / 4
    assert est.weight_bytes_per_gpu == per_gpu > 0.9 * 180e9
    assert est.kv_memory_bytes_per_gpu() == pytest.approx(0.9 * (176e9 - per_gpu))
    assert est.kv_cache_tokens() == int(0.9 * (176e9 - per_gpu) // (61 * 576))


def test_kv_sharding_mla_and_dp_attention() -> None:
    shape = InstanceShape(gpu_spec("H200"), 8, "fp8", "bf16", "tp")
    ds = Estimate(model_arch("deepseek-v3"), shape, FACTORS)
    assert ds.kv_shards == 1  # the MLA latent is one "head": replicated under TP
    dp = Estimate(model_arch("deepseek-v3"), InstanceShape(gpu_spec("H200"), 8, "fp8", "bf16",
                                                           "dp"), FACTORS)
    assert dp.kv_shards == 8
    # DP attention replicates the attention weights: 7/8 of them more per GPU
    extra = model_arch("deepseek-v3").attention_params * 7 / 8
    assert dp.weight_bytes_per_gpu - ds.weight_bytes_per_gpu == pytest.approx(extra)


def test_weights_that_do_not_fit_are_a_clean_error() -> None:
    est = Estimate(model_arch("llama-3.1-405b"), InstanceShape(gpu_spec("H100"), 1), FACTORS)
    with pytest.raises(UnreachableTargetError, match="do not fit in 1 x H100"):
        est.kv_cache_tokens()


def test_dtype_the_gpu_lacks_is_refused() -> None:
    with pytest.raises(ScenarioError, match="A100 has no fp8 tensor cores"):
        Estimate(model_arch("llama-3.1-8b"), InstanceShape(gpu_spec("A100"), 1, "fp8"), FACTORS)
    with pytest.raises(ScenarioError, match="L40S has no fp4"):
        Estimate(model_arch("llama-3.1-8b"), InstanceShape(gpu_spec("L40S"), 1, "fp4"), FACTORS)


def test_batch_grid_and_tables() -> None:
    assert batch_grid(10) == [1, 2, 3, 4, 6, 8, 10]
    assert batch_grid(1) == [1]
    est = llama8b(weight_dtype="fp8", kv_dtype="fp8")
    tables = estimate_tables(est, [1024, 2048], [(2048, 256)], max_batch=64)
    assert list(tables["prefill_tokens_per_s"]) == [1024, 2048]
    tpot = tables["tpot_tables"][0]["tpot_ms_by_batch"]
    assert max(tpot) == 64 and list(tpot.values()) == sorted(tpot.values())
    # what the estimator produces loads as a decode instance
    Instance.model_validate({"name": "d", "model": "m", "role": "decode", "gpu": "H100",
                             "gpus_per_instance": 1, "tpot_tables": tables["tpot_tables"],
                             "kv_cache_tokens": tables["kv_cache_tokens"]})


def test_kv_limit_caps_the_table() -> None:
    est = llama8b()
    tpot = est.tpot_table(100_000, 1000, max_batch=1024)
    assert max(tpot) == 411_575 // 100_500 == 4


# --- config.json parsing ---------------------------------------------------------------------

def test_config_errors_name_file_and_field(tmp_path: Path) -> None:
    path = tmp_path / "config.json"
    path.write_text(json.dumps({"model_type": "llama", "hidden_size": 4096}))
    with pytest.raises(ScenarioError) as e:
        model_arch(str(path))
    assert e.value.lines() == [f"{path}: num_hidden_layers: required field is missing"]
    path.write_text(json.dumps({"model_type": "gpt2"}))
    with pytest.raises(ScenarioError, match="'gpt2' is not supported"):
        model_arch(str(path))
    path.write_text("{not json")
    with pytest.raises(ScenarioError, match="not a JSON model config"):
        model_arch(str(path))
    with pytest.raises(ScenarioError, match="cannot read model config"):
        model_arch(str(tmp_path / "missing" / "config.json"))


def test_config_folder_and_nested_text_config(tmp_path: Path) -> None:
    config = dict(bundled_models()["qwen3-32b"].config)
    (tmp_path / "qwen").mkdir()
    (tmp_path / "qwen" / "config.json").write_text(json.dumps({"text_config": config}))
    a = model_arch(str(tmp_path / "qwen"))
    assert a.total_params == model_arch("qwen3-32b").total_params
    assert a.name == "qwen"


def test_unknown_names_list_the_choices() -> None:
    with pytest.raises(ScenarioError, match="unknown model 'gpt-5'.*llama-3.1-8b"):
        model_arch("gpt-5")
    with pytest.raises(ScenarioError, match="unknown GPU type 'V100'.*MI300X"):
        gpu_spec("V100")
    assert gpu_spec("h200_sxm").name == "H200" and gpu_spec("h100-sxm").name == "H100"


def test_qwen_moe_layer_selection() -> None:
    config = dict(bundled_models()["qwen3-30b-a3b"].config)
    config.update(decoder_sparse_step=2, mlp_only_layers=[1])
    a = arch_from_config(config, "x")
    # layers i with (i + 1) % 2 == 0 and i != 1: 3, 5, ..., 47 -> 23 of 48
    assert a.moe_layers == 23


def test_qwen2_moe_shared_expert_by_hand() -> None:
    # Qwen1.5-MoE-A2.7B's config.json (huggingface.co/Qwen/Qwen1.5-MoE-A2.7B): 14.3B total,
    # 2.7B activated per its model card.
    config = {"model_type": "qwen2_moe", "hidden_size": 2048, "intermediate_size": 5632,
              "num_hidden_layers": 24, "num_attention_heads": 16, "num_key_value_heads": 16,
              "vocab_size": 151936, "tie_word_embeddings": False, "num_experts": 60,
              "num_experts_per_tok": 4, "moe_intermediate_size": 1408,
              "shared_expert_intermediate_size": 5632, "decoder_sparse_step": 1,
              "mlp_only_layers": []}
    a = arch_from_config(config, "qwen1.5-moe")
    # per layer: attention 16,777,216 + 60 experts x 8,650,752 + shared 34,603,008 + router
    # 122,880 = 570,548,224; x 24 layers + 2 x 311,164,928 (embedding, head)
    assert a.total_params == 24 * 570_548_224 + 2 * 311_164_928 == 14_315_487_232
    # active: attention + 4 experts + shared + router = 86,106,112 per layer, + head
    assert a.active_params == 24 * 86_106_112 + 311_164_928
    assert (a.active_params + a.embedding_params) / 1e9 == pytest.approx(2.7, rel=0.01)


# --- the bundled GPU catalog -------------------------------------------------------------------

def test_catalog_has_the_required_gpus_each_with_sources() -> None:
    catalog = gpu_catalog()
    assert {"A100", "H100", "H200", "B200", "GB200", "L40S", "H20", "MI300X"} <= set(catalog)
    for g in catalog.values():
        assert {"compute", "memory", "interconnect"} <= set(g.sources), g.name
        assert g.dense_tflops["bf16"] > 0 and g.memory_gb > 0 and g.hbm_tb_per_s > 0


def test_catalog_agrees_with_the_public_spec_table(shared_data: Path) -> None:
    """Our compiled figures against ../shared/data/hardware/gpu_specs.csv (another compilation):
    equal, except B200 bandwidth (NVIDIA markets 8 TB/s; AIConfigurator's yaml uses 7.7)."""
    names = {"A100-SXM4-80GB": "A100", "H100-SXM5-80GB": "H100", "H200-SXM-141GB": "H200",
             "B200-HGX-180GB": "B200", "GB200 (per GPU)": "GB200", "L40S-48GB": "L40S",
             "H20-96GB": "H20", "MI300X-192GB": "MI300X"}
    with open(shared_data / "hardware" / "gpu_specs.csv", newline="") as fh:
        rows = {r["gpu"]: r for r in csv.DictReader(fh)}
    for theirs, ours in names.items():
        r, g = rows[theirs], gpu_spec(ours)
        assert g.dense_tflops["bf16"] == pytest.approx(float(r["bf16_dense_tflops"]), rel=0.01)
        assert g.memory_gb == pytest.approx(float(r["mem_GB"]))
        assert g.hbm_tb_per_s == pytest.approx(float(r["hbm_bw_TBps"]), rel=0.04)
        if r["fp8_dense_tflops"]:
            assert g.dense_tflops["fp8"] == pytest.approx(float(r["fp8_dense_tflops"]), rel=0.01)


def test_mla_decode_rows_padded_to_the_kernel_tile_eq_e8b() -> None:
    def deepseek(**kw: object) -> Estimate:
        return Estimate(model_arch("deepseek-v3"),
                        InstanceShape(gpu_spec("H200"), 8, "fp8", "bf16", **kw), FACTORS)  # type: ignore[arg-type]

    # 128 heads over 8 GPUs: 16 query rows per GPU, padded to 128 (8x); MTP verifies 2 tokens
    # per sequence: 32 rows (4x); DP attention keeps all 128 heads on a GPU (1x); GQA: 1x
    assert deepseek().mla_row_padding() == 8.0
    assert deepseek(tokens_per_step=1.875).mla_row_padding() == 4.0
    assert deepseek(attention="dp").mla_row_padding() == 1.0
    assert llama8b().mla_row_padding() == 1.0
    # the attention class's FLOP time at batch 1, context 1000: the weight GEMMs at FP8 peak,
    # the absorbed products 2 x 61 x 128 x (576 + 512) x 1000 at BF16 peak, 8x padded
    e = deepseek()
    a = e.arch
    products = 2 * 61 * 128 * (576 + 512) * 1000
    expected = 2 * a.attention_params / (8 * 1979e12) + 8 * products / (8 * 989.5e12)
    assert e.decode_terms(1, 1000).compute_s[0] == pytest.approx(expected)
