"""`pdopt profile ...`: build instance-type blocks from benchmark results (docs/profiles.md).

One function per subcommand, all registered on the `profile` group.
"""

from __future__ import annotations

import sys

import click

from pdopt.cli import params
from pdopt.cli.common import emit, handle_errors, output_options, write_atomic
from pdopt.errors import ExitCode
from pdopt.profiles.estimate import engine_factors
from pdopt.profiles.import_append import append_instance, instance_yaml
from pdopt.profiles.import_tables import build_instance
from pdopt.profiles.importers import ENGINES, STATISTIC_RE, ProfileImportError, read_runs
from pdopt.profiles.measurements import (
    FORMATS,
    RunDefaults,
    read_measurements,
    read_prefill_measurements,
    validate_prefill,
    validate_runs,
)
from pdopt.report import Report, Table


@click.group()
def profile() -> None:
    """Build scenario instance types from benchmark results (docs/profiles.md).

    Exit codes: those of each command (0 done; 2 invalid input).
    """


def _tpot_statistic(_ctx: click.Context, _param: click.Parameter, value: str) -> str:
    if not STATISTIC_RE.match(value):
        raise click.BadParameter(f"'{value}' is not mean, median or pNN (e.g. p99)")
    return value


@profile.command("import")
@click.argument("fmt", metavar="FORMAT", type=click.Choice(ENGINES))
@click.argument("files", nargs=-1, required=True, type=click.Path(dir_okay=False))
@click.option("--model", required=True, help="Model name as the scenario's workloads use it.")
@click.option("--gpu", required=True, help="GPU type, a key of the scenario's `gpus`.")
@click.option("--gpus-per-instance", required=True, type=params.GPUS,
              help="GPUs in one benchmarked instance (TP x PP x EP).")
@click.option("--role", required=True, type=click.Choice(["prefill", "decode"]),
              help="What the benchmarked instance did.")
@click.option("--name", default=None,
              help="Instance type name [default: MODEL-ROLE-NxGPU].")
@click.option("--tpot-statistic", default="mean", show_default=True, callback=_tpot_statistic,
              help="Decode: TPOT statistic to tabulate: mean, median or pNN (p99, ...).")
@click.option("--allow-failed", is_flag=True,
              help="Import runs with failed requests (a warning instead of an error).")
@click.option("--engine-version", default=None,
              help="Engine version to record in `source` (replaces what the files say).")
@click.option("--append", "append_to", default=None, type=click.Path(dir_okay=False, exists=True),
              help="Append the instance to this scenario file's `instances:` instead of printing.")
@output_options("yaml", formats=("json",), with_yaml=True, dest="output_fmt")
@handle_errors
def import_(fmt: str, files: tuple[str, ...], model: str, gpu: str, gpus_per_instance: int,
            role: str, name: str | None, tpot_statistic: str, allow_failed: bool,
            engine_version: str | None, append_to: str | None, output_fmt: str,
            output: str | None) -> None:
    """Build an instance type from benchmark result FILES of FORMAT (vllm, sglang or csv).

    Prefill: saturated input tokens/s per input length from runs at increasing load. Decode:
    TPOT by batch (concurrency) per context length. Prints a YAML block for `instances:`
    (or appends it with --append; --format json: the block as JSON); warnings go to stderr.
    Rules: docs/profiles.md.

    Exit codes: 0; 2 any unusable file, flag or append (one line per problem).
    """
    if append_to and (output or output_fmt != "yaml"):
        raise click.UsageError("--append writes the scenario file: give it without --output "
                               "and --format")
    try:
        runs, notes = read_runs(fmt, list(files), role)
        result = build_instance(
            runs, role=role, engine=fmt, model=model, gpu=gpu,
            gpus_per_instance=gpus_per_instance, name=name, statistic=tpot_statistic,
            allow_failed=allow_failed, engine_version=engine_version,
        )
        item = result.instance_data()
        new_text = append_instance(append_to, item) if append_to else None
    except ProfileImportError as e:
        for line in e.lines:
            click.echo(f"error: {line}", err=True)
        sys.exit(int(ExitCode.INVALID_INPUT))
    for line in notes:
        click.echo(f"note: {line}", err=True)
    for line in result.warnings:
        click.echo(f"warning: {line}", err=True)
    if append_to and new_text is not None:
        try:
            write_atomic(append_to, new_text)
        except OSError as e:
            click.echo(f"error: {append_to}: cannot write: {e.strerror or e}", err=True)
            sys.exit(int(ExitCode.INVALID_INPUT))
        click.echo(f"{append_to}: appended instance '{item['name']}' ({role}, "
                   f"{len(runs)} runs)", err=True)
    else:
        emit(instance_yaml(item) if output_fmt == "yaml" else Report(data=[item]),  # type: ignore[arg-type]
             output_fmt, output)


# Per-run rows are listed by default up to this many runs (--per-run lists them all).
PER_RUN_DEFAULT_LIMIT = 100
_SUMMARY_COLUMNS = ("by", "group", "runs", "median predicted/measured", "median |error| %",
                    "p90 |error| %", "within 10% (%)", "within 25% (%)")


def _summary_row(by: str, group: str, s: dict[str, float]) -> tuple[object, ...]:
    return (by, group, int(s["runs"]), s["median_ratio"], 100 * s["median_abs_error"],
            100 * s["p90_abs_error"], 100 * s["within_10"], 100 * s["within_25"])


def validation_report(result: dict[str, object], per_run: bool) -> Report:
    """Tables of `measurements.validate_runs`: the error distribution, and the runs."""
    summary = result["summary"]
    assert isinstance(summary, dict)
    rows = []
    if summary["all"]["runs"]:
        rows.append(_summary_row("all", "all", summary["all"]))
    for by, groups in summary.items():
        if by != "all":
            rows += [_summary_row(by, g, s) for g, s in groups.items()]
    has_prefill = bool(result.get("prefill"))
    tables = ([Table("decode TPOT: predicted / measured by group", _SUMMARY_COLUMNS, rows)]
              if rows or not has_prefill else [])
    runs = result["runs"]
    assert isinstance(runs, list)
    if per_run and (runs or not has_prefill):
        tables.append(Table("decode TPOT per run", (
            "run", "engine", "gpu", "gpus", "model", "mode", "batch", "in", "out",
            "measured ms", "predicted ms", "predicted/measured"),
            [(r["run"], r["engine"], r["gpu"], r["gpus"], r["model"], r["mode"], r["batch"],
              r["input_tokens"], r["output_tokens"], r["measured_tpot_ms"],
              r["predicted_tpot_ms"], r["ratio"]) for r in runs]))
    skipped = result["skipped"]
    assert isinstance(skipped, list)
    notes = []
    if skipped:
        reasons: dict[str, int] = {}
        for item in skipped:
            reasons[item["reason"]] = reasons.get(item["reason"], 0) + 1
        notes.append("not compared: " + "; ".join(f"{n} x {why}" for why, n in sorted(
            reasons.items(), key=lambda kv: -kv[1])))
    if not per_run and runs:
        notes.append(f"{len(runs)} runs compared (--per-run lists each)")
    prefill = result.get("prefill")
    if isinstance(prefill, dict) and prefill["runs"]:
        p_summary = prefill["summary"]
        p_rows = [_summary_row("all", "all", p_summary["all"])]
        for by, groups in p_summary.items():
            if by != "all":
                p_rows += [_summary_row(by, g, s) for g, s in groups.items()]
        tables.append(Table("saturated prefill (disaggregated prefill workers, Eq. V5): "
                            "predicted / measured tokens/s by group", _SUMMARY_COLUMNS, p_rows))
        if per_run:
            tables.append(Table("saturated prefill per sweep", (
                "run", "engine", "gpu", "gpus", "model", "workers", "concurrency", "in", "out",
                "TTFT ms", "measured tokens/s", "predicted tokens/s", "predicted/measured"),
                [(r["run"], r["engine"], r["gpu"], r["gpus"], r["model"], r["workers"],
                  r["concurrency"], r["input_tokens"], r["output_tokens"], r["ttft_ms"],
                  r["measured_tokens_per_s"], r["predicted_tokens_per_s"], r["ratio"])
                 for r in prefill["runs"]]))
    return Report(data=result, tables=tables, notes=notes)


@profile.command("validate")
@click.argument("files", nargs=-1, required=True, type=click.Path(dir_okay=False))
@click.option("--input-format", type=click.Choice(FORMATS), default="auto", show_default=True,
              help="Format of FILES: an AIConfigurator silicon CSV, the generic profile CSV, "
                   "vLLM or SGLang results (auto: from the content).")
@click.option("--model", default=None, help="Model of runs whose files do not name it.")
@click.option("--gpu", default=None, help="Catalog GPU type of runs whose files do not name it.")
@click.option("--gpus", type=params.GPUS, default=1, show_default=True,
              help="GPUs per instance of runs whose files do not say.")
@click.option("--weight-dtype", type=click.Choice(["bf16", "fp16", "fp8", "fp4"]),
              default="bf16", show_default=True, help="Weight dtype where files do not say.")
@click.option("--kv-dtype", type=click.Choice(["bf16", "fp16", "fp8", "int8", "fp4"]),
              default=None, help="KV dtype where files do not say [default: the engine's usual].")
@click.option("--attention", type=click.Choice(["tp", "dp"]), default="tp", show_default=True,
              help="Attention parallelism where files do not say.")
@click.option("--moe-ep", type=params.GPUS, default=None,
              help="MoE expert-parallel size where files do not say [default: every GPU].")
@click.option("--engine", type=click.Choice(["vllm", "sglang", "trtllm"]), default=None,
              help="Engine of runs whose files do not say.")
@click.option("--mode", type=click.Choice(["disagg", "agg"]), default="disagg",
              show_default=True, help="disagg: decode-only runs; agg: prefill ran beside decode.")
@click.option("--factors", "factor_set", type=click.Choice(["engine", "generic"]),
              default="engine", show_default=True,
              help="Each run's engine's calibrated factors, or the generic ones for every run.")
@click.option("--per-run/--no-per-run", default=None,
              help=f"List every run [default: when at most {PER_RUN_DEFAULT_LIMIT}].")
@output_options("table")
@handle_errors
def validate(files: tuple[str, ...], input_format: str, model: str | None, gpu: str | None,
             gpus: int, weight_dtype: str, kv_dtype: str | None, attention: str,
             moe_ep: int | None, engine: str | None, mode: str, factor_set: str,
             per_run: bool | None, fmt: str, output: str | None) -> None:
    """Compare the estimator with measured decode runs in FILES: per-run predicted and measured
    TPOT and the error distribution by engine, GPU, model and batch (docs/profiles.md,
    "Validation on measured runs"); for silicon CSVs also the saturated prefill throughput of
    disaggregated prefill workers (Eq. V5) against the estimate.

    Exit codes: 0; 2 unreadable files or runs that cannot be described (no model or GPU).
    """
    defaults = RunDefaults(model=model, gpu=gpu, gpus=gpus, weight_dtype=weight_dtype,
                           kv_dtype=kv_dtype, attention=attention, moe_ep=moe_ep, engine=engine,
                           mode=mode)
    runs = read_measurements(list(files), defaults, input_format)
    factors = engine_factors("generic") if factor_set == "generic" else None
    result = validate_runs(runs, factors)
    points = read_prefill_measurements(list(files), input_format)
    if points:
        result["prefill"] = validate_prefill(points, factors)
    if per_run is None:
        per_run = len(result["runs"]) <= PER_RUN_DEFAULT_LIMIT
    emit(validation_report(result, per_run), fmt, output)
