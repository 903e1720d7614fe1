"""Synthetic fleets of any size for the speed and scale benchmarks (not planning advice).

Each GPU type carries its public spec (dense FP8 TFLOPS, HBM TB/s, memory; from NVIDIA/AMD data
sheets as compiled in ../shared/data/hardware/gpu_specs.csv) and an on-demand price (from
../shared/data/hardware/cloud_prices.csv). Instance numbers come from a plain roofline, good enough
to give the solver realistic structure (fast-compute GPUs better at prefill, high-bandwidth GPUs
better at decode, bigger instances for bigger models):

    prefill tokens/s  = G x FP8 TFLOPS x 1e12 x MFU_PREFILL / (2 x active params)
    TPOT(b) ms        = 1e3 x (weight bytes + b x context x KV bytes/token) / (G x HBM B/s x BW_EFF)
                        + STEP_OVERHEAD_MS
"""

from __future__ import annotations

import math
import random
from typing import Any

# name: (FP8 dense TFLOPS (BF16 for A100), HBM TB/s, memory GiB, USD per GPU-hour)
GPUS: dict[str, tuple[float, float, float, float]] = {
    "A100": (312, 2.039, 80, 1.79),
    "H100": (1978, 3.35, 80, 2.99),
    "H200": (1978, 4.8, 141, 3.99),
    "B200": (4500, 7.7, 180, 4.50),
    "L40S": (733, 0.864, 48, 0.86),
    "MI300X": (2614.9, 5.3, 192, 1.71),
    "H20": (296, 4.0, 96, 1.50),  # no public on-demand price: an assumption for the benchmark
    "GB200": (5000, 8.0, 186, 6.00),
}
MFU_PREFILL = 0.4  # typical large-batch prefill utilisation; a benchmark assumption
BW_EFF = 0.7  # achieved share of HBM bandwidth in decode; a benchmark assumption
STEP_OVERHEAD_MS = 3.0  # scheduler + kernel launch per decode step; a benchmark assumption
SIZES = (1, 2, 4, 8)
CLASSES = (  # name, input, output, TTFT ms, TPOT ms
    ("chat", 1024, 256, 1000, 40.0),
    ("rag", 6144, 256, 3000, 60.0),
    ("batch", 3072, 512, 20000, 120.0),
)


def fleet(models: int, gpu_types: int, sizes: int, classes: int, seed: int = 0,
          inventory: bool = True, kv_links: bool = True) -> dict[str, Any]:
    """A scenario dict with `models` models, each with prefill and decode instance types on
    `gpu_types` GPU types in `sizes` sizes, and `classes` workload classes per model."""
    rnd = random.Random(seed)
    gpus = list(GPUS)[:gpu_types]
    data: dict[str, Any] = {
        "name": f"synthetic-{models}m-{gpu_types}g-{sizes}s-{classes}w",
        "gpus": {g: {"cost_per_hour": GPUS[g][3], "memory_gib": GPUS[g][2]} for g in gpus},
        "instances": [], "workloads": [], "models": {},
    }
    if kv_links:
        data["kv_transfer"] = {"default_gbit_per_s": 400}
    total_gpus: dict[str, float] = {g: 0.0 for g in gpus}
    for k in range(models):
        params_b = rnd.choice([8, 14, 32, 70])
        model = f"model-{k}-{params_b}b"
        weight_gib = params_b  # FP8 weights: one byte per parameter
        kv_bytes = 2 * (32 if params_b < 30 else 80) * 8 * 128  # FP8 KV, 8 KV heads of 128
        data["models"][model] = {"kv_bytes_per_token": kv_bytes, "weight_gib": weight_gib}
        for g in gpus:
            tflops, tbps, mem, _price = GPUS[g]
            fitting = [s for s in SIZES if s * mem * 0.9 > weight_gib * 1.2][:sizes]
            for s in fitting:
                data["instances"].append({
                    "name": f"{model}-prefill-{s}x{g}", "model": model, "role": "prefill",
                    "gpu": g, "gpus_per_instance": s,
                    "prefill_tokens_per_s": round(s * tflops * 1e12 * MFU_PREFILL
                                                  / (2 * params_b * 1e9)),
                })
                tables = []
                for li, lo in ((1024, 256), (6144, 256), (3072, 512)):
                    ctx = li + lo / 2
                    step = {b: round(1e3 * (weight_gib * 2**30 + b * ctx * kv_bytes)
                                     / (s * tbps * 1e12 * BW_EFF) + STEP_OVERHEAD_MS, 3)
                            for b in (1, 8, 32, 64, 128, 256)}
                    tables.append({"measured_at": {"input_tokens": li, "output_tokens": lo},
                                   "tpot_ms_by_batch": step})
                data["instances"].append({
                    "name": f"{model}-decode-{s}x{g}", "model": model, "role": "decode",
                    "gpu": g, "gpus_per_instance": s, "tpot_tables": tables,
                    "extrapolation": "nearest",
                })
        for name, li, lo, ttft, tpot in CLASSES[:classes]:
            # log-uniform 5-500 requests/s per class: the span of ServeGen's per-model-class
            # aggregate rates (../shared/data/load/length_summary_rate_weighted.csv: means of 196
            # and 1,790 requests/s for its large and mid language-model classes)
            rate = round(10 ** rnd.uniform(math.log10(5), math.log10(500)), 2)
            data["workloads"].append({
                "name": f"{model}-{name}", "model": model, "requests_per_s": rate,
                "input_tokens": li, "output_tokens": lo,
                "slo": {"ttft_ms": ttft, "tpot_ms": tpot}, "ttft_overhead_ms": 50,
            })
            for g in gpus:
                total_gpus[g] += rate * li / 20000  # rough GPUs of demand, for inventories
    if inventory and gpu_types >= 4:
        # Inventories that bind (with 4 or more GPU types): the first two types get about a
        # third of their share of the rough demand, so the optimum has to spill onto others.
        for g in gpus[:2]:
            data["gpus"][g]["count"] = max(8, int(total_gpus[g] / (3 * len(gpus))) * 8)
    return data
