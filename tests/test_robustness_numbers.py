"""Absurd numbers are refused with one line naming the file and the field (issue 10, section 4):
every number of the scenario format has a documented range (pdopt/scenario/ranges.py,
docs/scenario-format.md#ranges), and numeric flags are usage errors outside theirs."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import pytest
import yaml
from click.testing import CliRunner, Result

from pdopt.cli import main
from pdopt.scenario import ranges
from pdopt.scenario.loading import scenario_from_data
from pdopt.scenario.problems import ScenarioError
from pdopt.scenario.schema import Scenario

ROOT = Path(__file__).resolve().parent.parent


def run(*args: str) -> Result:
    return CliRunner().invoke(main, list(args))


def one_line(result: Result) -> str:
    """The single line of a clean refusal (exit 2, no traceback)."""
    assert result.exit_code == 2, result.output
    assert result.exception is None or isinstance(result.exception, SystemExit), result.exception
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert len(lines) == 1, lines
    assert "Traceback" not in result.output
    return lines[0]


def write(tmp_path: Path, data: dict[str, Any], name: str = "s.yaml") -> Path:
    path = tmp_path / name
    path.write_text(yaml.safe_dump(data, sort_keys=False), encoding="utf-8")
    return path


def set_at(data: dict[str, Any], dotted: str, value: Any) -> None:
    node: Any = data
    parts = dotted.split(".")
    for part in parts[:-1]:
        node = node[int(part)] if isinstance(node, list) else node.setdefault(part, {})
    node[parts[-1]] = value


PROBES: list[tuple[dict[str, Any], str, str]] = [
    ({"requests_per_s": 1e20}, "workloads[0].requests_per_s", "must be <= 1e6"),
    ({"requests_per_s": 1e-9}, "workloads[0].requests_per_s", "between 0.001 and 1e6"),
    ({"tokens_per_minute": 1e308}, "workloads[0].tokens_per_minute", "must be <= 1.2e15"),
    ({"tokens_per_minute": 1e-3}, "workloads[0].tokens_per_minute", "requests/s"),
    ({"tokens_per_s": 1e14}, "workloads[0].tokens_per_s", "must be <= 2e13"),
    ({"input_tokens": 10**400}, "workloads[0].input_tokens", "must be <= 10000000"),
    ({"output_tokens": 10**400}, "workloads[0].output_tokens", "must be <= 10000000"),
]


@pytest.mark.parametrize(("change", "field", "says"), PROBES)
def test_absurd_workload_numbers_are_refused(tmp_path: Path, paper_data: dict[str, Any],
                                             change: dict[str, Any], field: str,
                                             says: str) -> None:
    workload = paper_data["workloads"][0]
    if any(k.endswith("per_s") or k.endswith("per_minute") for k in change):
        for rate in ("requests_per_s", "tokens_per_s", "tokens_per_minute"):
            workload.pop(rate, None)
    workload.update(change)
    path = write(tmp_path, paper_data)
    line = one_line(run("check", str(path)))
    assert line.startswith(f"{path}: {field}: ") and says in line, line
    # solve refuses it the same way (it used to print "optimal, $0.00/hour, 0 GPUs")
    assert one_line(run("solve", str(path))) == line


@pytest.mark.parametrize(("where", "value", "says"), [
    ("gpus.H200.cost_per_hour", 1e20, "must be <= 1e6"),
    ("gpus.H200.cost_per_hour", 1e-300, "must be >= 0.0001"),
    ("gpus.H200.memory_gib", 1e300, "must be <= 100000"),
    ("gpus.H200.count", 10**30, "must be <= 10000000"),
    ("instances.0.prefill_tokens_per_s", 1e300, "must be <= 1e9"),
    ("instances.0.prefill_tokens_per_s", 1e-300, "must be >= 0.001"),
    ("instances.0.gpus_per_instance", 10**12, "must be <= 100000"),
    ("instances.1.tpot_ms_by_batch", {10: 1e-300}, "must be >= 0.001"),
    ("instances.1.tpot_ms_by_batch", {10**20: 5.0}, "key must be <= 1000000"),
    ("instances.1.measured_at", {"input_tokens": 10**400, "output_tokens": 1}, "<= 10000000"),
    ("instances.1.max_count", 10**9, "must be <= 1000000"),
    ("workloads.0.slo.ttft_ms", 1e300, "must be <= 1e8"),
    ("workloads.0.slo.tpot_ms", 1e-300, "must be >= 0.001"),
    ("workloads.0.ttft_overhead_ms", 1e300, "must be <= 1e8"),
    ("workloads.0.service_scv", 1e300, "must be <= 10000"),
    ("workloads.0.headroom", 1e9, "must be <= 100"),
    ("options.time_limit_s", 1e300, "must be <= 604800"),
    ("budget_per_hour", 1e300, "must be <= 1e13"),
])
def test_every_kind_of_number_has_a_range(tmp_path: Path, paper_data: dict[str, Any], where: str,
                                          value: Any, says: str) -> None:
    if where.endswith("service_scv"):
        paper_data["workloads"][0]["queue"] = "mg1"
    set_at(paper_data, where, value)
    path = write(tmp_path, paper_data)
    line = one_line(run("check", str(path)))
    assert line.startswith(f"{path}: ") and says in line, line


def test_kv_bytes_per_token_range(tmp_path: Path, paper_data: dict[str, Any]) -> None:
    paper_data["models"] = {"deepseek-v3.1": {"kv_bytes_per_token": 1e-300}}
    path = write(tmp_path, paper_data)
    assert one_line(run("check", str(path))) == (
        f"{path}: models.deepseek-v3.1.kv_bytes_per_token: must be >= 1 (one byte)")
    paper_data["models"] = {"deepseek-v3.1": {"layers": 10_000, "kv_heads": 10_000,
                                              "head_dim": 100_000}}
    path = write(tmp_path, paper_data)
    line = one_line(run("check", str(path)))
    assert line.startswith(f"{path}: models.deepseek-v3.1: 2 x layers x kv_heads x head_dim")
    assert "outside 1..1e9" in line


@pytest.mark.parametrize("suffix", [".yaml", ".json", ".toml"])
def test_five_thousand_digit_integers_are_a_clean_problem(tmp_path: Path, suffix: str) -> None:
    digits = "1" * 5000
    text = {".yaml": f"name: x\ngpus: {{H200: {{count: {digits}}}}}\n",
            ".json": f'{{"name": "x", "gpus": {{"H200": {{"count": {digits}}}}}}}',
            ".toml": f'name = "x"\n[gpus.H200]\ncount = {digits}\n'}[suffix]
    path = tmp_path / f"s{suffix}"
    path.write_text(text, encoding="utf-8")
    line = one_line(run("check", str(path)))
    assert line.startswith(f"{path}: not valid ") and "more than 4300 digits" in line


@pytest.mark.parametrize(("hex_digits", "says"), [
    (1000, "workloads[0].input_tokens: must be <= 10000000 (see docs/scenario-format.md#ranges)"),
    (5000, "not valid YAML: a number has more than 4300 digits (see "
           "docs/scenario-format.md#ranges)"),
])
def test_a_hexadecimal_integer_beyond_any_range(tmp_path: Path, paper_data: dict[str, Any],
                                                hex_digits: int, says: str) -> None:
    """YAML's 0x... integers are not subject to Python's digit limit: one that repr() could show
    reaches the schema's range; a longer one (repr() and every message would fail) is refused as
    the file is read, wherever it is (here in `overrides:`)."""
    text = yaml.safe_dump(paper_data, sort_keys=False)
    at = text.rindex("input_tokens: 6144")  # the workload's, after the instance's measured_at
    text = text[:at] + "input_tokens: 0x" + "f" * hex_digits + text[at + len("input_tokens: 6144"):]
    path = tmp_path / "hex.yaml"
    path.write_text(text, encoding="utf-8")
    assert one_line(run("check", str(path))) == f"{path}: {says}"
    overrides = tmp_path / "overrides.yaml"
    overrides.write_text(yaml.safe_dump(paper_data, sort_keys=False) + "overrides:\n"
                         "  workloads.chat.input_tokens: 0x" + "f" * 5000 + "\n",
                         encoding="utf-8")
    assert one_line(run("check", str(overrides))).startswith(f"{overrides}: not valid YAML: a "
                                                            "number has more than 4300 digits")


def test_a_huge_integer_where_a_float_belongs(paper_data: dict[str, Any]) -> None:
    paper_data["workloads"][0]["ttft_overhead_ms"] = 10**400
    with pytest.raises(ScenarioError) as info:
        scenario_from_data(paper_data)
    [problem] = info.value.problems
    assert problem.location == "workloads[0].ttft_overhead_ms"
    assert problem.message.startswith("must be a number within its range, got an integer of "
                                      "about 401 digits")


def test_profile_blocks_have_ranges(paper_data: dict[str, Any]) -> None:
    paper_data["instances"][1] = {
        "name": "est", "model": "deepseek-v3.1", "role": "decode", "gpu": "H200",
        "gpus_per_instance": 8,
        "profile": {"estimate": {"model": "deepseek-v3", "max_batch": 10**12,
                                 "input_tokens": [10**9], "tokens_per_step": 1e300}}}
    with pytest.raises(ScenarioError) as info:
        scenario_from_data(paper_data)
    where = {p.location for p in info.value.problems}
    assert {"instances[1].profile.estimate.max_batch",
            "instances[1].profile.estimate.input_tokens[0]",
            "instances[1].profile.estimate.tokens_per_step"} <= where


def test_every_number_of_the_schema_is_bounded_above() -> None:
    """The JSON Schema of every numeric field (and of table keys and values) has a maximum."""
    schema = Scenario.model_json_schema()
    unbounded: list[str] = []

    def walk(node: Any, where: str) -> None:
        if isinstance(node, dict):
            if node.get("type") in ("number", "integer") and "maximum" not in node \
                    and "exclusiveMaximum" not in node:
                unbounded.append(where)
            for key, value in node.items():
                walk(value, f"{where}.{key}")
        elif isinstance(node, list):
            for k, value in enumerate(node):
                walk(value, f"{where}[{k}]")

    walk(schema, "")
    assert not unbounded, unbounded


def test_ranges_are_documented(project_root: Path) -> None:
    doc = (project_root / "docs" / "scenario-format.md").read_text(encoding="utf-8")
    assert "## Ranges" in doc
    for name in dir(ranges):
        if name.startswith(("MAX_", "MIN_")):
            value = getattr(ranges, name)
            assert ranges.format_number(value) in doc, f"{name} = {value} is not in the docs"


# --------------------------------------------------------------------------- flags

BAD_FLAGS = [
    ("--time-limit", "nan"), ("--time-limit", "inf"), ("--time-limit", "-1"),
    ("--time-limit", "1e300"), ("--mip-gap", "nan"), ("--mip-gap", "-0.1"), ("--mip-gap", "1"),
]
SIM_FLAGS = [
    ("--seed", "-1"), ("--seed", str(2**64)), ("--duration", "1e9"), ("--duration", "inf"),
    ("--duration", "nan"), ("--duration", "-5"), ("--duration", "0"), ("--warmup", "nan"),
    ("--warmup", "-1"), ("--cooldown", "inf"), ("--rate-scale", "nan"), ("--rate-scale", "inf"),
    ("--rate-scale", "1e9"), ("--rate-scale", "0"),
]


def _usage_error(result: Result, flag: str) -> None:
    """Exit 2 and one stderr line, `pdopt COMMAND: error: ...`, naming the flag."""
    assert result.exit_code == 2, result.output
    assert "Traceback" not in result.output
    errors = result.stderr.splitlines()
    assert len(errors) == 1 and f"'{flag}'" in errors[0], result.output
    assert errors[0].startswith("pdopt ") and ": error: " in errors[0]


@pytest.mark.parametrize("command", ["solve", "batch"])
@pytest.mark.parametrize(("flag", "value"), BAD_FLAGS)
def test_solver_flags_are_finite_and_in_range(paper_scenario_path: Path, command: str, flag: str,
                                              value: str) -> None:
    extra = ["--dry-run"] if command == "batch" else []
    _usage_error(run(command, str(paper_scenario_path), *extra, flag, value), flag)


@pytest.mark.parametrize("command", ["simulate", "verify"])
@pytest.mark.parametrize(("flag", "value"), SIM_FLAGS)
def test_simulation_flags_are_finite_and_in_range(paper_scenario_path: Path, command: str,
                                                  flag: str, value: str) -> None:
    _usage_error(run(command, str(paper_scenario_path), flag, value), flag)


@pytest.mark.parametrize(("flag", "value"), [
    ("--ttft-percentile", "nan"), ("--requests-per-s", "nan"), ("--requests-per-s", "1e20"),
    ("--input-tokens", "inf"), ("--ttft-ms", "nan"), ("--service-scv", "1e300"),
    ("--prefill-tokens-per-s", "nan"), ("--ttft-overhead-ms", "inf"),
])
def test_ratio_flags_are_finite_and_in_range(flag: str, value: str) -> None:
    _usage_error(run("ratio", flag, value), flag)


def test_largest_accepted_values_still_work(tmp_path: Path, paper_data: dict[str, Any]) -> None:
    """The bounds themselves are valid values (a range, not an off-by-one)."""
    workload = paper_data["workloads"][0]
    workload.pop("tokens_per_minute")
    workload["requests_per_s"] = ranges.MIN_REQUESTS_PER_S
    paper_data["gpus"]["H200"]["cost_per_hour"] = ranges.MAX_COST_PER_HOUR
    scenario = scenario_from_data(json.loads(json.dumps(paper_data)))
    assert math.isclose(scenario.workloads[0].rate_requests_per_s, 1e-3)


# --------------------------------------------------------------------------- at the bounds

AT_THE_BOUNDS: list[tuple[str, Any]] = [
    ("gpus.H200.cost_per_hour", ranges.MIN_COST_PER_HOUR),
    ("gpus.H200.cost_per_hour", ranges.MAX_COST_PER_HOUR),
    ("gpus.H200.memory_gib", ranges.MIN_MEMORY_GIB),
    ("gpus.H200.memory_gib", ranges.MAX_MEMORY_GIB),
    ("gpus.H200.count", 0),
    ("gpus.H200.count", ranges.MAX_GPU_COUNT),
    ("instances.0.prefill_tokens_per_s", ranges.MIN_INSTANCE_TOKENS_PER_S),
    ("instances.0.prefill_tokens_per_s", ranges.MAX_INSTANCE_TOKENS_PER_S),
    ("instances.0.gpus_per_instance", ranges.MAX_GPUS_PER_INSTANCE),
    ("instances.1.tpot_ms_by_batch", {1: ranges.MIN_MS}),
    ("instances.1.tpot_ms_by_batch", {1: ranges.MIN_MS, ranges.MAX_BATCH: ranges.MAX_MS}),
    ("instances.1.kv_cache_tokens", 1),
    ("instances.1.kv_cache_tokens", ranges.MAX_KV_CACHE_TOKENS),
    ("instances.0.min_count", ranges.MAX_INSTANCE_COUNT),
    ("instances.1.max_count", 0),
    ("workloads.0.input_tokens", 1),
    ("workloads.0.input_tokens", ranges.MAX_TOKENS),
    ("workloads.0.output_tokens", ranges.MAX_TOKENS),
    ("workloads.0.slo.ttft_ms", ranges.MIN_MS),
    ("workloads.0.slo.ttft_ms", ranges.MAX_MS),
    ("workloads.0.slo.tpot_ms", ranges.MIN_MS),
    ("workloads.0.ttft_overhead_ms", ranges.MAX_MS),
    ("workloads.0.headroom", ranges.MAX_HEADROOM),
    ("models", {"deepseek-v3.1": {"kv_bytes_per_token": ranges.MIN_KV_BYTES_PER_TOKEN,
                                  "weight_gib": ranges.MAX_WEIGHT_GIB}}),
    ("models", {"deepseek-v3.1": {"kv_bytes_per_token": ranges.MAX_KV_BYTES_PER_TOKEN}}),
    ("budget_per_hour", ranges.MAX_BUDGET_PER_HOUR),
    ("workloads.0.requests_per_s", ranges.MIN_REQUESTS_PER_S),
    ("workloads.0.requests_per_s", ranges.MAX_REQUESTS_PER_S),
]


@pytest.mark.parametrize(("where", "value"), AT_THE_BOUNDS)
def test_numbers_at_their_bounds_solve_cleanly(paper_data: dict[str, Any], where: str,
                                               value: Any) -> None:
    """A value at either end of its range gives a plan (at least one instance per role) or a
    diagnosed infeasibility, never a traceback or a plan of nothing."""
    from pdopt.errors import PdoptError
    from pdopt.optimize import solve

    if where.startswith("workloads.0.requests_per_s"):
        paper_data["workloads"][0].pop("tokens_per_minute")
    set_at(paper_data, where, value)
    try:
        plan = solve(scenario_from_data(paper_data), time_limit_s=20)
    except PdoptError:  # an unreachable target, said in one message
        return
    if plan.has_plan:
        assert plan.cost_per_hour is not None and plan.cost_per_hour > 0
        assert {p.role for p in plan.pools if p.count > 0} == {"prefill", "decode"}
    else:
        assert plan.diagnosis, plan.status


@pytest.mark.parametrize("table", ["1:1e-300", "10:12.8,1000000000000:20", "10:1e300"])
def test_ratio_tpot_table_flag_has_the_ranges(table: str) -> None:
    result = run("ratio", "--input-tokens", "6144", "--output-tokens", "512", "--ttft-ms", "2000",
                 "--tpot-ms", "20", "--prefill-tokens-per-s", "28309", "--requests-per-s", "10",
                 "--tpot-table", table)
    assert result.exit_code == 2 and "Traceback" not in result.output
    assert "batch must be at most 1000000 and TPOT between 0.001 and 1e8 ms" in result.output


@pytest.mark.parametrize(("args", "flag"), [
    (["profile", "estimate", "--model", "llama-3.1-8b", "--gpu", "H100", "--lengths", "1024:256",
      "--max-batch", "1000000000000"], "--max-batch"),
    (["profile", "estimate", "--model", "llama-3.1-8b", "--gpu", "H100", "--lengths", "1024:256",
      "--tokens-per-step", "nan"], "--tokens-per-step"),
    (["profile", "estimate", "--model", "llama-3.1-8b", "--gpu", "H100", "--lengths", "1024:256",
      "--gpus", "1000000000000"], "--gpus"),
    (["profile", "import", "vllm", "x.json", "--model", "m", "--gpu", "H100", "--role", "decode",
      "--gpus-per-instance", "1000000000000"], "--gpus-per-instance"),
])
def test_profile_flags_have_the_ranges(args: list[str], flag: str) -> None:
    """These flags fill profile blocks and instance types: outside the format's ranges they are
    usage errors (they were tracebacks from the profile block's validation)."""
    _usage_error(run(*args), flag)


@pytest.mark.parametrize("command", ["simulate", "verify"])
def test_max_decode_batch_is_bounded(paper_scenario_path: Path, command: str) -> None:
    """The simulator tabulates TPOT for every batch up to the cap: 1e12 would be a list of 1e12
    floats."""
    _usage_error(run(command, str(paper_scenario_path), "--max-decode-batch", "1000000000000"),
                 "--max-decode-batch")
