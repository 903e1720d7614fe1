"""`pdopt profile import`: vLLM, SGLang and CSV benchmark results -> instance types (issue 6).

Fixtures in tests/fixtures/profiles/ are written in each engine's own result layout (sources in
docs/profiles.md); the expected numbers below are computed by hand from the values in them.
"""

from __future__ import annotations

import json
import math
import shutil
from pathlib import Path

import pytest
import yaml
from click.testing import CliRunner

from pdopt.cli import main
from pdopt.profiles.import_append import append_instance
from pdopt.profiles.import_tables import (
    build_instance,
    group_by_length,
    make_monotone,
    overloaded,
    saturated_prefill,
)
from pdopt.profiles.importers import ProfileImportError, Run, read_csv, read_runs, read_vllm
from pdopt.scenario.loading import load_scenario
from pdopt.scenario.schema import Instance

FIX = Path(__file__).parent / "fixtures" / "profiles"
VLLM_DECODE = sorted(str(p) for p in (FIX / "vllm" / "decode").glob("*.json"))
VLLM_PREFILL = sorted(str(p) for p in (FIX / "vllm" / "prefill").glob("*.json"))
VLLM_PREFILL_V05 = sorted(str(p) for p in (FIX / "vllm" / "prefill-v05").glob("*.json"))
SGLANG_DECODE = str(FIX / "sglang" / "decode-qwen3-32b-tp2.jsonl")
SGLANG_PREFILL = str(FIX / "sglang" / "prefill-qwen3-32b-tp2.jsonl")
SGLANG_UNSATURATED = str(FIX / "sglang" / "prefill-unsaturated.jsonl")
CSV_FILE = str(FIX / "csv" / "h100-llama70b.csv")
SCENARIO = FIX / "scenario-llama8b.yaml"
COMMON = {"model": "llama-3.1-8b", "gpu": "H100", "gpus_per_instance": 1}
CLI_COMMON = ["--model", "llama-3.1-8b", "--gpu", "H100", "--gpus-per-instance", "1"]


def build(engine: str, files: list[str], role: str, **kw: object):  # type: ignore[no-untyped-def]
    runs, _ = read_runs(engine, files, role)
    opts = {**COMMON, **kw}
    return build_instance(runs, role=role, engine=engine, **opts)  # type: ignore[arg-type]


def run(**kw: object) -> Run:
    """A synthetic run for the rule tests."""
    base = dict(where="x.json", file="x.json", engine="vllm", model=None, engine_version=None,
                date=None, request_rate=math.inf, max_concurrency=None, input_tokens=1000.0,
                output_tokens=1.0, input_tokens_per_s=10000.0)
    base.update(kw)
    return Run(**base)  # type: ignore[arg-type]


def invoke(*args: str) -> object:
    return CliRunner().invoke(main, list(args))


# --------------------------------------------------------------------------- reading formats


def test_vllm_v08_layout_reads_lengths_rate_and_throughput() -> None:
    runs = read_vllm(VLLM_PREFILL[0])  # 16 qps: 50 prompts x 1024 tokens in 3.2 s
    assert len(runs) == 1
    r = runs[0]
    assert r.request_rate == 16 and r.max_concurrency is None
    assert r.input_tokens == 1024 and r.output_tokens == 1
    assert r.input_tokens_per_s == pytest.approx(51200 / 3.2)
    assert r.failed == 0  # num_prompts 50, completed 50, errors all empty
    assert r.model == "meta-llama/Llama-3.1-8B-Instruct" and r.date == "20251019-091600"


def test_vllm_inf_rate_and_concurrency_and_tpot_statistics() -> None:
    r = read_vllm(VLLM_DECODE[0])[0]  # concurrency 1
    assert math.isinf(r.request_rate) and r.max_concurrency == 1
    assert r.tpot_ms == {"mean": 6.5, "median": 6.4, "p99": 7.1}
    assert r.failed == 0 and r.backend == "openai"


def test_vllm_append_result_json_lines_give_one_run_per_line() -> None:
    runs = read_vllm(FIX / "vllm" / "decode-input4096-append-result.jsonl")
    assert [r.max_concurrency for r in runs] == [8, 32]
    assert runs[1].where.endswith("decode-input4096-append-result.jsonl, line 2")


def test_vllm_version_from_the_result_or_its_metadata(tmp_path: Path) -> None:
    obj = json.loads(Path(VLLM_PREFILL_V05[0]).read_text())
    obj["version"] = "0.3.3"  # v0.3's --version, later --metadata version=...
    old = tmp_path / "old.json"
    old.write_text(json.dumps(obj))
    assert read_vllm(old)[0].engine_version == "0.3.3"
    obj["version"] = "N/A"  # v0.3's default
    old.write_text(json.dumps(obj))
    assert read_vllm(old)[0].engine_version is None


def test_sglang_reads_infinity_rate_server_info_model_and_version() -> None:
    runs, _ = read_runs("sglang", [SGLANG_DECODE], "decode")
    assert [r.max_concurrency for r in runs] == [1, 4, 16, 64]
    assert all(math.isinf(r.request_rate) for r in runs)
    assert runs[0].model == "Qwen/Qwen3-32B" and runs[0].engine_version == "0.5.2"
    assert runs[0].input_tokens == 2000 and runs[0].output_tokens == 500
    assert runs[3].achieved_concurrency == 49.0
    assert runs[0].failed is None  # no request count without --output-details


def test_csv_rows_of_the_other_role_are_skipped_and_counted() -> None:
    runs, skipped = read_csv(CSV_FILE, "decode")
    assert len(runs) == 6 and skipped == 6
    assert runs[0].tpot_ms == {"mean": 5.0, "p99": 5.6}


@pytest.mark.parametrize(
    ("engine", "path", "expected"),
    [
        ("vllm", SGLANG_DECODE, "looks like SGLang bench_serving output: use 'sglang'"),
        ("sglang", VLLM_DECODE[0], "use 'vllm'"),
        ("vllm", CSV_FILE, "is this a CSV? use 'csv'"),
        ("csv", VLLM_DECODE[0], "not a CSV file (it is JSON"),
        ("csv", str(SCENARIO), "not a pdopt profile CSV: header lacks"),
    ],
)
def test_a_file_that_is_not_the_claimed_format_is_named(engine: str, path: str,
                                                       expected: str) -> None:
    with pytest.raises(ProfileImportError) as err:
        read_runs(engine, [path], "decode")
    assert len(err.value.lines) == 1
    assert err.value.lines[0].startswith(path) and expected in err.value.lines[0]


def test_broken_json_lines_empty_and_missing_files_are_clean_errors(tmp_path: Path) -> None:
    broken = tmp_path / "broken.jsonl"
    broken.write_text('{"backend": "sglang"}\n{not json\n')
    empty = tmp_path / "empty.json"
    empty.write_text("  \n")
    with pytest.raises(ProfileImportError) as err:
        read_runs("sglang", [str(broken), str(empty), str(tmp_path / "absent.json")], "decode")
    lines = err.value.lines
    assert len(lines) == 3  # one per file: every file's problem at once
    assert lines[0].startswith(f"{broken}, line 2: not JSON")
    assert lines[1] == f"{empty}: empty file"
    assert lines[2].startswith(f"{tmp_path / 'absent.json'}: cannot read file")


def test_ramp_up_runs_and_pytorch_format_copies_are_refused(tmp_path: Path) -> None:
    obj = json.loads(Path(VLLM_PREFILL[0]).read_text())
    obj.update(ramp_up_strategy="linear", ramp_up_start_rps=1, ramp_up_end_rps=20)
    ramp = tmp_path / "ramp.json"
    ramp.write_text(json.dumps(obj))
    with pytest.raises(ProfileImportError, match=r"ramp.json: a ramp-up run .* has no fixed load"):
        read_vllm(ramp)
    copy = tmp_path / "r.pytorch.json"
    copy.write_text(json.dumps([{"benchmark": {"name": "vLLM benchmark"}, "model": {}}]))
    with pytest.raises(ProfileImportError, match=r"PyTorch-benchmark-format copy"):
        read_vllm(copy)


def test_a_field_of_the_wrong_type_is_named(tmp_path: Path) -> None:
    obj = json.loads(Path(VLLM_DECODE[0]).read_text())
    obj["duration"] = "fast"
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps(obj))
    with pytest.raises(ProfileImportError, match=r"bad.json: field 'duration' must be a number"):
        read_vllm(bad)


# --------------------------------------------------------------------------- rules


def test_make_monotone_raises_a_dip_to_the_running_maximum() -> None:
    table, raised = make_monotone({1: 6.5, 8: 7.9, 16: 9.4, 32: 9.2, 48: 9.3, 64: 14.8})
    assert table == {1: 6.5, 8: 7.9, 16: 9.4, 32: 9.4, 48: 9.4, 64: 14.8}
    assert raised == [(32, 9.2, 9.4), (48, 9.3, 9.4)]
    assert make_monotone({1: 5.0, 2: 5.0, 4: 6.0}) == ({1: 5.0, 2: 5.0, 4: 6.0}, [])


def test_overloaded_runs() -> None:
    assert overloaded(run())  # every request at once, no cap
    assert not overloaded(run(max_concurrency=8))  # a capped run alone cannot tell
    # rate 16/s of 1000-token prompts: 16,000 tokens/s would keep up; 14,000 is 87.5% < 90%
    assert overloaded(run(request_rate=16.0, input_tokens_per_s=14000.0))
    assert not overloaded(run(request_rate=16.0, input_tokens_per_s=14500.0))  # 90.6%


def test_saturation_from_doubling_the_concurrency_cap() -> None:
    runs = [run(max_concurrency=4, input_tokens_per_s=9000.0),
            run(max_concurrency=8, input_tokens_per_s=15500.0),
            run(max_concurrency=16, input_tokens_per_s=16200.0)]
    sat = saturated_prefill(runs)
    # plateau: >= 95% of 16,200 = 15,390 -> 15,500 and 16,200; caps 8 and 16 differ by 2x
    assert sat.saturated and sat.tokens_per_s == pytest.approx((15500 + 16200) / 2)
    rising = saturated_prefill(runs[:2])  # 9,000 -> 15,500: only the top run is on the plateau
    assert not rising.saturated and rising.tokens_per_s == 15500.0


def test_runs_at_one_length_group_and_a_chain_of_lengths_is_refused() -> None:
    a, b, c = run(input_tokens=1000.0), run(input_tokens=1050.0), run(input_tokens=2000.0)
    groups = group_by_length([c, a, b], lambda r: r.input_tokens, "input length")
    assert [[r.input_tokens for r in g] for g in groups] == [[1000.0, 1050.0], [2000.0]]
    chain = [run(input_tokens=1000.0), run(input_tokens=1080.0), run(input_tokens=1160.0)]
    with pytest.raises(ProfileImportError, match=r"mixed lengths in one table"):
        group_by_length(chain, lambda r: r.input_tokens, "input length")


# --------------------------------------------------------------------------- prefill


def test_vllm_prefill_saturated_throughput_by_hand() -> None:
    result = build("vllm", VLLM_PREFILL, "prefill")
    # 51,200 input tokens per run: 4/s in 12.6 s = 4,063.5; 16/s in 3.2 s = 16,000 (served 15.6/s,
    # keeps up); 32/s in 2.56 s = 20,000 (served 19.5/s < 90% of 32: overloaded); inf in 2.5 s =
    # 20,480. Plateau >= 95% of 20,480 = 19,456: {20,000, 20,480}, mean 20,240.
    assert result.instance.prefill_tokens_per_s == {1024: 20240.0}
    assert result.warnings == []
    points = result.instance_data()["source"]["points"]
    assert [p["on_plateau"] for p in points] == [False, False, True, True]


def test_vllm_prefill_two_layouts_two_lengths_make_a_table() -> None:
    result = build("vllm", VLLM_PREFILL + VLLM_PREFILL_V05, "prefill")
    # v0.5 layout, 20 x 8192 = 163,840 tokens: 1/s in 20.3 s = 8,071; 4/s in 12.8 s = 12,800
    # (1.56/s served: overloaded); inf in 12.5 s = 13,107.2; plateau mean (12,800 + 13,107.2) / 2
    assert result.instance.prefill_tokens_per_s == {1024: 20240.0, 8192: 12953.6}


def test_sglang_prefill_by_hand() -> None:
    result = build("sglang", [SGLANG_PREFILL], "prefill", model="qwen3-32b", gpus_per_instance=2)
    # 409,600 tokens: 16/s in 12.5 s = 32,768; inf in 12.2 s = 33,573.8; 8/s in 12.9 s = 31,752 is
    # below 95% of the peak (31,895). Mean of the plateau: 33,170.9.
    assert result.instance.prefill_tokens_per_s == {4096: pytest.approx(33170.9)}
    assert any("failed requests cannot be detected" in w for w in result.warnings)


def test_prefill_that_never_saturates_warns_and_keeps_a_lower_bound() -> None:
    result = build("sglang", [SGLANG_UNSATURATED], "prefill", model="qwen3-32b")
    # 204,800 tokens: 1/s in 50.5 s = 4,055.4; 2/s in 25.4 s = 8,063.0 (1.97/s served: keeps up)
    assert result.instance.prefill_tokens_per_s == {4096: 8063.0}
    (warning,) = [w for w in result.warnings if "never saturated" in w]
    assert warning.startswith(f"{SGLANG_UNSATURATED}: prefill at 4,096 input tokens")
    assert "rate 2: 8,063 tokens/s" in warning and "lower bound" in warning


def test_csv_prefill_two_lengths_by_hand() -> None:
    result = build("csv", [CSV_FILE], "prefill", model="llama-3.1-70b", gpus_per_instance=4)
    # 1000 tokens: peak 16,300, plateau >= 15,485: 15,500, 16,200, 16,300 -> 16,000
    # 4000 tokens: peak 11,400, plateau >= 10,830: 11,000 and 11,400 (caps 2 and 4) -> 11,200
    assert result.instance.prefill_tokens_per_s == {1000: 16000.0, 4000: 11200.0}
    assert result.instance_data()["source"]["engine"] == "trtllm"


def test_prefill_runs_with_long_outputs_warn(tmp_path: Path) -> None:
    path = tmp_path / "p.csv"
    path.write_text("role,request_rate,input_tokens,output_tokens,prefill_tokens_per_s\n"
                    "prefill,inf,2000,128,30000\n")
    result = build("csv", [str(path)], "prefill")
    assert any("mean output of 128 tokens" in w for w in result.warnings)


# --------------------------------------------------------------------------- decode


def test_vllm_decode_table_is_made_monotone_with_a_warning() -> None:
    result = build("vllm", VLLM_DECODE, "decode")
    inst = result.instance
    assert inst.measured_at is not None
    assert (inst.measured_at.input_tokens, inst.measured_at.output_tokens) == (1024, 256)
    assert inst.tpot_ms_by_batch == {1: 6.5, 8: 7.9, 16: 9.4, 32: 9.4, 64: 14.8}
    (warning,) = result.warnings
    assert "concurrency32" in warning.split(":")[0]
    assert "mean TPOT 9.2 ms at batch 32" in warning and "raised to 9.4 ms" in warning


@pytest.mark.parametrize(
    ("statistic", "table"),
    [("median", {1: 6.4, 8: 7.8, 16: 9.3, 32: 9.35, 64: 14.6}),
     ("p99", {1: 7.1, 8: 8.9, 16: 10.8, 32: 11.5, 64: 17.9})],
)
def test_decode_with_a_chosen_tpot_statistic(statistic: str, table: dict[int, float]) -> None:
    result = build("vllm", VLLM_DECODE, "decode", statistic=statistic)
    assert result.instance.tpot_ms_by_batch == table and result.warnings == []
    assert result.instance_data()["source"]["tpot_statistic"] == statistic


def test_decode_statistic_the_files_lack_is_an_error() -> None:
    with pytest.raises(ProfileImportError, match=r"no p95 TPOT in this result \(TPOT statistics "
                                                 r"present: mean, median, p99\)"):
        build("vllm", VLLM_DECODE, "decode", statistic="p95")


def test_decode_runs_at_two_contexts_make_two_tables() -> None:
    files = [*VLLM_DECODE, str(FIX / "vllm" / "decode-input4096-append-result.jsonl")]
    inst = build("vllm", files, "decode").instance
    assert inst.tpot_tables is not None and len(inst.tpot_tables) == 2
    low, high = inst.tpot_tables
    assert (low.measured_at.input_tokens, high.measured_at.input_tokens) == (1024, 4096)
    assert high.tpot_ms_by_batch == {8: 10.5, 32: 13.0}


def test_sglang_decode_p99_and_low_achieved_concurrency_warning() -> None:
    result = build("sglang", [SGLANG_DECODE], "decode", statistic="p99", model="qwen3-32b")
    assert result.instance.tpot_ms_by_batch == {1: 8.6, 4: 9.9, 16: 13.1, 64: 24.8}
    assert result.instance_data()["source"]["engine_version"] == "0.5.2"
    (low,) = [w for w in result.warnings if "mean concurrency achieved" in w]
    assert low.startswith(f"{SGLANG_DECODE}, line 4: mean concurrency achieved 49.0")


def test_csv_decode_two_contexts() -> None:
    inst = build("csv", [CSV_FILE], "decode", model="llama-3.1-70b").instance
    assert [t.tpot_ms_by_batch for t in inst.tpot_tables or []] == [
        {1: 5.0, 16: 6.0, 64: 9.0}, {1: 5.5, 16: 7.0, 64: 11.0}]


def test_fewer_requests_than_the_concurrency_cap_make_the_batch(tmp_path: Path) -> None:
    (c64,) = [p for p in VLLM_DECODE if "concurrency64-" in p]
    obj = json.loads(Path(c64).read_text())
    obj.update(num_prompts=48, completed=48, total_input_tokens=48 * 1024,
               total_output_tokens=48 * 256)
    short = tmp_path / "short.json"
    short.write_text(json.dumps(obj))
    result = build("vllm", [str(short)], "decode")
    assert result.instance.tpot_ms_by_batch == {48: 14.8}
    assert any("only 48 requests for concurrency 64" in w for w in result.warnings)


def test_the_same_batch_twice_at_one_length_is_an_error() -> None:
    with pytest.raises(ProfileImportError, match=r"two runs at batch 1 for the same lengths"):
        build("vllm", [VLLM_DECODE[0], VLLM_DECODE[0]], "decode")


def test_a_rate_driven_decode_run_without_a_cap_is_an_error() -> None:
    with pytest.raises(ProfileImportError, match=r"needs a fixed concurrency"):
        build("vllm", VLLM_PREFILL[:1], "decode")


def test_failed_requests_are_an_error_unless_allowed() -> None:
    failed = str(FIX / "vllm" / "bad" / "failed-requests.json")
    with pytest.raises(ProfileImportError) as err:
        build("vllm", [*VLLM_DECODE, failed], "decode")
    assert err.value.lines == [f"{failed}: 12 request(s) failed (500 completed); the numbers "
                               "cover only the survivors (rerun, or pass --allow-failed)"]
    result = build("vllm", [failed], "decode", allow_failed=True)
    assert any("12 request(s) failed" in w for w in result.warnings)


def test_mixed_models_are_an_error() -> None:
    other = str(FIX / "vllm" / "bad" / "other-model-concurrency4.json")
    with pytest.raises(ProfileImportError, match=r"mixed models in one profile: .*Llama-3.1-8B"
                                                 r".*Qwen/Qwen2.5-7B-Instruct"):
        build("vllm", [*VLLM_DECODE, other], "decode")


def test_mixed_lengths_in_one_table_are_an_error() -> None:
    mixed = sorted(str(p) for p in (FIX / "vllm" / "mixed").glob("*.json"))
    # contexts 1,152 (the sweep), 1,240 and 1,330: each step < 10%, the span 15% > 10%
    with pytest.raises(ProfileImportError, match=r"mixed lengths in one table: mean context"):
        build("vllm", [*VLLM_DECODE, *mixed], "decode")


def test_name_default_and_instance_validates() -> None:
    result = build("vllm", VLLM_DECODE, "decode")
    assert result.instance.name == "llama-3.1-8b-decode-1xh100"
    assert Instance.model_validate(result.instance_data()) == result.instance


# --------------------------------------------------------------------------- appending


def test_append_keeps_comments_and_builds_a_valid_scenario(tmp_path: Path) -> None:
    scenario = tmp_path / "s.yaml"
    shutil.copy(SCENARIO, scenario)
    prefill = build("vllm", VLLM_PREFILL, "prefill").instance_data()
    scenario.write_text(append_instance(scenario, prefill))
    decode = build("vllm", VLLM_DECODE, "decode").instance_data()
    text = append_instance(scenario, decode)
    scenario.write_text(text)
    assert "# filled by: pdopt profile import" in text
    assert "tokens_per_minute: 6000000     # input + output tokens" in text
    loaded = load_scenario(scenario)
    assert [i.name for i in loaded.instances] == ["llama-3.1-8b-prefill-1xh100",
                                                  "llama-3.1-8b-decode-1xh100"]
    assert loaded.instances[1].tpot_ms_by_batch == {1: 6.5, 8: 7.9, 16: 9.4, 32: 9.4, 64: 14.8}


def test_append_into_a_block_list_uses_its_indentation(tmp_path: Path) -> None:
    scenario = tmp_path / "s.yaml"
    shutil.copy(FIX.parent.parent.parent / "scenarios" / "paper-deepseek-v31-h200.yaml", scenario)
    item = build("vllm", VLLM_PREFILL, "prefill", model="deepseek-v3.1",
                 gpu="H200").instance_data()
    text = append_instance(scenario, item)
    assert "\n  - name: deepseek-v3.1-prefill-1xh200\n" in text
    assert text.index("deepseek-v3.1-prefill-1xh200") < text.index("workloads:")


def test_append_refuses_a_taken_name_a_new_problem_and_toml(tmp_path: Path) -> None:
    scenario = tmp_path / "s.yaml"
    shutil.copy(SCENARIO, scenario)
    item = build("vllm", VLLM_PREFILL, "prefill").instance_data()
    scenario.write_text(append_instance(scenario, item))
    with pytest.raises(ProfileImportError, match=r"already exists \(choose another with --name\)"):
        append_instance(scenario, item)
    other_gpu = build("vllm", VLLM_PREFILL, "prefill", gpu="A100").instance_data()
    with pytest.raises(ProfileImportError, match=r"GPU type 'A100' is not in the scenario's gpus "
                                                 r"\(H100\); add it first"):
        append_instance(scenario, other_gpu)
    toml = tmp_path / "s.toml"
    toml.write_text('name = "x"\n')
    with pytest.raises(ProfileImportError, match=r"not TOML"):
        append_instance(toml, item)


def test_append_refuses_an_item_the_scenario_format_rejects(tmp_path: Path) -> None:
    scenario = tmp_path / "s.yaml"
    shutil.copy(SCENARIO, scenario)
    item = {**build("vllm", VLLM_PREFILL, "prefill").instance_data(), "gpus_per_instance": 0}
    with pytest.raises(ProfileImportError, match=r"would make the scenario invalid: "
                                                 r"instances\[0\]\.gpus_per_instance"):
        append_instance(scenario, item)


def test_append_refuses_a_flow_style_instances_list(tmp_path: Path) -> None:
    item = build("vllm", VLLM_PREFILL, "prefill").instance_data()
    listed = "instances: [{name: a, model: m, role: prefill, gpu: H100, gpus_per_instance: 1, " \
        "prefill_tokens_per_s: 1000}]"
    flow = tmp_path / "flow.yaml"
    flow.write_text(SCENARIO.read_text().replace("instances: []", listed))
    with pytest.raises(ProfileImportError, match=r"flow style"):
        append_instance(flow, item)
    whole = tmp_path / "whole.yaml"
    whole.write_text(yaml.safe_dump(yaml.safe_load(flow.read_text()), default_flow_style=True))
    with pytest.raises(ProfileImportError, match=r"no top-level 'instances:' line"):
        append_instance(whole, item)


def test_append_to_json_and_to_a_file_without_instances(tmp_path: Path) -> None:
    data = yaml.safe_load(SCENARIO.read_text())
    as_json = tmp_path / "s.json"
    as_json.write_text(json.dumps(data))
    item = build("vllm", VLLM_PREFILL, "prefill").instance_data()
    after = json.loads(append_instance(as_json, item))
    assert after["instances"][0]["prefill_tokens_per_s"] == {"1024": 20240.0}
    no_key = tmp_path / "n.yaml"
    no_key.write_text(SCENARIO.read_text().replace("instances: []", ""))
    text = append_instance(no_key, item)
    assert yaml.safe_load(text)["instances"][0]["name"] == "llama-3.1-8b-prefill-1xh100"


# --------------------------------------------------------------------------- command line


def test_cli_prints_a_valid_instance_block_and_warnings_on_stderr() -> None:
    result = invoke("profile", "import", "vllm", *VLLM_DECODE, *CLI_COMMON, "--role", "decode")
    assert result.exit_code == 0, result.stderr  # type: ignore[attr-defined]
    (item,) = yaml.safe_load(result.stdout)  # type: ignore[attr-defined]
    assert Instance.model_validate(item).tpot_ms_by_batch[32] == 9.4
    assert result.stderr.startswith("warning: ")  # type: ignore[attr-defined]
    assert "batch 32" in result.stderr  # type: ignore[attr-defined]


def test_cli_bad_input_is_one_line_per_problem_and_exit_2() -> None:
    failed = str(FIX / "vllm" / "bad" / "failed-requests.json")
    result = invoke("profile", "import", "vllm", failed, *CLI_COMMON, "--role", "decode")
    assert result.exit_code == 2
    assert result.stdout == ""  # type: ignore[attr-defined]
    lines = result.stderr.splitlines()  # type: ignore[attr-defined]
    assert len(lines) == 1 and lines[0].startswith(f"error: {failed}: 12 request(s) failed")
    assert "Traceback" not in result.stderr  # type: ignore[attr-defined]


def test_cli_rejects_an_unknown_statistic() -> None:
    result = invoke("profile", "import", "vllm", *VLLM_DECODE, *CLI_COMMON, "--role", "decode",
                    "--tpot-statistic", "worst")
    assert result.exit_code == 2 and "not mean, median or pNN" in result.stderr  # type: ignore


def test_cli_end_to_end_append_then_check_and_ratio(tmp_path: Path) -> None:
    scenario = tmp_path / "s.yaml"
    shutil.copy(SCENARIO, scenario)
    for role, files in (("prefill", VLLM_PREFILL), ("decode", VLLM_DECODE)):
        result = invoke("profile", "import", "vllm", *files, *CLI_COMMON, "--role", role,
                        "--engine-version", "0.11.0", "--append", str(scenario))
        assert result.exit_code == 0, result.stderr  # type: ignore[attr-defined]
        assert f"{scenario}: appended instance" in result.stderr  # type: ignore[attr-defined]
    assert invoke("check", str(scenario)).exit_code == 0  # type: ignore[attr-defined]
    ratio = invoke("ratio", str(scenario), "--format", "json")
    data = json.loads(ratio.stdout)  # type: ignore[attr-defined]
    # the imported numbers are what the method uses: TP_max 20,240; at a 10 ms TPOT target the
    # batch is 35 (9.4 + 5.4 x (b - 32) / 32 <= 10 -> b <= 35.6)
    assert data["saturated_prefill_tokens_per_s"] == 20240.0 and data["decode_batch"] == 35
    assert load_scenario(scenario).instances[0].source["engine_version"] == "0.11.0"  # type: ignore


def test_cli_append_failure_leaves_the_file_untouched(tmp_path: Path) -> None:
    scenario = tmp_path / "s.yaml"
    shutil.copy(SCENARIO, scenario)
    before = scenario.read_text()
    result = invoke("profile", "import", "vllm", *VLLM_PREFILL, "--model", "m", "--gpu", "B200",
                    "--gpus-per-instance", "8", "--role", "prefill", "--append", str(scenario))
    assert result.exit_code == 2
    assert "GPU type 'B200' is not in the scenario's gpus" in result.stderr  # type: ignore[attr-defined]
    assert scenario.read_text() == before
