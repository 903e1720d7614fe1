"""`pdopt simulate` and `pdopt verify`: check a plan's predictions with the discrete-event
simulator (docs/simulation.md, docs/cli.md)."""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from typing import Any, TypeVar

import click

from pdopt.cli import params
from pdopt.cli.common import emit, handle_errors, output_options, prepare_scenario, set_option
from pdopt.errors import ExitCode, PdoptError
from pdopt.inputfiles import FileTooLargeError, InputFileError, open_regular, read_limited
from pdopt.plan import Plan, Status
from pdopt.report import Report, Table
from pdopt.scenario.prepare import PreparedScenario
from pdopt.simulate import (
    TRACE_FORMATS,
    SimulationError,
    SimulationOptions,
    SimulationResult,
    read_trace,
    simulate_plan,
)
from pdopt.simulate.policies import ROUTING_POLICIES
from pdopt.simulate.verify import Candidate, VerifyResult, counts_label, slo_ratio, verify_plan

F = TypeVar("F", bound=Callable[..., Any])


#: A plan of the largest fleets (50 models x 8 GPU types) is well under 1 MB of JSON.
MAX_PLAN_BYTES = 64 * 1024 * 1024


class PlanFileError(PdoptError):
    """A --plan file that is not a plan written by `pdopt solve --format json`."""


def read_plan(path: str) -> Plan:
    """A plan from `pdopt solve --format json` output. Raises PlanFileError naming the file."""
    try:  # a regular file of sane size: not a FIFO that blocks, not /dev/zero
        data = json.loads(read_limited(path, MAX_PLAN_BYTES, "plan files").decode("utf-8"))
    except FileTooLargeError as e:
        raise PlanFileError(f"{path}: {e}") from None
    except InputFileError as e:
        raise PlanFileError(f"{path}: cannot read file: {e}") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise PlanFileError(f"{path}: not valid JSON ({e})") from None
    if isinstance(data, list):
        raise PlanFileError(f"{path}: holds {len(data)} plans; give the plan of one scenario")
    if not isinstance(data, dict):
        raise PlanFileError(f"{path}: expected a JSON object (a plan from pdopt solve)")
    try:
        return Plan.from_dict(data)
    except TypeError as e:
        raise PlanFileError(f"{path}: not a plan from `pdopt solve --format json` ({e})") from None


def plan_for(scenario: PreparedScenario, scenario_path: str, plan_path: str | None) -> Plan:
    """The plan to simulate: read from --plan, or solved now. Exits 3 when there is none."""
    if plan_path is not None:
        return read_plan(plan_path)
    from pdopt.optimize import solve  # Pyomo loads only when a plan must be solved
    from pdopt.optimize.periods import solve_horizon

    # a scenario with periods, reserved/spot capacity or spares: the day plan (method H)
    plan = solve_horizon(scenario, compare=False) if scenario.scenario.plans_horizon \
        else solve(scenario)
    if not plan.has_plan:
        for reason in plan.diagnosis or [plan.status]:
            click.echo(f"{scenario_path}: {plan.status}: {reason}", err=True)
        raise SystemExit(int(ExitCode.INFEASIBLE if plan.status == Status.INFEASIBLE
                             else ExitCode.NO_SOLUTION_IN_TIME))
    return plan


def simulation_options(f: F) -> F:
    """The options every simulating command shares."""
    decorators = [
        click.option("--plan", "plan_path", type=click.Path(dir_okay=False), default=None,
                     help="Plan JSON from `pdopt solve --format json` [default: solve now]."),
        click.option("--duration", "duration_s", type=params.SIMULATED_S,
                     default=None, help="Measured window, simulated seconds [default: 600; "
                     "with --trace: the whole trace, or of a day plan each whole period]."),
        click.option("--warmup", "warmup_s", type=params.SIMULATED_S_OR_ZERO, default=60.0,
                     show_default=True, help="Unmeasured start, simulated seconds."),
        click.option("--cooldown", "cooldown_s", type=params.SIMULATED_S_OR_ZERO, default=120.0,
                     show_default=True,
                     help="Arrivals go on this long after the window (then the run drains until "
                     "the measured requests finish)."),
        click.option("--seed", type=params.SEED, default=0, show_default=True, help="Random seed."),
        click.option("--routing", type=click.Choice(ROUTING_POLICIES), default="round-robin",
                     show_default=True, help="How requests are spread over instances."),
        click.option("--rate-scale", type=params.RATE_SCALE, default=1.0,
                     show_default=True,
                     help="Multiply the workloads' rates (or the trace's) by this factor."),
        click.option("--max-prefill-tokens-per-batch", type=click.IntRange(min=1), default=None,
                     help="Prefill batching: FCFS requests batched up to this many input tokens "
                     "[default: one request at a time]."),
        click.option("--max-decode-batch", type=params.BATCH, default=None,
                     help="Running requests per decode instance [default: the largest batch of "
                     "its TPOT table]."),
    ]
    for decorator in reversed(decorators):
        f = decorator(f)
    return f


def make_options(duration_s: float | None, warmup_s: float, cooldown_s: float, seed: int,
                 routing: str, rate_scale: float, max_prefill_tokens_per_batch: int | None,
                 max_decode_batch: int | None, *, trace: bool) -> SimulationOptions:
    if duration_s is None and not trace:
        duration_s = 600.0
    return SimulationOptions(
        duration_s=duration_s, warmup_s=warmup_s, cooldown_s=cooldown_s, seed=seed,
        routing=routing,  # type: ignore[arg-type]
        rate_scale=rate_scale, max_prefill_tokens_per_batch=max_prefill_tokens_per_batch,
        max_decode_batch=max_decode_batch,
    )


def sniff_trace_format(path: str) -> str:
    """mooncake for .jsonl; for CSV files, azure or csv from the header."""
    if path.lower().endswith((".jsonl", ".json")):
        return "mooncake"
    try:  # a regular file only (a FIFO is refused without blocking); the header line only
        fh, _size = open_regular(path)
        with fh:
            header = fh.readline(4096)
    except (InputFileError, OSError):
        return "csv"  # the reader reports the problem with the file's name
    return "azure" if header.removeprefix(b"\xef\xbb\xbf").startswith(b"TIMESTAMP") else "csv"


def simulation_report(result: SimulationResult) -> Report:
    """Predicted vs simulated TTFT/TPOT per workload, attainment, pools, run facts."""
    ttft = Table(
        "TTFT (ms): predicted by the plan vs simulated",
        ("workload", "target", "target_percentile", "predicted", "sim mean", "p50", "p90", "p99",
         "meets"),
        [(w.workload, w.ttft_target_ms, w.ttft_percentile, w.predicted_ttft_ms, w.ttft_ms.mean,
          w.ttft_ms.p50, w.ttft_ms.p90, w.ttft_ms.p99, w.meets_ttft) for w in result.workloads],
    )
    tpot = Table(
        "TPOT (ms): predicted by the plan vs simulated",
        ("workload", "target (mean)", "predicted", "sim mean", "p50", "p90", "p99", "meets"),
        [(w.workload, w.tpot_target_ms, w.predicted_tpot_ms, w.tpot_ms.mean,
          w.tpot_ms.p50, w.tpot_ms.p90, w.tpot_ms.p99, w.meets_tpot) for w in result.workloads],
    )
    attain = Table(
        "SLO attainment (share of measured requests within each target)",
        ("workload", "requests", "unfinished", "ttft ok", "tpot ok", "both ok", "both 95% CI",
         "requests/s", "tokens/s"),
        [(w.workload, w.requests, w.unfinished, w.attainment_ttft, w.attainment_tpot,
          w.attainment_both,
          f"{w.attainment_both_ci[0]:.3f}-{w.attainment_both_ci[1]:.3f}", w.requests_per_s,
          w.tokens_per_s) for w in result.workloads],
    )
    pools = Table(
        "pools (per-instance time averages over the window)",
        ("pool", "role", "count", "busy", "mean queue", "mean batch", "kv_util", "batches/steps"),
        [(p.pool, p.role, p.count, p.busy, p.mean_queue, p.mean_batch, p.kv_utilization,
          p.batches) for p in result.pools],
    )
    o = result.options
    notes = [
        f"{result.source} arrivals x{o.rate_scale:g}, seed {o.seed}, routing {o.routing}; window "
        f"{result.window_s[0]:g}-{result.window_s[1]:g} s; {result.simulated_requests} requests, "
        f"{result.decode_steps} decode steps simulated in {result.wall_seconds:.2f} s",
        "SLOs met in simulation: " + ("yes" if result.meets_slo else "no"),
    ] + result.messages
    return Report(result.to_dict(), [ttft, tpot, attain, pools], notes)


def _candidate_rows(c: Candidate) -> list[tuple[Any, ...]]:
    label = counts_label(c.counts)
    if c.result is None:
        return [(c.role, label, c.cost_per_hour, "-", None, None, None, None, None,
                 "cannot route")]
    return [(c.role, label, c.cost_per_hour, w.workload, w.ttft_at_target_ms, w.ttft_target_ms,
             w.tpot_ms.mean, w.tpot_target_ms, w.attainment_both, w.meets_slo)
            for w in c.result.workloads]


def verify_report(v: VerifyResult) -> Report:
    rows: list[tuple[Any, ...]] = []
    for c in [v.plan, *v.neighbours, *v.search]:
        rows += _candidate_rows(c)
    table = Table(
        "plan and neighbours in simulation (TTFT: the statistic the target is about)",
        ("role", "counts", "$/hour", "workload", "ttft_ms", "ttft_target", "tpot_ms",
         "tpot_target", "both ok", "meets"),
        rows,
    )
    smallest = "none found" if v.smallest is None else counts_label(v.smallest)
    notes = [
        "plan meets its SLOs in simulation: " + ("yes" if v.plan_meets_slo else "no"),
        "plan is the smallest that does (no one-fewer neighbour meets them): "
        + ("yes" if v.plan_is_smallest else "no"),
        f"smallest counts found by simulation: {smallest}",
        f"worst simulated/target SLO ratio of the plan: {slo_ratio(v.plan.result):.3f}"
        if v.plan.result is not None and not math.isinf(slo_ratio(v.plan.result)) else
        "worst simulated/target SLO ratio of the plan: inf",
    ]
    return Report(v.to_dict(), [table], notes)


def _with_source(e: PdoptError, source: str) -> PdoptError:
    text = str(e)
    return e if text.startswith(source) else type(e)(f"{source}: {text}")


@click.command()
@click.argument("scenario", type=click.Path(dir_okay=False))
@simulation_options
@click.option("--trace", "trace_path", type=click.Path(dir_okay=False), default=None,
              help="Replay this trace instead of Poisson arrivals.")
@click.option("--trace-format", type=click.Choice(TRACE_FORMATS), default=None,
              help="azure (CSV), mooncake (JSON lines) or csv (arrival_s,input_tokens,"
              "output_tokens) [default: from the file].")
@click.option("--trace-workload", default=None,
              help="Workload the trace's requests belong to [default: the only one].")
@set_option
@output_options("table")
@handle_errors
def simulate(scenario: str, plan_path: str | None, trace_path: str | None,
             trace_format: str | None, trace_workload: str | None, fmt: str,
             output: str | None, overrides: list[tuple[str, Any]], **sim: Any) -> None:
    """Simulate a plan of SCENARIO (solved now, or --plan) on Poisson arrivals or a trace; print
    each workload's predicted TTFT/TPOT next to the simulated p50/p90/p99 and SLO attainment.

    Exit codes: 0 simulated (whether or not the SLOs were met: see the report); 2 invalid input;
    3 the scenario has no plan; 4 the solver found no plan in time; 130 interrupted.
    """
    prepared = prepare_scenario(scenario, overrides)
    sc = prepared.scenario
    trace = None
    name = fmt_name = ""
    if trace_path is not None:
        names = [w.name for w in sc.workloads]
        if trace_workload is None and len(names) > 1:
            raise click.UsageError(f"--trace-workload is needed: the scenario has "
                                   f"{len(names)} workloads ({', '.join(names)})")
        name = trace_workload or names[0]
        if name not in names:
            raise click.BadParameter(f"'{name}' is not a workload of {scenario} "
                                     f"({', '.join(names)})", param_hint="--trace-workload")
        fmt_name = trace_format or sniff_trace_format(trace_path)
        trace = read_trace(trace_path, fmt_name, names.index(name))  # type: ignore[arg-type]
    elif trace_format is not None or trace_workload is not None:
        raise click.UsageError("--trace-format and --trace-workload need --trace")
    options = make_options(trace=trace is not None, **sim)
    plan = plan_for(prepared, scenario, plan_path)
    if plan.periods:
        from pdopt.simulate.day import DayTrace, day_report, simulate_day

        day_trace = None if trace is None else DayTrace.for_workload(
            sc, name, trace, trace_path or "trace", fmt_name)
        try:
            runs = simulate_day(prepared, plan, options, trace=day_trace)
        except SimulationError as e:
            raise _with_source(e, plan_path or scenario) from None
        emit(day_report(runs), fmt, output)
        return
    try:
        result = simulate_plan(prepared, plan, options, trace=trace, trace_name=trace_path)
    except SimulationError as e:
        raise _with_source(e, plan_path or scenario) from None
    click.echo(f"{scenario}: {demand_note(prepared.scenario, options)}", err=True)
    emit(simulation_report(result), fmt, output)


def demand_note(scenario: Any, options: Any) -> str:
    """What load a simulation ran, next to what the plan is sized for (headroom is explicit)."""
    rooms = sorted({scenario.headroom_of(w) for w in scenario.workloads})
    sized = ("demand" if rooms == [1.0] else
             f"demand x headroom {', '.join(f'{h:g}' for h in rooms)}")
    return (f"simulated each workload's demand x {options.rate_scale:g} (rate_scale); the plan is "
            f"sized for {sized}")


@click.command()
@click.argument("scenario", type=click.Path(dir_okay=False))
@simulation_options
@click.option("--search/--no-search", default=True, show_default=True,
              help="Walk from the plan to the smallest counts that meet the SLOs in simulation.")
@set_option
@output_options("table")
@handle_errors
def verify(scenario: str, plan_path: str | None, search: bool, fmt: str, output: str | None,
           overrides: list[tuple[str, Any]], **sim: Any) -> None:
    """Simulate a plan of SCENARIO and its neighbours (one instance fewer in each pool): is the
    plan the smallest that meets the SLOs in simulation? If not, which counts are?

    Exit codes: 0 verified (the answer is in the report); 2 invalid input; 3 no plan; 4 no plan
    in time; 130 interrupted.
    """
    prepared = prepare_scenario(scenario, overrides)
    options = make_options(trace=False, **sim)
    plan = plan_for(prepared, scenario, plan_path)
    try:
        result = verify_plan(prepared, plan, options, search=search)
    except SimulationError as e:
        raise _with_source(e, plan_path or scenario) from None
    click.echo(f"{scenario}: {demand_note(prepared.scenario, options)}", err=True)
    emit(verify_report(result), fmt, output)
