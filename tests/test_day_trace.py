"""Demand from a request trace binned into the periods (docs/method.md, Eq. H13), the prefix-cache
hit rate derived from a Mooncake trace's hash_ids (Eq. H14), and `pdopt simulate --trace` of a
day plan (docs/simulation.md, "Day plans"). Every trace here is a small synthetic file written by
the test; the public traces in ../shared are read only in the tests that skip without them."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from click.testing import CliRunner
from hypothesis import given, settings
from hypothesis import strategies as st

from pdopt.cli import main
from pdopt.optimize.periods import solve_horizon
from pdopt.scenario.demand import TracePlacement, period_rates
from pdopt.scenario.horizon import DemandTrace
from pdopt.scenario.loading import scenario_from_data
from pdopt.scenario.prefix_cache import cache_hits
from pdopt.scenario.prepare import prepare
from pdopt.scenario.problems import ScenarioError

# Arrivals (s) of the tiny trace: from the first one, 0, 10, 900, 1800, 1900, 2400 and 3600.
TINY = [100, 110, 1000, 1900, 2000, 2500, 3700]


def _csv(path: Path, arrivals: list[float], inputs: int = 1000, outputs: int = 100) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("arrival_s,input_tokens,output_tokens\n" + "".join(
        f"{a},{inputs},{outputs}\n" for a in arrivals), encoding="utf-8")
    return path


def _scenario(tmp_path: Path, paper: dict[str, Any], trace: dict[str, Any],
              periods: dict[str, Any], **workload: Any) -> Path:
    data = copy.deepcopy(paper)
    data.setdefault("options", {})["queue"] = "mm1"
    data["periods"] = periods
    data["workloads"][0]["demand"] = {"trace": trace}
    data["workloads"][0].update(workload)
    path = tmp_path / "day.yaml"
    path.write_text(json.dumps(data), encoding="utf-8")
    return path


def _counts(path: Path) -> list[float]:
    sc = prepare(path).scenario
    return [r * h * 3600 for r, h in zip(period_rates(sc)["chat"], sc.horizon_hours,
                                         strict=True)]


# ---- binning (Eq. H13) ---------------------------------------------------------------------------

@pytest.mark.parametrize("fit,periods,counts", [
    # exact: trace seconds are horizon seconds; [0, 1800) holds 0, 10, 900; [1800, 3600) holds
    # 1800, 1900, 2400 (3600 is the duration's end: not used)
    ("exact", {"count": 2, "length_h": 0.5}, [3, 3]),
    ("exact", {"lengths_h": [0.25, 0.75]}, [2, 4]),
    # repeat: [0, 3600) again from 3600
    ("repeat", {"count": 4, "length_h": 0.5}, [3, 3, 3, 3]),
    # scale_to_horizon over 2 hours: horizon time 2u: 0, 20, 1800, 3600, 3800, 4800
    ("scale_to_horizon", {"count": 4, "length_h": 0.5}, [2, 1, 3, 0]),
    # ... over half an hour: u / 2: 0, 5, 450, 900, 950, 1200
    ("scale_to_horizon", {"count": 3, "length_h": 1 / 6}, [3, 2, 1]),
])
def test_trace_arrivals_are_counted_in_each_period(
        tmp_path: Path, paper_data: dict[str, Any], monkeypatch: pytest.MonkeyPatch, fit: str,
        periods: dict[str, Any], counts: list[int]) -> None:
    _csv(tmp_path / "sub" / "t.csv", TINY)
    path = _scenario(tmp_path, paper_data, {"file": "sub/t.csv", "format": "csv", "fit": fit},
                     periods)
    monkeypatch.chdir("/")  # the trace is read relative to the scenario file
    assert _counts(path) == pytest.approx(counts)


def test_start_duration_and_shape(tmp_path: Path, paper_data: dict[str, Any]) -> None:
    _csv(tmp_path / "t.csv", TINY)
    # from 900 s on, 1800 s of it: 900, 1800, 1900, 2400 -> u 0, 900, 1000, 1500
    path = _scenario(tmp_path, paper_data, {"file": "t.csv", "format": "csv", "start_s": 900,
                                            "duration_s": 1800}, {"count": 2, "length_h": 0.25})
    assert _counts(path) == pytest.approx([1, 3])
    # shape: the counts' rates over their mean, times the workload's rate (mean 2 -> 0.5, 1.5)
    path = _scenario(tmp_path, paper_data, {"file": "t.csv", "format": "csv", "start_s": 900,
                                            "duration_s": 1800, "values": "shape"},
                     {"count": 2, "length_h": 0.25})
    rate = prepare(path).scenario.workloads[0].rate_requests_per_s
    assert period_rates(prepare(path).scenario)["chat"] == pytest.approx([rate / 2, rate * 1.5])


def test_azure_and_mooncake_timestamps(tmp_path: Path, paper_data: dict[str, Any]) -> None:
    """Azure: wall-clock date-times (u 0, 58.5, 60.4, 120); Mooncake: milliseconds (u 0, 0, 61,
    62, 120). Both from their first arrival; the last one is the duration's end, not used."""
    (tmp_path / "a.csv").write_text(
        "TIMESTAMP,ContextTokens,GeneratedTokens\n2023-11-16 18:00:00.5,10,5\n"
        "2023-11-16 18:00:59,10,5\n2023-11-16 18:01:00.9,10,5\n2023-11-16 18:02:00.5,10,5\n",
        encoding="utf-8")
    (tmp_path / "m.jsonl").write_text("".join(
        json.dumps({"timestamp": t, "input_length": 10, "output_length": 5}) + "\n"
        for t in (5000, 5000, 66000, 67000, 125000)), encoding="utf-8")
    for name, fmt, counts in [("a.csv", "azure", [2, 1]), ("m.jsonl", "mooncake", [2, 2])]:
        path = _scenario(tmp_path, paper_data, {"file": name, "format": fmt},
                         {"count": 2, "length_h": 1 / 60})
        assert _counts(path) == pytest.approx(counts), fmt


def test_warm_up_before_the_first_period_wraps_only_when_cyclic() -> None:
    spec = DemandTrace(file="t", format="csv")
    times = np.array([0.0, 10, 900, 1800, 1900, 2400, 3600])
    cyclic = TracePlacement.of(spec, times, 3600.0, cyclic=True, location="x")
    at, picks = cyclic.arrivals(-1300.0, 100.0)  # 2300..3600 -> 2400 (as -1200), then 0, 10
    assert at.tolist() == [-1200.0, 0.0, 10.0] and picks.tolist() == [5, 0, 1]
    straight = TracePlacement.of(spec, times, 3600.0, cyclic=False, location="x")
    assert straight.arrivals(-1300.0, 100.0)[0].tolist() == [0.0, 10.0]
    assert straight.arrivals(3500.0, 5000.0)[0].size == 0


@pytest.mark.parametrize("trace,periods,where,message", [
    ({"file": "nope.csv", "format": "csv"}, None, "demand.trace.file", "nope.csv"),
    ({"file": "t.csv", "format": "mooncake"}, None, "demand.trace.file", "line 1"),
    ({"file": "bad.csv", "format": "csv"}, None, "demand.trace.file",
     "line 3: arrival_s: not a number"),
    ({"file": "t.csv", "format": "csv"}, {"count": 2, "length_h": 1}, "demand.trace.fit",
     "lasts 3600 s"),
    ({"file": "t.csv", "format": "csv", "start_s": 5000}, None, "demand.trace.start_s",
     "before start_s"),
    ({"file": "t.csv", "format": "parquet"}, None, "demand.trace.format", ""),
    ({"file": "t.csv", "format": "csv", "fit": "stretch"}, None, "demand.trace.fit", ""),
    ({"file": "t.csv", "format": "csv", "duration_s": 0}, None, "demand.trace.duration_s", ""),
])
def test_bad_trace_demand_is_one_line_error(
        tmp_path: Path, paper_data: dict[str, Any], trace: dict[str, Any],
        periods: dict[str, Any] | None, where: str, message: str) -> None:
    _csv(tmp_path / "t.csv", TINY)
    (tmp_path / "bad.csv").write_text("arrival_s,input_tokens,output_tokens\n1,2,3\nx,2,3\n",
                                      encoding="utf-8")
    path = _scenario(tmp_path, paper_data, trace, periods or {"count": 2, "length_h": 0.5})
    for command in (["check"], ["solve"]):
        out = CliRunner().invoke(main, [*command, str(path)])
        assert out.exit_code == 2, out.output
        lines = [line for line in out.output.splitlines() if line.strip()]
        assert len(lines) == 1, out.output
        assert f"workloads[0].{where}" in lines[0] and message in lines[0], lines[0]
        assert "Traceback" not in out.output


@pytest.mark.skipif(not hasattr(__import__("os"), "mkfifo"), reason="no named pipes")
def test_named_pipe_or_device_trace_is_refused_without_reading(
        tmp_path: Path, paper_data: dict[str, Any]) -> None:
    import os

    os.mkfifo(tmp_path / "pipe.csv")
    for trace, prefix in [({"file": "pipe.csv", "format": "csv"}, None),
                          ({"file": "/dev/zero", "format": "mooncake"}, None),
                          ({"file": "t.csv", "format": "csv"}, {"trace": "pipe.csv"})]:
        _csv(tmp_path / "t.csv", TINY)
        extra = {"prefix_cache": prefix} if prefix else {}
        path = _scenario(tmp_path, paper_data, trace, {"count": 2, "length_h": 0.5}, **extra)
        out = CliRunner().invoke(main, ["check", str(path)])
        assert out.exit_code == 2 and "not a regular file" in out.output, out.output


def test_trace_demand_needs_periods(paper_data: dict[str, Any]) -> None:
    paper_data["workloads"][0]["demand"] = {"trace": {"file": "t.csv", "format": "csv"}}
    with pytest.raises(ScenarioError, match="needs `periods`"):
        scenario_from_data(paper_data)


def test_trace_paths_in_overrides_are_absolute(tmp_path: Path) -> None:
    from pdopt.scenario.paths import absolutize_value

    for key, value in [("workloads.chat.demand", {"trace": {"file": "t.csv"}}),
                       ("workloads.chat.demand.trace", {"file": "t.csv"}),
                       ("workloads.chat.demand.trace.file", "t.csv"),
                       ("workloads.chat.prefix_cache", {"trace": "t.csv"}),
                       ("workloads.chat.prefix_cache.trace", "t.csv")]:
        out = absolutize_value(key, value, tmp_path)
        got = out if isinstance(out, str) else (
            out.get("trace") if isinstance(out.get("trace"), str) else
            out.get("file") or out["trace"]["file"])
        assert got == str(tmp_path / "t.csv"), key


# ---- the prefix cache (Eq. H14) ------------------------------------------------------------------

# (input length, hash_ids) with 4-token blocks; by hand:
#   r1 [1,2,3] L10: empty cache, 0          r2 [1,2] L8: both in, 4 + 4 = 8
#   r3 [1,4] L6: 1 in (4), 4 not            r4 [5,2,3] L12: 5 misses first: 0 (prefix stops)
#   r5 [1,2] L8: infinite: 8; an LRU of 3 blocks holds 5, 2, 3 after r4 (1 evicted): 0
REQUESTS = [(10, [1, 2, 3]), (8, [1, 2]), (6, [1, 4]), (12, [5, 2, 3]), (8, [1, 2])]


def test_cache_hits_by_hand() -> None:
    infinite = cache_hits(REQUESTS, 4)
    assert (infinite.requests, infinite.input_tokens, infinite.cached_tokens) == (5, 44, 20)
    assert infinite.hit_rate == pytest.approx(20 / 44)
    lru = cache_hits(REQUESTS, 4, capacity_blocks=3)
    assert (lru.input_tokens, lru.cached_tokens) == (44, 12)
    # a partly filled last block counts its own tokens: L 6 over [1, 2] is 4 + 2
    assert cache_hits([(10, [1, 2, 3]), (6, [1, 2])], 4).cached_tokens == 6
    # tokens past the last hashed block are never cached
    assert cache_hits([(10, [1]), (10, [1])], 4).cached_tokens == 4


@settings(max_examples=60, deadline=None, derandomize=True)
@given(st.lists(st.tuples(st.integers(1, 40), st.integers(0, 6), st.integers(1, 6)),
                min_size=1, max_size=30), st.integers(1, 12))
def test_cache_hits_monotone_in_capacity(shapes: list[tuple[int, int, int]],
                                         capacity: int) -> None:
    """Requests share prefixes (a prompt family and a depth into it, then fresh blocks): a
    larger LRU never hits less than a smaller one, none more than the infinite cache, and no
    request reads more than its prompt."""
    fresh = iter(range(10_000, 10**9))
    requests = []
    for length, family, depth in shapes:
        blocks = [(family, k) for k in range(min(depth, (length + 3) // 4))]
        blocks += [next(fresh) for _ in range((length + 3) // 4 - len(blocks))]
        requests.append((length, blocks))
    small, large = cache_hits(requests, 4, capacity), cache_hits(requests, 4, capacity + 3)
    infinite = cache_hits(requests, 4)
    assert small.cached_tokens <= large.cached_tokens <= infinite.cached_tokens
    assert infinite.cached_tokens <= infinite.input_tokens - requests[0][0]


@settings(max_examples=60, deadline=None, derandomize=True)
@given(st.lists(st.floats(0, 5000, allow_nan=False), min_size=2, max_size=40),
       st.lists(st.floats(0.05, 1.0), min_size=1, max_size=6),
       st.sampled_from(["exact", "repeat", "scale_to_horizon"]))
def test_binning_keeps_every_arrival(times: list[float], hours: list[float], fit: str) -> None:
    """Every used arrival falls in exactly one period: exact counts those before the horizon's
    end, scale_to_horizon all of them, repeat each once per copy of the trace that fits."""
    u = np.sort(np.asarray(times) - min(times))
    if u[-1] <= 0:
        return
    horizon = sum(hours) * 3600.0
    spec = DemandTrace(file="t", format="csv", fit=fit,  # type: ignore[arg-type]
                       duration_s=max(float(u[-1]), horizon) if fit == "exact" else None)
    placement = TracePlacement.of(spec, u, horizon, cyclic=True, location="x")
    counts = placement.counts(hours)
    used = placement.arrival_s
    if fit == "exact":
        assert sum(counts) == int((used < horizon).sum())
    elif fit == "scale_to_horizon":
        assert sum(counts) == used.size
    else:
        d = placement.duration_s
        assert sum(counts) == sum(int((used + j * d < horizon).sum())
                                  for j in range(int(np.ceil(horizon / d)) + 1))


def _mooncake(path: Path, requests: list[tuple[int, list[int]]], step_ms: int = 1000) -> Path:
    path.write_text("".join(json.dumps({"timestamp": k * step_ms, "input_length": n,
                                        "output_length": 5, "hash_ids": h}) + "\n"
                            for k, (n, h) in enumerate(requests)), encoding="utf-8")
    return path


def test_prefix_cache_rate_derived_in_the_prepared_scenario_and_reported(
        tmp_path: Path, paper_data: dict[str, Any]) -> None:
    _mooncake(tmp_path / "m.jsonl", REQUESTS)
    paper_data["workloads"][0]["prefix_cache"] = {"trace": "m.jsonl", "block_tokens": 4}
    path = tmp_path / "s.yaml"
    path.write_text(json.dumps(paper_data), encoding="utf-8")
    prepared = prepare(path)
    w = prepared.scenario.workloads[0]
    assert w.prefix_cache_hit_rate == pytest.approx(20 / 44) and w.prefix_cache is None
    assert [e.to_dict()["cached_tokens"] for e in prepared.prefix_caches] == [20]
    checked = CliRunner().invoke(main, ["check", str(path)])
    assert checked.exit_code == 0
    assert f"prefix_cache_hit_rate {20 / 44:.4f} derived from {tmp_path / 'm.jsonl'}" \
        in checked.output
    as_json = CliRunner().invoke(main, ["check", str(path), "--format", "json"])
    assert [f"prefix_cache_hit_rate {20 / 44:.4f}" in line
            for line in json.loads(as_json.stdout)["derived"]] == [True]
    solved = CliRunner().invoke(main, ["solve", str(path), "--format", "json"])
    assert solved.exit_code == 0, solved.output
    plan = json.loads(solved.stdout)
    assert any(f"prefix_cache_hit_rate {20 / 44:.4f}" in m for m in plan["messages"])
    # the same scenario with the rate written in plans the same fleet
    paper_data["workloads"][0].pop("prefix_cache")
    paper_data["workloads"][0]["prefix_cache_hit_rate"] = 20 / 44
    written = tmp_path / "written.yaml"
    written.write_text(json.dumps(paper_data), encoding="utf-8")
    again = CliRunner().invoke(main, ["solve", str(written), "--format", "json"])
    assert json.loads(again.stdout)["cost_per_hour"] == plan["cost_per_hour"]


def test_prefix_cache_from_the_demand_trace(tmp_path: Path, paper_data: dict[str, Any]) -> None:
    _mooncake(tmp_path / "m.jsonl", REQUESTS, step_ms=900_000)  # 0 .. 3600 s
    path = _scenario(tmp_path, paper_data, {"file": "m.jsonl", "format": "mooncake"},
                     {"count": 2, "length_h": 0.5},
                     prefix_cache={"block_tokens": 4, "capacity_blocks": 3})
    prepared = prepare(path)
    assert prepared.scenario.workloads[0].prefix_cache_hit_rate == pytest.approx(12 / 44)
    assert _counts(path) == pytest.approx([2, 2])  # 0, 900 | 1800, 2700 (3600: the end)


@pytest.mark.parametrize("workload,message", [
    ({"prefix_cache": {"trace": "m.jsonl"}, "prefix_cache_hit_rate": 0.3}, "not both"),
    ({"prefix_cache": {}}, "demand.trace` of format mooncake"),
    ({"prefix_cache": {"trace": "m.jsonl", "block_tokens": 0}}, "block_tokens"),
    ({"prefix_cache": {"trace": "missing.jsonl"}}, "missing.jsonl"),
    ({"prefix_cache": {"trace": "nohash.jsonl"}}, "line 1: hash_ids: missing"),
    ({"prefix_cache": {"trace": "badhash.jsonl"}}, "line 2: hash_ids: expected a list"),
])
def test_bad_prefix_cache_is_one_line_error(tmp_path: Path, paper_data: dict[str, Any],
                                            workload: dict[str, Any], message: str) -> None:
    _mooncake(tmp_path / "m.jsonl", REQUESTS)
    (tmp_path / "nohash.jsonl").write_text('{"timestamp": 0, "input_length": 5}\n',
                                           encoding="utf-8")
    (tmp_path / "badhash.jsonl").write_text(
        '{"input_length": 5, "hash_ids": [1]}\n{"input_length": 5, "hash_ids": "12"}\n',
        encoding="utf-8")
    paper_data["workloads"][0].update(workload)
    path = tmp_path / "s.yaml"
    path.write_text(json.dumps(paper_data), encoding="utf-8")
    for command in ("check", "solve"):
        out = CliRunner().invoke(main, [command, str(path)])
        assert out.exit_code == 2, out.output
        lines = [line for line in out.output.splitlines() if line.strip()]
        assert len(lines) == 1 and "workloads[0]" in lines[0] and message in lines[0], \
            out.output


def test_public_mooncake_trace_hit_rate(shared_data: Path) -> None:
    """The conversation trace: an LRU cache never hits more than the infinite one, and a larger
    LRU never less than a smaller one on this trace."""
    from pdopt.simulate.traces import read_mooncake_blocks

    path = shared_data / "traces" / "mooncake_conversation_trace.jsonl"
    if not path.is_file():
        pytest.skip(f"{path} is absent")
    requests = [(n, h) for _, n, h in read_mooncake_blocks(path)]
    rates = [cache_hits(requests, 512, c).hit_rate for c in (1000, 10000, None)]
    assert 0 < rates[0] <= rates[1] <= rates[2] < 1


# ---- simulate --trace of a day plan --------------------------------------------------------------

def _day_trace(tmp_path: Path, paper: dict[str, Any], **periods: Any) -> Path:
    """Period 0 (180 s): one arrival a second from 0; period 1 (180 s): four a second."""
    arrivals = [float(t) for t in range(180)] + [180 + k / 4 for k in range(720)]
    _csv(tmp_path / "t.csv", arrivals, inputs=2000, outputs=100)
    return _scenario(tmp_path, paper, {"file": "t.csv", "format": "csv", "duration_s": 360},
                     {"count": 2, "length_h": 0.05, **periods})


def test_day_plan_replays_the_trace_period_by_period(tmp_path: Path,
                                                     paper_data: dict[str, Any]) -> None:
    from pdopt.simulate.day import DayTrace, simulate_day
    from pdopt.simulate.simulator import SimulationOptions
    from pdopt.simulate.traces import read_trace

    path = _day_trace(tmp_path, paper_data)
    assert _counts(path) == pytest.approx([180, 720])
    prepared = prepare(path)
    plan = solve_horizon(prepared, compare=False)
    trace = DayTrace.for_workload(prepared.scenario, "chat", read_trace(tmp_path / "t.csv",
                                                                        "csv"), "t.csv", "csv")
    options = SimulationOptions(duration_s=None, warmup_s=20, cooldown_s=20)
    runs = simulate_day(prepared, plan, options, trace=trace)
    assert [r.result.counts for r in runs] == [
        {p.instance: p.count for p in period.pools} for period in plan.periods]
    # the window is the whole period: its own arrivals, counted by hand
    assert [r.result.workloads[0].requests for r in runs] == [180, 720]
    # warm-up: the 20 s before the period (cyclic: period 0's come from the horizon's end, 4/s);
    # cool-down: the 20 s after it (period 1's: from the start again, 1/s)
    assert [r.result.simulated_requests for r in runs] == [80 + 180 + 80, 20 + 720 + 20]
    # not cyclic: nothing before the horizon or after it
    straight = _day_trace(tmp_path, paper_data, cyclic=False)
    prepared = prepare(straight)
    runs = simulate_day(prepared, solve_horizon(prepared, compare=False), options,
                        trace=trace)
    assert [r.result.simulated_requests for r in runs] == [180 + 80, 20 + 720]
    # a shorter window, twice as fast: 30 simulated s take 60 trace s of the period
    fast = simulate_day(prepared, plan, SimulationOptions(duration_s=30, warmup_s=10,
                                                          cooldown_s=10, rate_scale=2),
                        trace=trace)
    assert [r.result.workloads[0].requests for r in fast] == [60, 240]


def test_shape_trace_is_replayed_at_the_workloads_rate(tmp_path: Path,
                                                      paper_data: dict[str, Any]) -> None:
    """values: shape plans rate x (binned rate / mean binned rate): with a workload rate of 5
    and binned rates 1 and 4 (mean 2.5) the plan has 2 and 8 requests/s, and the replay runs
    the trace 2x faster: each period's own arrivals (180, 720) in 90 simulated seconds."""
    from pdopt.simulate.day import DayTrace, simulate_day
    from pdopt.simulate.simulator import SimulationOptions
    from pdopt.simulate.traces import read_trace

    path = _day_trace(tmp_path, paper_data)
    data = json.loads(path.read_text(encoding="utf-8"))
    data["workloads"][0]["demand"]["trace"]["values"] = "shape"
    for unit in ("tokens_per_s", "tokens_per_minute"):
        data["workloads"][0].pop(unit, None)
    data["workloads"][0]["requests_per_s"] = 5
    path.write_text(json.dumps(data), encoding="utf-8")
    prepared = prepare(path)
    assert period_rates(prepared.scenario)["chat"] == pytest.approx([2, 8])
    trace = DayTrace.for_workload(prepared.scenario, "chat",
                                  read_trace(tmp_path / "t.csv", "csv"), "t.csv", "csv")
    assert trace.rate_factor == pytest.approx(2)
    runs = simulate_day(prepared, solve_horizon(prepared, compare=False),
                        SimulationOptions(duration_s=None, warmup_s=10, cooldown_s=10),
                        trace=trace)
    assert [r.result.workloads[0].requests for r in runs] == [180, 720]
    assert [r.result.window_s[1] - r.result.window_s[0] for r in runs] == pytest.approx([90, 90])
    assert "x2 faster" in runs[0].messages[0]


def test_cli_simulates_a_day_plan_on_a_trace(tmp_path: Path, paper_data: dict[str, Any]) -> None:
    path = _day_trace(tmp_path, paper_data)
    out = CliRunner().invoke(main, ["simulate", str(path), "--trace", str(tmp_path / "t.csv"),
                                    "--warmup", "20", "--cooldown", "20", "--format", "json"])
    assert out.exit_code == 0, out.output
    data = json.loads(out.stdout)
    assert [p["simulation"]["workloads"][0]["requests"] for p in data["periods"]] == [180, 720]
    assert [p["horizon_window_s"] for p in data["periods"]] == [[0, 180], [180, 360]]
    assert data["meets_slo"] == all(p["simulation"]["meets_slo"] for p in data["periods"])
    table = CliRunner().invoke(main, ["simulate", str(path), "--trace", str(tmp_path / "t.csv"),
                                      "--warmup", "20", "--cooldown", "20"])
    assert "on the arrivals of" in table.output and "period" in table.output


def test_day_plan_trace_too_short_is_one_line_error(tmp_path: Path,
                                                    paper_data: dict[str, Any]) -> None:
    """Without a demand.trace the trace is laid exactly (trace seconds are horizon seconds)."""
    data = copy.deepcopy(paper_data)
    data["periods"] = {"count": 2, "length_h": 0.05}
    data["workloads"][0]["demand"] = {"multipliers": [0.2, 0.8]}
    path = tmp_path / "day.yaml"
    path.write_text(json.dumps(data), encoding="utf-8")
    _csv(tmp_path / "short.csv", [0, 10, 100])
    out = CliRunner().invoke(main, ["simulate", str(path), "--trace", str(tmp_path / "short.csv"),
                                    "--trace-format", "csv"])
    assert out.exit_code == 2
    lines = [line for line in out.output.splitlines() if line.strip()]
    assert len(lines) == 1 and "short.csv" in lines[0] and "lasts" in lines[0], out.output


def test_public_azure_trace_binned(shared_data: Path, tmp_path: Path,
                                   paper_data: dict[str, Any]) -> None:
    """The Azure conversation trace (19,366 requests over 3,501.7 s) in six ten-minute periods:
    with duration_s 3600 every request falls in one, and the rates add up to the trace's."""
    path = shared_data / "traces" / "AzureLLMInferenceTrace_conv.csv"
    if not path.is_file():
        pytest.skip(f"{path} is absent")
    scenario = _scenario(tmp_path, paper_data, {"file": str(path), "format": "azure",
                                                "duration_s": 3600},
                         {"count": 6, "length_h": 1 / 6})
    counts = _counts(scenario)
    assert sum(counts) == pytest.approx(19366)
    assert all(c > 0 for c in counts)


def test_period_without_demand_is_reported_not_simulated(tmp_path: Path,
                                                         paper_data: dict[str, Any]) -> None:
    """A trace binned into the periods can leave one without arrivals: no demand, no pools; the
    day's simulation lists it (met, nothing simulated) and the report still reads the JSON."""
    from pdopt.day_document import is_day_simulation

    # skipping the first 100 s leaves u = 200, 200.5, ..., 359.5 and 360 (the end): period 0
    # [0, 180) has no arrival, period 1 all 320
    arrivals = [0.0] + [300 + k / 2 for k in range(320)] + [460.0]
    _csv(tmp_path / "t.csv", arrivals, inputs=2000, outputs=100)
    path = _scenario(tmp_path, paper_data, {"file": "t.csv", "format": "csv", "start_s": 100},
                     {"count": 2, "length_h": 0.05})
    assert _counts(path) == pytest.approx([0, 320])
    for extra in ([], ["--trace", str(tmp_path / "t.csv")]):
        out = CliRunner().invoke(main, ["simulate", str(path), "--warmup", "10", "--cooldown",
                                        "10", *extra, "--format", "json"])
        assert out.exit_code == 0, out.output
        sim = json.loads(out.stdout)
        assert sim["periods"][0]["simulation"] == {"workloads": [], "meets_slo": True,
                                                   "no_demand": True}
        assert sim["periods"][1]["simulation"]["workloads"][0]["requests"] > 0
        assert is_day_simulation(sim)
    assert sim["periods"][1]["simulation"]["workloads"][0]["requests"] == 320


def test_a_short_trace_repeated_over_a_long_horizon_is_counted_not_listed() -> None:
    """10 s of trace (arrivals at 0, 1, 5) repeated over a year: 3,153,600 copies of 3 arrivals
    counted at once; asking for them all as arrivals is refused, a minute of them is not."""
    spec = DemandTrace(file="t", format="csv", fit="repeat", duration_s=10)
    placement = TracePlacement.of(spec, np.array([0.0, 1, 5]), 8760 * 3600.0, cyclic=True,
                                  location="x")
    assert placement.counts([8760.0]) == [3_153_600 * 3]
    assert placement.counts([0.5, 8759.5]) == [180 * 3, (3_153_600 - 180) * 3]
    with pytest.raises(ScenarioError, match="more than 5000000"):
        placement.arrivals(0.0, 8760 * 3600.0)
    at, _ = placement.arrivals(-10.0, 60.0)  # cyclic: the year's last 10 s, then a minute
    assert at.tolist() == [-10.0, -9.0, -5.0] + [float(c * 10 + t) for c in range(6)
                                                   for t in (0, 1, 5)]
