"""Usage errors are one line naming the command and the option, exit 2 (issue 10, section 4):
not click's three lines (usage, a help hint, the message). `--help` and the help of a group given
no command are unchanged."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from pdopt.cli import main


def run(*args: str) -> Result:
    return CliRunner().invoke(main, list(args), prog_name="pdopt")


def one_line(result: Result) -> str:
    assert result.exit_code == 2, result.output
    assert isinstance(result.exception, SystemExit)
    assert result.stdout == ""
    lines = result.stderr.splitlines()
    assert len(lines) == 1, result.stderr
    return lines[0]


def test_a_bad_value_names_the_option() -> None:
    line = one_line(run("solve", "X", "--time-limit", "nan"))
    assert line == "pdopt solve: error: Invalid value for '--time-limit': 'nan' is not a finite " \
        "number."


@pytest.mark.parametrize("args, says", [
    (["--bogus"], "pdopt: error: No such option '--bogus'."),
    (["nosuch"], "pdopt: error: No such command 'nosuch'."),
    (["solve", "X", "--mip-gap", "nan"], "pdopt solve: error: Invalid value for '--mip-gap': "),
    (["solve", "X", "--formt", "json"],
     "pdopt solve: error: No such option '--formt'. Did you mean '--format'?"),
    (["solve", "X", "--format", "yaml"], "pdopt solve: error: Invalid value for '--format': "
                                         "'yaml' is not one of"),
    (["check"], "pdopt check: error: Missing argument 'FILES...'."),
    (["simulate", "X", "--seed", "-1"], "pdopt simulate: error: Invalid value for '--seed': "),
    (["profile", "estimate", "--gpu", "H100"],
     "pdopt profile estimate: error: Missing option '--model'."),
    (["profile", "import"],
     "pdopt profile import: error: Missing argument 'FORMAT'. Choose from: vllm, sglang, csv"),
])
def test_usage_errors_are_one_line(args: list[str], says: str) -> None:
    assert one_line(run(*args)).startswith(says)


def test_usage_errors_raised_by_a_command_are_one_line(paper_scenario_path: Path) -> None:
    """Raised in the command's body (after the scenario is read), not by click's parser."""
    line = one_line(run("simulate", str(paper_scenario_path), "--trace-format", "csv"))
    assert line == "pdopt simulate: error: --trace-format and --trace-workload need --trace"
    line = one_line(run("solve", str(paper_scenario_path), "--set", "foo"))
    assert line.startswith("pdopt solve: error: Invalid value for '--set': 'foo' is not KEY=VALUE")


def test_help_is_unchanged() -> None:
    for args in (["--help"], ["solve", "-h"], ["profile", "import", "--help"]):
        result = run(*args)
        assert result.exit_code == 0 and result.stdout.startswith("Usage: pdopt"), args
    grouped = run("profile")  # a group without its command: its help, not an error line
    assert "Usage: pdopt profile" in grouped.output and "Commands:" in grouped.output


def test_the_installed_command_prints_one_line() -> None:
    done = subprocess.run([sys.executable, "-m", "pdopt", "solve", "X", "--time-limit", "nan"],
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 2 and done.stdout == ""
    assert done.stderr == "pdopt solve: error: Invalid value for '--time-limit': 'nan' is not " \
        "a finite number.\n"
