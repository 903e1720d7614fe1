"""The fleet the simulator runs: instances, their measured tables and the flows of a plan.

Only measured numbers go in: prefill throughput at each request's input length, TPOT against batch
at the measured context lengths, KV-cache capacity, the link bandwidth for cross-type KV transfer.
None of the analytic capacity formulas (queueing, largest batch under a target) is used here, so
the simulation is an independent check of them (docs/simulation.md).
"""

from __future__ import annotations

import bisect
from dataclasses import dataclass, field

from pdopt.capacity import (
    instance_decode_curve,
    instance_kv_cache_tokens,
    kv_transfer_ms,
    saturated_prefill_tokens_per_s,
)
from pdopt.errors import PdoptError
from pdopt.plan import Flow, Objective, Plan, PoolGroup, PoolPlan, Status, WorkloadPlan
from pdopt.scenario.schema import Instance, Scenario


class SimulationError(PdoptError):
    """A plan or option the simulator cannot run (the message says which and why)."""


@dataclass
class PrefillPool:
    """A pool of identical prefill instances."""

    name: str
    instance: Instance
    count: int
    members: list[int] = field(default_factory=list)  # global prefill instance indices
    group: int | None = None  # SLO group level of a split plan pool (docs/simulation.md)
    _service_s: dict[int, float] = field(default_factory=dict)

    def service_s(self, input_tokens: int) -> float:
        """Prefill time of one request, L_in / TP_max(L_in), from the measured throughput."""
        s = self._service_s.get(input_tokens)
        if s is None:
            s = input_tokens / saturated_prefill_tokens_per_s(self.instance, input_tokens)
            self._service_s[input_tokens] = s
        return s


@dataclass
class DecodePool:
    """A pool of identical decode instances and its TPOT lookup, precomputed once."""

    name: str
    instance: Instance
    count: int
    max_batch: int  # running requests per instance at most
    kv_cache_tokens: int | None  # per instance; None: memory not modelled
    contexts: list[float]  # context lengths of the measured tables (empty: context-free table)
    tpot_s: list[list[float]]  # tpot_s[j][b]: step time at batch b, table j (b = 0..max_batch)
    tpot_clamped: bool  # batches beyond the largest measured one use its TPOT (optimistic)
    members: list[int] = field(default_factory=list)  # global decode instance indices
    group: int | None = None  # SLO group level of a split plan pool (docs/simulation.md)

    def step_s(self, batch: int, context_tokens: float) -> float:
        """Duration of one decode step: TPOT(batch, context), linear between the tables' contexts
        and the nearest table outside them (Eqs. D1, D2 read from the measured tables)."""
        if len(self.contexts) <= 1:
            return self.tpot_s[0][batch]
        ctx = self.contexts
        if context_tokens <= ctx[0]:
            return self.tpot_s[0][batch]
        if context_tokens >= ctx[-1]:
            return self.tpot_s[-1][batch]
        j = bisect.bisect_right(ctx, context_tokens) - 1
        w = (context_tokens - ctx[j]) / (ctx[j + 1] - ctx[j])
        lo, hi = self.tpot_s[j][batch], self.tpot_s[j + 1][batch]
        return lo + w * (hi - lo)


@dataclass
class FlowSpec:
    """One flow of a workload: its prefill and decode pools and its share of the requests."""

    prefill_pool: int
    decode_pool: int
    share: float
    kv_ms_per_input_token: float  # cross-type KV transfer, ms per prompt token (0: same type)


@dataclass
class Fleet:
    prefill_pools: list[PrefillPool]
    decode_pools: list[DecodePool]
    flows: list[list[FlowSpec]]  # by workload index
    overhead_ms: list[float]  # ttft_overhead_ms by workload index
    messages: list[str]
    # share of the prompt prefill computes, 1 - prefix_cache_hit_rate, by workload index (Eq. H9)
    prefill_work_share: list[float] = field(default_factory=list)

    @property
    def prefill_instances(self) -> int:
        return sum(p.count for p in self.prefill_pools)

    @property
    def decode_instances(self) -> int:
        return sum(p.count for p in self.decode_pools)


def _decode_pool(scenario: Scenario, pool: PoolPlan, max_decode_batch: int | None,
                 messages: list[str]) -> DecodePool:
    inst = scenario.instance(pool.instance)
    tables = inst.decode_tables
    if not tables:
        raise SimulationError(f"decode instance type '{inst.name}' has no TPOT table to simulate")
    contexts = [t.context_tokens for t in tables]
    if len(tables) == 1:
        # One table: it holds at any context (there is nothing to interpolate between).
        curves = [instance_decode_curve(inst, contexts[0] or 0.0)]
        contexts = []
    else:
        curves = [instance_decode_curve(inst, float(c)) for c in contexts]  # type: ignore[arg-type]
    largest = min(c.largest_measured_batch for c in curves)
    cap = largest if max_decode_batch is None else max_decode_batch
    kv = instance_kv_cache_tokens(scenario, inst)
    clamped = cap > largest and inst.extrapolation != "linear"
    if clamped:
        messages.append(
            f"decode pool '{pool.instance}': batches above the largest measured ({largest}) take "
            "its TPOT (the instance's extrapolation is not linear): optimistic"
        )
    tpot = [[0.0] + [c.tpot_at(b) / 1e3 for b in range(1, cap + 1)] for c in curves]
    return DecodePool(pool.instance, inst, pool.count, cap, kv,
                      [float(c) for c in contexts], tpot, clamped)  # type: ignore[arg-type]


def build_fleet(scenario: Scenario, plan: Plan, max_decode_batch: int | None = None) -> Fleet:
    """The simulated fleet of a plan: one pool per plan pool with a positive count, and the plan's
    flows as routing shares per workload."""
    if not plan.has_plan:
        raise SimulationError(f"plan status is '{plan.status}': nothing to simulate"
                              + (f" ({'; '.join(plan.diagnosis)})" if plan.diagnosis else ""))
    messages: list[str] = []
    prefill: list[PrefillPool] = []
    decode: list[DecodePool] = []
    # instance type -> (role, [(simulated pool index, routed requests/s by workload)])
    index: dict[str, tuple[str, list[tuple[int, dict[str, float]]]]] = {}
    for pool in plan.pools:
        if pool.count <= 0:
            continue
        try:
            inst = scenario.instance(pool.instance)
        except KeyError:
            raise SimulationError(f"plan pool '{pool.instance}' is not an instance type of "
                                  f"scenario '{scenario.name}'") from None
        if pool.role != inst.role:
            raise SimulationError(f"plan pool '{pool.instance}': role {pool.role} but the "
                                  f"scenario's instance type is {inst.role}")
        # A pool the plan splits into SLO groups runs as one simulated pool per group, each with
        # the group's count (docs/simulation.md, "SLO groups"); one group: the whole pool.
        groups: list[PoolGroup | None] = (
            [g for g in pool.groups if g.count > 0] if len(pool.groups) > 1 else [None])
        parts: list[tuple[int, dict[str, float]]] = []
        for g in groups:
            count = pool.count if g is None else g.count
            level = None if g is None else g.level
            if inst.role == "prefill":
                parts.append((len(prefill), {} if g is None else g.routed_requests_per_s))
                prefill.append(PrefillPool(pool.instance, inst, count, group=level))
            else:
                parts.append((len(decode), {} if g is None else g.routed_requests_per_s))
                d = _decode_pool(scenario, pool, max_decode_batch, messages)
                d.count, d.group = count, level
                decode.append(d)
        index[pool.instance] = (inst.role, parts)
    start = 0
    for p in prefill:
        p.members = list(range(start, start + p.count))
        start += p.count
    start = 0
    for dp in decode:
        dp.members = list(range(start, start + dp.count))
        start += dp.count

    flows: list[list[FlowSpec]] = [[] for _ in scenario.workloads]
    names = {w.name: k for k, w in enumerate(scenario.workloads)}
    for f in plan.flows:
        if f.requests_per_s <= 0:
            continue
        if f.workload not in names:
            raise SimulationError(f"plan flow: unknown workload '{f.workload}'")
        w = scenario.workloads[names[f.workload]]
        pk, dk = index.get(f.prefill_instance), index.get(f.decode_instance)
        if pk is None or pk[0] != "prefill" or dk is None or dk[0] != "decode":
            raise SimulationError(
                f"plan flow of '{f.workload}': {f.prefill_instance} -> {f.decode_instance} does "
                "not name a prefill and a decode pool of the plan with instances"
            )
        pinst, dinst = prefill[pk[1][0][0]].instance, decode[dk[1][0][0]].instance
        per_token = kv_transfer_ms(scenario, w.model, pinst.gpu, dinst.gpu, 1.0)
        if per_token is None:
            raise SimulationError(
                f"plan flow of '{f.workload}': no KV link from {pinst.gpu} to {dinst.gpu} in the "
                "scenario (kv_transfer) and no KV bytes per token for the model"
            )
        for pi, ps in _group_shares(pk[1], f.workload):
            for di, ds in _group_shares(dk[1], f.workload):
                if ps * ds > 0:
                    flows[names[f.workload]].append(
                        FlowSpec(pi, di, f.requests_per_s * ps * ds, per_token))
    for k, w in enumerate(scenario.workloads):
        if not flows[k]:
            raise SimulationError(f"plan has no flow with a positive rate for workload '{w.name}'")
    messages = list(dict.fromkeys(messages))  # a split pool's groups share one message
    return Fleet(prefill, decode, flows, [w.ttft_overhead_ms for w in scenario.workloads],
                 messages, [1.0 - w.prefix_cache_hit_rate for w in scenario.workloads])


def _group_shares(parts: list[tuple[int, dict[str, float]]],
                  workload: str) -> list[tuple[int, float]]:
    """The simulated pools of one plan pool and the fraction of `workload`'s requests each gets:
    the group's routed requests/s of the workload over the pool's (docs/simulation.md, "SLO
    groups"). One part (an unsplit pool): all of them. A workload no group names (a plan without
    routed rates) is spread over the groups in proportion to their counts."""
    if len(parts) == 1:
        return [(parts[0][0], 1.0)]
    routed = [max(r.get(workload, 0.0), 0.0) for _, r in parts]
    total = sum(routed)
    if total > 0:
        return [(i, x / total) for (i, _), x in zip(parts, routed, strict=True)]
    return [(i, 1.0 / len(parts)) for i, _ in parts]


def plan_from_counts(scenario: Scenario, counts: dict[str, int], *,
                     name: str | None = None) -> Plan:
    """A plan skeleton with the given instance counts per instance type, for simulation only:
    each workload's requests are spread over every pair of its model's prefill and decode pools in
    proportion to the pools' counts. Predictions are not filled in (NaN): the simulator does not
    use the analytic model. Used for the paper's hand-made plans and for `verify`'s neighbours."""
    unknown = sorted(set(counts) - {i.name for i in scenario.instances})
    if unknown:
        raise SimulationError(f"unknown instance type(s) {', '.join(unknown)}")
    pools, flows, workloads = [], [], []
    for inst in scenario.instances:
        n = counts.get(inst.name, 0)
        if n <= 0:
            continue
        gpu = scenario.gpus[inst.gpu]
        pools.append(PoolPlan(
            instance=inst.name, model=inst.model, role=inst.role, gpu=inst.gpu,
            gpus_per_instance=inst.gpus_per_instance, count=n,
            cost_per_hour=n * inst.gpus_per_instance * gpu.cost_per_hour,
            utilization=float("nan"), routed_requests_per_s={},
        ))
    for w in scenario.workloads:
        rate = w.rate_requests_per_s
        pre = [p for p in pools if p.model == w.model and p.role == "prefill"]
        dec = [p for p in pools if p.model == w.model and p.role == "decode"]
        if not pre or not dec:
            return Plan.without_plan(
                scenario=scenario.name, status=Status.INFEASIBLE,
                objective=Objective(scenario.options.objective),
                diagnosis=[f"workload '{w.name}': no {'prefill' if not pre else 'decode'} "
                           "instance left"],
            )
        n_pre, n_dec = sum(p.count for p in pre), sum(p.count for p in dec)
        for p in pre:
            for d in dec:
                share = rate * p.count / n_pre * d.count / n_dec
                kv = kv_transfer_ms(scenario, w.model, p.gpu, d.gpu, w.input_tokens)
                if kv is None:
                    continue
                flows.append(Flow(w.name, p.instance, d.instance, share, kv))
                p.routed_requests_per_s[w.name] = p.routed_requests_per_s.get(w.name, 0) + share
                d.routed_requests_per_s[w.name] = d.routed_requests_per_s.get(w.name, 0) + share
        workloads.append(WorkloadPlan(
            workload=w.name, model=w.model, demand_requests_per_s=rate,
            ttft_target_ms=w.slo.ttft_ms, ttft_percentile=w.slo.ttft_percentile,
            tpot_target_ms=w.slo.tpot_ms, expected_ttft_ms=float("nan"),
            expected_tpot_ms=float("nan"),
        ))
    return Plan.of_pools(
        scenario=name or scenario.name, status=Status.FEASIBLE,
        objective=Objective(scenario.options.objective), pools=pools, workloads=workloads,
        flows=flows,
    )


def plan_counts(plan: Plan) -> dict[str, int]:
    """Instance counts per instance type of a plan."""
    return {p.instance: p.count for p in plan.pools if p.count > 0}
