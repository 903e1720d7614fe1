"""What every export target needs from a plan: safe names, engine arguments, GPU labels, the
routing shares, the header that names the plan and its SLOs, and the placeholders for what pdopt
cannot know (docs/cli.md, `pdopt export`).

No click here: the CLI (pdopt/cli/export.py) parses flags into an `ExportOptions`.
"""

from __future__ import annotations

import hashlib
import re
from collections import defaultdict
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

import yaml

from pdopt.errors import PdoptError
from pdopt.plan import Plan, PoolPlan
from pdopt.scenario.schema import Instance, Scenario

Engine = Literal["vllm", "sglang"]
ENGINES: tuple[Engine, ...] = ("vllm", "sglang")

#: Every value pdopt cannot know is written as this, so `grep '<FILL:'` finds what is left to do.
PLACEHOLDER = "<FILL: {}>"

#: vLLM's disaggregated prefill/decode KV connector (the one Dynamo's and llm-d's examples use).
NIXL_KV_TRANSFER_CONFIG = '{"kv_connector":"NixlConnector","kv_role":"kv_both"}'

#: HTTP port of the engines' OpenAI-compatible servers (their defaults).
ENGINE_PORT: dict[Engine, int] = {"vllm": 8000, "sglang": 30000}
#: GPUs of a typical GPU node; an instance with more spans nodes (a note in the files)
GPUS_PER_NODE = 8
#: SGLang prefill servers' bootstrap port for the KV handshake with decode (its default).
SGLANG_BOOTSTRAP_PORT = 8998

# KV-cache data types (scenario names) as each engine's --kv-cache-dtype spells them. bf16/fp16
# are the engines' default (`auto`: the model's dtype), so nothing is written for them.
_KV_DTYPE_FLAG: dict[Engine, dict[str, str | None]] = {
    "vllm": {"bf16": None, "fp16": None, "fp8": "fp8"},
    "sglang": {"bf16": None, "fp16": None, "fp8": "fp8_e4m3", "fp4": "fp4_e2m1"},
}

# aiconfigurator's kvcache_quant_mode names -> the scenario's KV dtype names (first match)
_AIC_KV_MODES = (("fp8", "fp8"), ("int8", "int8"), ("bfloat16", "bf16"), ("float16", "fp16"),
                 ("bf16", "bf16"), ("fp16", "fp16"), ("fp4", "fp4"))

# A Hugging Face repository id (`org/name`): used as the model path as it is.
_HF_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]*/[A-Za-z0-9][A-Za-z0-9_.-]*")
# AMD Instinct GPU names (MI250, MI300X, MI325X, MI355X ...): `amd.com/gpu` instead of NVIDIA's.
_AMD_GPU = re.compile(r"(?i)(?:^|[^a-z])(mi[0-9]{3}|instinct|amd)")

NVIDIA_GPU_RESOURCE = "nvidia.com/gpu"
AMD_GPU_RESOURCE = "amd.com/gpu"
#: The node label each vendor's Kubernetes labeller sets to the GPU's product name (NVIDIA GPU
#: Feature Discovery; the AMD GPU operator's node labeller). Its value on a cluster's nodes is
#: not something pdopt can know, so the default value is a placeholder (docs/cli.md).
DEFAULT_GPU_LABEL_KEY = {NVIDIA_GPU_RESOURCE: "nvidia.com/gpu.product",
                         AMD_GPU_RESOURCE: "amd.com/gpu.product-name"}


class ExportError(PdoptError):
    """A plan, scenario or option that cannot be turned into manifests."""


@dataclass(frozen=True)
class ExportOptions:
    """What the user tells pdopt beyond the plan and scenario (all optional)."""

    engine: Engine = "vllm"  # kubernetes and dynamo targets; llm-d is vLLM, sglang-router SGLang
    image: str | None = None  # container image of the engine
    model_paths: Mapping[str, str] = field(default_factory=dict)  # model name -> path / HF id
    gpu_labels: Mapping[str, Mapping[str, str]] = field(default_factory=dict)  # GPU -> selector
    namespace: str | None = None


@dataclass(frozen=True)
class ExportFile:
    """One output file: a bare file name (no folder) and its text."""

    name: str
    text: str


@dataclass
class PoolFacts:
    """One pool of the plan with everything a manifest needs about it."""

    pool: PoolPlan
    model_path: str
    tensor_parallel: int
    max_batch: int | None  # decode: the largest batch meeting the pool's strictest TPOT target
    kv_dtype: str | None  # scenario name of the KV-cache dtype, None: the engine's default
    gpu_resource: str
    node_selector: dict[str, str]
    requests_per_s: float  # routed to the pool in the plan
    share: float  # of its model's requests in this role
    notes: list[str] = field(default_factory=list)

    @property
    def role(self) -> str:
        return self.pool.role

    @property
    def requests_per_s_per_instance(self) -> float:
        return self.requests_per_s / self.pool.count if self.pool.count else 0.0


@dataclass
class ModelFacts:
    """The pools of one model, prefill first, largest first within a role."""

    model: str
    model_path: str
    pools: list[PoolFacts]
    routing: str | None = None  # the scenario's routing over a pool's instances, when one

    def role(self, role: str) -> list[PoolFacts]:
        return [p for p in self.pools if p.role == role]


# --- names ---------------------------------------------------------------------------------------

def _digest(text: str) -> str:
    return hashlib.sha1(text.encode("utf-8")).hexdigest()[:6]


def slug(text: str, max_length: int = 40) -> str:
    """A DNS-1123 label (lower-case letters, digits and '-', starting with a letter, at most
    `max_length` characters) naming `text`: nothing in it can climb out of a folder ('/', '..')
    or break a Kubernetes name. A name cut to fit ends in a short hash of the whole name. Two
    names of one plan with the same slug are refused (`plan_facts`)."""
    clean = re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")
    if not clean or not clean[0].isalpha():
        clean = f"x-{clean}".rstrip("-")
    if len(clean) > max_length:
        clean = f"{clean[:max_length - 7].rstrip('-')}-{_digest(text)}"
    return clean


def _check_distinct(names: set[str], what: str) -> None:
    seen: dict[str, str] = {}
    for name in sorted(names):
        other = seen.setdefault(slug(name), name)
        if other != name:
            raise ExportError(f"{what} '{other}' and '{name}' have the same name in manifests "
                              f"('{slug(name)}'); rename one in the scenario")


def k8s_name(*parts: str) -> str:
    """A Kubernetes object name (DNS-1035 label, at most 63 characters) from name parts."""
    return slug("-".join(slug(p) for p in parts), 63)


def placeholder(what: str) -> str:
    """A value to fill in, on one line (names in it may come from any plan)."""
    return PLACEHOLDER.format(one_line(what).replace(">", "?"))


def file_name(*parts: str, suffix: str) -> str:
    """A bare file name from name parts (each a slug): never a path, never hidden."""
    return "-".join(slug(p) for p in parts) + suffix


# --- engine arguments ---------------------------------------------------------------------------

def kv_dtype_flag(engine: Engine, kv_dtype: str | None) -> str | None:
    """The engine's --kv-cache-dtype value; None for the engine's default; a placeholder where the
    engine has no such dtype."""
    if kv_dtype is None:
        return None
    table = _KV_DTYPE_FLAG[engine]
    if kv_dtype in table:
        return table[kv_dtype]
    return placeholder(f"{engine} --kv-cache-dtype for a {kv_dtype} KV cache")


def engine_args(engine: Engine, facts: PoolFacts, *, dynamo: bool = False) -> list[str]:
    """Engine flags of one pool: parallelism, the decode batch cap, the KV dtype, the P/D mode.

    vLLM: `--tensor-parallel-size`, `--max-num-seqs`, `--kv-cache-dtype`, NIXL KV transfer (and
    Dynamo's `--disaggregation-mode`); SGLang: `--tp`, `--max-running-requests`,
    `--kv-cache-dtype`, `--disaggregation-mode`."""
    args: list[str] = []
    kv = kv_dtype_flag(engine, facts.kv_dtype)
    if engine == "vllm":
        args += ["--tensor-parallel-size", str(facts.tensor_parallel)]
        if facts.role == "decode" and facts.max_batch is not None:
            args += ["--max-num-seqs", str(facts.max_batch)]
        if kv is not None:
            args += ["--kv-cache-dtype", kv]
        if dynamo:
            args += ["--disaggregation-mode", facts.role]
        args += ["--kv-transfer-config", NIXL_KV_TRANSFER_CONFIG]
    else:
        args += ["--tp", str(facts.tensor_parallel), "--disaggregation-mode", facts.role]
        if facts.role == "decode" and facts.max_batch is not None:
            args += ["--max-running-requests", str(facts.max_batch)]
        if kv is not None:
            args += ["--kv-cache-dtype", kv]
    return args


# --- facts from the plan and the scenario --------------------------------------------------------

def model_path(model: str, options: ExportOptions, raw: Scenario | None) -> str:
    """--model-path given for it; else a Hugging Face id the scenario names (the model's own name
    or an aiconfigurator profile's model); else a placeholder."""
    if model in options.model_paths:
        return options.model_paths[model]
    if _HF_ID.fullmatch(model) and ".." not in model:
        return model
    for inst in raw.instances if raw is not None else []:
        aic = inst.profile.aiconfigurator if inst.model == model and inst.profile else None
        if aic is not None and _HF_ID.fullmatch(aic.model) and ".." not in aic.model:
            return aic.model
    return placeholder(f"model path or Hugging Face id of {model}")


def _kv_dtype(model: str, instance: str, scenario: Scenario | None,
              raw: Scenario | None) -> str | None:
    """The KV dtype the pool's numbers assume: its estimate profile's `kv_dtype` or
    aiconfigurator's `kvcache_quant_mode`, else the model's `kv_dtype` where the scenario sets
    it; None where the scenario does not say (the engine's default)."""
    if raw is not None:
        for inst in raw.instances:
            if inst.name != instance or inst.profile is None:
                continue
            if inst.profile.estimate is not None:
                return inst.profile.estimate.kv_dtype
            mode = inst.profile.aiconfigurator.kvcache_quant_mode if inst.profile.aiconfigurator \
                else None
            if mode:
                mode = mode.lower()
                return next((dtype for key, dtype in _AIC_KV_MODES if key in mode), mode)
    spec = scenario.models.get(model) if scenario is not None else None
    if spec is not None and "kv_dtype" in spec.model_fields_set:
        return spec.kv_dtype
    return None


def _field(group: Any, name: str) -> Any:
    """A field of a pool's SLO group (a mapping in older plans, an object in newer ones)."""
    return group.get(name) if isinstance(group, Mapping) else getattr(group, name, None)


def _decode_max_batch(pool: PoolPlan, scenario: Scenario, instance: Instance,
                      notes: list[str]) -> int | None:
    """The largest batch at which the pool meets the TPOT target of its strictest SLO group for
    every workload routed there, capped by the KV cache (docs/method.md, Eqs. D4-D6): above it
    the engine would admit requests whose TPOT misses the target."""
    from pdopt.capacity import instance_decode_capacity

    by_group: list[tuple[float, int]] = []
    groups: list[Any] = list(pool.groups) or [
        {"tpot_target_ms": None, "routed_requests_per_s": pool.routed_requests_per_s}]
    for group in groups:
        batches = []
        for name in _field(group, "routed_requests_per_s") or {}:
            try:
                workload = scenario.workload(name)
            except KeyError:
                raise ExportError(f"pool '{pool.instance}': workload '{name}' of the plan is not "
                                  f"in the scenario") from None
            target = _field(group, "tpot_target_ms") or workload.slo.tpot_ms
            try:
                batches.append(instance_decode_capacity(scenario, instance, workload,
                                                        float(target)).batch)
            except PdoptError as e:
                notes.append(f"no decode batch cap: {e}")
                return None
        if batches:
            by_group.append((float(_field(group, "tpot_target_ms") or 0.0), min(batches)))
    if not by_group:
        return None
    if len({b for _, b in by_group}) > 1:
        notes.append("SLO groups' batch caps (TPOT target ms: batch): "
                     + ", ".join(f"{t:g}: {b}" for t, b in by_group)
                     + "; the strictest is used for the whole pool")
    return min(b for _, b in by_group)


def gpu_selector(gpu: str, options: ExportOptions) -> tuple[str, dict[str, str]]:
    """The GPU's extended resource name and node selector (--gpu-label / a labels file, else the
    vendor's product label with a placeholder value)."""
    labels = dict(options.gpu_labels.get(gpu, {}))
    amd = bool(_AMD_GPU.search(gpu)) or any(k.startswith("amd.com/") for k in labels)
    resource = AMD_GPU_RESOURCE if amd else NVIDIA_GPU_RESOURCE
    if not labels:
        labels = {DEFAULT_GPU_LABEL_KEY[resource]: placeholder(f"node label value of {gpu} nodes")}
    return resource, labels


def plan_facts(plan: Plan, options: ExportOptions, scenario: Scenario | None = None,
               raw: Scenario | None = None) -> list[ModelFacts]:
    """The plan's pools grouped by model, with engine arguments from the scenario.

    `scenario` is the prepared (resolved) scenario the plan was solved from; `raw` the same file
    validated but not resolved (its `profile:` blocks name KV dtypes and model ids). Without a
    scenario the decode batch cap and KV dtype are left to the engine and the files say so.
    Raises ExportError when the plan has no solution or does not belong to the scenario."""
    if not plan.has_plan:
        raise ExportError("the plan has no solution to export "
                          f"(status {getattr(plan.status, 'value', plan.status)})")
    if not any(p.count > 0 for p in plan.pools):
        raise ExportError("the plan has no instances to export")
    _check_distinct({p.model for p in plan.pools}, "models")
    for model in {p.model for p in plan.pools}:
        _check_distinct({p.instance for p in plan.pools if p.model == model}, "pools")
    totals: dict[tuple[str, str], float] = defaultdict(float)
    for p in plan.pools:
        totals[(p.model, p.role)] += sum(p.routed_requests_per_s.values())
    by_model: dict[str, list[PoolFacts]] = defaultdict(list)
    paths: dict[str, str] = {}
    for pool in plan.pools:
        if pool.count <= 0:
            continue
        notes: list[str] = []
        instance = None
        if scenario is not None:
            try:
                instance = scenario.instance(pool.instance)
            except KeyError:
                raise ExportError(f"pool '{pool.instance}' of the plan is not an instance type of "
                                  f"scenario '{scenario.name}'") from None
            for name in ("model", "role", "gpu", "gpus_per_instance"):
                if getattr(instance, name) != getattr(pool, name):
                    raise ExportError(
                        f"pool '{pool.instance}': {name} is {getattr(pool, name)!r} in the plan "
                        f"but {getattr(instance, name)!r} in scenario '{scenario.name}'")
        max_batch = None
        if pool.role == "decode" and scenario is not None and instance is not None:
            max_batch = _decode_max_batch(pool, scenario, instance, notes)
        if scenario is None:
            notes.append("no --scenario: decode batch cap and KV-cache dtype left to the engine")
        path = paths.setdefault(pool.model, model_path(pool.model, options, raw))
        resource, selector = gpu_selector(pool.gpu, options)
        rate = sum(pool.routed_requests_per_s.values())
        total = totals[(pool.model, pool.role)]
        by_model[pool.model].append(PoolFacts(
            pool=pool, model_path=path, tensor_parallel=pool.gpus_per_instance,
            max_batch=max_batch, kv_dtype=_kv_dtype(pool.model, pool.instance, scenario, raw),
            gpu_resource=resource, node_selector=selector, requests_per_s=rate,
            share=rate / total if total > 0 else 1.0, notes=notes))
    models = []
    for model in sorted(by_model):
        pools = sorted(by_model[model], key=lambda f: (f.role != "prefill", -f.pool.count,
                                                       f.pool.instance))
        routings = {scenario.routing_of(w) for w in scenario.workloads if w.model == model} \
            if scenario is not None else set()
        models.append(ModelFacts(model=model, model_path=paths[model], pools=pools,
                                 routing=routings.pop() if len(routings) == 1 else None))
    return models


# --- text ---------------------------------------------------------------------------------------

def _ms(value: float) -> str:
    return f"{value:,.0f} ms" if value >= 1000 else f"{value:.4g} ms"


def plan_header(plan: Plan, target: str, model: str | None = None) -> list[str]:
    """Comment lines naming the plan, its cost and the SLO and prediction of every workload (of
    `model` only, when given)."""
    lines = [f"Generated by `pdopt export --to {target}` from the plan of scenario "
             f"'{plan.scenario}'.",
             f"Plan: {sum(p.count for p in plan.pools)} instances, {plan.total_gpus} GPUs, "
             + (f"${plan.cost_per_hour:,.2f}/hour" if plan.cost_per_hour is not None else "")
             + f" ({getattr(plan.status, 'value', plan.status)}).",
             "SLOs (target / predicted by pdopt):"]
    for w in plan.workloads:
        if model is not None and w.model != model:
            continue
        ttft = "TTFT" if w.ttft_percentile is None else f"TTFT p{w.ttft_percentile:g}"
        lines.append(f"  {w.workload} ({w.model}, {w.demand_requests_per_s:.4g} req/s): "
                     f"{ttft} {_ms(w.ttft_target_ms)} / {_ms(w.expected_ttft_ms)}, "
                     f"TPOT {_ms(w.tpot_target_ms)} / {_ms(w.expected_tpot_ms)}")
    estimated = sorted(p.instance for p in plan.pools
                       if p.instance in plan.estimated and (model is None or p.model == model))
    if estimated:
        lines.append("Pools sized on estimated, not measured, numbers (measure before relying "
                     f"on them): {', '.join(estimated)}.")
    lines.append(f"Values to fill in are marked {PLACEHOLDER.format('...')}.")
    return lines


# Characters that end a line in YAML, shell or Markdown (and other control characters): a name
# from a plan or scenario must not end a comment line and start a line of its own.
_LINE_BREAKING = re.compile("[\x00-\x1f\x7f\x85\u2028\u2029]")


def one_line(text: str) -> str:
    """The text with every line-breaking or control character shown as '?'."""
    return _LINE_BREAKING.sub("?", text)


def comment(lines: list[str]) -> str:
    """Comment lines (YAML and shell); names inside cannot break out of them."""
    return "".join(f"# {one_line(line)}".rstrip() + "\n" for line in lines)


def _cell(value: object) -> str:
    return one_line(str(value)).replace("|", "\\|")


def pool_comment(facts: PoolFacts) -> list[str]:
    p = facts.pool
    lines = [f"{p.role} pool '{p.instance}': {p.count} x {p.gpus_per_instance} {p.gpu}, "
             f"${p.cost_per_hour:,.2f}/hour, utilisation {p.utilization:.0%}, "
             f"{facts.requests_per_s:.4g} req/s ({facts.share:.0%} of {p.model}'s {p.role})"]
    if facts.max_batch is not None:
        lines.append(f"decode batch cap {facts.max_batch} (strictest TPOT target of the pool)")
    if p.gpus_per_instance > GPUS_PER_NODE:
        lines.append(f"{p.gpus_per_instance} GPUs per instance span more than one "
                     f"{GPUS_PER_NODE}-GPU node: this needs a multi-node deployment "
                     "(LeaderWorkerSet, Dynamo `multinode`), not written here")
    return lines + facts.notes


class _Dumper(yaml.SafeDumper):
    """Safe YAML without anchors and aliases (manifests repeat label maps as they are)."""

    def ignore_aliases(self, data: Any) -> bool:
        return True


def to_yaml(data: Any) -> str:
    return yaml.dump(data, Dumper=_Dumper, sort_keys=False, width=100, allow_unicode=True)


def routing_lines(plan: Plan, models: list[ModelFacts]) -> list[str]:
    """Markdown: each pool's share of its model's requests and the plan's per-workload flows."""
    lines = ["| model | role | pool | instances | requests/s | share | per instance |",
             "|---|---|---|---|---|---|---|"]
    for m in models:
        for f in m.pools:
            lines.append(f"| {_cell(m.model)} | {f.role} | {_cell(f.pool.instance)} | "
                         f"{f.pool.count} | "
                         f"{f.requests_per_s:.4g} | {f.share:.1%} | "
                         f"{f.requests_per_s_per_instance:.4g} |")
    if plan.flows:
        lines += ["", "Flows of the plan (prefill pool -> decode pool):", "",
                  "| workload | prefill pool | decode pool | requests/s |", "|---|---|---|---|"]
        lines += [f"| {_cell(f.workload)} | {_cell(f.prefill_instance)} | "
                  f"{_cell(f.decode_instance)} | "
                  f"{f.requests_per_s:.4g} |" for f in plan.flows]
    return lines


def readme(plan: Plan, target: str, models: list[ModelFacts], files: list[ExportFile],
           how_to_apply: list[str], routing_note: str) -> ExportFile:
    """README.md of an export: what each file is, what to fill in, how traffic should split."""
    placeholders = sorted({one_line(m) for f in files
                           for m in re.findall(r"<FILL: [^>]*>", f.text)}
                          - {PLACEHOLDER.format("...")})
    lines = ["# Deployment of a pdopt plan", "",
             *(one_line(line) for line in plan_header(plan, target)), "", "## Files", ""]
    lines += [f"- `{f.name}`" for f in files]
    lines += ["", "## Before applying", ""]
    lines += ([f"- `{p}`" for p in placeholders] if placeholders
              else ["Nothing to fill in."])
    lines += ["", *how_to_apply, "", "## Routing", "", routing_note, "",
              *routing_lines(plan, models), ""]
    return ExportFile("README.md", "\n".join(lines))
