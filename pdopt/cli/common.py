"""Shared pieces of every command: the group, `--format`/`--output` and `emit` (the one output
path), `--set KEY=VALUE`, clean errors, exit codes."""

from __future__ import annotations

import functools
import json
import re
import signal
import sys
import threading
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any, TypeVar

import click
import yaml

from pdopt.errors import ExitCode, PdoptError
from pdopt.fileio import write_atomic  # re-exported: commands import it from here
from pdopt.report import FORMATS, Report, render, to_json
from pdopt.scenario.problems import ScenarioError

if TYPE_CHECKING:
    from pdopt.scenario.prepare import PreparedScenario

F = TypeVar("F", bound=Callable[..., Any])


class OneLineUsageError(click.UsageError):
    """A click usage error (unknown or missing option, bad value) shown as one stderr line,
    `pdopt <command>: error: <message>`, instead of click's usage, help hint and message."""

    def __init__(self, error: click.UsageError) -> None:
        super().__init__(error.message, error.ctx)
        self.exit_code = error.exit_code
        self.error = error

    def format_message(self) -> str:
        lines = self.error.format_message().splitlines()
        return " ".join(line.strip() for line in lines if line.strip())

    def show(self, file: Any = None) -> None:
        ctx = self.ctx or click.get_current_context(silent=True)
        names = []  # `pdopt` whatever the program is called (python -m pdopt, a test runner)
        while ctx is not None and ctx.parent is not None:
            names.append(ctx.info_name or "")
            ctx = ctx.parent
        command = " ".join(["pdopt", *reversed(names)])
        click.echo(f"{command}: error: {self.format_message()}", file=file, err=file is None)


def one_line(error: click.UsageError) -> click.UsageError:
    """The error as a OneLineUsageError; `pdopt` or `pdopt profile` alone still shows its help
    (click's NoArgsIsHelpError)."""
    if isinstance(error, OneLineUsageError | click.exceptions.NoArgsIsHelpError):
        return error
    return OneLineUsageError(error)


class Group(click.Group):
    """A click group whose usage errors, its own and its commands', are one line naming the
    command and the option (`pdopt solve: error: Invalid value for '--time-limit': ...`), exit 2.
    `--help` is unchanged."""

    def make_context(self, info_name: str | None, args: list[str],
                     parent: click.Context | None = None, **extra: Any) -> click.Context:
        try:
            return super().make_context(info_name, args, parent, **extra)
        except click.UsageError as e:
            raise one_line(e) from e

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except click.UsageError as e:
            raise one_line(e) from e

    def add_lazy_command(self, name: str, load: Callable[[], click.Command]) -> None:
        """Register command `name`, imported by `load` only when it runs or help lists it (a
        command's module and what it imports cost start-up time for every other command)."""
        self.__dict__.setdefault("_lazy", {})[name] = load

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(set(super().list_commands(ctx)) | set(self.__dict__.get("_lazy", {})))

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        load = self.__dict__.get("_lazy", {}).pop(cmd_name, None)
        if load is not None:
            self.add_command(load(), cmd_name)
        return super().get_command(ctx, cmd_name)


@click.group(cls=Group, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="pdopt")
@click.option("--debug", is_flag=True, help="Show tracebacks for errors instead of one line.")
@click.pass_context
def main(ctx: click.Context, debug: bool) -> None:
    """pdopt: size prefill/decode disaggregated LLM serving fleets at the lowest cost.

    Exit codes (each command lists its own): 0 done; 1 some batch variants failed; 2 invalid
    input; 3 infeasible; 4 no plan within the time limit; 130 interrupted (docs/cli.md).
    """
    ctx.ensure_object(dict)
    ctx.obj["debug"] = debug
    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGTERM, _terminated)  # SIGTERM stops a command as Ctrl-C does


def _terminated(signum: int, frame: Any) -> None:
    raise KeyboardInterrupt


def format_option(default: str = "table", choices: tuple[str, ...] = FORMATS,
                  dest: str = "fmt") -> Callable[[F], F]:
    """`--format`; where `table` is a choice, `text` is accepted as another name for it."""
    if "table" in choices and "text" not in choices:
        choices = (*choices, "text")
    return click.option(
        "--format", dest, type=click.Choice(choices), default=default, show_default=True,
        help="Output format (text is the same as table).",
    )


def output_option(f: F) -> F:
    return click.option(
        "--output", "-o", type=click.Path(dir_okay=False, writable=True), default=None,
        help="Write the output to this file (atomically) instead of stdout.",
    )(f)


def output_options(default: str = "table", *, formats: tuple[str, ...] = FORMATS,
                   with_yaml: bool = False, output: bool = True,
                   dest: str = "fmt") -> Callable[[F], F]:
    """The output options of every command that prints: `--format` (table|json|markdown|csv;
    `text` is another name for table; `yaml` too where a scenario block is printed) and
    `-o/--output FILE` (not where `--output` names a results folder: pdopt batch). The command
    takes `fmt` (or `dest`) and `output` and hands them to `emit`."""
    choices = (*formats, "yaml") if with_yaml and "yaml" not in formats else formats

    def decorate(f: F) -> F:
        if output:
            f = output_option(f)
        return format_option(default, choices, dest)(f)

    return decorate


Renderable = Report | Sequence[Report] | str


def render_text(what: Renderable, fmt: str) -> str:
    """The text `emit` prints: a Report rendered in `fmt`; several reports one after the other
    (as JSON, a list of their data); a string (a document already written, e.g. YAML blocks) as
    it is."""
    fmt = "table" if fmt == "text" else fmt
    if isinstance(what, str):
        return what.rstrip("\n")
    reports = [what] if isinstance(what, Report) else list(what)
    if fmt == "json":
        return to_json(reports[0].data if len(reports) == 1 else [r.data for r in reports])
    if fmt == "yaml":
        data = reports[0].data if len(reports) == 1 else [r.data for r in reports]
        return yaml.safe_dump(json.loads(to_json(data)), sort_keys=False,
                              allow_unicode=True).rstrip("\n")
    return "\n\n".join(render(r, fmt) for r in reports)  # type: ignore[arg-type]


def emit(what: Renderable, fmt: str, output: str | None = None) -> None:
    """Render and print (or write to --output, atomically): the one output path of every
    command."""
    text = render_text(what, fmt) + "\n"
    if output:
        write_atomic(output, text)
    else:
        click.echo(text, nl=False)


# --- --set KEY=VALUE ----------------------------------------------------------------------------

class _ValueLoader(yaml.SafeLoader):
    """YAML for one --set value; numbers as YAML 1.2 reads them (`1e6` is a number, not text)."""


_ValueLoader.add_implicit_resolver(
    "tag:yaml.org,2002:float",
    re.compile(r"^[-+]?(?:[0-9][0-9_]*\.[0-9_]*(?:[eE][-+]?[0-9]+)?|[0-9][0-9_]*[eE][-+]?[0-9]+"
               r"|\.[0-9_]+(?:[eE][-+]?[0-9]+)?)$"),
    list("-+0123456789."),
)


def parse_set_value(text: str) -> Any:
    """A --set VALUE: a YAML scalar or flow collection (25, 1e6, true, [a, b], {x: 1}, text)."""
    try:
        return yaml.load(text, Loader=_ValueLoader)  # a SafeLoader: no Python tags
    except yaml.YAMLError as e:
        what = getattr(e, "problem", None) or str(e).splitlines()[0]
        raise ValueError(f"'{text}' is not a YAML value ({what})") from None


def _parse_sets(_ctx: click.Context, _param: click.Parameter,
                values: tuple[str, ...]) -> list[tuple[str, Any]]:
    pairs = []
    for item in values:
        key, sep, text = item.partition("=")
        key = key.strip()
        if not sep or not key:
            raise click.BadParameter(f"'{item}' is not KEY=VALUE (e.g. options.mip_gap=0.01)")
        try:
            pairs.append((key, parse_set_value(text)))
        except ValueError as e:
            raise click.BadParameter(f"{key}: {e}") from None
    return pairs


def set_option(f: F) -> F:
    """`--set KEY=VALUE` (repeatable): the command's `overrides`, a list of (dotted key, value)
    for `prepare(..., overrides=...)`, applied after the file (its `extends:`, `overrides:` and
    sweep point)."""
    return click.option(
        "--set", "overrides", multiple=True, metavar="KEY=VALUE", callback=_parse_sets,
        help="Change the scenario after reading it: a dotted key as in `overrides:` "
             "(workloads.chat.slo.tpot_ms=25, models.llama-3.1-8b.kv_bytes_per_token=65536, "
             "gpus.*.count=8); VALUE is YAML (25, 1e6, true, [a, b], {k: v}). Repeatable; each "
             "change is printed on stderr as `KEY: OLD -> NEW`.",
    )(f)


def echo_changes(source: str, lines: Sequence[str]) -> None:
    """The `key: old -> new` lines of --set on stderr, naming the file."""
    for line in lines:
        click.echo(f"{source}: set {line}", err=True)


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


def prepare_scenario(path: str, overrides: Sequence[tuple[str, Any]] = ()) -> PreparedScenario:
    """`prepare(path, overrides=...)` with the --set changes printed on stderr; a problem raises
    ScenarioError naming the file (and `--set KEY`)."""
    from pdopt.scenario.prepare import prepare

    try:
        prepared = prepare(path, overrides=list(overrides))
    except ScenarioError as e:
        raise e if e.source else e.with_source(path) from None
    echo_changes(path, prepared.overridden)
    return prepared
