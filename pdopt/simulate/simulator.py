"""`simulate_plan`: run a plan of a scenario through the discrete-event simulator and summarise
it (docs/simulation.md). Seeded: the same scenario, plan, options and seed give the same numbers."""

from __future__ import annotations

import math
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from pdopt.plan import Plan
from pdopt.scenario.prepare import PreparedScenario, prepare
from pdopt.scenario.schema import Scenario
from pdopt.simulate.engine import RawResult, run
from pdopt.simulate.fleet import Fleet, SimulationError, build_fleet
from pdopt.simulate.limits import MAX_DECODE_STEPS, MAX_SIMULATED_REQUESTS
from pdopt.simulate.metrics import PoolStats, WorkloadStats, request_times_ms, workload_stats
from pdopt.simulate.policies import ROUTING_POLICIES, RoutingPolicy
from pdopt.simulate.traces import Requests, merge, poisson_requests


@dataclass(frozen=True)
class SimulationOptions:
    """How to run a simulation. Times in seconds of simulated time."""

    duration_s: float | None = 600.0  # measurement window; None with a trace: the whole trace
    warmup_s: float = 60.0  # arrivals before the window fill the queues and are not measured
    cooldown_s: float = 120.0  # arrivals go on after the window, then stop (the run drains)
    seed: int = 0
    routing: RoutingPolicy = "round-robin"
    rate_scale: float = 1.0  # multiplies the workloads' rates (Poisson) or a trace's rate
    max_prefill_tokens_per_batch: int | None = None  # prefill batching (chunk size); None: off
    max_decode_batch: int | None = None  # running requests per decode instance; None: largest
    #                                      measured batch of its TPOT table

    def __post_init__(self) -> None:
        checks = [
            ("duration_s", self.duration_s is None or self.duration_s > 0, "must be > 0"),
            ("warmup_s", self.warmup_s >= 0, "must be >= 0"),
            ("cooldown_s", self.cooldown_s >= 0, "must be >= 0"),
            ("rate_scale", self.rate_scale > 0 and math.isfinite(self.rate_scale), "must be > 0"),
            ("seed", isinstance(self.seed, int) and self.seed >= 0, "must be a whole number >= 0"),
            ("routing", self.routing in ROUTING_POLICIES,
             f"must be one of {', '.join(ROUTING_POLICIES)}"),
            ("max_prefill_tokens_per_batch",
             self.max_prefill_tokens_per_batch is None or self.max_prefill_tokens_per_batch > 0,
             "must be > 0"),
            ("max_decode_batch", self.max_decode_batch is None or self.max_decode_batch > 0,
             "must be > 0"),
        ]
        for name, ok, what in checks:
            if not ok:
                raise SimulationError(f"simulation option {name}: {what}")

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class SimulationResult:
    """What a simulation measured, per workload and per pool, and how the run went."""

    scenario: str
    options: SimulationOptions
    source: str  # "poisson" or the trace file
    window_s: tuple[float, float]  # measurement window [start, end) in simulated seconds
    workloads: list[WorkloadStats]
    pools: list[PoolStats]
    simulated_requests: int
    decode_steps: int  # in the whole run
    events: int
    wall_seconds: float
    messages: list[str] = field(default_factory=list)
    counts: dict[str, int] = field(default_factory=dict)  # instances per instance type

    @property
    def meets_slo(self) -> bool:
        return all(w.meets_slo for w in self.workloads)

    def workload(self, name: str) -> WorkloadStats:
        for w in self.workloads:
            if w.workload == name:
                return w
        raise KeyError(name)

    def to_dict(self) -> dict[str, Any]:
        return {
            "scenario": self.scenario,
            "source": self.source,
            "options": self.options.to_dict(),
            "counts": dict(self.counts),
            "window_s": list(self.window_s),
            "meets_slo": self.meets_slo,
            "workloads": [w.to_dict() for w in self.workloads],
            "pools": [p.to_dict() for p in self.pools],
            "simulated_requests": self.simulated_requests,
            "decode_steps": self.decode_steps,
            "events": self.events,
            "wall_seconds": self.wall_seconds,
            "messages": list(self.messages),
        }


def poisson_stream(scenario: Scenario, options: SimulationOptions, rng: np.random.Generator
                   ) -> Requests:
    """Poisson arrivals of every workload at its demand x rate_scale over warm-up + window +
    cool-down (demand without headroom: the load the SLOs must hold at)."""
    assert options.duration_s is not None
    horizon = options.warmup_s + options.duration_s + options.cooldown_s
    streams = [
        poisson_requests(w, k, w.rate_requests_per_s * options.rate_scale, horizon, rng)
        for k, w in enumerate(scenario.workloads)
    ]
    return merge(streams)


def check_request_count(scenario: Scenario, options: SimulationOptions, horizon_s: float, *,
                        traced: set[int] | None = None, replayed: int = 0) -> float:
    """The expected number of simulated requests: those replayed from a trace plus demand x
    rate_scale x horizon for every other workload. Refuses a run beyond MAX_SIMULATED_REQUESTS
    (docs/simulation.md, "Limits") before a single arrival is drawn."""
    rate = sum(w.rate_requests_per_s for k, w in enumerate(scenario.workloads)
               if k not in (traced or set())) * options.rate_scale
    expected = replayed + rate * horizon_s
    if not expected <= MAX_SIMULATED_REQUESTS:
        replay = f"{replayed} trace requests + " if replayed else ""
        raise SimulationError(
            f"the run would simulate about {expected:.3g} requests ({replay}{rate:.3g} requests/s "
            f"x {horizon_s:g} s of warm-up, window and cool-down), more than the limit of "
            f"{MAX_SIMULATED_REQUESTS} (docs/simulation.md, \"Limits\"); lower --rate-scale or "
            "--duration (or --warmup, --cooldown)")
    return expected


def check_decode_steps(fleet: Fleet, requests: Requests, run_s: float) -> float:
    """An upper bound on the decode steps of a run: no run needs more steps than output tokens,
    and a decode instance steps at most once per its shortest step time while the run lasts
    (arrivals, then at most the drain). Refuses a run beyond MAX_DECODE_STEPS
    (docs/simulation.md, "Limits") before it starts."""
    by_time = sum(d.count * run_s / max(min(min(row[1:]) for row in d.tpot_s), 1e-12)
                  for d in fleet.decode_pools)
    steps = min(by_time, float(requests.output_tokens.sum()))
    if not steps <= MAX_DECODE_STEPS:
        raise SimulationError(
            f"the run could take up to {steps:.3g} decode steps ({len(requests)} requests of "
            f"{float(requests.output_tokens.sum()):.3g} output tokens over {run_s:g} s with the "
            f"drain), more than the limit of {MAX_DECODE_STEPS} (docs/simulation.md, \"Limits\"); "
            "lower --duration or --rate-scale")
    return steps


def _pool_label(name: str, group: int | None) -> str:
    """A simulated pool's name: the instance type, and its SLO group level for a split pool."""
    return name if group is None else f"{name} [group {group}]"


def _counts_by_instance(fleet: Fleet) -> dict[str, int]:
    """Simulated instances per instance type (the groups of a split pool added up)."""
    counts: dict[str, int] = {}
    for name, count in [(p.name, p.count) for p in fleet.prefill_pools] + [
            (d.name, d.count) for d in fleet.decode_pools]:
        counts[name] = counts.get(name, 0) + count
    return counts


def _pool_stats(fleet: Fleet, raw: RawResult) -> list[PoolStats]:
    window = raw.window_s
    out: list[PoolStats] = []
    for p in fleet.prefill_pools:
        m = p.members
        batches = float(raw.prefill_batches[m].sum())
        out.append(PoolStats(
            pool=_pool_label(p.name, p.group), role="prefill", count=p.count,
            busy=float(raw.prefill_busy_s[m].sum()) / (window * p.count) if window else math.nan,
            mean_queue=float(raw.prefill_queue_area[m].sum()) / (window * p.count)
            if window else math.nan,
            mean_batch=float(raw.prefill_batched_requests[m].sum()) / batches
            if batches else 0.0,
            kv_utilization=None, batches=int(batches),
        ))
    for d in fleet.decode_pools:
        m = d.members
        busy = float(raw.decode_busy_s[m].sum())
        out.append(PoolStats(
            pool=_pool_label(d.name, d.group), role="decode", count=d.count,
            busy=busy / (window * d.count) if window else math.nan,
            mean_queue=float(raw.decode_waiting_area[m].sum()) / (window * d.count)
            if window else math.nan,
            mean_batch=float(raw.decode_batch_area[m].sum()) / busy if busy else 0.0,
            kv_utilization=None if d.kv_cache_tokens is None or not window else
            float(raw.decode_kv_area[m].sum()) / (window * d.count * d.kv_cache_tokens),
            batches=int(raw.decode_steps[m].sum()),
        ))
    return out


def simulate_plan(scenario: PreparedScenario | Scenario | str | Path, plan: Plan,
                  options: SimulationOptions | None = None, *,
                  trace: Requests | None = None, trace_name: str | None = None,
                  trace_window_s: float | None = None) -> SimulationResult:
    """Simulate `plan` serving the scenario's workloads: Poisson arrivals at the workloads'
    demand, or the requests of `trace` (already mapped to workload indices). The scenario is
    prepared first (`pdopt.scenario.prepare`) unless it already is. `trace_window_s`: with a
    trace, measure exactly this long after the warm-up (a day plan's period), not only up to the
    trace's last arrival."""
    options = options or SimulationOptions()
    started = time.perf_counter()
    scenario = prepare(scenario).scenario
    fleet = build_fleet(scenario, plan, options.max_decode_batch)
    seeds = np.random.SeedSequence(options.seed).spawn(2)
    arrivals_rng, routing_rng = np.random.default_rng(seeds[0]), np.random.default_rng(seeds[1])
    if trace is None:
        if options.duration_s is None:
            raise SimulationError("simulation option duration_s: required without a trace")
        check_request_count(scenario, options,
                            options.warmup_s + options.duration_s + options.cooldown_s)
        requests = poisson_stream(scenario, options, arrivals_rng)
        start, end = options.warmup_s, options.warmup_s + options.duration_s
        source = "poisson"
    else:
        requests = trace.scaled(options.rate_scale) if options.rate_scale != 1.0 else trace
        if len(requests) == 0:
            raise SimulationError("the trace has no requests")
        start = options.warmup_s
        last = requests.duration_s
        end = last if options.duration_s is None else min(last, start + options.duration_s)
        if trace_window_s is not None:
            end = start + trace_window_s
        if end <= start:
            raise SimulationError(
                f"the trace lasts {last:.1f} s (after rate_scale), not more than the warm-up "
                f"({options.warmup_s:g} s): nothing to measure"
            )
        requests = requests.window(0.0, end + options.cooldown_s)
        # The trace replaces its workloads' Poisson arrivals; the others keep theirs.
        traced = set(np.unique(requests.workload).tolist())
        check_request_count(scenario, options, end + options.cooldown_s, traced=traced,
                            replayed=len(requests))
        others = [
            poisson_requests(w, k, w.rate_requests_per_s * options.rate_scale,
                             end + options.cooldown_s, arrivals_rng)
            for k, w in enumerate(scenario.workloads) if k not in traced
        ]
        requests = merge([requests, *others])
        source = trace_name or "trace"
    bad = sorted(set(np.unique(requests.workload).tolist()) - set(range(len(scenario.workloads))))
    if bad:
        raise SimulationError(f"requests name workload index {bad[0]}, but the scenario has "
                              f"{len(scenario.workloads)} workload(s)")
    # Arrivals stop at the end of the cool-down; then the run drains while measured requests are
    # unfinished, for at most one more window length (longer: the plan is overloaded).
    stop = end + options.cooldown_s
    check_decode_steps(fleet, requests, stop + (end - start))
    raw = run(fleet, requests, policy=options.routing, rng=routing_rng, window=(start, end),
              stop_s=stop, drain_s=end - start,
              max_prefill_tokens_per_batch=options.max_prefill_tokens_per_batch)

    ttft, tpot, e2e = request_times_ms(requests.arrival_s, raw.first_token_s, raw.finish_s,
                                       requests.output_tokens)
    in_window = (requests.arrival_s >= start) & (requests.arrival_s < end)
    tokens = requests.input_tokens + requests.output_tokens
    predictions = {w.workload: w for w in plan.workloads}
    stats = []
    for k, w in enumerate(scenario.workloads):
        mask = in_window & (requests.workload == k)
        pred = predictions.get(w.name)
        stats.append(workload_stats(
            name=w.name, ttft_ms=ttft[mask], tpot_ms=tpot[mask], e2e_ms=e2e[mask],
            tokens=tokens[mask], rejected=raw.rejected[mask], window_s=end - start,
            ttft_target_ms=w.slo.ttft_ms, ttft_percentile=w.slo.ttft_percentile,
            tpot_target_ms=w.slo.tpot_ms,
            predicted_ttft_ms=pred.expected_ttft_ms if pred else math.nan,
            predicted_tpot_ms=pred.expected_tpot_ms if pred else math.nan,
        ))
    messages = list(fleet.messages)
    for s in stats:
        if s.requests == 0:
            messages.append(f"workload '{s.workload}': no request arrived in the measured window "
                            "(its SLOs count as met; lengthen --duration)")
        if s.unfinished:
            messages.append(
                f"workload '{s.workload}': {s.unfinished} of {s.requests} measured requests did "
                f"not finish within the cool-down and a drain as long as the window (counted as "
                "misses; the plan is overloaded)"
            )
        if s.rejected:
            messages.append(f"workload '{s.workload}': {s.rejected} requests are larger than a "
                            "decode instance's KV cache and were never served")
    return SimulationResult(
        scenario=scenario.name, options=options, source=source, window_s=(start, end),
        workloads=stats, pools=_pool_stats(fleet, raw), simulated_requests=len(requests),
        decode_steps=raw.total_decode_steps, events=raw.events,
        wall_seconds=time.perf_counter() - started, messages=messages,
        counts=_counts_by_instance(fleet),
    )
