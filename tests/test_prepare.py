"""The prepared-scenario stage (pdopt/scenario/prepare.py): paths relative to the file that wrote
them, wherever pdopt runs from; profiles resolved once; overrides; estimates flagged by a typed
field; estimated prefill tables that cover the length distribution."""

from __future__ import annotations

import copy
import json
import math
from pathlib import Path
from typing import Any

import pytest
import yaml
from click.testing import CliRunner

from pdopt.cli import main
from pdopt.profiles.catalog import bundled_models
from pdopt.profiles.resolve import input_length_range, log_grid
from pdopt.scenario.loading import scenario_from_data
from pdopt.scenario.paths import absolutize_value
from pdopt.scenario.prepare import PreparedScenario, prepare
from pdopt.scenario.problems import ScenarioError
from pdopt.scenario.schema import Instance

ESTIMATED: dict[str, Any] = {
    "name": "estimated",
    "gpus": {"H200": {"cost_per_hour": 3.99}},
    "instances": [
        {"name": "p", "model": "llama-3.1-70b", "role": "prefill", "gpu": "H200",
         "gpus_per_instance": 2,
         "profile": {"estimate": {"model": "models/config.json", "weight_dtype": "fp8",
                                  "kv_dtype": "fp8"}}},
        {"name": "d", "model": "llama-3.1-70b", "role": "decode", "gpu": "H200",
         "gpus_per_instance": 2,
         "profile": {"estimate": {"model": "models/config.json", "weight_dtype": "fp8",
                                  "kv_dtype": "fp8"}}},
    ],
    "workloads": [{"name": "chat", "model": "llama-3.1-70b", "requests_per_s": 2.0,
                   "input_tokens": 1000, "output_tokens": 100,
                   "slo": {"ttft_ms": 2000, "tpot_ms": 60},
                   "length_distribution": {"kind": "empirical", "file": "lengths/pairs.csv"}}],
}


@pytest.fixture(autouse=True)
def _cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PDOPT_CACHE_DIR", str(tmp_path / "cache"))


@pytest.fixture
def project(tmp_path: Path) -> Path:
    """A scenario folder with a model config and an empirical length file beside the scenario,
    both named by relative paths."""
    folder = tmp_path / "project"
    (folder / "models").mkdir(parents=True)
    (folder / "models" / "config.json").write_text(
        json.dumps(bundled_models()["llama-3.1-70b"].config))
    (folder / "lengths").mkdir()
    (folder / "lengths" / "pairs.csv").write_text(
        "input_tokens,output_tokens\n500,50\n1000,100\n1500,150\n")
    (folder / "scenario.yaml").write_text(yaml.safe_dump(ESTIMATED))
    return folder


@pytest.fixture
def elsewhere(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    folder = tmp_path / "elsewhere"
    folder.mkdir()
    monkeypatch.chdir(folder)
    return folder


def test_paths_are_made_absolute_against_the_file(project: Path, elsewhere: Path) -> None:
    prepared = prepare(project / "scenario.yaml")
    dist = prepared.scenario.workloads[0].length_distribution
    assert dist.file == str(project / "lengths" / "pairs.csv")  # type: ignore[union-attr]
    assert all(i.profile is None and i.estimated_by == "estimate"
               for i in prepared.scenario.instances)
    assert prepared.estimated == {"p": "estimate", "d": "estimate"}
    assert prepared.is_estimated("d") and prepared.source == str(project / "scenario.yaml")
    assert prepare(prepared) is prepared  # prepared once


def test_extends_paths_are_relative_to_the_base_file(project: Path, elsewhere: Path) -> None:
    child = elsewhere / "sub" / "child.yaml"
    child.parent.mkdir()
    child.write_text(yaml.safe_dump({"extends": "../../project/scenario.yaml",
                                     "overrides": {"workloads.chat.slo.tpot_ms": 70}}))
    prepared = prepare(child)
    assert prepared.scenario.workloads[0].slo.tpot_ms == 70
    assert prepared.changes == ("workloads.chat.slo.tpot_ms: 60 -> 70",)
    assert prepared.scenario.workloads[0].length_distribution.file == str(  # type: ignore
        project / "lengths" / "pairs.csv")


def test_overrides_are_applied_last_and_logged(project: Path, elsewhere: Path,
                                               caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level("INFO", logger="pdopt.scenario.prepare"):
        prepared = prepare(project / "scenario.yaml",
                           overrides={"workloads.chat.requests_per_s": 3.0})
    assert prepared.scenario.workloads[0].rate_requests_per_s == pytest.approx(3.0)
    assert "workloads.chat.requests_per_s: 2 -> 3" in caplog.text
    with pytest.raises(ScenarioError, match=r"--set workloads\.nope"):
        prepare(project / "scenario.yaml", overrides={"workloads.nope.requests_per_s": 3.0})


def test_set_values_with_paths_are_read_from_the_working_directory(elsewhere: Path) -> None:
    value = absolutize_value("workloads.chat.length_distribution.file", "x.csv", elsewhere)
    assert value == str(elsewhere / "x.csv")
    assert absolutize_value("instances.p.profile.estimate.model", "llama-3.1-70b",
                            elsewhere) == "llama-3.1-70b"  # a bundled name is not a path


@pytest.mark.parametrize("command", ["solve", "simulate", "verify", "ratio", "check"])
def test_every_command_reads_relative_paths_from_another_folder(
        project: Path, elsewhere: Path, command: str) -> None:
    args = [command, str(project / "scenario.yaml")]
    if command in ("simulate", "verify"):
        args += ["--duration", "60", "--warmup", "10", "--cooldown", "30"]
    if command == "verify":
        args += ["--no-search"]
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 0, (result.output, result.stderr if result.stderr_bytes else "")


def test_batch_reads_relative_paths_from_another_folder(project: Path, elsewhere: Path) -> None:
    result = CliRunner().invoke(main, ["batch", str(project / "scenario.yaml"),
                                       "-o", str(elsewhere / "out"),
                                       "--jobs", "1"])
    assert result.exit_code == 0, result.output
    rows = [json.loads(line) for line in
            (elsewhere / "out" / "summary.jsonl").read_text().splitlines()]
    assert [r["status"] for r in rows] == ["optimal"]


def test_estimated_prefill_covers_the_length_distribution(project: Path, elsewhere: Path
                                                          ) -> None:
    prepared = prepare(project / "scenario.yaml")
    table = prepared.scenario.instance("p").prefill_tokens_per_s
    assert isinstance(table, dict)
    # empirical lengths 500..1500 scaled to the mean 1000 (the file's mean is 1000): 500..1500
    assert min(table) == 500 and max(table) == 1500 and 1000 in table


def test_lognormal_range_and_grid() -> None:
    data = copy.deepcopy(ESTIMATED)
    data["workloads"][0]["length_distribution"] = {"kind": "lognormal", "input_cv": 1.0,
                                                   "output_cv": 0.5}
    workload = scenario_from_data(data).workloads[0]
    shortest, longest = input_length_range(workload)
    # sigma^2 = ln 2, mu = ln 1000 - ln(2)/2; z(1 - 1e-12) = 7.0345 (normal quantile)
    sigma = math.sqrt(math.log(2.0))
    expected = math.exp(math.log(1000) - math.log(2) / 2 + 7.034483825 * sigma)
    assert shortest == 1 and longest == pytest.approx(expected, rel=1e-4)
    grid = log_grid(1, 1000)
    assert grid[0] == 1 and grid[-1] == 1000 and grid == sorted(set(grid))
    # 8 points per decade: neighbours at most 10^(1/8) = 1.334 apart (rounded to integers)
    assert all(b / a <= 1.334 + 1 / a for a, b in zip(grid, grid[1:], strict=False))
    assert 20 <= len(grid) <= 25
    assert log_grid(7, 7) == [7]


def test_simulating_an_estimated_plan_with_lognormal_lengths_needs_no_extrapolation(
        project: Path, elsewhere: Path) -> None:
    data = yaml.safe_load((project / "scenario.yaml").read_text())
    data["workloads"][0]["length_distribution"] = {"kind": "lognormal", "input_cv": 1.0,
                                                   "output_cv": 1.0}
    (project / "lognormal.yaml").write_text(yaml.safe_dump(data))
    result = CliRunner().invoke(main, ["simulate", str(project / "lognormal.yaml"),
                                       "--duration", "120", "--format", "json"])
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["simulated_requests"] > 100


def test_legacy_estimate_sources_are_flagged() -> None:
    block = {"name": "p", "model": "m", "role": "prefill", "gpu": "H200", "gpus_per_instance": 1,
             "prefill_tokens_per_s": 1000.0, "source": "estimate pdopt m on 1 x H200, ..."}
    assert Instance.model_validate(block).estimated_by == "estimate"
    measured = dict(block, source="vllm bench serve, 2026-01-05")
    assert Instance.model_validate(measured).estimated_by is None


def test_a_scenario_object_is_prepared_without_a_file(paper_data: dict[str, Any]) -> None:
    prepared = prepare(scenario_from_data(paper_data))
    assert isinstance(prepared, PreparedScenario) and prepared.source is None
    assert prepared.estimated == {}
