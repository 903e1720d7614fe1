"""`pdopt check` and `pdopt schema`."""

from __future__ import annotations

import sys
from typing import Any

import click

from pdopt.cli.common import echo_changes, emit, handle_errors, output_options, set_option
from pdopt.errors import ExitCode
from pdopt.profiles.resolve import check_profiles
from pdopt.report import Report, Table
from pdopt.scenario.loading import scenario_from_data
from pdopt.scenario.prepare import apply_overrides
from pdopt.scenario.problems import ScenarioError
from pdopt.scenario.schema import Scenario
from pdopt.scenario.variants import resolve_scenario_data


def check_file(path: str, overrides: list[tuple[str, Any]],
               derived: list[str] | None = None) -> list[str]:
    """The problems of one scenario file (after --set), as `FILE: field: message` lines; profile
    blocks are validated, not computed. Demand traces are binned into the periods and prefix-cache
    hit rates derived from their traces (docs/method.md, Eqs. H13, H14): each derived rate is
    added to `derived` as a line."""
    try:
        data = resolve_scenario_data(path)
        echo_changes(path, apply_overrides(data, overrides, path))
        scenario = scenario_from_data(data, path)
        problems = check_profiles(scenario)
        if problems:
            raise ScenarioError(problems, path)
        if any(w.demand is not None and w.demand.trace is not None for w in scenario.workloads):
            from pdopt.scenario.demand import period_rates  # numpy: only when there is a trace

            period_rates(scenario)
        from pdopt.scenario.prefix_cache import derive_prefix_caches

        notes = [e.note() for e in derive_prefix_caches(scenario)]
        if derived is not None:
            derived += [f"{path}: {note}" for note in notes]
    except ScenarioError as e:
        return (e if e.source else e.with_source(path)).lines()
    return []


@click.command()
@click.argument("files", nargs=-1, required=True, type=click.Path(dir_okay=False))
@set_option
@output_options("table")
@handle_errors
def check(files: tuple[str, ...], overrides: list[tuple[str, Any]], fmt: str,
          output: str | None) -> None:
    """Validate scenario FILES (after any --set): prints `FILE: ok` for each valid file and one
    line per problem on stderr (as --format json|markdown|csv, a row per file with its
    problems).

    Exit codes: 0 every file is valid; 2 otherwise.
    """
    rows = []
    derived: list[str] = []
    for path in files:
        problems = check_file(path, overrides, derived)
        for line in problems:
            click.echo(line, err=True)
        rows.append((path, "invalid" if problems else "ok", problems))
    data: dict[str, Any] = {"files": [{"file": f, "ok": status == "ok", "problems": p}
                                     for f, status, p in rows]}
    if derived:
        data["derived"] = derived
    if fmt in ("table", "text"):  # the lines a person (and a shell loop) reads
        report = Report(data, notes=derived + [f"{f}: ok" for f, status, _ in rows
                                               if status == "ok"])
    else:
        report = Report(data, [Table("pdopt check", ("file", "status", "problems"),
                                     [(f, status, "; ".join(p) or None) for f, status, p in rows])])
    if report.tables or report.notes or output:
        emit(report, fmt, output)
    sys.exit(int(ExitCode.INVALID_INPUT if any(p for *_, p in rows) else ExitCode.OK))


@click.command()
@output_options("json", formats=("json",))
def schema(fmt: str, output: str | None) -> None:
    """Print the scenario format's JSON Schema on stdout (or to --output).

    Exit codes: 0.
    """
    emit(Report(Scenario.model_json_schema()), fmt, output)
