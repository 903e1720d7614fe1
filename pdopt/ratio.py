"""The paper's calculator: instance counts and P/D ratio for one model on one instance type
(docs/method.md, section C). Pure functions over numbers, plus a scenario front end."""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any, Literal

from pdopt.capacity import instance_decode_capacity, instance_prefill_capacity
from pdopt.decode import DecodeCurve, decode_capacity
from pdopt.errors import PdoptError
from pdopt.queueing import prefill_capacity
from pdopt.scenario.problems import Problem, ScenarioError
from pdopt.scenario.schema import Scenario

Rounding = Literal["ceil", "nearest"]


@dataclass(frozen=True)
class RatioResult:
    """The paper's answer for one workload on one prefill and one decode instance type."""

    input_tokens: float
    output_tokens: float
    demand_tokens_per_s: float  # TP_total, input + output
    saturated_prefill_tokens_per_s: float  # TP_max
    prefill_tokens_per_s: float  # TP_prefill under the TTFT target (Eq. P6)
    decode_batch: int
    decode_tpot_ms: float  # TPOT at that batch
    decode_tokens_per_s: float  # TP_decode (Eq. D6)
    decode_limited_by: str
    pd_ratio: float  # Eq. C3
    prefill_instances_exact: float  # Eq. C1
    decode_instances_exact: float  # Eq. C2
    rounding: Rounding
    prefill_instances: int
    decode_instances: int
    sustainable_tokens_per_s: float  # Eq. C4, of the integer plan
    bottleneck: str  # which side limits the integer plan

    @property
    def sustainable_tokens_per_minute(self) -> float:
        return 60.0 * self.sustainable_tokens_per_s

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["sustainable_tokens_per_minute"] = self.sustainable_tokens_per_minute
        return d


def round_count(x: float, rounding: Rounding) -> int:
    """`ceil` meets the full demand; `nearest` is the paper's own rounding (at least 1)."""
    if rounding == "ceil":
        return max(1, math.ceil(x - 1e-9))
    return max(1, math.floor(x + 0.5))


def sustainable_tokens_per_s(
    prefill_instances: int, decode_instances: int, *, input_tokens: float, output_tokens: float,
    prefill_tokens_per_s: float, decode_tokens_per_s: float,
) -> tuple[float, str]:
    """Largest input+output tokens/s an integer plan serves within both targets (Eq. C4):
    min(P TP_prefill (L_in+L_out)/L_in, D TP_decode (L_in+L_out)/L_out)."""
    total = input_tokens + output_tokens
    by_prefill = prefill_instances * prefill_tokens_per_s * total / input_tokens
    by_decode = decode_instances * decode_tokens_per_s * total / output_tokens
    return (by_prefill, "prefill") if by_prefill <= by_decode else (by_decode, "decode")


def compute_ratio(
    *, demand_tokens_per_s: float, input_tokens: float, output_tokens: float,
    saturated_prefill_tokens_per_s: float, prefill_tokens_per_s: float,
    decode_batch: int, decode_tpot_ms: float, decode_tokens_per_s: float, decode_limited_by: str,
    rounding: Rounding = "ceil",
) -> RatioResult:
    """The paper's counting equations (Eqs. C1-C4) from per-instance capacities."""
    total = input_tokens + output_tokens
    n_prefill = demand_tokens_per_s * input_tokens / (total * prefill_tokens_per_s)
    n_decode = demand_tokens_per_s * output_tokens / (total * decode_tokens_per_s)
    if not (math.isfinite(n_prefill) and math.isfinite(n_decode)):
        raise PdoptError(f"a demand of {demand_tokens_per_s:g} tokens/s is too large to count "
                         "instances for")
    p, d = round_count(n_prefill, rounding), round_count(n_decode, rounding)
    sustainable, bottleneck = sustainable_tokens_per_s(
        p, d, input_tokens=input_tokens, output_tokens=output_tokens,
        prefill_tokens_per_s=prefill_tokens_per_s, decode_tokens_per_s=decode_tokens_per_s,
    )
    return RatioResult(
        input_tokens=input_tokens,
        output_tokens=output_tokens,
        demand_tokens_per_s=demand_tokens_per_s,
        saturated_prefill_tokens_per_s=saturated_prefill_tokens_per_s,
        prefill_tokens_per_s=prefill_tokens_per_s,
        decode_batch=decode_batch,
        decode_tpot_ms=decode_tpot_ms,
        decode_tokens_per_s=decode_tokens_per_s,
        decode_limited_by=decode_limited_by,
        pd_ratio=input_tokens * decode_tokens_per_s / (output_tokens * prefill_tokens_per_s),
        prefill_instances_exact=n_prefill,
        decode_instances_exact=n_decode,
        rounding=rounding,
        prefill_instances=p,
        decode_instances=d,
        sustainable_tokens_per_s=sustainable,
        bottleneck=bottleneck,
    )


def ratio_from_numbers(
    *, demand_tokens_per_s: float, input_tokens: float, output_tokens: float, ttft_ms: float,
    tpot_ms: float, prefill_tokens_per_s: float, tpot_ms_by_batch: dict[int, float],
    ttft_overhead_ms: float = 0.0, queue: str = "mm1", scv: float | None = None,
    ttft_percentile: float | None = None, rounding: Rounding = "ceil",
) -> RatioResult:
    """`pdopt ratio` from flags: one workload, one prefill and one decode instance type."""
    pre = prefill_capacity(
        input_tokens=input_tokens, saturated_tokens_per_s=prefill_tokens_per_s, ttft_ms=ttft_ms,
        ttft_overhead_ms=ttft_overhead_ms, queue=queue, scv=scv, ttft_percentile=ttft_percentile,
    )
    batches = sorted(tpot_ms_by_batch)
    curve = DecodeCurve(tuple(map(float, batches)), tuple(tpot_ms_by_batch[b] for b in batches),
                        extend_linearly=False)
    dec = decode_capacity(curve, tpot_ms)
    return compute_ratio(
        demand_tokens_per_s=demand_tokens_per_s, input_tokens=input_tokens,
        output_tokens=output_tokens, saturated_prefill_tokens_per_s=prefill_tokens_per_s,
        prefill_tokens_per_s=pre.tokens_per_s, decode_batch=dec.batch, decode_tpot_ms=dec.tpot_ms,
        decode_tokens_per_s=dec.tokens_per_s, decode_limited_by=dec.limited_by, rounding=rounding,
    )


def ratio_from_scenario(scenario: Scenario, rounding: Rounding = "ceil") -> RatioResult:
    """`pdopt ratio SCENARIO`: the scenario must have one workload and one prefill and one decode
    instance type for its model."""
    problems = []
    if len(scenario.workloads) != 1:
        problems.append(Problem("workloads", f"pdopt ratio needs exactly one workload "
                                f"(found {len(scenario.workloads)}); use pdopt solve for fleets"))
    else:
        w = scenario.workloads[0]
        for role in ("prefill", "decode"):
            n = sum(1 for i in scenario.instances if i.model == w.model and i.role == role)
            if n != 1:
                problems.append(Problem("instances", f"pdopt ratio needs exactly one {role} "
                                        f"instance type for model '{w.model}' (found {n})"))
    if problems:
        raise ScenarioError(problems)
    if "queue" not in scenario.options.model_fields_set:  # pdopt ratio is the paper's method
        scenario = scenario.model_copy(
            update={"options": scenario.options.model_copy(update={"queue": "mm1"})})
    w = scenario.workloads[0]
    prefill = next(i for i in scenario.instances if i.model == w.model and i.role == "prefill")
    decode = next(i for i in scenario.instances if i.model == w.model and i.role == "decode")
    pre = instance_prefill_capacity(scenario, prefill, w)
    dec = instance_decode_capacity(scenario, decode, w)
    return compute_ratio(
        demand_tokens_per_s=w.rate_tokens_per_s * scenario.headroom_of(w),
        input_tokens=w.input_tokens, output_tokens=w.output_tokens,
        saturated_prefill_tokens_per_s=pre.saturated_tokens_per_s,
        prefill_tokens_per_s=pre.tokens_per_s, decode_batch=dec.batch, decode_tpot_ms=dec.tpot_ms,
        decode_tokens_per_s=dec.tokens_per_s, decode_limited_by=dec.limited_by, rounding=rounding,
    )
