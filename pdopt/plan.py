"""A solved fleet plan: what `pdopt.solve` returns and `pdopt solve --format json` prints.

Plain dataclasses with `to_dict()` / `from_dict()` so a plan round-trips through JSON (the
simulator and batch runs read plans back from files). `Status` and `Objective` are str-valued
enums, so the JSON holds the same strings as before. A plan's totals (cost, GPUs by type,
instances by role) are computed from its pools in one place, `PlanTotals.of`; every function that
changes a plan returns a new one (`dataclasses.replace`, `Plan.with_pools`).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields, replace
from enum import StrEnum
from typing import Any, Literal


class Status(StrEnum):
    """The outcome of a solve."""

    OPTIMAL = "optimal"  # proven within the MIP gap
    FEASIBLE = "feasible"  # a plan, not proven within the gap (time limit, rounded fallback)
    INFEASIBLE = "infeasible"  # no plan meets every requirement (the diagnosis says why)
    NO_SOLUTION = "no_solution"  # the solver stopped before finding any plan

    @property
    def has_plan(self) -> bool:
        return self in (Status.OPTIMAL, Status.FEASIBLE)


class Objective(StrEnum):
    """What the plan minimises first; the other is minimised among the plans that tie
    (docs/method.md, Eq. O10)."""

    COST = "cost"  # $/hour, then fewest GPUs
    GPUS = "gpus"  # GPUs, then $/hour


@dataclass(frozen=True)
class SolverReport:
    """What the solver reported: status, why it stopped, the objective value of the plan, the
    dual bound and relative gap of the primary objective, and times."""

    status: Status
    termination: str  # the solver's termination condition, or how the plan was found
    objective_value: float | None  # primary objective of the plan (None without a plan)
    dual_bound: float | None
    mip_gap: float | None
    solve_seconds: float
    time_limit_hit: bool
    build_seconds: float = 0.0

    def __post_init__(self) -> None:
        object.__setattr__(self, "status", Status(self.status))

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["status"] = self.status.value
        return d

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> SolverReport:
        names = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in names})


@dataclass
class PoolGroup:
    """One SLO group of a pool (docs/method.md, O7): `count` instances working within the
    group's waiting budget (prefill) or TPOT target (decode)."""

    level: int
    count: int
    utilization: float  # load / capacity of the group (0..1)
    routed_requests_per_s: dict[str, float]  # by workload
    ttft_waiting_budget_ms: float | None = None  # prefill groups
    tpot_target_ms: float | None = None  # decode groups
    kv_utilization: float | None = None  # decode groups: mean KV footprint / KV capacity

    def to_dict(self) -> dict[str, Any]:
        """The group as JSON: a prefill group has no TPOT keys, a decode group no budget."""
        d = asdict(self)
        if self.ttft_waiting_budget_ms is None:
            del d["ttft_waiting_budget_ms"]
        if self.tpot_target_ms is None:
            del d["tpot_target_ms"], d["kv_utilization"]
        return d

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> PoolGroup:
        return cls(**data)


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
    # SLO groups the pool is split into (docs/method.md, O7), strictest first. One group: the
    # whole pool shares its load.
    groups: list[PoolGroup] = field(default_factory=list)
    # the queue model the sizing used (docs/method.md, sections P, Q, F), e.g. "M/M/1 (paper)"
    queue_model: str | None = None

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["groups"] = [g.to_dict() for g in self.groups]
        return d

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> PoolPlan:
        d = dict(data)
        d["groups"] = [g if isinstance(g, PoolGroup) else PoolGroup.from_dict(g)
                       for g in d.get("groups", [])]
        return cls(**d)


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
class PeriodPlan:
    """One period of a plan over a horizon (docs/method.md, section H): serving counts and spares
    per pool, GPUs running by type, what was bought on demand and on spot, and what it cost."""

    index: int
    hours: float
    counts: dict[str, int]  # serving instances per pool
    cost: float  # USD over the period (reserved GPUs' share included)
    cost_per_hour: float
    gpus_by_type: dict[str, int]  # running (serving + spare)
    spares: dict[str, int] = field(default_factory=dict)
    on_demand_gpus_by_type: dict[str, int] = field(default_factory=dict)
    spot_gpus_by_type: dict[str, int] = field(default_factory=dict)
    demand_requests_per_s: dict[str, float] = field(default_factory=dict)  # with headroom
    # the period's serving pools and flows (what `pdopt simulate` replays for the period)
    pools: list[PoolPlan] = field(default_factory=list)
    flows: list[Flow] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["pools"] = [p.to_dict() for p in self.pools]
        return d

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> PeriodPlan:
        d = dict(data)
        d["pools"] = [PoolPlan.from_dict(p) for p in d.get("pools", [])]
        d["flows"] = [Flow(**f) for f in d.get("flows", [])]
        return cls(**d)


@dataclass(frozen=True)
class PlanTotals:
    """A plan's totals, from its pools: the one place they are computed."""

    cost_per_hour: float
    total_gpus: int
    gpus_by_type: dict[str, int]
    instances_by_role: dict[str, int]

    @classmethod
    def of(cls, pools: list[PoolPlan]) -> PlanTotals:
        gpus: dict[str, int] = {}
        roles = {"prefill": 0, "decode": 0}
        for p in pools:
            gpus[p.gpu] = gpus.get(p.gpu, 0) + p.count * p.gpus_per_instance
            roles[p.role] = roles.get(p.role, 0) + p.count
        return cls(cost_per_hour=sum(p.cost_per_hour for p in pools),
                   total_gpus=sum(gpus.values()), gpus_by_type=dict(sorted(gpus.items())),
                   instances_by_role=roles)

    def as_fields(self) -> dict[str, Any]:
        return {"cost_per_hour": self.cost_per_hour, "total_gpus": self.total_gpus,
                "gpus_by_type": dict(self.gpus_by_type),
                "instances_by_role": dict(self.instances_by_role)}


@dataclass(frozen=True)
class Plan:
    scenario: str
    status: Status
    objective: Objective
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
    solver: SolverReport | None = None  # the solver's report (None: not from a solve)
    # plans over a horizon (docs/method.md, section H): every period, the reserved baseline, the
    # total over the horizon (cost_per_hour is then its average) and what the comparison plans
    # (static peak sizing, all on demand) cost in total
    periods: list[PeriodPlan] = field(default_factory=list)
    reserved_gpus_by_type: dict[str, int] = field(default_factory=dict)
    total_cost: float | None = None
    warm_up_cost: float = 0.0
    comparison: dict[str, float | None] = field(default_factory=dict)

    def __post_init__(self) -> None:
        object.__setattr__(self, "status", Status(self.status))
        object.__setattr__(self, "objective", Objective(self.objective))

    @classmethod
    def of_pools(cls, *, scenario: str, status: Status, objective: Objective,
                 pools: list[PoolPlan], workloads: list[WorkloadPlan], flows: list[Flow],
                 solver: SolverReport | None = None, **extra: Any) -> Plan:
        """A plan whose totals are those of `pools` and whose bound, gap and times are the
        solver's (none without a report)."""
        return cls(scenario=scenario, status=status, objective=objective, pools=pools,
                   workloads=workloads, flows=flows, **PlanTotals.of(pools).as_fields(),
                   **_solver_fields(solver), solver=solver, **extra)

    @classmethod
    def without_plan(cls, *, scenario: str, status: Status, objective: Objective,
                     diagnosis: list[str], solver: SolverReport | None = None) -> Plan:
        """An outcome without a plan (infeasible, or no plan found): the diagnosis says why."""
        return cls(scenario=scenario, status=status, objective=objective, cost_per_hour=None,
                   total_gpus=None, gpus_by_type={}, instances_by_role={}, pools=[],
                   workloads=[], flows=[], **_solver_fields(solver), diagnosis=list(diagnosis),
                   solver=solver)

    def with_pools(self, pools: list[PoolPlan], flows: list[Flow] | None = None) -> Plan:
        """A copy with other pools (and flows), totals recomputed."""
        return replace(self, pools=pools, flows=self.flows if flows is None else flows,
                       **PlanTotals.of(pools).as_fields())

    def with_solver(self, solver: SolverReport) -> Plan:
        """A copy carrying `solver` (its status, bound, gap and times)."""
        return replace(self, status=solver.status, solver=solver, **_solver_fields(solver))

    @property
    def has_plan(self) -> bool:
        return self.status.has_plan

    def pool(self, instance: str) -> PoolPlan:
        for p in self.pools:
            if p.instance == instance:
                return p
        raise KeyError(instance)

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["status"], d["objective"] = self.status.value, self.objective.value
        d["pools"] = [p.to_dict() for p in self.pools]
        d["periods"] = [p.to_dict() for p in self.periods]
        d["solver"] = None if self.solver is None else self.solver.to_dict()
        from pdopt.routing import routing_weights  # routing imports Flow from here

        d["routing"] = routing_weights(self.flows)
        return d

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Plan:
        """The plan of `to_dict()`'s output. Raises TypeError for anything else (a missing or
        unknown key, a status or objective that is not one of the enums')."""
        d = dict(data)
        d.pop("alternatives", None)  # `pdopt solve --explain` adds them (read by pdopt.explain)
        d.pop("routing", None)  # derived from the flows (pdopt.routing)
        d.pop("limit_prices", None)  # `pdopt solve --explain` adds them (pdopt.simplicity)
        d["pools"] = [PoolPlan.from_dict(p) for p in d.get("pools", [])]
        d["workloads"] = [WorkloadPlan(**w) for w in d.get("workloads", [])]
        d["flows"] = [Flow(**f) for f in d.get("flows", [])]
        d["periods"] = [PeriodPlan.from_dict(p) for p in d.get("periods", [])]
        if d.get("solver") is not None:
            d["solver"] = SolverReport.from_dict(d["solver"])
        try:
            return cls(**d)
        except ValueError as e:  # an unknown status or objective
            raise TypeError(str(e)) from None


def _solver_fields(solver: SolverReport | None) -> dict[str, Any]:
    if solver is None:
        return {"dual_bound": None, "mip_gap": None, "solve_seconds": 0.0, "build_seconds": 0.0}
    return {"dual_bound": solver.dual_bound, "mip_gap": solver.mip_gap,
            "solve_seconds": solver.solve_seconds, "build_seconds": solver.build_seconds}
