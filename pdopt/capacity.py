"""Per-instance capacities of scenario instance types for scenario workloads.

The glue between the scenario objects (`pdopt.scenario.schema`) and the pure formulas
(`pdopt.queueing`, `pdopt.decode`): it looks measured numbers up at a workload's lengths and
applies the targets.
No Pyomo and no I/O here.
"""

from __future__ import annotations

from pdopt.decode import (
    DecodeCapacity,
    DecodeCurve,
    MeasuredTable,
    decode_capacity,
    decode_curve,
    kv_batch_cap,
    kv_cache_tokens_from_memory,
    table_lookup,
)
from pdopt.errors import PdoptError, UnreachableTargetError
from pdopt.queueing import PrefillCapacity, prefill_capacity
from pdopt.scenario.schema import Instance, Scenario, Workload

BITS_PER_BYTE = 8


def decode_context_tokens(input_tokens: float, output_tokens: float) -> float:
    """Mean resident context of a decoding request, L_in + L_out/2 (Eq. D3)."""
    return input_tokens + output_tokens / 2


def saturated_prefill_tokens_per_s(instance: Instance, input_tokens: float) -> float:
    """TP_max of a prefill instance at this input length (Eq. P0)."""
    if instance.prefill_tokens_per_s is None:
        raise ValueError(f"instance '{instance.name}' is not a prefill instance")
    value = table_lookup(
        instance.prefill_tokens_per_s, input_tokens, extrapolation=instance.extrapolation,
        what=f"instance '{instance.name}': input length",
    )
    if value <= 0:
        raise PdoptError(
            f"instance '{instance.name}': extrapolated prefill throughput at {input_tokens:g} "
            "input tokens is not positive"
        )
    return value


def kv_transfer_ms(scenario: Scenario, model: str, prefill_gpu: str, decode_gpu: str,
                   input_tokens: float) -> float | None:
    """Extra TTFT for moving a prompt's KV cache between different GPU types (Eq. T1):
    L_in x KV bytes/token x 8 / link bits/s. 0 for the same type (part of ttft_overhead_ms);
    None when the pair has no link in the scenario (such a pairing is not allowed)."""
    if prefill_gpu == decode_gpu:
        return 0.0
    gbit = scenario.kv_transfer.default_gbit_per_s
    for link in scenario.kv_transfer.links:
        if link.prefill_gpu == prefill_gpu and link.decode_gpu == decode_gpu:
            gbit = link.gbit_per_s
    spec = scenario.models.get(model)
    kv_bytes = spec.kv_bytes_per_token_total if spec else None
    if gbit is None or kv_bytes is None:
        return None
    return 1e3 * input_tokens * kv_bytes * BITS_PER_BYTE / (gbit * 1e9)


def instance_prefill_capacity(
    scenario: Scenario, instance: Instance, workload: Workload, extra_overhead_ms: float = 0.0
) -> PrefillCapacity:
    """Per-instance prefill capacity for a workload under its TTFT target (Eqs. P0-P6)."""
    queue, scv = scenario.queue_of(workload)
    try:
        return prefill_capacity(
            input_tokens=workload.input_tokens,
            saturated_tokens_per_s=saturated_prefill_tokens_per_s(instance, workload.input_tokens),
            ttft_ms=workload.slo.ttft_ms,
            ttft_overhead_ms=workload.ttft_overhead_ms + extra_overhead_ms,
            queue=queue,
            scv=scv,
            ttft_percentile=workload.slo.ttft_percentile,
        )
    except UnreachableTargetError as e:
        raise UnreachableTargetError(
            f"workload '{workload.name}' on instance '{instance.name}': {e}"
        ) from None


def instance_decode_curve(instance: Instance, context_tokens: float) -> DecodeCurve:
    """The instance's TPOT-vs-batch curve at a context length (Eqs. D1, D2)."""
    tables = [MeasuredTable(t.context_tokens, t.tpot_ms_by_batch) for t in instance.decode_tables]
    return decode_curve(tables, context_tokens, instance.extrapolation)


def instance_kv_cache_tokens(scenario: Scenario, instance: Instance) -> int | None:
    """KV-cache tokens of one instance: given by the instance, or computed from memory facts
    (Eq. D5a); None when the scenario does not say enough to compute it."""
    if instance.kv_cache_tokens is not None:
        return instance.kv_cache_tokens
    spec = scenario.models.get(instance.model)
    gpu = scenario.gpus.get(instance.gpu)
    if spec is None or gpu is None or gpu.memory_gib is None or spec.weight_gib is None:
        return None
    kv_bytes = spec.kv_bytes_per_token_total
    if kv_bytes is None:
        return None
    utilization = scenario.options.gpu_memory_utilization
    usable = instance.gpus_per_instance * gpu.memory_gib * utilization
    if spec.weight_gib >= usable:
        raise UnreachableTargetError(
            f"instance '{instance.name}': model '{instance.model}' weights "
            f"({spec.weight_gib:g} GiB) do not fit in {usable:.1f} GiB usable memory "
            f"({instance.gpus_per_instance} x {gpu.memory_gib:g} GiB x {utilization:g})"
        )
    return kv_cache_tokens_from_memory(
        gpus_per_instance=instance.gpus_per_instance, memory_gib=gpu.memory_gib,
        gpu_memory_utilization=scenario.options.gpu_memory_utilization,
        weight_gib=spec.weight_gib, kv_bytes_per_token=kv_bytes,
    )


def instance_decode_capacity(
    scenario: Scenario,
    instance: Instance,
    workload: Workload,
    tpot_ms: float | None = None,
    *,
    cache: dict[tuple[str, float], tuple[DecodeCurve, int | None]] | None = None,
) -> DecodeCapacity:
    """Per-instance decode capacity for a workload's lengths under a TPOT target (the workload's
    own unless `tpot_ms` is given), capped by KV-cache memory (Eqs. D3-D6).

    `cache` (optional, owned by the caller) keeps the curve and KV size per (instance, context)
    for callers that ask about many targets and workloads of one scenario."""
    target = workload.slo.tpot_ms if tpot_ms is None else tpot_ms
    context = decode_context_tokens(workload.input_tokens, workload.output_tokens)
    try:
        key = (instance.name, context)
        if cache is not None and key in cache:
            curve, kv_tokens = cache[key]
        else:
            curve = instance_decode_curve(instance, context)
            kv_tokens = instance_kv_cache_tokens(scenario, instance)
            if cache is not None:
                cache[key] = (curve, kv_tokens)
        kv_batch = None if kv_tokens is None else kv_batch_cap(kv_tokens, context)
        return decode_capacity(curve, target, kv_batch)
    except PdoptError as e:
        raise type(e)(f"workload '{workload.name}' on instance '{instance.name}': {e}") from None
