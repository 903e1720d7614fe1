"""Simulating a plan over a horizon (docs/simulation.md, "Day plans"): every period of the plan
is replayed with its own serving counts and flows at its own demand, and the attainment is
reported per period.

Each period is simulated alone (piecewise stationary): Poisson arrivals at the period's rate for
the options' warm-up, window and cool-down, on the period's serving instances. An instance added
for a period serves from its start (the plan pays its warm-up before the period, Eq. H11), so the
counts change exactly at the boundary; queues are not carried from one period to the next, which
the warm-up of each period's run stands in for. Spares are not simulated: the SLOs are checked
with the serving counts, i.e. with k instances of each pool down.

With a trace, one workload's arrivals are the trace's, laid on the horizon as its
`demand.trace` lays them (`pdopt.scenario.demand.TracePlacement`; fit `exact` without one): the
run of period k replays the trace's arrivals from `warmup` seconds before the period's start to
the end of its window and cool-down, so the warm-up carries the previous period's traffic onto
this period's counts, and the window (`duration`, at most the period; the whole period by
default) measures the period's own arrivals. The other workloads keep Poisson arrivals.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

from pdopt.plan import PeriodPlan, Plan
from pdopt.report import Report, Table
from pdopt.scenario.demand import TracePlacement, period_starts_s
from pdopt.scenario.horizon import DemandTrace
from pdopt.scenario.prepare import PreparedScenario, prepare
from pdopt.scenario.problems import ScenarioError
from pdopt.scenario.schema import Scenario
from pdopt.simulate.fleet import SimulationError
from pdopt.simulate.simulator import SimulationOptions, SimulationResult, simulate_plan
from pdopt.simulate.traces import Requests

__all__ = ["DayTrace", "PeriodSimulation", "day_report", "period_scenario", "simulate_day"]


@dataclass(frozen=True)
class PeriodSimulation:
    """One period of a day plan, simulated."""

    period: PeriodPlan
    result: SimulationResult | None  # None: the period has no demand (nothing to simulate)
    window_s: tuple[float, float] | None = None  # with a trace: the horizon seconds measured
    messages: tuple[str, ...] = ()

    @property
    def meets_slo(self) -> bool:
        return self.result is None or self.result.meets_slo


@dataclass(frozen=True)
class DayTrace:
    """A trace replayed on a day plan: its requests, the workload they belong to and how its
    time line is laid on the horizon (fit, start_s, duration_s of a `demand.trace`)."""

    requests: Requests
    workload: str
    placement: DemandTrace
    name: str = "trace"
    # arrivals replayed this many times faster (on top of rate_scale): a `values: shape` trace
    # demand is the trace's curve at the workload's rate, so its replay is scaled to that rate
    rate_factor: float = 1.0

    @classmethod
    def for_workload(cls, scenario: Scenario, workload: str, requests: Requests, name: str,
                     fmt: str) -> DayTrace:
        """Laid on the horizon as the workload's `demand.trace` is (fit exact without one); with
        `values: shape`, replayed at the workload's mean rate (rate_factor = the workload's rate
        / the trace's mean binned rate, Eq. H13)."""
        w = scenario.workload(workload)
        spec = w.demand.trace if w.demand is not None else None
        if spec is None:
            return cls(requests, workload, DemandTrace(file=name, format=fmt),  # type: ignore[arg-type]
                       name)
        factor = 1.0
        if spec.values == "shape":
            hours = scenario.horizon_hours
            try:
                counts = TracePlacement.of(
                    spec, requests.arrival_s, float(period_starts_s(hours)[-1]),
                    cyclic=scenario.periods is None or scenario.periods.cyclic,
                    location="trace").counts(hours)
            except ScenarioError as e:
                raise SimulationError(_naming(name, e.problems[0].message)) from None
            rates = [n / (h * 3600.0) for n, h in zip(counts, hours, strict=True)]
            mean = sum(rates) / len(rates)  # as `values: shape` divides them (Eq. H13)
            if mean <= 0:
                raise SimulationError(f"{name}: no arrival on the horizon")
            factor = w.rate_requests_per_s / mean
        return cls(requests, workload, spec, name, factor)


def period_scenario(scenario: Scenario, period: PeriodPlan) -> Scenario:
    """The scenario at one period's demand (without headroom: the load the SLOs must hold at),
    without its horizon; workloads without demand in the period are left out."""
    workloads = []
    for w in scenario.workloads:
        rate = period.demand_requests_per_s.get(w.name, 0.0) / scenario.headroom_of(w)
        if rate > 0:
            workloads.append(w.model_copy(update={
                "requests_per_s": rate, "tokens_per_s": None, "tokens_per_minute": None,
                "demand": None}))
    return scenario.model_copy(update={"workloads": workloads, "periods": None,
                                       "redundancy": None})


def simulate_day(scenario: PreparedScenario | Scenario | str | Path, plan: Plan,
                 options: SimulationOptions | None = None, *,
                 trace: DayTrace | None = None) -> list[PeriodSimulation]:
    """Every period of a horizon plan simulated at its demand with its counts; with `trace`, its
    workload's arrivals replayed from the trace (module docstring)."""
    if not plan.periods:
        raise SimulationError("the plan has no periods (solve a scenario with `periods`)")
    if any(not p.pools and _has_demand(p) for p in plan.periods):
        raise SimulationError("the plan's periods carry no pools and flows (a plan written "
                              "before pdopt kept them): solve it again")
    sc = prepare(scenario).scenario
    options = options or SimulationOptions()
    hours = sc.horizon_hours
    starts = period_starts_s(hours)
    if trace is not None:
        if len(hours) != len(plan.periods):
            raise SimulationError(f"the plan has {len(plan.periods)} periods, the scenario "
                                  f"{len(hours)}: simulate the plan with the scenario it was "
                                  "solved for")
        try:
            placement = TracePlacement.of(
                trace.placement, trace.requests.arrival_s, float(starts[-1]),
                cyclic=sc.periods is None or sc.periods.cyclic, location="trace")
        except ScenarioError as e:
            raise SimulationError(_naming(trace.name, e.problems[0].message)) from None
    out: list[PeriodSimulation] = []
    for k, period in enumerate(plan.periods):
        if not _has_demand(period):
            out.append(PeriodSimulation(period, None, None, (
                f"period {period.index}: no demand, no serving instances: not simulated",)))
            continue
        part = period_scenario(sc, period)
        names = {w.name for w in part.workloads}
        period_plan = replace(plan.with_pools(period.pools, [
            f for f in period.flows if f.workload in names]),
            workloads=[w for w in plan.workloads if w.workload in names], periods=[])
        if trace is None:
            out.append(PeriodSimulation(period, simulate_plan(part, period_plan, options)))
            continue
        out.append(_traced_period(part, period_plan, period, options, trace, placement,
                                  float(starts[k]), float(starts[k + 1] - starts[k])))
    if trace is not None and trace.rate_factor != 1.0 and out:
        out[0] = replace(out[0], messages=(
            f"{trace.name} replayed x{trace.rate_factor:.4g} faster than recorded (x "
            f"rate_scale): workload '{trace.workload}' takes its curve from the trace "
            "(values: shape) at its own mean rate", *out[0].messages))
    return out


def _naming(name: str, message: str) -> str:
    """`message` starting with the trace's name (once)."""
    return message if message.startswith(name) else f"{name}: {message}"


def _has_demand(period: PeriodPlan) -> bool:
    return any(rate > 0 for rate in period.demand_requests_per_s.values())


def _traced_period(part: Scenario, plan: Plan, period: PeriodPlan, options: SimulationOptions,
                   trace: DayTrace, placement: TracePlacement, start_s: float,
                   length_s: float) -> PeriodSimulation:
    """One period's run on the trace's arrivals from `warmup` before its start (times divided
    by rate_scale: the window takes rate_scale times as many trace seconds, at most the
    period's)."""
    scale = options.rate_scale * trace.rate_factor
    measured = length_s if options.duration_s is None else min(options.duration_s * scale,
                                                                length_s)
    origin = start_s - options.warmup_s * scale
    end = start_s + measured + options.cooldown_s * scale
    try:
        times, picks = placement.arrivals(origin, end)
    except ScenarioError as e:
        raise SimulationError(_naming(trace.name, e.problems[0].message)) from None
    names = [w.name for w in part.workloads]
    label = f"period {period.index}"
    messages = []
    in_window = int(((times >= start_s) & (times < start_s + measured)).sum())
    if trace.workload not in names:
        if in_window:
            messages.append(f"{label}: {in_window} trace requests of workload '{trace.workload}' "
                            "arrived, but the plan gives it no demand in this period: not "
                            "simulated")
        result = simulate_plan(part, plan, replace(options, duration_s=measured / scale))
        return PeriodSimulation(period, result, (start_s, start_s + measured), tuple(messages))
    if not in_window:
        raise SimulationError(f"{trace.name}: no arrival in {label}'s window (horizon seconds "
                              f"{start_s:g} to {start_s + measured:g}), which the plan gives "
                              f"workload '{trace.workload}' demand in; lay the trace on the "
                              "horizon with the workload's demand.trace (fit, start_s)")
    r = trace.requests
    replay = Requests((times - origin) / scale, r.input_tokens[picks], r.output_tokens[picks],
                      np.full(times.shape, names.index(trace.workload), dtype=np.int64))
    result = simulate_plan(part, plan, replace(options, rate_scale=1.0,
                                               duration_s=measured / scale),
                           trace=replay, trace_name=trace.name,
                           trace_window_s=measured / scale)
    result = replace(result, options=options)  # report the options as given
    return PeriodSimulation(period, result, (start_s, start_s + measured), tuple(messages))


def day_report(runs: list[PeriodSimulation]) -> Report:
    """Attainment per period and workload: the period's counts, the simulated requests and
    whether each workload met its SLOs (TTFT and TPOT attainment). A period without demand is a
    row of its own, met (its simulation: no workloads)."""
    rows: list[tuple[object, ...]] = []
    for run in runs:
        counts = ", ".join(f"{k} {v}" for k, v in run.period.counts.items()) or "-"
        if run.result is None:
            rows.append((run.period.index, counts, "-", 0, None, None, "no demand"))
            continue
        for w in run.result.workloads:
            rows.append((run.period.index, counts, w.workload, w.requests,
                         w.attainment_ttft, w.attainment_tpot, w.meets_slo))
    met = sum(run.meets_slo for run in runs)
    data = {"periods": [{"index": run.period.index, "counts": run.period.counts,
                         "horizon_window_s": list(run.window_s) if run.window_s else None,
                         "simulation": run.result.to_dict() if run.result is not None else
                         {"workloads": [], "meets_slo": True, "no_demand": True}}
                        for run in runs],
            "meets_slo": met == len(runs)}
    sources = sorted({run.result.source for run in runs if run.result is not None}
                     - {"poisson"})
    how = (f"on the arrivals of {', '.join(sources)} in its window" if sources else
           "at its demand")
    notes = [f"{met} of {len(runs)} periods meet every SLO (each period simulated alone {how} "
             "with its serving counts; docs/simulation.md, \"Day plans\")"]
    notes += [m for run in runs for m in run.messages]
    return Report(data, [Table("day plan simulated period by period",
                               ("period", "counts", "workload", "requests", "ttft_attainment",
                                "tpot_attainment", "meets_slo"), rows)], notes)
