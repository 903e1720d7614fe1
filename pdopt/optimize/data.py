"""Everything the integer program needs, precomputed from a scenario (no Pyomo here).

Per-instance capacities come from `pdopt.capacity` (the foundation's throughput models); this module
only enumerates which workload may use which pool, computes the coefficients of the linear
constraints of docs/method.md section O, and records why a route was left out (for diagnoses).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from pdopt.capacity import (
    instance_decode_capacity,
    instance_prefill_capacity,
    kv_transfer_ms,
    saturated_prefill_tokens_per_s,
)
from pdopt.errors import PdoptError
from pdopt.queueing import service_scv, service_second_moment_s2, service_time_s
from pdopt.scenario.schema import Instance, Scenario, Workload


@dataclass(frozen=True)
class Pool:
    """The instances of one instance type (one integer variable)."""

    name: str
    model: str
    role: str
    gpu: str
    gpus_per_instance: int
    cost_per_hour: float  # one instance
    min_count: int
    max_count: int | None
    upper_bound: int  # no optimal plan needs more (Eq. O9); max_count not applied


@dataclass(frozen=True)
class PrefillRoute:
    """Workload `workload` may prefill on pool `pool` and then decode on GPU type `decode_gpu`."""

    workload: str
    pool: str
    decode_gpu: str
    kv_transfer_ms: float
    waiting_budget_s: float  # B of Eq. P4 with the transfer added to the overhead
    level: int  # index into FleetData.prefill_levels[pool]


@dataclass
class FleetData:
    scenario: Scenario
    demand_requests_per_s: dict[str, float] = field(default_factory=dict)  # with headroom
    pools: dict[str, Pool] = field(default_factory=dict)
    # Prefill: per (workload, pool) service time S and E[S^2] (Eqs. P1, P2).
    service_s: dict[tuple[str, str], float] = field(default_factory=dict)
    second_moment_s2: dict[tuple[str, str], float] = field(default_factory=dict)
    prefill_routes: list[PrefillRoute] = field(default_factory=list)
    prefill_levels: dict[str, list[float]] = field(default_factory=dict)  # budgets, ascending
    # Decode: workloads routable to each pool; TPOT levels (ascending targets) per pool.
    decode_routes: list[tuple[str, str]] = field(default_factory=list)  # (workload, pool)
    decode_levels: dict[str, list[float]] = field(default_factory=dict)  # TPOT targets, ascending
    # capacity of one instance of pool d, output tokens/s, for requests of workload i when the pool
    # runs within TPOT level t (Eq. O6); None: class i cannot meet that TPOT on this pool
    decode_tokens_per_s: dict[tuple[str, str, int], float | None] = field(default_factory=dict)
    exclusions: dict[str, list[str]] = field(default_factory=dict)  # workload -> reasons

    def __post_init__(self) -> None:
        self._workloads = {w.name: w for w in self.scenario.workloads}

    def workload(self, name: str) -> Workload:
        return self._workloads[name]

    def pools_of(self, role: str) -> list[Pool]:
        return [p for p in self.pools.values() if p.role == role]

    def decode_level_of(self, workload: str, pool: str) -> int:
        return self.decode_levels[pool].index(self.workload(workload).slo.tpot_ms)

    def levels(self, pool: str) -> list[float]:
        """A pool's SLO levels: waiting budgets (prefill) or TPOT targets (decode), ascending."""
        if self.pools[pool].role == "prefill":
            return self.prefill_levels.get(pool, [])
        return self.decode_levels.get(pool, [])

    def prefill_shares(self) -> list[tuple[str, str, int]]:
        """(workload, prefill pool, group level) for every group at most as loose as the
        workload's loosest budget on that pool (Eq. O7)."""
        loosest: dict[tuple[str, str], int] = {}
        for r in self.prefill_routes:
            key = (r.workload, r.pool)
            loosest[key] = max(loosest.get(key, -1), r.level)
        return [(w, p, lvl) for (w, p), top in sorted(loosest.items()) for lvl in range(top + 1)]

    def decode_shares(self) -> list[tuple[str, str, int]]:
        """(workload, decode pool, group level) for every TPOT level at least as strict as the
        workload's own at which it has a capacity on that pool (Eq. O7)."""
        return [(w, d, t) for w, d in self.decode_routes
                for t in range(self.decode_level_of(w, d) + 1)
                if self.decode_tokens_per_s[(w, d, t)] is not None]


def _allowed(scenario: Scenario, instance: Instance) -> bool:
    spec = scenario.models.get(instance.model)
    if spec is None:
        return True
    prefill = instance.role == "prefill"
    role_list = spec.allowed_prefill_gpus if prefill else spec.allowed_decode_gpus
    return all(lst is None or instance.gpu in lst for lst in (spec.allowed_gpus, role_list))


def _level_index(levels: list[float], value: float) -> int:
    for k, v in enumerate(levels):
        if math.isclose(v, value, rel_tol=1e-12, abs_tol=1e-12):
            return k
    raise KeyError(value)


def _distinct_sorted(values: list[float]) -> list[float]:
    out: list[float] = []
    for v in sorted(values):
        if not out or not math.isclose(out[-1], v, rel_tol=1e-12, abs_tol=1e-12):
            out.append(v)
    return out


def build_fleet_data(scenario: Scenario) -> FleetData:
    """Enumerate pools and routes and compute every coefficient of the program."""
    data = FleetData(scenario=scenario)
    for w in scenario.workloads:
        data.demand_requests_per_s[w.name] = w.rate_requests_per_s * scenario.headroom_of(w)
        data.exclusions[w.name] = []

    usable = [i for i in scenario.instances if _allowed(scenario, i)]
    usable_names = {i.name for i in usable}
    for w in scenario.workloads:
        for i in scenario.instances:
            if i.model == w.model and i.name not in usable_names:
                data.exclusions[w.name].append(
                    f"instance '{i.name}' is on GPU type {i.gpu}, not allowed for model "
                    f"'{i.model}' as {i.role}"
                )

    _add_decode(data, scenario, [i for i in usable if i.role == "decode"])
    _add_prefill(data, scenario, [i for i in usable if i.role == "prefill"])
    return data


def _add_decode(data: FleetData, scenario: Scenario, decode: list[Instance]) -> None:
    cache: dict = {}  # decode curve and KV size per (instance, context)
    for inst in decode:
        ws = [w for w in scenario.workloads if w.model == inst.model]
        routable: list[Workload] = []
        for w in ws:
            try:
                instance_decode_capacity(scenario, inst, w, cache=cache)
            except PdoptError as e:
                data.exclusions[w.name].append(str(e))
            else:
                routable.append(w)
        levels = _distinct_sorted([w.slo.tpot_ms for w in routable])
        data.decode_levels[inst.name] = levels
        load_at_tightest = 0.0
        for i in routable:
            data.decode_routes.append((i.name, inst.name))
            caps = []
            for t, target in enumerate(levels):
                try:
                    cap = instance_decode_capacity(scenario, inst, i, tpot_ms=target,
                                                   cache=cache).tokens_per_s
                except PdoptError:
                    cap = None
                data.decode_tokens_per_s[(i.name, inst.name, t)] = cap
                if cap is not None:
                    caps.append(cap)
            load_at_tightest += data.demand_requests_per_s[i.name] * i.output_tokens / min(caps)
        data.pools[inst.name] = _pool(scenario, inst, load_at_tightest)


def _add_prefill(data: FleetData, scenario: Scenario, prefill: list[Instance]) -> None:
    decode_gpus_by_model: dict[str, set[str]] = {}
    for w, d in data.decode_routes:
        decode_gpus_by_model.setdefault(data.workload(w).model, set()).add(data.pools[d].gpu)
    for inst in prefill:
        routes: list[tuple[Workload, str, float, float]] = []
        for w in (w for w in scenario.workloads if w.model == inst.model):
            try:
                tp_max = saturated_prefill_tokens_per_s(inst, w.input_tokens)
            except PdoptError as e:
                data.exclusions[w.name].append(f"instance '{inst.name}': {e}")
                continue
            queue, scv = scenario.queue_of(w)
            s = service_time_s(w.input_tokens, tp_max)
            data.service_s[(w.name, inst.name)] = s
            data.second_moment_s2[(w.name, inst.name)] = service_second_moment_s2(
                s, service_scv(queue, scv))
            for g in sorted(decode_gpus_by_model.get(w.model, set())):
                t_ms = kv_transfer_ms(scenario, w.model, inst.gpu, g, w.input_tokens)
                if t_ms is None:
                    data.exclusions[w.name].append(
                        f"prefill on {inst.gpu} ('{inst.name}') cannot pair with decode on {g}: "
                        "no KV link bandwidth (kv_transfer) or no kv bytes per token for the model"
                    )
                    continue
                try:
                    cap = instance_prefill_capacity(scenario, inst, w, extra_overhead_ms=t_ms)
                except PdoptError as e:
                    extra = f" (with {t_ms:.1f} ms KV transfer to {g})" if t_ms else ""
                    data.exclusions[w.name].append(f"{e}{extra}")
                    continue
                routes.append((w, g, t_ms, cap.waiting_budget_s))
        levels = _distinct_sorted([b for *_, b in routes])
        data.prefill_levels[inst.name] = levels
        for w, g, t_ms, b in routes:
            data.prefill_routes.append(
                PrefillRoute(w.name, inst.name, g, t_ms, b, _level_index(levels, b)))
        # Load in instances if every routable workload came here at the tightest budget (Eq. O9).
        load = 0.0
        if levels:
            b_min = levels[0]
            for w in {r[0].name: r[0] for r in routes}.values():
                s, m2 = data.service_s[(w.name, inst.name)], data.second_moment_s2[(w.name,
                                                                                    inst.name)]
                load += data.demand_requests_per_s[w.name] * (m2 + 2 * b_min * s) / (2 * b_min)
        data.pools[inst.name] = _pool(scenario, inst, load)


def _pool(scenario: Scenario, inst: Instance, load_instances: float) -> Pool:
    # max_count applies later; any load needs an instance, however small (a rate below 1e-9 of
    # an instance's capacity would otherwise round to none)
    upper = max(inst.min_count, math.ceil(load_instances - 1e-9), 1 if load_instances > 0 else 0)
    return Pool(
        name=inst.name,
        model=inst.model,
        role=inst.role,
        gpu=inst.gpu,
        gpus_per_instance=inst.gpus_per_instance,
        cost_per_hour=inst.gpus_per_instance * scenario.gpus[inst.gpu].cost_per_hour,
        min_count=inst.min_count,
        max_count=inst.max_count,
        upper_bound=upper,
    )
