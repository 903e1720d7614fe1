"""The scenario format: pydantic v2 models for every input (documented in docs/scenario-format.md).

Every model forbids unknown fields, so a typo such as `tpot_msx` is an error rather than a silently
dropped SLO. Field descriptions become the JSON Schema's descriptions (`pdopt schema`). Cross-field
and cross-reference checks that need the whole scenario live in `check_references`, which reports
every problem with its dotted location.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, model_validator
from pydantic_core import PydanticCustomError

from pdopt.scenario import ranges as r
from pdopt.scenario.horizon import (
    Periods,
    PrefixCacheTrace,
    Redundancy,
    Reserved,
    Spot,
    WorkloadDemand,
)
from pdopt.scenario.limits import Limits, ModelLimits, merge_limits
from pdopt.scenario.problems import Problem
from pdopt.scenario.profile_spec import ProfileSpec
from pdopt.scenario.ranges import at_least


def _not_bool(value: Any) -> Any:
    """Refuse true/false where a number belongs (pydantic would read `ttft_ms: true` as 1)."""
    if isinstance(value, bool):
        raise ValueError(f"must be a number, got {str(value).lower()}")
    return value


NotBool = BeforeValidator(_not_bool)
# NotBool comes after the constraints so that they still appear in the JSON Schema.
PositiveFloat = Annotated[float, Field(gt=0, allow_inf_nan=False), NotBool]
NonNegativeFloat = Annotated[float, Field(ge=0, allow_inf_nan=False), NotBool]
PositiveInt = Annotated[int, Field(gt=0), NotBool]
NonNegativeInt = Annotated[int, Field(ge=0), NotBool]
Percentile = Annotated[float, Field(gt=0, lt=100, allow_inf_nan=False), NotBool]
# Numbers within their sane ranges (pdopt/scenario/ranges.py, docs/scenario-format.md#ranges).
CostPerHour = Annotated[float, Field(gt=0, le=r.MAX_COST_PER_HOUR, allow_inf_nan=False), NotBool,
                        at_least(r.MIN_COST_PER_HOUR, "a hundredth of a cent per hour")]
MemoryGib = Annotated[float, Field(gt=0, le=r.MAX_MEMORY_GIB, allow_inf_nan=False), NotBool,
                      at_least(r.MIN_MEMORY_GIB, "1 MiB")]
GpuCount = Annotated[int, Field(ge=0, le=r.MAX_GPU_COUNT), NotBool]
Tokens = Annotated[int, Field(gt=0, le=r.MAX_TOKENS), NotBool]
Batch = Annotated[int, Field(gt=0, le=r.MAX_BATCH), NotBool]
Milliseconds = Annotated[float, Field(gt=0, le=r.MAX_MS, allow_inf_nan=False), NotBool,
                         at_least(r.MIN_MS, "one microsecond")]
OverheadMs = Annotated[float, Field(ge=0, le=r.MAX_MS, allow_inf_nan=False), NotBool]
GpusPerInstance = Annotated[int, Field(gt=0, le=r.MAX_GPUS_PER_INSTANCE), NotBool]
InstanceTokensPerS = Annotated[
    float, Field(gt=0, le=r.MAX_INSTANCE_TOKENS_PER_S, allow_inf_nan=False), NotBool,
    at_least(r.MIN_INSTANCE_TOKENS_PER_S, "a thousandth of a token per second")]
KvCacheTokens = Annotated[int, Field(gt=0, le=r.MAX_KV_CACHE_TOKENS), NotBool]
InstanceCount = Annotated[int, Field(ge=0, le=r.MAX_INSTANCE_COUNT), NotBool]
KvBytesPerToken = Annotated[
    float, Field(gt=0, le=r.MAX_KV_BYTES_PER_TOKEN, allow_inf_nan=False), NotBool,
    at_least(r.MIN_KV_BYTES_PER_TOKEN, "one byte")]
WeightGib = Annotated[float, Field(ge=0, le=r.MAX_WEIGHT_GIB, allow_inf_nan=False), NotBool]
Cv = Annotated[float, Field(ge=0, le=r.MAX_CV, allow_inf_nan=False), NotBool]
Scv = Annotated[float, Field(ge=0, le=r.MAX_SCV, allow_inf_nan=False), NotBool]
RequestsPerS = Annotated[float, Field(gt=0, le=r.MAX_REQUESTS_PER_S, allow_inf_nan=False), NotBool]
TokensPerS = Annotated[float, Field(gt=0, le=r.MAX_TOKENS_PER_S, allow_inf_nan=False), NotBool]
TokensPerMinute = Annotated[float, Field(gt=0, le=60 * r.MAX_TOKENS_PER_S, allow_inf_nan=False),
                            NotBool]
Headroom = Annotated[float, Field(ge=1, le=r.MAX_HEADROOM, allow_inf_nan=False), NotBool]
GbitPerS = Annotated[float, Field(gt=0, le=r.MAX_GBIT_PER_S, allow_inf_nan=False), NotBool,
                     at_least(r.MIN_GBIT_PER_S, "1 Mbit/s")]
TimeLimitS = Annotated[float, Field(gt=0, le=r.MAX_TIME_LIMIT_S, allow_inf_nan=False), NotBool]
BudgetPerHour = Annotated[float, Field(gt=0, le=r.MAX_BUDGET_PER_HOUR, allow_inf_nan=False),
                          NotBool]

QueueModel = Literal["auto", "mm1", "md1", "mg1"]
# How a pool's requests are spread over its instances (docs/method.md, section Q).
Routing = Literal["round-robin", "random", "least-loaded"]
Role = Literal["prefill", "decode"]
Extrapolation = Literal["error", "nearest", "linear"]
Objective = Literal["cost", "gpus"]

# Bytes per element of the KV-cache data types a model may declare.
KV_DTYPE_BYTES: dict[str, float] = {
    "fp32": 4, "bf16": 2, "fp16": 2, "fp8": 1, "int8": 1, "fp4": 0.5,
}


class StrictModel(BaseModel):
    """Base of every scenario model: unknown fields are errors, instances are immutable."""

    model_config = ConfigDict(extra="forbid", frozen=True)


class Gpu(StrictModel):
    """A GPU type: its price and, optionally, its memory and how many the planner can get."""

    cost_per_hour: CostPerHour = Field(description="On-demand price, USD per GPU-hour.")
    memory_gib: MemoryGib | None = Field(
        default=None, description="HBM per GPU in GiB; needed for the KV-cache cap on decode batch."
    )
    count: GpuCount | None = Field(
        default=None,
        description="Inventory: at most this many GPUs of this type (absent: unlimited).",
    )
    reserved: Reserved | None = Field(
        default=None, description="Reserved capacity: price per GPU-hour paid in every period "
        "of the horizon (docs/method.md, section H).")
    spot: Spot | None = Field(
        default=None, description="Spot capacity: price, cap per period, interruption share.")


class MeasuredAt(StrictModel):
    """The request lengths at which a decode TPOT table was measured."""

    input_tokens: Tokens = Field(
        description="Mean prompt length of the benchmark run, tokens."
    )
    output_tokens: Tokens = Field(
        description="Mean output length of the benchmark run, tokens."
    )

    @property
    def context_tokens(self) -> float:
        """Mean resident context of a decoding request: input + output/2 (docs/method.md, D3)."""
        return self.input_tokens + self.output_tokens / 2


class TpotTable(StrictModel):
    """Decode TPOT (ms) against batch size, measured at one context length."""

    measured_at: MeasuredAt | None = Field(
        default=None,
        description="Lengths of the benchmark run. Absent: the table is taken to hold at any "
        "context.",
    )
    tpot_ms_by_batch: dict[Batch, Milliseconds] = Field(
        description="Mean time per output token (ms) at each decode batch size (concurrency)."
    )

    @model_validator(mode="after")
    def _monotone(self) -> TpotTable:
        if not self.tpot_ms_by_batch:
            raise ValueError("tpot_ms_by_batch: must have at least one entry")
        batches = sorted(self.tpot_ms_by_batch)
        for lo, hi in zip(batches, batches[1:], strict=False):
            if self.tpot_ms_by_batch[hi] < self.tpot_ms_by_batch[lo]:
                raise ValueError(
                    f"tpot_ms_by_batch: TPOT must not decrease as batch grows "
                    f"(batch {lo}: {self.tpot_ms_by_batch[lo]} ms, batch {hi}: "
                    f"{self.tpot_ms_by_batch[hi]} ms)"
                )
        return self

    @property
    def context_tokens(self) -> float | None:
        return None if self.measured_at is None else self.measured_at.context_tokens


FIELD_PROBLEMS = "field_problems"


def field_problems(problems: list[tuple[str, str]]) -> PydanticCustomError:
    """A model validator's problems, each (field path within the model, message), carried
    through pydantic as data (`ctx["problems"]`) so the loader reports each at its location."""
    summary = "; ".join(f"{field}: {message}" for field, message in problems)  # str() only
    return PydanticCustomError(FIELD_PROBLEMS, "{summary}",
                               {"summary": summary, "problems": problems})


EstimatedBy = Literal["estimate", "aiconfigurator"]
#: how pdopt 0.1 began the `source` of the instance blocks it estimated (read for old files only)
LEGACY_ESTIMATE_SOURCES: tuple[tuple[str, EstimatedBy], ...] = (
    ("estimate pdopt ", "estimate"), ("aiconfigurator ", "aiconfigurator"))


class Instance(StrictModel):
    """A benchmarked instance type: one model served by `gpus_per_instance` GPUs in one role."""

    name: str = Field(min_length=1, description="Unique name of the instance type.")
    model: str = Field(min_length=1, description="Model served (matches workloads' `model`).")
    role: Role = Field(description="`prefill` or `decode`.")
    gpu: str = Field(min_length=1, description="GPU type, a key of `gpus`.")
    gpus_per_instance: GpusPerInstance = Field(description="GPUs in one instance (TP x PP x EP).")
    prefill_tokens_per_s: InstanceTokensPerS | dict[Tokens, InstanceTokensPerS] | None = Field(
        default=None,
        description=(
            "Prefill only: saturated prefill throughput in input tokens/s, one number or a table "
            "over input length (tokens -> tokens/s), interpolated linearly."
        ),
    )
    measured_at: MeasuredAt | None = Field(
        default=None, description="Decode only: lengths at which `tpot_ms_by_batch` was measured."
    )
    tpot_ms_by_batch: dict[Batch, Milliseconds] | None = Field(
        default=None,
        description="Decode only: one TPOT-vs-batch table (short form of tpot_tables).",
    )
    tpot_tables: list[TpotTable] | None = Field(
        default=None,
        description="Decode only: TPOT tables at several context lengths, interpolated between "
        "them.",
    )
    extrapolation: Extrapolation = Field(
        default="error",
        description=(
            "Lookups outside a measured range (input length for prefill, context for decode, batch "
            "beyond the largest measured): `error` (default), `nearest` (clamp) or `linear`."
        ),
    )
    kv_cache_tokens: KvCacheTokens | None = Field(
        default=None,
        description="KV-cache capacity of one instance in tokens, as the engine reports it at "
        "start.",
    )
    min_count: InstanceCount = Field(
        default=0, description="Optimizer: at least this many instances of this type."
    )
    max_count: InstanceCount | None = Field(
        default=None, description="Optimizer: at most this many instances of this type."
    )
    source: str | dict[str, Any] | None = Field(
        default=None, description="Provenance of the numbers (benchmark files, paper, estimate)."
    )
    profile: ProfileSpec | None = Field(
        default=None,
        description="Estimate the numbers instead of giving measured ones: `{estimate: {...}}` or "
        "`{aiconfigurator: {...}}` (docs/profiles.md); resolved before solving.",
    )
    estimated_by: EstimatedBy | None = Field(
        default=None,
        description="The numbers are an estimate, not a measurement: `estimate` (pdopt's "
        "estimator) or `aiconfigurator`. Set by pdopt when it resolves a `profile:` block and in "
        "the blocks `pdopt profile estimate` prints; plans name the pools that use such numbers.",
    )

    @model_validator(mode="before")
    @classmethod
    def _legacy_estimated(cls, data: Any) -> Any:
        """Blocks printed by pdopt 0.1 say they are estimates only in `source`."""
        if isinstance(data, dict) and data.get("estimated_by") is None:
            source = data.get("source")
            for prefix, kind in LEGACY_ESTIMATE_SOURCES:
                if isinstance(source, str) and source.startswith(prefix):
                    return {**data, "estimated_by": kind}
        return data

    @model_validator(mode="after")
    def _role_fields(self) -> Instance:
        problems: list[tuple[str, str]] = []
        if self.profile is not None:
            measured = ("prefill_tokens_per_s", "measured_at", "tpot_ms_by_batch", "tpot_tables",
                        "kv_cache_tokens")
            problems += [(f, "give measured numbers or a profile, not both")
                         for f in measured if getattr(self, f) is not None]
        elif self.role == "prefill":
            if self.prefill_tokens_per_s is None:
                problems.append(("prefill_tokens_per_s", "required for a prefill instance"))
            elif isinstance(self.prefill_tokens_per_s, dict) and not self.prefill_tokens_per_s:
                problems.append(("prefill_tokens_per_s", "table must have at least one entry"))
            for f in ("measured_at", "tpot_ms_by_batch", "tpot_tables", "kv_cache_tokens"):
                if getattr(self, f) is not None:
                    problems.append((f, "only for decode instances"))
        else:
            if self.prefill_tokens_per_s is not None:
                problems.append(("prefill_tokens_per_s", "only for prefill instances"))
            if self.tpot_tables is not None and (
                self.tpot_ms_by_batch is not None or self.measured_at is not None
            ):
                problems.append(
                    ("tpot_tables", "give either tpot_tables or tpot_ms_by_batch, not both"))
            elif self.tpot_tables is None and self.tpot_ms_by_batch is None:
                problems.append(("tpot_ms_by_batch", "required for a decode instance"))
            elif self.tpot_tables is not None and not self.tpot_tables:
                problems.append(("tpot_tables", "must have at least one table"))
            elif self.tpot_tables is not None and len(self.tpot_tables) > 1:
                # Several tables are interpolated by context (docs/method.md, Eq. D2).
                at_context: dict[float, int] = {}
                for k, table in enumerate(self.tpot_tables):
                    context = table.context_tokens
                    if context is None:
                        problems.append((f"tpot_tables[{k}].measured_at",
                                         "required when there are several tables"))
                    elif context in at_context:
                        problems.append((
                            f"tpot_tables[{k}].measured_at",
                            f"same context ({context:g} tokens, input + output/2) as "
                            f"tpot_tables[{at_context[context]}] (give one table per context)"))
                    else:
                        at_context[context] = k
            elif self.tpot_ms_by_batch is not None:
                TpotTable(measured_at=self.measured_at, tpot_ms_by_batch=self.tpot_ms_by_batch)
        if self.max_count is not None and self.max_count < self.min_count:
            problems.append(("max_count", f"must be >= min_count ({self.min_count})"))
        if problems:
            raise field_problems(problems)
        return self

    @property
    def decode_tables(self) -> list[TpotTable]:
        """The decode TPOT tables, sorted by context length (decode instances only)."""
        if self.tpot_tables is not None:
            tables = list(self.tpot_tables)
        elif self.tpot_ms_by_batch is not None:
            tables = [
                TpotTable(measured_at=self.measured_at, tpot_ms_by_batch=self.tpot_ms_by_batch)
            ]
        else:
            return []
        return sorted(tables, key=lambda t: t.context_tokens or 0.0)


class ModelSpec(StrictModel):
    """Memory facts of a model, used to cap the decode batch by KV-cache memory."""

    kv_bytes_per_token: KvBytesPerToken | None = Field(
        default=None, description="KV-cache bytes per token for the whole model (all layers)."
    )
    layers: Annotated[int, Field(gt=0, le=r.MAX_LAYERS), NotBool] | None = Field(
        default=None, description="Transformer layers.")
    kv_heads: Annotated[int, Field(gt=0, le=r.MAX_KV_HEADS), NotBool] | None = Field(
        default=None, description="Key/value heads per layer.")
    head_dim: Annotated[int, Field(gt=0, le=r.MAX_HEAD_DIM), NotBool] | None = Field(
        default=None, description="Dimension of one head.")
    kv_dtype: Literal["fp32", "bf16", "fp16", "fp8", "int8", "fp4"] = Field(
        default="bf16", description="Data type of the KV cache."
    )
    weight_gib: WeightGib | None = Field(
        default=None,
        description="Weights of the whole model in GiB (split over an instance's GPUs).",
    )
    allowed_gpus: list[str] | None = Field(
        default=None, description="Optimizer: GPU types this model may run on (absent: any)."
    )
    allowed_prefill_gpus: list[str] | None = Field(
        default=None, description="Optimizer: GPU types for this model's prefill (absent: any)."
    )
    allowed_decode_gpus: list[str] | None = Field(
        default=None, description="Optimizer: GPU types for this model's decode (absent: any)."
    )
    limits: Limits | None = Field(
        default=None, description="Optimizer: operability limits of this model's pools "
        "(override options.limits field by field; docs/scenario-format.md, Limits).")

    @model_validator(mode="after")
    def _kv_facts(self) -> ModelSpec:
        shape = (self.layers, self.kv_heads, self.head_dim)
        if self.kv_bytes_per_token is not None and any(v is not None for v in shape):
            raise ValueError("give kv_bytes_per_token or layers/kv_heads/head_dim, not both")
        if any(v is not None for v in shape) and any(v is None for v in shape):
            raise ValueError("layers, kv_heads and head_dim must be given together")
        computed = self.kv_bytes_per_token_total
        if self.kv_bytes_per_token is None and computed is not None and not (
            r.MIN_KV_BYTES_PER_TOKEN <= computed <= r.MAX_KV_BYTES_PER_TOKEN
        ):
            raise ValueError(
                f"2 x layers x kv_heads x head_dim x {self.kv_dtype} bytes is {computed:g} KV "
                f"bytes per token, outside {r.format_number(r.MIN_KV_BYTES_PER_TOKEN)}.."
                f"{r.format_number(r.MAX_KV_BYTES_PER_TOKEN)} (see {r.RANGES_DOC})")
        return self

    @property
    def kv_bytes_per_token_total(self) -> float | None:
        """KV bytes per token: given, or 2 (K and V) x layers x kv_heads x head_dim x dtype bytes
        (docs/method.md, Eq. K1)."""
        if self.kv_bytes_per_token is not None:
            return self.kv_bytes_per_token
        if self.layers is None or self.kv_heads is None or self.head_dim is None:
            return None
        return 2 * self.layers * self.kv_heads * self.head_dim * KV_DTYPE_BYTES[self.kv_dtype]


class Slo(StrictModel):
    """Service-level objectives of a workload."""

    ttft_ms: Milliseconds = Field(description="Time-to-first-token target, ms.")
    tpot_ms: Milliseconds = Field(description="Time-per-output-token target, ms (mean).")
    ttft_percentile: Percentile | None = Field(
        default=None,
        description="The TTFT target is this percentile (e.g. 90); absent: the mean TTFT.",
    )


class FixedLengths(StrictModel):
    """Every request has exactly the workload's mean input and output lengths."""

    kind: Literal["fixed"] = "fixed"


class LognormalLengths(StrictModel):
    """Input and output lengths drawn independently from lognormal distributions whose means are
    the workload's `input_tokens` / `output_tokens` (docs/simulation.md, Eq. S1)."""

    kind: Literal["lognormal"] = "lognormal"
    input_cv: Cv = Field(description="Coefficient of variation of input length.")
    output_cv: Cv = Field(description="Coefficient of variation of output length.")


class EmpiricalLengths(StrictModel):
    """(input, output) length pairs sampled with replacement from a CSV file with columns
    `input_tokens,output_tokens` (docs/simulation.md)."""

    kind: Literal["empirical"] = "empirical"
    file: str = Field(
        min_length=1, description="CSV of length pairs; a relative path is read from the "
        "scenario file's folder."
    )
    scale_to_means: bool = Field(
        default=True,
        description="Scale the samples so their means equal the workload's input_tokens and "
        "output_tokens (the lengths the plan was sized for).",
    )


LengthDistribution = Annotated[
    FixedLengths | LognormalLengths | EmpiricalLengths, Field(discriminator="kind")
]


class Workload(StrictModel):
    """A workload class: traffic of one model with one SLO and mean request lengths."""

    name: str = Field(min_length=1, description="Unique name of the workload.")
    model: str = Field(min_length=1, description="Model the requests go to.")
    requests_per_s: RequestsPerS | None = Field(default=None, description="Rate in requests/s.")
    tokens_per_s: TokensPerS | None = Field(
        default=None, description="Rate in tokens/s, input + output."
    )
    tokens_per_minute: TokensPerMinute | None = Field(
        default=None, description="Rate in tokens/minute, input + output."
    )
    input_tokens: Tokens = Field(description="Mean prompt length, tokens.")
    output_tokens: Tokens = Field(description="Mean output length, tokens.")
    slo: Slo
    ttft_overhead_ms: OverheadMs = Field(
        default=0.0,
        description="Fixed part of TTFT outside prefill queueing and compute (client transfer, "
        "same-type P->D KV transfer), ms.",
    )
    queue: QueueModel | None = Field(
        default=None,
        description="Queue model: auto (from the routing and the length distribution), mm1 (the "
        "paper), md1 or mg1. Absent: options.",
    )
    routing: Routing | None = Field(
        default=None,
        description="How the deployment spreads requests over a pool's instances (round-robin, "
        "random, least-loaded); used by queue auto. Absent: options.",
    )
    service_scv: Scv | None = Field(
        default=None,
        description="mg1: squared coefficient of variation of prefill service time. Absent: "
        "options.",
    )
    headroom: Headroom | None = Field(
        default=None, description="Plan for demand x headroom (e.g. 1.2). Absent: options."
    )
    length_distribution: LengthDistribution | None = Field(
        default=None,
        description="Simulation only: how request lengths vary around the means (fixed, lognormal "
        "with a CV, or empirical from a CSV). Absent: fixed. The sizing uses the means.",
    )
    demand: WorkloadDemand | None = Field(
        default=None, description="Demand per period (with `periods`): multipliers of the rate, "
        "requests_per_s, or a CSV curve. Absent: the rate in every period.")
    prefix_cache_hit_rate: Annotated[float, Field(ge=0, lt=1, allow_inf_nan=False),
                                     NotBool] = Field(
        default=0.0, description="Share of input tokens served from the prefix cache: prefill "
        "computes the rest; decode context is the whole prompt (docs/method.md, Eq. H9).")
    prefix_cache: PrefixCacheTrace | None = Field(
        default=None, description="Derive prefix_cache_hit_rate from a Mooncake trace's hash_ids "
        "(docs/method.md, Eq. H14); the prepared scenario carries the derived rate.")

    @model_validator(mode="after")
    def _one_rate(self) -> Workload:
        given = [
            f for f in ("requests_per_s", "tokens_per_s", "tokens_per_minute") if getattr(self, f)
        ]
        if len(given) != 1:
            raise ValueError(
                "give exactly one of requests_per_s, tokens_per_s, tokens_per_minute"
                + (f" (got {', '.join(given)})" if given else "")
            )
        rate = self.rate_requests_per_s
        if not r.MIN_REQUESTS_PER_S <= rate <= r.MAX_REQUESTS_PER_S:
            unit = given[0]
            per_request = "" if unit == "requests_per_s" else (
                f" ({rate:.3g} requests/s at {self.tokens_per_request} tokens per request)")
            raise ValueError(
                f"{unit}: the demand{per_request} must be between "
                f"{r.format_number(r.MIN_REQUESTS_PER_S)} and "
                f"{r.format_number(r.MAX_REQUESTS_PER_S)} requests/s (see {r.RANGES_DOC})")
        if self.prefix_cache is not None:
            if self.prefix_cache_hit_rate:
                raise ValueError("give prefix_cache_hit_rate or prefix_cache (derived from a "
                                 "trace), not both")
            trace = self.demand.trace if self.demand is not None else None
            if self.prefix_cache.trace is None and (trace is None or trace.format != "mooncake"):
                raise ValueError("prefix_cache: give its `trace`, or a `demand.trace` of format "
                                 "mooncake to derive the rate from")
        return self

    @property
    def tokens_per_request(self) -> int:
        return self.input_tokens + self.output_tokens

    @property
    def rate_requests_per_s(self) -> float:
        """Demand in requests/s, whichever unit the file used (docs/method.md, Eq. R1)."""
        if self.requests_per_s is not None:
            return self.requests_per_s
        if self.tokens_per_s is not None:
            return self.tokens_per_s / self.tokens_per_request
        assert self.tokens_per_minute is not None  # the validator requires one unit
        return self.tokens_per_minute / 60.0 / self.tokens_per_request

    @property
    def rate_tokens_per_s(self) -> float:
        return self.rate_requests_per_s * self.tokens_per_request


class KvLink(StrictModel):
    """Link bandwidth for KV transfer from a prefill GPU type to a decode GPU type."""

    prefill_gpu: str
    decode_gpu: str
    gbit_per_s: GbitPerS = Field(description="Usable bandwidth per transfer, Gbit/s.")


class KvTransfer(StrictModel):
    """KV transfer between different GPU types (same-type transfer is in `ttft_overhead_ms`)."""

    default_gbit_per_s: GbitPerS | None = Field(
        default=None,
        description="Bandwidth for cross-type pairs not listed in `links`; absent: such pairs are "
        "not allowed.",
    )
    links: list[KvLink] = Field(default_factory=list)


class Options(StrictModel):
    """Scenario-wide defaults and solver settings."""

    queue: QueueModel = Field(
        default="auto", description="Default queue model: auto (docs/method.md, sections Q and "
        "F) or the paper's mm1 (md1, mg1 also)."
    )
    routing: Routing = Field(
        default="round-robin", description="Default routing over a pool's instances (as the "
        "simulator's default)."
    )
    verify: bool = Field(
        default=False, description="Solve, then check the plan by simulation and correct the "
        "capacities until it holds and no one-fewer neighbour does (pdopt solve --verify)."
    )
    service_scv: Scv | None = Field(
        default=None, description="Default squared coefficient of variation for mg1."
    )
    slo_window_minutes: Annotated[float, Field(gt=0, le=1e6), NotBool] | None = Field(
        default=30.0, description="Queue auto: the window over which the SLOs are judged "
        "(a dashboard's or a load test's). Each pool is sized so that a window's mean or "
        "percentile TTFT and mean TPOT stay within target with probability slo_confidence "
        "(docs/method.md, section W); null sizes for the long-run values alone."
    )
    slo_confidence: Annotated[float, Field(ge=0.5, lt=1), NotBool] = Field(
        default=0.99, description="Queue auto with slo_window_minutes: the share of windows "
        "that must hold their SLOs (0.5: the long-run values)."
    )
    headroom: Headroom = Field(
        default=1.0, description="Default demand multiplier."
    )
    gpu_memory_utilization: Annotated[float, Field(gt=0, le=1), NotBool] = Field(
        default=0.9,
        description="Share of GPU memory the engine may use for weights + KV cache (vLLM's default "
        "gpu_memory_utilization is 0.9).",
    )
    objective: Objective = Field(default="cost", description="cost ($/hour) or gpus (fewest GPUs).")
    time_limit_s: TimeLimitS = Field(default=60.0, description="Solver time limit, seconds.")
    mip_gap: Annotated[float, Field(ge=0, lt=1), NotBool] = Field(
        default=1e-4, description="Relative MIP gap at which the solver may stop."
    )
    limits: Limits | None = Field(
        default=None, description="Operability limits for every model's pools (max_instance_types,"
        " single_gpu_type, min_count_if_used, max_utilization; docs/scenario-format.md, Limits).")


class Scenario(StrictModel):
    """A planning scenario: GPU types, benchmarked instance types, workloads and options."""

    name: str = Field(min_length=1)
    description: str | None = None
    gpus: dict[str, Gpu] = Field(description="GPU types by name.")
    instances: list[Instance] = Field(description="Benchmarked instance types.")
    workloads: list[Workload] = Field(description="Workload classes to serve.")
    models: dict[str, ModelSpec] = Field(
        default_factory=dict, description="Memory facts and placement rules per model."
    )
    kv_transfer: KvTransfer = Field(default_factory=KvTransfer)
    budget_per_hour: BudgetPerHour | None = Field(
        default=None, description="At most this many USD per hour for the whole fleet."
    )
    options: Options = Field(default_factory=Options)
    periods: Periods | None = Field(
        default=None, description="Plan over a horizon of periods (docs/method.md, section H).")
    redundancy: Redundancy | None = Field(
        default=None, description="Spare instances (N+k) per pool, model or scenario.")

    @property
    def horizon_hours(self) -> list[float]:
        """Lengths of the plan's periods, hours (one period of one hour without `periods`)."""
        return self.periods.hours if self.periods is not None else [1.0]

    @property
    def plans_horizon(self) -> bool:
        """Solved by the horizon program (docs/method.md, section H): periods, reserved or spot
        capacity, or redundancy."""
        return (self.periods is not None or self.redundancy is not None
                or any(g.reserved is not None or g.spot is not None for g in self.gpus.values()))

    def workload(self, name: str) -> Workload:
        for w in self.workloads:
            if w.name == name:
                return w
        raise KeyError(name)

    def instance(self, name: str) -> Instance:
        for i in self.instances:
            if i.name == name:
                return i
        raise KeyError(name)

    def queue_of(self, workload: Workload) -> tuple[QueueModel, float | None]:
        """The workload's prefill queue model and service SCV, falling back to options."""
        queue = workload.queue or self.options.queue
        scv = workload.service_scv if workload.service_scv is not None else self.options.service_scv
        return queue, scv

    def routing_of(self, workload: Workload) -> Routing:
        """The workload's routing over pool instances, falling back to options."""
        return workload.routing or self.options.routing

    def headroom_of(self, workload: Workload) -> float:
        return workload.headroom if workload.headroom is not None else self.options.headroom

    def limits_of(self, model: str) -> ModelLimits:
        """The operability limits of a model: its own, else options.limits (field by field)."""
        spec = self.models.get(model)
        return merge_limits(self.options.limits, spec.limits if spec is not None else None)


def check_references(scenario: Scenario) -> list[Problem]:
    """Cross-reference checks that need the whole scenario; one Problem per thing wrong."""
    problems: list[Problem] = []
    if not scenario.gpus:
        problems.append(Problem("gpus", "must list at least one GPU type"))
    if not scenario.instances:
        problems.append(Problem("instances", "must list at least one instance type"))
    if not scenario.workloads:
        problems.append(Problem("workloads", "must list at least one workload"))

    seen: dict[str, int] = {}
    for i, inst in enumerate(scenario.instances):
        loc = f"instances[{i}]"
        if inst.name in seen:
            problems.append(
                Problem(f"{loc}.name", f"duplicate instance name '{inst.name}' "
                        f"(also instances[{seen[inst.name]}])")
            )
        seen.setdefault(inst.name, i)
        if inst.gpu not in scenario.gpus:
            problems.append(
                Problem(f"{loc}.gpu", f"unknown GPU type '{inst.gpu}' "
                        f"(gpus lists: {', '.join(sorted(scenario.gpus)) or 'none'})")
            )

    seen = {}
    for j, w in enumerate(scenario.workloads):
        loc = f"workloads[{j}]"
        if w.name in seen:
            problems.append(
                Problem(f"{loc}.name", f"duplicate workload name '{w.name}' "
                        f"(also workloads[{seen[w.name]}])")
            )
        seen.setdefault(w.name, j)
        roles = {inst.role for inst in scenario.instances if inst.model == w.model}
        for role in ("prefill", "decode"):
            if role not in roles:
                problems.append(
                    Problem(f"{loc}.model", f"no {role} instance type serves model '{w.model}'")
                )
        queue, scv = scenario.queue_of(w)
        if queue == "mg1" and scv is None:
            problems.append(
                Problem(f"{loc}.service_scv", "required for queue mg1 (here or in options)")
            )
        if w.slo.ttft_percentile is not None and queue in ("md1", "mg1"):
            problems.append(
                Problem(f"{loc}.slo.ttft_percentile",
                        f"percentile TTFT targets need queue auto or mm1 (this workload uses "
                        f"{queue})")
            )

    models_served = {inst.model for inst in scenario.instances}
    for name, spec in scenario.models.items():
        loc = f"models.{name}"
        if name not in models_served:
            problems.append(Problem(loc, f"no instance type serves model '{name}'"))
        for field in ("allowed_gpus", "allowed_prefill_gpus", "allowed_decode_gpus"):
            for k, gpu in enumerate(getattr(spec, field) or []):
                if gpu not in scenario.gpus:
                    problems.append(Problem(f"{loc}.{field}[{k}]", f"unknown GPU type '{gpu}'"))

    problems += _horizon_problems(scenario)
    for k, link in enumerate(scenario.kv_transfer.links):
        for field in ("prefill_gpu", "decode_gpu"):
            if getattr(link, field) not in scenario.gpus:
                problems.append(
                    Problem(f"kv_transfer.links[{k}].{field}",
                            f"unknown GPU type '{getattr(link, field)}'")
                )
    return problems


def _horizon_problems(scenario: Scenario) -> list[Problem]:
    """Demand lists as long as the horizon, redundancy naming known models and instances."""
    problems: list[Problem] = []
    count = len(scenario.periods.hours) if scenario.periods is not None else None
    for j, w in enumerate(scenario.workloads):
        if w.demand is None:
            continue
        loc = f"workloads[{j}].demand"
        if count is None:
            problems.append(Problem(loc, "needs `periods` (the horizon it is given over)"))
            continue
        values = w.demand.multipliers if w.demand.multipliers is not None \
            else w.demand.requests_per_s
        if values is not None and len(values) != count:
            field = "multipliers" if w.demand.multipliers is not None else "requests_per_s"
            problems.append(Problem(f"{loc}.{field}", f"{len(values)} values for {count} periods"))
    if scenario.redundancy is not None:
        names = {i.name for i in scenario.instances}
        models = {i.model for i in scenario.instances}
        for name in scenario.redundancy.instances:
            if name not in names:
                problems.append(Problem(f"redundancy.instances.{name}",
                                        f"unknown instance type '{name}'"))
        for name in scenario.redundancy.models:
            if name not in models:
                problems.append(Problem(f"redundancy.models.{name}", f"unknown model '{name}'"))
    return problems
