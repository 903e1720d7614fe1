"""`pdopt profile ...`: build instance-type blocks from benchmark results (docs/profiles.md).

One function per subcommand, all registered on the `profile` group.
"""

from __future__ import annotations

import sys

import click

from pdopt.cli.common import emit, handle_errors, output_options, write_atomic
from pdopt.errors import ExitCode
from pdopt.profiles.import_append import append_instance, instance_yaml
from pdopt.profiles.import_tables import build_instance
from pdopt.profiles.importers import ENGINES, STATISTIC_RE, ProfileImportError, read_runs
from pdopt.report import Report


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
@click.option("--gpus-per-instance", required=True, type=click.IntRange(min=1),
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
