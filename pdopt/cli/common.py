"""Shared pieces of every command: the group, `--format`/`--output`, clean errors, exit codes."""

from __future__ import annotations

import functools
import signal
import sys
import threading
from collections.abc import Callable
from typing import Any, TypeVar

import click

from pdopt.errors import ExitCode, PdoptError
from pdopt.fileio import write_atomic  # re-exported: commands import it from here
from pdopt.report import FORMATS, Report, render
from pdopt.scenario.problems import ScenarioError

F = TypeVar("F", bound=Callable[..., Any])


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="pdopt")
@click.option("--debug", is_flag=True, help="Show tracebacks for errors instead of one line.")
@click.pass_context
def main(ctx: click.Context, debug: bool) -> None:
    """pdopt: size prefill/decode disaggregated LLM serving fleets at the lowest cost."""
    ctx.ensure_object(dict)
    ctx.obj["debug"] = debug
    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGTERM, _terminated)  # SIGTERM stops a command as Ctrl-C does


def _terminated(signum: int, frame: Any) -> None:
    raise KeyboardInterrupt


def format_option(default: str = "table", choices: tuple[str, ...] = FORMATS) -> Callable[[F], F]:
    """`--format`; where `table` is a choice, `text` is accepted as another name for it."""
    if "table" in choices and "text" not in choices:
        choices = (*choices, "text")
    return click.option(
        "--format", "fmt", type=click.Choice(choices), default=default, show_default=True,
        help="Output format (text is the same as table).",
    )


def output_option(f: F) -> F:
    return click.option(
        "--output", "-o", type=click.Path(dir_okay=False, writable=True), default=None,
        help="Write the output to this file (atomically) instead of stdout.",
    )(f)


def emit(report: Report, fmt: str, output: str | None = None) -> None:
    """Render a report and print it (or write it to --output)."""
    text = render(report, "table" if fmt == "text" else fmt)  # type: ignore[arg-type]
    if output:
        write_atomic(output, text + "\n")
    else:
        click.echo(text)


def fail(message: str, code: ExitCode = ExitCode.INVALID_INPUT) -> None:
    """Print a one-line (or one line per problem) error on stderr and exit with `code`."""
    click.echo(message, err=True)
    sys.exit(int(code))


def handle_errors(f: F) -> F:
    """Turn pdopt's domain errors into clean messages and exit codes (tracebacks with --debug)."""

    @functools.wraps(f)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        ctx = click.get_current_context()
        debug = bool((ctx.find_root().obj or {}).get("debug"))
        try:
            return f(*args, **kwargs)
        except ScenarioError as e:
            if debug:
                raise
            fail(str(e), e.exit_code)
        except PdoptError as e:
            if debug:
                raise
            fail(f"error: {e}", e.exit_code)
        except KeyboardInterrupt:
            if debug:
                raise
            fail("interrupted", ExitCode.INTERRUPTED)

    return wrapper  # type: ignore[return-value]
