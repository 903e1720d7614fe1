"""The scenario format (pdopt/scenario/schema.py, docs/scenario-format.md): fields, units, defaults
and the validation rules, each invalid kind giving one `location: message` problem."""

from __future__ import annotations

from typing import Any

import pytest

from pdopt.scenario.loading import load_scenario, scenario_from_data
from pdopt.scenario.problems import ScenarioError
from pdopt.scenario.schema import ModelSpec, Scenario


def problems(data: dict[str, Any]) -> list[str]:
    with pytest.raises(ScenarioError) as info:
        scenario_from_data(data)
    return [str(p) for p in info.value.problems]


def test_paper_scenario_loads(paper_scenario_path: Any) -> None:
    sc = load_scenario(paper_scenario_path)
    assert sc.name == "paper-deepseek-v31-h200"
    assert sc.gpus["H200"].cost_per_hour == 3.99 and sc.gpus["H200"].memory_gib == 141
    prefill, decode = sc.instances
    assert (prefill.role, prefill.prefill_tokens_per_s, prefill.gpus_per_instance) == (
        "prefill", 28309, 8)
    assert decode.decode_tables[0].context_tokens == 6400  # 6144 + 512/2 (Eq. D3)
    assert decode.extrapolation == "error"
    w = sc.workloads[0]
    assert (w.slo.ttft_ms, w.slo.tpot_ms, w.slo.ttft_percentile) == (2000, 20, None)
    assert w.ttft_overhead_ms == 100
    # defaults
    assert sc.queue_of(w) == ("auto", None)
    assert sc.routing_of(w) == "round-robin"
    assert sc.headroom_of(w) == 1.0
    assert sc.options.gpu_memory_utilization == 0.9
    assert sc.budget_per_hour is None and sc.models == {}


def test_rate_units(paper_data: dict[str, Any]) -> None:
    # R1: 5,000,000 tokens/minute = 83,333.3 tokens/s = 83,333.3 / 6656 = 12.52 requests/s
    w = scenario_from_data(paper_data).workloads[0]
    assert w.rate_tokens_per_s == pytest.approx(83333.333, rel=1e-8)
    assert w.rate_requests_per_s == pytest.approx(12.5200320, rel=1e-8)
    del paper_data["workloads"][0]["tokens_per_minute"]
    paper_data["workloads"][0]["tokens_per_s"] = 6656
    w = scenario_from_data(paper_data).workloads[0]
    assert (w.rate_requests_per_s, w.rate_tokens_per_s) == (1.0, 6656.0)


def test_queue_and_headroom_fall_back_to_options(paper_data: dict[str, Any]) -> None:
    paper_data["options"] = {"queue": "mg1", "service_scv": 0.3, "headroom": 1.5}
    sc = scenario_from_data(paper_data)
    assert sc.queue_of(sc.workloads[0]) == ("mg1", 0.3)
    assert sc.headroom_of(sc.workloads[0]) == 1.5
    paper_data["workloads"][0].update(queue="md1", headroom=1.1)
    sc = scenario_from_data(paper_data)
    assert sc.queue_of(sc.workloads[0]) == ("md1", 0.3)
    assert sc.headroom_of(sc.workloads[0]) == 1.1


def test_kv_bytes_per_token_from_shape() -> None:
    # K1: 2 x 61 x 1 x 576 x 1 byte (fp8) = 70,272 bytes per token
    assert ModelSpec(layers=61, kv_heads=1, head_dim=576, kv_dtype="fp8").kv_bytes_per_token_total \
        == 70272
    assert ModelSpec(kv_bytes_per_token=1000).kv_bytes_per_token_total == 1000
    assert ModelSpec().kv_bytes_per_token_total is None


def test_tpot_tables_sorted_by_context(paper_data: dict[str, Any]) -> None:
    decode = paper_data["instances"][1]
    del decode["measured_at"], decode["tpot_ms_by_batch"]
    decode["tpot_tables"] = [
        {"measured_at": {"input_tokens": 8000, "output_tokens": 500}, "tpot_ms_by_batch": {8: 20}},
        {"measured_at": {"input_tokens": 1000, "output_tokens": 500}, "tpot_ms_by_batch": {8: 10}},
    ]
    tables = scenario_from_data(paper_data).instances[1].decode_tables
    assert [t.context_tokens for t in tables] == [1250, 8250]


# --- invalid scenarios: one line per problem, naming the field --------------------------------

def test_typo_is_an_unknown_field_with_a_suggestion(paper_data: dict[str, Any]) -> None:
    paper_data["workloads"][0]["slo"] = {"ttft_ms": 2000, "tpot_msx": 20}
    assert problems(paper_data) == [
        "workloads[0].slo.tpot_ms: required field is missing",
        "workloads[0].slo.tpot_msx: unknown field; did you mean 'tpot_ms'? "
        "(see docs/scenario-format.md)",
    ]


def test_unknown_top_level_field(paper_data: dict[str, Any]) -> None:
    paper_data["budget"] = 100
    assert problems(paper_data) == [
        "budget: unknown field; did you mean 'budget_per_hour'? (see docs/scenario-format.md)"
    ]


@pytest.mark.parametrize("value, message", [
    ("fast", "must be a number, got 'fast'"),
    (True, "must be a number, got true"),
    ([2000], "must be a number, got a list"),
    (None, "must be a number, got nothing (null)"),
    (float("inf"), "must be a finite number, got inf"),
    (0, "must be > 0"),
    (-5, "must be > 0"),
])
def test_wrong_ttft(paper_data: dict[str, Any], value: Any, message: str) -> None:
    paper_data["workloads"][0]["slo"]["ttft_ms"] = value
    assert problems(paper_data) == [f"workloads[0].slo.ttft_ms: {message}"]


@pytest.mark.parametrize("field, value, message", [
    ("input_tokens", 6144.5, "must be an integer, got 6144.5"),
    ("input_tokens", 0, "must be > 0"),
    ("output_tokens", "many", "must be an integer, got 'many'"),
    ("tokens_per_minute", 0, "must be > 0"),
    ("tokens_per_minute", -5, "must be > 0"),
    ("ttft_overhead_ms", -1, "must be >= 0"),
    ("queue", "mm2", "must be one of 'auto', 'mm1', 'md1' or 'mg1', got 'mm2'"),
    ("routing", "sticky", "must be one of 'round-robin', 'random' or 'least-loaded', got "
     "'sticky'"),
    ("headroom", 0.5, "must be >= 1"),
    ("name", "", "must not be empty"),
    ("slo", 5, "must be a mapping, got 5"),
])
def test_wrong_workload_fields(
    paper_data: dict[str, Any], field: str, value: Any, message: str
) -> None:
    paper_data["workloads"][0][field] = value
    assert problems(paper_data) == [f"workloads[0].{field}: {message}"]


def test_missing_fields(paper_data: dict[str, Any]) -> None:
    del paper_data["workloads"][0]["input_tokens"]
    del paper_data["instances"][0]["gpu"]
    del paper_data["gpus"]["H200"]["cost_per_hour"]
    assert problems(paper_data) == [
        "gpus.H200.cost_per_hour: required field is missing",
        "instances[0].gpu: required field is missing",
        "workloads[0].input_tokens: required field is missing",
    ]


def test_rates_exactly_one(paper_data: dict[str, Any]) -> None:
    paper_data["workloads"][0]["requests_per_s"] = 3
    assert problems(paper_data) == [
        "workloads[0]: give exactly one of requests_per_s, tokens_per_s, tokens_per_minute "
        "(got requests_per_s, tokens_per_minute)"
    ]
    del paper_data["workloads"][0]["requests_per_s"], paper_data["workloads"][0][
        "tokens_per_minute"]
    assert problems(paper_data) == [
        "workloads[0]: give exactly one of requests_per_s, tokens_per_s, tokens_per_minute"
    ]


def test_unknown_gpu(paper_data: dict[str, Any]) -> None:
    paper_data["instances"][1]["gpu"] = "H100"
    assert problems(paper_data) == [
        "instances[1].gpu: unknown GPU type 'H100' (gpus lists: H200)"
    ]


def test_model_without_prefill_or_decode(paper_data: dict[str, Any]) -> None:
    paper_data["instances"].pop(0)
    assert problems(paper_data) == [
        "workloads[0].model: no prefill instance type serves model 'deepseek-v3.1'"
    ]
    paper_data["workloads"][0]["model"] = "llama"
    assert problems(paper_data) == [
        "workloads[0].model: no prefill instance type serves model 'llama'",
        "workloads[0].model: no decode instance type serves model 'llama'",
    ]


def test_duplicate_names(paper_data: dict[str, Any]) -> None:
    paper_data["instances"].append(dict(paper_data["instances"][0]))
    paper_data["workloads"].append(dict(paper_data["workloads"][0]))
    assert problems(paper_data) == [
        "instances[2].name: duplicate instance name 'ds-prefill-8xh200' (also instances[0])",
        "workloads[1].name: duplicate workload name 'chat' (also workloads[0])",
    ]


def test_empty_lists(paper_data: dict[str, Any]) -> None:
    paper_data.update(gpus={}, instances=[], workloads=[])
    assert problems(paper_data) == [
        "gpus: must list at least one GPU type",
        "instances: must list at least one instance type",
        "workloads: must list at least one workload",
    ]


def test_non_monotone_tpot_table(paper_data: dict[str, Any]) -> None:
    paper_data["instances"][1]["tpot_ms_by_batch"][30] = 8.8
    assert problems(paper_data) == [
        "instances[1].tpot_ms_by_batch: TPOT must not decrease as batch grows "
        "(batch 20: 16.4 ms, batch 30: 8.8 ms)"
    ]


def test_non_monotone_table_in_tpot_tables(paper_data: dict[str, Any]) -> None:
    decode = paper_data["instances"][1]
    decode["tpot_tables"] = [{"tpot_ms_by_batch": {10: 12.0, 20: 11.0}}]
    del decode["measured_at"], decode["tpot_ms_by_batch"]
    assert problems(paper_data) == [
        "instances[1].tpot_tables[0].tpot_ms_by_batch: TPOT must not decrease as batch grows "
        "(batch 10: 12.0 ms, batch 20: 11.0 ms)"
    ]


def test_bad_table_entries(paper_data: dict[str, Any]) -> None:
    paper_data["instances"][1]["tpot_ms_by_batch"] = {0: 10.0, 10: -1, "x": 3}
    assert problems(paper_data) == [
        "instances[1].tpot_ms_by_batch[0]: key must be > 0",
        "instances[1].tpot_ms_by_batch[10]: must be > 0",
        "instances[1].tpot_ms_by_batch.x: key must be an integer, got 'x'",
    ]


def test_role_fields(paper_data: dict[str, Any]) -> None:
    prefill, decode = paper_data["instances"]
    prefill["tpot_ms_by_batch"] = {10: 1.0}
    decode["prefill_tokens_per_s"] = 1000
    decode["tpot_tables"] = [{"tpot_ms_by_batch": {10: 1.0}}]
    assert problems(paper_data) == [
        "instances[0].tpot_ms_by_batch: only for decode instances",
        "instances[1].prefill_tokens_per_s: only for prefill instances",
        "instances[1].tpot_tables: give either tpot_tables or tpot_ms_by_batch, not both",
    ]
    del prefill["prefill_tokens_per_s"], prefill["tpot_ms_by_batch"]
    del decode["prefill_tokens_per_s"], decode["tpot_tables"], decode["tpot_ms_by_batch"]
    assert problems(paper_data) == [
        "instances[0].prefill_tokens_per_s: required for a prefill instance",
        "instances[1].tpot_ms_by_batch: required for a decode instance",
    ]


def test_prefill_throughput_number_or_table(paper_data: dict[str, Any]) -> None:
    paper_data["instances"][0]["prefill_tokens_per_s"] = "fast"
    assert problems(paper_data) == [
        "instances[0].prefill_tokens_per_s: must be a mapping or a number, got 'fast'"
    ]
    paper_data["instances"][0]["prefill_tokens_per_s"] = -28309
    assert problems(paper_data) == ["instances[0].prefill_tokens_per_s: must be > 0"]
    paper_data["instances"][0]["prefill_tokens_per_s"] = {1000: -1}
    assert problems(paper_data) == ["instances[0].prefill_tokens_per_s[1000]: must be > 0"]
    paper_data["instances"][0]["prefill_tokens_per_s"] = {}
    assert problems(paper_data) == [
        "instances[0].prefill_tokens_per_s: table must have at least one entry"
    ]


def test_role_and_counts(paper_data: dict[str, Any]) -> None:
    paper_data["instances"][0].update(min_count=3, max_count=2)
    paper_data["instances"][1]["role"] = "decoder"
    assert problems(paper_data) == [
        "instances[0].max_count: must be >= min_count (3)",
        "instances[1].role: must be one of 'prefill' or 'decode', got 'decoder'",
    ]


def test_queue_rules(paper_data: dict[str, Any]) -> None:
    paper_data["workloads"][0]["queue"] = "mg1"
    assert problems(paper_data) == [
        "workloads[0].service_scv: required for queue mg1 (here or in options)"
    ]
    paper_data["workloads"][0].update(queue="md1")
    paper_data["workloads"][0]["slo"]["ttft_percentile"] = 90
    assert problems(paper_data) == [
        "workloads[0].slo.ttft_percentile: percentile TTFT targets need queue auto or mm1 (this "
        "workload uses md1)"
    ]
    paper_data["workloads"][0].update(queue="mm1")
    paper_data["workloads"][0]["slo"]["ttft_percentile"] = 100
    assert problems(paper_data) == ["workloads[0].slo.ttft_percentile: must be < 100"]


def test_model_facts_rules(paper_data: dict[str, Any]) -> None:
    paper_data["models"] = {
        "deepseek-v3.1": {"kv_bytes_per_token": 1000, "layers": 61, "allowed_gpus": ["B200"]},
        "llama": {"layers": 32},
    }
    assert problems(paper_data) == [
        "models.deepseek-v3.1: give kv_bytes_per_token or layers/kv_heads/head_dim, not both",
        "models.llama: layers, kv_heads and head_dim must be given together",
    ]
    paper_data["models"] = {"deepseek-v3.1": {"allowed_gpus": ["B200"]}, "llama": {}}
    assert problems(paper_data) == [
        "models.deepseek-v3.1.allowed_gpus[0]: unknown GPU type 'B200'",
        "models.llama: no instance type serves model 'llama'",
    ]


def test_kv_link_gpus(paper_data: dict[str, Any]) -> None:
    paper_data["kv_transfer"] = {"links": [{"prefill_gpu": "H200", "decode_gpu": "A100",
                                            "gbit_per_s": 0}]}
    assert problems(paper_data) == ["kv_transfer.links[0].gbit_per_s: must be > 0"]
    paper_data["kv_transfer"]["links"][0]["gbit_per_s"] = 100
    assert problems(paper_data) == [
        "kv_transfer.links[0].decode_gpu: unknown GPU type 'A100'"
    ]


def test_many_problems_reported_at_once(paper_data: dict[str, Any]) -> None:
    paper_data["gpus"]["H200"]["cost_per_hour"] = -1
    paper_data["workloads"][0]["slo"]["tpot_ms"] = 0
    paper_data["options"] = {"mip_gap": 2}
    assert problems(paper_data) == [
        "gpus.H200.cost_per_hour: must be > 0",
        "workloads[0].slo.tpot_ms: must be > 0",
        "options.mip_gap: must be < 1",
    ]


def test_json_schema_forbids_unknown_fields() -> None:
    schema = Scenario.model_json_schema()
    assert schema["additionalProperties"] is False
    assert set(schema["required"]) == {"name", "gpus", "instances", "workloads"}
    for name in ("Gpu", "Instance", "Workload", "Slo", "Options", "ModelSpec", "TpotTable"):
        assert schema["$defs"][name]["additionalProperties"] is False, name
    slo = schema["$defs"]["Slo"]["properties"]
    assert slo["tpot_ms"]["exclusiveMinimum"] == 0
    assert "ms" in slo["tpot_ms"]["description"]


# --- docs/scenario-format.md stays in step with the models ------------------------------------

def scenario_models() -> list[type]:
    import pdopt.scenario.schema as schema

    return [m for m in vars(schema).values() if isinstance(m, type)
            and issubclass(m, schema.StrictModel) and m.__module__ == "pdopt.scenario.schema"
            and m is not schema.StrictModel]


def test_every_field_is_documented(project_root: Any) -> None:
    doc = (project_root / "docs" / "scenario-format.md").read_text(encoding="utf-8")
    missing = [f"{m.__name__}.{name}" for m in scenario_models() for name in m.model_fields
               if f"`{name}`" not in doc]
    assert not missing, f"docs/scenario-format.md does not mention: {', '.join(missing)}"


def test_documented_examples_are_the_paper_scenario(
    project_root: Any, paper_scenario_path: Any, tmp_path: Any
) -> None:
    import re

    doc = (project_root / "docs" / "scenario-format.md").read_text(encoding="utf-8")
    blocks = re.findall(r"```(yaml|json|toml)\n(.*?)```", doc, flags=re.S)
    paper = load_scenario(paper_scenario_path)
    examples = {lang: text for lang, text in blocks[:3]}
    assert set(examples) == {"yaml", "json", "toml"}
    for lang, text in examples.items():
        path = tmp_path / f"example.{lang}"
        path.write_text(text, encoding="utf-8")
        loaded = load_scenario(path)
        assert loaded.model_copy(update={"description": None}) == paper.model_copy(
            update={"description": None}), lang


@pytest.mark.parametrize("value, message", [
    ({"kind": "lognormal", "input_cv": -1, "output_cv": 1}, ".input_cv: must be >= 0"),
    ({"kind": "lognormal", "input_cv": 1}, ".output_cv: required field is missing"),
    ({"kind": "weird"}, ": 'kind' must be one of 'fixed', 'lognormal', 'empirical', got 'weird'"),
    (5, ": must be a mapping, got 5"),
])
def test_tagged_union_locations_leave_out_the_tag(
    paper_data: dict[str, Any], value: Any, message: str
) -> None:
    paper_data["workloads"][0]["length_distribution"] = value
    assert problems(paper_data) == [f"workloads[0].length_distribution{message}"]


def test_several_tpot_tables_need_distinct_contexts(paper_data: dict[str, Any]) -> None:
    decode = paper_data["instances"][1]
    table = decode.pop("tpot_ms_by_batch")
    at_6400 = {"measured_at": decode.pop("measured_at"), "tpot_ms_by_batch": table}
    decode["tpot_tables"] = [{"tpot_ms_by_batch": table}, at_6400, dict(at_6400)]
    assert problems(paper_data) == [
        "instances[1].tpot_tables[0].measured_at: required when there are several tables",
        "instances[1].tpot_tables[2].measured_at: same context (6400 tokens, input + output/2) "
        "as tpot_tables[1] (give one table per context)",
    ]
    decode["tpot_tables"] = [{"tpot_ms_by_batch": table}]  # one table may hold at any context
    assert scenario_from_data(paper_data).instances[1].decode_tables[0].context_tokens is None
