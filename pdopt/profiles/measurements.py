"""Measured decode runs a user has, read as SiliconRun records for validating and calibrating the
estimator (`pdopt profile validate`, `calibrate_from:`; docs/profiles.md, "Validation on
measured runs").

Formats: an AIConfigurator silicon CSV (recognised by its `silicon_tpot_ms` column: every row
says its own engine, GPU and layout); the generic profile CSV of `pdopt profile import csv`, whose
decode rows may also name their own `gpu`, `gpus_per_instance`, `weight_dtype`, `kv_dtype`,
`attention`, `moe_ep`, `mode` (agg | disagg), `engine` and `model`; vLLM and SGLang benchmark result
files (the importers' formats). What a file does not say comes from `RunDefaults` (command-line
flags, or the estimate block being calibrated). A run's batch is its concurrency cap.
"""

from __future__ import annotations

import csv
import io
import math
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pdopt.inputfiles import FileTooLargeError, InputFileError, open_regular, read_limited
from pdopt.profiles.catalog import gpu_spec
from pdopt.profiles.estimate import EstimateFactors, engine_factors
from pdopt.profiles.importers import MAX_RESULT_BYTES, ProfileImportError, Run, read_runs
from pdopt.profiles.silicon import (
    SaturatedPrefill,
    SiliconRun,
    batch_bucket,
    evaluate,
    prefill_run_estimate,
    ratios,
    read_prefill_runs,
    read_silicon,
    saturated_prefill,
    why_not_describable,
)
from pdopt.scenario.problems import Problem, ScenarioError

FORMATS = ("auto", "silicon", "csv", "vllm", "sglang")
SILICON_COLUMN = "silicon_tpot_ms"


@dataclass(frozen=True)
class RunDefaults:
    """The deployment of runs whose files do not describe it."""

    model: str | None = None
    gpu: str | None = None
    gpus: int = 1
    weight_dtype: str = "bf16"
    kv_dtype: str | None = None  # None: the engine's usual KV dtype (silicon.kv_dtype_for)
    attention: str = "tp"
    moe_ep: int | None = None
    engine: str | None = None
    mode: str = "disagg"  # a decode-only measurement; agg: prefill ran beside decode


def detect_format(path: Path) -> str:
    """silicon, csv, vllm or sglang from the file's first bytes (SGLang writes JSON lines with
    `server_info` or `random_range_ratio`; vLLM one JSON object)."""
    try:  # a regular file only: a FIFO is refused without blocking (pdopt.inputfiles)
        fh, _size = open_regular(path)
        with fh:
            head = fh.read(4096).decode("utf-8")
    except InputFileError as e:
        raise ScenarioError([Problem("", f"cannot read: {e}")], str(path)) from None
    except OSError as e:
        raise ScenarioError([Problem("", f"cannot read: {e.strerror or e}")], str(path)) from None
    except UnicodeDecodeError as e:
        if e.start < 4096 - 3:  # not a multi-byte character cut at the end of the head
            raise ScenarioError([Problem("", "not a text file")], str(path)) from None
        head = e.object[:e.start].decode("utf-8")
    text = head.lstrip()
    if not text.startswith(("{", "[")):
        return "silicon" if SILICON_COLUMN in text.splitlines()[0] else "csv"
    return "sglang" if ("server_info" in head or "random_range_ratio" in head) else "vllm"


def _shape_columns(path: Path) -> dict[int, dict[str, str]]:
    """Row number (as the importer counts it) -> the row's cells, for the optional columns."""
    text = read_limited(path, MAX_RESULT_BYTES, "benchmark results").decode("utf-8-sig")
    reader = csv.DictReader(io.StringIO(text, newline=""))
    reader.fieldnames = [h.strip() for h in (reader.fieldnames or [])]
    return {n: {k: (v or "").strip() for k, v in row.items() if k}
            for n, row in enumerate(reader, start=2)}


def _batch(run: Run) -> int | None:
    if run.max_concurrency:
        return run.max_concurrency if not run.requests else min(run.max_concurrency,
                                                                 run.requests)
    if math.isinf(run.request_rate):
        return run.requests or run.completed or None
    return None


def _to_run(run: Run, cells: dict[str, str], d: RunDefaults, engine: str) -> SiliconRun:
    where = run.where

    def text(key: str, default: str | None) -> str | None:
        return cells.get(key) or default

    def number(key: str, default: int | None) -> int | None:
        value = cells.get(key)
        if not value:
            return default
        try:
            return int(float(value))
        except ValueError:
            raise ScenarioError([Problem(key, f"{where}: not a number: '{value}'")]) from None

    model = text("model", d.model)
    gpu = text("gpu", d.gpu)
    if not model or not gpu:
        missing = "model" if not model else "gpu"
        raise ScenarioError([Problem(missing, f"{where}: the run does not name its {missing}; "
                                     f"give --{missing} (or a '{missing}' column)")])
    batch = _batch(run)
    if batch is None:
        raise ScenarioError([Problem("concurrency", f"{where}: a run at a finite request rate "
                                     "without a concurrency cap has no defined batch")])
    tpot = run.tpot_ms.get("mean")
    if tpot is None:
        raise ScenarioError([Problem("tpot_ms", f"{where}: no mean TPOT")])
    gpus = number("gpus_per_instance", d.gpus) or 1
    attention = text("attention", d.attention) or "tp"
    eng = (text("engine", None) or run.backend if engine == "csv" else engine) or d.engine
    if eng not in ("vllm", "sglang", "trtllm"):
        eng = d.engine or "generic"
    return SiliconRun(
        run_id=where, engine=eng, engine_version=run.engine_version or "not recorded",
        model_path=model, model=model, gpu=gpu_spec(gpu).name, system=gpu,
        precision=text("weight_dtype", d.weight_dtype) or "bf16",
        mode=text("mode", d.mode) or "disagg",
        input_tokens=max(1, round(run.input_tokens)),
        output_tokens=max(1, round(run.output_tokens)), gpus=gpus, tensor_parallel=gpus,
        attention_dp=gpus if attention == "dp" else 1,
        moe_ep=number("moe_ep", d.moe_ep) or gpus, batch=batch, concurrency=batch,
        ttft_ms=float(cells.get("ttft_ms") or "nan"), tpot_ms=tpot,
        kv_dtype_given=text("kv_dtype", d.kv_dtype))


def read_measurements(paths: list[str], defaults: RunDefaults = RunDefaults(),
                      fmt: str = "auto") -> list[SiliconRun]:
    """Every decode run of the files. Raises ScenarioError naming the file (and row) for
    unreadable files and runs that cannot be described."""
    out: list[SiliconRun] = []
    for p in paths:
        path = Path(p)
        kind = detect_format(path) if fmt == "auto" else fmt
        if kind == "silicon":
            try:
                runs, _, _ = read_silicon(path)
            except FileTooLargeError as e:
                raise ScenarioError([Problem("", str(e))], str(path)) from None
            except InputFileError as e:
                raise ScenarioError([Problem("", f"cannot read: {e}")], str(path)) from None
            except UnicodeDecodeError:
                raise ScenarioError([Problem("", "not a text file")], str(path)) from None
            except (KeyError, ValueError) as e:
                raise ScenarioError([Problem("", f"not an AIConfigurator silicon CSV: {e}")],
                                    str(path)) from None
            out += runs
            continue
        try:
            runs_read, _ = read_runs(kind, [str(path)], "decode")
        except ProfileImportError as e:
            raise ScenarioError([Problem("", line) for line in e.lines]) from None
        cells = _shape_columns(path) if kind == "csv" else {}
        for run in runs_read:
            row = int(run.where.rsplit("row ", 1)[1]) if kind == "csv" else 0
            out.append(_to_run(run, cells.get(row, {}), defaults, kind))
    return out


def read_prefill_measurements(paths: list[str], fmt: str = "auto") -> list[SaturatedPrefill]:
    """The saturated prefill sweeps (Eq. V5) of the silicon CSVs among the files: runs that
    isolate prefill (disaggregated prefill workers at saturation). Other formats give none
    here: their decode runs do not isolate prefill. Call after `read_measurements` (which
    reports unreadable files)."""
    out: list[SaturatedPrefill] = []
    for p in paths:
        path = Path(p)
        if (detect_format(path) if fmt == "auto" else fmt) == "silicon":
            try:
                out += saturated_prefill(read_prefill_runs(path))
            except (InputFileError, UnicodeDecodeError, KeyError, ValueError) as e:
                raise ScenarioError([Problem("", f"cannot read prefill runs: {e}")],
                                    str(path)) from None
    return out


def validate_prefill(points: list[SaturatedPrefill],
                     factors: EstimateFactors | Callable[[str], EstimateFactors] | None = None
                     ) -> dict[str, Any]:
    """Predicted (Eq. E9) against measured (Eq. V5) saturated prefill throughput per sweep, and
    the error distribution overall and by engine, GPU and model. `factors`: one set, a
    function of the engine, or None for each sweep's engine's calibrated factors."""
    per_run: list[dict[str, Any]] = []
    for p in points:
        r = p.run
        if factors is None:
            f = engine_factors(r.engine)
        elif isinstance(factors, EstimateFactors):
            f = factors
        else:
            f = factors(r.engine)
        predicted = prefill_run_estimate(r, f).prefill_tokens_per_s(r.input_tokens)
        per_run.append({
            "run": r.run_id, "engine": r.engine, "gpu": r.gpu, "gpus": r.gpus,
            "model": r.model, "weight_dtype": r.weight_dtype, "workers": r.workers,
            "concurrency": r.concurrency, "input_tokens": r.input_tokens,
            "output_tokens": r.output_tokens, "ttft_ms": r.ttft_ms,
            "measured_tokens_per_s": p.tokens_per_s, "predicted_tokens_per_s": predicted,
            "ratio": predicted / p.tokens_per_s})
    summary: dict[str, Any] = {"all": ratios([x["ratio"] for x in per_run])}
    for name in ("engine", "gpu", "model"):
        groups: dict[str, list[float]] = {}
        for x in per_run:
            groups.setdefault(str(x[name]), []).append(x["ratio"])
        summary[name] = {k: ratios(v) for k, v in sorted(groups.items())}
    return {"runs": per_run, "summary": summary}


GROUPINGS: dict[str, Callable[[SiliconRun], str]] = {
    "engine": lambda r: r.engine,
    "gpu": lambda r: r.gpu or r.system,
    "model": lambda r: r.model or r.model_path,
    "batch": lambda r: batch_bucket(r.batch),
}


def validate_runs(runs: list[SiliconRun],
                  factors: EstimateFactors | Callable[[SiliconRun], EstimateFactors] | None = None
                  ) -> dict[str, Any]:
    """The estimate against each describable run (predicted and measured TPOT, Eq. V3) and the
    error distribution overall and by engine, GPU, model and batch bucket (`ratios`). Runs the
    estimator cannot describe or refuses are listed with the reason."""
    usable, skipped = [], []
    for r in runs:
        reason = why_not_describable(r)
        if reason is None:
            usable.append(r)
        else:
            skipped.append({"run": r.run_id, "reason": reason})
    pairs, refused = evaluate(usable, factors)
    skipped += [{"run": r.run_id, "reason": "weights do not fit"} for r in refused]
    per_run: list[dict[str, Any]] = [{
        "run": r.run_id, "engine": r.engine, "gpu": r.gpu, "gpus": r.gpus, "model": r.model,
        "weight_dtype": r.weight_dtype, "mode": r.mode, "batch": r.batch,
        "input_tokens": r.input_tokens, "output_tokens": r.output_tokens,
        "measured_tpot_ms": r.tpot_ms, "predicted_tpot_ms": p, "ratio": p / r.tpot_ms,
    } for r, p in pairs]
    summary: dict[str, Any] = {"all": ratios([p / r.tpot_ms for r, p in pairs])}
    for name, key in GROUPINGS.items():
        groups: dict[str, list[float]] = {}
        for r, p in pairs:
            groups.setdefault(key(r), []).append(p / r.tpot_ms)
        summary[name] = {k: ratios(v) for k, v in sorted(groups.items())}
    return {"runs": per_run, "summary": summary, "skipped": skipped}
