"""Why this GPU (pdopt.explain): each model's cheapest plan on one GPU type and on the best
prefill/decode pair, against brute force, with other models held at the plan."""

from __future__ import annotations

import copy
import json
from typing import Any

import pytest
from click.testing import CliRunner
from fleet_cases import brute_force_cost, random_fleet

from pdopt.cli import main
from pdopt.explain import explain, restricted_scenario
from pdopt.optimize import solve
from pdopt.scenario.loading import scenario_from_data
from pdopt.scenario.prepare import prepare


def _restricted_data(data: dict[str, Any], model: str, prefill_gpu: str,
                     decode_gpu: str) -> dict[str, Any]:
    out = copy.deepcopy(data)
    spec = out.setdefault("models", {}).setdefault(model, {})
    spec["allowed_prefill_gpus"] = [prefill_gpu]
    spec["allowed_decode_gpus"] = [decode_gpu]
    return out


@pytest.mark.parametrize("seed", [0, 3, 5])
def test_alternatives_equal_brute_force(seed: int) -> None:
    data = random_fleet(seed, gpus=2, cross_links=True)
    scenario = scenario_from_data(data)
    plan = solve(scenario, mip_gap=0.0)
    assert plan.status == "optimal"
    alternatives = explain(scenario, plan, mip_gap=0.0)
    chosen, *others = alternatives
    assert chosen.kind == "chosen" and chosen.cost_per_hour == pytest.approx(plan.cost_per_hour)
    singles = {a.label: a for a in others if a.kind == "single"}
    assert set(singles) == {"GA", "GB"}
    for gpu, alt in singles.items():
        expected = brute_force_cost(scenario_from_data(_restricted_data(data, "m", gpu, gpu)))
        if expected is None:
            assert alt.status == "infeasible" and alt.cost_per_hour is None and alt.reason
        else:
            assert alt.cost_per_hour == pytest.approx(expected, rel=1e-9)
            assert alt.difference_per_hour == pytest.approx(expected - plan.cost_per_hour)
            assert alt.difference_per_hour >= -1e-9  # the plan is optimal over all placements
    pair_costs = {}
    for p, d in (("GA", "GB"), ("GB", "GA")):
        cost = brute_force_cost(scenario_from_data(_restricted_data(data, "m", p, d)))
        if cost is not None:
            pair_costs[(p, d)] = cost
    pairs = [a for a in others if a.kind == "pair"]
    if pair_costs:
        (best,) = pairs  # only the best pair is listed when some pair has a plan
        assert best.cost_per_hour == pytest.approx(min(pair_costs.values()), rel=1e-9)
        assert (best.prefill_gpus[0], best.decode_gpus[0]) in pair_costs
    else:
        (none,) = pairs
        assert none.cost_per_hour is None and none.label == "no P/D pair of 2 has a plan"


def _split_case() -> dict[str, Any]:
    """Prefill is cheap on PF, decode on DM; a 400 Gbit/s link joins them."""
    return {
        "name": "split",
        "options": {"queue": "mm1"},  # the brute force (tests/fleet_cases.py) knows O5 and O6
        "gpus": {"PF": {"cost_per_hour": 1.0}, "DM": {"cost_per_hour": 3.0}},
        "models": {"m": {"kv_bytes_per_token": 131072}},
        "kv_transfer": {"default_gbit_per_s": 400},
        "instances": [
            {"name": "pre-pf", "model": "m", "role": "prefill", "gpu": "PF",
             "gpus_per_instance": 1, "prefill_tokens_per_s": 12000},
            {"name": "dec-pf", "model": "m", "role": "decode", "gpu": "PF",
             "gpus_per_instance": 1, "tpot_ms_by_batch": {8: 30, 16: 40, 32: 60}},
            {"name": "pre-dm", "model": "m", "role": "prefill", "gpu": "DM",
             "gpus_per_instance": 1, "prefill_tokens_per_s": 15000},
            {"name": "dec-dm", "model": "m", "role": "decode", "gpu": "DM",
             "gpus_per_instance": 1, "tpot_ms_by_batch": {8: 10, 16: 12, 32: 15, 64: 22}},
        ],
        "workloads": [{"name": "chat", "model": "m", "requests_per_s": 20,
                       "input_tokens": 4000, "output_tokens": 200,
                       "slo": {"ttft_ms": 1000, "tpot_ms": 25}, "ttft_overhead_ms": 50}],
    }


def test_infeasible_single_type_is_listed_with_its_reason() -> None:
    """PF's decode is 30 ms at batch 8: it never meets a 25 ms TPOT, so PF alone has no plan."""
    data = _split_case()
    scenario = scenario_from_data(data)
    plan = solve(scenario, mip_gap=0.0)
    alternatives = {a.label: a for a in explain(scenario, plan, mip_gap=0.0)}
    assert alternatives["PF"].status == "infeasible"
    assert alternatives["PF"].cost_per_hour is None and alternatives["PF"].reason
    dm = alternatives["DM"]
    assert dm.cost_per_hour == pytest.approx(
        brute_force_cost(scenario_from_data(_restricted_data(data, "m", "DM", "DM"))))
    pair = alternatives["PF prefill + DM decode"]
    assert pair.cost_per_hour == pytest.approx(
        brute_force_cost(scenario_from_data(_restricted_data(data, "m", "PF", "DM"))))
    # the plan is the split: its cost is the pair's, and DM alone costs more
    assert plan.cost_per_hour == pytest.approx(pair.cost_per_hour)
    assert dm.difference_per_hour > 0
    assert "DM prefill + PF decode" not in alternatives  # PF decode cannot meet the TPOT


def test_no_link_means_no_pair() -> None:
    data = _split_case()
    data["kv_transfer"] = {}
    scenario = scenario_from_data(data)
    plan = solve(scenario, mip_gap=0.0)
    assert [a.kind for a in explain(scenario, plan)] == ["chosen", "single", "single"]


def _two_models(inventory_ga: int | None, budget: float | None = None) -> dict[str, Any]:
    data = random_fleet(2)
    other = random_fleet(5)
    for inst in other["instances"]:
        inst["name"] += "-2"
        inst["model"] = "m2"
    for w in other["workloads"]:
        w["name"] += "-2"
        w["model"] = "m2"
    data["instances"] += other["instances"]
    data["workloads"] += other["workloads"]
    data["models"]["m2"] = other["models"]["m"]
    if inventory_ga is not None:
        data["gpus"]["GA"]["count"] = inventory_ga
    if budget is not None:
        data["budget_per_hour"] = budget
    return data


def test_other_models_hold_their_inventory_and_budget() -> None:
    """m's alternatives see the GPUs and budget m2's pools leave (computed by hand here)."""
    free = solve(scenario_from_data(_two_models(None)), mip_gap=0.0)
    data = _two_models(free.gpus_by_type["GA"] + 3, budget=free.cost_per_hour + 5.0)
    prepared = prepare(data)
    plan = solve(prepared, mip_gap=0.0)
    assert plan.status == "optimal"
    m2_ga = sum(p.count * p.gpus_per_instance for p in plan.pools
                if p.model == "m2" and p.gpu == "GA")
    m2_cost = sum(p.cost_per_hour for p in plan.pools if p.model == "m2")
    restricted = restricted_scenario(prepared, plan, "m", "GA", "GA").scenario
    assert restricted.gpus["GA"].count == data["gpus"]["GA"]["count"] - m2_ga
    assert restricted.gpus["GB"].count is None
    assert restricted.budget_per_hour == pytest.approx(data["budget_per_hour"] - m2_cost)
    assert {i.model for i in restricted.instances} == {"m"}
    assert {w.model for w in restricted.workloads} == {"m"}
    alternatives = explain(prepared, plan, mip_gap=0.0, include_pairs=False)
    assert [(a.model, a.kind) for a in alternatives] == [
        ("m", "chosen"), ("m", "single"), ("m", "single"),
        ("m2", "chosen"), ("m2", "single"), ("m2", "single")]
    chosen = {a.model: a for a in alternatives if a.kind == "chosen"}
    assert sum(a.cost_per_hour for a in chosen.values()) == pytest.approx(plan.cost_per_hour)
    for a in alternatives:
        if a.kind == "single" and a.cost_per_hour is not None:
            assert a.difference_per_hour >= -1e-6  # an optimal plan cannot be beaten


def test_plan_less_outcome_has_no_alternatives() -> None:
    data = _split_case()
    data["workloads"][0]["slo"]["tpot_ms"] = 5  # below every decode table
    scenario = scenario_from_data(data)
    plan = solve(scenario)
    assert not plan.has_plan
    assert explain(scenario, plan) == []


def test_solve_explain_cli(tmp_path: Any) -> None:
    import yaml

    path = tmp_path / "split.yaml"
    path.write_text(yaml.safe_dump(_split_case()), encoding="utf-8")
    runner = CliRunner()
    table = runner.invoke(main, ["solve", str(path), "--explain", "--mip-gap", "0"])
    assert table.exit_code == 0, table.output
    assert "why this GPU" in table.output and "PF prefill + DM decode" in table.output
    result = runner.invoke(main, ["solve", str(path), "--explain", "--format", "json",
                                  "--mip-gap", "0"])
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    kinds = [a["kind"] for a in data["alternatives"]]
    assert kinds == ["chosen", "single", "single", "pair"]
    plain = json.loads(runner.invoke(main, ["solve", str(path), "--format", "json"]).stdout)
    assert "alternatives" not in plain


def test_explain_refuses_day_plans_before_solving() -> None:
    """Alternatives are static plans; compared with a day plan's dearest period at on-demand
    prices they would show the chosen pair as cheaper than itself, so --explain refuses."""
    from pathlib import Path

    day_case = Path(__file__).parent / "fixtures" / "report" / "day-case.yaml"
    result = CliRunner().invoke(main, ["solve", str(day_case), "--explain"])
    assert result.exit_code == 2, result.output
    assert "--explain: not computed for day plans" in result.output
    assert "Traceback" not in result.output
