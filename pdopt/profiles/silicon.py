"""Measured serving runs of NVIDIA AIConfigurator's `systems/silicon_sample.csv`, mapped to the
estimator's terms (docs/profiles.md, "Validation on measured runs").

The CSV (aiconfigurator-core 0.12.0, installed with `pdopt[aiconfigurator]` or the `test` extra)
holds ~5,200 vLLM, SGLang and TensorRT-LLM runs: aggregated (`agg`) and disaggregated (`disagg`)
serving, TTFT and TPOT at a known concurrency, with the parallel layout of each worker. Rows that
repeat another row's measured numbers (DeepSeek-R1 filed again as DeepSeek-V3, the same run from
two dumps) are dropped: `dedupe` keeps the first of each (engine, GPU, layout, lengths, batch,
TTFT, TPOT) group.

A row is *describable* when its model is a bundled architecture, its GPU is in the catalog with
tensor cores for its weight dtype, and its attention layout is plain tensor parallel or plain
data-parallel attention. Field meanings (checked against the `silicon_concurrency` recorded in
`silicon_data_source`): `batch_size` is per attention-DP rank, so the instance's batch is
`batch_size x attention_dp_size`; GPUs per instance are `tp_size x attention_dp_size`. No I/O
beyond reading the given file.
"""

from __future__ import annotations

import csv
import importlib.util
import io
import math
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

from pdopt.errors import UnreachableTargetError
from pdopt.inputfiles import read_limited
from pdopt.profiles.catalog import gpu_spec, model_arch
from pdopt.profiles.estimate import (
    DecodeTerms,
    Estimate,
    EstimateFactors,
    InstanceShape,
    PrefillTerms,
    decode_step_seconds,
    engine_factors,
    prefill_seconds_per_token,
)
from pdopt.scenario.problems import ScenarioError

ENGINES = ("vllm", "sglang", "trtllm")
#: aiconfigurator-core 0.12.0's silicon_sample.csv is ~1.9 MB; a file past this is not one.
MAX_SILICON_BYTES = 256 * 1024 * 1024

# AIConfigurator model paths -> bundled architectures (pdopt profile models). R1 and V3(.1) share
# DeepSeek-V3's architecture; NVIDIA's FP8/NVFP4 checkpoints share their base model's.
SILICON_MODELS = {
    "deepseek-ai/DeepSeek-R1": "deepseek-v3", "deepseek-ai/DeepSeek-V3": "deepseek-v3",
    "nvidia/DeepSeek-R1-NVFP4": "deepseek-v3", "nvidia/DeepSeek-V3.1-NVFP4": "deepseek-v3",
    "meta-llama/Llama-3.1-70B": "llama-3.1-70b",
    "meta-llama/Llama-3.1-8B-Instruct": "llama-3.1-8b",
    "nvidia/Llama-3.1-8B-Instruct-FP8": "llama-3.1-8b",
    "Qwen/Qwen3-32B": "qwen3-32b", "nvidia/Qwen3-32B-NVFP4": "qwen3-32b",
    "Qwen/Qwen3-235B-A22B-FP8": "qwen3-235b-a22b",
    "moonshotai/Kimi-K2.5": "kimi-k2.5", "MiniMaxAI/MiniMax-M2.5": "minimax-m2.5",
    "openai/gpt-oss-120b": "gpt-oss-120b",
}
# Model families for leave-one-family-out cross-validation.
FAMILIES = {
    "deepseek-v3": "deepseek", "kimi-k2.5": "kimi", "llama-3.1-70b": "llama",
    "llama-3.1-8b": "llama", "llama-3.3-70b": "llama", "llama-3.1-405b": "llama",
    "qwen3-32b": "qwen3", "qwen3-235b-a22b": "qwen3-moe", "qwen3-30b-a3b": "qwen3-moe",
    "deepseek-v3.1": "deepseek",
    "minimax-m2.5": "minimax", "gpt-oss-120b": "gpt-oss",
}
# The CSV's `precision` -> the estimator's weight dtype (int4 weight-only has no tensor cores; an
# empty precision with an empty gemm_quant_mode is an unquantised bf16 checkpoint).
WEIGHT_DTYPES = {"bf16": "bf16", "fp16": "fp16", "fp8": "fp8", "fp4": "fp4", "": "bf16"}


def kv_dtype_for(engine: str, weight_dtype: str) -> str:
    """The KV-cache dtype the runs most likely used; the CSV does not record it. TensorRT-LLM
    serves NVIDIA's FP8/FP4 checkpoints with the FP8 KV cache their quant config names; vLLM and
    SGLang default to the activation dtype (bf16) except for NVFP4 checkpoints (FP8 KV)."""
    if weight_dtype == "bf16":
        return "bf16"
    if engine == "trtllm" or weight_dtype == "fp4":
        return "fp8"
    return "bf16"


def silicon_csv_path() -> Path | None:
    """The installed aiconfigurator-core's systems/silicon_sample.csv, or None."""
    spec = importlib.util.find_spec("aiconfigurator_core")
    if spec is None or not spec.submodule_search_locations:
        return None
    for folder in spec.submodule_search_locations:
        path = Path(folder) / "systems" / "silicon_sample.csv"
        if path.is_file():
            return path
    return None


class _ModelOfRun:
    """The model family and weight dtype of a run (SiliconRun, PrefillRun)."""

    model: str | None
    model_path: str
    precision: str

    @property
    def family(self) -> str:
        return FAMILIES.get(self.model or "", self.model or self.model_path)

    @property
    def weight_dtype(self) -> str | None:
        return WEIGHT_DTYPES.get(self.precision)


@dataclass(frozen=True)
class SiliconRun(_ModelOfRun):
    """One measured run, reduced to what the estimator needs. Lengths in tokens, times in ms.

    `gpus`, `attention_dp`, `moe_ep` and `batch` describe the instance whose TPOT was measured:
    the aggregated worker, or the decode worker of a disaggregated deployment (whose batch is
    the decode worker's). `prefill_*` describe a disaggregated deployment's prefill worker."""

    run_id: str
    engine: str
    engine_version: str
    model_path: str
    model: str | None  # bundled architecture, None when not describable
    gpu: str | None  # catalog GPU type
    system: str
    precision: str
    mode: str  # agg | disagg
    input_tokens: int
    output_tokens: int
    gpus: int
    tensor_parallel: int
    attention_dp: int
    moe_ep: int
    batch: int
    concurrency: int
    ttft_ms: float
    tpot_ms: float
    prefill_gpus: int = 0
    prefill_attention_dp: int = 1
    prefill_moe_ep: int = 1
    kv_dtype_given: str | None = None  # a user's measurement may say; the silicon CSV does not
    gemm_quant_mode: str = ""  # AIConfigurator's names, as the silicon CSV records them
    moe_quant_mode: str = ""
    moe_tp: int = 1

    @property
    def kv_dtype(self) -> str:
        return self.kv_dtype_given or kv_dtype_for(self.engine, self.weight_dtype or "bf16")

    @property
    def attention(self) -> str | None:
        """'tp', 'dp', or None for a hybrid (attention-DP ranks of several GPUs each)."""
        if self.attention_dp == 1:
            return "tp"
        if self.attention_dp == self.gpus:
            return "dp"
        return None

    @property
    def context_tokens(self) -> float:
        """Mean resident context of a sequence in decode (method.md Eq. D3)."""
        return self.input_tokens + self.output_tokens / 2


def _int(row: dict[str, str], key: str) -> int:
    value = row.get(key) or ""
    return int(float(value)) if value.strip() else 0


def _concurrency(source: str) -> int:
    for part in source.split(";"):
        key, _, value = part.strip().partition("=")
        if key == "silicon_concurrency" and value.strip().isdigit():
            return int(value)
    return 0


def _catalog_gpu(system: str) -> str | None:
    try:
        return gpu_spec(system).name
    except ScenarioError:
        return None


def parse_row(row: dict[str, str]) -> SiliconRun | None:
    """A CSV row as a SiliconRun; None for rows without TPOT or without a decode layout."""
    try:
        tpot, ttft = float(row["silicon_tpot_ms"]), float(row["silicon_ttft_ms"])
    except (KeyError, ValueError):
        return None
    if not (math.isfinite(tpot) and tpot > 0):
        return None
    mode = row["mode"]
    prefix = "" if mode == "agg" else "decode_"
    tp = _int(row, f"{prefix}tp_size")
    adp = max(1, _int(row, f"{prefix}attention_dp_size"))
    moe_ep = max(1, _int(row, f"{prefix}moe_ep_size"))
    per_rank_batch = _int(row, f"{prefix}batch_size")
    if tp < 1 or per_rank_batch < 1:
        return None
    # A few vLLM rows give tp_size 1 beside moe_tp_size 4 (the run id says tp1, yet the FP8
    # weights need the 4 GPUs): the larger of the attention and the MoE layout counts.
    gpus = max(tp * adp, _int(row, f"{prefix}moe_tp_size") * moe_ep)
    extra: dict[str, int] = {}
    if mode == "disagg":
        p_adp = max(1, _int(row, "prefill_attention_dp_size"))
        extra = {"prefill_gpus": _int(row, "prefill_tp_size") * p_adp,
                 "prefill_attention_dp": p_adp,
                 "prefill_moe_ep": max(1, _int(row, "prefill_moe_ep_size"))}
    return SiliconRun(
        run_id=row["id"], engine=row["backend"], engine_version=row["backend_version"],
        model_path=row["model_path"], model=SILICON_MODELS.get(row["model_path"]),
        gpu=_catalog_gpu(row["system"]), system=row["system"], precision=row["precision"],
        mode=mode, input_tokens=int(row["isl"]), output_tokens=int(row["osl"]),
        gpus=gpus, tensor_parallel=tp, attention_dp=adp,
        moe_ep=moe_ep if gpus % moe_ep == 0 else 1, batch=per_rank_batch * adp,
        concurrency=_concurrency(row.get("silicon_data_source", "")), ttft_ms=ttft,
        tpot_ms=tpot, gemm_quant_mode=row.get("gemm_quant_mode") or "",
        moe_quant_mode=row.get("moe_quant_mode") or "",
        moe_tp=max(1, _int(row, f"{prefix}moe_tp_size")),
        prefill_gpus=extra.get("prefill_gpus", 0),
        prefill_attention_dp=extra.get("prefill_attention_dp", 1),
        prefill_moe_ep=extra.get("prefill_moe_ep", 1))


def dedupe_key(run: SiliconRun) -> tuple[object, ...]:
    """Two rows with this key equal are the same measurement filed twice."""
    return (run.engine, run.system, run.precision, run.mode, run.input_tokens,
            run.output_tokens, run.gpus, run.attention_dp, run.moe_ep, run.batch,
            run.prefill_gpus, round(run.ttft_ms, 4), round(run.tpot_ms, 4))


def dedupe(runs: Iterable[SiliconRun]) -> list[SiliconRun]:
    """The runs without repeats of an earlier run's numbers (first one kept)."""
    seen: set[tuple[object, ...]] = set()
    out = []
    for r in runs:
        key = dedupe_key(r)
        if key not in seen:
            seen.add(key)
            out.append(r)
    return out


def read_silicon(path: str | Path) -> tuple[list[SiliconRun], int, int]:
    """The de-duplicated runs of a silicon CSV, the number of rows read and of rows parsed
    (with a TPOT and a decode layout) before removing repeats. A regular file of at most
    MAX_SILICON_BYTES (pdopt.inputfiles.InputFileError otherwise; UnicodeDecodeError for
    a file that is not UTF-8)."""
    text = read_limited(path, MAX_SILICON_BYTES, "silicon CSVs").decode("utf-8-sig")
    rows = list(csv.DictReader(io.StringIO(text, newline="")))
    runs = [r for r in (parse_row(row) for row in rows) if r is not None]
    return dedupe(runs), len(rows), len(runs)


def _why_shape_not_described(run: SiliconRun | PrefillRun) -> str | None:
    """The reason the estimator cannot describe a run's model, GPU or precision (None: it can)."""
    if run.model is None:
        return f"model {run.model_path} not a supported architecture"
    if run.gpu is None:
        return f"system {run.system} not in the catalog"
    if run.weight_dtype is None:
        return f"precision {run.precision} (weight-only) not modelled"
    if run.weight_dtype not in gpu_spec(run.gpu).dense_tflops:
        return f"{run.gpu} has no {run.weight_dtype} tensor cores"
    return None


def why_not_describable(run: SiliconRun) -> str | None:
    """None when the estimator can describe the run, else the reason (for the tally)."""
    reason = _why_shape_not_described(run)
    if reason is not None:
        return reason
    if run.attention is None:
        return "hybrid attention-DP (ranks of several GPUs)"
    return None


def describable(runs: Iterable[SiliconRun]) -> list[SiliconRun]:
    return [r for r in runs if why_not_describable(r) is None]


def run_estimate(run: SiliconRun, factors: EstimateFactors) -> Estimate:
    """The estimator of the run's measured instance (aggregated worker or decode worker)."""
    assert run.model is not None and run.gpu is not None and run.weight_dtype is not None
    attention = "dp" if run.attention == "dp" else "tp"
    arch = model_arch(run.model)
    shape = InstanceShape(gpu_spec(run.gpu), run.gpus, run.weight_dtype, run.kv_dtype,
                          attention, moe_ep=run.moe_ep if arch.is_moe else None)  # type: ignore[arg-type]
    return Estimate(arch, shape, factors)


def fits(run: SiliconRun, factors: EstimateFactors) -> bool:
    """Whether the estimator accepts the run's instance (its weights fit, Eq. E12)."""
    try:
        run_estimate(run, factors).kv_cache_tokens()
    except UnreachableTargetError:
        return False
    return True


def predicted_tpot_ms(run: SiliconRun, factors: EstimateFactors) -> float:
    """The estimate of the run's measured TPOT (Eq. V3): a decode worker's step time at its
    batch; an aggregated worker's step also carries the prompts it prefills in chunks beside
    decode, B x L_in / L_out prompt tokens per step, whose FLOPs join the step's FLOPs."""
    return float(run_terms([run], factors).predict_tpot_ms(factors)[0])


@dataclass(frozen=True)
class RunTerms:
    """The factor-free terms of many runs as arrays (one entry per run), so that a set of
    factors predicts all of them at once (the calibration's inner loop)."""

    runs: list[SiliconRun]
    decode: DecodeTerms  # aggregated runs: with the chunked prompts' FLOPs and link time
    measured_tpot_ms: np.ndarray

    def predict_tpot_ms(self, f: EstimateFactors) -> np.ndarray:
        return 1e3 * decode_step_seconds(self.decode, f) / self.decode.tokens_per_step


def run_terms(runs: Sequence[SiliconRun], factors: EstimateFactors) -> RunTerms:
    """RunTerms of runs the estimator describes (`factors` only builds the estimators)."""
    decode = []
    for r in runs:
        est = run_estimate(r, factors)
        t = est.decode_terms(r.batch, r.context_tokens)
        if r.mode == "agg":  # Eq. V3: B x L_in / L_out prompt tokens ride along each step
            prompt = r.batch * r.input_tokens / r.output_tokens
            p = est.prefill_terms(r.input_tokens)
            c = t.compute_s
            t = replace(t, compute_s=(c[0], c[1] + prompt * p.dense_s, c[2] + prompt * p.moe_s,
                                      c[3]), comm_s=t.comm_s + prompt * p.comm_s,
                        products_s=(t.products_s[0], t.products_s[1] + prompt * p.attention_s,
                                    t.products_s[2], t.products_s[3]))
        decode.append(t)

    def col(values: Iterable[float]) -> np.ndarray:
        return np.asarray(list(values), dtype=float)

    d = DecodeTerms(
        memory_s=tuple(col(t.memory_s[i] for t in decode) for i in range(4)),  # type: ignore[arg-type]
        compute_s=tuple(col(t.compute_s[i] for t in decode) for i in range(4)),  # type: ignore[arg-type]
        comm_s=col(t.comm_s for t in decode), layers=col(t.layers for t in decode),
        moe_layers=col(t.moe_layers for t in decode),
        batch=col(t.batch for t in decode), tokens_per_step=col(t.tokens_per_step for t in decode),
        steps=col(t.steps for t in decode), mla_layers=col(t.mla_layers for t in decode),
        products_s=tuple(col(t.products_s[i] for t in decode) for i in range(4)),  # type: ignore[arg-type]
        fp4=col(t.fp4 for t in decode))
    return RunTerms(list(runs), d, col(r.tpot_ms for r in runs))


def evaluate(runs: Iterable[SiliconRun],
             factors: Callable[[SiliconRun], EstimateFactors] | EstimateFactors | None = None
             ) -> tuple[list[tuple[SiliconRun, float]], list[SiliconRun]]:
    """(run, predicted TPOT ms) for every run the estimator accepts, and the refused runs.
    `factors`: one set, or a function of the run (per-engine factors); default: the shipped
    factors of each run's engine."""
    pairs, refused = [], []
    for run in runs:
        if factors is None:
            f = engine_factors(run.engine)
        elif isinstance(factors, EstimateFactors):
            f = factors
        else:
            f = factors(run)
        if not fits(run, f):
            refused.append(run)
            continue
        pairs.append((run, predicted_tpot_ms(run, f)))
    return pairs, refused


def ratios(values: Sequence[float]) -> dict[str, float]:
    """Error summary of predicted/measured ratios: count, median ratio, median |error|, p90
    |error|, share within +-10% and +-25%."""
    if not values:
        return {"runs": 0}
    errors = sorted(abs(v - 1) for v in values)
    n = len(values)
    return {
        "runs": n, "median_ratio": _median(values), "median_abs_error": _median(errors),
        "p90_abs_error": errors[min(n - 1, int(math.ceil(0.9 * n)) - 1)],
        "within_10": sum(e <= 0.10 for e in errors) / n,
        "within_25": sum(e <= 0.25 for e in errors) / n,
    }


def _median(values: Sequence[float]) -> float:
    s = sorted(values)
    n = len(s)
    return s[n // 2] if n % 2 else (s[n // 2 - 1] + s[n // 2]) / 2


def batch_bucket(batch: int) -> str:
    for top, name in ((8, "1-8"), (64, "9-64"), (256, "65-256")):
        if batch <= top:
            return name
    return ">256"


# Aggregated runs at this concurrency or less hold at most this many prompts in prefill at once,
# so TTFT is (close to) one prompt's prefill plus fixed costs.
PAIR_MAX_BATCH = 4


def prefill_pairs(runs: Iterable[SiliconRun]) -> list[tuple[SiliconRun, SiliconRun]]:
    """(shorter, longer) prompt runs of one deployment at low concurrency (aggregated, batch
    <= 4, same engine, version, model, GPU, layout, batch and output length, input lengths
    differing by 4x or more): their TTFT difference is prefill time without the fixed costs."""
    groups: dict[tuple[object, ...], list[SiliconRun]] = {}
    for r in runs:
        if r.mode != "agg" or r.batch > PAIR_MAX_BATCH:
            continue
        key = (r.engine, r.engine_version, r.model_path, r.system, r.precision, r.gpus,
               r.attention_dp, r.moe_ep, r.batch, r.output_tokens)
        groups.setdefault(key, []).append(r)
    pairs = []
    for members in groups.values():
        members.sort(key=lambda r: r.input_tokens)
        short, long = members[0], members[-1]
        if long.input_tokens >= 4 * short.input_tokens and long.ttft_ms > short.ttft_ms:
            pairs.append((short, long))
    return pairs


def stack_prefill_terms(terms: Sequence[PrefillTerms]) -> PrefillTerms:
    """Many PrefillTerms as one of arrays (one entry each)."""
    return PrefillTerms(*(np.asarray([getattr(t, name) for t in terms], dtype=float)
                          for name in ("dense_s", "moe_s", "comm_s", "attention_s", "fp4")))


@dataclass(frozen=True)
class PairTerms:
    """Factor-free prefill terms of (short, long) prompt pairs, for Eq. V4."""

    pairs: list[tuple[SiliconRun, SiliconRun]]
    short: PrefillTerms
    long: PrefillTerms
    short_tokens: np.ndarray
    long_tokens: np.ndarray
    measured_ms: np.ndarray  # TTFT(long) - TTFT(short)

    def predict_ms(self, f: EstimateFactors) -> np.ndarray:
        """Eq. V4: L_long x E9^-1(L_long) - L_short x E9^-1(L_short), ms."""
        return 1e3 * (self.long_tokens * prefill_seconds_per_token(self.long, f)
                      - self.short_tokens * prefill_seconds_per_token(self.short, f))


def pair_terms(pairs: Sequence[tuple[SiliconRun, SiliconRun]], factors: EstimateFactors
               ) -> PairTerms:
    def terms(runs: Iterable[SiliconRun]) -> PrefillTerms:
        ts = [run_estimate(r, factors).prefill_terms(r.input_tokens) for r in runs]
        return stack_prefill_terms(ts)

    return PairTerms(
        list(pairs), terms(s for s, _ in pairs), terms(long for _, long in pairs),
        np.asarray([s.input_tokens for s, _ in pairs], dtype=float),
        np.asarray([long.input_tokens for _, long in pairs], dtype=float),
        np.asarray([long.ttft_ms - s.ttft_ms for s, long in pairs], dtype=float))


# --- saturated prefill from disaggregated sweeps (docs/profiles.md, Eq. V5) --------------------

# A sweep's best run counts as saturated when its TTFT is at least this many times the sweep's
# lowest TTFT (requests queued at the prefill workers: TTFT at low load is fixed costs and one
# prompt's prefill, ~0.1-0.5 s in these runs) and the sweep has at least SWEEP_MIN_RUNS runs.
SATURATION_TTFT_FACTOR = 4.0
SWEEP_MIN_RUNS = 3
# No measured prefill exceeds this share of the GPUs' dense peak FLOP/s (Eq. E7 FLOPs): a run
# implying more is physically impossible (a mislabelled layout or worker count) and is dropped.
MAX_PEAK_SHARE = 0.9


@dataclass(frozen=True)
class PrefillRun(_ModelOfRun):
    """One disaggregated run seen from its prefill workers: `workers` prefill instances of
    `gpus` GPUs (TP x attention-DP, MoE expert-parallel `moe_ep`), `concurrency` requests in
    the closed loop, measured mean TTFT and TPOT (ms)."""

    run_id: str
    engine: str
    engine_version: str
    model_path: str
    model: str | None
    gpu: str | None
    system: str
    precision: str
    input_tokens: int
    output_tokens: int
    gpus: int
    attention_dp: int
    moe_ep: int
    workers: int
    concurrency: int
    ttft_ms: float
    tpot_ms: float

    @property
    def served_tokens_per_s(self) -> float:
        """Eq. V5a: prompt tokens/s each prefill worker processed. A closed loop of c requests
        completes c / (TTFT + (L_out - 1) TPOT) requests/s (Little's law), each of L_in
        prompt tokens, shared by the workers: a lower bound of the saturated throughput, equal
        to it when the prefill workers are the bottleneck."""
        latency_s = (self.ttft_ms + (self.output_tokens - 1) * self.tpot_ms) / 1e3
        return self.concurrency / latency_s * self.input_tokens / self.workers


def parse_prefill_row(row: dict[str, str]) -> PrefillRun | None:
    """A disaggregated CSV row with its prefill layout and worker count, else None."""
    if row.get("mode") != "disagg":
        return None
    try:
        tpot, ttft = float(row["silicon_tpot_ms"]), float(row["silicon_ttft_ms"])
    except (KeyError, ValueError):
        return None
    tp, workers = _int(row, "prefill_tp_size"), _int(row, "prefill_num_workers")
    concurrency = _concurrency(row.get("silicon_data_source", ""))
    if not (math.isfinite(tpot) and math.isfinite(ttft) and tpot > 0 and ttft > 0):
        return None
    if tp < 1 or workers < 1 or concurrency < 1:
        return None
    adp = max(1, _int(row, "prefill_attention_dp_size"))
    moe_ep = max(1, _int(row, "prefill_moe_ep_size"))
    gpus = max(tp * adp, max(1, _int(row, "prefill_moe_tp_size")) * moe_ep)
    return PrefillRun(
        run_id=row["id"], engine=row["backend"], engine_version=row["backend_version"],
        model_path=row["model_path"], model=SILICON_MODELS.get(row["model_path"]),
        gpu=_catalog_gpu(row["system"]), system=row["system"], precision=row["precision"],
        input_tokens=int(row["isl"]), output_tokens=int(row["osl"]), gpus=gpus,
        attention_dp=adp, moe_ep=moe_ep if gpus % moe_ep == 0 else 1, workers=workers,
        concurrency=concurrency, ttft_ms=ttft, tpot_ms=tpot)


def read_prefill_runs(path: str | Path) -> list[PrefillRun]:
    """The de-duplicated disaggregated runs of a silicon CSV that give their prefill layout and
    worker count (repeats of an earlier row's numbers dropped, as `dedupe`)."""
    text = read_limited(path, MAX_SILICON_BYTES, "silicon CSVs").decode("utf-8-sig")
    seen: set[tuple[object, ...]] = set()
    out = []
    for row in csv.DictReader(io.StringIO(text, newline="")):
        p = parse_prefill_row(row)
        if p is None:
            continue
        key = (p.engine, p.system, p.precision, p.input_tokens, p.output_tokens, p.gpus,
               p.attention_dp, p.moe_ep, p.workers, p.concurrency, round(p.ttft_ms, 4),
               round(p.tpot_ms, 4))
        if key not in seen:
            seen.add(key)
            out.append(p)
    return out


def why_prefill_not_describable(run: PrefillRun) -> str | None:
    """None when the estimator can describe the prefill run, else the reason."""
    return _why_shape_not_described(run)


def prefill_run_estimate(run: PrefillRun, factors: EstimateFactors) -> Estimate:
    """The estimator of one prefill worker of the run (attention-DP ranks as DP attention)."""
    assert run.model is not None and run.gpu is not None and run.weight_dtype is not None
    arch = model_arch(run.model)
    shape = InstanceShape(gpu_spec(run.gpu), run.gpus, run.weight_dtype,
                          kv_dtype_for(run.engine, run.weight_dtype),
                          "dp" if run.attention_dp > 1 else "tp",
                          moe_ep=run.moe_ep if arch.is_moe else None)
    return Estimate(arch, shape, factors)


@dataclass(frozen=True)
class SaturatedPrefill:
    """A sweep's saturated prefill throughput per worker (Eq. V5) and the run that gave it."""

    run: PrefillRun
    tokens_per_s: float
    sweep_runs: int


def peak_tokens_per_s(run: PrefillRun) -> float:
    """Prompt tokens/s of one worker at 100% of dense peak FLOP/s (Eq. E7 at the weight dtype)."""
    assert run.model is not None and run.gpu is not None and run.weight_dtype is not None
    flops = model_arch(run.model).prefill_flops_per_token(run.input_tokens)
    return run.gpus * gpu_spec(run.gpu).peak_flops(run.weight_dtype) / flops


def saturated_prefill(runs: Iterable[PrefillRun]) -> list[SaturatedPrefill]:
    """Eq. V5: per sweep (engine, version, model, GPU, precision, prefill layout, lengths; the
    concurrency varies) the run with the most prompt tokens/s per worker (Eq. V5a), kept when
    the sweep has SWEEP_MIN_RUNS runs or more, outputs no longer than prompts (longer outputs
    fill the decode workers' KV cache, which then holds prompts back: TTFT grows while the
    prefill workers idle), that run's TTFT is SATURATION_TTFT_FACTOR times
    the sweep's lowest or more (prefill queued), and it implies at most MAX_PEAK_SHARE of peak
    FLOP/s (more is physically impossible). Only describable runs."""
    sweeps: dict[tuple[object, ...], list[PrefillRun]] = {}
    for r in runs:
        if why_prefill_not_describable(r) is not None:
            continue
        key = (r.engine, r.engine_version, r.model_path, r.system, r.precision, r.gpus,
               r.attention_dp, r.moe_ep, r.input_tokens, r.output_tokens)
        sweeps.setdefault(key, []).append(r)
    out = []
    for members in sweeps.values():
        if len(members) < SWEEP_MIN_RUNS or members[0].output_tokens > members[0].input_tokens:
            continue
        best = max(members, key=lambda r: r.served_tokens_per_s)
        if best.ttft_ms < SATURATION_TTFT_FACTOR * min(r.ttft_ms for r in members):
            continue
        if best.served_tokens_per_s > MAX_PEAK_SHARE * peak_tokens_per_s(best):
            continue
        out.append(SaturatedPrefill(best, best.served_tokens_per_s, len(members)))
    return out


@dataclass(frozen=True)
class SaturatedTerms:
    """Factor-free Eq. E9 terms of saturated-prefill points, for fitting Eq. V5."""

    points: list[SaturatedPrefill]
    terms: PrefillTerms
    measured_tokens_per_s: np.ndarray

    def predict_tokens_per_s(self, f: EstimateFactors) -> np.ndarray:
        return 1.0 / prefill_seconds_per_token(self.terms, f)


def saturated_terms(points: Sequence[SaturatedPrefill], factors: EstimateFactors
                    ) -> SaturatedTerms:
    ts = [prefill_run_estimate(p.run, factors).prefill_terms(p.run.input_tokens)
          for p in points]
    return SaturatedTerms(
        list(points),
        stack_prefill_terms(ts),
        np.asarray([p.tokens_per_s for p in points], dtype=float))
