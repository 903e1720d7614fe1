"""The scenario format's planning horizon (docs/scenario-format.md, "Plans over a horizon"):
periods, per-workload demand per period, purchase options per GPU type (reserved, spot) and
redundancy (N+k). Pydantic v2 models only; `pdopt.scenario.schema` uses them as fields, and
`pdopt.scenario.demand` turns a workload's `demand` into one rate per period.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, model_validator

from pdopt.scenario import ranges as r

#: At most this many periods (144 ten-minute windows are a day; a week of them is 1,008).
MAX_PERIODS = 2016
#: A period lasts at most a year, at least a minute.
MIN_PERIOD_H = 1 / 60
MAX_PERIOD_H = 8784.0
#: A demand multiplier (period rate over the workload's rate): 1000x is beyond any daily curve.
MAX_MULTIPLIER = 1000.0


def _not_bool(value: Any) -> Any:
    if isinstance(value, bool):
        raise ValueError(f"must be a number, got {str(value).lower()}")
    return value


_NotBool = BeforeValidator(_not_bool)
PeriodHours = Annotated[float, Field(ge=MIN_PERIOD_H, le=MAX_PERIOD_H, allow_inf_nan=False),
                        _NotBool]
Multiplier = Annotated[float, Field(ge=0, le=MAX_MULTIPLIER, allow_inf_nan=False), _NotBool]
PeriodRate = Annotated[float, Field(ge=0, le=r.MAX_REQUESTS_PER_S, allow_inf_nan=False), _NotBool]
Price = Annotated[float, Field(ge=r.MIN_COST_PER_HOUR, le=r.MAX_COST_PER_HOUR,
                               allow_inf_nan=False), _NotBool]
Share = Annotated[float, Field(ge=0, le=1, allow_inf_nan=False), _NotBool]
Count = Annotated[int, Field(ge=0, le=r.MAX_GPU_COUNT), _NotBool]


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Periods(_Model):
    """The planning horizon: `count` equal periods of `length_h` hours, or explicit `lengths_h`;
    scale limits between consecutive periods and the warm-up of a new instance."""

    count: Annotated[int, Field(ge=1, le=MAX_PERIODS), _NotBool] | None = Field(
        default=None, description="Number of equal periods (with length_h).")
    length_h: PeriodHours | None = Field(
        default=None, description="Length of each period, hours (with count).")
    lengths_h: list[PeriodHours] | None = Field(
        default=None, description="Explicit period lengths, hours (instead of count/length_h).")
    cyclic: bool = Field(
        default=True, description="The horizon repeats (a day plan): the last period is followed "
        "by the first, for scale limits and warm-up.")
    max_add: Count | None = Field(
        default=None, description="At most this many instances a pool may add from one period "
        "to the next (absent: unlimited).")
    max_remove: Count | None = Field(
        default=None, description="At most this many instances a pool may remove from one "
        "period to the next (absent: unlimited).")
    warm_up_minutes: Annotated[float, Field(ge=0, le=1440, allow_inf_nan=False), _NotBool] = Field(
        default=0.0, description="A new instance is started this long before its period to be "
        "serving when it begins, and is paid for that time (on-demand).")

    @model_validator(mode="after")
    def _one_form(self) -> Periods:
        if self.lengths_h is not None:
            if self.count is not None or self.length_h is not None:
                raise ValueError("give count and length_h, or lengths_h, not both")
            if not 1 <= len(self.lengths_h) <= MAX_PERIODS:
                raise ValueError(f"lengths_h: between 1 and {MAX_PERIODS} periods")
        elif self.count is None or self.length_h is None:
            raise ValueError("give count and length_h (equal periods) or lengths_h")
        return self

    @property
    def hours(self) -> list[float]:
        """The length of every period, hours."""
        if self.lengths_h is not None:
            return list(self.lengths_h)
        return [float(self.length_h)] * int(self.count)  # type: ignore[arg-type]


class DemandCurveFile(_Model):
    """A CSV column, one row per time window, binned into the periods (consecutive rows averaged,
    as many per period)."""

    file: str = Field(min_length=1, description="CSV file; a relative path is read from the "
                      "folder of the scenario file that names it.")
    column: str = Field(min_length=1, description="Column holding the rate (or multiplier).")
    first_row: Annotated[int, Field(ge=0, lt=r.MAX_CURVE_ROWS), _NotBool] = Field(
        default=0, description="First data row used (0: the first after the header).")
    rows: Annotated[int, Field(ge=1, le=r.MAX_CURVE_ROWS), _NotBool] | None = Field(
        default=None, description="Rows used (absent: all from first_row); a multiple of the "
        "number of periods.")
    where: dict[str, str] | None = Field(
        default=None, description="Only rows whose columns hold these values (e.g. {model: "
        "language/m-large}).")
    values: Literal["shape", "multipliers", "requests_per_s"] = Field(
        default="shape", description="shape: divided by their mean (the workload's rate is the "
        "mean); multipliers: times the workload's rate; requests_per_s: the rates themselves.")


#: How a trace's time line is laid on the horizon (docs/scenario-format.md, "demand").
TraceFit = Literal["exact", "repeat", "scale_to_horizon"]
#: Seconds of a trace: a year.
MAX_TRACE_S = 366 * 86400.0
#: Distinct blocks a derived prefix cache may hold (about 70 bytes each in memory: 350 MB).
MAX_CACHE_BLOCKS = 5_000_000


class DemandTrace(_Model):
    """A request trace (Azure, Mooncake or pdopt's CSV, as `pdopt simulate --trace` reads them)
    whose arrivals, counted in each period, give the period's rate (docs/method.md, Eq. H13)."""

    file: str = Field(min_length=1, description="Trace file; a relative path is read from the "
                      "folder of the scenario file that names it.")
    format: Literal["azure", "mooncake", "csv"] = Field(
        description="azure (CSV: TIMESTAMP,ContextTokens,GeneratedTokens), mooncake (JSON lines: "
        "timestamp ms, input_length, output_length) or csv (arrival_s,input_tokens,"
        "output_tokens).")
    start_s: Annotated[float, Field(ge=0, le=MAX_TRACE_S, allow_inf_nan=False), _NotBool] = Field(
        default=0.0, description="Skip this many seconds after the trace's first arrival: the "
        "horizon starts there.")
    duration_s: Annotated[float, Field(gt=0, le=MAX_TRACE_S, allow_inf_nan=False),
                          _NotBool] | None = Field(
        default=None, description="Seconds of the trace used, from start_s (absent: to its last "
        "arrival). Arrivals at or after start_s + duration_s are not used.")
    fit: TraceFit = Field(
        default="exact", description="exact: trace seconds are horizon seconds, and the trace "
        "must last the horizon (an error otherwise); repeat: the trace's seconds repeat until the "
        "horizon ends; scale_to_horizon: the trace's seconds are stretched (or compressed) onto "
        "the horizon, which scales its rates by duration / horizon.")
    values: Literal["requests_per_s", "shape"] = Field(
        default="requests_per_s", description="requests_per_s: each period's rate is its arrivals "
        "/ its length; shape: those rates divided by their mean, times the workload's rate.")


class PrefixCacheTrace(_Model):
    """The prefix-cache hit rate of a workload derived from a Mooncake trace's `hash_ids`
    (docs/method.md, Eq. H14): the share of input tokens whose block was in the cache."""

    trace: str | None = Field(
        default=None, min_length=1, description="Mooncake trace (JSON lines with hash_ids); a "
        "relative path is read from the folder of the scenario file. Absent: the workload's "
        "`demand.trace`, which must be a mooncake trace.")
    block_tokens: Annotated[int, Field(ge=1, le=1_000_000), _NotBool] = Field(
        default=512, description="Tokens per hash block (Mooncake's traces: 512).")
    capacity_blocks: Annotated[int, Field(ge=1, le=MAX_CACHE_BLOCKS), _NotBool] | None = Field(
        default=None, description="Blocks the cache holds, least recently used evicted first "
        "(absent: an infinite cache).")


class WorkloadDemand(_Model):
    """A workload's demand per period: exactly one of `multipliers` (times the workload's rate),
    `requests_per_s`, a `curve` file or a request `trace`."""

    multipliers: list[Multiplier] | None = None
    requests_per_s: list[PeriodRate] | None = None
    curve: DemandCurveFile | None = None
    trace: DemandTrace | None = None

    @model_validator(mode="after")
    def _one_form(self) -> WorkloadDemand:
        given = [f for f in ("multipliers", "requests_per_s", "curve", "trace")
                 if getattr(self, f) is not None]
        if len(given) != 1:
            raise ValueError("give exactly one of multipliers, requests_per_s, curve, trace"
                             + (f" (got {', '.join(given)})" if given else ""))
        values = self.multipliers if self.multipliers is not None else self.requests_per_s
        if values is not None and not values:
            raise ValueError(f"{given[0]}: must have at least one value")
        return self


class Reserved(_Model):
    """Reserved capacity of a GPU type: paid in every period for the whole horizon."""

    cost_per_hour: Price = Field(description="USD per reserved GPU-hour.")
    min_gpus: Count = Field(default=0, description="Reserve at least this many GPUs (a "
                            "commitment already made).")
    source: str | None = Field(default=None, description="Where the price comes from.")


class Spot(_Model):
    """Spot (preemptible) capacity of a GPU type, bought per period."""

    cost_per_hour: Price = Field(description="USD per spot GPU-hour.")
    max_gpus: Count | None = Field(
        default=None, description="At most this many spot GPUs in any period.")
    max_share: Share | None = Field(
        default=None, description="At most this share of the type's GPUs in a period on spot.")
    interruption_share: Annotated[float, Field(ge=0, lt=1, allow_inf_nan=False), _NotBool] = Field(
        default=0.0, description="Expected share of spot GPUs interrupted at any time: a spot "
        "GPU counts as (1 - share) of a GPU.")
    covered_by_spares: bool = Field(
        default=False, description="Spot GPUs at most the spare (redundancy) GPUs of the type: "
        "losing every spot GPU leaves the serving instances on reserved and on-demand ones.")
    source: str | None = Field(default=None, description="Where the price comes from.")


class Spares(_Model):
    """N+k: instances kept beyond what the SLOs need, so that they hold with any k down."""

    spare_instances: Count | None = Field(
        default=None, description="k spare instances in every pool in use (N+k).")
    spare_fraction: Share | None = Field(
        default=None, description="Spares of at least this share of a pool's serving instances "
        "(rounded up).")

    @model_validator(mode="after")
    def _one_form(self) -> Spares:
        if (self.spare_instances is None) == (self.spare_fraction is None):
            raise ValueError("give exactly one of spare_instances, spare_fraction")
        return self


class Redundancy(Spares):
    """Spares for every pool (the fields of Spares), by model, or by instance type (most specific
    wins). With neither field at the top, pools not named have none."""

    models: dict[str, Spares] = Field(default_factory=dict)
    instances: dict[str, Spares] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _one_form(self) -> Redundancy:
        if self.spare_instances is not None and self.spare_fraction is not None:
            raise ValueError("give one of spare_instances, spare_fraction, not both")
        return self

    def of(self, instance: str, model: str) -> tuple[int, float]:
        """(k spare instances, spare fraction) of one pool."""
        spec: Spares | Redundancy | None = self.instances.get(instance) or self.models.get(model)
        spec = spec or self
        return spec.spare_instances or 0, spec.spare_fraction or 0.0
