"""Bounded simulation (issue 10, section 4): the number of requests a run would simulate is
estimated before anything is drawn, and a run beyond the documented limit is refused with one line
that says how to make it smaller (docs/simulation.md, "Limits")."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from pdopt.scenario.loading import scenario_from_data
from pdopt.scenario.schema import Scenario
from pdopt.simulate import (
    Requests,
    SimulationError,
    SimulationOptions,
    plan_from_counts,
    simulate_plan,
)
from pdopt.simulate import simulator as simulator_module
from pdopt.simulate.limits import MAX_SIMULATED_REQUESTS
from pdopt.simulate.simulator import check_request_count


def scenario(requests_per_s: float = 10.0, second_rate: float | None = None) -> Scenario:
    workloads: list[dict[str, object]] = [{
        "name": "w", "model": "m", "requests_per_s": requests_per_s, "input_tokens": 100,
        "output_tokens": 5, "slo": {"ttft_ms": 1000, "tpot_ms": 50}}]
    if second_rate is not None:
        workloads.append({**workloads[0], "name": "v", "requests_per_s": second_rate})
    return scenario_from_data({
        "name": "sim",
        "gpus": {"g": {"cost_per_hour": 1.0}},
        "instances": [
            {"name": "pre", "model": "m", "role": "prefill", "gpu": "g", "gpus_per_instance": 1,
             "prefill_tokens_per_s": 100000},
            {"name": "dec", "model": "m", "role": "decode", "gpu": "g", "gpus_per_instance": 1,
             "tpot_ms_by_batch": {1: 10.0, 64: 20.0}},
        ],
        "workloads": workloads,
    })


def test_expected_requests_are_rate_times_scale_times_horizon() -> None:
    sc = scenario(10.0, second_rate=5.0)
    options = SimulationOptions(duration_s=100, warmup_s=10, cooldown_s=20, rate_scale=2.0)
    assert check_request_count(sc, options, 130.0) == pytest.approx(15.0 * 2.0 * 130.0)
    # with a trace replacing workload 0: its requests plus the other's Poisson arrivals
    assert check_request_count(sc, options, 130.0, traced={0}, replayed=1000) == \
        pytest.approx(1000 + 5.0 * 2.0 * 130.0)


def test_a_run_beyond_the_limit_is_refused_before_drawing(monkeypatch: pytest.MonkeyPatch
                                                          ) -> None:
    sc = scenario(10.0)
    plan = plan_from_counts(sc, {"pre": 1, "dec": 1})

    def must_not_draw(*_args: object, **_kw: object) -> None:
        raise AssertionError("arrivals were drawn for a run that is refused")

    monkeypatch.setattr(simulator_module, "poisson_stream", must_not_draw)
    options = SimulationOptions(duration_s=600, rate_scale=1e6)
    started = time.perf_counter()
    with pytest.raises(SimulationError) as info:
        simulate_plan(sc, plan, options)
    assert time.perf_counter() - started < 10
    message = str(info.value)
    assert "\n" not in message
    assert message.startswith("the run would simulate about 7.8e+09 requests (1e+07 requests/s "
                              "x 780 s of warm-up, window and cool-down), more than the limit of "
                              f"{MAX_SIMULATED_REQUESTS}")
    assert "lower --rate-scale or --duration" in message


def test_a_long_trace_with_other_workloads_counts_both(monkeypatch: pytest.MonkeyPatch) -> None:
    sc = scenario(10.0, second_rate=1e5)
    plan = plan_from_counts(sc, {"pre": 1, "dec": 1})
    n = 1000
    trace = Requests(np.arange(n, dtype=float), np.full(n, 100, dtype=np.int64),
                     np.full(n, 5, dtype=np.int64), np.zeros(n, dtype=np.int64))
    with pytest.raises(SimulationError, match=r"\(1000 trace requests \+ 1e\+05 requests/s"):
        simulate_plan(sc, plan, SimulationOptions(duration_s=None, warmup_s=0, cooldown_s=100),
                      trace=trace)


def test_the_limit_itself_still_runs(monkeypatch: pytest.MonkeyPatch) -> None:
    """A run just under the limit goes ahead (the check is on the expectation, not a guess)."""
    monkeypatch.setattr(simulator_module, "MAX_SIMULATED_REQUESTS", 1000)
    sc = scenario(1.0)
    plan = plan_from_counts(sc, {"pre": 1, "dec": 1})
    result = simulate_plan(sc, plan, SimulationOptions(duration_s=900, warmup_s=50, cooldown_s=50))
    assert 800 < result.simulated_requests < 1200
    with pytest.raises(SimulationError, match="more than the limit of 1000"):
        simulate_plan(sc, plan, SimulationOptions(duration_s=1000, warmup_s=50, cooldown_s=50))


def test_the_cli_probe_is_one_line_and_quick(paper_scenario_path: Path) -> None:
    """`pdopt simulate SCENARIO --rate-scale 1e6 --duration 60` used all 24 GB and was killed."""
    started = time.perf_counter()
    done = subprocess.run([sys.executable, "-m", "pdopt", "simulate", str(paper_scenario_path),
                           "--rate-scale", "1e6", "--duration", "60"],
                          capture_output=True, text=True, timeout=120)
    assert time.perf_counter() - started < 60
    assert done.returncode == 2 and "Traceback" not in done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and "more than the limit of 5000000" in lines[0]
    assert lines[0].startswith(f"error: {paper_scenario_path}: the run would simulate about ")


def test_a_run_of_too_many_decode_steps_is_refused() -> None:
    """Few requests, but each of 10M output tokens on an instance stepping every microsecond:
    the requests are within their limit, the decode steps (the run's time) are not."""
    data = {
        "name": "steps", "gpus": {"g": {"cost_per_hour": 1.0}},
        "instances": [
            {"name": "pre", "model": "m", "role": "prefill", "gpu": "g", "gpus_per_instance": 1,
             "prefill_tokens_per_s": 1e9},
            {"name": "dec", "model": "m", "role": "decode", "gpu": "g", "gpus_per_instance": 1,
             "tpot_ms_by_batch": {1: 0.001, 2: 0.002}}],
        "workloads": [{"name": "w", "model": "m", "requests_per_s": 0.01, "input_tokens": 10,
                       "output_tokens": 10_000_000, "slo": {"ttft_ms": 1e6, "tpot_ms": 1.0}}],
    }
    sc = scenario_from_data(data)
    plan = plan_from_counts(sc, {"pre": 1, "dec": 1})
    started = time.perf_counter()
    with pytest.raises(SimulationError, match=r"the run could take up to 1\.\d+e\+10 decode steps "
                                              r"\(\d+ requests of .* output tokens over .* s with "
                                              r"the drain\), more than the limit of 100000000"):
        simulate_plan(sc, plan, SimulationOptions(duration_s=1e5, warmup_s=0, cooldown_s=0))
    assert time.perf_counter() - started < 20


def test_a_negative_seed_is_an_option_error() -> None:
    with pytest.raises(SimulationError, match="simulation option seed: must be a whole number"):
        SimulationOptions(seed=-1)
