"""`pdopt simulate` and `pdopt verify` through click's CliRunner: formats, plans from files or
solved, traces, and one-line errors with exit code 2."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from pdopt.cli import main
from pdopt.scenario.loading import load_scenario
from pdopt.simulate import plan_from_counts

PAPER_3P4D = {"ds-prefill-8xh200": 3, "ds-decode-8xh200": 4}
FAST = ["--duration", "60", "--warmup", "10", "--cooldown", "30"]


@pytest.fixture
def plan_file(tmp_path: Path, paper_scenario_path: Path) -> Path:
    plan = plan_from_counts(load_scenario(paper_scenario_path), PAPER_3P4D)
    path = tmp_path / "plan.json"
    path.write_text(json.dumps(plan.to_dict(), allow_nan=True))
    return path


def invoke(*args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(main, list(args))
    return result.exit_code, result.stdout, result.stderr


def test_simulate_plan_file_json(paper_scenario_path: Path, plan_file: Path) -> None:
    code, out, err = invoke("simulate", str(paper_scenario_path), "--plan", str(plan_file),
                            *FAST, "--format", "json")
    assert code == 0, err
    data = json.loads(out)
    assert data["counts"] == PAPER_3P4D and data["source"] == "poisson"
    (w,) = data["workloads"]
    # 60 s at 12.52 requests/s: about 750 requests.
    assert 650 < w["requests"] < 850 and w["unfinished"] == 0
    assert w["tpot_ms"]["mean"] == pytest.approx(19.2, abs=0.6)


def test_simulate_solves_when_no_plan_is_given(paper_scenario_path: Path) -> None:
    code, out, err = invoke("simulate", str(paper_scenario_path), *FAST)
    assert code == 0, err
    assert "TTFT (ms): predicted by the plan vs simulated" in out
    assert "SLOs met in simulation: yes" in out


def test_simulate_markdown_and_csv(paper_scenario_path: Path, plan_file: Path) -> None:
    for fmt, marker in (("markdown", "### TPOT (ms)"),
                        ("csv", "workload,target,target_percentile,predicted")):
        code, out, _ = invoke("simulate", str(paper_scenario_path), "--plan", str(plan_file),
                              *FAST, "--format", fmt)
        assert code == 0 and marker in out


def test_simulate_trace(tmp_path: Path, paper_scenario_path: Path, plan_file: Path) -> None:
    trace = tmp_path / "trace.csv"
    rows = [f"{0.1 * k:.1f},6144,512" for k in range(600)]
    trace.write_text("arrival_s,input_tokens,output_tokens\n" + "\n".join(rows) + "\n")
    code, out, err = invoke("simulate", str(paper_scenario_path), "--plan", str(plan_file),
                            "--trace", str(trace), "--warmup", "5", "--format", "json")
    assert code == 0, err
    data = json.loads(out)
    # Window [5, 59.9): arrivals at 5.0 .. 59.8, 549 requests.
    assert data["source"] == str(trace) and data["workloads"][0]["requests"] == 549


def test_verify_plan_file(paper_scenario_path: Path, plan_file: Path) -> None:
    code, out, err = invoke("verify", str(paper_scenario_path), "--plan", str(plan_file),
                            "--duration", "120", "--warmup", "20", "--format", "json")
    assert code == 0, err
    data = json.loads(out)
    assert data["plan"]["counts"] == PAPER_3P4D
    assert {tuple(sorted(n["counts"].items())) for n in data["neighbours"]} == {
        (("ds-decode-8xh200", 3), ("ds-prefill-8xh200", 3)),
        (("ds-decode-8xh200", 4), ("ds-prefill-8xh200", 2)),
    }
    # 3P4D holds 5 M tokens/minute in simulation; one fewer of either does not.
    assert data["plan_meets_slo"] and data["plan_is_smallest"]
    assert data["smallest_counts_in_simulation"] == PAPER_3P4D


def test_verify_table(paper_scenario_path: Path, plan_file: Path) -> None:
    code, out, _ = invoke("verify", str(paper_scenario_path), "--plan", str(plan_file), *FAST,
                          "--no-search")
    assert code == 0
    assert "plan is the smallest that does" in out and "neighbour" in out


@pytest.mark.parametrize(
    ("extra", "needle"),
    [
        (["--plan", "{tmp}/missing.json"], "missing.json: cannot read file"),
        (["--plan", "{tmp}/bad.json"], "bad.json: not valid JSON"),
        (["--plan", "{tmp}/notaplan.json"], "notaplan.json: not a plan"),
        (["--plan", "{tmp}/otherpool.json"], "otherpool.json: plan pool 'nope'"),
        (["--trace", "{tmp}/bad.csv"], "bad.csv: line 2: input_tokens: not a number"),
        (["--trace-format", "csv"], "--trace-format and --trace-workload need --trace"),
        (["--rate-scale", "0"], "--rate-scale"),
    ],
)
def test_bad_input_is_one_line_and_exit_2(tmp_path: Path, paper_scenario_path: Path,
                                          plan_file: Path, extra: list[str], needle: str) -> None:
    (tmp_path / "bad.json").write_text("{nope")
    (tmp_path / "notaplan.json").write_text('{"pools": []}')
    other = json.loads(plan_file.read_text())
    other["pools"][0]["instance"] = "nope"
    (tmp_path / "otherpool.json").write_text(json.dumps(other))
    (tmp_path / "bad.csv").write_text("arrival_s,input_tokens,output_tokens\n0,x,1\n")
    args = [a.replace("{tmp}", str(tmp_path)) for a in extra]
    code, out, err = invoke("simulate", str(paper_scenario_path), *args, *FAST)
    assert code == 2
    assert needle in err and "Traceback" not in err
    if not needle.startswith("--"):
        assert len(err.strip().splitlines()) == 1


def test_trace_workload_must_exist(tmp_path: Path, paper_scenario_path: Path,
                                   plan_file: Path) -> None:
    trace = tmp_path / "t.csv"
    trace.write_text("arrival_s,input_tokens,output_tokens\n0,10,2\n")
    code, _, err = invoke("simulate", str(paper_scenario_path), "--plan", str(plan_file),
                          "--trace", str(trace), "--trace-workload", "nope")
    assert code == 2 and "'nope' is not a workload" in err


def test_public_trace_replay(shared_data: Path, paper_scenario_path: Path,
                             plan_file: Path) -> None:
    trace = shared_data / "traces" / "AzureLLMInferenceTrace_conv.csv"
    if not trace.is_file():
        pytest.skip(f"{trace} is absent")
    code, out, err = invoke("simulate", str(paper_scenario_path), "--plan", str(plan_file),
                            "--trace", str(trace), "--duration", "300", "--format", "json")
    assert code == 0, err
    w = json.loads(out)["workloads"][0]
    # Short Azure conversations on the paper's fleet: far below its capacity, all served.
    assert w["requests"] > 1000 and w["unfinished"] == 0 and w["meets_slo"]


def test_commands_have_help() -> None:
    for command in ("simulate", "verify"):
        code, out, _ = invoke(command, "--help")
        assert code == 0 and "--routing" in out and "--seed" in out


def test_empirical_lengths_are_read_beside_the_scenario(tmp_path: Path, paper_data: dict,
                                                        plan_file: Path) -> None:
    import yaml

    paper_data["workloads"][0]["length_distribution"] = {"kind": "empirical", "file": "pairs.csv"}
    scenario = tmp_path / "sc.yaml"
    scenario.write_text(yaml.safe_dump(paper_data))
    code, _, err = invoke("simulate", str(scenario), "--plan", str(plan_file), *FAST)
    assert code == 2 and "pairs.csv: cannot read file" in err
    (tmp_path / "pairs.csv").write_text("input_tokens,output_tokens\n3000,256\n9288,768\n")
    code, out, err = invoke("simulate", str(scenario), "--plan", str(plan_file), *FAST,
                            "--format", "json")
    assert code == 0, err
    assert json.loads(out)["workloads"][0]["requests"] > 0
