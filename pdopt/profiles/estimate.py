"""First-principles profiles: prefill throughput and decode TPOT from a model and a GPU type.

A roofline model with three calibrated factors (docs/profiles.md, "Estimates", Eqs. E9-E13):
prefill is compute-bound (FLOPs per token over peak dense FLOP/s x efficiency, plus tensor-parallel
communication); a decode step reads the weights it touches and every sequence's KV cache over HBM
bandwidth x efficiency, or is compute-bound at large batches, plus communication and a fixed
per-layer overhead. KV capacity is memory after weights. No I/O here.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass
from typing import Any, Literal

from pdopt.errors import UnreachableTargetError
from pdopt.profiles.architecture import ModelArch
from pdopt.profiles.catalog import GpuSpec
from pdopt.scenario.problems import Problem, ScenarioError
from pdopt.scenario.schema import KV_DTYPE_BYTES

AttentionParallel = Literal["tp", "dp"]
WEIGHT_DTYPES = ("bf16", "fp16", "fp8", "fp4")
# Activations cross GPUs in bf16 (2 bytes) in the engines pdopt targets (vLLM, SGLang, TRT-LLM).
ACTIVATION_BYTES = 2
# A ring all-reduce moves 2 (G-1)/G of the message per GPU; a TP transformer layer has two (after
# attention and after the MLP); MoE dispatch + combine is counted as the same volume.
ALL_REDUCES_PER_LAYER = 2
# Upper end of the estimated decode tables when KV memory allows more (docs/profiles.md): engines
# cap concurrent sequences too; vLLM's default max_num_seqs is 1024 on GPUs with 70 GiB or more
# other than A100 (vllm/engine/arg_utils.py, EngineArgs.get_batch_defaults).
DEFAULT_MAX_BATCH = 1024


@dataclass(frozen=True)
class EstimateFactors:
    """Efficiency factors of the roofline model, calibrated in docs/profiles.md (Table C1)."""

    compute_efficiency: float  # achieved share of dense peak FLOP/s
    bandwidth_efficiency: float  # achieved share of peak HBM bandwidth
    layer_overhead_us: float  # fixed time per layer per decode step, microseconds
    memory_utilization: float = 0.9  # share of GPU memory for weights + KV (vLLM's default 0.9)

    def to_dict(self) -> dict[str, float]:
        return asdict(self)


# Least-squares fit to TensorRT-LLM's published throughputs and the paper's 8xH200 DeepSeek-V3.1
# figures (docs/profiles.md, "Calibration"; `python benchmarks/calibrate_estimate.py` refits them).
DEFAULT_FACTORS = EstimateFactors(
    compute_efficiency=0.4222, bandwidth_efficiency=0.6497, layer_overhead_us=221.86,
)


def engine_factors(engine: str | None = None) -> EstimateFactors:
    """The calibrated factors of a serving engine (vllm, sglang, trtllm), or the generic ones."""
    return DEFAULT_FACTORS


@dataclass(frozen=True)
class InstanceShape:
    """How one instance runs the model: GPU type, GPU count, dtypes, attention parallelism, and
    the tokens a decode step emits per sequence (1; more with MTP or speculative decoding)."""

    gpu: GpuSpec
    gpus: int
    weight_dtype: str = "bf16"
    kv_dtype: str = "bf16"
    attention: AttentionParallel = "tp"
    tokens_per_step: float = 1.0

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
        if not self.tokens_per_step >= 1:
            problems.append(Problem("tokens_per_step", "must be >= 1"))
        if problems:
            raise ScenarioError(problems)


class Estimate:
    """The roofline model of one model on one instance shape (Eqs. E9-E13)."""

    def __init__(self, arch: ModelArch, shape: InstanceShape,
                 factors: EstimateFactors = DEFAULT_FACTORS):
        shape.check()
        self.arch, self.shape, self.factors = arch, shape, factors
        self.weight_bytes = KV_DTYPE_BYTES[shape.weight_dtype]
        self.kv_bytes = arch.kv_bytes_per_token(KV_DTYPE_BYTES[shape.kv_dtype])
        self.peak_flops = shape.gpu.peak_flops(shape.weight_dtype)

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

    def kv_cache_tokens(self) -> int:
        """Eq. E12: KV tokens one instance holds:
        shards x (memory x utilisation - weights per GPU) / KV bytes per token."""
        free = (self.shape.gpu.memory_bytes * self.factors.memory_utilization
                - self.weight_bytes_per_gpu)
        if free <= 0:
            raise UnreachableTargetError(
                f"{self.arch.name} weights ({self.weight_bytes_per_gpu / 1e9:.1f} GB per GPU at "
                f"{self.shape.weight_dtype}) do not fit in {self.shape.gpus} x "
                f"{self.shape.gpu.name} ({self.shape.gpu.memory_gb:g} GB x "
                f"{self.factors.memory_utilization:g} usable); use more GPUs per instance or a "
                "smaller weight dtype")
        return int(self.kv_shards * free // self.kv_bytes)

    # --- prefill -----------------------------------------------------------------------------

    def comm_seconds_per_token(self) -> float:
        """Eq. E11a: tensor-parallel traffic per token: layers x 2 all-reduces x 2(G-1)/G x
        hidden x activation bytes over the per-direction link bandwidth (0 on one GPU)."""
        g = self.shape.gpus
        if g == 1:
            return 0.0
        volume = (self.arch.layers * ALL_REDUCES_PER_LAYER * 2 * (g - 1) / g
                  * self.arch.hidden_size * ACTIVATION_BYTES)
        return volume / self.shape.gpu.link_bytes_per_s

    def prefill_tokens_per_s(self, input_tokens: float) -> float:
        """Eq. E9: saturated prefill throughput of one instance in input tokens/s:
        1 / (FLOPs per token / (G x peak x compute efficiency) + communication per token)."""
        flops = self.arch.prefill_flops_per_token(input_tokens)
        compute = flops / (self.shape.gpus * self.peak_flops * self.factors.compute_efficiency)
        return 1.0 / (compute + self.comm_seconds_per_token())

    # --- decode ------------------------------------------------------------------------------

    def distinct_experts(self, batch: float) -> float:
        """Eq. E10a: expected routed experts per MoE layer that a batch of tokens touches, each
        token picking k of E uniformly: E (1 - (1 - k/E)^B)."""
        e, k = self.arch.experts, self.arch.experts_per_token
        if e == 0:
            return 0.0
        return e * (1.0 - (1.0 - k / e) ** batch)

    def decode_bytes_per_gpu(self, batch: float, context_tokens: float) -> float:
        """Eq. E10b: HBM bytes one GPU reads in a decode step: its weights except the routed
        experts no token of the batch picked, plus its share of the batch's KV cache."""
        a = self.arch
        untouched = a.moe_layers * (a.experts - self.distinct_experts(batch)) * a.expert_params
        embedding_lookup = a.embedding_params if not a.tie_word_embeddings else 0
        weights = (self.weight_bytes_per_gpu
                   - (untouched + embedding_lookup) * self.weight_bytes / self.shape.gpus)
        kv = batch * context_tokens * self.kv_bytes / self.kv_shards
        return weights + kv

    def decode_step_ms(self, batch: float, context_tokens: float) -> float:
        """Eq. E11: one decode step (the TPOT of every sequence in the batch), ms:
        max(bytes / (HBM x bw efficiency), B x FLOPs / (G x peak x compute efficiency))
        + B x communication per token + layers x overhead per layer."""
        f, g = self.factors, self.shape
        memory = self.decode_bytes_per_gpu(batch, context_tokens) / (
            g.gpu.hbm_bytes_per_s * f.bandwidth_efficiency)
        compute = batch * self.arch.decode_flops_per_token(context_tokens) / (
            g.gpus * self.peak_flops * f.compute_efficiency)
        comm = batch * self.comm_seconds_per_token()
        overhead = self.arch.layers * f.layer_overhead_us * 1e-6
        return 1e3 * (max(memory, compute) + comm + overhead)

    def tpot_ms(self, batch: float, context_tokens: float) -> float:
        """Eq. E11b: time per output token = step time / tokens per step (1 without MTP or
        speculative decoding; the draft's own cost is left out, as in the memory-bound regime)."""
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
