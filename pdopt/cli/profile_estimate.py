"""`pdopt profile estimate`, `pdopt profile aiconfigurator`, `pdopt profile gpus`,
`pdopt profile models`: instance types without a benchmark (docs/profiles.md, "Estimates").

Registered on the `profile` group in pdopt/cli/__init__.py.
"""

from __future__ import annotations

from typing import Any, get_args

import click

from pdopt.cli import params
from pdopt.cli.common import emit, handle_errors, output_options
from pdopt.profiles.architecture import arch_from_config
from pdopt.profiles.catalog import bundled_models, gpu_catalog, gpu_spec
from pdopt.profiles.import_append import instance_yaml
from pdopt.profiles.resolve import aiconfigurator_instances, estimated_instances
from pdopt.report import Report, Table
from pdopt.scenario.problems import ScenarioError
from pdopt.scenario.profile_spec import AiconfiguratorBackend, AiconfiguratorProfile

ROLES = {"prefill": ("prefill",), "decode": ("decode",), "both": ("prefill", "decode")}


def _int_list(_ctx: click.Context, _param: click.Parameter, value: str | None) -> list[int] | None:
    if value is None:
        return None
    try:
        out = [int(v) for v in value.split(",") if v.strip()]
    except ValueError:
        raise click.BadParameter(f"'{value}' is not a comma-separated list of integers") from None
    if not out or min(out) < 1:
        raise click.BadParameter("give positive integers, e.g. 1024,2048")
    return out


def _lengths(_ctx: click.Context, _param: click.Parameter, value: str) -> list[tuple[int, int]]:
    out = []
    for item in value.split(","):
        i, sep, o = item.strip().partition(":")
        try:
            pair = (int(i), int(o))
        except ValueError:
            raise click.BadParameter(f"'{item.strip()}' is not INPUT:OUTPUT tokens") from None
        if not sep or min(pair) < 1:
            raise click.BadParameter(f"'{item.strip()}': input and output must be >= 1")
        out.append(pair)
    return sorted(set(out))


def _output_blocks(items: list[dict[str, Any]], fmt: str, output: str | None,
                   report: Report) -> None:
    """yaml: the blocks for `instances:`; json: the same as a JSON list; table, markdown, csv:
    the numbers for reading."""
    if fmt == "yaml":
        emit("".join(instance_yaml(i) for i in items), fmt, output)
    elif fmt == "json":
        emit(Report(data=items), fmt, output)  # type: ignore[arg-type]
    else:
        emit(report, fmt, output)


def _tables_report(items: list[dict[str, Any]], summary: list[tuple[str, Any]]) -> Report:
    tables = [Table("instance shape", ("quantity", "value"), summary)]
    for item in items:
        if "prefill_tokens_per_s" in item:
            prefill_rows = list(item["prefill_tokens_per_s"].items())
            tables.append(Table(f"{item['name']}: saturated prefill",
                                ("input tokens", "input tokens/s"), prefill_rows))
        for t in item.get("tpot_tables", []):
            at = t["measured_at"]
            rows = [(b, ms, b / ms * 1e3) for b, ms in t["tpot_ms_by_batch"].items()]
            tables.append(Table(f"{item['name']}: decode at {at['input_tokens']} in / "
                                f"{at['output_tokens']} out", ("batch", "TPOT ms",
                                                               "output tokens/s"), rows))
    return Report(data={"instances": items}, tables=tables,
                  notes=[f"source: {items[0]['source']}"] if items else [])


_common = [
    click.option("--role", type=click.Choice(list(ROLES)), default="both", show_default=True,
                 help="Instance types to build."),
    click.option("--lengths", required=True, callback=_lengths,
                 help='Workload lengths "INPUT:OUTPUT,...": decode tables are made at each; '
                      "prefill at each input length."),
    click.option("--input-tokens", callback=_int_list, default=None,
                 help="Prefill input lengths, comma-separated [default: those of --lengths]."),
    output_options("yaml", with_yaml=True),  # yaml/json: blocks for a scenario; others: numbers
]


def _with_common(f: Any) -> Any:
    for option in reversed(_common):
        f = option(f)
    return f


@click.command("estimate")
@click.option("--model", required=True,
              help="Bundled model name (pdopt profile models) or path of a config.json.")
@click.option("--gpu", required=True, help="GPU type of the bundled catalog (pdopt profile gpus).")
@click.option("--gpus", "gpus", type=params.GPUS, default=1, show_default=True,
              help="GPUs per instance (tensor parallel; MoE experts are spread over them too).")
@click.option("--weight-dtype", type=click.Choice(["bf16", "fp16", "fp8", "fp4"]),
              default="bf16", show_default=True, help="Data type of the weights.")
@click.option("--kv-dtype", type=click.Choice(["bf16", "fp16", "fp8", "int8", "fp4"]),
              default="bf16", show_default=True, help="Data type of the KV cache.")
@click.option("--attention", type=click.Choice(["tp", "dp"]), default="tp", show_default=True,
              help="Attention parallelism: tensor parallel or data-parallel attention.")
@click.option("--max-batch", type=params.BATCH, default=1024, show_default=True,
              help="Largest batch of the decode tables (the KV cache may allow less).")
@click.option("--tokens-per-step", type=params.TOKENS_PER_STEP, default=1.0, show_default=True,
              help="Decode tokens per step and sequence (MTP/speculative: 1 + accepted drafts).")
@click.option("--engine", type=click.Choice(["vllm", "sglang", "trtllm"]), default=None,
              help="Serving engine whose calibrated factors to use [default: generic factors].")
@click.option("--engine-version", default=None, help="Engine version to record in `source`.")
@click.option("--moe-ep", type=params.GPUS, default=None,
              help="MoE expert-parallel size [default: every GPU of the instance].")
@click.option("--calibrate-from", "calibrate_from", multiple=True,
              type=click.Path(exists=True, dir_okay=False),
              help="Measured runs (silicon CSV, generic CSV, vLLM/SGLang results) to refit the "
                   "engine's factors to; repeatable (docs/profiles.md, Eq. C2).")
@_with_common
@handle_errors
def estimate(model: str, gpu: str, gpus: int, weight_dtype: str, kv_dtype: str, attention: str,
             max_batch: int, tokens_per_step: float, engine: str | None,
             engine_version: str | None, moe_ep: int | None, calibrate_from: tuple[str, ...],
             role: str, lengths: list[tuple[int, int]], input_tokens: list[int] | None,
             fmt: str, output: str | None) -> None:
    """First-principles instance types for MODEL on GPU: prefill tokens/s by input length and
    TPOT by batch, with `source: estimate ...` (docs/profiles.md, "Estimates").

    Exit codes: 0; 2 an unknown model or GPU, an unreadable or unsupported config.json, a dtype
    the GPU lacks, or weights that do not fit.
    """
    items, est = estimated_instances(
        model, gpu, gpus, roles=ROLES[role], lengths=lengths, input_tokens=input_tokens,
        weight_dtype=weight_dtype, kv_dtype=kv_dtype, attention=attention, max_batch=max_batch,
        tokens_per_step=tokens_per_step, engine=engine, engine_version=engine_version,
        moe_ep=moe_ep, calibrate_from=list(calibrate_from) or None)
    s = est.summary()
    summary = [
        ("model", s["model"]), ("GPU", f"{gpus} x {s['gpu']}"),
        ("factors", f"{engine or 'generic'}"
                    + (f", refitted to {', '.join(calibrate_from)}" if calibrate_from else "")),
        ("parameters, total (B)", s["total_params"] / 1e9),
        ("parameters, active per token (B)", s["active_params"] / 1e9),
        ("weights per GPU (GB)", s["weight_gb_per_gpu"]),
        ("KV bytes per token", s["kv_bytes_per_token"]),
        ("KV cache, tokens per instance", s["kv_cache_tokens"]),
    ]
    _output_blocks(items, fmt, output, _tables_report(items, summary))


@click.command("aiconfigurator")
@click.option("--model", required=True,
              help="AIConfigurator model path (e.g. Qwen/Qwen3-32B) or a bundled model name.")
@click.option("--system", required=True, help="AIConfigurator system, e.g. h200_sxm.")
@click.option("--backend", type=click.Choice(get_args(AiconfiguratorBackend)), default="trtllm",
              show_default=True, help="Serving engine whose timings to use.")
@click.option("--backend-version", default=None, help="Database version [default: latest].")
@click.option("--tp", type=params.GPUS, default=1, show_default=True,
              help="Tensor parallel size.")
@click.option("--attention-dp", type=params.GPUS, default=1, show_default=True,
              help="Attention data-parallel size (GPUs per instance = tp x attention-dp).")
@click.option("--moe-ep", type=params.GPUS, default=None,
              help="MoE expert parallel size [default: all GPUs of the instance].")
@click.option("--batches", callback=_int_list, default=None,
              help="Decode batch sizes [default: 1,2,4,...,256].")
@click.option("--gemm-quant-mode", default=None,
              help="AIConfigurator GEMM quantisation (fp8, fp8_block, nvfp4, ...) [default: "
                   "from the checkpoint].")
@click.option("--kvcache-quant-mode", default=None,
              help="AIConfigurator KV-cache quantisation (fp8, ...) [default: the checkpoint's].")
@click.option("--moe-quant-mode", default=None,
              help="AIConfigurator MoE quantisation (fp8, nvfp4, ...) [default: the checkpoint's].")
@click.option("--gpu", default=None,
              help="GPU type name for the scenario [default: the catalog name of --system].")
@click.option("--name-model", default=None,
              help="Model name for the instance blocks [default: --model].")
@_with_common
@handle_errors
def aiconfigurator(model: str, system: str, backend: AiconfiguratorBackend,
                   backend_version: str | None, tp: int, attention_dp: int, moe_ep: int | None,
                   batches: list[int] | None,
                   gemm_quant_mode: str | None, kvcache_quant_mode: str | None,
                   moe_quant_mode: str | None, gpu: str | None, name_model: str | None, role: str,
                   lengths: list[tuple[int, int]], input_tokens: list[int] | None, fmt: str,
                   output: str | None) -> None:
    """Instance types from NVIDIA AIConfigurator's silicon database (pip install
    'pdopt[aiconfigurator]'), with `source: aiconfigurator <version> <system> <backend> ...`.

    Exit codes: 0; 2 AIConfigurator missing or failing for the model/system, or a model that
    does not fit.
    """
    spec = AiconfiguratorProfile(
        model=model, system=system, backend=backend, backend_version=backend_version,
        moe_ep=moe_ep, attention_dp=attention_dp, input_tokens=input_tokens, batches=batches,
        gemm_quant_mode=gemm_quant_mode, kvcache_quant_mode=kvcache_quant_mode,
        moe_quant_mode=moe_quant_mode)
    gpu_name = gpu or _catalog_name(system)
    gpus = tp * attention_dp
    items = aiconfigurator_instances(spec, gpu_name, gpus, roles=ROLES[role], lengths=lengths,
                                     model_name=name_model or model)
    summary = [("model", model), ("system", system), ("backend", backend),
               ("GPUs per instance", gpus)]
    _output_blocks(items, fmt, output, _tables_report(items, summary))


def _catalog_name(system: str) -> str:
    try:
        return gpu_spec(system).name
    except ScenarioError:  # not in the catalog: the system name itself
        return system


@click.command("gpus")
@output_options("table")
@handle_errors
def gpus_(fmt: str, output: str | None) -> None:
    """The bundled GPU catalog: dense peak TFLOPS per dtype, memory, bandwidths, sources.

    Exit codes: 0.
    """
    rows = []
    for g in gpu_catalog().values():
        rows.append((g.name, g.dense_tflops.get("bf16"), g.dense_tflops.get("fp8"),
                     g.dense_tflops.get("fp4"), g.memory_gb, g.hbm_tb_per_s,
                     g.interconnect_gb_per_s, g.aiconfigurator_system))
    columns = ("gpu", "bf16 TFLOPS", "fp8 TFLOPS", "fp4 TFLOPS", "memory GB", "HBM TB/s",
               "link GB/s per direction", "aiconfigurator system")
    data = {g.name: {"description": g.description, "dense_tflops": g.dense_tflops,
                     "memory_gb": g.memory_gb, "hbm_tb_per_s": g.hbm_tb_per_s,
                     "interconnect": g.interconnect,
                     "interconnect_gb_per_s": g.interconnect_gb_per_s, "sources": g.sources,
                     "aiconfigurator_system": g.aiconfigurator_system}
            for g in gpu_catalog().values()}
    emit(Report(data=data, tables=[Table("bundled GPU catalog (dense peaks)", columns, rows)],
                notes=["sources: pdopt profile gpus --format json"]), fmt, output)


@click.command("models")
@output_options("table")
@handle_errors
def models_(fmt: str, output: str | None) -> None:
    """The bundled model architectures (names usable with --model and in profile blocks).

    Exit codes: 0.
    """
    seen: dict[str, Any] = {}
    for m in bundled_models().values():
        seen.setdefault(m.name, m)
    rows, data = [], {}
    for name, m in seen.items():
        a = arch_from_config(m.config, name, m.source)
        rows.append((name, a.model_type, a.total_params / 1e9, a.active_params / 1e9,
                     a.kv_bytes_per_token(2), m.aiconfigurator))
        data[name] = {"source": m.source, "aiconfigurator": m.aiconfigurator,
                      "total_params": a.total_params, "active_params": a.active_params}
    columns = ("model", "family", "params B", "active B", "KV bytes/token (bf16)",
               "aiconfigurator model")
    emit(Report(data=data, tables=[Table("bundled models", columns, rows)]), fmt, output)
