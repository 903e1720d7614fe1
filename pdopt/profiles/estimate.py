"""First-principles profiles: prefill throughput and decode TPOT from a model and a GPU type.

A roofline model with factors calibrated per serving engine on measured runs (docs/profiles.md,
"Estimates", Eqs. E9-E13): prefill is compute-bound (FLOPs per token over peak dense FLOP/s x
efficiency, routed experts at a lower grouped-GEMM efficiency, plus tensor-parallel all-reduces
and expert-parallel all-to-all); a decode step is, per operator class, the larger of its HBM time
(the weights it touches: distinct experts grow with the batch, and the KV cache) and its FLOP
time, plus link time and overheads per step, per layer and per sequence. KV capacity is what the
engine leaves after weights and a reserve. The only file read is the package's calibrated factors.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any, Literal

import numpy as np
import yaml

from pdopt.errors import UnreachableTargetError
from pdopt.profiles.architecture import ModelArch
from pdopt.profiles.catalog import GpuSpec
from pdopt.scenario.problems import Problem, ScenarioError
from pdopt.scenario.schema import KV_DTYPE_BYTES

AttentionParallel = Literal["tp", "dp"]
SERVING_ENGINES = ("vllm", "sglang", "trtllm")
WEIGHT_DTYPES = ("bf16", "fp16", "fp8", "fp4")
# Activations cross GPUs in bf16 (2 bytes) in the engines pdopt targets (vLLM, SGLang, TRT-LLM).
ACTIVATION_BYTES = 2
# Upper end of the estimated decode tables when KV memory allows more (docs/profiles.md): engines
# cap concurrent sequences too; vLLM's default max_num_seqs is 1024 on GPUs with 70 GiB or more
# other than A100 (vllm/engine/arg_utils.py, EngineArgs.get_batch_defaults).
DEFAULT_MAX_BATCH = 1024
# Query rows per tile of the MLA decode kernels (docs/profiles.md, Eq. E8b): chosen by the data
# among 1 (no padding), 64, 128, 256 (decode TPOT of the silicon runs, in-sample median |error|
# 12.7%, 12.7%, 12.5%, 12.7%); DeepSeek-V3 has 128 query heads, what the kernels are built for.
MLA_ROW_TILE = 128


@dataclass(frozen=True)
class EstimateFactors:
    """Efficiency and overhead factors of the roofline model, fitted per serving engine on
    measured runs (docs/profiles.md, "Calibration", Table C1; pdopt/data/estimate_factors.yaml)."""

    compute_efficiency: float  # achieved share of dense peak FLOP/s (dense GEMMs, attention)
    bandwidth_efficiency: float  # achieved share of peak HBM bandwidth
    moe_gemm_efficiency: float = 1.0  # routed-expert grouped GEMMs relative to compute_efficiency
    step_overhead_us: float = 0.0  # fixed time per decode step (scheduling, sampling, launch)
    layer_overhead_us: float = 0.0  # time per layer per decode step (kernels, collectives)
    sequence_overhead_us: float = 0.0  # time per sequence per decode step (batch bookkeeping)
    moe_layer_overhead_us: float = 0.0  # extra time per MoE layer per step (routing, dispatch)
    mla_layer_overhead_us: float = 0.0  # extra time per MLA attention layer per step (Eq. E11d)
    memory_utilization: float = 0.9  # share of the memory left after weights + reserve for KV
    memory_reserve_gb: float = 4.0  # per GPU: CUDA context, activations, CUDA graphs, NCCL
    # Saturated prefill (Eq. E9) has its own efficiencies, fitted on disaggregated prefill
    # workers' throughput (Eq. V5); None: the decode fit's compute_efficiency / moe_gemm_efficiency.
    prefill_compute_efficiency: float | None = None
    prefill_moe_gemm_efficiency: float | None = None
    # FP4 weight GEMMs of saturated prefill (dense and routed experts) reach this share of the
    # FP8/BF16 GEMMs' share of peak (Eq. E9b; fitted by Eq. C3 on sweeps of both dtypes).
    prefill_fp4_efficiency: float = 1.0
    # FP4 weight GEMMs of decode steps (and the prompt chunks an aggregated step carries) reach
    # this share of the other dtypes' compute_efficiency (Eq. E11e); fitted on every family's
    # runs and shared by the engines (a property of the GPUs' block-scaled FP4 GEMMs).
    fp4_efficiency: float = 1.0

    @property
    def prefill_efficiencies(self) -> tuple[float, float]:
        """(dense, routed-expert relative) efficiencies of Eq. E9."""
        dense = (self.compute_efficiency if self.prefill_compute_efficiency is None
                 else self.prefill_compute_efficiency)
        moe = (self.moe_gemm_efficiency if self.prefill_moe_gemm_efficiency is None
               else self.prefill_moe_gemm_efficiency)
        return dense, moe

    def to_dict(self) -> dict[str, float | None]:
        return asdict(self)


FACTOR_NAMES = tuple(f.name for f in fields(EstimateFactors))
FACTORS_PATH = Path(__file__).resolve().parents[1] / "data" / "estimate_factors.yaml"


@functools.cache
def calibrated_factors() -> dict[str, Any]:
    """pdopt/data/estimate_factors.yaml: per-engine factors with their provenance."""
    loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)  # libyaml when available
    return yaml.load(FACTORS_PATH.read_text(encoding="utf-8"), Loader=loader)  # noqa: S506


def engine_factors(engine: str | None = None) -> EstimateFactors:
    """The calibrated factors of a serving engine (vllm, sglang, trtllm), or the generic ones
    (fitted on every engine's runs) for None / 'generic'."""
    engines = calibrated_factors()["engines"]
    key = engine or "generic"
    if key not in (*SERVING_ENGINES, "generic"):
        raise ScenarioError([Problem("engine", f"unknown engine '{engine}' (one of "
                                     f"{', '.join(SERVING_ENGINES)})")])
    if key not in engines:  # an engine without runs of its own: the generic fit
        key = "generic"
    values = {k: float(v) for k, v in engines[key]["factors"].items()
              if k in FACTOR_NAMES and v is not None}
    return EstimateFactors(**values)


DEFAULT_FACTORS = engine_factors()


@dataclass(frozen=True)
class InstanceShape:
    """How one instance runs the model: GPU type, GPU count, dtypes, attention parallelism, the
    expert-parallel size of MoE layers (None: every GPU), and the tokens a decode step emits per
    sequence (1; more with MTP or speculative decoding)."""

    gpu: GpuSpec
    gpus: int
    weight_dtype: str = "bf16"
    kv_dtype: str = "bf16"
    attention: AttentionParallel = "tp"
    tokens_per_step: float = 1.0
    moe_ep: int | None = None

    @property
    def expert_parallel(self) -> int:
        return self.gpus if self.moe_ep is None else self.moe_ep

    def check(self) -> None:
        problems = []
        if self.weight_dtype not in WEIGHT_DTYPES:
            problems.append(Problem("weight_dtype", f"must be one of {', '.join(WEIGHT_DTYPES)}"))
        elif self.weight_dtype not in self.gpu.dense_tflops:
            problems.append(Problem("weight_dtype", f"{self.gpu.name} has no {self.weight_dtype} "
                                    f"tensor cores (it has {', '.join(self.gpu.dense_tflops)})"))
        if self.kv_dtype not in KV_DTYPE_BYTES:
            problems.append(Problem("kv_dtype", f"must be one of {', '.join(KV_DTYPE_BYTES)}"))
        if self.gpus < 1:
            problems.append(Problem("gpus_per_instance", "must be >= 1"))
        elif self.moe_ep is not None and (self.moe_ep < 1 or self.gpus % self.moe_ep):
            problems.append(Problem("moe_ep", f"must divide the {self.gpus} GPUs"))
        if not self.tokens_per_step >= 1:
            problems.append(Problem("tokens_per_step", "must be >= 1"))
        if problems:
            raise ScenarioError(problems)


@dataclass(frozen=True)
class DecodeTerms:
    """The factor-free parts of one decode step (Eq. E11), seconds at 100% efficiency: HBM time
    and peak-FLOP time of each operator class (attention incl. KV, always-active MLPs, routed
    experts, output head), link time, and the counts the overheads multiply. Arrays work too
    (the calibration evaluates thousands of runs at once)."""

    memory_s: tuple[Any, Any, Any, Any]  # attention + KV, dense MLP, routed experts, head
    compute_s: tuple[Any, Any, Any, Any]
    comm_s: Any
    layers: Any
    moe_layers: Any
    batch: Any
    tokens_per_step: Any
    steps: Any = 1  # forward passes per step: 1 + the draft passes of MTP (Eq. E11c)
    mla_layers: Any = 0  # layers (with MTP's draft layers) with MLA attention (Eq. E11d)
    # Eq. E11e: the part of each class's compute_s that is attention products (at the attention
    # dtype's peak, Eq. E7b; not weight GEMMs), and whether the weight GEMMs run in FP4 (1.0).
    products_s: tuple[Any, Any, Any, Any] = (0.0, 0.0, 0.0, 0.0)
    fp4: Any = 0.0


@dataclass(frozen=True)
class PrefillTerms:
    """The factor-free parts of prefill time per prompt token (Eq. E9), seconds: peak-FLOP time
    of the non-expert FLOPs (`attention_s` of them the attention products) and of the
    routed-expert FLOPs, link time, and whether the weight GEMMs run in FP4 (1.0) or not (0.0)
    (Eq. E9b)."""

    dense_s: Any
    moe_s: Any
    comm_s: Any
    attention_s: Any = 0.0
    fp4: Any = 0.0


def decode_step_seconds(t: DecodeTerms, f: EstimateFactors) -> Any:
    """Eq. E11: sum over operator classes of max(HBM time / e_b, FLOP time / e_c (x e_moe for
    routed experts)) + link time + (o_step + o_seq B) x passes + o_layer L + o_moe L_moe
    + o_mla L_mla (passes, L, L_moe and L_mla include MTP's draft passes and layers, Eq. E11c;
    o_mla Eq. E11d). With FP4 weights the weight GEMMs' FLOP time (not the attention products')
    is over e_4 e_c (Eq. E11e)."""
    moe = (False, False, True, False)
    fp4 = 1.0 + (f.fp4_efficiency - 1.0) * np.asarray(t.fp4, dtype=float)
    total: Any = 0.0
    for m, c, p, is_moe in zip(t.memory_s, t.compute_s, t.products_s, moe, strict=True):
        e = f.compute_efficiency * (f.moe_gemm_efficiency if is_moe else 1.0)
        total = total + np.maximum(m / f.bandwidth_efficiency, ((c - p) / fp4 + p) / e)
    overhead = ((f.step_overhead_us + f.sequence_overhead_us * t.batch) * t.steps
                + f.layer_overhead_us * t.layers + f.moe_layer_overhead_us * t.moe_layers
                + f.mla_layer_overhead_us * t.mla_layers) * 1e-6
    return total + t.comm_s + overhead


def prefill_seconds_per_token(t: PrefillTerms, f: EstimateFactors) -> Any:
    """Eq. E9 (inverse): FLOP time / e_p (routed experts / (e_p e_pmoe)) + link time: the
    tensor-parallel all-reduces and expert-parallel all-to-alls of a prefill forward pass wait
    for the GEMMs before them and hold up the ones after (the default of vLLM, SGLang without
    two-batch overlap, TensorRT-LLM). e_p and e_pmoe are the prefill efficiencies (Eq. V5 fit;
    the decode ones when not fitted); with FP4 weights the weight GEMMs (not the attention
    products) run at e_p4 times that (Eq. E9b)."""
    dense, moe = f.prefill_efficiencies
    fp4 = 1.0 + (f.prefill_fp4_efficiency - 1.0) * np.asarray(t.fp4, dtype=float)
    gemm = t.dense_s - t.attention_s
    compute = (gemm / fp4 + t.attention_s) / dense + t.moe_s / (dense * moe * fp4)
    return compute + t.comm_s


class Estimate:
    """The roofline model of one model on one instance shape (Eqs. E9-E13)."""

    def __init__(self, arch: ModelArch, shape: InstanceShape,
                 factors: EstimateFactors = DEFAULT_FACTORS):
        shape.check()
        self.arch, self.shape, self.factors = arch, shape, factors
        self.weight_bytes = KV_DTYPE_BYTES[shape.weight_dtype]
        self.kv_bytes = arch.kv_bytes_per_token(KV_DTYPE_BYTES[shape.kv_dtype])
        self.peak_flops = shape.gpu.peak_flops(shape.weight_dtype)
        self.attention_peak_flops = shape.gpu.peak_flops(self.attention_dtype)

    @property
    def attention_dtype(self) -> str:
        """Eq. E7b: the dtype attention's score and value products run in: FP8 with an FP8 KV
        cache on a GPU with FP8 tensor cores (TensorRT-LLM's FP8 FMHA, FlashAttention-3 FP8),
        else BF16 (FlashAttention, FlashInfer, FlashMLA read the KV cache in the activation
        dtype): never the FP4 of FP4 weights, nor FP8 weights' FP8 over a BF16 KV cache."""
        gpu = self.shape.gpu
        if self.shape.kv_dtype == "fp8" and "fp8" in gpu.dense_tflops:
            return "fp8"
        for dtype in ("bf16", "fp16"):
            if dtype in gpu.dense_tflops:
                return dtype
        return self.shape.weight_dtype

    # --- memory ------------------------------------------------------------------------------

    @property
    def kv_shards(self) -> int:
        """GPUs the KV cache is split over: TP splits KV heads (MLA has one latent "head", so it
        is replicated); data-parallel attention keeps each sequence on one GPU."""
        if self.shape.attention == "dp":
            return self.shape.gpus
        heads = 1 if self.arch.is_mla else self.arch.kv_heads
        return min(self.shape.gpus, heads)

    def _attention_copies(self) -> int:
        """Data-parallel attention replicates attention weights on every GPU."""
        return self.shape.gpus if self.shape.attention == "dp" else 1

    @property
    def weight_bytes_per_gpu(self) -> float:
        """Weights held by one GPU: attention split G ways (or replicated under DP attention),
        everything else split G ways."""
        a, g = self.arch, self.shape.gpus
        attention = a.attention_params * self._attention_copies()
        return (a.total_params - a.attention_params + attention) * self.weight_bytes / g

    @property
    def total_weight_bytes(self) -> float:
        return self.arch.total_params * self.weight_bytes

    def kv_memory_bytes_per_gpu(self) -> float:
        """Eq. E12a: memory per GPU the engine gives the KV cache: u x (memory - reserve -
        weights per GPU), TensorRT-LLM's rule (free_gpu_memory_fraction of what is left after
        the weights and activations); refused only when nothing is left."""
        f = self.factors
        left = (self.shape.gpu.memory_bytes - f.memory_reserve_gb * 1e9
                - self.weight_bytes_per_gpu)
        if left <= 0:
            raise UnreachableTargetError(
                f"{self.arch.name} weights ({self.weight_bytes_per_gpu / 1e9:.1f} GB per GPU at "
                f"{self.shape.weight_dtype}) do not fit in {self.shape.gpus} x "
                f"{self.shape.gpu.name} ({self.shape.gpu.memory_gb:g} GB less "
                f"{f.memory_reserve_gb:g} GB reserve); use more GPUs per instance or a "
                "smaller weight dtype")
        return f.memory_utilization * left

    def kv_cache_tokens(self) -> int:
        """Eq. E12: KV tokens one instance holds: shards x E12a / KV bytes per token."""
        return int(self.kv_shards * self.kv_memory_bytes_per_gpu() // self.kv_bytes)

    # --- communication -----------------------------------------------------------------------

    def comm_seconds_per_token(self) -> float:
        """Eq. E11a: link time per token over the per-direction link bandwidth N, 0 on one GPU:
        an all-reduce moves 2 (G-1)/G x d x 2 bytes per GPU; one after attention under TP
        attention, one after each dense MLP; an MoE layer's expert-parallel dispatch + combine
        (all-to-all over `ep` GPUs) sends each token once to each other GPU holding one of its
        k experts, ep (1 - (1 - 1/ep)^k) (ep-1)/ep of them on average, there and back, and the
        ep GPUs share that traffic: 2 x that x d x 2 bytes / ep per GPU; plus an all-reduce
        over the MoE's G/ep tensor-parallel GPUs. N is NVLink's within one NVLink domain and the
        scale-out network's when the instance spans several (catalog `nvlink_domain_gpus`)."""
        a, g = self.arch, self.shape.gpus
        if g == 1:
            return 0.0
        d_bytes = a.hidden_size * ACTIVATION_BYTES

        def all_reduce(n: int) -> float:
            return 2 * (n - 1) / n * d_bytes

        attention = a.layers * all_reduce(g) if self.shape.attention == "tp" else 0.0
        dense = a.dense_layers * all_reduce(g)
        ep = self.shape.expert_parallel
        remote_gpus = ep * (1 - (1 - 1 / ep) ** a.experts_per_token) * (ep - 1) / ep
        moe = a.moe_layers * (2 * remote_gpus * d_bytes / ep + all_reduce(g // ep))
        return (attention + dense + moe) / self.shape.gpu.link_bytes_per_s_for(g)

    # --- prefill -----------------------------------------------------------------------------

    def prefill_terms(self, input_tokens: float) -> PrefillTerms:
        """Eq. E9's FLOP times at peak: the weight GEMMs at the weight dtype's peak, the
        causal attention products at the attention dtype's (Eq. E7b), routed experts apart."""
        a, g = self.arch, self.shape.gpus
        flops = a.prefill_flops_per_token(input_tokens)
        attention = a.prefill_attention_flops_per_token(input_tokens)
        moe = 2.0 * a.moe_layers * a.experts_per_token * a.expert_params
        attention_s = attention / (g * self.attention_peak_flops)
        dense_s = (flops - attention - moe) / (g * self.peak_flops) + attention_s
        return PrefillTerms(dense_s, moe / (g * self.peak_flops), self.comm_seconds_per_token(),
                            attention_s, 1.0 if self.shape.weight_dtype == "fp4" else 0.0)

    def prefill_tokens_per_s(self, input_tokens: float) -> float:
        """Eq. E9: saturated prefill throughput of one instance in input tokens/s:
        1 / (dense FLOPs / (G F e_p) + expert FLOPs / (G F e_p e_pmoe) + link time per token)
        (FP4 weight GEMMs at e_p4 times those efficiencies, Eq. E9b)."""
        return 1.0 / float(prefill_seconds_per_token(self.prefill_terms(input_tokens),
                                                     self.factors))

    # --- decode ------------------------------------------------------------------------------

    def distinct_experts(self, tokens: float) -> float:
        """Eq. E10a: expected routed experts per MoE layer that `tokens` tokens touch, each
        picking k of E uniformly: E (1 - (1 - k/E)^tokens)."""
        e, k = self.arch.experts, self.arch.experts_per_token
        if e == 0:
            return 0.0
        return e * (1.0 - (1.0 - k / e) ** tokens)

    def decode_terms(self, batch: float, context_tokens: float) -> DecodeTerms:
        """The HBM bytes (Eq. E10b) and FLOPs (Eq. E8) of one decode step of `batch` sequences,
        each verifying `tokens_per_step` tokens, per operator class, as seconds on one GPU."""
        a, s = self.arch, self.shape
        g, wb = s.gpus, self.weight_bytes
        tokens = batch * s.tokens_per_step
        hbm, flops = s.gpu.hbm_bytes_per_s, self.peak_flops * g
        attention_w = a.attention_params * self._attention_copies() / g * wb
        kv = batch * context_tokens * self.kv_bytes / self.kv_shards
        qk, v = a.decode_attention_dims()
        # Eq. E7b: the attention weights' GEMMs at the weight dtype's peak, the products with
        # the KV cache at the attention dtype's; as seconds at the weight dtype's peak.
        products_f = (tokens * 2 * a.layers * a.heads * (qk + v) * context_tokens
                      * self.peak_flops / self.attention_peak_flops * self.mla_row_padding())
        attention_f = tokens * 2 * a.attention_params + products_f
        dense_params = a.always_active_mlp_params
        expert_w = a.moe_layers * self.distinct_experts(tokens) * a.expert_params / g * wb
        expert_f = tokens * 2 * a.moe_layers * a.experts_per_token * a.expert_params
        memory = [(attention_w + kv) / hbm, dense_params / g * wb / hbm, expert_w / hbm,
                  a.lm_head_params / g * wb / hbm]
        compute = [attention_f / flops, tokens * 2 * dense_params / flops,
                   expert_f / flops, tokens * 2 * a.lm_head_params / flops]
        comm = tokens * self.comm_seconds_per_token()
        drafts = self.draft_passes()
        layers, moe_layers = a.layers, a.moe_layers
        if drafts:
            # Eq. E11c: each draft pass runs one decoder layer of the model's mean shape (one
            # MoE layer in an MoE model) and the output head for the batch's B tokens.
            moe = 1 if a.is_moe else 0
            draft_memory = ((attention_w + kv) / a.layers / hbm,
                            dense_params / a.layers / g * wb / hbm,
                            moe * self.distinct_experts(batch) * a.expert_params / g * wb / hbm,
                            a.lm_head_params / g * wb / hbm)
            draft_compute = (attention_f / tokens * batch / a.layers / flops,
                             batch * 2 * dense_params / a.layers / flops,
                             moe * batch * 2 * a.experts_per_token * a.expert_params / flops,
                             batch * 2 * a.lm_head_params / flops)
            for i in range(4):
                memory[i] = memory[i] + drafts * draft_memory[i]
                compute[i] = compute[i] + drafts * draft_compute[i]
            products_f = products_f * (1 + drafts * batch / tokens / a.layers)
            comm = comm + drafts * batch * self.comm_seconds_per_token() / a.layers
            layers, moe_layers = layers + drafts, moe_layers + drafts * moe
        return DecodeTerms(
            memory_s=tuple(memory), compute_s=tuple(compute),  # type: ignore[arg-type]
            comm_s=comm, layers=layers, moe_layers=moe_layers, batch=batch,
            tokens_per_step=s.tokens_per_step, steps=1 + drafts,
            mla_layers=layers if a.is_mla else 0,
            products_s=(products_f / flops, 0.0, 0.0, 0.0),
            fp4=1.0 if s.weight_dtype == "fp4" else 0.0)

    def mla_row_padding(self) -> float:
        """Eq. E8b: MLA decode kernels (FlashMLA, CUTLASS MLA) process a tile of
        MLA_ROW_TILE query rows, query heads on the GPU x tokens per step; fewer rows are padded
        to the tile, so the attention products cost tile / rows times their FLOPs. 1 for GQA."""
        if not self.arch.is_mla:
            return 1.0
        heads = self.arch.heads if self.shape.attention == "dp" else \
            self.arch.heads / min(self.shape.gpus, self.arch.heads)
        rows = heads * math.ceil(self.shape.tokens_per_step - 1e-9)
        return max(1.0, MLA_ROW_TILE / rows)

    def draft_passes(self) -> int:
        """Eq. E11c: draft passes per decode step with MTP / speculative decoding: a step
        verifying t tokens per sequence first drafted t - 1 of them, ceil(t - 1) passes of the
        draft module (DeepSeek-V3's MTP module, an EAGLE head: one decoder layer and the
        output head); 0 without."""
        return max(0, math.ceil(self.shape.tokens_per_step - 1 - 1e-9))

    def decode_bytes_per_gpu(self, batch: float, context_tokens: float) -> float:
        """Eq. E10b: HBM bytes one GPU reads in a decode step: its attention, dense-MLP and
        head weights, the routed experts the step's tokens touch (Eq. E10a at batch x tokens
        per step), and its share of the batch's KV cache (the embedding table is a lookup)."""
        t = self.decode_terms(batch, context_tokens)
        return sum(t.memory_s) * self.shape.gpu.hbm_bytes_per_s

    def decode_step_ms(self, batch: float, context_tokens: float) -> float:
        """Eq. E11: one decode step (every sequence of the batch advances), ms."""
        return 1e3 * float(decode_step_seconds(self.decode_terms(batch, context_tokens),
                                               self.factors))

    def tpot_ms(self, batch: float, context_tokens: float) -> float:
        """Eq. E11b: time per output token = step time / tokens per step (1 without MTP or
        speculative decoding; the step verifies batch x tokens per step tokens)."""
        return self.decode_step_ms(batch, context_tokens) / self.shape.tokens_per_step

    def max_batch(self, context_tokens: float, limit: int = DEFAULT_MAX_BATCH) -> int:
        """Eq. E13: the largest batch whose KV fits: KV tokens // context, at most `limit`."""
        return min(limit, self.kv_cache_tokens() // max(1, int(round(context_tokens))))

    # --- tables ------------------------------------------------------------------------------

    def prefill_table(self, input_lengths: Iterable[int]) -> dict[int, float]:
        return {int(n): round(self.prefill_tokens_per_s(n), 1) for n in sorted(set(input_lengths))}

    def tpot_table(self, input_tokens: int, output_tokens: int,
                   max_batch: int = DEFAULT_MAX_BATCH) -> dict[int, float]:
        """TPOT (ms) by batch at the lengths' mean context (input + output/2), on a grid of
        batches up to the KV limit. Raises UnreachableTargetError when not even one fits."""
        context = input_tokens + output_tokens / 2
        top = self.max_batch(context, max_batch)
        if top < 1:
            raise UnreachableTargetError(
                f"{self.arch.name} on {self.shape.gpus} x {self.shape.gpu.name}: the KV cache "
                f"({self.kv_cache_tokens()} tokens) cannot hold one request of {context:g} tokens")
        return {b: round(self.tpot_ms(b, context), 3) for b in batch_grid(top)}

    def summary(self) -> dict[str, Any]:
        a = self.arch
        return {
            "model": a.name, "gpu": self.shape.gpu.name, "gpus_per_instance": self.shape.gpus,
            "weight_dtype": self.shape.weight_dtype, "kv_dtype": self.shape.kv_dtype,
            "attention": self.shape.attention, "tokens_per_step": self.shape.tokens_per_step,
            "moe_ep": self.shape.expert_parallel if a.is_moe else None,
            "total_params": a.total_params, "active_params": a.active_params,
            "weight_gb": self.total_weight_bytes / 1e9,
            "weight_gb_per_gpu": self.weight_bytes_per_gpu / 1e9,
            "kv_bytes_per_token": self.kv_bytes, "kv_cache_tokens": self.kv_cache_tokens(),
            "factors": self.factors.to_dict(),
        }


def batch_grid(top: int) -> list[int]:
    """Batches 1, 2, 3, 4, 6, 8, 12, 16, ... (powers of two and 1.5x them) up to `top`, and
    `top` itself, so linear interpolation between points stays within a few percent."""
    grid: set[int] = {top}
    p = 1
    while p <= top:
        grid.add(p)
        if p * 3 // 2 <= top and p >= 2:
            grid.add(p * 3 // 2)
        p *= 2
    return sorted(grid)


def estimate_tables(est: Estimate, input_lengths: Sequence[int],
                    lengths: Sequence[tuple[int, int]], max_batch: int = DEFAULT_MAX_BATCH
                    ) -> dict[str, Any]:
    """Prefill table over input lengths and one decode table per (input, output) pair."""
    return {
        "prefill_tokens_per_s": est.prefill_table(input_lengths),
        "tpot_tables": [
            {"measured_at": {"input_tokens": i, "output_tokens": o},
             "tpot_ms_by_batch": est.tpot_table(i, o, max_batch)}
            for i, o in sorted(set(lengths))
        ],
        "kv_cache_tokens": est.kv_cache_tokens(),
    }
