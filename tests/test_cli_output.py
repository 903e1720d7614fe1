"""One output path and `--set` for every command: `--format`/`-o` choices, exit codes in every
command's help, `--set KEY=VALUE` applied after the file (logged `key: old -> new` on stderr),
names with dots in dotted keys, `pdopt ratio FILE --queue/--ttft-percentile`."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import click
import pytest
from click.testing import CliRunner, Result

from pdopt.cli import main
from pdopt.cli.common import parse_set_value
from pdopt.errors import ExitCode
from tests.test_cli_foundation import PAPER_FLAGS, all_commands
from tests.test_doc_examples import masked

FLEET = "scenarios/fleet-heterogeneous.yaml"
SHORT_RUN = ["--duration", "30", "--warmup", "5", "--cooldown", "5"]


def run(*args: str) -> Result:
    return CliRunner().invoke(main, list(args))


def ok(result: Result) -> Result:
    assert result.exit_code == 0, (result.stdout, result.stderr)
    assert "Traceback" not in result.stderr
    return result


def invalid(result: Result) -> str:
    assert result.exit_code == ExitCode.INVALID_INPUT, (result.stdout, result.stderr)
    assert "Traceback" not in result.stderr
    return result.stderr


@pytest.fixture
def at_root(project_root: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.chdir(project_root)
    return project_root


# --- output options and help ------------------------------------------------------------------

def _option(cmd: click.Command, name: str) -> click.Option | None:
    for p in cmd.params:
        if isinstance(p, click.Option) and name in p.opts:
            return p
    return None


def test_every_command_lists_its_exit_codes() -> None:
    assert "Exit codes" in run("--help").stdout
    for name, _ in all_commands():
        result = run(*name.split()[1:], "--help")
        assert result.exit_code == 0, name
        assert "Exit codes" in result.stdout, f"{name} --help does not list its exit codes"


def test_every_format_option_has_the_same_choices() -> None:
    """Every --format of a command that prints a report offers table|json|markdown|csv (and
    text for table); yaml only where scenario blocks are printed; -o writes a file except where
    --output is batch's results folder."""
    documents = {"pdopt schema": {"json"}, "pdopt profile import": {"yaml", "json"}}
    reports = {"pdopt ratio", "pdopt check", "pdopt solve", "pdopt simulate", "pdopt verify",
               "pdopt batch", "pdopt profile estimate", "pdopt profile aiconfigurator",
               "pdopt profile gpus", "pdopt profile models"}
    seen = 0
    for name, cmd in all_commands():
        fmt = _option(cmd, "--format")
        if fmt is None or name not in reports | set(documents):
            continue
        seen += 1
        choices = set(fmt.type.choices)  # type: ignore[attr-defined]
        if name in documents:
            assert choices == documents[name], name
            continue
        assert {"table", "text", "json", "markdown", "csv"} <= choices, name
        assert choices - {"table", "text", "json", "markdown", "csv"} <= {"yaml", "none"}, name
        output = _option(cmd, "--output")
        assert output is not None and "-o" in output.opts, name
    assert seen == len(reports) + len(documents)


def test_yaml_only_where_scenario_blocks_are_printed() -> None:
    with_yaml = {name for name, cmd in all_commands()
                 if (o := _option(cmd, "--format")) is not None
                 and "yaml" in o.type.choices}  # type: ignore[attr-defined]
    assert with_yaml == {"pdopt profile estimate", "pdopt profile aiconfigurator",
                         "pdopt profile import"}


def test_solve_renders_through_emit(at_root: Path, tmp_path: Path) -> None:
    paper = "scenarios/paper-deepseek-v31-h200.yaml"
    out = tmp_path / "plan.json"
    assert ok(run("solve", paper, "--format", "json", "-o", str(out))).stdout == ""
    plan = json.loads(out.read_text())
    table = ok(run("solve", paper)).stdout
    assert table.startswith(f"paper-deepseek-v31-h200: optimal, ${plan['cost_per_hour']:,.2f}"
                            f"/hour, {plan['total_gpus']} GPUs\n")
    text = ok(run("solve", paper, "--format", "text")).stdout
    assert masked(text) == masked(table)
    md = ok(run("solve", paper, "--format", "markdown")).stdout
    assert md.startswith("### paper-deepseek-v31-h200: optimal")
    two = json.loads(ok(run("solve", paper, paper, "--format", "json")).stdout)
    assert [p["total_gpus"] for p in two] == [plan["total_gpus"]] * 2
    first_csv_line = ok(run("solve", paper, "--format", "csv")).stdout.splitlines()[0]
    assert first_csv_line.startswith("# paper-deepseek-v31-h200: optimal")


def test_check_formats(at_root: Path, tmp_path: Path, paper_data: dict[str, Any]) -> None:
    paper = "scenarios/paper-deepseek-v31-h200.yaml"
    paper_data["workloads"][0]["slo"]["tpot_ms"] = 0
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps(paper_data))
    result = run("check", paper, str(bad), "--format", "json")
    assert result.exit_code == ExitCode.INVALID_INPUT
    data = json.loads(result.stdout)
    assert [f["ok"] for f in data["files"]] == [True, False]
    assert data["files"][1]["problems"] == [f"{bad}: workloads[0].slo.tpot_ms: must be > 0"]
    csv_text = run("check", paper, str(bad), "--format", "csv").stdout
    assert csv_text.splitlines()[0] == "file,status,problems"
    assert ok(run("schema", "--format", "json")).stdout == ok(run("schema")).stdout


# --- --set --------------------------------------------------------------------------------------

@pytest.mark.parametrize(("text", "value"), [
    ("25", 25), ("2.5e6", 2.5e6), ("1e6", 1e6), ("-3", -3), ("true", True), ("md1", "md1"),
    ("[H100, H200]", ["H100", "H200"]), ("{count: 8, cost_per_hour: 2.5}",
                                         {"count": 8, "cost_per_hour": 2.5}),
    ("'1e6'", "1e6"), ("", None),
])
def test_set_values_are_yaml(text: str, value: Any) -> None:
    assert parse_set_value(text) == value


@pytest.mark.parametrize("bad", ["options.mip_gap", "=3", "a=[1, 2"])
def test_set_syntax_errors(at_root: Path, bad: str) -> None:
    err = invalid(run("check", "scenarios/paper-deepseek-v31-h200.yaml", "--set", bad))
    assert "--set" in err


def test_solve_set(at_root: Path) -> None:
    result = ok(run("solve", "scenarios/paper-deepseek-v31-h200.yaml", "--set",
                    "gpus.H200.cost_per_hour=5", "--set", "workloads.chat.slo.tpot_ms=22",
                    "--format", "json"))
    plan = json.loads(result.stdout)
    assert plan["cost_per_hour"] == pytest.approx(5 * plan["total_gpus"])
    assert plan["workloads"][0]["tpot_target_ms"] == 22
    assert result.stderr.splitlines() == [
        "scenarios/paper-deepseek-v31-h200.yaml: set gpus.H200.cost_per_hour: 3.99 -> 5",
        "scenarios/paper-deepseek-v31-h200.yaml: set workloads.chat.slo.tpot_ms: 20 -> 22",
    ]


def test_solve_set_invalid_value_names_the_field(at_root: Path) -> None:
    err = invalid(run("solve", "scenarios/paper-deepseek-v31-h200.yaml",
                      "--set", "workloads.chat.slo.tpot_ms=-1"))
    assert err == ("scenarios/paper-deepseek-v31-h200.yaml: workloads[0].slo.tpot_ms: "
                   "must be > 0\n")


def test_ratio_set_matches_flags(at_root: Path) -> None:
    paper = "scenarios/paper-deepseek-v31-h200.yaml"
    from_file = json.loads(ok(run("ratio", paper, "--set", "workloads.chat.slo.tpot_ms=30",
                                  "--format", "json")).stdout)
    flags = [("30" if f == "20" and PAPER_FLAGS[k - 1] == "--tpot-ms" else f)
             for k, f in enumerate(PAPER_FLAGS)]
    from_flags = json.loads(ok(run("ratio", *flags, "--format", "json")).stdout)
    assert from_file == pytest.approx(from_flags)
    assert "needs a SCENARIO file" in invalid(run("ratio", *PAPER_FLAGS, "--set", "a=1"))


@pytest.mark.parametrize("flags", [["--queue", "md1"], ["--ttft-percentile", "90"],
                                   ["--queue", "mg1", "--service-scv", "0.5"]])
def test_ratio_file_queue_flags_override_the_file(at_root: Path, flags: list[str]) -> None:
    paper = "scenarios/paper-deepseek-v31-h200.yaml"
    result = ok(run("ratio", paper, *flags, "--format", "json"))
    assert json.loads(result.stdout) == pytest.approx(
        json.loads(ok(run("ratio", *PAPER_FLAGS, *flags, "--format", "json")).stdout))
    assert "set workloads.chat." in result.stderr


def test_ratio_file_percentile_with_md1_is_refused(at_root: Path) -> None:
    err = invalid(run("ratio", "scenarios/paper-deepseek-v31-h200.yaml", "--queue", "md1",
                      "--ttft-percentile", "90"))
    assert "slo.ttft_percentile: percentile TTFT targets need queue" in err


def test_ratio_file_other_flags_still_refused(at_root: Path) -> None:
    err = invalid(run("ratio", "scenarios/paper-deepseek-v31-h200.yaml", "--tpot-ms", "30"))
    assert "not both (got --tpot-ms)" in err and "--set" in err


@pytest.mark.parametrize("command", ["simulate", "verify"])
def test_simulate_and_verify_set(at_root: Path, command: str) -> None:
    base = [command, "scenarios/paper-deepseek-v31-h200.yaml", *SHORT_RUN, "--format", "json"]
    if command == "verify":
        base.append("--no-search")
    half = ok(run(*base, "--set", "workloads.chat.tokens_per_minute=2.5e6"))
    assert "set workloads.chat.tokens_per_minute: 5000000 -> " in half.stderr
    full = json.loads(ok(run(*base)).stdout)
    data = json.loads(half.stdout)
    if command == "simulate":  # half the demand: about half the requests
        ratio = data["workloads"][0]["requests"] / full["workloads"][0]["requests"]
        assert 0.3 < ratio < 0.7
    else:  # half the demand: a smaller plan is verified
        assert data["plan"]["cost_per_hour"] < full["plan"]["cost_per_hour"]


def test_check_set_reaches_model_names_with_dots(at_root: Path) -> None:
    result = ok(run("check", FLEET, "--set", "models.llama-3.1-8b.kv_bytes_per_token=131072",
                    "--set", "models[llama-3.1-70b].allowed_gpus=[H100, H200]"))
    assert result.stdout == f"{FLEET}: ok\n"
    assert result.stderr.splitlines() == [
        f"{FLEET}: set models[llama-3.1-8b].kv_bytes_per_token: 65536 -> 131072",
        f"{FLEET}: set models[llama-3.1-70b].allowed_gpus: (absent) -> ['H100', 'H200']",
    ]


def test_check_set_typo_in_a_dotted_name_says_how(at_root: Path) -> None:
    err = invalid(run("check", FLEET, "--set", "models.llama-3.1-8bx.kv_bytes_per_token=1"))
    assert err == (
        f"{FLEET}: --set models.llama-3.1-8bx.kv_bytes_per_token: no key of models begins "
        "'llama-3.1-8bx.kv_bytes_per_token' (it has: llama-3.1-8b, llama-3.1-70b, deepseek-v3); "
        "names with dots can be written as they are or in brackets: models[llama-3.1-8b]\n"
    )


def test_check_set_unknown_item(at_root: Path) -> None:
    err = invalid(run("check", FLEET, "--set", "workloads.nonesuch.slo.tpot_ms=1"))
    assert "no item named 'nonesuch' in workloads (it has: l8-chat," in err


def test_check_set_applies_to_every_file(at_root: Path) -> None:
    result = run("check", FLEET, "scenarios/paper-deepseek-v31-h200.yaml",
                 "--set", "options.mip_gap=2")
    assert result.exit_code == ExitCode.INVALID_INPUT
    assert result.stderr.count("options.mip_gap") == 4  # two changes, two problems


def test_batch_set_applies_to_every_variant_after_its_sweep_point(at_root: Path,
                                                                  tmp_path: Path) -> None:
    sweep = "scenarios/sweeps/slo-sweep.yaml"
    dry = run("batch", sweep, "--dry-run", "--set", "workloads.chat.slo.tpot_ms=30")
    assert dry.exit_code == 0, dry.output
    ids = [line.split(": ")[0] for line in dry.stdout.splitlines()]
    assert len(ids) > 1 and all(line.endswith(": ok") for line in dry.stdout.splitlines())
    assert "-> 30 (" in dry.stderr  # after the sweep point: every variant's value is replaced
    out = tmp_path / "out"
    result = run("batch", "scenarios/paper-deepseek-v31-h200.yaml", "-o", str(out), "--jobs", "1",
                 "--quiet", "--format", "json", "--set", "gpus.H200.cost_per_hour=5")
    assert result.exit_code == 0, result.output
    row = json.loads(result.stdout)["rows"][0]
    assert row["cost_per_hour"] == pytest.approx(5 * row["total_gpus"])
    plan = json.loads((out / "plans" / f"{row['id']}.json").read_text())
    assert plan["cost_per_hour"] == pytest.approx(row["cost_per_hour"])


def test_batch_set_that_does_not_fit_makes_the_variant_invalid(at_root: Path) -> None:
    result = run("batch", "scenarios/paper-deepseek-v31-h200.yaml", "--dry-run",
                 "--set", "workloads.nonesuch.slo.tpot_ms=30")
    assert result.exit_code == ExitCode.SOME_FAILED
    assert "--set workloads.nonesuch.slo.tpot_ms: no item named 'nonesuch'" in result.stderr


def test_dotted_paths_reach_names_with_dots() -> None:
    from pdopt.scenario.variants import set_path

    data: dict[str, Any] = {"workloads": [{"name": "chat.v2", "slo": {"tpot_ms": 1}}],
                            "models": {"a.b": {"x": 1}, "a": {"y": 2}}}
    assert set_path(data, "workloads.chat.v2.slo.tpot_ms", 5) == [
        "workloads[chat.v2].slo.tpot_ms: 1 -> 5"]
    assert set_path(data, "models.a.y", 3) == ["models.a.y: 2 -> 3"]  # a name that exists wins
    assert set_path(data, "models[a.b].x", 4) == ["models[a.b].x: 1 -> 4"]
    assert data["models"] == {"a.b": {"x": 4}, "a": {"y": 3}}
    with pytest.raises(ValueError, match=r"no item named 'chat' in workloads \(it has: chat.v2\);"
                                         r" .* in brackets: workloads\[chat.v2\]"):
        set_path(data, "workloads.chat.v3.slo.tpot_ms", 5)
