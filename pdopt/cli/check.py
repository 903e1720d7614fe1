"""`pdopt check` and `pdopt schema`."""

from __future__ import annotations

import json
import sys

import click

from pdopt.cli.common import handle_errors
from pdopt.errors import ExitCode
from pdopt.profiles.resolve import check_profiles
from pdopt.scenario.loading import load_scenario
from pdopt.scenario.problems import ScenarioError
from pdopt.scenario.schema import Scenario


@click.command()
@click.argument("files", nargs=-1, required=True, type=click.Path(dir_okay=False))
@handle_errors
def check(files: tuple[str, ...]) -> None:
    """Validate scenario FILES: prints `FILE: ok` or one line per problem; exit 0 or 2."""
    bad = 0
    for path in files:
        try:
            sc = load_scenario(path)
            problems = check_profiles(sc)  # validated, not computed
            if problems:
                raise ScenarioError(problems, path)
        except ScenarioError as e:
            bad += 1
            for line in e.lines():
                click.echo(line, err=True)
        else:
            click.echo(f"{path}: ok")
    sys.exit(int(ExitCode.INVALID_INPUT if bad else ExitCode.OK))


@click.command()
def schema() -> None:
    """Print the scenario format's JSON Schema on stdout."""
    click.echo(json.dumps(Scenario.model_json_schema(), indent=2))
