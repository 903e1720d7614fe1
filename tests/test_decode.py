"""Decode under a TPOT target and table lookups (docs/method.md, Eqs. P0, D1-D6, K1, T1)."""

from __future__ import annotations

from typing import Any

import pytest
from conftest import PAPER_TPOT_MS_BY_BATCH
from hypothesis import given
from hypothesis import strategies as st

from pdopt.capacity import (
    decode_context_tokens,
    instance_decode_capacity,
    instance_kv_cache_tokens,
    kv_transfer_ms,
    saturated_prefill_tokens_per_s,
)
from pdopt.decode import (
    DecodeCurve,
    MeasuredTable,
    decode_capacity,
    decode_curve,
    interpolate,
    kv_batch_cap,
    kv_cache_tokens_from_memory,
    table_lookup,
)
from pdopt.errors import ExtrapolationError, UnreachableTargetError
from pdopt.scenario.loading import scenario_from_data


def paper_curve(extrapolation: str = "error") -> DecodeCurve:
    return decode_curve([MeasuredTable(None, PAPER_TPOT_MS_BY_BATCH)], 6400, extrapolation)  # type: ignore[arg-type]


# --- Eq. D1: interpolation in batch -------------------------------------------------------------

def test_interpolate_inside_and_outside() -> None:
    xs, ys = [0.0, 10.0], [0.0, 100.0]
    assert interpolate(xs, ys, 2.5, extrapolation="error") == 25.0
    assert interpolate(xs, ys, 10.0, extrapolation="error") == 100.0
    assert interpolate(xs, ys, 12.0, extrapolation="nearest") == 100.0
    assert interpolate(xs, ys, -1.0, extrapolation="nearest") == 0.0
    assert interpolate(xs, ys, 12.0, extrapolation="linear") == 120.0
    assert interpolate(xs, ys, -1.0, extrapolation="linear") == -10.0
    with pytest.raises(ExtrapolationError, match=r"input length 12 is outside the measured "
                       r"range 0\.\.10 \(add a measurement there, or set extrapolation"):
        interpolate(xs, ys, 12.0, extrapolation="error", what="input length")


def test_interpolate_single_point() -> None:
    assert interpolate([5.0], [7.0], 5.0, extrapolation="error") == 7.0
    assert interpolate([5.0], [7.0], 9.0, extrapolation="linear") == 7.0
    with pytest.raises(ExtrapolationError, match=r"outside the measured range 5 "):
        interpolate([5.0], [7.0], 6.0, extrapolation="error")
    with pytest.raises(ValueError):
        interpolate([], [], 1.0, extrapolation="error")


def test_paper_tpot_at_batch() -> None:
    curve = paper_curve()
    assert curve.tpot_at(34) == pytest.approx(19.92)  # 18.8 + (21.6 - 18.8) * 4/10
    assert curve.tpot_at(35) == pytest.approx(20.2)
    assert curve.tpot_at(10) == 12.8
    assert curve.tpot_at(1) == 12.8  # below the first measured batch: the first measurement
    assert curve.tpot_at(70) == 26.2  # no extrapolation: held at the last measurement


def test_paper_decode_batch_and_throughput() -> None:
    # arXiv 2603.04716: batch ~34 at 20 ms, ~1,700 tokens/s
    cap = decode_capacity(paper_curve(), 20.0)
    assert cap.batch == 34
    assert cap.tpot_ms == pytest.approx(19.92)
    assert cap.tokens_per_s == pytest.approx(34 / 0.01992)  # 1,706.83 (Eq. D6)
    assert cap.tokens_per_s == pytest.approx(1706.827, rel=1e-6)
    assert cap.limited_by == "tpot" and cap.kv_batch is None


def test_tpot_target_at_and_below_the_fastest_measured() -> None:
    assert paper_curve().max_batch(12.8) == 10
    with pytest.raises(UnreachableTargetError,
                       match=r"TPOT target 12 ms is below the fastest TPOT measured "
                             r"\(12\.8 ms at batch 10\)"):
        paper_curve().max_batch(12.0)


def test_tpot_target_beyond_the_table() -> None:
    # error and nearest: capped at the largest measured batch; linear: extend the last segment,
    # slope (26.2 - 23.9)/10 = 0.23 ms per request: 60 + (30 - 26.2)/0.23 = 76.5 -> 76
    assert paper_curve("error").max_batch(30) == 60
    assert paper_curve("nearest").max_batch(30) == 60
    linear = paper_curve("linear")
    assert linear.max_batch(30) == 76
    assert linear.tpot_at(76) == pytest.approx(29.88)
    assert linear.tpot_at(77) > 30


def test_flat_table_with_linear_extrapolation_stays_at_the_table() -> None:
    curve = decode_curve([MeasuredTable(None, {10: 20.0, 20: 20.0})], 100, "linear")
    assert curve.max_batch(25) == 20  # a flat last segment gives no basis to go further


def test_batch_at_throughput_inverts_littles_law() -> None:
    curve = paper_curve()
    assert curve.batch_at_throughput(34 / 0.01992) == pytest.approx(34, rel=1e-6)
    assert curve.batch_at_throughput(10 / 0.0128) == pytest.approx(10, rel=1e-6)
    assert curve.batch_at_throughput(0) == 0.0


# --- Eq. D2: between context tables -------------------------------------------------------------

SHORT = MeasuredTable(1000, {10: 10.0, 20: 20.0, 30: 30.0})
LONG = MeasuredTable(3000, {10: 20.0, 20: 40.0})


def test_interpolation_between_context_tables() -> None:
    curve = decode_curve([LONG, SHORT], 2000)  # halfway: {10: 15, 20: 30}
    assert curve.batches == (10.0, 20.0)  # only batches measured in every table
    assert curve.tpot_ms == (15.0, 30.0)
    assert curve.max_batch(22.5) == 15  # 15 + 1.5 (b - 10) <= 22.5


def test_context_outside_tables_follows_policy() -> None:
    with pytest.raises(ExtrapolationError, match=r"decode context .* 4000 is outside the "
                                                 r"measured range 1000\.\.3000"):
        decode_curve([SHORT, LONG], 4000)
    assert decode_curve([SHORT, LONG], 4000, "nearest").tpot_ms == (20.0, 40.0)
    linear = decode_curve([SHORT, LONG], 4000, "linear")  # {10: 25, 20: 50, 30: 30 -> see below}
    assert linear.tpot_at(10) == 25.0 and linear.tpot_at(20) == 50.0
    assert linear.max_batch(30) == 12  # 25 + 2.5 (b - 10) <= 30


def test_one_table_measured_at_another_context() -> None:
    only = MeasuredTable(6400, PAPER_TPOT_MS_BY_BATCH)
    assert decode_curve([only], 6400).max_batch(20) == 34
    with pytest.raises(ExtrapolationError, match="outside the measured range 6400"):
        decode_curve([only], 8000)
    assert decode_curve([only], 8000, "nearest").max_batch(20) == 34


def test_several_tables_need_contexts() -> None:
    with pytest.raises(ValueError, match="measured_at"):
        decode_curve([MeasuredTable(None, {10: 1.0}), SHORT], 1000)
    with pytest.raises(ValueError):
        decode_curve([], 1000)


def test_decode_context_is_input_plus_half_output() -> None:
    assert decode_context_tokens(6144, 512) == 6400  # Eq. D3


# --- Eqs. D5a, D5b, K1: KV-cache cap ------------------------------------------------------------

def test_kv_cache_tokens_and_batch_cap() -> None:
    # 2 x 80 GiB x 0.9 = 144 GiB; minus 136 GiB weights = 8 GiB; / 128 KiB per token = 65,536
    tokens = kv_cache_tokens_from_memory(gpus_per_instance=2, memory_gib=80,
                                         gpu_memory_utilization=0.9, weight_gib=136,
                                         kv_bytes_per_token=131072)
    assert tokens == 65536
    assert kv_batch_cap(65536, 6400) == 10  # floor(10.24)
    assert kv_cache_tokens_from_memory(gpus_per_instance=1, memory_gib=80,
                                       gpu_memory_utilization=0.9, weight_gib=100,
                                       kv_bytes_per_token=1) == 0


def test_kv_cap_binds_or_not() -> None:
    capped = decode_capacity(paper_curve(), 20.0, kv_batch=10)
    assert (capped.batch, capped.limited_by, capped.tpot_batch) == (10, "kv_cache", 34)
    assert capped.tokens_per_s == pytest.approx(781.25)  # 10 / 12.8 ms
    loose = decode_capacity(paper_curve(), 20.0, kv_batch=50)
    assert (loose.batch, loose.limited_by, loose.kv_batch) == (34, "tpot", 50)
    with pytest.raises(UnreachableTargetError, match="KV cache cannot hold even one request"):
        decode_capacity(paper_curve(), 20.0, kv_batch=0)


def memory_scenario(paper_data: dict[str, Any], **model: Any) -> Any:
    paper_data["gpus"]["H200"] = {"cost_per_hour": 3.99, "memory_gib": 80}
    paper_data["instances"][1]["gpus_per_instance"] = 2
    paper_data["models"] = {"deepseek-v3.1": model}
    return scenario_from_data(paper_data)


def test_kv_cap_from_model_shape(paper_data: dict[str, Any]) -> None:
    # K1: 2 (K and V) x 32 layers x 8 heads x 128 dims x 2 bytes (bf16) = 131,072 bytes per token
    sc = memory_scenario(paper_data, layers=32, kv_heads=8, head_dim=128, kv_dtype="bf16",
                         weight_gib=136)
    assert sc.models["deepseek-v3.1"].kv_bytes_per_token_total == 131072
    decode = sc.instances[1]
    assert instance_kv_cache_tokens(sc, decode) == 65536
    cap = instance_decode_capacity(sc, decode, sc.workloads[0])
    assert (cap.batch, cap.limited_by) == (10, "kv_cache")


def test_kv_cap_from_bytes_and_engine_tokens(paper_data: dict[str, Any]) -> None:
    sc = memory_scenario(paper_data, kv_bytes_per_token=65536, weight_gib=136)
    assert instance_kv_cache_tokens(sc, sc.instances[1]) == 131072  # 8 GiB / 64 KiB
    assert instance_decode_capacity(sc, sc.instances[1], sc.workloads[0]).batch == 20  # 131072/6400
    paper_data["instances"][1]["kv_cache_tokens"] = 64000  # the engine's figure wins
    sc = scenario_from_data(paper_data)
    assert instance_kv_cache_tokens(sc, sc.instances[1]) == 64000
    assert instance_decode_capacity(sc, sc.instances[1], sc.workloads[0]).batch == 10


def test_no_memory_facts_no_cap(paper_data: dict[str, Any]) -> None:
    sc = scenario_from_data(paper_data)
    assert instance_kv_cache_tokens(sc, sc.instances[1]) is None
    assert instance_decode_capacity(sc, sc.instances[1], sc.workloads[0]).batch == 34


def test_weights_that_do_not_fit(paper_data: dict[str, Any]) -> None:
    sc = memory_scenario(paper_data, kv_bytes_per_token=65536, weight_gib=150)
    with pytest.raises(UnreachableTargetError, match=r"weights \(150 GiB\) do not fit in "
                                                     r"144\.0 GiB usable memory"):
        instance_kv_cache_tokens(sc, sc.instances[1])


def test_scenario_tpot_below_fastest_names_workload(paper_data: dict[str, Any]) -> None:
    paper_data["workloads"][0]["slo"]["tpot_ms"] = 10
    sc = scenario_from_data(paper_data)
    with pytest.raises(UnreachableTargetError, match=r"workload 'chat' on instance "
                                                     r"'ds-decode-8xh200': TPOT target 10 ms"):
        instance_decode_capacity(sc, sc.instances[1], sc.workloads[0])


def test_scenario_context_tables(paper_data: dict[str, Any]) -> None:
    decode = paper_data["instances"][1]
    del decode["measured_at"], decode["tpot_ms_by_batch"]
    decode["tpot_tables"] = [
        {"measured_at": {"input_tokens": 2900, "output_tokens": 200},
         "tpot_ms_by_batch": {10: 20.0, 20: 40.0}},
        {"measured_at": {"input_tokens": 900, "output_tokens": 200},
         "tpot_ms_by_batch": {10: 10.0, 20: 20.0, 30: 30.0}},
    ]
    paper_data["workloads"][0].update(input_tokens=1900, output_tokens=200)  # context 2000
    paper_data["workloads"][0]["slo"]["tpot_ms"] = 22.5
    sc = scenario_from_data(paper_data)
    assert instance_decode_capacity(sc, sc.instances[1], sc.workloads[0]).batch == 15


# --- Eq. P0: prefill throughput table; Eq. T1: KV transfer ------------------------------------

def test_prefill_table_lookup(paper_data: dict[str, Any]) -> None:
    assert table_lookup(28309, 6144, extrapolation="error", what="x") == 28309.0
    table = {1000: 30000.0, 4000: 27000.0}
    assert table_lookup(table, 2000, extrapolation="error", what="x") == 29000.0
    paper_data["instances"][0]["prefill_tokens_per_s"] = table
    sc = scenario_from_data(paper_data)
    assert saturated_prefill_tokens_per_s(sc.instances[0], 2000) == 29000.0
    with pytest.raises(ExtrapolationError, match="input length 6144 is outside"):
        saturated_prefill_tokens_per_s(sc.instances[0], 6144)
    paper_data["instances"][0]["extrapolation"] = "linear"
    sc = scenario_from_data(paper_data)
    # 27000 - 1 tokens/s per token x 2144 tokens beyond 4000 = 24,856
    assert saturated_prefill_tokens_per_s(sc.instances[0], 6144) == pytest.approx(24856.0)
    with pytest.raises(Exception, match="not positive"):
        saturated_prefill_tokens_per_s(sc.instances[0], 40000)


def test_kv_transfer_time(paper_data: dict[str, Any]) -> None:
    paper_data["gpus"]["H100"] = {"cost_per_hour": 2.5}
    paper_data["models"] = {"deepseek-v3.1": {"kv_bytes_per_token": 131072}}
    paper_data["kv_transfer"] = {"links": [{"prefill_gpu": "H200", "decode_gpu": "H100",
                                            "gbit_per_s": 100}]}
    sc = scenario_from_data(paper_data)
    # T1: 6144 tokens x 131,072 bytes x 8 bits / 100e9 bit/s = 64.42 ms
    assert kv_transfer_ms(sc, "deepseek-v3.1", "H200", "H100", 6144) == pytest.approx(64.424509)
    assert kv_transfer_ms(sc, "deepseek-v3.1", "H200", "H200", 6144) == 0.0
    assert kv_transfer_ms(sc, "deepseek-v3.1", "H100", "H200", 6144) is None  # no link that way


# --- properties ---------------------------------------------------------------------------------

@st.composite
def monotone_tables(draw: st.DrawFn) -> dict[int, float]:
    batches = sorted(draw(st.sets(st.integers(1, 512), min_size=1, max_size=8)))
    steps = draw(st.lists(st.floats(0, 20), min_size=len(batches), max_size=len(batches)))
    tpot, table = draw(st.floats(1, 50)), {}
    for b, step in zip(batches, steps, strict=True):
        tpot += step
        table[b] = tpot
    return table


@given(monotone_tables(), st.floats(1, 200), st.floats(1, 200),
       st.sampled_from(["error", "nearest", "linear"]))
def test_looser_tpot_never_lowers_decode_capacity(
    table: dict[int, float], a: float, b: float, extrapolation: str
) -> None:
    curve = decode_curve([MeasuredTable(None, table)], 1000, extrapolation)  # type: ignore[arg-type]
    lo, hi = sorted((a, b))

    def cap(target: float) -> float:
        try:
            return decode_capacity(curve, target).tokens_per_s
        except UnreachableTargetError:
            return 0.0

    assert cap(hi) >= cap(lo) * (1 - 1e-12)
    if cap(lo) > 0:
        assert curve.tpot_at(curve.max_batch(lo)) <= lo + 1e-9


@given(monotone_tables(), st.floats(1, 600), st.floats(1, 600))
def test_tpot_never_falls_as_batch_grows(table: dict[int, float], a: float, b: float) -> None:
    curve = decode_curve([MeasuredTable(None, table)], 1000, "linear")
    lo, hi = sorted((a, b))
    assert curve.tpot_at(hi) >= curve.tpot_at(lo) - 1e-9


@given(st.floats(1000, 3000), st.integers(10, 20))
def test_between_tables_tpot_lies_between_them(context: float, batch: int) -> None:
    curve = decode_curve([SHORT, LONG], context)
    low = decode_curve([SHORT], 1000).tpot_at(batch)
    high = decode_curve([LONG], 3000).tpot_at(batch)
    assert low - 1e-9 <= curve.tpot_at(batch) <= high + 1e-9


def test_superlinear_table_runs_at_the_best_batch_not_the_largest() -> None:
    # TPOT 1 ms at batch 2, 3 ms at batch 4: at a 2 ms target the largest batch is 3 (TPOT 2 ms,
    # 1,500 tokens/s) but batch 2 gives 2 / 1 ms = 2,000 tokens/s; Eq. D6 takes the better one.
    curve = decode_curve([MeasuredTable(None, {2: 1.0, 4: 3.0})], 1000)
    cap = decode_capacity(curve, 2.0)
    assert (cap.tpot_batch, cap.batch) == (3, 2)
    assert cap.tokens_per_s == pytest.approx(2000.0)


def test_kv_transfer_default_bandwidth_and_missing_facts(paper_data: dict[str, Any]) -> None:
    paper_data["gpus"]["H100"] = {"cost_per_hour": 2.5}
    paper_data["kv_transfer"] = {"default_gbit_per_s": 50}
    sc = scenario_from_data(paper_data)
    assert kv_transfer_ms(sc, "deepseek-v3.1", "H200", "H100", 6144) is None  # no KV bytes known
    paper_data["models"] = {"deepseek-v3.1": {"kv_bytes_per_token": 70272}}
    sc = scenario_from_data(paper_data)
    # 6144 x 70,272 bytes x 8 / 50 Gbit/s = 69.08 ms, both ways
    assert kv_transfer_ms(sc, "deepseek-v3.1", "H100", "H200", 6144) == pytest.approx(69.080187)


def test_linear_context_extrapolation_that_gives_no_time_is_an_error() -> None:
    # TPOT falls with context between the tables (noise): 2 ms at context 3.5, 1 ms at 2. The line
    # through them gives 1 + (1.25 - 2) x (2 - 1)/(3.5 - 2) = 0.5 ms at context 1.25 and 0 at 0.5.
    slow = MeasuredTable(3.5, {1: 2.0})
    fast = MeasuredTable(2.0, {1: 1.0})
    assert decode_curve([slow, fast], 1.25, "linear").tpot_at(1) == pytest.approx(0.5)
    with pytest.raises(ExtrapolationError, match=r"gives a TPOT of 0 ms at batch 1, not a time"):
        decode_curve([slow, fast], 0.5, "linear")
