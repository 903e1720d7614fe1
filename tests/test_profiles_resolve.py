"""`profile:` blocks in scenarios: validation, resolution to numbers, the disk cache, the CLI."""

from __future__ import annotations

import copy
import dataclasses
import importlib.util
import json
from pathlib import Path
from typing import Any

import pytest
import yaml
from click.testing import CliRunner

from pdopt.cli import main
from pdopt.profiles import resolve as resolve_module
from pdopt.profiles.catalog import gpu_spec, model_arch
from pdopt.profiles.estimate import Estimate, InstanceShape, engine_factors
from pdopt.profiles.resolve import check_profiles, resolve_profiles
from pdopt.ratio import ratio_from_scenario
from pdopt.scenario.loading import load_scenario, scenario_from_data
from pdopt.scenario.problems import ScenarioError

ROOT = Path(__file__).resolve().parent.parent
SHIPPED = ROOT / "scenarios" / "gpu-choice-estimated.yaml"

BASE: dict[str, Any] = {
    "name": "estimated",
    "gpus": {"H200": {"cost_per_hour": 3.99}},
    "instances": [
        {"name": "p", "model": "llama-3.1-70b", "role": "prefill", "gpu": "H200",
         "gpus_per_instance": 1,
         "profile": {"estimate": {"model": "llama-3.1-70b", "weight_dtype": "fp8",
                                  "kv_dtype": "fp8"}}},
        {"name": "d", "model": "llama-3.1-70b", "role": "decode", "gpu": "H200",
         "gpus_per_instance": 1,
         "profile": {"estimate": {"model": "llama-3.1-70b", "weight_dtype": "fp8",
                                  "kv_dtype": "fp8"}}},
    ],
    "workloads": [{"name": "chat", "model": "llama-3.1-70b", "tokens_per_minute": 3_000_000,
                   "input_tokens": 2048, "output_tokens": 256,
                   "slo": {"ttft_ms": 1000, "tpot_ms": 50}}],
}


@pytest.fixture(autouse=True)
def _cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("PDOPT_CACHE_DIR", str(tmp_path / "cache"))
    return tmp_path / "cache"


def data(**changes: Any) -> dict[str, Any]:
    d = copy.deepcopy(BASE)
    for k, v in changes.items():
        d[k] = v
    return d


def test_profile_replaces_the_measured_numbers_in_the_schema() -> None:
    scenario_from_data(data())  # no prefill_tokens_per_s / tpot tables needed
    bad = data()
    bad["instances"][0]["prefill_tokens_per_s"] = 1000
    with pytest.raises(ScenarioError) as e:
        scenario_from_data(bad)
    assert [str(p) for p in e.value.problems] == [
        "instances[0].prefill_tokens_per_s: give measured numbers or a profile, not both"]
    both = data()
    both["instances"][0]["profile"]["aiconfigurator"] = {"model": "Qwen/Qwen3-32B"}
    with pytest.raises(ScenarioError, match="give exactly one of estimate or aiconfigurator"):
        scenario_from_data(both)
    typo = data()
    typo["instances"][0]["profile"]["estimate"]["weight_dtpye"] = "fp8"
    with pytest.raises(ScenarioError, match=r"instances\[0\]\.profile\.estimate\.weight_dtpye"):
        scenario_from_data(typo)


def test_identity_without_profiles(paper_scenario_path: Path) -> None:
    scenario = load_scenario(paper_scenario_path)
    assert resolve_profiles(scenario) is scenario
    assert check_profiles(scenario) == []


def test_resolved_scenario_has_numbers_and_sources() -> None:
    scenario = resolve_profiles(scenario_from_data(data()))
    p, d = scenario.instances
    assert p.profile is None and d.profile is None
    assert list(p.prefill_tokens_per_s) == [2048]  # at the workload's input length
    assert d.tpot_tables[0].measured_at.input_tokens == 2048  # and its lengths
    # Eq. E12: 0.9 x (141e9 - 4e9 reserve - 70,552,387,584 bytes of weights) / 163,840 bytes
    assert d.kv_cache_tokens == 365_007
    assert p.source.startswith("estimate pdopt llama-3.1-70b on 1 x H200, weights fp8")
    # the model's KV bytes per token are filled in for KV-transfer times: 2 x 80 x 8 x 128 x 1
    assert scenario.models["llama-3.1-70b"].kv_bytes_per_token == 163_840
    result = ratio_from_scenario(scenario)
    assert result.prefill_instances >= 1 and result.decode_instances >= 1


def test_the_paper_case_estimated_with_mtp() -> None:
    """The paper's DeepSeek-V3.1 case on 8 x H200 with every number estimated (MTP: 1.875
    tokens per step, docs/profiles.md). Generic factors: saturated prefill 8.6% below the
    measured 28,309 tokens/s (3 instances, as measured) but decode TPOT 8-19% below the
    measured, so 3P3D; the paper's engine (SGLang): prefill 1.9% above, decode as measured,
    3P4D, what the paper measured to meet both targets."""
    block = {"model": "deepseek-v3.1", "weight_dtype": "fp8", "kv_dtype": "bf16"}
    d = data(gpus={"H200": {"cost_per_hour": 3.99}}, workloads=[{
        "name": "chat", "model": "deepseek-v3.1", "tokens_per_minute": 5_000_000,
        "input_tokens": 6144, "output_tokens": 512, "slo": {"ttft_ms": 2000, "tpot_ms": 20},
        "ttft_overhead_ms": 100}])
    for inst in d["instances"]:
        inst.update(model="deepseek-v3.1", gpus_per_instance=8, profile={"estimate": dict(block)})
    d["instances"][1]["profile"]["estimate"]["tokens_per_step"] = 1.875
    scenario = resolve_profiles(scenario_from_data(d))
    assert "1.875 tokens per step" in scenario.instances[1].source
    r = ratio_from_scenario(scenario, "nearest")
    assert (r.prefill_instances, r.decode_instances) == (3, 3)
    assert r.saturated_prefill_tokens_per_s == pytest.approx(28_309 * (1 - 0.0861), rel=0.001)
    # the paper's engine: decode as measured (4 instances), prefill 2% high (3)
    for inst in d["instances"]:
        inst["profile"]["estimate"]["engine"] = "sglang"
    r = ratio_from_scenario(resolve_profiles(scenario_from_data(d)), "nearest")
    assert (r.prefill_instances, r.decode_instances) == (3, 4)
    assert r.saturated_prefill_tokens_per_s == pytest.approx(28_309 * (1 + 0.0194), rel=0.001)


def test_results_are_cached_by_their_inputs(_cache: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    scenario = scenario_from_data(data())
    first = resolve_profiles(scenario)
    assert len(list(_cache.glob("*.json"))) == 2

    def boom(*_a: Any, **_k: Any) -> None:
        raise AssertionError("recomputed although cached")

    monkeypatch.setattr(resolve_module, "estimate_numbers", boom)
    assert resolve_profiles(scenario) == first  # served from the cache
    changed = data()
    changed["instances"][0]["profile"]["estimate"]["factors"] = {"compute_efficiency": 0.3}
    with pytest.raises(AssertionError, match="recomputed"):  # another input, another key
        resolve_profiles(scenario_from_data(changed))
    monkeypatch.undo()
    monkeypatch.setenv("PDOPT_CACHE_DIR", str(_cache))
    lower = resolve_profiles(scenario_from_data(changed)).instances[0].prefill_tokens_per_s
    assert lower[2048] == pytest.approx(first.instances[0].prefill_tokens_per_s[2048] * 0.3
                                        / engine_factors().compute_efficiency, rel=1e-3)


def test_a_damaged_cache_entry_is_recomputed(_cache: Path) -> None:
    scenario = scenario_from_data(data())
    first = resolve_profiles(scenario)
    for f in _cache.glob("*.json"):
        f.write_text("{broken")
    assert resolve_profiles(scenario) == first


def test_config_path_relative_to_the_scenario(tmp_path: Path,
                                              monkeypatch: pytest.MonkeyPatch) -> None:
    from pdopt.profiles.catalog import bundled_models
    from pdopt.scenario.prepare import prepare

    (tmp_path / "models").mkdir()
    (tmp_path / "models" / "config.json").write_text(
        json.dumps(bundled_models()["llama-3.1-70b"].config))
    d = data()
    for inst in d["instances"]:
        inst["profile"]["estimate"]["model"] = "models/config.json"
    (tmp_path / "scenario.yaml").write_text(yaml.safe_dump(d))
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    # read from the file: the path is the file's; as bare data: the working directory's
    assert check_profiles(load_scenario(tmp_path / "scenario.yaml")) == []
    problems = check_profiles(scenario_from_data(d))
    assert len(problems) == 2 and "cannot read model config" in problems[0].message
    prepared = prepare(tmp_path / "scenario.yaml")
    assert prepared.scenario.instances[1].kv_cache_tokens == 365_007
    assert prepared.estimated == {i["name"]: "estimate" for i in d["instances"]}


def test_check_reports_each_problem_where_it_is() -> None:
    d = data()
    d["instances"][0]["profile"]["estimate"]["model"] = "gpt-5"
    d["instances"][1]["profile"]["estimate"]["gpu"] = "L40S"  # 70B at fp8 in 48 GB x 0.9
    problems = check_profiles(scenario_from_data(d))
    assert [p.location for p in problems] == ["instances[0].profile.estimate.model",
                                              "instances[1].profile.estimate"]
    assert "unknown model 'gpt-5'" in problems[0].message
    assert "do not fit in 1 x L40S" in problems[1].message
    with pytest.raises(ScenarioError) as e:
        resolve_profiles(scenario_from_data(d))
    assert str(e.value.problems[0]).startswith("instances[0].profile.estimate.model: unknown")


def test_gpu_key_that_is_not_a_catalog_name() -> None:
    d = data(gpus={"h200-spot": {"cost_per_hour": 2.0}})
    for inst in d["instances"]:
        inst["gpu"] = "h200-spot"
    d["instances"][0]["profile"]["estimate"]["gpu"] = "H200"  # says which catalog GPU it is
    problems = check_profiles(scenario_from_data(d))
    assert [str(p) for p in problems] == [
        "instances[1].profile.estimate.gpu: unknown GPU type 'h200-spot' (the catalog has: A100, "
        "H100, H200, B200, GB200, B300, GB300, L40S, H20, MI300X); the instance's gpu "
        "'h200-spot' is not a catalog name, so give gpu here"]
    d["instances"][1]["profile"] = {"aiconfigurator": {"model": "Qwen/Qwen3-32B"}}
    problems = check_profiles(scenario_from_data(d))
    assert [p.location for p in problems] == ["instances[1].profile.aiconfigurator.system"]
    d["instances"][1]["profile"]["aiconfigurator"].update(system="h200_sxm", attention_dp=3)
    problems = check_profiles(scenario_from_data(d))
    assert [str(p) for p in problems] == [
        "instances[1].profile.aiconfigurator.attention_dp: must divide gpus_per_instance (1)"]


# --- the command line ----------------------------------------------------------------------------

def run(*args: str) -> Any:
    return CliRunner().invoke(main, list(args))


def test_shipped_scenario_checks_and_solves_by_ratio_of_one_pair(tmp_path: Path) -> None:
    result = run("check", str(SHIPPED))
    assert result.exit_code == 0 and result.stdout == f"{SHIPPED}: ok\n"
    scenario = load_scenario(SHIPPED)
    assert {i.gpu for i in scenario.instances} == {"A100", "H100", "H200", "B200", "L40S",
                                                    "MI300X"}
    assert all(i.profile is not None for i in scenario.instances)
    resolved = resolve_profiles(scenario)
    assert all(i.source.startswith("estimate") for i in resolved.instances)


def test_check_and_ratio_on_a_bad_profile(tmp_path: Path) -> None:
    d = data()
    d["instances"][1]["profile"]["estimate"]["gpu"] = "A100"
    path = tmp_path / "bad.yaml"
    path.write_text(yaml.safe_dump(d))
    result = run("check", str(path))
    assert result.exit_code == 2
    assert result.stderr == (f"{path}: instances[1].profile.estimate.weight_dtype: A100 has no "
                             "fp8 tensor cores (it has bf16, fp16)\n")
    result = run("ratio", str(path))
    assert result.exit_code == 2 and "Traceback" not in result.output
    assert result.stderr.startswith(f"{path}: instances[1].profile.estimate.weight_dtype")


def test_ratio_of_an_estimated_scenario(tmp_path: Path) -> None:
    path = tmp_path / "est.yaml"
    path.write_text(yaml.safe_dump(data()))
    result = run("ratio", str(path), "--format", "json")
    assert result.exit_code == 0, result.output
    out = json.loads(result.stdout)
    # one GPU, no link time: Eq. E9 at the generic e_c 0.5029 (docs/profiles.md, Table C1)
    assert out["saturated_prefill_tokens_per_s"] == pytest.approx(7129.8, abs=0.1)
    assert set(out["unmeasured"]) == {"p", "d"}
    assert out["unmeasured"]["p"].startswith("estimate pdopt llama-3.1-70b on 1 x H200")
    table = run("ratio", str(path)).stdout
    assert "unmeasured: instance 'd': estimate pdopt llama-3.1-70b" in table


def test_estimate_command_prints_loadable_blocks() -> None:
    result = run("profile", "estimate", "--model", "llama-3.1-8b", "--gpu", "H100",
                 "--weight-dtype", "fp8", "--kv-dtype", "fp8", "--lengths", "1024:128,4096:512",
                 "--input-tokens", "512,1024,4096")
    assert result.exit_code == 0, result.output
    items = yaml.safe_load(result.stdout)
    assert [i["name"] for i in items] == ["llama-3.1-8b-prefill-1xh100",
                                          "llama-3.1-8b-decode-1xh100"]
    assert list(items[0]["prefill_tokens_per_s"]) == [512, 1024, 4096]
    assert len(items[1]["tpot_tables"]) == 2
    scenario_from_data({
        "name": "x", "gpus": {"H100": {"cost_per_hour": 2.99}}, "instances": items,
        "workloads": [{"name": "w", "model": "llama-3.1-8b", "requests_per_s": 1,
                       "input_tokens": 1024, "output_tokens": 128,
                       "slo": {"ttft_ms": 500, "tpot_ms": 30}}]})


def test_estimate_command_table_and_errors() -> None:
    result = run("profile", "estimate", "--model", "deepseek-v3.1", "--gpu", "H200", "--gpus",
                 "8", "--weight-dtype", "fp8", "--lengths", "6144:512", "--format", "table")
    assert result.exit_code == 0 and "parameters, total (B)" in result.stdout
    result = run("profile", "estimate", "--model", "llama-3.1-405b", "--gpu", "H100",
                 "--lengths", "1000:100")
    assert result.exit_code == 2
    assert result.stderr.startswith("error: llama-3.1-405b weights (811.7 GB per GPU at bf16) "
                                    "do not fit in 1 x H100")
    result = run("profile", "estimate", "--model", "llama-3.1-8b", "--gpu", "H100",
                 "--lengths", "1000")
    assert result.exit_code == 2 and "'1000' is not INPUT:OUTPUT tokens" in result.stderr


def test_catalog_commands() -> None:
    result = run("profile", "gpus", "--format", "json")
    assert result.exit_code == 0
    gpus = json.loads(result.stdout)
    assert gpus["H20"]["sources"]["compute"].startswith("NVIDIA publishes no public datasheet")
    result = run("profile", "models")
    assert result.exit_code == 0 and "deepseek-v3" in result.stdout


@pytest.mark.skipif(importlib.util.find_spec("aiconfigurator") is not None,
                    reason="aiconfigurator is installed")
def test_aiconfigurator_missing_is_a_clean_error() -> None:
    result = run("profile", "aiconfigurator", "--model", "Qwen/Qwen3-32B", "--system",
                 "h200_sxm", "--lengths", "1000:100")
    assert result.exit_code == 2
    assert result.stderr == ("error: AIConfigurator is not installed: pip install "
                             "'pdopt[aiconfigurator]' (tested with aiconfigurator 0.12.0)\n")


@pytest.mark.skipif(importlib.util.find_spec("aiconfigurator") is not None,
                    reason="aiconfigurator is installed")
def test_aiconfigurator_block_without_the_extra(tmp_path: Path) -> None:
    d = data()
    d["instances"][1]["profile"] = {"aiconfigurator": {"model": "llama-3.1-70b"}}
    path = tmp_path / "aic.yaml"
    path.write_text(yaml.safe_dump(d))
    assert run("check", str(path)).exit_code == 0  # valid; computing it needs the extra
    result = run("ratio", str(path))
    assert result.exit_code == 2
    assert result.stderr == (
        f"error: {path}: instance 'd' (instances[1].profile.aiconfigurator): AIConfigurator is "
        "not installed: pip install 'pdopt[aiconfigurator]' (tested with aiconfigurator 0.12.0)\n")


def _estimated(model: str, gpu: str, gpus: int, **estimate: Any) -> dict[str, Any]:
    """Scenario data: one chat workload (2,048 in / 256 out) of `model`, both instance types
    `gpus` x `gpu` estimated with the `estimate:` block's fields `estimate`."""
    d = data(gpus={gpu: {"cost_per_hour": 4.0}}, workloads=[{
        "name": "chat", "model": model, "requests_per_s": 1,
        "input_tokens": 2048, "output_tokens": 256, "slo": {"ttft_ms": 2000, "tpot_ms": 50}}])
    for inst in d["instances"]:
        inst.update(model=model, gpu=gpu, gpus_per_instance=gpus,
                    profile={"estimate": {"model": model, **estimate}})
    return d


def test_prefill_moe_efficiency_can_be_overridden(_cache: Path) -> None:
    d = _estimated("qwen3-30b-a3b", "H200", 1, factors={"prefill_moe_gemm_efficiency": 0.5})
    scenario = resolve_profiles(scenario_from_data(d))
    est = Estimate(model_arch("qwen3-30b-a3b"), InstanceShape(gpu_spec("H200"), 1),
                   dataclasses.replace(engine_factors(), prefill_moe_gemm_efficiency=0.5))
    assert scenario.instances[0].prefill_tokens_per_s[2048] == pytest.approx(
        est.prefill_tokens_per_s(2048), abs=0.1)
    assert "prefill MoE x 0.5" in scenario.instances[0].source


def test_mla_layer_overhead_can_be_overridden(_cache: Path) -> None:
    d = _estimated("deepseek-v3", "H200", 8, weight_dtype="fp8",
                   factors={"mla_layer_overhead_us": 100.0})
    scenario = resolve_profiles(scenario_from_data(d))
    decode = scenario.instances[1]
    assert "100 us/MLA layer" in decode.source
    est = Estimate(model_arch("deepseek-v3"), InstanceShape(gpu_spec("H200"), 8, "fp8"),
                   engine_factors())
    # Eq. E11d: 61 MLA layers x (100 - the generic o_mla) us more per step than the shipped
    extra_ms = 61 * (100.0 - engine_factors().mla_layer_overhead_us) * 1e-3
    table = decode.tpot_tables[0].tpot_ms_by_batch
    assert table[1] == pytest.approx(est.tpot_ms(1, 2048 + 128) + extra_ms, abs=1e-3)


def test_fp4_efficiency_can_be_overridden(_cache: Path) -> None:
    d = _estimated("llama-3.1-8b", "B200", 1, weight_dtype="fp4",
                   factors={"fp4_efficiency": 0.3})
    decode = resolve_profiles(scenario_from_data(d)).instances[1]
    assert "FP4 GEMMs x 0.3, in prefill x " in decode.source
    est = Estimate(model_arch("llama-3.1-8b"), InstanceShape(gpu_spec("B200"), 1, "fp4"),
                   dataclasses.replace(engine_factors(), fp4_efficiency=0.3))
    table = decode.tpot_tables[0].tpot_ms_by_batch
    top = max(table)
    # Eq. E11e: the override reaches the decode table (compute-bound at the largest batch)
    assert table[top] == pytest.approx(est.tpot_ms(top, 2048 + 128), abs=1e-3)
    assert table[top] > Estimate(model_arch("llama-3.1-8b"), est.shape, engine_factors()
                                 ).tpot_ms(top, 2048 + 128)
