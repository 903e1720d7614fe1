"""`pdopt ratio`, `pdopt check`, `pdopt schema` through click's CliRunner (stdout and stderr are
separate), and the rule that every command has help text and a section in docs/cli.md."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path
from typing import Any

import click
import pytest
from click.testing import CliRunner, Result

from pdopt.cli import main
from pdopt.errors import ExitCode, UnreachableTargetError
from pdopt.scenario.schema import Scenario

PAPER_FLAGS = [
    "--input-tokens", "6144", "--output-tokens", "512", "--ttft-ms", "2000", "--tpot-ms", "20",
    "--ttft-overhead-ms", "100", "--prefill-tokens-per-s", "28309",
    "--tpot-table", "10:12.8,20:16.4,30:18.8,40:21.6,50:23.9,60:26.2",
    "--tokens-per-minute", "5000000",
]


def run(*args: str) -> Result:
    return CliRunner().invoke(main, list(args))


def ok(result: Result) -> str:
    assert result.exit_code == 0, (result.stdout, result.stderr)
    assert result.stderr == ""
    return result.stdout


def invalid(result: Result) -> str:
    """Exit code 2, nothing on stdout, a clean message (no traceback) on stderr."""
    assert result.exit_code == ExitCode.INVALID_INPUT, (result.stdout, result.stderr)
    assert result.stdout == ""
    assert "Traceback" not in result.stderr
    assert isinstance(result.exception, SystemExit)
    return result.stderr


def write(tmp_path: Path, name: str, data: dict[str, Any]) -> Path:
    path = tmp_path / name
    path.write_text(json.dumps(data), encoding="utf-8")
    return path


# --- pdopt ratio ----------------------------------------------------------------------------

def test_ratio_flags_json_has_the_papers_numbers() -> None:
    d = json.loads(ok(run("ratio", *PAPER_FLAGS, "--rounding", "nearest", "--format", "json")))
    assert round(d["prefill_tokens_per_s"]) == 25075
    assert d["decode_batch"] == 34
    assert round(d["decode_tokens_per_s"]) == 1707
    assert round(d["prefill_instances_exact"], 2) == 3.07
    assert round(d["decode_instances_exact"], 2) == 3.76
    assert round(d["pd_ratio"], 3) == 0.817
    assert (d["prefill_instances"], d["decode_instances"]) == (3, 4)
    assert d["sustainable_tokens_per_minute"] == pytest.approx(4.8897e6, rel=1e-4)
    d = json.loads(ok(run("ratio", *PAPER_FLAGS, "--format", "json")))  # default: ceil
    assert (d["rounding"], d["prefill_instances"], d["decode_instances"]) == ("ceil", 4, 4)


@pytest.mark.parametrize("fmt", ["table", "text"])
def test_ratio_text(fmt: str) -> None:
    out = ok(run("ratio", *PAPER_FLAGS, "--rounding", "nearest", "--format", fmt))
    assert out.startswith("pdopt ratio: 3P4D\n")
    assert "prefill under TTFT target, input tokens/s     25,075" in out
    assert "decode, output tokens/s                        1,707" in out
    assert "sustainable tokens/minute of the plan      4,889,687" in out


def test_ratio_markdown_and_csv() -> None:
    md = ok(run("ratio", *PAPER_FLAGS, "--format", "markdown"))
    assert md.startswith("### pdopt ratio: 4P4D\n")
    assert "| decode batch | 34 |" in md
    rows = dict(csv.reader(io.StringIO(ok(run("ratio", *PAPER_FLAGS, "--format", "csv")))))
    assert rows["decode batch"] == "34"
    assert float(rows["prefill under TTFT target, input tokens/s"]) == pytest.approx(25075.3158)


@pytest.mark.parametrize("fmt", ["table", "text", "json", "markdown", "csv"])
def test_ratio_from_file_matches_flags(paper_scenario_path: Path, fmt: str) -> None:
    from_file = ok(run("ratio", str(paper_scenario_path), "--format", fmt))
    from_flags = ok(run("ratio", *PAPER_FLAGS, "--format", fmt))
    if fmt == "json":  # the file's lengths are integers, the flags' are numbers: 6144 == 6144.0
        assert json.loads(from_file) == json.loads(from_flags)
    else:
        assert from_file == from_flags


def test_ratio_rate_units_agree() -> None:
    def counts(*rate: str) -> tuple[float, float]:
        flags = PAPER_FLAGS[:-2] + list(rate)
        d = json.loads(ok(run("ratio", *flags, "--format", "json")))
        return d["prefill_instances_exact"], d["decode_instances_exact"]

    per_minute = counts("--tokens-per-minute", "5000000")
    assert counts("--tokens-per-s", str(5000000 / 60)) == pytest.approx(per_minute)
    assert counts("--requests-per-s", str(5000000 / 60 / 6656)) == pytest.approx(per_minute)


def test_ratio_queue_options() -> None:
    d = json.loads(ok(run("ratio", *PAPER_FLAGS, "--ttft-percentile", "90", "--format", "json")))
    assert d["prefill_tokens_per_s"] == pytest.approx(20863.1669)
    md1 = json.loads(ok(run("ratio", *PAPER_FLAGS, "--queue", "md1", "--format", "json")))
    mg1 = json.loads(ok(run("ratio", *PAPER_FLAGS, "--queue", "mg1", "--service-scv", "0",
                            "--format", "json")))
    assert md1["prefill_tokens_per_s"] == pytest.approx(mg1["prefill_tokens_per_s"])
    assert md1["prefill_tokens_per_s"] > d["prefill_tokens_per_s"]


def test_ratio_output_file(tmp_path: Path) -> None:
    target = tmp_path / "out" / "ratio.json"
    assert ok(run("ratio", *PAPER_FLAGS, "--format", "json", "-o", str(target))) == ""
    assert json.loads(target.read_text())["decode_batch"] == 34
    assert list(target.parent.iterdir()) == [target]  # no temporary file left behind


def test_ratio_unreachable_ttft() -> None:
    flags = [*PAPER_FLAGS]
    flags[flags.index("--ttft-ms") + 1] = "300"
    err = invalid(run("ratio", *flags))
    assert err == ("error: mean TTFT target 300 ms is unreachable: 6144 input tokens at 28309 "
                   "tokens/s plus 100 ms overhead give at least 317.0 ms even with no queueing\n")


def test_ratio_tpot_below_fastest() -> None:
    flags = [*PAPER_FLAGS]
    flags[flags.index("--tpot-ms") + 1] = "12"
    assert invalid(run("ratio", *flags)) == (
        "error: TPOT target 12 ms is below the fastest TPOT measured (12.8 ms at batch 10)\n"
    )


def test_ratio_unreachable_from_file_names_the_file(
    tmp_path: Path, paper_data: dict[str, Any]
) -> None:
    paper_data["workloads"][0]["slo"]["ttft_ms"] = 300
    path = write(tmp_path, "fast.json", paper_data)
    err = invalid(run("ratio", str(path)))
    assert err.startswith(f"error: {path}: workload 'chat' on instance 'ds-prefill-8xh200': "
                          "mean TTFT target 300 ms is unreachable")


def test_ratio_debug_shows_the_exception() -> None:
    flags = [*PAPER_FLAGS]
    flags[flags.index("--ttft-ms") + 1] = "300"
    result = run("--debug", "ratio", *flags)
    assert result.exit_code != 0
    assert isinstance(result.exception, UnreachableTargetError)


@pytest.mark.parametrize("args, message", [
    (["--input-tokens", "6144"], "missing --output-tokens, --ttft-ms, --tpot-ms, "
                                 "--prefill-tokens-per-s, --tpot-table (or give a SCENARIO file)"),
    ([*PAPER_FLAGS, "--requests-per-s", "3"], "give exactly one of --tokens-per-minute, "
                                              "--tokens-per-s, --requests-per-s"),
    ([*PAPER_FLAGS, "--queue", "mg1"], "--queue mg1 needs --service-scv"),
    ([*PAPER_FLAGS[:-4], "--tpot-table", "10:12.8,20:11", *PAPER_FLAGS[-2:]],
     "TPOT must not decrease as batch grows (batch 10: 12.8 ms, batch 20: 11.0 ms)"),
    ([*PAPER_FLAGS[:-4], "--tpot-table", "10-12.8", *PAPER_FLAGS[-2:]],
     "'10-12.8' is not BATCH:TPOT_MS"),
    ([*PAPER_FLAGS[:-4], "--tpot-table", "0:12.8", *PAPER_FLAGS[-2:]],
     "'0:12.8': batch and TPOT must be > 0"),
    ([*PAPER_FLAGS[:-4], "--tpot-table", "10:12.8,10:13", *PAPER_FLAGS[-2:]],
     "batch 10 is given twice"),
    ([*PAPER_FLAGS[2:], "--input-tokens", "-5"], "-5.0 is not in the range 0<x<=10000000"),
    ([*PAPER_FLAGS, "--format", "yaml"], "'yaml' is not one of"),
])
def test_ratio_bad_flags(args: list[str], message: str) -> None:
    err = invalid(run("ratio", *args))
    assert message in err


def test_ratio_percentile_needs_mm1() -> None:
    err = invalid(run("ratio", *PAPER_FLAGS, "--queue", "md1", "--ttft-percentile", "90"))
    assert err == "--ttft-percentile: percentile TTFT targets need --queue mm1\n"


def test_ratio_file_and_flags_together(paper_scenario_path: Path) -> None:
    err = invalid(run("ratio", str(paper_scenario_path), "--tpot-ms", "30"))
    assert "give a SCENARIO file or flags, not both (got --tpot-ms)" in err


def test_ratio_invalid_file(tmp_path: Path, paper_data: dict[str, Any]) -> None:
    paper_data["workloads"][0]["slo"]["tpot_ms"] = 0
    path = write(tmp_path, "bad.json", paper_data)
    assert invalid(run("ratio", str(path))) == f"{path}: workloads[0].slo.tpot_ms: must be > 0\n"


def test_ratio_needs_one_workload(tmp_path: Path, paper_data: dict[str, Any]) -> None:
    paper_data["workloads"].append(dict(paper_data["workloads"][0], name="second"))
    path = write(tmp_path, "two.json", paper_data)
    assert invalid(run("ratio", str(path))) == (
        f"{path}: workloads: pdopt ratio needs exactly one workload (found 2); use pdopt solve "
        "for fleets\n"
    )


# --- pdopt check ----------------------------------------------------------------------------

def test_check_ok(paper_scenario_path: Path) -> None:
    assert ok(run("check", str(paper_scenario_path))) == f"{paper_scenario_path}: ok\n"


def test_check_bad_and_good_files(
    tmp_path: Path, paper_scenario_path: Path, paper_data: dict[str, Any]
) -> None:
    paper_data["instances"][1]["gpu"] = "H100"
    paper_data["workloads"][0]["slo"]["tpot_msx"] = 20
    bad = write(tmp_path, "bad.json", paper_data)
    empty = tmp_path / "empty.yaml"
    empty.write_text("")
    result = run("check", str(bad), str(paper_scenario_path), str(empty))
    assert result.exit_code == ExitCode.INVALID_INPUT
    assert result.stdout == f"{paper_scenario_path}: ok\n"
    assert result.stderr == (
        f"{bad}: workloads[0].slo.tpot_msx: unknown field; did you mean 'tpot_ms'? "
        "(see docs/scenario-format.md)\n"
        f"{empty}: empty file, expected a scenario\n"
    )


def test_check_cross_reference_errors(tmp_path: Path, paper_data: dict[str, Any]) -> None:
    paper_data["instances"][1]["gpu"] = "H100"
    paper_data["instances"][1]["model"] = "other"
    bad = write(tmp_path, "refs.json", paper_data)
    assert invalid(run("check", str(bad))) == (
        f"{bad}: instances[1].gpu: unknown GPU type 'H100' (gpus lists: H200)\n"
        f"{bad}: workloads[0].model: no decode instance type serves model 'deepseek-v3.1'\n"
    )


def test_check_garbage_and_missing(tmp_path: Path) -> None:
    garbage = tmp_path / "garbage.yaml"
    garbage.write_bytes(b"\x00\xff" * 100)
    missing = tmp_path / "missing.yaml"
    err = invalid(run("check", str(garbage), str(missing)))
    assert err == (f"{garbage}: binary file (contains NUL bytes), not a scenario\n"
                   f"{missing}: cannot read file: No such file or directory\n")


def test_check_needs_a_file() -> None:
    assert "Missing argument 'FILES...'" in invalid(run("check"))


# --- pdopt schema ---------------------------------------------------------------------------

def test_schema_is_the_scenario_json_schema(paper_data: dict[str, Any]) -> None:
    schema = json.loads(ok(run("schema")))
    assert schema == json.loads(json.dumps(Scenario.model_json_schema()))
    assert schema["title"] == "Scenario"
    assert set(schema["properties"]) == set(Scenario.model_fields)


def test_schema_validates_scenarios(paper_data: dict[str, Any]) -> None:
    jsonschema = pytest.importorskip("jsonschema")
    schema = json.loads(ok(run("schema")))
    jsonschema.Draft202012Validator.check_schema(schema)
    validator = jsonschema.Draft202012Validator(schema)
    # YAML's integer keys become text in JSON, as an editor would see the file
    assert list(validator.iter_errors(json.loads(json.dumps(paper_data)))) == []
    paper_data["workloads"][0]["slo"]["tpot_msx"] = 20
    paper_data["gpus"]["H200"]["cost_per_hour"] = 0
    messages = sorted(e.message for e in validator.iter_errors(paper_data))
    assert any("tpot_msx" in m for m in messages)
    assert any("0 is less than or equal to the minimum of 0" in m for m in messages)


# --- every command has help text and a section in docs/cli.md ------------------------------

def all_commands() -> list[tuple[str, click.Command]]:
    found: list[tuple[str, click.Command]] = []
    stack: list[tuple[str, click.Command]] = [("pdopt", main)]
    while stack:
        name, cmd = stack.pop()
        if cmd is not main:
            found.append((name, cmd))
        if isinstance(cmd, click.Group):
            stack.extend((f"{name} {sub}", c) for sub, c in cmd.commands.items())
    return sorted(found, key=lambda x: x[0])


def test_the_foundation_commands_are_registered() -> None:
    names = {name for name, _ in all_commands()}
    assert {"pdopt ratio", "pdopt check", "pdopt schema"} <= names


def test_every_command_has_help_text() -> None:
    for name, cmd in all_commands():
        assert (cmd.help or "").strip(), f"{name} has no help text"
        assert cmd.get_short_help_str().strip(), name
        result = run(*name.split()[1:], "--help")
        assert result.exit_code == 0 and "Usage:" in result.stdout, name


def test_every_command_is_in_docs_cli_md(project_root: Path) -> None:
    doc = (project_root / "docs" / "cli.md").read_text(encoding="utf-8")
    missing = []
    for name, _ in all_commands():
        if name.count(" ") == 1:
            if f"## `{name}`" not in doc:
                missing.append(f"{name} (a '## `{name}`' section)")
        elif name not in doc:
            missing.append(name)
    assert not missing, f"docs/cli.md does not document: {', '.join(missing)}"


def test_exit_codes_are_documented(project_root: Path) -> None:
    doc = (project_root / "docs" / "cli.md").read_text(encoding="utf-8")
    for code in ExitCode:
        assert f"| {int(code)} | `{code.name}` |" in doc, code.name


# --- the examples in the docs are what the commands print ----------------------------------

def console_examples(text: str) -> list[tuple[list[str], str]]:
    """(`pdopt` arguments, expected output) for each `$ pdopt ...` command in console blocks."""
    import re
    import shlex

    examples = []
    for block in re.findall(r"```console\n(.*?)```", text, flags=re.S):
        lines = block.splitlines()
        i = 0
        while i < len(lines):
            if not lines[i].startswith("$ "):
                i += 1
                continue
            command = lines[i][2:]
            while command.endswith("\\"):
                i += 1
                command = command[:-1] + " " + lines[i].strip()
            i += 1
            output = []
            while i < len(lines) and not lines[i].startswith("$ "):
                output.append(lines[i])
                i += 1
            examples.append((shlex.split(command, comments=True), "\n".join(output) + "\n"))
    return examples


@pytest.mark.parametrize("doc", ["README.md", "docs/cli.md"])
def test_documented_foundation_examples_match(
    project_root: Path, monkeypatch: pytest.MonkeyPatch, doc: str
) -> None:
    monkeypatch.chdir(project_root)
    checked = 0
    for args, expected in console_examples((project_root / doc).read_text(encoding="utf-8")):
        if args[0] != "pdopt" or args[1] not in {"ratio", "check"} or ">" in args:
            continue
        files = [a for a in args[2:] if a.endswith((".yaml", ".json", ".toml"))]
        if not all((project_root / f).is_file() for f in files):
            continue  # an example of a file the reader writes (typo.yaml, bad.yaml)
        assert run(*args[1:]).output == expected, " ".join(args)
        checked += 1
    assert checked >= 2
