"""NVIDIA Dynamo: one DynamoGraphDeployment (nvidia.com/v1alpha1) per model, a Frontend and one
worker service per pool (componentType worker, subComponentType prefill/decode, replicas = the
pool's count, GPU limit = GPUs per instance).

Follows the DynamoGraphDeployment CRD of Dynamo 1.5.0 (ai-dynamo/dynamo main at 2a6da14,
2026-08-21: deploy/operator/config/crd/bases/nvidia.com_dynamographdeployments.yaml; 1.5 serves
v1alpha1 and v1beta1, and v1alpha1 is what earlier releases serve too, though 0.5's lacks
`subComponentType`), and its disaggregated vLLM and SGLang examples
(examples/backends/{vllm,sglang}/deploy/disagg.yaml): `python3 -m dynamo.vllm --model M
--disaggregation-mode prefill|decode` and `python3 -m dynamo.sglang --model-path M
--disaggregation-mode prefill|decode --disaggregation-transfer-backend nixl`."""

from __future__ import annotations

from typing import Any

from pdopt.export.common import (
    NVIDIA_GPU_RESOURCE,
    ExportError,
    ExportFile,
    ExportOptions,
    ModelFacts,
    PoolFacts,
    comment,
    engine_args,
    file_name,
    k8s_name,
    placeholder,
    plan_header,
    pool_comment,
    readme,
    to_yaml,
)
from pdopt.plan import Plan

API_VERSION = "nvidia.com/v1alpha1"
#: the CRD's `spec.services` maxProperties: the Frontend and at most 24 worker pools per model
MAX_SERVICES = 25
SGLANG_DYNAMO_BOOTSTRAP_PORT = 12345  # the port Dynamo's SGLang examples use


def _worker(facts: PoolFacts, options: ExportOptions) -> dict[str, Any]:
    pool = facts.pool
    if options.engine == "vllm":
        command = ["python3", "-m", "dynamo.vllm"]
        args = ["--model", facts.model_path, *engine_args("vllm", facts, dynamo=True)]
    else:
        command = ["python3", "-m", "dynamo.sglang"]
        args = ["--model-path", facts.model_path, "--served-model-name", facts.model_path,
                *engine_args("sglang", facts), "--disaggregation-transfer-backend", "nixl",
                "--disaggregation-bootstrap-port", str(SGLANG_DYNAMO_BOOTSTRAP_PORT),
                "--host", "0.0.0.0"]
    limits: dict[str, Any] = {"gpu": str(pool.gpus_per_instance)}
    if facts.gpu_resource != NVIDIA_GPU_RESOURCE:
        limits["gpuType"] = facts.gpu_resource
    return {
        "componentType": "worker",
        "subComponentType": pool.role,
        "replicas": pool.count,
        "resources": {"limits": limits},
        "annotations": {"pdopt.io/instance": pool.instance, "pdopt.io/gpu": pool.gpu},
        "extraPodSpec": {
            "nodeSelector": dict(facts.node_selector),
            "mainContainer": {"image": options.image or placeholder("Dynamo runtime image"),
                              "command": command, "args": args},
        },
    }


def graph(model: ModelFacts, options: ExportOptions) -> dict[str, Any]:
    if len(model.pools) + 1 > MAX_SERVICES:
        raise ExportError(f"model '{model.model}' has {len(model.pools)} pools; a "
                          f"DynamoGraphDeployment holds at most {MAX_SERVICES - 1} workers")
    services: dict[str, Any] = {"Frontend": {
        "componentType": "frontend", "replicas": 1,
        "extraPodSpec": {"mainContainer": {
            "image": options.image or placeholder("Dynamo runtime image")}}}}
    for facts in model.pools:
        services[k8s_name(facts.pool.instance)] = _worker(facts, options)
    metadata: dict[str, Any] = {"name": k8s_name(model.model)}
    if options.namespace:
        metadata["namespace"] = options.namespace
    metadata["annotations"] = {"pdopt.io/model": model.model}
    return {"apiVersion": API_VERSION, "kind": "DynamoGraphDeployment", "metadata": metadata,
            "spec": {"backendFramework": options.engine, "services": services}}


def export(plan: Plan, models: list[ModelFacts], options: ExportOptions) -> list[ExportFile]:
    files = []
    for model in models:
        lines = plan_header(plan, "dynamo", model.model)
        for facts in model.pools:
            lines += ["", *pool_comment(facts)]
        files.append(ExportFile(file_name(model.model, suffix=".dgd.yaml"),
                                comment(lines) + to_yaml(graph(model, options))))
    how = ["## Applying", "",
           "Needs the Dynamo platform (operator and CRDs) installed in the cluster; this follows "
           f"the `{API_VERSION}` DynamoGraphDeployment of Dynamo 1.5.0 (operators whose CRD "
           "lacks `subComponentType`, such as 0.5, will not take it). "
           "`kubectl apply -f <file>`. Add `envFromSecret:` to the workers if the model needs a "
           "Hugging Face token."]
    note = ("Dynamo's frontend routes to workers by its router mode (round-robin, random or "
            "KV-aware) and takes no per-pool weights; where a model has several pools of one "
            "role, the plan's shares below are what its traffic split should approach.")
    return [*files, readme(plan, "dynamo", models, files, how, note)]
