"""Operability limits of a plan (docs/scenario-format.md, "Limits"; docs/method.md, O.7): how many
instance types a model may use per role, one GPU type per model, no pools below a size, and a cap
on each pool's utilisation. Given scenario-wide in `options.limits` and per model in
`models.<m>.limits` (a model's own fields override the scenario's, field by field).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated, Literal

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field

from pdopt.scenario import ranges as r


def _not_bool(value: object) -> object:
    if isinstance(value, bool):
        raise ValueError(f"must be a number, got {str(value).lower()}")
    return value


TypeCount = Annotated[int, Field(gt=0, le=r.MAX_INSTANCE_COUNT), BeforeValidator(_not_bool)]
Share = Annotated[float, Field(gt=0, le=1, allow_inf_nan=False), BeforeValidator(_not_bool)]
LimitKind = Literal["max_instance_types", "single_gpu_type", "min_count_if_used",
                    "max_utilization"]
LIMIT_KINDS: tuple[LimitKind, ...] = ("max_instance_types", "single_gpu_type",
                                      "min_count_if_used", "max_utilization")


def _both_roles(value: object) -> object:
    """A number stands for both roles: {prefill: x, decode: x}."""
    if isinstance(value, bool):
        raise ValueError(f"must be a number or {{prefill: .., decode: ..}}, got "
                         f"{str(value).lower()}")
    if isinstance(value, int | float):
        return {"prefill": value, "decode": value}
    return value


BothRoles = BeforeValidator(_both_roles)


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class TypesPerRole(_Strict):
    """At most this many instance types per role (absent: no limit)."""

    prefill: TypeCount | None = None
    decode: TypeCount | None = None


class UtilizationPerRole(_Strict):
    """At most this share of a pool's SLO-constrained capacity, per role (absent: 1)."""

    prefill: Share | None = None
    decode: Share | None = None


class Limits(_Strict):
    """What makes a plan operable (each absent: no limit)."""

    max_instance_types: Annotated[TypesPerRole, BothRoles] | None = Field(
        default=None, description="At most this many instance types (pools) per model and role; "
        "a number for both roles or {prefill: k, decode: k}.")
    single_gpu_type: bool | None = Field(
        default=None, description="Prefill and decode of a model on one GPU type.")
    min_count_if_used: TypeCount | None = Field(
        default=None, description="A pool is absent or has at least this many instances (2: no "
        "single instance as a single point of failure).")
    max_utilization: Annotated[UtilizationPerRole, BothRoles] | None = Field(
        default=None, description="Each pool's load at most this share of its SLO-constrained "
        "capacity (0 < x <= 1); a number for both roles or {prefill: x, decode: x}. Distinct "
        "from headroom, which scales the demand.")


@dataclass(frozen=True)
class ModelLimits:
    """The limits that apply to one model, the scenario's and the model's merged."""

    max_instance_types: dict[str, int]  # role -> k (roles without a limit absent)
    single_gpu_type: bool
    min_count_if_used: int | None
    max_utilization: dict[str, float]  # role -> share (roles without a cap absent)

    @property
    def needs_usage(self) -> bool:
        """Whether the model's pools need "pool used" binaries (Eqs. O16-O19)."""
        return bool(self.max_instance_types) or self.single_gpu_type \
            or self.min_count_if_used is not None

    def utilization_cap(self, role: str) -> float:
        return self.max_utilization.get(role, 1.0)


def _per_role(value: object) -> dict[str, float]:
    if value is None:
        return {}
    if isinstance(value, TypesPerRole | UtilizationPerRole):
        return {role: float(v) for role in ("prefill", "decode")
                if (v := getattr(value, role)) is not None}
    raise TypeError(f"not a per-role limit: {value!r}")


def merge_limits(scenario_wide: Limits | None, own: Limits | None) -> ModelLimits:
    """A model's limits: its own fields where given, else the scenario's."""
    def pick(name: str) -> object:
        for source in (own, scenario_wide):
            if source is not None and getattr(source, name) is not None:
                return getattr(source, name)
        return None

    least = pick("min_count_if_used")
    return ModelLimits(
        max_instance_types={k: int(v) for k, v in _per_role(pick("max_instance_types")).items()},
        single_gpu_type=bool(pick("single_gpu_type")),
        min_count_if_used=least if isinstance(least, int) else None,
        max_utilization=_per_role(pick("max_utilization")),
    )


def without_limit(limits: Limits | None, kind: str) -> Limits | None:
    """`limits` with one kind removed (for the price of simplicity)."""
    if limits is None:
        return None
    return limits.model_copy(update={kind: None})


def limit_kinds_used(scenario_wide: Limits | None, per_model: list[Limits | None]) -> list[str]:
    """The kinds of limit the scenario sets anywhere (single_gpu_type only when true)."""
    out: list[str] = []
    for kind in LIMIT_KINDS:
        if any(lim is not None and getattr(lim, kind) not in (None, False)
               for lim in [scenario_wide, *per_model]):
            out.append(kind)
    return out
