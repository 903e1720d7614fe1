"""The paper's counting (docs/method.md, Eqs. R1, C1-C4) and its published numbers.

arXiv 2603.04716, DeepSeek-V3.1 on 8xH200: TP_prefill ~25,075 tokens/s, decode batch ~34 at ~1,700
tokens/s, N_prefill ~3.07, N_decode ~3.7-3.8, 3P4D; the model predicts ~4.875 M tokens/minute for
3P4D (prefill-bound) and ~3.98 M for 3P3D (decode-bound); 3P4D measured ~4.8 M.
"""

from __future__ import annotations

from typing import Any

import pytest
from conftest import PAPER_TPOT_MS_BY_BATCH
from hypothesis import given
from hypothesis import strategies as st

from pdopt.errors import UnreachableTargetError
from pdopt.ratio import RatioResult, ratio_from_numbers, ratio_from_scenario, round_count
from pdopt.ratio import sustainable_tokens_per_s as sustainable
from pdopt.scenario.loading import load_scenario, scenario_from_data
from pdopt.scenario.problems import ScenarioError

PAPER: dict[str, Any] = dict(
    demand_tokens_per_s=5_000_000 / 60, input_tokens=6144, output_tokens=512, ttft_ms=2000,
    tpot_ms=20, ttft_overhead_ms=100, prefill_tokens_per_s=28309,
    tpot_ms_by_batch=PAPER_TPOT_MS_BY_BATCH,
)
TP_PREFILL = 28309 - 6144 / 1.9  # 25,075.32 input tokens/s (Eq. P6 = the paper's formula)
TP_DECODE = 34 / 0.01992  # 1,706.83 output tokens/s (Eq. D6)


def paper(**kw: Any) -> RatioResult:
    return ratio_from_numbers(**{**PAPER, **kw})


def test_paper_per_instance_capacities() -> None:
    r = paper()
    assert r.saturated_prefill_tokens_per_s == 28309
    assert r.prefill_tokens_per_s == pytest.approx(TP_PREFILL)
    assert round(r.prefill_tokens_per_s) == 25075
    assert r.decode_batch == 34
    assert r.decode_tokens_per_s == pytest.approx(TP_DECODE)
    assert round(r.decode_tokens_per_s) == 1707


def test_paper_counts_and_ratio() -> None:
    r = paper()
    # C1: 83,333.3 x 6144 / (6656 x 25,075.3) = 3.0677
    # C2: 83,333.3 x 512 / (6656 x 1,706.8) = 3.7557
    assert r.prefill_instances_exact == pytest.approx(83333.333 * 6144 / (6656 * TP_PREFILL))
    assert r.prefill_instances_exact == pytest.approx(3.0677, abs=5e-5)
    assert r.decode_instances_exact == pytest.approx(3.7557, abs=5e-5)
    # C3: (6144 x 1,706.8) / (512 x 25,075.3) = 0.8168, independent of demand
    assert r.pd_ratio == pytest.approx(0.81682, abs=5e-6)
    assert paper(demand_tokens_per_s=1000).pd_ratio == pytest.approx(r.pd_ratio)
    assert r.pd_ratio == pytest.approx(r.prefill_instances_exact / r.decode_instances_exact)


def test_paper_rounding() -> None:
    ceil = paper(rounding="ceil")
    assert (ceil.prefill_instances, ceil.decode_instances) == (4, 4)
    assert ceil.sustainable_tokens_per_s >= ceil.demand_tokens_per_s
    nearest = paper(rounding="nearest")
    assert (nearest.prefill_instances, nearest.decode_instances) == (3, 4)  # the paper's answer


def test_paper_sustainable_load_of_3p4d_and_3p3d() -> None:
    # C4, 3P4D: 3 x 25,075.3 x 6656 / 6144 = 81,494.8 tokens/s = 4.889 M tokens/minute,
    # prefill-bound (the paper: 4.875 M predicted, ~4.8 M measured)
    r = paper(rounding="nearest")
    assert r.sustainable_tokens_per_s == pytest.approx(3 * TP_PREFILL * 6656 / 6144)
    assert r.sustainable_tokens_per_minute == pytest.approx(4.8897e6, rel=1e-4)
    assert r.bottleneck == "prefill"
    # 3P3D: decode-bound, 3 x 1,706.8 x 6656 / 512 = 66,566 tokens/s = 3.99 M tokens/minute
    value, side = sustainable(3, 3, input_tokens=6144, output_tokens=512,
                              prefill_tokens_per_s=TP_PREFILL, decode_tokens_per_s=TP_DECODE)
    assert side == "decode"
    assert 60 * value == pytest.approx(3.994e6, rel=1e-3)


def test_paper_scenario_file_gives_the_same(paper_scenario_path: Any) -> None:
    from_file = ratio_from_scenario(load_scenario(paper_scenario_path), "nearest")
    from_flags = paper(rounding="nearest")
    assert from_file.to_dict() == pytest.approx(from_flags.to_dict())


def test_to_dict_has_the_documented_keys() -> None:
    d = paper().to_dict()
    for key in ("prefill_tokens_per_s", "decode_batch", "decode_tokens_per_s", "pd_ratio",
                "prefill_instances_exact", "decode_instances_exact", "prefill_instances",
                "decode_instances", "sustainable_tokens_per_s", "sustainable_tokens_per_minute"):
        assert key in d


def test_round_count() -> None:
    assert round_count(3.07, "ceil") == 4
    assert round_count(3.0 + 1e-12, "ceil") == 3  # float noise does not buy an instance
    assert round_count(3.5, "nearest") == 4
    assert round_count(3.49, "nearest") == 3
    assert round_count(0.2, "nearest") == 1  # never zero instances
    assert round_count(0.2, "ceil") == 1


def test_queue_and_percentile_flow_through() -> None:
    md1 = paper(queue="md1")
    assert md1.prefill_tokens_per_s > paper().prefill_tokens_per_s
    p90 = paper(ttft_percentile=90)
    assert p90.prefill_tokens_per_s == pytest.approx(20863.1669, rel=1e-8)
    assert p90.prefill_instances == 4  # 3.69 exact


def test_unreachable_targets() -> None:
    with pytest.raises(UnreachableTargetError, match=r"at least 317\.0 ms"):
        paper(ttft_ms=300)
    with pytest.raises(UnreachableTargetError, match=r"below the fastest TPOT measured"):
        paper(tpot_ms=10)


def test_headroom_scales_demand(paper_data: dict[str, Any]) -> None:
    paper_data["options"] = {"headroom": 1.2}
    r = ratio_from_scenario(scenario_from_data(paper_data))
    assert r.demand_tokens_per_s == pytest.approx(1.2 * 5_000_000 / 60)


def test_requests_per_s_demand(paper_data: dict[str, Any]) -> None:
    del paper_data["workloads"][0]["tokens_per_minute"]
    paper_data["workloads"][0]["requests_per_s"] = 10
    r = ratio_from_scenario(scenario_from_data(paper_data))
    assert r.demand_tokens_per_s == pytest.approx(66560)  # R1: 10 x (6144 + 512)


def test_scenario_must_have_one_workload_and_one_type_per_role(paper_data: dict[str, Any]) -> None:
    second = dict(paper_data["workloads"][0], name="batch")
    paper_data["workloads"].append(second)
    paper_data["instances"].append(dict(paper_data["instances"][0], name="another-prefill"))
    with pytest.raises(ScenarioError) as info:
        ratio_from_scenario(scenario_from_data(paper_data))
    assert [str(p) for p in info.value.problems] == [
        "workloads: pdopt ratio needs exactly one workload (found 2); use pdopt solve for fleets",
    ]
    paper_data["workloads"].pop()
    with pytest.raises(ScenarioError) as info:
        ratio_from_scenario(scenario_from_data(paper_data))
    assert [str(p) for p in info.value.problems] == [
        "instances: pdopt ratio needs exactly one prefill instance type for model "
        "'deepseek-v3.1' (found 2)",
    ]


# --- properties ---------------------------------------------------------------------------------

demand = st.floats(1, 1e8)


@given(demand, demand, st.sampled_from(["ceil", "nearest"]))
def test_more_load_never_needs_fewer_instances(a: float, b: float, rounding: str) -> None:
    lo, hi = sorted((a, b))
    small, big = paper(demand_tokens_per_s=lo, rounding=rounding), paper(
        demand_tokens_per_s=hi, rounding=rounding)
    assert big.prefill_instances >= small.prefill_instances
    assert big.decode_instances >= small.decode_instances
    assert big.prefill_instances_exact >= small.prefill_instances_exact


@given(demand)
def test_ceil_plan_always_meets_demand(load: float) -> None:
    r = paper(demand_tokens_per_s=load)
    assert r.sustainable_tokens_per_s >= load * (1 - 1e-9)


@given(st.floats(400, 20_000), st.floats(400, 20_000), st.floats(13, 40), st.floats(13, 40))
def test_looser_targets_never_need_more_instances(
    ttft_a: float, ttft_b: float, tpot_a: float, tpot_b: float
) -> None:
    (t_lo, t_hi), (d_lo, d_hi) = sorted((ttft_a, ttft_b)), sorted((tpot_a, tpot_b))
    tight, loose = paper(ttft_ms=t_lo, tpot_ms=d_lo), paper(ttft_ms=t_hi, tpot_ms=d_hi)
    assert loose.prefill_tokens_per_s >= tight.prefill_tokens_per_s
    assert loose.decode_tokens_per_s >= tight.decode_tokens_per_s
    assert loose.prefill_instances <= tight.prefill_instances
    assert loose.decode_instances <= tight.decode_instances


# --- any valid one-workload scenario gives a result or a clean error, never a crash ----------

@st.composite
def one_workload_scenarios(draw: st.DrawFn) -> dict[str, Any]:
    lengths = st.integers(1, 50_000)
    positive = st.floats(0.5, 1e5)
    policy = draw(st.sampled_from(["error", "nearest", "linear"]))
    if draw(st.booleans()):
        prefill: Any = draw(positive)
    else:
        prefill = draw(st.dictionaries(lengths, positive, min_size=1, max_size=4))
    tables = []
    contexts = draw(st.lists(st.tuples(lengths, lengths), min_size=1, max_size=3,
                             unique_by=lambda io: io[0] + io[1] / 2))
    for l_in, l_out in contexts:
        batches = sorted(draw(st.sets(st.integers(1, 300), min_size=1, max_size=5)))
        tpot, table = draw(st.floats(1, 50)), {}
        for b in batches:
            tpot += draw(st.floats(0, 30))
            table[b] = tpot
        tables.append({"measured_at": {"input_tokens": l_in, "output_tokens": l_out},
                       "tpot_ms_by_batch": table})
    if len(tables) == 1 and draw(st.booleans()):
        del tables[0]["measured_at"]
    data: dict[str, Any] = {
        "name": "fuzz",
        "gpus": {"G": {"cost_per_hour": 1.0, "memory_gib": draw(st.floats(8, 200))}},
        "instances": [
            {"name": "p", "model": "m", "role": "prefill", "gpu": "G", "gpus_per_instance": 1,
             "prefill_tokens_per_s": prefill, "extrapolation": policy},
            {"name": "d", "model": "m", "role": "decode", "gpu": "G",
             "gpus_per_instance": draw(st.integers(1, 8)), "tpot_tables": tables,
             "extrapolation": policy},
        ],
        "workloads": [{
            "name": "w", "model": "m", "requests_per_s": draw(st.floats(0.01, 1e4)),
            "input_tokens": draw(lengths), "output_tokens": draw(lengths),
            "slo": {"ttft_ms": draw(st.floats(1, 1e5)), "tpot_ms": draw(st.floats(1, 300)),
                    "ttft_percentile": draw(st.one_of(st.none(), st.floats(1, 99.9)))},
            "ttft_overhead_ms": draw(st.floats(0, 1000)),
        }],
    }
    if draw(st.booleans()):
        data["models"] = {"m": {"kv_bytes_per_token": draw(st.floats(1e3, 1e6)),
                                "weight_gib": draw(st.floats(0, 300))}}
    return data


@given(one_workload_scenarios(), st.sampled_from(["ceil", "nearest"]))
def test_any_scenario_gives_a_plan_or_a_clean_error(data: dict[str, Any], rounding: str) -> None:
    from pdopt.errors import PdoptError

    try:
        r = ratio_from_scenario(scenario_from_data(data), rounding)  # type: ignore[arg-type]
    except PdoptError as e:
        assert str(e)
        return
    assert r.prefill_instances >= 1 and r.decode_instances >= 1
    assert 0 < r.prefill_tokens_per_s < r.saturated_prefill_tokens_per_s
    assert r.decode_batch >= 1 and r.decode_tokens_per_s > 0
    if rounding == "ceil":
        assert r.sustainable_tokens_per_s >= r.demand_tokens_per_s * (1 - 1e-9)


def test_absurd_demand_is_a_clean_error() -> None:
    from pdopt.errors import PdoptError

    with pytest.raises(PdoptError, match="too large to count instances"):
        paper(demand_tokens_per_s=1e308 * 10)
