"""Every shipped scenario loads and solves; the fleet and split examples show what they claim."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import pytest
import yaml

from pdopt.optimize import solve
from pdopt.scenario.loading import load_scenario, scenario_from_data
from pdopt.scenario.paths import absolutize_document

ROOT = Path(__file__).resolve().parent.parent
SCENARIOS = sorted((ROOT / "scenarios").glob("*.yaml"))
# plans over a day (docs/method.md section H) solve for minutes: tests/test_horizon.py checks them
# with a short time limit
SCENARIOS = [p for p in SCENARIOS if p.stem != "day-ahead"]


@pytest.mark.parametrize("path", SCENARIOS, ids=[p.stem for p in SCENARIOS])
def test_shipped_scenario_solves(path: Path) -> None:
    plan = solve(path, mip_gap=0.01)
    assert plan.status in ("optimal", "feasible"), plan.diagnosis
    assert plan.cost_per_hour and plan.cost_per_hour > 0
    for w in plan.workloads:
        # a percentile class sharing a group with other lengths may read up to 2 % over its
        # target under queue auto (docs/method.md O.4, "Several classes in one group")
        slack = 1.02 if w.ttft_percentile is not None else 1 + 1e-9
        assert w.expected_ttft_ms <= w.ttft_target_ms * slack
        assert w.expected_tpot_ms <= w.tpot_target_ms * (1 + 1e-9)


def _data(name: str) -> dict[str, Any]:
    """A shipped scenario as plain data, its relative paths made absolute as prepare does."""
    data = yaml.safe_load((ROOT / "scenarios" / name).read_text(encoding="utf-8"))
    absolutize_document(data, ROOT / "scenarios")
    return data


def _only(data: dict[str, Any], model: str, gpu: str) -> dict[str, Any]:
    data = copy.deepcopy(data)
    data["models"][model]["allowed_gpus"] = [gpu]
    return data


def test_split_is_cheaper_than_either_gpu_alone() -> None:
    data = _data("split-prefill-decode.yaml")
    plan = solve(scenario_from_data(data))
    # prefill on L40S only, decode mostly on H100 (docs/profiles.md: a small L40S decode pool
    # tops it up under the rebuilt estimator)
    pools = {(p.role, p.gpu) for p in plan.pools}
    assert {r for r, g in pools if g == "L40S"} >= {"prefill"} and ("decode", "H100") in pools
    assert ("prefill", "H100") not in pools
    flow = next(f for f in plan.flows if f.decode_instance == "decode-h100")
    assert flow.kv_transfer_ms == pytest.approx(4096 * 65536 * 8 / 100e9 * 1e3)
    for gpu in ("L40S", "H100"):
        alone = solve(scenario_from_data(_only(data, "llama-3.1-8b", gpu)))
        assert alone.has_plan
        assert plan.cost_per_hour < alone.cost_per_hour  # type: ignore[operator]


def test_heterogeneous_fleet_has_the_promised_shape_and_binds_inventory() -> None:
    scenario = load_scenario(ROOT / "scenarios" / "fleet-heterogeneous.yaml")
    models = {w.model for w in scenario.workloads}
    assert len(models) >= 3 and len(scenario.gpus) >= 4
    for model in models:
        slos = {(w.slo.ttft_ms, w.slo.tpot_ms) for w in scenario.workloads if w.model == model}
        assert len(slos) >= 3
    plan = solve(scenario, mip_gap=0.01)
    assert plan.has_plan
    for g, spec in scenario.gpus.items():
        assert spec.count is None or plan.gpus_by_type.get(g, 0) <= spec.count
    assert len(plan.gpus_by_type) >= 3
    # without the inventories a plan exists that is cheaper than any plan within them (below the
    # proven lower bound of the constrained problem): the inventories bind
    free = scenario.model_copy(update={"gpus": {g: s.model_copy(update={"count": None})
                                                for g, s in scenario.gpus.items()}})
    unlimited = solve(free, mip_gap=0.01)
    assert plan.dual_bound is not None
    assert unlimited.cost_per_hour < plan.dual_bound  # type: ignore[operator]
