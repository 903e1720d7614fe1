"""`pdopt batch`: solve scenario files, folders and sweeps in parallel (docs/batch.md)."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any, TextIO

import click

from pdopt.batch import (
    DASK_CONNECT_TIMEOUT_S,
    BatchResult,
    BatchSetupError,
    Entry,
    OutputError,
    collect_entries,
    make_executor,
    run_batch,
)
from pdopt.cli import params
from pdopt.cli.common import emit, handle_errors, output_options, set_option
from pdopt.errors import ExitCode
from pdopt.report import FORMATS, Report, Table
from pdopt.scenario.loading import scenario_from_data
from pdopt.scenario.prepare import apply_overrides
from pdopt.scenario.problems import ScenarioError

MAX_FAILURES_SHOWN = 20


class BatchProgress:
    """Variants done / total, failures, resumed, rate and ETA as a tqdm bar on stderr when it is
    a terminal; nothing otherwise (the last line of the command says how it went)."""

    def __init__(self, total: int, stream: TextIO | None = None):
        from tqdm import tqdm

        stream = stream if stream is not None else sys.stderr
        self.failed = self.resumed = 0
        self.bar = tqdm(total=total, file=stream, disable=not stream.isatty(), unit="variant",
                        desc="batch", dynamic_ncols=True, leave=True, mininterval=0.2)

    def advance(self, failed: bool, resumed: bool = False) -> None:
        self.failed += failed
        self.resumed += resumed
        self.bar.set_postfix(failed=self.failed, resumed=self.resumed, refresh=False)
        self.bar.update(1)

    def finish(self) -> None:
        self.bar.close()


def _short(text: str | None, width: int = 100) -> str | None:
    return text if text is None or len(text) <= width else text[:width - 3] + "..."


def summary_report(rows: list[dict[str, Any]]) -> Report:
    """The summary rows as a table, errors cut at 100 characters (summary.csv has them whole);
    as JSON, the rows of summary.jsonl."""
    table = Table(
        f"pdopt batch: {len(rows)} variants",
        ("id", "status", "cost_per_hour", "total_gpus", "gpus_by_type", "instances", "mip_gap",
         "error"),
        [(r["id"], r["status"], r["cost_per_hour"], r["total_gpus"],
          " ".join(f"{g}:{n}" for g, n in r["gpus_by_type"].items()) or None,
          " ".join(f"{role}:{n}" for role, n in r["instances_by_role"].items()) or None,
          r["mip_gap"], _short(r["error"])) for r in rows],
    )
    return Report(data={"rows": rows}, tables=[table])


def apply_sets(entries: list[Entry], overrides: list[tuple[str, Any]], quiet: bool) -> None:
    """--set on every variant, after its sweep point (so it is part of the content hash); a key
    that does not fit a variant makes that variant invalid, its error naming `--set KEY`. The
    changes go to stderr once each, with the number of variants they apply to."""
    if not overrides:
        return
    counts: dict[str, int] = {}
    for e in entries:
        if e.data is None:
            continue
        try:
            lines = apply_overrides(e.data, overrides, e.source)
        except ScenarioError as err:
            e.data, e.error = None, "; ".join(str(p) for p in err.problems)
            continue
        for line in lines:
            counts[line] = counts.get(line, 0) + 1
    if not quiet:
        for line, n in counts.items():
            click.echo(f"set {line}" + (f" ({n} variants)" if n > 1 else ""), err=True)


def _dry_run(entries: list[Entry]) -> int:
    """Validate every variant without solving; `ID: ok` on stdout, problems on stderr."""
    bad = 0
    for e in entries:
        problems = [e.error] if e.error else []
        if e.data is not None:
            try:
                scenario_from_data(e.data, e.source)
            except ScenarioError as err:
                problems = [str(p) for p in err.problems]
        bad += bool(problems)
        for line in problems:
            click.echo(f"{e.id}: {line}", err=True)
        if not problems:
            click.echo(f"{e.id}: ok")
    return int(ExitCode.SOME_FAILED if bad else ExitCode.OK)


def _report_failures(result: BatchResult, output: Path) -> None:
    failed = result.failed
    for r in failed[:MAX_FAILURES_SHOWN]:
        click.echo(f"failed: {r['id']} ({r['status']}): {r['error']}", err=True)
    if len(failed) > MAX_FAILURES_SHOWN:
        click.echo(f"... and {len(failed) - MAX_FAILURES_SHOWN} more (see {output}/summary.csv)",
                   err=True)
    resumed = f" ({result.resumed} resumed)" if result.resumed else ""
    click.echo(f"{len(result.rows) - len(failed)} of {result.total} variants solved{resumed}, "
               f"{len(failed)} failed; results in {output}/", err=True)


@click.command()
@click.argument("paths", nargs=-1, required=True)
@click.option("--output", "-o", "output_dir", default=None,
              type=click.Path(file_okay=False, writable=True),
              help="Folder for summary.csv, summary.jsonl and plans/<id>.json (required unless "
                   "--dry-run). One batch at a time per folder (a lock file in it).")
@click.option("--jobs", "-j", type=click.IntRange(min=1), default=None,
              help="Parallel local processes [default: the number of cores; 1 runs in-process].")
@click.option("--dask-scheduler", metavar="ADDRESS", default=None,
              help="Run on this Dask distributed scheduler (tcp://host:8786) instead; needs "
                   "pip install 'pdopt[dask]' here and pdopt on the workers.")
@click.option("--dask-timeout", "dask_timeout_s", default=DASK_CONNECT_TIMEOUT_S,
              show_default=True, type=params.positive(3600),
              help="Seconds to wait for the Dask scheduler to answer.")
@click.option("--resume", is_flag=True,
              help="Skip variants whose plan in the output folder matches their content hash.")
@click.option("--quiet", "-q", is_flag=True, help="No progress or failure lines on stderr.")
@output_options("none", formats=("none", *FORMATS), output=False)
@set_option
@click.option("--time-limit", "time_limit_s", type=params.TIME_LIMIT_S,
              default=None, help="Solver time limit per variant, s [default: each scenario's].")
@click.option("--mip-gap", type=params.MIP_GAP, default=None,
              help="Relative MIP gap per variant [default: each scenario's].")
@click.option("--dry-run", is_flag=True,
              help="Expand and validate every variant, print the ids, solve nothing.")
@handle_errors
def batch(paths: tuple[str, ...], output_dir: str | None, jobs: int | None,
          dask_scheduler: str | None, dask_timeout_s: float, resume: bool, quiet: bool, fmt: str,
          overrides: list[tuple[str, Any]], time_limit_s: float | None, mip_gap: float | None,
          dry_run: bool) -> None:
    """Solve every scenario variant in PATHS: files, folders (all *.yaml|*.yml|*.json|*.toml
    inside, recursively, except names starting with _ or .) or globs; a file's `sweep:` gives one
    variant per grid point.

    Writes DIR/plans/<id>.json (the JSON of `pdopt solve`) as variants finish, and
    DIR/summary.csv and DIR/summary.jsonl (one row per variant, in input order) at the end.
    --format table|markdown|csv|json also prints the summary on stdout. A progress bar shows on
    stderr when it is a terminal. --set KEY=VALUE changes every variant after its sweep point.

    Exit codes: 0 every variant solved; 1 some failed (invalid, infeasible, no plan in time: the
    summary says which); 2 usage errors, an unreachable Dask scheduler, an output folder that
    cannot be written or that another batch is using; 130 interrupted by Ctrl-C or SIGTERM
    (summaries written for what finished; rerun with --resume).
    """
    if jobs is not None and dask_scheduler:
        raise click.UsageError("give --jobs or --dask-scheduler, not both")
    if output_dir is None and not dry_run:
        raise click.UsageError("Missing option '--output' / '-o' (the results folder).")
    output = Path(output_dir) if output_dir is not None else None
    try:
        entries = collect_entries(paths, exclude=output)
    except BatchSetupError as e:
        raise click.UsageError(str(e)) from None
    apply_sets(entries, overrides, quiet)
    if dry_run or output is None:
        sys.exit(_dry_run(entries))
    executor = make_executor(jobs, dask_scheduler, dask_timeout_s)
    from pdopt.optimize import solve  # Pyomo loads only when something is solved

    progress = None if quiet else BatchProgress(len(entries))
    try:
        result = run_batch(entries, solve, output, executor=executor, resume=resume,
                           time_limit_s=time_limit_s, mip_gap=mip_gap, progress=progress)
    except OutputError:
        if progress:
            progress.finish()
        raise
    if result.interrupted:
        click.echo(f"interrupted: {len(result.rows)} of {result.total} variants done, summaries "
                   f"written for them; rerun with --resume to finish", err=True)
        sys.exit(int(ExitCode.INTERRUPTED))
    if not quiet:
        _report_failures(result, output)
    if fmt != "none":
        emit(summary_report(result.rows), fmt)
    sys.exit(int(ExitCode.SOME_FAILED if result.failed else ExitCode.OK))
