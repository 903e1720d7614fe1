"""The first-principles estimate against NVIDIA AIConfigurator for several model/GPU pairs
(docs/profiles.md, "Estimate versus AIConfigurator"). Needs `pdopt[aiconfigurator]`.

    python benchmarks/compare_aiconfigurator.py

Prints a Markdown table: saturated prefill input tokens/s at two input lengths and decode TPOT
at three batch sizes (2048 in / 256 out), each as estimate (with the backend's calibrated
factors) / AIConfigurator and their ratio, and the time each took.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

from pdopt.profiles import aiconfigurator as aic
from pdopt.profiles.catalog import gpu_spec, model_arch
from pdopt.profiles.estimate import Estimate, InstanceShape, engine_factors
from pdopt.scenario.profile_spec import AiconfiguratorProfile

PREFILL_INPUTS = (2048, 8192)
DECODE_LENGTHS = (2048, 256)
DECODE_BATCHES = (1, 16, 64)


@dataclass(frozen=True)
class Pair:
    model: str  # bundled pdopt name
    aic_model: str  # AIConfigurator model path
    gpu: str
    gpus: int
    weight_dtype: str
    kv_dtype: str
    backend: str
    quant: dict[str, str] = field(default_factory=dict)


PAIRS = (
    Pair("llama-3.1-8b", "meta-llama/Meta-Llama-3.1-8B", "A100", 1, "bf16", "bf16", "vllm"),
    Pair("llama-3.1-70b", "meta-llama/Meta-Llama-3.1-70B", "H200", 1, "fp8", "fp8", "trtllm",
         {"gemm_quant_mode": "fp8", "kvcache_quant_mode": "fp8"}),
    Pair("qwen3-32b", "Qwen/Qwen3-32B", "H100", 2, "bf16", "bf16", "sglang"),
    Pair("qwen3-235b-a22b", "Qwen/Qwen3-235B-A22B-FP8", "H200", 8, "fp8", "fp8", "trtllm",
         {"kvcache_quant_mode": "fp8"}),
    Pair("deepseek-v3", "deepseek-ai/DeepSeek-V3", "H200", 8, "fp8", "fp8", "sglang",
         {"kvcache_quant_mode": "fp8"}),
    Pair("qwen3-30b-a3b", "Qwen/Qwen3-30B-A3B", "B200", 1, "bf16", "bf16", "trtllm"),
)


def main() -> None:
    print("| model on GPUs (backend) | quantity | estimate | AIConfigurator | estimate / AIC |")
    print("|---|---|---|---|---|")
    ratios: list[float] = []
    for p in PAIRS:
        start = time.perf_counter()
        est = Estimate(model_arch(p.model), InstanceShape(gpu_spec(p.gpu), p.gpus,
                                                          p.weight_dtype, p.kv_dtype),
                       engine_factors(p.backend))
        context = DECODE_LENGTHS[0] + DECODE_LENGTHS[1] / 2
        ours_prefill = {n: est.prefill_tokens_per_s(n) for n in PREFILL_INPUTS}
        ours_tpot = {b: est.decode_step_ms(b, context) for b in DECODE_BATCHES}
        ours_s = time.perf_counter() - start
        start = time.perf_counter()
        spec = AiconfiguratorProfile(model=p.aic_model, backend=p.backend, **p.quant)
        run = aic.resolve_run(spec, p.gpu, p.gpus)
        label = f"{p.model} on {p.gpus} x {p.gpu} {p.weight_dtype} ({p.backend})"
        prefill, version = aic.prefill_table(run, PREFILL_INPUTS)
        rows = [(f"prefill tokens/s at {n} in", ours_prefill[n], prefill[n])
                for n in PREFILL_INPUTS]
        tpot, _ = aic.tpot_table(run, *DECODE_LENGTHS, DECODE_BATCHES)
        aic_s = time.perf_counter() - start
        rows += [(f"TPOT ms at batch {b}", ours_tpot[b], tpot[b])
                 for b in DECODE_BATCHES if b in tpot]
        for what, ours, theirs in rows:
            ratios.append(ours / theirs)
            print(f"| {label} | {what} | {ours:,.1f} | {theirs:,.1f} | {ours / theirs:.2f} |")
        print(f"<!-- {aic.source_line(run, version)}; estimate {1e3 * ours_s:.1f} ms, "
              f"AIConfigurator {aic_s:.1f} s -->")
    ratios.sort()
    print(f"\nratios: median {ratios[len(ratios) // 2]:.2f}, range {ratios[0]:.2f}-"
          f"{ratios[-1]:.2f}, {len(ratios)} comparisons")


if __name__ == "__main__":
    main()
