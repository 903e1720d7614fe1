"""pdopt export: manifests of a plan for Kubernetes, Dynamo, llm-d and SGLang's router.

Always: every YAML file parses, counts/GPUs/engine flags are the plan's and the scenario's, names
are safe, placeholders mark what pdopt cannot know, bad input is one line and exit 2; Kubernetes
objects pass the published Kubernetes 1.30 (and newest) JSON schemas that the kubernetes-validate
package ships. With the public files in ../shared/data/schemas (skipped cleanly without them):
DynamoGraphDeployments against the v1alpha1 CRD schema of Dynamo 1.5.0, llm-d values (merged over
the chart's defaults, as Helm does) against the llm-d-modelservice v0.4.12 values schema. Those
files stay out of this repository like the rest of ../shared (docs/cli.md, `pdopt export`, names
their sources).
"""

from __future__ import annotations

import copy
import json
import os
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml
from click.testing import CliRunner

from pdopt.cli import main
from pdopt.export import (
    TARGETS,
    ExportError,
    ExportFile,
    ExportOptions,
    export_plan,
    slug,
    write_export,
)
from pdopt.plan import Plan
from pdopt.scenario.loading import scenario_from_data
from pdopt.scenario.prepare import prepare

ROOT = Path(__file__).resolve().parent.parent
# the published schemas: ../shared/data/schemas, or the folder $PDOPT_EXPORT_SCHEMAS names
SCHEMAS = Path(os.environ.get("PDOPT_EXPORT_SCHEMAS")
               or ROOT.parent / "shared" / "data" / "schemas")
DNS_LABEL = re.compile(r"[a-z]([-a-z0-9]*[a-z0-9])?")
PAPER_TABLE = {10: 12.8, 20: 16.4, 30: 18.8, 40: 21.6, 50: 23.9, 60: 26.2}

# Two models, one with a hostile name; decode of the first on H100 and MI300X with two SLO groups.
SCENARIO: dict[str, Any] = {
    "name": "export-test",
    "gpus": {"H100": {"cost_per_hour": 3.0}, "MI300X": {"cost_per_hour": 2.5},
             "L40S": {"cost_per_hour": 1.0}},
    "models": {"Qwen/Qwen3-8B": {"kv_bytes_per_token": 65536, "kv_dtype": "fp8"}},
    "instances": [
        {"name": "p-h100", "model": "Qwen/Qwen3-8B", "role": "prefill", "gpu": "H100",
         "gpus_per_instance": 2, "prefill_tokens_per_s": 20000},
        {"name": "d-h100", "model": "Qwen/Qwen3-8B", "role": "decode", "gpu": "H100",
         "gpus_per_instance": 2, "measured_at": {"input_tokens": 6144, "output_tokens": 512},
         "tpot_ms_by_batch": PAPER_TABLE},
        {"name": "d-mi300x", "model": "Qwen/Qwen3-8B", "role": "decode", "gpu": "MI300X",
         "gpus_per_instance": 1, "measured_at": {"input_tokens": 6144, "output_tokens": 512},
         "tpot_ms_by_batch": PAPER_TABLE},
        {"name": "../evil", "model": "../../x", "role": "prefill", "gpu": "L40S",
         "gpus_per_instance": 1, "prefill_tokens_per_s": 5000},
        {"name": "x-decode", "model": "../../x", "role": "decode", "gpu": "L40S",
         "gpus_per_instance": 1, "tpot_ms_by_batch": {1: 10, 64: 40}},
    ],
    "workloads": [
        {"name": "strict", "model": "Qwen/Qwen3-8B", "requests_per_s": 4, "input_tokens": 6144,
         "output_tokens": 512, "slo": {"ttft_ms": 2000, "tpot_ms": 20}},
        {"name": "loose", "model": "Qwen/Qwen3-8B", "requests_per_s": 6, "input_tokens": 6144,
         "output_tokens": 512, "slo": {"ttft_ms": 2000, "tpot_ms": 25}},
        {"name": "evil", "model": "../../x", "requests_per_s": 1, "input_tokens": 100,
         "output_tokens": 100, "slo": {"ttft_ms": 1000, "tpot_ms": 30}},
    ],
}


def _pool(instance: str, model: str, role: str, gpu: str, gpus: int, count: int,
          routed: dict[str, float], groups: list[dict[str, Any]] | None = None
          ) -> dict[str, Any]:
    return {"instance": instance, "model": model, "role": role, "gpu": gpu,
            "gpus_per_instance": gpus, "count": count, "cost_per_hour": 3.0 * gpus * count,
            "utilization": 0.8, "routed_requests_per_s": routed, "groups": groups or []}


def _workload(name: str, model: str, rate: float, ttft: float, tpot: float) -> dict[str, Any]:
    return {"workload": name, "model": model, "demand_requests_per_s": rate,
            "ttft_target_ms": ttft, "ttft_percentile": None, "tpot_target_ms": tpot,
            "expected_ttft_ms": ttft / 2, "expected_tpot_ms": tpot * 0.9}


PLAN: dict[str, Any] = {
    "scenario": "export-test", "status": "optimal", "objective": "cost",
    "cost_per_hour": 40.0, "total_gpus": 13, "gpus_by_type": {}, "instances_by_role": {},
    "pools": [
        _pool("p-h100", "Qwen/Qwen3-8B", "prefill", "H100", 2, 3, {"strict": 4, "loose": 6}),
        # two SLO groups: TPOT 20 ms allows batch 34, 25 ms batch 54 (linear between measured
        # batches: 30 + (20 - 18.8) / 0.28 = 34.3; 50 + (25 - 23.9) / 0.23 = 54.8)
        _pool("d-h100", "Qwen/Qwen3-8B", "decode", "H100", 2, 3, {"strict": 4, "loose": 4},
              [{"level": 0, "count": 2, "utilization": 0.8, "tpot_target_ms": 20.0,
                "routed_requests_per_s": {"strict": 4, "loose": 1}},
               {"level": 1, "count": 1, "utilization": 0.8, "tpot_target_ms": 25.0,
                "routed_requests_per_s": {"loose": 3}}]),
        _pool("d-mi300x", "Qwen/Qwen3-8B", "decode", "MI300X", 1, 2, {"loose": 2}),
        _pool("../evil", "../../x", "prefill", "L40S", 1, 1, {"evil": 1}),
        _pool("x-decode", "../../x", "decode", "L40S", 1, 1, {"evil": 1}),
    ],
    "workloads": [_workload("strict", "Qwen/Qwen3-8B", 4, 2000, 20),
                  _workload("loose", "Qwen/Qwen3-8B", 6, 2000, 25),
                  _workload("evil", "../../x", 1, 1000, 30)],
    "flows": [
        {"workload": "strict", "prefill_instance": "p-h100", "decode_instance": "d-h100",
         "requests_per_s": 4, "kv_transfer_ms": 0},
        {"workload": "loose", "prefill_instance": "p-h100", "decode_instance": "d-h100",
         "requests_per_s": 4, "kv_transfer_ms": 0},
        {"workload": "loose", "prefill_instance": "p-h100", "decode_instance": "d-mi300x",
         "requests_per_s": 2, "kv_transfer_ms": 3},
        {"workload": "evil", "prefill_instance": "../evil", "decode_instance": "x-decode",
         "requests_per_s": 1, "kv_transfer_ms": 0},
    ],
    "dual_bound": None, "mip_gap": 0.0, "solve_seconds": 0.1, "build_seconds": 0.1,
}


@pytest.fixture(scope="module")
def scenario():
    return prepare(scenario_from_data(copy.deepcopy(SCENARIO))).scenario


@pytest.fixture(scope="module")
def plan() -> Plan:
    return Plan.from_dict(copy.deepcopy(PLAN))


def _export(plan: Plan, target: str, scenario=None, **options: Any) -> dict[str, str]:
    files = export_plan(plan, target, ExportOptions(**options), scenario=scenario, raw=scenario)
    return {f.name: f.text for f in files}


def _documents(files: dict[str, str]) -> list[dict[str, Any]]:
    docs = []
    for name, text in files.items():
        if name.endswith(".yaml"):
            docs += [d for d in yaml.safe_load_all(text) if d is not None]
    return docs


def _args_after(args: list[str], flag: str) -> str | None:
    return args[args.index(flag) + 1] if flag in args else None


# --- what every target writes --------------------------------------------------------------------

@pytest.mark.parametrize("target", list(TARGETS))
def test_every_file_parses_and_names_the_plan(plan, scenario, target):
    files = _export(plan, target, scenario)
    assert "README.md" in files
    assert all(re.fullmatch(r"[a-z][a-z0-9.-]*|README\.md", name) for name in files), files
    _documents(files)  # every YAML file parses
    for name, text in files.items():
        assert "export-test" in text  # the plan's scenario is named in every file
        if name.startswith("qwen"):  # the SLOs of the model's workloads, not the others'
            assert "  strict (Qwen/Qwen3-8B, 4 req/s): TTFT 2,000 ms / 1,000 ms, TPOT 20 ms / " \
                "18 ms" in text and "  loose (" in text and "  evil (" not in text
        elif name.startswith("x"):
            assert "  evil (../../x, 1 req/s): TTFT 1,000 ms / 500 ms" in text
            assert "  strict (" not in text
        else:
            assert "  strict (" in text and "  evil (" in text


def test_kubernetes_deployments_follow_the_plan(plan, scenario):
    docs = _documents(_export(plan, "kubernetes", scenario))
    deployments = {d["metadata"]["annotations"]["pdopt.io/instance"]: d
                   for d in docs if d["kind"] == "Deployment"}
    assert set(deployments) == {p["instance"] for p in PLAN["pools"]}
    for pool in PLAN["pools"]:
        d = deployments[pool["instance"]]
        assert d["spec"]["replicas"] == pool["count"]
        container = d["spec"]["template"]["spec"]["containers"][0]
        resource = "amd.com/gpu" if pool["gpu"] == "MI300X" else "nvidia.com/gpu"
        assert container["resources"]["limits"] == {resource: str(pool["gpus_per_instance"])}
        assert _args_after(container["command"], "--tensor-parallel-size") == \
            str(pool["gpus_per_instance"])
        assert d["spec"]["selector"]["matchLabels"].items() <= \
            d["spec"]["template"]["metadata"]["labels"].items()
        assert DNS_LABEL.fullmatch(d["metadata"]["name"])
    h100 = deployments["d-h100"]["spec"]["template"]["spec"]["containers"][0]["command"]
    assert _args_after(h100, "--max-num-seqs") == "34"  # the strictest group's batch cap
    assert _args_after(h100, "--kv-cache-dtype") == "fp8"
    mi300 = deployments["d-mi300x"]["spec"]["template"]["spec"]
    assert mi300["nodeSelector"] == {
        "amd.com/gpu.product-name": "<FILL: node label value of MI300X nodes>"}
    services = {d["metadata"]["name"]: d for d in docs if d["kind"] == "Service"}
    assert len(services) == 4  # prefill and decode of each model
    for s in services.values():
        assert DNS_LABEL.fullmatch(s["metadata"]["name"])
        pods = [d for d in deployments.values()
                if s["spec"]["selector"].items() <= d["spec"]["template"]["metadata"]["labels"]
                .items()]
        assert pods and {d["metadata"]["labels"]["pdopt.io/role"] for d in pods} == \
            {s["metadata"]["labels"]["pdopt.io/role"]}


def test_estimated_pools_are_named():
    plan = Plan.from_dict({**copy.deepcopy(PLAN), "estimated": {"d-mi300x": "estimate pdopt"}})
    files = _export(plan, "llm-d")
    line = "Pools sized on estimated, not measured, numbers (measure before relying on them): " \
        "d-mi300x."
    assert line in files["qwen-qwen3-8b.values.yaml"] and line in files["README.md"]
    assert "estimated" not in files["x.values.yaml"]


def test_group_batch_caps_are_reported(plan, scenario):
    text = _export(plan, "kubernetes", scenario)["qwen-qwen3-8b.yaml"]
    assert "TPOT target ms: batch): 20: 34, 25: 54" in text


def test_sglang_flags(plan, scenario):
    dgd = _documents(_export(plan, "dynamo", scenario, engine="sglang"))
    workers = {k: v for d in dgd for k, v in d["spec"]["services"].items()
               if v["componentType"] == "worker"}
    args = workers["d-h100"]["extraPodSpec"]["mainContainer"]["args"]
    assert _args_after(args, "--max-running-requests") == "34"
    assert _args_after(args, "--kv-cache-dtype") == "fp8_e4m3"
    assert _args_after(args, "--disaggregation-mode") == "decode"
    assert _args_after(args, "--tp") == "2"
    assert _args_after(args, "--model-path") == "Qwen/Qwen3-8B"  # an org/name id is a path


def test_dynamo_graph_per_model(plan, scenario):
    docs = _documents(_export(plan, "dynamo", scenario))
    assert [d["kind"] for d in docs] == ["DynamoGraphDeployment"] * 2
    qwen = next(d for d in docs if d["metadata"]["annotations"]["pdopt.io/model"] ==
                "Qwen/Qwen3-8B")
    services = qwen["spec"]["services"]
    assert services["Frontend"]["componentType"] == "frontend"
    assert {k: (v.get("subComponentType"), v["replicas"], v.get("resources"))
            for k, v in services.items() if k != "Frontend"} == {
        "p-h100": ("prefill", 3, {"limits": {"gpu": "2"}}),
        "d-h100": ("decode", 3, {"limits": {"gpu": "2"}}),
        "d-mi300x": ("decode", 2, {"limits": {"gpu": "1", "gpuType": "amd.com/gpu"}}),
    }
    args = services["p-h100"]["extraPodSpec"]["mainContainer"]["args"]
    assert args[:2] == ["--model", "Qwen/Qwen3-8B"]
    assert _args_after(args, "--disaggregation-mode") == "prefill"
    assert "--max-num-seqs" not in args  # no batch cap on prefill


def test_llmd_releases(plan, scenario):
    files = _export(plan, "llm-d", scenario)
    main_values = yaml.safe_load(files["qwen-qwen3-8b.values.yaml"])
    assert main_values["prefill"]["replicas"] == 3
    assert main_values["decode"]["replicas"] == 3  # the largest decode pool
    assert main_values["decode"]["parallelism"] == {"tensor": 2}
    assert "--tensor-parallel-size" not in main_values["decode"]["containers"][0]["args"]
    assert _args_after(main_values["decode"]["containers"][0]["args"], "--max-num-seqs") == "34"
    assert main_values["modelArtifacts"]["uri"] == "hf://Qwen/Qwen3-8B"
    extra = yaml.safe_load(files["qwen-qwen3-8b-d-mi300x.values.yaml"])
    assert extra["prefill"] == {"create": False, "replicas": 0}
    assert extra["decode"]["replicas"] == 2
    assert extra["decode"]["accelerator"] == {"type": "amd"}
    labels = {yaml.safe_load(t)["modelArtifacts"]["labels"]["llm-d.ai/model"]
              for n, t in files.items() if n.startswith("qwen")}
    assert labels == {"qwen-qwen3-8b"}  # one InferencePool selects every release of the model


def test_sglang_router_lists_every_instance(plan, scenario, tmp_path):
    files = _export(plan, "sglang-router", scenario)
    listing = yaml.safe_load(files["qwen-qwen3-8b.servers.yaml"])
    assert sum(len(p["servers"]) for p in listing["prefill"]) == 3
    assert sum(len(p["servers"]) for p in listing["decode"]) == 5
    router = listing["router"]
    assert router[:4] == ["python", "-m", "sglang_router.launch_router", "--pd-disaggregation"]
    assert router.count("--prefill") == 3 and router.count("--decode") == 5
    i = router.index("--prefill")
    assert router[i + 2] == "8998"  # each prefill URL with its bootstrap port
    assert router[router.index("--policy") + 1] == "round_robin"
    script = tmp_path / "r.sh"
    script.write_text(files["qwen-qwen3-8b.router.sh"])
    if shutil.which("sh"):
        assert subprocess.run(["sh", "-n", str(script)]).returncode == 0
    decode = next(p for p in listing["decode"] if p["pool"] == "d-h100")
    assert _args_after(decode["command"], "--max-running-requests") == "34"


def test_routing_shares_from_the_plan(plan, scenario):
    readme = _export(plan, "sglang-router", scenario)["README.md"]
    # decode of Qwen: 8 of 10 req/s on d-h100 (2.667 per instance), 2 on d-mi300x (1 each)
    assert "| Qwen/Qwen3-8B | decode | d-h100 | 3 | 8 | 80.0% | 2.667 |" in readme
    assert "| Qwen/Qwen3-8B | decode | d-mi300x | 2 | 2 | 20.0% | 1 |" in readme
    assert "| loose | p-h100 | d-mi300x | 2 |" in readme
    assert "takes no per-server weights" in readme


# --- placeholders and options --------------------------------------------------------------------

def test_placeholders_mark_what_pdopt_cannot_know(plan, scenario):
    files = _export(plan, "kubernetes", scenario)
    text = files["x.yaml"]  # the model "../../x"
    assert "<FILL: container image>" in text
    assert "<FILL: model path or Hugging Face id of ../../x>" in text
    readme = files["README.md"]
    assert "- `<FILL: container image>`" in readme
    assert "- `<FILL: node label value of L40S nodes>`" in readme


def test_options_fill_every_placeholder(plan, scenario):
    files = _export(
        plan, "kubernetes", scenario, image="vllm/vllm-openai:v0.11.0",
        model_paths={"../../x": "/models/x"}, namespace="serving",
        gpu_labels={g: {"example.com/gpu": g.lower()} for g in ("H100", "MI300X", "L40S")})
    text = "".join(t for n, t in files.items() if n != "README.md")
    assert "<FILL" not in text.replace("<FILL: ...>", "")  # only the header's explanation
    assert "Nothing to fill in." in files["README.md"]
    docs = _documents(files)
    assert {d["metadata"]["namespace"] for d in docs} == {"serving"}
    mi300 = next(d for d in docs if d["kind"] == "Deployment"
                 and d["metadata"]["annotations"]["pdopt.io/gpu"] == "MI300X")
    assert mi300["spec"]["template"]["spec"]["nodeSelector"] == {"example.com/gpu": "mi300x"}
    container = mi300["spec"]["template"]["spec"]["containers"][0]
    assert container["image"] == "vllm/vllm-openai:v0.11.0"
    assert list(container["resources"]["limits"]) == ["amd.com/gpu"]  # from the GPU's name


def test_without_scenario_the_engine_decides(plan):
    files = _export(plan, "kubernetes")
    text = "".join(files.values())
    assert "--max-num-seqs" not in text and "--kv-cache-dtype" not in text
    assert "no --scenario: decode batch cap and KV-cache dtype left to the engine" in text


@pytest.mark.parametrize(("dtype", "vllm", "sglang"), [
    ("bf16", None, None), ("fp8", "fp8", "fp8_e4m3"),
    ("int8", "<FILL: vllm --kv-cache-dtype for a int8 KV cache>",
     "<FILL: sglang --kv-cache-dtype for a int8 KV cache>")])
def test_kv_dtype_per_engine(plan, dtype, vllm, sglang):
    data = copy.deepcopy(SCENARIO)
    data["models"]["Qwen/Qwen3-8B"]["kv_dtype"] = dtype
    sc = prepare(scenario_from_data(data)).scenario
    for engine, expected in (("vllm", vllm), ("sglang", sglang)):
        docs = _documents(_export(plan, "dynamo", sc, engine=engine))
        qwen = next(d for d in docs if "d-h100" in d["spec"]["services"])
        args = qwen["spec"]["services"]["d-h100"]["extraPodSpec"]["mainContainer"]["args"]
        assert _args_after(args, "--kv-cache-dtype") == expected


# --- names and files -----------------------------------------------------------------------------

@pytest.mark.parametrize("name", ["../../x", "/etc/passwd", "..", "", "Qwen/Qwen3-8B", "a" * 300,
                                  "模型", "7b-model", "-x-", "a b\tc\n"])
def test_slug_is_a_safe_dns_label(name):
    s = slug(name)
    assert DNS_LABEL.fullmatch(s) and len(s) <= 40
    assert "/" not in s and ".." not in s


def test_names_that_would_collide_are_refused(plan):
    data = copy.deepcopy(PLAN)
    data["pools"][4]["model"] = "../../X"  # 'x' after lowering: same name as '../../x'
    with pytest.raises(ExportError, match="same name in manifests"):
        export_plan(Plan.from_dict(data), "kubernetes")


def test_hostile_names_stay_in_the_folder(tmp_path, scenario):
    plan_file = tmp_path / "plan.json"
    plan_file.write_text(json.dumps(PLAN))
    out = tmp_path / "deep" / "out"
    for target in TARGETS:
        result = CliRunner().invoke(main, ["export", str(plan_file), "--to", target,
                                           "-o", str(out / target)])
        assert result.exit_code == 0, result.output
    written = {p.relative_to(tmp_path) for p in tmp_path.rglob("*") if p.is_file()}
    assert all(p == Path("plan.json") or p.parts[:2] == ("deep", "out") for p in written)
    assert not (tmp_path.parent / "x").exists() and not (tmp_path / "x").exists()
    assert all(p.parent.name in TARGETS for p in written if p != Path("plan.json"))


def test_write_export_refuses_names_that_leave_the_folder(tmp_path):
    for name in ("../x.yaml", "a/b.yaml", ".hidden", "/abs.yaml", ".."):
        with pytest.raises(ExportError, match="refusing"):
            write_export([ExportFile("ok.yaml", "a: 1\n"), ExportFile(name, "")],
                         tmp_path / "out")
        assert not (tmp_path / "out" / "ok.yaml").exists()  # nothing written at all


# --- the command line ----------------------------------------------------------------------------

@pytest.fixture(scope="module")
def paper_plan_file(tmp_path_factory) -> Path:
    """The paper's scenario solved (one H200 decode pool of 8-GPU instances)."""
    from pdopt.optimize import solve

    path = tmp_path_factory.mktemp("paper") / "plan.json"
    path.write_text(json.dumps(solve(prepare(ROOT / "scenarios" /
                                             "paper-deepseek-v31-h200.yaml")).to_dict()))
    return path


def test_cli_writes_the_paper_plan(paper_plan_file, tmp_path):
    scenario = ROOT / "scenarios" / "paper-deepseek-v31-h200.yaml"
    result = CliRunner().invoke(main, [
        "export", str(paper_plan_file), "--to", "dynamo", "--scenario", str(scenario),
        "--engine", "sglang", "-o", str(tmp_path),
        "--model-path", "deepseek-v3.1=deepseek-ai/DeepSeek-V3.1",
        "--gpu-label", "H200=nvidia.com/gpu.product=NVIDIA-H200"])
    assert result.exit_code == 0, result.output
    (dgd,) = yaml.safe_load_all((tmp_path / "deepseek-v3-1.dgd.yaml").read_text())
    decode = next(s for s in dgd["spec"]["services"].values()
                  if s.get("subComponentType") == "decode")
    plan = json.loads(paper_plan_file.read_text())
    pool = next(p for p in plan["pools"] if p["role"] == "decode")
    assert decode["replicas"] == pool["count"]
    # the paper's table at TPOT 20 ms: 30 + (20 - 18.8) / ((21.6 - 18.8) / 10) = 34.3 -> 34
    assert _args_after(decode["extraPodSpec"]["mainContainer"]["args"],
                       "--max-running-requests") == "34"
    assert decode["extraPodSpec"]["nodeSelector"] == {"nvidia.com/gpu.product": "NVIDIA-H200"}


def test_cli_prints_to_stdout_without_a_folder(paper_plan_file):
    result = CliRunner().invoke(main, ["export", str(paper_plan_file), "--to", "kubernetes"])
    assert result.exit_code == 0
    assert result.output.startswith("# ==> deepseek-v3-1.yaml <==\n")
    assert "# ==> README.md <==" in result.output


@pytest.mark.parametrize(("args", "message"), [
    (["missing.json"], "missing.json: cannot read file"),
    (["{plan}", "--gpu-label", "H100=nolabel"], "--gpu-label 'H100=nolabel': expected"),
    (["{plan}", "--model-path", "x"], "--model-path 'x': expected MODEL=PATH"),
    (["{plan}", "--gpu-labels", "{bad_labels}"], "expected a mapping of node labels"),
    (["{infeasible}"], "the plan has no solution to export (status infeasible)"),
    (["{plan}", "--scenario", "{other_scenario}"], "not an instance type of scenario"),
])
def test_cli_bad_input_is_one_line_and_exit_2(tmp_path, args, message):
    plan_file = tmp_path / "plan.json"
    plan_file.write_text(json.dumps(PLAN))
    infeasible = tmp_path / "infeasible.json"
    infeasible.write_text(json.dumps({**PLAN, "status": "infeasible", "pools": []}))
    bad_labels = tmp_path / "labels.yaml"
    bad_labels.write_text("H100: [a, b]\n")
    names = {"plan": plan_file, "infeasible": infeasible, "bad_labels": bad_labels,
             "other_scenario": ROOT / "scenarios" / "paper-deepseek-v31-h200.yaml"}
    argv = ["export", *[a.format(**names) for a in args], "--to", "kubernetes",
            "-o", str(tmp_path / "out")]
    result = CliRunner().invoke(main, argv)
    assert result.exit_code == 2
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and message in lines[0], result.output
    assert not (tmp_path / "out").exists()


# --- the published schemas (../shared/data/schemas; skipped without them) ------------------------

def _schema(*parts: str) -> dict[str, Any]:
    path = SCHEMAS.joinpath(*parts)
    if not path.is_file():
        pytest.skip(f"published schema {path} is absent (docs/cli.md, `pdopt export`, lists them)")
    return json.loads(path.read_text(encoding="utf-8"))


def _strict(schema: Any) -> Any:
    """A CRD schema where unknown fields are errors, as `kubectl apply` with strict field
    validation makes them (structural schemas otherwise prune them silently)."""
    if isinstance(schema, dict):
        out = {k: _strict(v) for k, v in schema.items()}
        if ("properties" in out and "additionalProperties" not in out
                and not out.get("x-kubernetes-preserve-unknown-fields")):
            out["additionalProperties"] = False
        return out
    if isinstance(schema, list):
        return [_strict(v) for v in schema]
    return schema


def _validate(instance: Any, schema: dict[str, Any]) -> None:
    import jsonschema

    errors = sorted(jsonschema.Draft7Validator(schema).iter_errors(instance), key=str)
    assert not errors, "\n".join(f"{list(e.absolute_path)}: {e.message}" for e in errors[:5])


@pytest.mark.parametrize("engine", ["vllm", "sglang"])
def test_kubernetes_objects_match_the_kubernetes_schemas(plan, scenario, engine):
    """Against the published Kubernetes JSON schemas (strict: unknown fields are errors) that the
    kubernetes-validate package ships, for Kubernetes 1.30 and the newest it has."""
    kv = pytest.importorskip("kubernetes_validate", reason="pip install -e '.[test]'")
    for options in ({"engine": engine}, {"image": "img", "namespace": "ns", "engine": engine}):
        for doc in _documents(_export(plan, "kubernetes", scenario, **options)):
            for version in ("1.30.0", kv.latest_version()):
                kv.validate(doc, version, strict=True)


def test_a_broken_deployment_fails_the_kubernetes_schema(plan, scenario):
    kv = pytest.importorskip("kubernetes_validate", reason="pip install -e '.[test]'")
    doc = next(d for d in _documents(_export(plan, "kubernetes", scenario))
               if d["kind"] == "Deployment")
    doc["spec"]["replica"] = doc["spec"].pop("replicas")  # a typo: the schema must catch it
    with pytest.raises(kv.ValidationError):
        kv.validate(doc, "1.30.0", strict=True)
    doc["spec"]["replicas"] = "3"  # a count as text
    del doc["spec"]["replica"]
    with pytest.raises(kv.ValidationError):
        kv.validate(doc, "1.30.0", strict=True)


@pytest.mark.parametrize("engine", ["vllm", "sglang"])
def test_dynamo_graphs_match_the_crd(plan, scenario, engine):
    schema = _strict(_schema("dynamo-1.5.0", "dynamographdeployment-v1alpha1.json"))
    docs = _documents(_export(plan, "dynamo", scenario, engine=engine, namespace="ns"))
    for doc in docs:
        _validate(doc, schema)
        assert DNS_LABEL.fullmatch(doc["metadata"]["name"])
    broken = copy.deepcopy(docs[0])
    next(iter(broken["spec"]["services"].values()))["replica"] = 1
    with pytest.raises(AssertionError):
        _validate(broken, schema)


def _helm_merge(defaults: Any, values: Any) -> Any:
    """Helm's merge of user values over a chart's: maps merge key by key, the rest replaces."""
    if isinstance(defaults, dict) and isinstance(values, dict):
        out = dict(defaults)
        for key, value in values.items():
            out[key] = _helm_merge(defaults.get(key), value)
        return out
    return values


def test_llmd_values_match_the_chart_schema(plan, scenario):
    base = "llm-d-modelservice-v0.4.12"
    schema = _schema(base, "values.schema.json")
    defaults = yaml.safe_load((SCHEMAS / base / "values.yaml").read_text(encoding="utf-8"))
    files = _export(plan, "llm-d", scenario)
    for name, text in files.items():
        if name.endswith(".values.yaml"):
            merged = _helm_merge(defaults, yaml.safe_load(text))
            _validate(merged, schema)
            _validate(yaml.safe_load(text), {**schema, "required": []})


def test_cli_output_that_is_a_file_is_one_line(tmp_path):
    plan_file = tmp_path / "plan.json"
    plan_file.write_text(json.dumps(PLAN))
    result = CliRunner().invoke(main, ["export", str(plan_file), "--to", "kubernetes",
                                       "-o", str(plan_file)])
    assert result.exit_code == 2
    assert result.output.strip() == f"error: {plan_file}: not a folder"


def test_kubernetes_sglang_prefill_exposes_its_bootstrap_port(plan, scenario):
    docs = _documents(_export(plan, "kubernetes", scenario, engine="sglang"))
    for doc in docs:
        role = doc["metadata"]["labels"]["pdopt.io/role"]
        if doc["kind"] == "Deployment":
            container = doc["spec"]["template"]["spec"]["containers"][0]
            ports = {p["name"]: p["containerPort"] for p in container["ports"]}
            bootstrap = _args_after(container["command"], "--disaggregation-bootstrap-port")
            assert "env" not in container  # the NIXL side channel is vLLM's
        else:
            ports = {p["name"]: p["port"] for p in doc["spec"]["ports"]}
            bootstrap = str(ports.get("bootstrap")) if role == "prefill" else None
        assert ports == ({"http": 30000, "bootstrap": 8998} if role == "prefill"
                         else {"http": 30000})
        assert bootstrap == ("8998" if role == "prefill" else None)


def test_instances_wider_than_a_node_are_flagged():
    data = copy.deepcopy(PLAN)
    data["pools"][0]["gpus_per_instance"] = 16
    files = _export(Plan.from_dict(data), "dynamo")
    assert "16 GPUs per instance span more than one 8-GPU node" in files["qwen-qwen3-8b.dgd.yaml"]
    assert "span more than one" not in files["x.dgd.yaml"]


def test_names_cannot_break_out_of_comments_or_commands(tmp_path):
    """A model or pool name with line breaks and shell syntax stays inside its comment, string
    or table cell: every file parses to the same objects, and the script runs nothing else."""
    data = copy.deepcopy(PLAN)
    bad = "m\nkind: Secret\r\n---\n$(touch pwned) | `x`\u2028y"
    for pool in data["pools"]:
        if pool["model"] == "../../x":
            pool["model"] = bad
            pool["instance"] = pool["instance"] + "\n- injected: true"
    for w in data["workloads"]:
        if w["model"] == "../../x":
            w["model"] = bad
    data["flows"] = [f for f in data["flows"] if f["workload"] != "evil"]
    plan = Plan.from_dict(data)
    for target in TARGETS:
        files = _export(plan, target)
        docs = _documents(files)
        assert not any(d.get("kind") == "Secret" or "injected" in d for d in docs), target
        if target in ("kubernetes", "dynamo"):
            assert len([d for d in docs if d["kind"] in ("Deployment", "DynamoGraphDeployment")
                        and "Secret" in json.dumps(d)]) == \
                (2 if target == "kubernetes" else 1)  # the name, kept as a quoted value
        for name, text in files.items():
            if name.endswith(".sh"):
                lines = [ln for ln in text.splitlines() if ln and not ln.startswith("#")]
                assert lines[0] == "set -eu" and lines[1].startswith("python -m sglang_router")
                assert all(ln.startswith("    --") for ln in lines[2:]), lines
                script = tmp_path / name
                script.write_text(text)
                if shutil.which("sh"):
                    assert subprocess.run(["sh", "-n", str(script)]).returncode == 0
            if name == "README.md":
                table = [ln for ln in text.splitlines() if ln.startswith("| ")]
                # 7 columns (pools) or 4 (flows): a '|' in a name is escaped
                assert table and all(len(re.findall(r"(?<!\\)\|", ln)) in (8, 5)
                                     for ln in table), table
                assert "\u2028" not in text and "\r" not in text
