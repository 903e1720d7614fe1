"""The fleet optimizer: against brute force, the paper's case, monotonicity, limits, diagnoses."""

from __future__ import annotations

import copy
import math
from typing import Any

import pytest
from fleet_cases import brute_force_cost, random_fleet
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pdopt.optimize import solve
from pdopt.optimize.data import build_fleet_data
from pdopt.optimize.solver import relative_gap
from pdopt.plan import Objective, Plan, Status
from pdopt.ratio import ratio_from_scenario
from pdopt.scenario.loading import load_scenario, scenario_from_data

SLOW = settings(max_examples=12, deadline=None, derandomize=True,
                suppress_health_check=[HealthCheck.too_slow])


def _solve(data: dict[str, Any], **kw: Any) -> Plan:
    """Solve with the paper's queue model unless the data names one: the hand-computed numbers
    of these tests are the paper's (queue auto has its own tests below and in
    tests/test_queueing_routing.py)."""
    data.setdefault("options", {}).setdefault("queue", "mm1")
    return solve(scenario_from_data(data), **kw)


def _mm1(scenario: Any) -> Any:
    return scenario.model_copy(
        update={"options": scenario.options.model_copy(update={"queue": "mm1"})})


# ---- the paper's case -------------------------------------------------------------------------

def test_paper_case_by_default_is_3p4d(paper_scenario_path: Any) -> None:
    # queue auto (docs/method.md Q9, F3): round-robin over 3 fixed-length prefill instances holds
    # 13.54 requests/s > 12.52; decode with a fluctuating batch still needs 4 (3.77 exact).
    plan = solve(load_scenario(paper_scenario_path))
    assert {p.role: p.count for p in plan.pools} == {"prefill": 3, "decode": 4}
    assert plan.pool("ds-prefill-8xh200").queue_model.startswith("GI/G/1 round-robin")
    (w,) = plan.workloads
    assert w.expected_ttft_ms <= 2000 and w.expected_tpot_ms <= 20
    # pdopt ratio keeps the paper's method when the scenario does not set queue
    ratio = ratio_from_scenario(load_scenario(paper_scenario_path), "ceil")
    assert (ratio.prefill_instances, ratio.decode_instances) == (4, 4)


def test_paper_case_matches_ratio_ceil(paper_scenario_path: Any) -> None:
    scenario = _mm1(load_scenario(paper_scenario_path))
    plan = solve(scenario)
    ratio = ratio_from_scenario(scenario, "ceil")
    assert plan.status == Status.OPTIMAL
    counts = {p.role: p.count for p in plan.pools}
    assert counts == {"prefill": ratio.prefill_instances, "decode": ratio.decode_instances} \
        == {"prefill": 4, "decode": 4}
    assert plan.cost_per_hour == pytest.approx(8 * 8 * 3.99)
    assert plan.total_gpus == 64 and plan.gpus_by_type == {"H200": 64}
    assert plan.instances_by_role == {"prefill": 4, "decode": 4}
    # utilisation = exact count / integer count (Eqs. C1, C2)
    util = {p.role: p.utilization for p in plan.pools}
    assert util["prefill"] == pytest.approx(ratio.prefill_instances_exact / 4)
    assert util["decode"] == pytest.approx(ratio.decode_instances_exact / 4)
    # M/M/1 at 12.52/4 req/s per instance, mu = 28309/6144: TTFT = 0.1 + 1/(mu - lambda) s
    lam = 5e6 / 60 / 6656 / 4
    mu = 28309 / 6144
    (w,) = plan.workloads
    assert w.expected_ttft_ms == pytest.approx(100 + 1e3 / (mu - lam), rel=1e-9)
    assert w.expected_tpot_ms < 20.0
    assert plan.flows[0].requests_per_s == pytest.approx(5e6 / 60 / 6656)


def test_plan_round_trips_through_dict(paper_scenario_path: Any) -> None:
    plan = solve(load_scenario(paper_scenario_path))
    assert Plan.from_dict(plan.to_dict()) == plan


# ---- brute force ------------------------------------------------------------------------------

@pytest.mark.parametrize("seed,kwargs", [
    (0, {}), (2, {}), (5, {}), (6, {}), (11, {}),
    (0, {"cross_links": True}), (3, {"cross_links": True}), (5, {"cross_links": True}),
    (9, {"cross_links": True}), (4, {"cross_links": True, "workloads": 1}),
    (8, {"inventory": True}), (10, {"inventory": True}), (3, {"workloads": 1, "gpus": 3}),
])
def test_optimum_equals_brute_force(seed: int, kwargs: dict[str, Any]) -> None:
    # The brute force checks each group with Eq. O5 (Poisson arrivals at every instance): random
    # routing, where O5 is exact; round-robin's count tables (O14, O15a) carry more per instance.
    data = random_fleet(seed, **kwargs)
    data["options"] = {**data.get("options", {}), "routing": "random"}
    scenario = scenario_from_data(data)
    plan = solve(scenario, mip_gap=0.0)
    expected = brute_force_cost(scenario)
    if expected is None:
        assert plan.status == Status.INFEASIBLE
    else:
        assert plan.status == Status.OPTIMAL
        assert plan.cost_per_hour == pytest.approx(expected, rel=1e-9)


def test_pool_split_into_slo_groups() -> None:
    """A decode type serving a 20 ms and a 40 ms class: 0.9 instance each at their own TPOT, but
    2.7 instances if the loose class ran at the tight TPOT. Two SLO groups of one instance each
    (docs/method.md, O7) beat one shared group of three; the brute force agrees."""
    data = {
        "name": "split-groups",
        "options": {"queue": "mm1"},
        "gpus": {"G": {"cost_per_hour": 1.0}},
        "instances": [
            {"name": "pre", "model": "m", "role": "prefill", "gpu": "G", "gpus_per_instance": 1,
             "prefill_tokens_per_s": 1_000_000},
            {"name": "dec", "model": "m", "role": "decode", "gpu": "G", "gpus_per_instance": 1,
             "tpot_ms_by_batch": {1: 10.0, 64: 20.0, 256: 40.0}},
        ],
        "workloads": [
            # 64 / 20 ms = 3,200 tokens/s per instance; 0.9 x 3,200 / 100 = 28.8 requests/s
            {"name": "tight", "model": "m", "requests_per_s": 28.8, "input_tokens": 100,
             "output_tokens": 100, "slo": {"ttft_ms": 1000, "tpot_ms": 20}},
            # 256 / 40 ms = 6,400 tokens/s per instance; 0.9 x 6,400 / 100 = 57.6 requests/s
            {"name": "loose", "model": "m", "requests_per_s": 57.6, "input_tokens": 100,
             "output_tokens": 100, "slo": {"ttft_ms": 1000, "tpot_ms": 40}},
        ],
    }
    scenario = scenario_from_data(data)
    plan = solve(scenario, mip_gap=0.0)
    dec = plan.pool("dec")
    assert dec.count == 2
    assert [(g.tpot_target_ms, g.count) for g in dec.groups] == [(20.0, 1), (40.0, 1)]
    assert [g.utilization for g in dec.groups] == pytest.approx([0.9, 0.9])
    assert [g.routed_requests_per_s for g in dec.groups] == [
        {"tight": pytest.approx(28.8)}, {"loose": pytest.approx(57.6)}]
    assert plan.cost_per_hour == pytest.approx(brute_force_cost(scenario))
    tpot = {w.workload: w.expected_tpot_ms for w in plan.workloads}
    assert tpot["tight"] <= 20 and 20 < tpot["loose"] <= 40


def test_shared_pool_is_cheaper_than_dedicated_pools() -> None:
    """Two classes with different SLOs sharing one pool round up once, not twice."""
    base = random_fleet(3, workloads=2, gpus=1)
    base["workloads"][0].update(requests_per_s=1.3, slo={"ttft_ms": 3000, "tpot_ms": 50})
    base["workloads"][1].update(requests_per_s=1.1, slo={"ttft_ms": 1500, "tpot_ms": 35})
    together = _solve(base, mip_gap=0.0)
    apart = 0.0
    for w in base["workloads"]:
        alone = copy.deepcopy(base)
        alone["workloads"] = [w]
        apart += _solve(alone, mip_gap=0.0).cost_per_hour  # type: ignore[operator]
    assert together.cost_per_hour is not None
    assert together.cost_per_hour <= apart + 1e-9
    assert together.cost_per_hour == pytest.approx(brute_force_cost(scenario_from_data(base)))


# ---- monotonicity (hypothesis) ------------------------------------------------------------------

@SLOW
@given(seed=st.integers(0, 10_000), factor=st.floats(1.0, 3.0))
def test_more_load_never_costs_less(seed: int, factor: float) -> None:
    base = random_fleet(seed, workloads=2, gpus=2, cross_links=seed % 2 == 0)
    more = copy.deepcopy(base)
    for w in more["workloads"]:
        w["requests_per_s"] *= factor
    a, b = _solve(base, mip_gap=0.0), _solve(more, mip_gap=0.0)
    assert a.has_plan and b.has_plan
    assert b.cost_per_hour >= a.cost_per_hour - 1e-9  # type: ignore[operator]


@SLOW
@given(seed=st.integers(0, 10_000), ttft=st.floats(1.0, 3.0), tpot=st.floats(1.0, 2.0))
def test_looser_slo_never_costs_more(seed: int, ttft: float, tpot: float) -> None:
    base = random_fleet(seed, workloads=2, gpus=2, cross_links=seed % 2 == 1)
    loose = copy.deepcopy(base)
    for w in loose["workloads"]:
        w["slo"] = {"ttft_ms": w["slo"]["ttft_ms"] * ttft, "tpot_ms": w["slo"]["tpot_ms"] * tpot}
    a, b = _solve(base, mip_gap=0.0), _solve(loose, mip_gap=0.0)
    assert b.cost_per_hour <= a.cost_per_hour + 1e-9  # type: ignore[operator]


@SLOW
@given(seed=st.integers(0, 10_000), discount=st.floats(0.3, 1.0), gpu=st.sampled_from(["GA",
                                                                                       "GB"]))
def test_cheaper_gpu_never_raises_the_bill(seed: int, discount: float, gpu: str) -> None:
    base = random_fleet(seed, workloads=2, gpus=2, inventory=seed % 3 == 0)
    cheap = copy.deepcopy(base)
    cheap["gpus"][gpu]["cost_per_hour"] *= discount
    a, b = _solve(base, mip_gap=0.0), _solve(cheap, mip_gap=0.0)
    if not a.has_plan:
        return
    assert b.cost_per_hour <= a.cost_per_hour + 1e-9  # type: ignore[operator]


# ---- limits -----------------------------------------------------------------------------------

def _two_gpu_paper(paper_data: dict[str, Any]) -> dict[str, Any]:
    """The paper's instance types on H200, plus the same on a dearer 'H200b'."""
    data = copy.deepcopy(paper_data)
    data["gpus"]["H200b"] = {"cost_per_hour": 4.50, "memory_gib": 141}
    for inst in list(data["instances"]):
        twin = copy.deepcopy(inst)
        twin["name"] += "-b"
        twin["gpu"] = "H200b"
        data["instances"].append(twin)
    return data


def test_inventory_binds_and_spills_to_dearer_gpu(paper_data: dict[str, Any]) -> None:
    data = _two_gpu_paper(paper_data)
    data["gpus"]["H200"]["count"] = 48  # 6 instances of 8
    plan = _solve(data)
    assert plan.gpus_by_type["H200"] <= 48
    assert plan.gpus_by_type["H200b"] >= 16
    assert plan.instances_by_role == {"prefill": 4, "decode": 4}


def test_budget_makes_infeasible_with_shortfall(paper_data: dict[str, Any]) -> None:
    data = copy.deepcopy(paper_data)
    data["budget_per_hour"] = 200.0
    plan = _solve(data)
    assert plan.status == Status.INFEASIBLE
    assert any("budget short by $55.36/h" in r for r in plan.diagnosis), plan.diagnosis


def test_inventory_shortfall_is_named(paper_data: dict[str, Any]) -> None:
    data = copy.deepcopy(paper_data)
    data["gpus"]["H200"]["count"] = 40
    plan = _solve(data)
    assert plan.status == Status.INFEASIBLE
    assert any("H200 is short by 24 GPUs" in r for r in plan.diagnosis), plan.diagnosis


def test_max_count_diagnosis(paper_data: dict[str, Any]) -> None:
    data = copy.deepcopy(paper_data)
    data["instances"][1]["max_count"] = 3
    plan = _solve(data)
    assert plan.status == Status.INFEASIBLE
    assert any("'ds-decode-8xh200' needs 4 (max_count 3)" in r for r in plan.diagnosis)


def test_min_count_forces_redundancy(paper_data: dict[str, Any]) -> None:
    data = copy.deepcopy(paper_data)
    data["workloads"][0]["tokens_per_minute"] = 500_000
    data["instances"][0]["min_count"] = 2
    plan = _solve(data)
    assert plan.pool("ds-prefill-8xh200").count == 2
    assert plan.pool("ds-decode-8xh200").count == 1


def test_unreachable_ttft_is_diagnosed(paper_data: dict[str, Any]) -> None:
    data = copy.deepcopy(paper_data)
    data["workloads"][0]["slo"]["ttft_ms"] = 250  # 6144/28309 s + 100 ms = 317 ms at zero load
    plan = _solve(data)
    assert plan.status == Status.INFEASIBLE
    (reason,) = plan.diagnosis
    assert "no prefill instance type can serve it" in reason and "317.0 ms" in reason


def test_tpot_below_fastest_is_diagnosed(paper_data: dict[str, Any]) -> None:
    data = copy.deepcopy(paper_data)
    data["workloads"][0]["slo"]["tpot_ms"] = 10
    plan = _solve(data)
    assert plan.status == Status.INFEASIBLE
    assert "fastest TPOT measured (12.8 ms at batch 10)" in plan.diagnosis[0]


def test_allowed_gpus_restrict_placement(paper_data: dict[str, Any]) -> None:
    data = _two_gpu_paper(paper_data)
    data["models"] = {"deepseek-v3.1": {"allowed_decode_gpus": ["H200b"]}}
    data["kv_transfer"] = {"default_gbit_per_s": 400}
    data["models"]["deepseek-v3.1"]["kv_bytes_per_token"] = 70272
    plan = _solve(data)
    assert {p.gpu for p in plan.pools if p.role == "decode"} == {"H200b"}


def test_gpus_objective(paper_data: dict[str, Any]) -> None:
    data = _two_gpu_paper(paper_data)
    # a 4-GPU decode type on H200b that is dearer per hour than 8 x H200 but uses fewer GPUs
    data["instances"].append({
        "name": "ds-decode-4xh200b", "model": "deepseek-v3.1", "role": "decode", "gpu": "H200b",
        "gpus_per_instance": 4, "measured_at": {"input_tokens": 6144, "output_tokens": 512},
        "tpot_ms_by_batch": {10: 14.0, 20: 17.0, 30: 19.5, 40: 23.0},
    })
    data["gpus"]["H200b"]["cost_per_hour"] = 9.0
    by_cost = _solve(data, objective=Objective.COST)
    by_gpus = _solve(data, objective=Objective.GPUS)
    assert by_gpus.total_gpus < by_cost.total_gpus  # type: ignore[operator]
    assert by_gpus.cost_per_hour > by_cost.cost_per_hour  # type: ignore[operator]


# ---- KV transfer ------------------------------------------------------------------------------

def _split_case(gbit_per_s: float) -> dict[str, Any]:
    """Fast-compute 'PF' GPUs for prefill, memory-rich 'DM' GPUs for decode."""
    return {
        "name": "split",
        "gpus": {"PF": {"cost_per_hour": 2.0}, "DM": {"cost_per_hour": 2.0}},
        "models": {"m": {"kv_bytes_per_token": 131072}},
        "kv_transfer": {"links": [{"prefill_gpu": "PF", "decode_gpu": "DM",
                                   "gbit_per_s": gbit_per_s}]},
        "instances": [
            {"name": "pre-pf", "model": "m", "role": "prefill", "gpu": "PF",
             "gpus_per_instance": 1, "prefill_tokens_per_s": 40000},
            {"name": "dec-pf", "model": "m", "role": "decode", "gpu": "PF",
             "gpus_per_instance": 1, "tpot_ms_by_batch": {8: 20, 16: 30, 32: 45}},
            {"name": "pre-dm", "model": "m", "role": "prefill", "gpu": "DM",
             "gpus_per_instance": 1, "prefill_tokens_per_s": 15000},
            {"name": "dec-dm", "model": "m", "role": "decode", "gpu": "DM",
             "gpus_per_instance": 1, "tpot_ms_by_batch": {8: 10, 16: 12, 32: 15, 64: 22}},
        ],
        "workloads": [{"name": "chat", "model": "m", "requests_per_s": 20,
                       "input_tokens": 4000, "output_tokens": 200,
                       "slo": {"ttft_ms": 1000, "tpot_ms": 25}, "ttft_overhead_ms": 50}],
    }


def test_split_pairing_is_priced_with_transfer_time() -> None:
    plan = _solve(_split_case(400))
    assert {(p.role, p.gpu) for p in plan.pools} == {("prefill", "PF"), ("decode", "DM")}
    (flow,) = plan.flows
    # 4000 tokens x 131072 B x 8 bit / 400 Gbit/s = 10.49 ms (Eq. T1)
    assert flow.kv_transfer_ms == pytest.approx(4000 * 131072 * 8 / 400e9 * 1e3)
    (w,) = plan.workloads
    assert w.expected_ttft_ms <= 1000
    assert w.expected_ttft_ms > 50 + flow.kv_transfer_ms


def test_slow_link_makes_split_unreachable() -> None:
    data = _split_case(0.5)  # 8.4 s transfer: above the 1 s TTFT target
    data_fleet = build_fleet_data(scenario_from_data(data))
    assert not any(r.decode_gpu != data_fleet.pools[r.pool].gpu for r in data_fleet.prefill_routes)
    plan = _solve(data)
    assert all(p.gpu == "DM" for p in plan.pools) or all(p.gpu == "PF" for p in plan.pools)


def test_no_link_means_no_cross_pairing() -> None:
    data = _split_case(400)
    data["kv_transfer"] = {}
    plan = _solve(data)
    gpus = {p.gpu for p in plan.pools}
    assert len(gpus) == 1


# ---- solver report ----------------------------------------------------------------------------

def test_relative_gap() -> None:
    assert relative_gap(100.0, 99.0) == pytest.approx(0.01)
    assert relative_gap(100.0, None) is None
    assert relative_gap(0.0, 0.0) == 0.0
    assert relative_gap(10.0, -math.inf) is None


def test_time_limit_returns_incumbent_or_says_none() -> None:
    data = random_fleet(6, workloads=2, gpus=3, cross_links=True)
    plan = _solve(data, time_limit_s=1e-3)
    assert plan.status in (Status.OPTIMAL, Status.FEASIBLE, Status.NO_SOLUTION)
    if plan.status == Status.FEASIBLE:
        assert plan.mip_gap is not None and plan.messages
    if plan.status == Status.NO_SOLUTION:
        assert "time limit" in plan.diagnosis[0]


# ---- many models: model by model (docs/method.md, O.2) ------------------------------------------

def _two_models(seed: int, inventory: dict[str, int] | None = None) -> dict[str, Any]:
    a, b = random_fleet(seed), random_fleet(seed + 100)
    for inst in b["instances"]:
        inst["name"] += "-m2"
        inst["model"] = "m2"
    for w in b["workloads"]:
        w["name"] += "-m2"
        w["model"] = "m2"
    a["instances"] += b["instances"]
    a["workloads"] += b["workloads"]
    a["models"]["m2"] = b["models"]["m"]
    for g, n in (inventory or {}).items():
        a["gpus"][g]["count"] = n
    return a


def _monolithic_cost(data: dict[str, Any]) -> float:
    from pdopt.optimize import create_model
    from pdopt.optimize.solver import solve_model

    fleet = build_fleet_data(scenario_from_data(data))
    model = create_model(fleet, "cost")
    report = solve_model(model, time_limit_s=60, mip_gap=0.0)
    assert report.status == Status.OPTIMAL
    return sum(fleet.pools[p].cost_per_hour * round(model.n[p, lvl].value)
               for p, lvl in model.GROUPS)


def test_models_solved_apart_when_limits_do_not_bind() -> None:
    data = _two_models(2)
    plan = _solve(data, mip_gap=0.0)
    alone = []
    for model in ("m", "m2"):
        part = copy.deepcopy(data)
        part["instances"] = [i for i in data["instances"] if i["model"] == model]
        part["workloads"] = [w for w in data["workloads"] if w["model"] == model]
        part["models"] = {model: data["models"][model]}
        alone.append(_solve(part, mip_gap=0.0).cost_per_hour)
    assert plan.status == Status.OPTIMAL
    assert plan.cost_per_hour == pytest.approx(sum(alone))  # type: ignore[arg-type]
    assert plan.cost_per_hour == pytest.approx(_monolithic_cost(data))
    assert [w.workload for w in plan.workloads] == [w["name"] for w in data["workloads"]]
    assert plan.dual_bound is not None and plan.mip_gap is not None and plan.mip_gap <= 1e-6


def test_shared_inventory_couples_models() -> None:
    free = _solve(_two_models(2), mip_gap=0.0)
    used = free.gpus_by_type["GA"]
    data = _two_models(2, inventory={"GA": used - 1})
    plan = _solve(data, mip_gap=0.0)
    assert plan.status == Status.OPTIMAL
    assert plan.gpus_by_type.get("GA", 0) <= used - 1
    assert plan.cost_per_hour > free.cost_per_hour  # type: ignore[operator]
    assert plan.cost_per_hour == pytest.approx(_monolithic_cost(data))


def _many_models(count: int) -> dict[str, Any]:
    fleets = [random_fleet(seed) for seed in range(count)]
    merged = fleets[0]
    for k, other in enumerate(fleets[1:], start=2):
        for inst in other["instances"]:
            inst["name"] += f"-m{k}"
            inst["model"] = f"m{k}"
        for w in other["workloads"]:
            w["name"] += f"-m{k}"
            w["model"] = f"m{k}"
        merged["instances"] += other["instances"]
        merged["workloads"] += other["workloads"]
        merged["models"][f"m{k}"] = other["models"]["m"]
        for g, spec in other["gpus"].items():
            merged["gpus"].setdefault(g, spec)
    return merged


def test_models_in_parallel_workers_match_the_whole_program() -> None:
    from pdopt.optimize.decompose import PARALLEL_FROM_MODELS

    data = _many_models(PARALLEL_FROM_MODELS)
    plan = _solve(data, mip_gap=0.0)
    assert plan.status == Status.OPTIMAL
    assert plan.cost_per_hour == pytest.approx(_monolithic_cost(data))
    assert {p.model for p in plan.pools} == {"m"} | {f"m{k}" for k in
                                                    range(2, PARALLEL_FROM_MODELS + 1)}


def test_rounded_lp_fallback_is_a_valid_plan() -> None:
    from pdopt.optimize.extract import build_plan
    from pdopt.optimize.model import Relaxation
    from pdopt.optimize.rounding import rounded_up
    from pdopt.optimize.solver import Deadline

    scenario = scenario_from_data(random_fleet(6, cross_links=True))
    fleet = build_fleet_data(scenario)
    result = rounded_up(fleet, Objective.COST, Relaxation(), deadline=Deadline.after(30),
                        dual_bound=None)
    assert result is not None
    model, report = result
    plan = build_plan(fleet, model, Objective.COST, report)
    optimum = solve(scenario, mip_gap=0.0).cost_per_hour
    assert report.dual_bound is not None
    assert report.dual_bound <= optimum + 1e-6 <= plan.cost_per_hour + 2e-6  # type: ignore
    for pool in plan.pools:
        assert all(g.utilization <= 1 + 1e-6 for g in pool.groups)
    for w in plan.workloads:
        assert w.expected_ttft_ms <= w.ttft_target_ms + 1e-6
        assert w.expected_tpot_ms <= w.tpot_target_ms + 1e-6
