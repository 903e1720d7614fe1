"""SGLang's P/D router: the prefill and decode server list of each model and the command lines
that start them, as a shell script and as YAML.

Flags follow sgl-router's `router_args.py` (sglang repository, sgl-router/py_src/sglang_router):
`python -m sglang_router.launch_router --pd-disaggregation --prefill URL BOOTSTRAP_PORT ...
--decode URL ... --policy P`, and SGLang's server flags (`python3 -m sglang.launch_server
--model-path M --tp N --disaggregation-mode prefill|decode --disaggregation-bootstrap-port P
--max-running-requests B --kv-cache-dtype D`). Host names are placeholders: pdopt does not know
where the servers run."""

from __future__ import annotations

import shlex
from typing import Any

from pdopt.export.common import (
    ENGINE_PORT,
    SGLANG_BOOTSTRAP_PORT,
    ExportFile,
    ExportOptions,
    ModelFacts,
    PoolFacts,
    comment,
    engine_args,
    file_name,
    one_line,
    placeholder,
    plan_header,
    pool_comment,
    readme,
    to_yaml,
)
from pdopt.plan import Plan

ROUTER_PORT = 8000
#: pdopt's routing over a pool's instances -> the router's nearest policy
POLICY = {"round-robin": "round_robin", "random": "random", "least-loaded": "power_of_two"}
SERVER_PORT = ENGINE_PORT["sglang"]


def server_command(facts: PoolFacts) -> list[str]:
    command = ["python3", "-m", "sglang.launch_server", "--model-path", facts.model_path,
               *engine_args("sglang", facts), "--host", "0.0.0.0", "--port", str(SERVER_PORT)]
    if facts.role == "prefill":
        command += ["--disaggregation-bootstrap-port", str(SGLANG_BOOTSTRAP_PORT)]
    return command


def servers(facts: PoolFacts) -> list[dict[str, Any]]:
    """One entry per instance of the pool: its URL (a placeholder host) and bootstrap port."""
    out = []
    for k in range(1, facts.pool.count + 1):
        host = placeholder(f"host of {facts.pool.instance} instance {k}")
        entry: dict[str, Any] = {"pool": facts.pool.instance, "instance": k,
                                 "url": f"http://{host}:{SERVER_PORT}"}
        if facts.role == "prefill":
            entry["bootstrap_port"] = SGLANG_BOOTSTRAP_PORT
        out.append(entry)
    return out


def router_command(model: ModelFacts) -> tuple[list[list[str]], str]:
    """The router's command line, as groups of words (a flag and its values), and the reason
    for its policy."""
    command = [["python", "-m", "sglang_router.launch_router", "--pd-disaggregation"]]
    for facts in model.role("prefill"):
        command += [["--prefill", s["url"], str(s["bootstrap_port"])] for s in servers(facts)]
    for facts in model.role("decode"):
        command += [["--decode", s["url"]] for s in servers(facts)]
    policy = POLICY.get(model.routing or "round-robin", "round_robin")
    why = (f"--policy {policy}: the scenario's routing ({model.routing})" if model.routing
           else f"--policy {policy}: pdopt's default routing (round-robin)")
    if model.routing == "least-loaded":
        why += ", as the router's power-of-two choices approach it"
    command += [["--policy", policy], ["--host", "0.0.0.0", "--port", str(ROUTER_PORT)]]
    return command, why


def _shell(groups: list[list[str]]) -> str:
    return " \\\n    ".join(" ".join(shlex.quote(w) for w in g) for g in groups) + "\n"


def export(plan: Plan, models: list[ModelFacts], options: ExportOptions) -> list[ExportFile]:
    files = []
    for model in models:
        router, why = router_command(model)
        header = plan_header(plan, "sglang-router", model.model)
        script = ["#!/bin/sh", comment(header).rstrip("\n"), "set -eu", ""]
        listing: dict[str, Any] = {"model": model.model, "model_path": model.model_path,
                                   "prefill": [], "decode": []}
        for facts in model.pools:
            command = server_command(facts)
            script.append(comment([*pool_comment(facts),
                                   f"Start on each of its {facts.pool.count} hosts "
                                   f"({facts.pool.gpus_per_instance} {facts.pool.gpu} each):"])
                          .rstrip("\n"))
            script.append("#   " + one_line(" ".join(shlex.quote(c) for c in command)))
            script.append("")
            listing[facts.role].append({"pool": facts.pool.instance, "gpu": facts.pool.gpu,
                                        "gpus_per_instance": facts.pool.gpus_per_instance,
                                        "count": facts.pool.count,
                                        "requests_per_s": round(facts.requests_per_s, 6),
                                        "share": round(facts.share, 6),
                                        "command": command, "servers": servers(facts)})
        listing["router"] = [word for group in router for word in group]
        script += [comment([f"The router of {model.model} ({why}):"]).rstrip("\n"),
                   _shell(router)]
        files.append(ExportFile(file_name(model.model, suffix=".router.sh"), "\n".join(script)))
        files.append(ExportFile(file_name(model.model, suffix=".servers.yaml"),
                                comment(header) + to_yaml(listing)))
    how = ["## Applying", "",
           "Start the servers with the commands in each `.router.sh` (one per host of a pool), "
           "replace the host placeholders in the router command, then run it. The "
           "`.servers.yaml` file lists the same servers and commands for other tooling."]
    note = ("sglang_router's PD mode takes no per-server weights: its policy spreads requests "
            "over the listed servers alike, so each instance gets an equal part of its role's "
            "traffic. Where a model has several pools of a role with different per-instance "
            "rates below, the router will not reproduce the plan's split exactly.")
    return [*files, readme(plan, "sglang-router", models, files, how, note)]
