"""A solved fleet plan: what `pdopt.solve` returns and `pdopt solve --format json` prints.

Plain dataclasses with `to_dict()` / `from_dict()` so a plan round-trips through JSON (the
simulator and batch runs read plans back from files)."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any, Literal

PlanStatus = Literal["optimal", "feasible", "infeasible", "no_solution"]


@dataclass
class PoolPlan:
    """One pool: the instances of one instance type in the plan."""

    instance: str
    model: str
    role: Literal["prefill", "decode"]
    gpu: str
    gpus_per_instance: int
    count: int
    cost_per_hour: float  # of the whole pool
    utilization: float  # load / capacity at the pool's binding SLO (0..1)
    routed_requests_per_s: dict[str, float]  # by workload name
    kv_utilization: float | None = None  # decode: mean KV footprint / KV capacity (Little's law)
    # SLO groups the pool is split into (docs/method.md, O7), strictest first: each a dict with
    # `level`, `ttft_waiting_budget_ms` (prefill) or `tpot_target_ms` (decode), `count`,
    # `utilization`, `routed_requests_per_s` by workload. One group: the whole pool shares its load.
    groups: list[dict[str, Any]] = field(default_factory=list)


@dataclass
class Flow:
    """Requests of one workload that prefill on one pool and decode on another."""

    workload: str
    prefill_instance: str
    decode_instance: str
    requests_per_s: float
    kv_transfer_ms: float  # extra TTFT for cross-GPU-type KV transfer (0 for the same type)


@dataclass
class WorkloadPlan:
    """How one workload is served and what the model predicts for it."""

    workload: str
    model: str
    demand_requests_per_s: float  # including headroom
    ttft_target_ms: float
    ttft_percentile: float | None
    tpot_target_ms: float
    expected_ttft_ms: float  # mean TTFT, or the percentile when the target is one
    expected_tpot_ms: float  # mean TPOT at the plan's load


@dataclass
class Plan:
    scenario: str
    status: PlanStatus
    objective: Literal["cost", "gpus"]
    cost_per_hour: float | None
    total_gpus: int | None
    gpus_by_type: dict[str, int]
    instances_by_role: dict[str, int]
    pools: list[PoolPlan]
    workloads: list[WorkloadPlan]
    flows: list[Flow]
    dual_bound: float | None
    mip_gap: float | None
    solve_seconds: float
    build_seconds: float
    diagnosis: list[str] = field(default_factory=list)  # why infeasible / notes on limits hit
    messages: list[str] = field(default_factory=list)  # warnings a planner should read
    # pools of the plan whose numbers are estimates, not measurements: instance -> source
    estimated: dict[str, str] = field(default_factory=dict)

    @property
    def has_plan(self) -> bool:
        return self.status in ("optimal", "feasible")

    def pool(self, instance: str) -> PoolPlan:
        for p in self.pools:
            if p.instance == instance:
                return p
        raise KeyError(instance)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Plan:
        d = dict(data)
        d["pools"] = [PoolPlan(**p) for p in d.get("pools", [])]
        d["workloads"] = [WorkloadPlan(**w) for w in d.get("workloads", [])]
        d["flows"] = [Flow(**f) for f in d.get("flows", [])]
        return cls(**d)
