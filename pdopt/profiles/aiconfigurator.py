"""Profiles from NVIDIA AIConfigurator's silicon-measured operator database (optional extra
`pdopt[aiconfigurator]`, tested against aiconfigurator 0.12.0; docs/profiles.md).

Prefill: AIConfigurator's static context-phase estimate of a batch of prompts that fills one
prefill step (`PREFILL_TOKENS_PER_STEP` tokens), so saturated throughput = batch x input / time.
Decode: its static generation-phase TPOT at each batch size, at the workload's input and output
lengths; the table stops before the first batch AIConfigurator reports out of memory.
"""

from __future__ import annotations

import contextlib
import importlib.metadata
import logging
import math
import sys
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

from pdopt.errors import PdoptError
from pdopt.profiles.catalog import bundled_models, gpu_spec
from pdopt.scenario.problems import Problem, ScenarioError
from pdopt.scenario.profile_spec import AiconfiguratorProfile

TESTED_VERSION = "0.12.0"
# SGLang's default --max-prefill-tokens (16384): the tokens one prefill step batches at most.
PREFILL_TOKENS_PER_STEP = 16384
DEFAULT_BATCHES = (1, 2, 4, 8, 16, 32, 64, 128, 256)


class AiconfiguratorMissing(PdoptError):
    """The optional dependency is not installed."""

    def __init__(self, message: str | None = None) -> None:
        super().__init__(message or "AIConfigurator is not installed: pip install "
                         f"'pdopt[aiconfigurator]' (tested with aiconfigurator {TESTED_VERSION})")


def installed_version() -> str | None:
    try:
        return importlib.metadata.version("aiconfigurator")
    except importlib.metadata.PackageNotFoundError:
        return None


@dataclass(frozen=True)
class AicRun:
    """What one AIConfigurator profile is computed for."""

    model_path: str
    system: str
    gpus: int
    spec: AiconfiguratorProfile

    def parallel_kwargs(self) -> dict[str, Any]:
        """tp x attention-dp = GPUs; MoE layers split over moe_ep x moe_tp = GPUs."""
        dp = self.spec.attention_dp
        ep = self.spec.moe_ep or self.gpus
        return {"tp_size": self.gpus // dp, "attention_dp_size": dp, "moe_ep_size": ep,
                "moe_tp_size": self.gpus // ep}

    def check(self) -> list[Problem]:
        problems = []
        if self.gpus % self.spec.attention_dp:
            problems.append(Problem("attention_dp", f"must divide gpus_per_instance ({self.gpus})"))
        if self.spec.moe_ep is not None and self.gpus % self.spec.moe_ep:
            problems.append(Problem("moe_ep", f"must divide gpus_per_instance ({self.gpus})"))
        return problems


def resolve_run(spec: AiconfiguratorProfile, instance_gpu: str, gpus: int) -> AicRun:
    """Model path and system for a profile block; ScenarioError for what cannot work."""
    bundled = bundled_models().get(spec.model.lower())
    model_path = bundled.aiconfigurator if bundled and bundled.aiconfigurator else spec.model
    system = spec.system
    if system is None:
        try:
            gpu = gpu_spec(instance_gpu)
        except ScenarioError:
            raise ScenarioError([Problem("system", f"the instance's gpu '{instance_gpu}' is not a "
                                         "catalog name; give the AIConfigurator system "
                                         "(e.g. h200_sxm)")]) from None
        if gpu.aiconfigurator_system is None:
            raise ScenarioError([Problem("system", f"AIConfigurator has no system for "
                                         f"{gpu.name}; give `system`")])
        system = gpu.aiconfigurator_system
    run = AicRun(model_path, system, gpus, spec)
    problems = run.check()
    if problems:
        raise ScenarioError(problems)
    return run


class _ToStderr(logging.Handler):
    """A log record's message on the standard error as it is when the record comes (a CLI
    runner's or a redirect's), whatever handlers the process's root logger has."""

    def emit(self, record: logging.LogRecord) -> None:
        sys.stderr.write(self.format(record) + "\n")
        sys.stderr.flush()  # in order with the standard output (a CLI runner mixes the two)


@contextlib.contextmanager
def _quiet() -> Iterator[None]:
    """Hide AIConfigurator's INFO chatter; its warnings (low-fidelity data, dtype fallbacks)
    reach stderr, since they qualify the numbers. Its loggers have no handlers of their own, so
    without one here whether a warning showed depended on the root logger's (Python's
    last-resort handler writes to stderr only when the root has none)."""
    loggers = [logging.getLogger(name) for name in ("aiconfigurator", "aiconfigurator_core")]
    saved = [(lg.level, lg.handlers[:], lg.propagate) for lg in loggers]
    handler = _ToStderr(logging.WARNING)
    for lg in loggers:
        lg.setLevel(logging.WARNING)
        lg.handlers = [handler]
        lg.propagate = False
    try:
        yield
    finally:
        for lg, (level, handlers, propagate) in zip(loggers, saved, strict=True):
            lg.setLevel(level)
            lg.handlers = handlers
            lg.propagate = propagate


def _estimate(run: AicRun, mode: str, isl: int, osl: int, batch: int) -> Any:
    try:
        from aiconfigurator.cli.api import cli_estimate
    except ImportError:
        raise AiconfiguratorMissing() from None
    quant = {k: getattr(run.spec, k) for k in ("gemm_quant_mode", "kvcache_quant_mode",
                                                "moe_quant_mode") if getattr(run.spec, k)}
    try:
        with _quiet():
            return cli_estimate(
                run.model_path, run.system, mode=mode, backend_name=run.spec.backend,
                backend_version=run.spec.backend_version, isl=isl, osl=osl, batch_size=batch,
                **run.parallel_kwargs(), **quant,
            )
    except Exception as e:  # noqa: BLE001 - a third-party boundary: any failure is bad input
        raise ScenarioError([Problem("profile.aiconfigurator", f"AIConfigurator failed for "
                                     f"{run.model_path} on {run.system}: {type(e).__name__}: "
                                     f"{str(e).splitlines()[0] if str(e) else ''}")]) from None


def prefill_batch(input_tokens: int) -> int:
    """Prompts per prefill step: enough to fill PREFILL_TOKENS_PER_STEP, at least one."""
    return max(1, math.ceil(PREFILL_TOKENS_PER_STEP / input_tokens))


def prefill_table(run: AicRun, input_lengths: Sequence[int]) -> tuple[dict[int, float], str]:
    """Saturated prefill input tokens/s per input length (AIConfigurator's context phase), and
    the backend version its database used."""
    table, version = {}, ""
    for n in sorted(set(input_lengths)):
        batch = prefill_batch(n)
        result = _estimate(run, "static_ctx", n, 1, batch)
        if result.kv_cache_warning:
            raise ScenarioError([Problem("profile.aiconfigurator", f"{run.model_path} does not "
                                         f"fit on {run.gpus} x {run.system}")])
        table[int(n)] = round(batch * n / (result.ttft / 1e3), 1)
        version = str(result.backend_version)
    return table, version


def tpot_table(run: AicRun, input_tokens: int, output_tokens: int,
               batches: Sequence[int] = DEFAULT_BATCHES) -> tuple[dict[int, float], str]:
    """TPOT (ms) by batch at these lengths, up to the last batch that fits in memory, and the
    backend version its database used."""
    table: dict[int, float] = {}
    version = ""
    for b in sorted(set(batches)):
        result = _estimate(run, "static_gen", input_tokens, output_tokens, b)
        if result.kv_cache_warning:
            break
        table[int(b)] = round(float(result.tpot), 3)
        version = str(result.backend_version)
    if not table:
        raise ScenarioError([Problem("profile.aiconfigurator", f"{run.model_path} does not fit on "
                                     f"{run.gpus} x {run.system} even at batch {min(batches)}")])
    ordered = sorted(table)
    for lo, hi in zip(ordered, ordered[1:], strict=False):  # TPOT must not fall as batch grows
        table[hi] = max(table[hi], table[lo])
    return table, version


def source_line(run: AicRun, backend_version: str) -> str:
    """`aiconfigurator <version> <system> <backend> <backend version>` (issue 7)."""
    quant = "".join(f", {k.removesuffix('_quant_mode')} {getattr(run.spec, k)}"
                    for k in ("gemm_quant_mode", "kvcache_quant_mode", "moe_quant_mode")
                    if getattr(run.spec, k))
    return (f"aiconfigurator {installed_version()} {run.system} {run.spec.backend} "
            f"{backend_version} {run.model_path} {run.gpus} GPUs{quant}")
