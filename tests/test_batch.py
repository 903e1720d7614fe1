"""pdopt.batch and `pdopt batch`: entries, executors, results files, resume, progress, exit codes.

The runner is tested with a fake solve function (fast, and failures on demand); the CLI tests run
the real optimizer on the paper's scenario (a few ms per variant).
"""

from __future__ import annotations

import io
import json
import math
import multiprocessing
import os
import signal
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from click.testing import CliRunner

from pdopt.batch import (
    BatchSetupError,
    Entry,
    Outcome,
    Task,
    collect_entries,
    content_hash,
    dask_executor,
    finish_writes_first,
    make_executor,
    process_executor,
    run_batch,
    serial_executor,
)
from pdopt.cli import main
from pdopt.cli.batch import BatchProgress
from pdopt.plan import Plan
from pdopt.scenario.prepare import PreparedScenario

TIMING = ("solve_seconds", "build_seconds")


def fake_solve(prepared: PreparedScenario, *, time_limit_s: float | None = None,
               mip_gap: float | None = None, objective: str | None = None) -> Plan:
    """One 8-GPU instance per started 1,000 requests/s... of tokens: deterministic, and a TPOT
    target below 10 ms is 'infeasible'; a description of 'boom' raises like a bug would."""
    scenario = prepared.scenario
    if scenario.description == "boom":
        raise RuntimeError("boom")
    if scenario.description == "slow":
        time.sleep(60)
    w = scenario.workloads[0]
    gpu = scenario.instances[0].gpu
    if w.slo.tpot_ms < 10:
        return Plan(scenario.name, "infeasible", "cost", None, None, {}, {}, [], [], [], None, None,
                    0.001, 0.001, diagnosis=[f"{w.name}: TPOT target {w.slo.tpot_ms} ms is below "
                                             "every decode table"])
    n = math.ceil(w.rate_tokens_per_s / 10_000)
    gpus = 8 * 2 * n
    return Plan(scenario.name, "optimal", "cost", gpus * scenario.gpus[gpu].cost_per_hour, gpus,
                {gpu: gpus}, {"prefill": n, "decode": n}, [], [], [], None, 0.0, 0.001, 0.001)


def write(path: Path, data: dict[str, Any]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


@pytest.fixture
def scenarios(tmp_path: Path, paper_data: dict[str, Any]) -> Path:
    """A folder: a 6-variant sweep (one TPOT infeasible), a plain file, a bad file, a base."""
    root = tmp_path / "in"
    write(root / "_base.yaml", paper_data)
    write(root / "load.yaml", {"extends": "_base.yaml", "sweep": {
        "workloads.chat.slo.tpot_ms": [8, 20],
        "workloads.chat.tokens_per_minute": {"values": ["1e6", "5e6", "2e7"], "label": "rate"}}})
    write(root / "eu" / "fleet.yaml", dict(paper_data, name="eu"))
    write(root / "eu" / "broken.yaml", {"extends": "../nowhere.yaml"})
    (root / ".hidden.yaml").write_text("not: a scenario")
    return root


IDS = ["eu/broken", "eu/fleet", "load[tpot_ms=8,rate=1e6]", "load[tpot_ms=8,rate=5e6]",
       "load[tpot_ms=8,rate=2e7]", "load[tpot_ms=20,rate=1e6]", "load[tpot_ms=20,rate=5e6]",
       "load[tpot_ms=20,rate=2e7]"]


def without_timing(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    def clean(r: dict[str, Any]) -> dict[str, Any]:
        return {k: (clean(v) if k == "solver" and isinstance(v, dict) else v)
                for k, v in r.items() if k not in TIMING}
    return [clean(r) for r in rows]


def read_jsonl(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text().splitlines()]


# --- entries ------------------------------------------------------------------------------------


def test_folder_entries_are_sorted_skip_bases_and_hidden(scenarios: Path) -> None:
    entries = collect_entries([str(scenarios)])
    assert [e.id for e in entries] == IDS
    broken = entries[0]
    assert broken.data is None and broken.error is not None
    assert broken.error.startswith(f"{scenarios / 'eu' / 'broken.yaml'}: ")
    assert entries[3].params == {"tpot_ms": 8, "rate": 5e6}


def test_files_globs_and_usage_errors(scenarios: Path, tmp_path: Path) -> None:
    fleet = scenarios / "eu" / "fleet.yaml"
    by_glob = collect_entries([str(scenarios / "*.yaml"), str(fleet), str(fleet)])
    assert [e.id for e in by_glob] == IDS[2:] + ["fleet"]  # argument order; a file taken once
    with pytest.raises(BatchSetupError, match="no such file or folder"):
        collect_entries([str(tmp_path / "nope.yaml")])
    with pytest.raises(BatchSetupError, match="no scenario files match"):
        collect_entries([str(tmp_path / "*.toml")])
    write(tmp_path / "other" / "fleet.yaml", {"name": "x"})
    with pytest.raises(BatchSetupError, match="two scenarios have the id 'fleet'"):
        collect_entries([str(fleet), str(tmp_path / "other" / "fleet.yaml")])


def test_an_id_too_long_for_a_file_name_is_a_usage_error(tmp_path: Path,
                                                          paper_data: dict[str, Any]) -> None:
    write(tmp_path / "base.yaml", paper_data)
    axes = {f"options.{'x' * 40}{k}": [1] for k in range(6)}
    write(tmp_path / "wide.yaml", {"extends": "base.yaml", "sweep": axes})
    with pytest.raises(BatchSetupError, match="too long for a file name"):
        collect_entries([str(tmp_path / "wide.yaml")])


def test_output_folder_inside_an_input_folder_is_not_read(scenarios: Path) -> None:
    out = scenarios / "results"
    write(out / "plans" / "x.json", {"status": "optimal"})
    assert [e.id for e in collect_entries([str(scenarios)], exclude=out)] == IDS


def test_content_hash_covers_data_and_solver_settings(paper_data: dict[str, Any]) -> None:
    h = content_hash(paper_data, None, None)
    assert h == content_hash(json.loads(json.dumps(paper_data)), None, None)  # int keys as text
    assert h != content_hash(paper_data, 5.0, None)
    assert h != content_hash(paper_data, None, 0.01)
    paper_data["gpus"]["H200"]["cost_per_hour"] = 4.0
    assert h != content_hash(paper_data, None, None)


# --- running ------------------------------------------------------------------------------------


def test_serial_run_writes_plans_and_summaries(scenarios: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    result = run_batch(collect_entries([str(scenarios)]), fake_solve, out)
    assert [r["id"] for r in result.rows] == IDS
    statuses = {r["id"]: r["status"] for r in result.rows}
    assert statuses["eu/broken"] == "invalid"
    assert statuses["load[tpot_ms=8,rate=1e6]"] == "infeasible"
    assert statuses["load[tpot_ms=20,rate=2e7]"] == "optimal"
    assert sorted(r["id"] for r in result.failed) == sorted(IDS[:1] + IDS[2:5])
    # rate 2e7 tokens/min = 333,333 tokens/s -> 34 of each role, 544 GPUs at $3.99
    row = result.rows[IDS.index("load[tpot_ms=20,rate=2e7]")]
    assert row["total_gpus"] == 544 and row["gpus_by_type"] == {"H200": 544}
    assert row["cost_per_hour"] == pytest.approx(544 * 3.99)
    assert row["instances_by_role"] == {"prefill": 34, "decode": 34}
    assert read_jsonl(out / "summary.jsonl") == result.rows
    plan = json.loads((out / "plans" / "load[tpot_ms=20,rate=2e7].json").read_text())
    assert Plan.from_dict(plan).total_gpus == 544
    assert plan["scenario"] == "paper-deepseek-v31-h200[tpot_ms=20,rate=2e7]"
    infeasible = json.loads((out / "plans" / "load[tpot_ms=8,rate=1e6].json").read_text())
    assert infeasible["status"] == "infeasible" and infeasible["diagnosis"]
    assert not (out / "plans" / "eu" / "broken.json").exists()
    assert not [p for p in out.rglob("*") if p.name.endswith(".tmp")]


def test_summary_csv_flattens_params_gpus_and_roles(scenarios: Path, tmp_path: Path) -> None:
    run_batch(collect_entries([str(scenarios)]), fake_solve, tmp_path / "out")
    lines = (tmp_path / "out" / "summary.csv").read_text().splitlines()
    assert lines[0] == ("id,source,params.tpot_ms,params.rate,status,cost_per_hour,total_gpus,"
                        "gpus.H200,instances.decode,instances.prefill,mip_gap,solve_seconds,"
                        "build_seconds,error,content_hash")
    broken = lines[1].split(",")
    assert broken[0] == "eu/broken" and broken[4] == "invalid" and broken[7] == ""
    assert lines[2].startswith(f"eu/fleet,{scenarios / 'eu' / 'fleet.yaml'},,,optimal,")
    assert lines[8].startswith(f"\"load[tpot_ms=20,rate=2e7]\",{scenarios / 'load.yaml'},20,"
                               "20000000.0,optimal,")


def test_a_bug_in_one_variant_is_recorded_and_the_others_finish(
        paper_data: dict[str, Any], tmp_path: Path) -> None:
    entries = [Entry("a", "a.yaml", data=paper_data),
               Entry("b", "b.yaml", data=dict(paper_data, description="boom")),
               Entry("c", "c.yaml", data=dict(paper_data, gpus={})),
               Entry("d", "d.yaml", data=dict(paper_data, name="d"))]
    result = run_batch(entries, fake_solve, tmp_path)
    assert [(r["id"], r["status"]) for r in result.rows] == [
        ("a", "optimal"), ("b", "error"), ("c", "invalid"), ("d", "optimal")]
    assert result.rows[1]["error"] == "RuntimeError: boom"
    assert result.rows[2]["error"].startswith("gpus: ")


def test_process_pool_gives_the_serial_rows(scenarios: Path, tmp_path: Path) -> None:
    entries = collect_entries([str(scenarios)])
    serial = run_batch(entries, fake_solve, tmp_path / "one")
    pooled = run_batch(entries, fake_solve, tmp_path / "two", executor=process_executor(2))
    assert without_timing(pooled.rows) == without_timing(serial.rows)
    assert (tmp_path / "one" / "plans" / "eu" / "fleet.json").read_text() == (
        tmp_path / "two" / "plans" / "eu" / "fleet.json").read_text()


def test_dask_local_cluster_gives_the_serial_rows(scenarios: Path, tmp_path: Path) -> None:
    distributed = pytest.importorskip("distributed")
    entries = collect_entries([str(scenarios)])
    serial = run_batch(entries, fake_solve, tmp_path / "one")
    with distributed.LocalCluster(n_workers=1, threads_per_worker=2, processes=False,
                                  protocol="tcp", host="127.0.0.1",
                                  dashboard_address=None) as cluster:
        on_dask = run_batch(entries, fake_solve, tmp_path / "dask",
                            executor=make_executor(dask_scheduler=cluster.scheduler_address))
    assert without_timing(on_dask.rows) == without_timing(serial.rows)


def test_unreachable_dask_scheduler_is_a_setup_error(tmp_path: Path,
                                                     paper_data: dict[str, Any]) -> None:
    pytest.importorskip("distributed")
    executor = dask_executor("tcp://127.0.0.1:9", connect_timeout_s=1)  # nothing listens there
    with pytest.raises(BatchSetupError, match="cannot reach the Dask scheduler"):
        run_batch([Entry("a", "a.yaml", data=paper_data)], fake_solve, tmp_path,
                  executor=executor)


def test_dask_missing_is_a_clean_usage_error(sweep_file: Path, tmp_path: Path,
                                             monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "distributed", None)  # import distributed -> ImportError
    result = run_cli(str(sweep_file), "-o", str(tmp_path / "out"), "--dask-scheduler",
                     "tcp://127.0.0.1:8786")
    assert result.exit_code == 2
    assert result.stderr == ("error: --dask-scheduler needs Dask distributed: "
                             "pip install 'pdopt[dask]'\n")


# --- resume and interruption --------------------------------------------------------------------


class CountingSolve:
    def __init__(self) -> None:
        self.solved: list[str] = []

    def __call__(self, prepared: PreparedScenario, **kwargs: Any) -> Plan:
        self.solved.append(prepared.name)
        return fake_solve(prepared, **kwargs)


def test_resume_skips_matching_plans_only(scenarios: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    first = run_batch(collect_entries([str(scenarios)]), fake_solve, out)
    again = CountingSolve()
    second = run_batch(collect_entries([str(scenarios)]), again, out, resume=True)
    assert again.solved == [] and second.resumed == 7
    assert without_timing(second.rows) == without_timing(first.rows)

    # a changed scenario, a tampered hash, a different solver setting: solved again
    load = yaml.safe_load((scenarios / "load.yaml").read_text())
    load["sweep"]["workloads.chat.slo.tpot_ms"] = [8, 21]
    write(scenarios / "load.yaml", load)
    (out / "plans" / "eu" / "fleet.sha256").write_text("0" * 64 + "\n")
    third = CountingSolve()
    run_batch(collect_entries([str(scenarios)]), third, out, resume=True)
    assert third.solved == ["eu", "paper-deepseek-v31-h200[tpot_ms=21,rate=1e6]",
                            "paper-deepseek-v31-h200[tpot_ms=21,rate=5e6]",
                            "paper-deepseek-v31-h200[tpot_ms=21,rate=2e7]"]
    fourth = CountingSolve()
    run_batch(collect_entries([str(scenarios)]), fourth, out, resume=True, time_limit_s=5)
    assert len(fourth.solved) == 7


def test_a_variant_that_turns_invalid_loses_its_old_plan(scenarios: Path, tmp_path: Path,
                                                         paper_data: dict[str, Any]) -> None:
    out = tmp_path / "out"
    run_batch(collect_entries([str(scenarios)]), fake_solve, out)
    assert (out / "plans" / "eu" / "fleet.json").exists()
    write(scenarios / "eu" / "fleet.yaml", dict(paper_data, workloads=[]))
    result = run_batch(collect_entries([str(scenarios)]), fake_solve, out, resume=True)
    assert result.rows[1]["status"] == "invalid"
    assert not (out / "plans" / "eu" / "fleet.json").exists()
    assert not (out / "plans" / "eu" / "fleet.sha256").exists()


def interrupt_after(n: int):  # noqa: ANN201 - an Executor
    def execute(tasks: list[Task], solve: Any) -> Iterator[tuple[int, Outcome]]:
        for k, outcome in serial_executor(tasks, solve):
            if k == n:
                raise KeyboardInterrupt
            yield k, outcome
    return execute


def test_interrupted_run_keeps_complete_files_and_resume_finishes(scenarios: Path,
                                                                  tmp_path: Path) -> None:
    out = tmp_path / "out"
    entries = collect_entries([str(scenarios)])
    cut = run_batch(entries, fake_solve, out, executor=interrupt_after(3))
    assert cut.interrupted
    # the invalid file is known before solving; then 3 variants finished
    assert [r["id"] for r in cut.rows] == IDS[:4]
    assert read_jsonl(out / "summary.jsonl") == cut.rows
    assert len(list((out / "plans").rglob("*.json"))) == 3
    rest = CountingSolve()
    done = run_batch(entries, rest, out, resume=True)
    assert len(rest.solved) == 4 and [r["id"] for r in done.rows] == IDS
    assert not [p for p in out.rglob("*") if p.name.endswith(".tmp")]


def test_ctrl_c_during_a_write_takes_effect_after_it(tmp_path: Path) -> None:
    written = []
    with pytest.raises(KeyboardInterrupt), finish_writes_first():
        os.kill(os.getpid(), signal.SIGINT)
        written.append("plan")  # still runs: the interrupt waits for the block's end
    assert written == ["plan"]
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler


def test_a_killed_runs_temporary_files_are_removed(scenarios: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    stale = out / "plans" / ".fleet.json.abc123.tmp"
    stale.parent.mkdir(parents=True)
    stale.write_text('{"half": ')
    run_batch(collect_entries([str(scenarios)]), fake_solve, out)
    assert not stale.exists()


def test_ctrl_c_does_not_wait_for_running_solves(paper_data: dict[str, Any],
                                                 tmp_path: Path) -> None:
    entries = [Entry("fast", "a.yaml", data=paper_data),
               Entry("slow", "b.yaml", data=dict(paper_data, description="slow"))]

    def interrupt_after_first(tasks: list[Task], solve: Any) -> Iterator[tuple[int, Outcome]]:
        for item in process_executor(2)(tasks, solve):
            yield item
            raise KeyboardInterrupt

    start = time.monotonic()
    result = run_batch(entries, fake_solve, tmp_path, executor=interrupt_after_first)
    assert result.interrupted and [r["id"] for r in result.rows] == ["fast"]
    assert time.monotonic() - start < 20
    deadline = time.monotonic() + 10
    while multiprocessing.active_children() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not multiprocessing.active_children()  # the slow solve (60 s) was stopped


# --- progress (the CLI's) -----------------------------------------------------------------------


class Stream(io.StringIO):
    def __init__(self, tty: bool) -> None:
        super().__init__()
        self.tty = tty

    def isatty(self) -> bool:
        return self.tty


def test_progress_bar_on_a_terminal_counts_failures_and_resumed() -> None:
    stream = Stream(tty=True)
    p = BatchProgress(4, stream)
    p.advance(failed=False, resumed=True)
    p.advance(failed=True)
    p.finish()
    text = stream.getvalue()
    assert "2/4" in text and "failed=1" in text and "resumed=1" in text
    assert "\x1b[K" not in text  # drawn by tqdm, no hand-written escape codes


def test_progress_prints_nothing_when_not_a_terminal() -> None:
    stream = Stream(tty=False)
    p = BatchProgress(3, stream)
    for _ in range(3):
        p.advance(failed=False)
    p.finish()
    assert stream.getvalue() == ""


# --- the command --------------------------------------------------------------------------------


@pytest.fixture
def sweep_file(tmp_path: Path, paper_scenario_path: Path) -> Path:
    """The paper's scenario at three loads and two TPOT targets; 10 ms is below the 12.8 ms of
    the smallest measured batch, so those three are infeasible."""
    return write(tmp_path / "paper-load.yaml", {
        "extends": str(paper_scenario_path),
        "sweep": {"workloads.chat.slo.tpot_ms": [10, 20],
                  "workloads.chat.tokens_per_minute": {"values": ["1e6", "5e6", "2e7"],
                                                       "label": "rate"}}})


def run_cli(*args: str) -> Any:
    return CliRunner().invoke(main, ["batch", *args])


def test_cli_all_solved_exit_0_with_table(paper_scenario_path: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    result = run_cli(str(paper_scenario_path), "--output", str(out), "--jobs", "1",
                     "--format", "table")
    assert result.exit_code == 0, result.output
    assert "paper-deepseek-v31-h200  optimal" in result.stdout
    # queue auto, the default: 3P4D (docs/method.md, sections Q and F)
    assert "H200:56" in result.stdout and "prefill:3 decode:4" in result.stdout
    assert result.stderr == f"1 of 1 variants solved, 0 failed; results in {out}/\n"
    row = read_jsonl(out / "summary.jsonl")[0]
    assert (row["status"], row["cost_per_hour"], row["total_gpus"]) == ("optimal", 223.44, 56)
    solved = CliRunner().invoke(main, ["solve", str(paper_scenario_path), "--format", "json"])
    plan = json.loads((out / "plans" / "paper-deepseek-v31-h200.json").read_text())
    assert without_timing([plan]) == without_timing([json.loads(solved.stdout)])


def test_cli_some_infeasible_exit_1_and_same_rows_for_jobs_1_and_2(sweep_file: Path,
                                                                   tmp_path: Path) -> None:
    one = run_cli(str(sweep_file), "-o", str(tmp_path / "one"), "--jobs", "1")
    two = run_cli(str(sweep_file), "-o", str(tmp_path / "two"), "--jobs", "2", "--quiet")
    assert one.exit_code == two.exit_code == 1
    assert two.stderr == "" and two.stdout == ""
    assert "failed: paper-load[tpot_ms=10,rate=1e6] (infeasible): " in one.stderr
    assert "3 of 6 variants solved, 3 failed" in one.stderr
    rows = read_jsonl(tmp_path / "one" / "summary.jsonl")
    assert [r["status"] for r in rows] == ["infeasible"] * 3 + ["optimal"] * 3
    assert [r["total_gpus"] for r in rows[3:]] == sorted(r["total_gpus"] for r in rows[3:])
    assert without_timing(read_jsonl(tmp_path / "two" / "summary.jsonl")) == without_timing(rows)


def test_cli_resume_and_json_format(sweep_file: Path, tmp_path: Path) -> None:
    out = str(tmp_path / "out")
    run_cli(str(sweep_file), "-o", out, "--jobs", "1", "--quiet")
    again = run_cli(str(sweep_file), "-o", out, "--jobs", "1", "--resume", "--format", "json")
    assert again.exit_code == 1
    assert "3 of 6 variants solved (6 resumed), 3 failed" in again.stderr
    assert [r["id"] for r in json.loads(again.stdout)["rows"]][:2] == [
        "paper-load[tpot_ms=10,rate=1e6]", "paper-load[tpot_ms=10,rate=5e6]"]


@pytest.mark.parametrize("args, message", [
    (["nowhere.yaml", "-o", "out"], "nowhere.yaml: no such file or folder"),
    (["{sweep}", "-o", "out", "--jobs", "0"], "Invalid value for '--jobs'"),
    (["{sweep}", "-o", "out", "--jobs", "2", "--dask-scheduler", "tcp://127.0.0.1:9"],
     "give --jobs or --dask-scheduler, not both"),
    (["{sweep}"], "Missing option '--output' / '-o'"),
    (["{sweep}", "-o", "{sweep}"], "is a file"),
])
def test_cli_usage_errors_exit_2(sweep_file: Path, tmp_path: Path, args: list[str],
                                 message: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    result = run_cli(*(a.format(sweep=sweep_file) for a in args))
    assert result.exit_code == 2
    assert message in result.stderr and "Traceback" not in result.stderr
    assert not (tmp_path / "out").exists()


def test_cli_dry_run_validates_every_variant(scenarios: Path, tmp_path: Path) -> None:
    result = run_cli(str(scenarios), "-o", str(tmp_path / "out"), "--dry-run")
    assert result.exit_code == 1
    assert result.stdout.splitlines() == [f"{i}: ok" for i in IDS[1:]]
    assert result.stderr.startswith("eu/broken: ")
    assert not (tmp_path / "out").exists()


def test_shipped_sweeps_expand_and_validate(project_root: Path) -> None:
    folder = project_root / "scenarios" / "sweeps"
    result = run_cli(str(folder), "--dry-run")  # no --output needed to check
    assert result.exit_code == 0, result.stderr
    assert len(result.stdout.splitlines()) >= 20
