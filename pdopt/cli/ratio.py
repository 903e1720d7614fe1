"""`pdopt ratio`: the paper's calculator, from flags or a one-workload scenario file."""

from __future__ import annotations

import click

from pdopt.cli import params
from pdopt.cli.common import emit, handle_errors, output_options, prepare_scenario, set_option
from pdopt.errors import PdoptError
from pdopt.ratio import RatioResult, ratio_from_numbers, ratio_from_scenario
from pdopt.report import Report, Table
from pdopt.scenario.problems import Problem, ScenarioError
from pdopt.scenario.ranges import MAX_BATCH, MAX_MS, MIN_MS, format_number


def parse_tpot_table(text: str) -> dict[int, float]:
    """'10:12.8,20:16.4' -> {10: 12.8, 20: 16.4}; TPOT must not decrease as batch grows."""
    table: dict[int, float] = {}
    for item in text.split(","):
        batch, sep, tpot = item.strip().partition(":")
        try:
            b, t = int(batch), float(tpot)
        except ValueError:
            raise click.BadParameter(f"'{item.strip()}' is not BATCH:TPOT_MS") from None
        if not sep or b <= 0 or not t > 0:
            raise click.BadParameter(f"'{item.strip()}': batch and TPOT must be > 0")
        if b > MAX_BATCH or not MIN_MS <= t <= MAX_MS:
            raise click.BadParameter(
                f"'{item.strip()}': batch must be at most {MAX_BATCH} and TPOT between "
                f"{format_number(MIN_MS)} and {format_number(MAX_MS)} ms "
                "(docs/scenario-format.md#ranges)")
        if b in table:
            raise click.BadParameter(f"batch {b} is given twice")
        table[b] = t
    batches = sorted(table)
    for lo, hi in zip(batches, batches[1:], strict=False):
        if table[hi] < table[lo]:
            raise click.BadParameter(f"TPOT must not decrease as batch grows (batch {lo}: "
                                     f"{table[lo]} ms, batch {hi}: {table[hi]} ms)")
    return table


def ratio_report(r: RatioResult) -> Report:
    rows = [
        ("demand, tokens/s (input + output)", r.demand_tokens_per_s),
        ("saturated prefill, input tokens/s", r.saturated_prefill_tokens_per_s),
        ("prefill under TTFT target, input tokens/s", r.prefill_tokens_per_s),
        ("decode batch", r.decode_batch),
        ("decode TPOT at that batch, ms", r.decode_tpot_ms),
        ("decode, output tokens/s", r.decode_tokens_per_s),
        ("decode batch limited by", r.decode_limited_by),
        ("P/D ratio", r.pd_ratio),
        ("prefill instances, exact", r.prefill_instances_exact),
        ("decode instances, exact", r.decode_instances_exact),
        (f"prefill instances ({r.rounding})", r.prefill_instances),
        (f"decode instances ({r.rounding})", r.decode_instances),
        ("sustainable tokens/minute of the plan", r.sustainable_tokens_per_minute),
        ("plan bottleneck", r.bottleneck),
    ]
    plan = f"{r.prefill_instances}P{r.decode_instances}D"
    return Report(data=r.to_dict(), tables=[Table(f"pdopt ratio: {plan}", ("quantity", "value"),
                                                  rows)])


@click.command()
@click.argument("scenario", required=False, type=click.Path(dir_okay=False))
@click.option("--input-tokens", type=params.TOKENS, help="Mean prompt length, tokens.")
@click.option("--output-tokens", type=params.TOKENS, help="Mean output length, tokens.")
@click.option("--ttft-ms", type=params.MILLISECONDS, help="TTFT target, ms.")
@click.option("--tpot-ms", type=params.MILLISECONDS, help="TPOT target, ms.")
@click.option("--ttft-overhead-ms", type=params.OVERHEAD_MS, default=0.0, show_default=True,
              help="Fixed TTFT outside prefill (client + KV transfer), ms.")
@click.option("--prefill-tokens-per-s", type=params.INSTANCE_TOKENS_PER_S,
              help="Saturated prefill throughput of one instance, input tokens/s.")
@click.option("--tpot-table", help='Decode TPOT by batch, "BATCH:MS,...", e.g. "10:12.8,20:16.4".')
@click.option("--tokens-per-minute", type=params.TOKENS_PER_MINUTE,
              help="Demand, input + output tokens/minute.")
@click.option("--tokens-per-s", type=params.TOKENS_PER_S,
              help="Demand, input + output tokens/s.")
@click.option("--requests-per-s", type=params.REQUESTS_PER_S,
              help="Demand, requests/s.")
@click.option("--queue", type=click.Choice(["mm1", "md1", "mg1"]), default=None,
              help="Prefill queue model [default: mm1].")
@click.option("--service-scv", type=params.SCV, default=None,
              help="mg1: squared coefficient of variation of prefill service time.")
@click.option("--ttft-percentile", type=params.PERCENTILE,
              default=None, help="The TTFT target is this percentile (mm1 only); default: mean.")
@click.option("--rounding", type=click.Choice(["ceil", "nearest"]), default="ceil",
              show_default=True,
              help="ceil meets the full demand; nearest is the paper's rounding.")
@set_option
@output_options("table")
@handle_errors
def ratio(scenario: str | None, fmt: str, output: str | None, rounding: str,
          overrides: list[tuple[str, object]], **flags: object) -> None:
    """The paper's P/D calculator for one model on one instance type.

    Either give SCENARIO (a one-workload scenario file) or every number as flags:
    --input-tokens --output-tokens --ttft-ms --tpot-ms --prefill-tokens-per-s --tpot-table and one
    of --tokens-per-minute / --tokens-per-s / --requests-per-s. With a file, --queue,
    --service-scv and --ttft-percentile change its workload's settings, and --set KEY=VALUE any
    field.

    Exit codes: 0 computed; 2 invalid input (a bad file or flag, flags together with a file, a
    scenario that is not a one-workload one, an unreachable target).
    """
    if scenario is not None:
        overrides = _file_overrides(flags) + list(overrides)
        try:
            prepared = prepare_scenario(scenario, overrides)  # profile: blocks -> numbers
            sc = prepared.scenario
            result = ratio_from_scenario(sc, rounding)  # type: ignore[arg-type]
        except ScenarioError as e:
            raise e.with_source(scenario) from None
        except PdoptError as e:
            raise type(e)(f"{scenario}: {e}") from None
        estimated = prepared.estimated_sources()
    else:
        if overrides:
            raise click.UsageError("--set needs a SCENARIO file")
        result, estimated = _ratio_from_flags(rounding, flags), {}
    report = ratio_report(result)
    if estimated:  # say which numbers nobody measured
        report.data["unmeasured"] = estimated
        report.notes += [f"unmeasured: instance '{n}': {s}" for n, s in estimated.items()]
    emit(report, fmt, output)


# flags that change a scenario file's one workload (as --set would) instead of being refused
FILE_FLAGS = {"queue": "workloads.*.queue", "service_scv": "workloads.*.service_scv",
              "ttft_percentile": "workloads.*.slo.ttft_percentile"}


def _file_overrides(flags: dict[str, object]) -> list[tuple[str, object]]:
    """--queue/--service-scv/--ttft-percentile given with a file, as overrides; any other
    number flag is a usage error (the file has those numbers)."""
    given = [k for k, v in flags.items() if v is not None and k != "ttft_overhead_ms"
             and k not in FILE_FLAGS]
    if given or flags["ttft_overhead_ms"]:
        flag = (given or ["ttft_overhead_ms"])[0].replace("_", "-")
        raise click.UsageError(f"give a SCENARIO file or flags, not both (got --{flag}); change "
                               "the file's numbers with --set KEY=VALUE")
    return [(key, flags[name]) for name, key in FILE_FLAGS.items() if flags[name] is not None]


def _ratio_from_flags(rounding: str, flags: dict[str, object]) -> RatioResult:
    required = ("input_tokens", "output_tokens", "ttft_ms", "tpot_ms", "prefill_tokens_per_s",
                "tpot_table")
    missing = [f"--{k.replace('_', '-')}" for k in required if flags[k] is None]
    if missing:
        raise click.UsageError(f"missing {', '.join(missing)} (or give a SCENARIO file)")
    rates = [k for k in ("tokens_per_minute", "tokens_per_s", "requests_per_s") if flags[k]]
    if len(rates) != 1:
        raise click.UsageError("give exactly one of --tokens-per-minute, --tokens-per-s, "
                               "--requests-per-s")
    li, lo = float(flags["input_tokens"]), float(flags["output_tokens"])  # type: ignore[arg-type]
    rate = float(flags[rates[0]])  # type: ignore[arg-type]
    demand = {"tokens_per_minute": rate / 60.0, "tokens_per_s": rate,
              "requests_per_s": rate * (li + lo)}[rates[0]]
    queue = str(flags["queue"] or "mm1")
    if queue == "mg1" and flags["service_scv"] is None:
        raise click.UsageError("--queue mg1 needs --service-scv")
    if flags["ttft_percentile"] is not None and queue != "mm1":
        raise ScenarioError(
            [Problem("--ttft-percentile", "percentile TTFT targets need --queue mm1")]
        )
    return ratio_from_numbers(
        demand_tokens_per_s=demand, input_tokens=li, output_tokens=lo,
        ttft_ms=float(flags["ttft_ms"]), tpot_ms=float(flags["tpot_ms"]),  # type: ignore[arg-type]
        prefill_tokens_per_s=float(flags["prefill_tokens_per_s"]),  # type: ignore[arg-type]
        tpot_ms_by_batch=parse_tpot_table(str(flags["tpot_table"])),
        ttft_overhead_ms=float(flags["ttft_overhead_ms"]),  # type: ignore[arg-type]
        queue=queue, scv=flags["service_scv"],  # type: ignore[arg-type]
        ttft_percentile=flags["ttft_percentile"],  # type: ignore[arg-type]
        rounding=rounding,  # type: ignore[arg-type]
    )
