"""Plain Kubernetes manifests of a plan: one Deployment per pool (replicas = instance count, GPU
limits = GPUs per instance, a node selector for the pool's GPU type) and one Service per model and
role, one YAML file per model (apps/v1 Deployment, v1 Service; validated in the tests against the
Kubernetes 1.30 JSON schemas)."""

from __future__ import annotations

from typing import Any

from pdopt.export.common import (
    ENGINE_PORT,
    SGLANG_BOOTSTRAP_PORT,
    Engine,
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
    slug,
    to_yaml,
)
from pdopt.plan import Plan

ROLE_LABEL = "pdopt.io/role"
POOL_LABEL = "pdopt.io/pool"
MODEL_LABEL = "app.kubernetes.io/name"


def _command(options: ExportOptions, facts: PoolFacts) -> list[str]:
    port = str(ENGINE_PORT[options.engine])
    if options.engine == "vllm":
        return ["vllm", "serve", facts.model_path, "--port", port, *engine_args("vllm", facts)]
    bootstrap = (["--disaggregation-bootstrap-port", str(SGLANG_BOOTSTRAP_PORT)]
                 if facts.role == "prefill" else [])
    return ["python3", "-m", "sglang.launch_server", "--model-path", facts.model_path,
            "--host", "0.0.0.0", "--port", port, *engine_args("sglang", facts), *bootstrap]


def _ports(engine: Engine, role: str) -> list[dict[str, Any]]:
    """The engine's HTTP port, and SGLang prefill's bootstrap port for the KV handshake."""
    ports: list[dict[str, Any]] = [{"name": "http", "containerPort": ENGINE_PORT[engine]}]
    if engine == "sglang" and role == "prefill":
        ports.append({"name": "bootstrap", "containerPort": SGLANG_BOOTSTRAP_PORT})
    return ports


def _env(engine: Engine) -> list[dict[str, Any]]:
    """vLLM's NIXL side channel on the pod's own address (as llm-d's P/D examples set it)."""
    if engine != "vllm":
        return []
    return [{"name": "VLLM_NIXL_SIDE_CHANNEL_HOST",
             "valueFrom": {"fieldRef": {"fieldPath": "status.podIP"}}}]


def _metadata(name: str, options: ExportOptions, labels: dict[str, str],
              annotations: dict[str, str] | None = None) -> dict[str, Any]:
    meta: dict[str, Any] = {"name": name}
    if options.namespace:
        meta["namespace"] = options.namespace
    meta["labels"] = labels
    if annotations:
        meta["annotations"] = annotations
    return meta


def deployment(model: ModelFacts, facts: PoolFacts, options: ExportOptions) -> dict[str, Any]:
    pool = facts.pool
    selector = {MODEL_LABEL: slug(model.model), POOL_LABEL: slug(pool.instance)}
    labels = {**selector, ROLE_LABEL: pool.role, "app.kubernetes.io/managed-by": "pdopt"}
    gpus = str(pool.gpus_per_instance)
    container = {
        "name": "engine",
        "image": options.image or placeholder("container image"),
        "command": _command(options, facts),
        **({"env": env} if (env := _env(options.engine)) else {}),
        "ports": _ports(options.engine, pool.role),
        "resources": {"limits": {facts.gpu_resource: gpus},
                      "requests": {facts.gpu_resource: gpus}},
    }
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": _metadata(k8s_name(model.model, pool.instance), options, labels,
                              {"pdopt.io/model": model.model, "pdopt.io/instance": pool.instance,
                               "pdopt.io/gpu": pool.gpu}),
        "spec": {
            "replicas": pool.count,
            "selector": {"matchLabels": selector},
            "template": {
                "metadata": {"labels": labels},
                "spec": {"nodeSelector": dict(facts.node_selector), "containers": [container]},
            },
        },
    }


def service(model: ModelFacts, role: str, options: ExportOptions) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": _metadata(k8s_name(model.model, role), options,
                              {MODEL_LABEL: slug(model.model), ROLE_LABEL: role},
                              {"pdopt.io/model": model.model}),
        "spec": {
            "selector": {MODEL_LABEL: slug(model.model), ROLE_LABEL: role},
            "ports": [{"name": p["name"], "port": p["containerPort"], "targetPort": p["name"],
                       "protocol": "TCP"} for p in _ports(options.engine, role)],
        },
    }


def export(plan: Plan, models: list[ModelFacts], options: ExportOptions) -> list[ExportFile]:
    files = []
    for model in models:
        parts = [comment(plan_header(plan, "kubernetes", model.model))]
        for facts in model.pools:
            parts.append("---\n" + comment(pool_comment(facts))
                         + to_yaml(deployment(model, facts, options)))
        for role in ("prefill", "decode"):
            if model.role(role):
                parts.append("---\n" + comment([f"{role} endpoints of {model.model}"])
                             + to_yaml(service(model, role, options)))
        files.append(ExportFile(file_name(model.model, suffix=".yaml"), "".join(parts)))
    how = ["## Applying", "", "`kubectl apply -f <file>` once every placeholder is filled. The "
           "prefill and decode Services give each role's endpoints to the P/D router or gateway "
           "you run in front (not generated here)."]
    note = ("Kubernetes Services spread connections evenly over their pods and take no weights: "
            "the plan's shares below are what the P/D router in front should reproduce (per "
            "instance rates are equal within a pool).")
    return [*files, readme(plan, "kubernetes", models, files, how, note)]
