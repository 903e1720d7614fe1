"""The `profile:` block of a scenario instance type: numbers to be estimated instead of measured.

    profile: {estimate: {model: llama-3.1-70b, weight_dtype: fp8}}
    profile: {aiconfigurator: {model: Qwen/Qwen3-32B, system: h200_sxm, backend: sglang}}

Validated with the scenario (pydantic, unknown fields are errors); `pdopt.profiles.resolve`
turns it into measured-style numbers before anything is solved (docs/profiles.md). This module
must not import pdopt.scenario.schema (the schema imports it).
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from pdopt.scenario import ranges as r

Count = Annotated[int, Field(gt=0, strict=True)]
# Counts within their sane ranges (pdopt/scenario/ranges.py, docs/scenario-format.md#ranges).
TokenCount = Annotated[int, Field(gt=0, le=r.MAX_TOKENS, strict=True)]
BatchCount = Annotated[int, Field(gt=0, le=r.MAX_BATCH, strict=True)]
GpuCount = Annotated[int, Field(gt=0, le=r.MAX_GPUS_PER_INSTANCE, strict=True)]
OverheadUs = Annotated[float, Field(ge=0, le=r.MAX_LAYER_OVERHEAD_US, allow_inf_nan=False)]
Share = Annotated[float, Field(gt=0, le=1, allow_inf_nan=False)]
WeightDtype = Literal["bf16", "fp16", "fp8", "fp4"]
KvDtype = Literal["bf16", "fp16", "fp8", "fp4", "int8", "fp32"]
AiconfiguratorBackend = Literal["trtllm", "sglang", "vllm"]


class _Block(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class FactorOverrides(_Block):
    """Replace calibrated efficiency factors of the estimator (docs/profiles.md, Table C1)."""

    compute_efficiency: Share | None = Field(default=None, description="Share of peak FLOP/s.")
    bandwidth_efficiency: Share | None = Field(default=None, description="Share of HBM bandwidth.")
    layer_overhead_us: Annotated[
        float, Field(ge=0, le=r.MAX_LAYER_OVERHEAD_US, allow_inf_nan=False)] | None = Field(
        default=None, description="Fixed time per layer per decode step, microseconds.")
    moe_gemm_efficiency: Share | None = Field(default=None, description=(
        "Routed-expert grouped GEMMs' efficiency relative to compute_efficiency."))
    prefill_moe_gemm_efficiency: Share | None = Field(default=None, description=(
        "Routed-expert grouped GEMMs' efficiency in saturated prefill, relative to "
        "compute_efficiency."))
    step_overhead_us: OverheadUs | None = Field(
        default=None, description="Fixed time per decode step, microseconds.")
    sequence_overhead_us: OverheadUs | None = Field(
        default=None, description="Time per sequence per decode step, microseconds.")
    moe_layer_overhead_us: OverheadUs | None = Field(
        default=None, description="Extra time per MoE layer per decode step, microseconds.")
    mla_layer_overhead_us: OverheadUs | None = Field(
        default=None, description="Extra time per MLA attention layer per decode step, "
        "microseconds.")
    prefill_fp4_efficiency: Share | None = Field(default=None, description=(
        "FP4 weight GEMMs' efficiency in saturated prefill, relative to other dtypes'."))
    fp4_efficiency: Share | None = Field(default=None, description=(
        "FP4 weight GEMMs' efficiency in decode steps, relative to other dtypes' (Eq. E11e)."))
    memory_reserve_gb: Annotated[
        float, Field(ge=0, le=r.MAX_MEMORY_GIB, allow_inf_nan=False)] | None = Field(
        default=None, description="Memory per GPU kept from weights and KV (activations, CUDA "
        "graphs), GB.")


class EstimateProfile(_Block):
    """First-principles estimate (pdopt profile estimate) of this instance type's numbers."""

    model: str = Field(min_length=1, description=(
        "A bundled model name (pdopt profile models) or the path of a Hugging Face config.json, "
        "relative to the scenario file."))
    gpu: str | None = Field(default=None, description=(
        "GPU type of the bundled catalog (pdopt profile gpus); absent: the instance's `gpu`."))
    weight_dtype: WeightDtype = Field(default="bf16", description="Data type of the weights.")
    kv_dtype: KvDtype = Field(default="bf16", description="Data type of the KV cache.")
    attention: Literal["tp", "dp"] = Field(default="tp", description=(
        "Attention parallelism: `tp` (tensor parallel) or `dp` (data-parallel attention)."))
    tokens_per_step: Annotated[
        float, Field(ge=1, le=r.MAX_TOKENS_PER_STEP, allow_inf_nan=False)] = Field(
        default=1.0, description=(
            "Decode: tokens a step emits per sequence: 1, or 1 + accepted draft tokens with MTP "
            "or speculative decoding (DeepSeek-V3 MTP: 1.875)."))
    input_tokens: list[TokenCount] | None = Field(default=None, description=(
        "Prefill: input lengths of the estimated table; absent: the scenario's workload lengths "
        "for this model."))
    max_batch: BatchCount = Field(default=1024, description=(
        "Decode: largest batch in the estimated tables (the KV cache may allow less)."))
    factors: FactorOverrides | None = Field(default=None, description=(
        "Override calibrated efficiency factors."))
    engine: Literal["vllm", "sglang", "trtllm"] | None = Field(default=None, description=(
        "Serving engine whose calibrated factors to use; absent: the generic factors."))
    engine_version: str | None = Field(default=None, description=(
        "Engine version, recorded in `source` (the factors are per engine, not per version)."))
    moe_ep: GpuCount | None = Field(default=None, description=(
        "MoE expert-parallel size; absent: every GPU of the instance."))
    calibrate_from: list[str] | None = Field(default=None, description=(
        "Measured runs to fit the engine's factors to (silicon CSV, generic CSV, vLLM or SGLang "
        "result files; paths relative to the scenario file); `source` says so."))


class AiconfiguratorProfile(_Block):
    """NVIDIA AIConfigurator (pdopt[aiconfigurator]) silicon-database estimate."""

    model: str = Field(min_length=1, description=(
        "AIConfigurator model path (e.g. Qwen/Qwen3-32B) or a bundled pdopt model name."))
    system: str | None = Field(default=None, description=(
        "AIConfigurator system (e.g. h200_sxm); absent: the catalog's system for the instance's "
        "`gpu`."))
    backend: AiconfiguratorBackend = Field(default="trtllm")
    backend_version: str | None = Field(
        default=None, description="Absent: AIConfigurator's latest database for the backend.")
    gemm_quant_mode: str | None = Field(default=None, description="Absent: from the checkpoint.")
    kvcache_quant_mode: str | None = Field(default=None, description="Absent: from the checkpoint.")
    moe_quant_mode: str | None = Field(default=None, description="Absent: from the checkpoint.")
    moe_ep: GpuCount | None = Field(default=None, description=(
        "MoE expert parallel size; absent for MoE models: all GPUs of the instance."))
    attention_dp: GpuCount = Field(default=1, description="Attention data-parallel size.")
    input_tokens: list[TokenCount] | None = Field(default=None, description=(
        "Prefill: input lengths of the table; absent: the scenario's workload lengths."))
    batches: list[BatchCount] | None = Field(default=None, description=(
        "Decode: batch sizes of the TPOT tables; absent: 1, 2, 4, ... 256."))


class ProfileSpec(_Block):
    """Where an instance type's numbers come from when they were not measured: exactly one of
    `estimate` or `aiconfigurator`."""

    estimate: EstimateProfile | None = None
    aiconfigurator: AiconfiguratorProfile | None = None

    @model_validator(mode="after")
    def _exactly_one(self) -> ProfileSpec:
        if (self.estimate is None) == (self.aiconfigurator is None):
            raise ValueError("give exactly one of estimate or aiconfigurator")
        return self

    @property
    def kind(self) -> str:
        return "estimate" if self.estimate is not None else "aiconfigurator"
