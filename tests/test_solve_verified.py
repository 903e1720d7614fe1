"""`solve --verify` (pdopt.simulate.verify.solve_verified): sizing checked by simulation and
corrected until the plan holds and no one-fewer neighbour does (docs/simulation.md)."""

from __future__ import annotations

import math
from pathlib import Path

import pytest

from pdopt.scenario.loading import load_scenario
from pdopt.simulate import SimulationOptions
from pdopt.simulate.verify import solve_verified, with_capacity_factors

SHORT = SimulationOptions(duration_s=600.0, warmup_s=60.0, cooldown_s=60.0, seed=1)


def _mm1(scenario):  # noqa: ANN001, ANN202
    return scenario.model_copy(
        update={"options": scenario.options.model_copy(update={"queue": "mm1"})})


def test_capacity_factors_scale_the_sizing_inputs(paper_scenario_path: Path) -> None:
    sc = load_scenario(paper_scenario_path)
    scaled = with_capacity_factors(sc, {"ds-prefill-8xh200": 1.1, "ds-decode-8xh200": 0.8})
    pre, dec = scaled.instance("ds-prefill-8xh200"), scaled.instance("ds-decode-8xh200")
    assert pre.prefill_tokens_per_s == pytest.approx(28309 * 1.1)
    # a decode type at 0.8 x capacity: its TPOT table read 1/0.8 = 1.25 x slower
    assert dec.decode_tables[0].tpot_ms_by_batch[10] == pytest.approx(12.8 / 0.8)
    assert with_capacity_factors(sc, {}).instance("ds-prefill-8xh200").prefill_tokens_per_s \
        == 28309


def test_default_paper_plan_is_verified_at_once(paper_scenario_path: Path) -> None:
    out = solve_verified(load_scenario(paper_scenario_path), SHORT)
    assert out.verified and len(out.iterations) == 1
    assert out.iterations[0].counts == {"ds-prefill-8xh200": 3, "ds-decode-8xh200": 4}
    assert out.plan.messages[-1].startswith("verified by simulation in 1 solve(s)")
    assert out.simulated_demand == "each workload's demand (Poisson)"
    assert out.stop_reason.startswith("verified:") and out.to_dict()["stop_reason"]
    assert "(stopped: verified:" in out.plan.messages[-1]


def test_paper_method_is_corrected_down_to_3p4d(paper_scenario_path: Path) -> None:
    # M/M/1 buys 4P4D; 3P4D holds in simulation (docs/validation.md section 1), so the prefill
    # capacity is raised by utilisation x 4/3 and the second solve gives 3P4D, which holds while
    # neither 2P4D nor 3P3D does.
    out = solve_verified(_mm1(load_scenario(paper_scenario_path)), SHORT)
    first, last = out.iterations[0], out.iterations[-1]
    assert first.counts == {"ds-prefill-8xh200": 4, "ds-decode-8xh200": 4}
    assert first.meets_slo and first.holding_neighbours == ["ds-prefill-8xh200"]
    assert last.counts == {"ds-prefill-8xh200": 3, "ds-decode-8xh200": 4}
    assert out.verified and last.factors["ds-prefill-8xh200"] > 1.0
    assert {p.instance: p.count for p in out.plan.pools} == last.counts


def test_headroom_is_simulated(paper_data: dict) -> None:
    from pdopt.scenario.loading import scenario_from_data

    paper_data["options"] = {"headroom": 1.1}
    out = solve_verified(scenario_from_data(paper_data), SHORT, max_iterations=1)
    assert out.simulated_demand == "each workload's demand x 1.1 (headroom x rate_scale) (Poisson)"
    if not out.verified:  # one solve allowed: the limit is the reason, with the counts solved
        assert out.stop_reason.startswith("iteration limit: 1 solves, counts ")


def test_stop_reason_names_corrections_that_moved_no_count() -> None:
    from pdopt.simulate.verify import VerifyIteration, _limit_detail

    def it(counts: dict[str, int], factor: float) -> VerifyIteration:
        return VerifyIteration({"p": factor}, counts, 1.0, True, 0.9, ["p"])

    same = [it({"p": 4, "d": 2}, 1.0), it({"p": 3, "d": 2}, 1.1), it({"p": 3, "d": 2}, 1.12)]
    assert _limit_detail(same) == ("the last 2 corrections were too small to move a count "
                                   "(2 x d + 3 x p)")
    moving = [it({"p": 4}, 1.0), it({"p": 3}, 1.1)]
    assert _limit_detail(moving) == "2 solves, counts 4 x p -> 3 x p"


def test_a_correction_that_overshoots_bisects_the_bracket() -> None:
    """Generated scenario (seed 1, #2): at factor 1 the plan of 11 decode instances held and so did
    10; x 11/10 gave 9, which missed by 11.5 %, and 1.1 / 1.115 = 0.987 would give 11 again. The
    next factor is the geometric middle of 1.0 (too low) and 1.1 (too high)."""
    from pdopt.simulate.verify import bracketed

    assert bracketed(1.1 / 1.115, 1.0, 1.1) == pytest.approx(math.sqrt(1.1))
    assert bracketed(1.2, 1.0, 1.1) == pytest.approx(math.sqrt(1.1))
    assert bracketed(1.05, 1.0, 1.1) == 1.05  # inside the bracket: as corrected
    assert bracketed(0.9, 0.0, 1.1) == 0.9  # no factor known too low yet
    assert bracketed(1.3, 1.0, math.inf) == 1.3  # nothing missed yet


def test_step_down_walks_through_holding_neighbours(paper_scenario_path: Path) -> None:
    """The paper's method buys 4P4D, whose 3P4D neighbour holds (docs/validation.md section 1):
    step_down moves there, finds neither 2P4D nor 3P3D holds, and scales the prefill pool's
    utilisation by 4/3 (the sizing's load over 3 instances)."""
    from pdopt.optimize import solve
    from pdopt.scenario.prepare import prepare
    from pdopt.simulate.verify import step_down

    prepared = prepare(_mm1(load_scenario(paper_scenario_path)))
    plan = solve(prepared.scenario)
    pre = "ds-prefill-8xh200"
    down, steps, smallest = step_down(prepared, plan, [(pre, None)], SHORT)
    assert steps == 1 and smallest
    assert {p.instance: p.count for p in down.pools} == {pre: 3, "ds-decode-8xh200": 4}
    assert down.pool(pre).utilization == pytest.approx(plan.pool(pre).utilization * 4 / 3)
    assert down.messages[-1] == "one instance fewer than solved, by simulation (step 1)"
