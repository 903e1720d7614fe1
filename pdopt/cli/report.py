"""`pdopt report`: one HTML file (or Markdown with figure files) a planner can mail: the plan in
figures and tables (a day plan period by period), why this GPU, a batch folder's sweeps, a
simulation's latency CDFs."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import click

from pdopt.cli import params
from pdopt.cli.common import handle_errors, prepare_scenario, set_option
from pdopt.errors import ExitCode
from pdopt.inputfiles import FileTooLargeError, InputFileError, read_limited
from pdopt.plan import Plan, Status
from pdopt.plan_document import ReportInputError

#: Plans and simulation results of the largest fleets are a few MB of JSON (as --plan files).
MAX_JSON_BYTES = 64 * 1024 * 1024


def _read_json(path: str) -> Any:
    """A plan or simulation JSON: a regular file of at most MAX_JSON_BYTES (a FIFO is refused
    without blocking, /dev/zero from its kind)."""
    try:
        return json.loads(read_limited(path, MAX_JSON_BYTES, "plan and simulation files"))
    except FileTooLargeError as e:
        raise ReportInputError(f"{path}: {e}") from None
    except InputFileError as e:
        raise ReportInputError(f"{path}: cannot read file: {e}") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise ReportInputError(f"{path}: not valid JSON ({e})") from None


def _is_plan(data: Any) -> bool:
    return isinstance(data, dict) and "pools" in data and "status" in data


def read_plan_json(path: str, data: Any) -> tuple[Plan, list[dict[str, Any]] | None]:
    """A plan from `pdopt solve --format json` (with `alternatives` from --explain, if any)."""
    if isinstance(data, list):
        raise ReportInputError(f"{path}: holds {len(data)} plans; give the plan of one scenario")
    d = dict(data)
    alternatives = d.pop("alternatives", None)
    try:
        return Plan.from_dict(d), alternatives
    except (TypeError, ValueError, KeyError) as e:
        raise ReportInputError(f"{path}: not a plan from `pdopt solve --format json` ({e})"
                               ) from None


@click.command()
@click.argument("source", type=click.Path(exists=True))
@click.option("--output", "-o", required=True, type=click.Path(dir_okay=False),
              help="The report file to write (atomically).")
@click.option("--format", "fmt", type=click.Choice(["html", "markdown"]), default="html",
              show_default=True,
              help="html: one self-contained file; markdown: figures as SVG files in "
              "OUTPUT-STEM_files/ beside it.")
@click.option("--scenario", "scenario_path", type=click.Path(dir_okay=False, exists=True),
              default=None, help="With a PLAN.json: its scenario, for request lengths (cost per "
              "million tokens) and for --explain.")
@click.option("--simulation", "simulation_path", type=click.Path(dir_okay=False, exists=True),
              default=None, help="JSON of `pdopt simulate` or `pdopt verify` (--format json): "
              "latency CDFs against targets per workload.")
@click.option("--explain/--no-explain", default=True, show_default=True,
              help="Why this GPU: solve each model on each GPU type when the scenario is known "
              "and the plan has no `alternatives` yet.")
@click.option("--time-limit", "time_limit_s", type=params.TIME_LIMIT_S, default=None,
              help="Solver time limit per solve, seconds [default: the scenario's].")
@click.option("--mip-gap", type=params.MIP_GAP, default=None,
              help="Relative MIP gap at which a solve stops [default: the scenario's].")
@set_option
@handle_errors
def report(source: str, output: str, fmt: str, scenario_path: str | None,
           simulation_path: str | None, explain: bool, time_limit_s: float | None,
           mip_gap: float | None, overrides: list[tuple[str, object]]) -> None:
    """Write a report of SOURCE: a PLAN.json (`pdopt solve --format json`), a SCENARIO file
    (solved now) or a BATCH_DIR (`pdopt batch` output folder).

    Exit codes: 0 written; 2 invalid input (or matplotlib missing: pip install 'pdopt[report]');
    3 the scenario has no plan (the report still says why).
    """
    from pdopt.document import Document, generated_line, write_document
    from pdopt.explain import alternatives_from_dicts
    from pdopt.plan_document import (
        batch_sections,
        plan_sections,
        simulation_of,
        simulation_sections,
    )

    figures_check()
    sections = []
    title = "pdopt report"
    code = ExitCode.OK
    path = Path(source)
    if path.is_dir():
        sections += batch_sections(path)
        title = f"pdopt report: sweeps in {path.name or path}"
    else:
        plan, alternatives, scenario = None, None, None
        prepared = None
        data = _read_json(source) if path.suffix.lower() == ".json" else None
        if _is_plan(data) or isinstance(data, list):
            plan, raw = read_plan_json(source, data)
            alternatives = None if raw is None else alternatives_from_dicts(raw)
            if scenario_path is not None:
                prepared = prepare_scenario(scenario_path, overrides)
        else:
            prepared = prepare_scenario(source, overrides)
            from pdopt.optimize import solve

            plan = solve(prepared, time_limit_s=time_limit_s, mip_gap=mip_gap)
        if prepared is not None:
            scenario = prepared.scenario
            # why this GPU compares plans for one steady rate: not computed for a day plan
            if explain and alternatives is None and plan.has_plan and not plan.periods:
                from pdopt.explain import explain as explain_plan

                alternatives = explain_plan(prepared, plan, time_limit_s=time_limit_s,
                                            mip_gap=mip_gap)
        if not plan.has_plan:
            code = (ExitCode.INFEASIBLE if plan.status == Status.INFEASIBLE
                    else ExitCode.NO_SOLUTION_IN_TIME)
        sections += plan_sections(plan, scenario, alternatives)
        title = f"pdopt report: {plan.scenario}"
    if simulation_path is not None:
        sim = simulation_of(_read_json(simulation_path), simulation_path)
        sections += simulation_sections(sim, simulation_path)
    doc = Document(title, generated_line(source), sections)
    try:
        written = write_document(doc, output, fmt)
    except OSError as e:
        raise ReportInputError(f"cannot write {e.filename or output}: {e.strerror or e}"
                               ) from None
    figures = len(written) - 1
    click.echo(f"wrote {written[0]}" + (f" and {figures} figure{'s' if figures > 1 else ''} in "
                                        f"{written[1].parent}" if figures else ""), err=True)
    raise SystemExit(int(code))


def figures_check() -> None:
    """Fail early (exit 2, one line) when matplotlib is missing."""
    from pdopt.figures import _mpl

    _mpl()
