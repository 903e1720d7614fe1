"""`pdopt solve`: the cheapest fleet plan for one or more scenario files."""

from __future__ import annotations

import sys
from dataclasses import replace
from typing import TYPE_CHECKING

import click

from pdopt.cli import params
from pdopt.cli.common import emit, handle_errors, output_options, prepare_scenario, set_option
from pdopt.errors import ExitCode
from pdopt.plan import Status
from pdopt.plan_report import plan_report
from pdopt.scenario.problems import Problem, ScenarioError

if TYPE_CHECKING:  # Pyomo loads only when a solve runs
    from pdopt.optimize.solver import SolveProgress


@click.command()
@click.argument("scenarios", nargs=-1, required=True, type=click.Path(dir_okay=False))
@output_options("table")
@set_option
@click.option("--time-limit", "time_limit_s", type=params.TIME_LIMIT_S,
              default=None, help="Solver time limit in seconds [default: the scenario's, 60].")
@click.option("--mip-gap", type=params.MIP_GAP, default=None,
              help="Relative MIP gap at which to stop [default: the scenario's, 1e-4].")
@click.option("--objective", type=click.Choice(["cost", "gpus"]), default=None,
              help="Minimise $/hour or GPUs [default: the scenario's, cost].")
@click.option("--explain", is_flag=True,
              help="Why this GPU: each model's cheapest plan on each single GPU type and on the "
              "best prefill/decode pair, with the cost difference (`alternatives` in the JSON).")
@click.option("--verify", is_flag=True,
              help="Check the plan by simulation (30 simulated minutes, seed 0) and correct the "
              "capacities until it holds and no one-fewer neighbour does [default: the "
              "scenario's options.verify].")
@click.option("--progress/--no-progress", default=None,
              help="Show the search (elapsed, best plan, bound, gap) on stderr while HiGHS runs "
              "[default: when stderr is a terminal].")
@click.option("--dask-scheduler", metavar="ADDRESS", default=None,
              help="Solve the per-model pricing programs of a fleet whose inventories or budget "
              "couple its models (docs/method.md, O.8) on this Dask cluster, e.g. "
              "tcp://host:8786 [default: local worker processes].")
@handle_errors
def solve(scenarios: tuple[str, ...], fmt: str, output: str | None,
          overrides: list[tuple[str, object]], time_limit_s: float | None,
          mip_gap: float | None, objective: str | None, explain: bool, verify: bool,
          progress: bool | None, dask_scheduler: str | None) -> None:
    """Find the cheapest plan for each SCENARIO file: instance counts per pool, the load and
    predicted TTFT/TPOT per workload, totals per GPU type.

    Exit codes: 0 a plan for every scenario; 2 invalid input; 3 infeasible (diagnosis on stderr
    and in the JSON); 4 the time limit hit before any plan was found; 130 interrupted.
    """
    from pdopt.optimize import solve as solve_scenario  # Pyomo loads only for this command

    reports = []
    worst = ExitCode.OK
    show = sys.stderr.isatty() if progress is None else progress
    for path in scenarios:
        printer = ProgressLine(path) if show else None
        try:
            prepared = prepare_scenario(path, overrides)
            if explain and prepared.scenario.plans_horizon:  # refused before the solve
                from pdopt.explain import DAY_PLAN_REFUSAL

                raise ScenarioError([Problem("--explain", DAY_PLAN_REFUSAL)])
            if verify or prepared.scenario.options.verify:
                from pdopt.simulate import SimulationOptions
                from pdopt.simulate.verify import solve_verified

                plan = solve_verified(prepared, SimulationOptions(duration_s=1800.0),
                                      time_limit_s=time_limit_s, mip_gap=mip_gap,
                                      objective=objective).plan
            elif prepared.scenario.plans_horizon:  # periods, reserved/spot, spares
                from pdopt.optimize.periods import solve_horizon

                plan = solve_horizon(prepared, time_limit_s=time_limit_s, mip_gap=mip_gap,
                                     progress=printer, objective=objective)
            else:
                plan = solve_scenario(prepared, time_limit_s=time_limit_s,
                                      mip_gap=mip_gap, objective=objective, progress=printer,
                                      dask_scheduler=dask_scheduler)
        except ScenarioError as e:
            raise e if e.source else e.with_source(path) from None
        finally:
            if printer is not None:
                printer.close()
        if prepared.prefix_caches:  # rates derived from traces (method Eq. H14): in the plan
            plan = replace(plan, messages=[*prepared.derived_notes(), *plan.messages])
        reports.append(plan_report(plan))
        if explain:
            from pdopt.explain import add_alternatives
            from pdopt.explain import explain as explain_plan

            add_alternatives(reports[-1], explain_plan(prepared, plan, time_limit_s=time_limit_s,
                                                       mip_gap=mip_gap))
            from pdopt.simplicity import add_limit_prices, limit_prices

            add_limit_prices(reports[-1], limit_prices(prepared, plan, time_limit_s=time_limit_s,
                                                       mip_gap=mip_gap))
        if plan.status == Status.INFEASIBLE:
            worst = max(worst, ExitCode.INFEASIBLE)
            for reason in plan.diagnosis:
                click.echo(f"{path}: infeasible: {reason}", err=True)
        elif plan.status == Status.NO_SOLUTION:
            worst = max(worst, ExitCode.NO_SOLUTION_IN_TIME)
            for reason in plan.diagnosis:
                click.echo(f"{path}: no plan: {reason}", err=True)
        for message in plan.messages:
            click.echo(f"{path}: {message}", err=True)
    emit(reports, fmt, output)
    sys.exit(int(worst))


class ProgressLine:
    """One stderr line, rewritten in place while HiGHS searches (pdopt.optimize.SolveProgress)."""

    def __init__(self, path: str) -> None:
        self.path, self.shown = path, False

    def __call__(self, p: SolveProgress) -> None:
        def value(x: float | None) -> str:
            return "-" if x is None else f"{x:,.6g}"
        gap = "-" if p.gap is None else f"{100 * p.gap:.2f}%"
        click.echo(f"\r{self.path}: {p.phase} {p.elapsed_s:6.1f} s  plan {value(p.incumbent)}  "
                   f"bound {value(p.bound)}  gap {gap}\x1b[K", nl=False, err=True)
        self.shown = True

    def close(self) -> None:
        if self.shown:
            click.echo("\r\x1b[K", nl=False, err=True)
