"""llm-d: Helm values for the llm-d-modelservice chart (v0.4.12, llm-d-incubation/
llm-d-modelservice at 3051935, 2026-04-22; its values.schema.json validates them in the tests).

One release per model holds its largest prefill pool and largest decode pool (prefill/decode
`replicas`, `parallelism.tensor` = GPUs per instance, the GPU type as `acceleratorTypes` node
affinity, vLLM flags in `containers[0].args`, the routing sidecar with the NIXL connector); each
further pool of the model is a release of its own with the other role's `create: false`. Every
release carries the same `llm-d.ai/model` label, so one InferencePool (the llm-d router, installed
from its own chart) selects the pods of all of them and tells prefill from decode by the
`llm-d.ai/role` label the chart adds."""

from __future__ import annotations

from typing import Any

from pdopt.export.common import (
    AMD_GPU_RESOURCE,
    ENGINE_PORT,
    ExportFile,
    ExportOptions,
    ModelFacts,
    PoolFacts,
    comment,
    engine_args,
    file_name,
    placeholder,
    plan_header,
    pool_comment,
    readme,
    slug,
    to_yaml,
)
from pdopt.plan import Plan

CHART = "llm-d-modelservice"
CHART_VERSION = "v0.4.12"
SERVICE_PORT = ENGINE_PORT["vllm"]  # the routing sidecar's port (routing.servicePort)
DECODE_ENGINE_PORT = 8200  # vLLM behind the decode pods' routing sidecar (routing.proxy.targetPort)
NIXL_SIDE_CHANNEL_PORT = 5600


def _accelerator(facts: PoolFacts) -> str:
    return "amd" if facts.gpu_resource == AMD_GPU_RESOURCE else "nvidia"


def _role_values(facts: PoolFacts, options: ExportOptions) -> dict[str, Any]:
    # the chart adds `vllm serve`, --port, --served-model-name and --tensor-parallel-size itself
    args = engine_args("vllm", facts)
    i = args.index("--tensor-parallel-size")
    del args[i:i + 2]
    port = DECODE_ENGINE_PORT if facts.role == "decode" else SERVICE_PORT
    values: dict[str, Any] = {
        "create": True,
        "replicas": facts.pool.count,
        "parallelism": {"tensor": facts.tensor_parallel},
        "accelerator": {"type": _accelerator(facts)},
    }
    if len(facts.node_selector) == 1:
        ((key, value),) = facts.node_selector.items()
        values["acceleratorTypes"] = {"labelKey": key, "labelValues": [value]}
    else:
        values["nodeSelector"] = dict(facts.node_selector)
    values["containers"] = [{
        "name": "vllm",
        "image": options.image or placeholder("llm-d vLLM image"),
        "modelCommand": "vllmServe",
        "args": args,
        "env": [{"name": "VLLM_NIXL_SIDE_CHANNEL_HOST",
                 "valueFrom": {"fieldRef": {"fieldPath": "status.podIP"}}},
                {"name": "VLLM_NIXL_SIDE_CHANNEL_PORT", "value": str(NIXL_SIDE_CHANNEL_PORT)}],
        "ports": [{"containerPort": port, "protocol": "TCP"},
                  {"containerPort": NIXL_SIDE_CHANNEL_PORT, "protocol": "TCP"}],
        "mountModelVolume": True,
    }]
    return values


def values(model: ModelFacts, prefill: PoolFacts | None, decode: PoolFacts | None,
           options: ExportOptions) -> dict[str, Any]:
    """The values of one release: one prefill and/or one decode pool of a model."""
    path = model.model_path
    uri = f"hf://{path}" if not path.startswith("<FILL") else placeholder(
        f"model URI of {model.model} (hf://org/name, pvc://claim/path, ...)")
    first = prefill or decode
    assert first is not None
    out: dict[str, Any] = {
        "multinode": False,
        "modelArtifacts": {"name": path, "uri": uri,
                           "labels": {"llm-d.ai/inference-serving": "true",
                                      "llm-d.ai/model": slug(model.model)}},
        "accelerator": {"type": _accelerator(first)},
        "routing": {"servicePort": SERVICE_PORT,
                    "proxy": {"enabled": True, "targetPort": DECODE_ENGINE_PORT,
                              "connector": "nixlv2", "secure": False}},
    }
    for role, facts in (("prefill", prefill), ("decode", decode)):
        out[role] = _role_values(facts, options) if facts else {"create": False, "replicas": 0}
    return out


def releases(model: ModelFacts) -> list[tuple[PoolFacts | None, PoolFacts | None]]:
    """(prefill, decode) pools per release: the largest of each role together, the rest alone."""
    prefill, decode = model.role("prefill"), model.role("decode")
    first = [(prefill[0] if prefill else None, decode[0] if decode else None)]
    return first + [(p, None) for p in prefill[1:]] + [(None, d) for d in decode[1:]]


def export(plan: Plan, models: list[ModelFacts], options: ExportOptions) -> list[ExportFile]:
    files = []
    for model in models:
        for k, (prefill, decode) in enumerate(releases(model)):
            lines = plan_header(plan, "llm-d", model.model) + [f"Values for the {CHART} Helm chart "
                                                   f"{CHART_VERSION}."]
            for facts in (prefill, decode):
                if facts is not None:
                    lines += ["", *pool_comment(facts)]
            only = prefill or decode
            assert only is not None  # every release has a pool
            parts = [model.model] if k == 0 else [model.model, only.pool.instance]
            files.append(ExportFile(file_name(*parts, suffix=".values.yaml"),
                                    comment(lines) + to_yaml(values(model, prefill, decode,
                                                                    options))))
    how = ["## Applying", "",
           f"One Helm release of the `{CHART}` chart ({CHART_VERSION}) per file: `helm install "
           f"<release> llm-d-modelservice/{CHART} --version {CHART_VERSION} -f <file>`, plus "
           "an InferencePool (the llm-d router) selecting `llm-d.ai/model: <model>`, installed "
           "from its own chart as in llm-d's P/D guide."]
    note = ("The llm-d router picks a prefill and a decode pod per request by its scorers (load, "
            "prefix cache); it has no per-pool weights. Where a model has several pools of a "
            "role, the plan's shares below are what the router's choices should approach.")
    return [*files, readme(plan, "llm-d", models, files, how, note)]
