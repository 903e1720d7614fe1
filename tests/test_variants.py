"""extends / overrides / sweep (pdopt.scenario.variants): pure data, no solver."""

from __future__ import annotations

import copy
import json
import logging
import math
from pathlib import Path
from typing import Any

import pytest
import yaml
from click.testing import CliRunner

from pdopt.cli import main
from pdopt.scenario.loading import load_scenario, scenario_from_data
from pdopt.scenario.problems import ScenarioError
from pdopt.scenario.variants import (
    deep_merge,
    expand_file,
    format_value,
    parse_path,
    parse_sweep,
    read_with_extends,
    set_path,
)


def write(path: Path, data: dict[str, Any] | str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(data if isinstance(data, str) else yaml.safe_dump(data, sort_keys=False))
    return path


@pytest.fixture
def base(tmp_path: Path, paper_data: dict[str, Any]) -> Path:
    return write(tmp_path / "fleets" / "base.yaml", paper_data)


# --- deep merge and extends ---------------------------------------------------------------------


def test_deep_merge_merges_mappings_replaces_lists_and_null_removes() -> None:
    base = {"a": {"x": 1, "y": {"p": 1, "q": 2}}, "l": [1, 2, 3], "k": 5, "gone": 1}
    child = {"a": {"y": {"q": 20}, "z": 3}, "l": [9], "gone": None, "new": {"n": 1}}
    assert deep_merge(base, child) == {
        "a": {"x": 1, "y": {"p": 1, "q": 20}, "z": 3}, "l": [9], "k": 5, "new": {"n": 1}}
    assert base["a"]["y"] == {"p": 1, "q": 2}  # the inputs are not modified


def test_extends_relative_to_the_child_file(tmp_path: Path, base: Path) -> None:
    child = write(tmp_path / "variants" / "cheap.yaml", {
        "extends": "../fleets/base.yaml", "name": "cheap",
        "gpus": {"H200": {"cost_per_hour": 2.5}}})
    scenario = load_scenario(child)
    assert scenario.name == "cheap"
    assert scenario.gpus["H200"].cost_per_hour == 2.5
    assert scenario.gpus["H200"].memory_gib == 141  # merged from the base, not replaced
    assert [w.name for w in scenario.workloads] == ["chat"]


def test_extends_chain_and_list_replacement(tmp_path: Path, base: Path,
                                            paper_data: dict[str, Any]) -> None:
    mid = write(tmp_path / "fleets" / "mid.yaml", {"extends": "base.yaml", "budget_per_hour": 900})
    workload = dict(paper_data["workloads"][0], name="batch", tokens_per_minute=1e6)
    leaf = write(tmp_path / "leaf.json", json.dumps({"extends": "fleets/mid.yaml",
                                                     "workloads": [workload]}))
    data = read_with_extends(leaf)
    assert data["budget_per_hour"] == 900
    assert [w["name"] for w in data["workloads"]] == ["batch"]  # lists are replaced whole
    assert "extends" not in data
    assert mid.exists()


def test_extends_cycle_is_an_error_naming_the_files(tmp_path: Path) -> None:
    write(tmp_path / "a.yaml", {"extends": "b.yaml", "name": "a"})
    write(tmp_path / "b.yaml", {"extends": "a.yaml", "name": "b"})
    with pytest.raises(ScenarioError) as err:
        load_scenario(tmp_path / "a.yaml")
    text = str(err.value)
    assert "extends: cycle:" in text and "a.yaml ->" in text and "b.yaml" in text


def test_extends_self_and_missing_base_and_bad_value(tmp_path: Path) -> None:
    write(tmp_path / "self.yaml", {"extends": "self.yaml"})
    write(tmp_path / "missing.yaml", {"extends": "nowhere.yaml"})
    write(tmp_path / "number.yaml", {"extends": 3})
    with pytest.raises(ScenarioError, match="cycle"):
        load_scenario(tmp_path / "self.yaml")
    with pytest.raises(ScenarioError, match=r"missing.yaml: extends: base file not found: .*nowh"):
        load_scenario(tmp_path / "missing.yaml")
    with pytest.raises(ScenarioError, match="extends: must be the path"):
        load_scenario(tmp_path / "number.yaml")


def test_validation_errors_after_merge_name_the_child_file(tmp_path: Path, base: Path) -> None:
    child = write(tmp_path / "bad.yaml", {"extends": "fleets/base.yaml",
                                          "gpus": {"H200": {"cost_per_hour": -1}}})
    with pytest.raises(ScenarioError) as err:
        load_scenario(child)
    assert err.value.lines()[0].startswith(f"{child}: gpus.H200.cost_per_hour:")


# --- dotted paths and overrides -----------------------------------------------------------------


def test_parse_path_forms() -> None:
    assert parse_path("workloads.chat.slo.tpot_ms") == ("workloads", "chat", "slo", "tpot_ms")
    assert parse_path("models[deepseek-v3.1].weight_gib") == ("models", "deepseek-v3.1",
                                                              "weight_gib")
    assert parse_path("workloads.*.slo") == ("workloads", "*", "slo")
    for bad in ("", "a..b", ".a", "a.", "a[b", "a]b"):
        with pytest.raises(ValueError, match="not a dotted path"):
            parse_path(bad)


def test_set_path_by_name_wildcard_index_and_new_keys(paper_data: dict[str, Any]) -> None:
    paper_data["workloads"].append(dict(copy.deepcopy(paper_data["workloads"][0]), name="batch"))
    assert set_path(paper_data, "workloads.batch.slo.tpot_ms", 30) == [
        "workloads.batch.slo.tpot_ms: 20 -> 30"]
    assert paper_data["workloads"][0]["slo"]["tpot_ms"] == 20
    changes = set_path(paper_data, "workloads.*.input_tokens", 4096)
    assert changes == ["workloads.chat.input_tokens: 6144 -> 4096",
                       "workloads.batch.input_tokens: 6144 -> 4096"]
    assert set_path(paper_data, "gpus.H200.count", 64) == ["gpus.H200.count: (absent) -> 64"]
    set_path(paper_data, "options.time_limit_s", 5)  # a missing mapping on the way is created
    assert paper_data["options"] == {"time_limit_s": 5}
    set_path(paper_data, "instances.1.tpot_ms_by_batch.70", 28.5)  # list index, int-keyed table
    assert paper_data["instances"][1]["tpot_ms_by_batch"][70] == 28.5
    set_path(paper_data, "instances.ds-decode-8xh200.tpot_ms_by_batch.10", 12.0)
    assert 10 in paper_data["instances"][1]["tpot_ms_by_batch"]
    assert "10" not in paper_data["instances"][1]["tpot_ms_by_batch"]


def test_set_path_errors_say_what_is_there(paper_data: dict[str, Any]) -> None:
    with pytest.raises(ValueError, match=r"no item named 'code' in workloads \(it has: chat\)"):
        set_path(paper_data, "workloads.code.slo.tpot_ms", 30)
    with pytest.raises(ValueError, match="is a value, not a mapping"):
        set_path(paper_data, "name.first", "x")


def test_overrides_apply_after_merge_and_are_recorded(tmp_path: Path, base: Path,
                                                      caplog: pytest.LogCaptureFixture) -> None:
    child = write(tmp_path / "o.yaml", {"extends": "fleets/base.yaml", "overrides": {
        "workloads.chat.tokens_per_minute": 6e6, "gpus.H200.cost_per_hour": 3.5}})
    with caplog.at_level(logging.INFO, logger="pdopt.scenario.variants"):
        [variant] = expand_file(child)
    assert caplog.messages == [f"{child}: workloads.chat.tokens_per_minute: 5000000 -> 6e6",
                               f"{child}: gpus.H200.cost_per_hour: 3.99 -> 3.5"]
    assert variant.id == "o" and variant.params == {}
    assert variant.changes == ["workloads.chat.tokens_per_minute: 5000000 -> 6e6",
                               "gpus.H200.cost_per_hour: 3.99 -> 3.5"]
    scenario = load_scenario(child)
    assert scenario.workloads[0].tokens_per_minute == 6e6


def test_two_keys_reaching_one_value_are_an_error(tmp_path: Path, base: Path) -> None:
    child = write(tmp_path / "c.yaml", {
        "extends": "fleets/base.yaml",
        "overrides": {"workloads.chat.slo.tpot_ms": 25},
        "sweep": {"workloads.*.slo.tpot_ms": [15, 20]}})
    with pytest.raises(ScenarioError, match=r"sweep.workloads.\*.slo.tpot_ms: sets "
                                            r"workloads.chat.slo.tpot_ms, which overrides"):
        expand_file(child)


def test_unknown_item_in_a_sweep_key_fails_the_file(tmp_path: Path, base: Path) -> None:
    child = write(tmp_path / "u.yaml", {"extends": "fleets/base.yaml",
                                        "sweep": {"gpus.B200.cost_per_hour": [4, 5],
                                                  "workloads.code.slo.tpot_ms": [1]}})
    with pytest.raises(ScenarioError) as err:
        expand_file(child)
    assert err.value.lines() == [
        f"{child}: sweep.workloads.code.slo.tpot_ms: no item named 'code' in workloads "
        "(it has: chat)"]


# --- sweeps -------------------------------------------------------------------------------------


def test_sweep_is_the_cartesian_product_in_file_order(tmp_path: Path, base: Path) -> None:
    sweep = write(tmp_path / "fleet.yaml", {
        "extends": "fleets/base.yaml",
        "sweep": {"workloads.*.slo.tpot_ms": [20, 25],
                  "workloads.chat.tokens_per_minute": {"values": ["2e6", "4.5e6", 8000000],
                                                       "label": "rate"}}})
    variants = expand_file(sweep)
    assert [v.id for v in variants] == [
        "fleet[tpot_ms=20,rate=2e6]", "fleet[tpot_ms=20,rate=4.5e6]",
        "fleet[tpot_ms=20,rate=8000000]", "fleet[tpot_ms=25,rate=2e6]",
        "fleet[tpot_ms=25,rate=4.5e6]", "fleet[tpot_ms=25,rate=8000000]"]
    assert variants[1].params == {"tpot_ms": 20, "rate": 4.5e6}
    assert isinstance(variants[0].params["rate"], float)  # YAML 1.1 reads 2e6 as a string
    assert variants[4].data["workloads"][0]["slo"]["tpot_ms"] == 25
    assert variants[4].data["workloads"][0]["tokens_per_minute"] == 4.5e6
    assert variants[4].data["name"] == "paper-deepseek-v31-h200[tpot_ms=25,rate=4.5e6]"
    assert variants[0].data["workloads"][0]["slo"]["tpot_ms"] == 20  # variants do not share data
    for v in variants:
        scenario_from_data(v.data, v.source)
    assert [v.id for v in expand_file(sweep)] == [v.id for v in variants]  # stable


def test_ranges_linear_and_log_with_exact_ends() -> None:
    [lin, log] = parse_sweep({"a.x": {"start": 10, "stop": 30, "num": 5},
                              "b.y": {"start": 1e6, "stop": 1e8, "num": 3, "scale": "log"}})
    assert lin.values == [10, 15, 20, 25, 30] and lin.texts == ["10", "15", "20", "25", "30"]
    assert log.values[0] == 1e6 and log.values[2] == 1e8
    assert math.isclose(log.values[1], 1e7) and log.texts == ["1e6", "1e7", "1e8"]
    [one] = parse_sweep({"a.x": {"start": 3, "stop": 9, "num": 1}})
    assert one.values == [3]


def test_labels_grow_until_unique_and_explicit_labels_must_be_unique() -> None:
    axes = parse_sweep({"gpus.H200.cost_per_hour": [3], "gpus.B200.cost_per_hour": [5],
                        "workloads.*.slo.tpot_ms": [20]})
    assert [a.label for a in axes] == ["H200.cost_per_hour", "B200.cost_per_hour", "tpot_ms"]
    with pytest.raises(ScenarioError, match="label 'x' is used by another axis"):
        parse_sweep({"a.b": {"values": [1], "label": "x"}, "c.d": {"values": [2], "label": "x"}})


def test_close_values_get_more_digits_and_duplicates_are_errors() -> None:
    [axis] = parse_sweep({"a.x": [1.0000001, 1.0000002]})
    assert axis.texts == ["1.0000001", "1.0000002"]
    with pytest.raises(ScenarioError, match="lists the same value twice"):
        parse_sweep({"a.x": [2, 2.0]})


@pytest.mark.parametrize("spec, message", [
    ({"values": [1], "start": 1, "stop": 2, "num": 2}, "give values or start/stop/num, not both"),
    ({"start": 1, "stop": 2}, "give values, or all of start, stop and num"),
    ({"start": 0, "stop": 2, "num": 3, "scale": "log"}, "a log range needs start > 0"),
    ({"values": []}, "must list at least one value"),
    ({"start": 1, "stop": 2, "num": 0}, "greater than or equal to 1"),
    ({"values": [1], "label": "a b"}, "label: 'a b' may use"),
    ({"values": [1], "step": 2}, "Extra inputs are not permitted"),
    (3, "must be a list of values or a mapping"),
])
def test_bad_sweep_axes(spec: Any, message: str) -> None:
    with pytest.raises(ScenarioError, match=message) as err:
        parse_sweep({"workloads.chat.slo.tpot_ms": spec})
    assert err.value.problems[0].location == "sweep.workloads.chat.slo.tpot_ms"


def test_format_value() -> None:
    assert [format_value(v) for v in (20, 20.0, 2e6, 1.5e-3, 3.99, 0.5, True, "mm1", "a/b")] == [
        "20", "20", "2e6", "0.0015", "3.99", "0.5", "true", "mm1", "a_b"]


def test_single_scenario_commands_point_sweeps_to_batch(tmp_path: Path, base: Path) -> None:
    sweep = write(tmp_path / "s.yaml", {"extends": "fleets/base.yaml",
                                        "sweep": {"workloads.chat.slo.tpot_ms": [15, 20, 25]}})
    result = CliRunner().invoke(main, ["check", str(sweep), str(base)])
    assert result.exit_code == 2
    assert result.stdout == f"{base}: ok\n"
    assert result.stderr == (f"{sweep}: sweep: this file is a sweep of 3 variants; run it with "
                             f"`pdopt batch {sweep}` (or `pdopt batch --dry-run` to check every "
                             "variant)\n")
