"""From benchmark runs to an instance type: saturated prefill throughput per input length and
decode TPOT tables per context length (docs/profiles.md, "Importer rules").

Pure functions over `Run`s: no file formats, no click. The constants below are the documented
rules; docs/profiles.md states each one and why.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from importlib.metadata import PackageNotFoundError, version
from typing import Any

from pydantic import ValidationError

from pdopt.profiles.importers import ProfileImportError, Run
from pdopt.scenario.loading import problems_from_validation
from pdopt.scenario.schema import Instance

# Runs whose mean lengths are within this relative distance of each other form one table (one
# input length for prefill, one context length input + output/2 for decode, Eq. D3).
LENGTH_TOLERANCE = 0.10
# Prefill plateau: runs whose input throughput is within this share of the highest one.
PLATEAU_TOLERANCE = 0.05
# A rate-driven run is past saturation when it served fewer requests/s than this share of the
# offered rate (the queue grew during the run).
KEEPS_UP_SHARE = 0.90
# Two capped runs on the plateau show saturation when their concurrency caps differ by this factor.
CAP_STEP = 2.0
# Prefill runs should generate (almost) nothing; above this mean output the throughput includes
# decode work.
PREFILL_MAX_OUTPUT_TOKENS = 16
# SGLang records the mean concurrency it achieved; below this share of the cap, the decode batch
# was mostly smaller than the concurrency.
ACHIEVED_CONCURRENCY_SHARE = 0.80


@dataclass
class ImportResult:
    """The instance type built from the runs and what the user should know about it."""

    instance: Instance
    warnings: list[str] = field(default_factory=list)

    def instance_data(self) -> dict[str, Any]:
        """The instance as plain data for YAML (defaults left out, int keys kept)."""
        return self.instance.model_dump(mode="python", exclude_none=True, exclude_defaults=True)


def _files(runs: Sequence[Run]) -> str:
    """Names runs in a message: the run itself when there is one, else its files."""
    if len(runs) == 1:
        return runs[0].where
    names = list(dict.fromkeys(r.file for r in runs))
    more = f" and {len(names) - 3} more files" if len(names) > 3 else ""
    return ", ".join(names[:3]) + more


# --------------------------------------------------------------------------- grouping


def group_by_length(runs: Sequence[Run], key: Callable[[Run], float],
                    what: str) -> list[list[Run]]:
    """Split runs into tables of one length each.

    Sorted by `key`, a new table starts where the key grows by more than LENGTH_TOLERANCE over
    the previous run. A table whose own spread (largest / smallest key) exceeds the tolerance is
    "mixed lengths": an error, since its runs neither agree on one length nor separate into
    distinct ones."""
    ordered = sorted(runs, key=key)
    groups: list[list[Run]] = []
    for run in ordered:
        if groups and key(run) <= key(groups[-1][-1]) * (1 + LENGTH_TOLERANCE):
            groups[-1].append(run)
        else:
            groups.append([run])
    for group in groups:
        lo, hi = key(group[0]), key(group[-1])
        if hi > lo * (1 + LENGTH_TOLERANCE):
            raise ProfileImportError([
                f"{_files(group)}: mixed lengths in one table: mean {what} ranges "
                f"{lo:,.0f}..{hi:,.0f} tokens (runs of one table must agree within "
                f"{LENGTH_TOLERANCE:.0%}; benchmark each length separately)"
            ])
    return groups


# --------------------------------------------------------------------------- prefill


@dataclass(frozen=True)
class SaturatedPrefill:
    """The saturated input throughput at one input length (docs/profiles.md, Eq. I1)."""

    input_tokens: int
    tokens_per_s: float
    plateau: tuple[Run, ...]
    runs: tuple[Run, ...]
    saturated: bool


def overloaded(run: Run) -> bool:
    """The run offered more load than the server served: every request at once with no cap, or a
    rate-driven run that completed fewer than KEEPS_UP_SHARE of the offered requests/s."""
    if math.isinf(run.request_rate):
        return run.max_concurrency is None
    served = run.input_tokens_per_s / run.input_tokens  # completed requests/s
    return served < KEEPS_UP_SHARE * run.request_rate


def saturated_prefill(runs: Sequence[Run]) -> SaturatedPrefill:
    """Eq. I1: TP_max = mean input throughput over the plateau, the runs within
    PLATEAU_TOLERANCE of the highest throughput. Saturated when a plateau run was overloaded, or
    two plateau runs' concurrency caps differ by CAP_STEP or more (more requests in flight did not
    raise throughput)."""
    ordered = sorted(runs, key=lambda r: r.load_key)
    peak = max(r.input_tokens_per_s for r in ordered)
    plateau = [r for r in ordered if r.input_tokens_per_s >= (1 - PLATEAU_TOLERANCE) * peak]
    caps = [r.max_concurrency for r in plateau if r.max_concurrency is not None]
    saturated = any(overloaded(r) for r in plateau) or (
        len(caps) >= 2 and max(caps) >= CAP_STEP * min(caps)
    )
    mean_input = sum(r.input_tokens for r in ordered) / len(ordered)
    return SaturatedPrefill(
        input_tokens=round(mean_input),
        tokens_per_s=sum(r.input_tokens_per_s for r in plateau) / len(plateau),
        plateau=tuple(plateau), runs=tuple(ordered), saturated=saturated,
    )


# --------------------------------------------------------------------------- decode


@dataclass(frozen=True)
class DecodeTable:
    """TPOT by batch at one context length, made monotone (docs/profiles.md, Eq. I2)."""

    input_tokens: int
    output_tokens: int
    tpot_ms_by_batch: dict[int, float]
    raised: list[tuple[int, float, float]]  # (batch, measured, monotone value)
    runs: tuple[Run, ...]


def batch_of(run: Run) -> int:
    """The decode batch a run measured: its concurrency cap (or the requests sent, when fewer), or
    every request when all were sent at once without a cap. Raises for a rate-driven run without a
    cap."""
    if run.max_concurrency is not None:
        if run.requests is not None and run.requests < run.max_concurrency:
            return run.requests
        return run.max_concurrency
    if math.isinf(run.request_rate):
        return run.requests or run.completed + (run.failed or 0)
    raise ProfileImportError([
        f"{run.where}: a decode run needs a fixed concurrency (max_concurrency), not only a "
        f"request rate ({run.request_rate:g}/s); rerun with --max-concurrency N --request-rate inf"
    ])


def make_monotone(
    table: dict[int, float],
) -> tuple[dict[int, float], list[tuple[int, float, float]]]:
    """Eq. I2: TPOT'(b_k) = max(TPOT(b_k), TPOT'(b_(k-1))): a point below an earlier one is raised
    to it (never lowered: an optimistic TPOT would over-promise batch). Returns the table and the
    points changed."""
    out: dict[int, float] = {}
    raised: list[tuple[int, float, float]] = []
    top = -math.inf
    for b in sorted(table):
        value = table[b]
        if value < top:
            raised.append((b, value, top))
            value = top
        out[b] = value
        top = value
    return out, raised


def decode_table(runs: Sequence[Run], statistic: str) -> DecodeTable:
    """One TPOT table from runs at one context length, using the chosen TPOT statistic."""
    by_batch: dict[int, Run] = {}
    table: dict[int, float] = {}
    for run in runs:
        b = batch_of(run)
        if statistic not in run.tpot_ms:
            have = ", ".join(sorted(run.tpot_ms)) or "none"
            raise ProfileImportError([
                f"{run.where}: no {statistic} TPOT in this result (TPOT statistics present: "
                f"{have}); choose one with --tpot-statistic"
            ])
        if b in by_batch:
            raise ProfileImportError([
                f"{by_batch[b].where} and {run.where}: two runs at batch {b} for the same lengths; "
                "keep one"
            ])
        by_batch[b] = run
        table[b] = run.tpot_ms[statistic]
    monotone, raised = make_monotone(table)
    n = len(runs)
    return DecodeTable(
        input_tokens=round(sum(r.input_tokens for r in runs) / n),
        output_tokens=max(1, round(sum(r.output_tokens for r in runs) / n)),
        tpot_ms_by_batch={b: round(v, 3) for b, v in monotone.items()},
        raised=raised, runs=tuple(sorted(runs, key=batch_of)),
    )


# --------------------------------------------------------------------------- the instance


def _check_runs(runs: Sequence[Run], allow_failed: bool) -> tuple[list[str], list[str]]:
    """Checks common to both roles: failed requests, mixed models, versions. Returns
    (errors, warnings)."""
    errors: list[str] = []
    warnings: list[str] = []
    for run in runs:
        if run.failed:
            text = (f"{run.where}: {run.failed} request(s) failed "
                    f"({run.completed} completed); the numbers cover only the survivors")
            if allow_failed:
                warnings.append(text)
            else:
                errors.append(text + " (rerun, or pass --allow-failed)")
    models: dict[str, list[Run]] = {}
    for run in runs:
        if run.model is not None:
            models.setdefault(run.model, []).append(run)
    if len(models) > 1:
        errors.append("mixed models in one profile: " + "; ".join(
            f"{m} ({_files(rs)})" for m, rs in models.items()))
    unknown = [r for r in runs if r.failed is None and r.engine != "csv"]
    if unknown:
        warnings.append(f"{_files(unknown)}: the result does not record how many requests were "
                        "sent, so failed requests cannot be detected (SGLang: add "
                        "--output-details)")
    versions = sorted({r.engine_version for r in runs if r.engine_version})
    if len(versions) > 1:
        warnings.append(f"runs come from several engine versions: {', '.join(versions)}")
    return errors, warnings


def pdopt_version() -> str:
    try:
        return version("pdopt")
    except PackageNotFoundError:
        return "unknown"


def default_name(model: str, role: str, gpu: str, gpus_per_instance: int) -> str:
    """`<model>-<role>-<n>x<gpu>`, lower case, with runs of other characters as '-'."""
    raw = f"{model}-{role}-{gpus_per_instance}x{gpu}".lower()
    return re.sub(r"[^a-z0-9.]+", "-", raw).strip("-")


def _source(engine: str, runs: Sequence[Run], statistic: str | None,
            engine_version: str | None, points: list[dict[str, Any]]) -> dict[str, Any]:
    versions = sorted({r.engine_version for r in runs if r.engine_version})
    if engine_version:
        versions = [engine_version]
    backends = ", ".join(sorted({r.backend for r in runs if r.backend}))
    source: dict[str, Any] = {
        "imported_by": f"pdopt {pdopt_version()} profile import {engine}",
        "imported_at": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        # CSV rows name their engine in the `engine` column (kept as the run's backend)
        "engine": (backends or "not recorded") if engine == "csv" else engine,
        "engine_version": ", ".join(versions) if versions else "not recorded",
    }
    models = sorted({r.model for r in runs if r.model})
    if models:
        source["benchmark_model"] = ", ".join(models)
    if backends and engine != "csv":
        source["benchmark_backend"] = backends
    if statistic is not None:
        source["tpot_statistic"] = statistic
    source["files"] = list(dict.fromkeys(r.file for r in runs))
    dates = sorted({r.date for r in runs if r.date})
    if dates:
        source["run_dates"] = dates[0] if len(dates) == 1 else f"{dates[0]} .. {dates[-1]}"
    source["points"] = points
    return source


def _validated(data: dict[str, Any]) -> Instance:
    try:
        return Instance.model_validate(data)
    except ValidationError as e:
        raise ProfileImportError(
            [f"the imported instance is not valid: {p}" for p in problems_from_validation(e)]
        ) from None


def build_prefill(runs: Sequence[Run], **common: Any) -> ImportResult:
    """A prefill instance type: saturated input throughput per input length (Eq. I1)."""
    warnings: list[str] = []
    long_out = [r for r in runs if r.output_tokens > PREFILL_MAX_OUTPUT_TOKENS]
    if long_out:
        warnings.append(
            f"{_files(long_out)}: mean output of {max(r.output_tokens for r in long_out):,.0f} "
            f"tokens; prefill runs should generate at most {PREFILL_MAX_OUTPUT_TOKENS} (e.g. "
            "--output-len 1), or the throughput includes decode work"
        )
    groups = group_by_length(runs, lambda r: r.input_tokens, "input length")
    table: dict[int, float] = {}
    points: list[dict[str, Any]] = []
    for group in groups:
        sat = saturated_prefill(group)
        if sat.input_tokens in table:
            raise ProfileImportError([f"{_files(group)}: two tables round to input length "
                                     f"{sat.input_tokens}"])
        table[sat.input_tokens] = round(sat.tokens_per_s, 1)
        if not sat.saturated:
            top = sat.runs[-1]
            warnings.append(
                f"{_files(sat.runs)}: prefill at {sat.input_tokens:,} input tokens never "
                f"saturated: throughput still rises at the highest load ({top.describe_load()}: "
                f"{top.input_tokens_per_s:,.0f} tokens/s); {sat.tokens_per_s:,.0f} tokens/s is a "
                "lower bound; add runs at a higher rate or with --request-rate inf"
            )
        for r in sat.runs:
            points.append({
                "run": r.where, "input_tokens": round(r.input_tokens, 1),
                "request_rate": "inf" if math.isinf(r.request_rate) else r.request_rate,
                **({"max_concurrency": r.max_concurrency} if r.max_concurrency else {}),
                "input_tokens_per_s": round(r.input_tokens_per_s, 1),
                "on_plateau": r in sat.plateau,
            })
    data = {
        "name": common["name"], "model": common["model"], "role": "prefill",
        "gpu": common["gpu"], "gpus_per_instance": common["gpus_per_instance"],
        "prefill_tokens_per_s": dict(sorted(table.items())),
        "source": _source(common["engine"], runs, None, common.get("engine_version"), points),
    }
    return ImportResult(_validated(data), warnings)


def build_decode(runs: Sequence[Run], statistic: str, **common: Any) -> ImportResult:
    """A decode instance type: TPOT tables per context length, monotone (Eq. I2)."""
    warnings: list[str] = []
    for r in runs:
        if r.max_concurrency is not None and r.requests is not None \
                and r.requests < r.max_concurrency:
            warnings.append(f"{r.where}: only {r.requests} requests for concurrency "
                            f"{r.max_concurrency}: the batch is taken as {r.requests}; send "
                            "num_prompts >= 4 x concurrency")
        if r.max_concurrency is not None and math.isfinite(r.request_rate):
            warnings.append(f"{r.where}: run at a finite request rate ({r.request_rate:g}/s): the "
                            f"batch may have stayed below the concurrency {r.max_concurrency}; "
                            "decode sweeps belong at --request-rate inf")
        if (r.achieved_concurrency is not None and r.max_concurrency is not None
                and r.achieved_concurrency < ACHIEVED_CONCURRENCY_SHARE * r.max_concurrency):
            warnings.append(f"{r.where}: mean concurrency achieved {r.achieved_concurrency:.1f} "
                            f"is below {ACHIEVED_CONCURRENCY_SHARE:.0%} of the cap "
                            f"{r.max_concurrency}; send more prompts (num_prompts >= 4 x "
                            "concurrency)")
    # one table per context length: what decode interpolates over (method.md, Eq. D2)
    groups = group_by_length(runs, lambda r: r.input_tokens + r.output_tokens / 2,
                             "context (input + output/2)")
    tables = [decode_table(g, statistic) for g in groups]
    points: list[dict[str, Any]] = []
    for t in tables:
        for b, measured, value in t.raised:
            run = next(r for r in t.runs if batch_of(r) == b)
            warnings.append(f"{run.where}: {statistic} TPOT {measured:g} ms at batch {b} is below "
                            f"a smaller batch's {value:g} ms (measurement noise); raised to "
                            f"{value:g} ms to keep the table monotone")
        for r in t.runs:
            points.append({"run": r.where, "batch": batch_of(r),
                           "input_tokens": round(r.input_tokens, 1),
                           "output_tokens": round(r.output_tokens, 1),
                           "tpot_ms": r.tpot_ms[statistic]})
    data: dict[str, Any] = {
        "name": common["name"], "model": common["model"], "role": "decode",
        "gpu": common["gpu"], "gpus_per_instance": common["gpus_per_instance"],
    }
    if len(tables) == 1:
        data["measured_at"] = {"input_tokens": tables[0].input_tokens,
                               "output_tokens": tables[0].output_tokens}
        data["tpot_ms_by_batch"] = tables[0].tpot_ms_by_batch
    else:
        data["tpot_tables"] = [
            {"measured_at": {"input_tokens": t.input_tokens, "output_tokens": t.output_tokens},
             "tpot_ms_by_batch": t.tpot_ms_by_batch} for t in tables
        ]
    data["source"] = _source(common["engine"], runs, statistic, common.get("engine_version"),
                             points)
    return ImportResult(_validated(data), warnings)


def build_instance(runs: Sequence[Run], *, role: str, engine: str, model: str, gpu: str,
                   gpus_per_instance: int, name: str | None = None, statistic: str = "mean",
                   allow_failed: bool = False, engine_version: str | None = None) -> ImportResult:
    """The instance type the runs measure. Raises ProfileImportError naming files and problems."""
    if not runs:
        raise ProfileImportError(["no benchmark runs to import"])
    errors, warnings = _check_runs(runs, allow_failed)
    if errors:
        raise ProfileImportError(errors)
    common = {"name": name or default_name(model, role, gpu, gpus_per_instance), "model": model,
              "gpu": gpu, "gpus_per_instance": gpus_per_instance, "engine": engine,
              "engine_version": engine_version}
    if role == "prefill":
        result = build_prefill(runs, **common)
    else:
        result = build_decode(runs, statistic, **common)
    result.warnings[:0] = warnings
    return result
