"""Everything the integer program needs, precomputed from a scenario (no Pyomo here).

Per-instance capacities come from `pdopt.capacity` (the foundation's throughput models); this module
only enumerates which workload may use which pool, computes the coefficients of the linear
constraints of docs/method.md section O, and records why a route was left out (for diagnoses).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field

from pdopt.capacity import (
    MAX_TABLE_COUNT,
    GroupLine,
    auto_waiting_budgets_s,
    count_for_demand,
    decode_capacity_by_count,
    decode_rate_table,
    group_line,
    instance_decode_capacity,
    instance_prefill_capacity,
    kv_transfer_ms,
    mixed_percentile_budget_s,
    output_scv,
    pool_routing,
    prefill_rate_table_by_count,
    prefill_service_moments,
    prefill_work_share,
    random_window_count,
    saturated_prefill_tokens_per_s,
    slo_window_of,
    table_counts,
)
from pdopt.decode import DecodeCurve, batch_peakedness, request_tpot_ms
from pdopt.errors import PdoptError
from pdopt.queueing import (
    ServiceMoments,
    arrival_scv,
    mean_wait_s,
    mixed_klb_factor,
    mixed_wait_coefficient_s2,
    percentile_wait,
    quantile_points,
    service_scv,
    service_second_moment_s2,
    service_time_s,
    ttft_quantile_s,
    wait_probability,
)
from pdopt.scenario.problems import Problem, ScenarioError
from pdopt.scenario.schema import EmpiricalLengths, Instance, Scenario, Workload

#: What each queue setting and routing is called in a plan (docs/method.md, sections P, Q, F).
QUEUE_MODEL_NAMES = {
    "mm1": "M/M/1 (paper)", "md1": "M/D/1", "mg1": "M/G/1",
    "round-robin": "GI/G/1 round-robin, c_a^2 = 1/n (auto)",
    "random": "M/G/1 random routing (auto)",
    "least-loaded": "M/G/c least-loaded (auto)",
}


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
    # operability limits (Eqs. O16-O19): the share of its SLO-constrained capacity the pool may
    # carry, and the fewest instances it may have when used (None: one)
    utilization_cap: float = 1.0
    min_count_if_used: int | None = None


@dataclass(frozen=True)
class PrefillRoute:
    """Workload `workload` may prefill on pool `pool` and then decode on GPU type `decode_gpu`."""

    workload: str
    pool: str
    decode_gpu: str
    kv_transfer_ms: float
    waiting_budget_s: float  # B of Eq. P4 with the transfer added to the overhead
    level: int  # index into FleetData.prefill_levels[pool]
    # queue auto: the mean wait allowed on n = 1..MAX_TABLE_COUNT instances (Eq. O13a); the
    # level above is their smallest. Empty for the other queue models.
    count_budgets_s: tuple[float, ...] = ()


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
    # queue auto, random routing: a group's capacity row when it is not O5's at its level (Eq. O13d)
    prefill_lines: dict[tuple[str, int], GroupLine] = field(default_factory=dict)
    # Decode: workloads routable to each pool; TPOT levels (ascending targets) per pool.
    decode_routes: list[tuple[str, str]] = field(default_factory=list)  # (workload, pool)
    decode_levels: dict[str, list[float]] = field(default_factory=dict)  # TPOT targets, ascending
    # capacity of one instance of pool d, output tokens/s, for requests of workload i when the pool
    # runs within TPOT level t (Eq. O6); None: class i cannot meet that TPOT on this pool
    decode_tokens_per_s: dict[tuple[str, str, int], float | None] = field(default_factory=dict)
    exclusions: dict[str, list[str]] = field(default_factory=dict)  # workload -> reasons
    # queue auto (Eqs. O13, O14): pools whose capacity depends on their count have a table of
    # per-instance requests/s per (workload, pool, level) at counts 1..table_counts[pool]
    table_counts: dict[str, int] = field(default_factory=dict)
    rate_tables: dict[tuple[str, str, int], list[float]] = field(default_factory=dict)
    queue_models: dict[str, str] = field(default_factory=dict)  # pool -> model used
    table_groups: dict[str, int] = field(default_factory=dict)  # pool -> groups with a table
    table_jobs: dict[str, Callable[[int], None]] = field(default_factory=dict)  # fill the tables
    # queue auto: the routing model of each pool (prefill: Eqs. Q3-Q7; decode: F1), the service
    # time points of each (workload, prefill pool) for percentiles (Eq. Q8) and the output SCVs
    prefill_routing: dict[str, str] = field(default_factory=dict)
    decode_routing: dict[str, str] = field(default_factory=dict)
    service_points: dict[tuple[str, str], tuple[float, ...]] = field(default_factory=dict)
    output_scvs: dict[str, float] = field(default_factory=dict)
    # an empirical length file's (input, output) lengths per workload (None: not empirical)
    lengths: dict[str, tuple[list[float], list[float]] | None] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self._workloads = {w.name: w for w in self.scenario.workloads}

    def workload(self, name: str) -> Workload:
        return self._workloads[name]

    def decode_level_of(self, workload: str, pool: str) -> int:
        return self.decode_levels[pool].index(self.workload(workload).slo.tpot_ms)

    def levels(self, pool: str) -> list[float]:
        """A pool's SLO levels: waiting budgets (prefill) or TPOT targets (decode), ascending."""
        if self.pools[pool].role == "prefill":
            return self.prefill_levels.get(pool, [])
        return self.decode_levels.get(pool, [])

    def prefill_row(self, pool: str, level: int) -> tuple[float, float]:
        """(a, c) of prefill group `level`'s row sum_w q_w (E[S_w^2] + a S_w) <= c n: a = c = 2 B_l
        (Eq. O5), or a = alpha / beta and c = 1 / beta for the group's line (Eq. O13d)."""
        line = self.prefill_lines.get((pool, level))
        if line is None:
            twice = 2 * self.prefill_levels[pool][level]
            return twice, twice
        return line.alpha / line.beta_per_s, 1 / line.beta_per_s

    def prefill_unit(self, workload: str, pool: str, level: int) -> float:
        """Instances one request/s of `workload` takes in prefill group `level` of `pool` at full
        utilisation: (E[S^2] + 2 B_l S) / (2 B_l) (Eq. O5), or the group's line's (Eq. O13d)."""
        a, c = self.prefill_row(pool, level)
        return (self.second_moment_s2[(workload, pool)] + a * self.service_s[(workload, pool)]) / c

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


def _empirical_lengths(workload: Workload, index: int
                       ) -> tuple[list[float], list[float]] | None:
    """The (input, output) lengths of an empirical length file, or None (other distributions).
    A file that cannot be read (or holds no pair) is a ScenarioError naming the field
    `workloads[index].length_distribution.file` and the file."""
    dist = workload.length_distribution
    if not isinstance(dist, EmpiricalLengths):
        return None
    from pdopt.simulate.traces import read_length_pairs  # reading a file: only when needed

    field = f"workloads[{index}].length_distribution.file"
    try:
        inputs, outputs = read_length_pairs(dist.file)
    except PdoptError as e:
        raise ScenarioError([Problem(field, str(e))]) from None
    return inputs.tolist(), outputs.tolist()


def build_fleet_data(scenario: Scenario) -> FleetData:
    """Enumerate pools and routes and compute every coefficient of the program."""
    data = FleetData(scenario=scenario)
    data.lengths = {w.name: _empirical_lengths(w, k) for k, w in enumerate(scenario.workloads)}
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
    _limit_tables(data)
    return data


#: At most this many one-hot count binaries in the program (Eq. O14): each group's table is cut to
#: K = min(U_p, budget / groups) counts (counts above K at K's capacity); with fewer than two
#: counts per group left, the program uses the count-1 capacity everywhere (no binaries).
TABLE_BINARY_BUDGET = 160


def _limit_tables(data: FleetData) -> None:
    """Cut the tables to the binary budget, then compute them (only the counts used)."""
    groups = sum(data.table_groups.values())
    if not groups:
        return
    per_group = TABLE_BINARY_BUDGET // groups
    if per_group < 2:
        for p in list(data.table_counts):
            data.queue_models[p] += "; capacity at one instance (too many groups for tables)"
        data.table_counts.clear()
        data.table_jobs.clear()
        return
    for p, job in data.table_jobs.items():
        data.table_counts[p] = min(data.table_counts[p], per_group)
        job(data.table_counts[p])


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
        _decode_tables(data, scenario, inst, routable, levels)


def _is_auto(scenario: Scenario, workloads: list[Workload]) -> bool:
    return bool(workloads) and all(scenario.queue_of(w)[0] == "auto" for w in workloads)


def _decode_tables(data: FleetData, scenario: Scenario, inst: Instance,
                   routable: list[Workload], levels: list[float]) -> None:
    """Queue auto: decode capacity with a fluctuating batch (Eqs. F1-F4), per count when the
    routing makes it depend on the count (Eq. O14)."""
    if not _is_auto(scenario, routable):
        data.queue_models[inst.name] = "steady batch (paper)"
        return
    routing = pool_routing([scenario.routing_of(w) for w in routable])
    data.decode_routing[inst.name] = routing
    for w in routable:
        lengths = data.lengths.get(w.name)
        data.output_scvs[w.name] = output_scv(w, lengths[1] if lengths else None)
    shared = len(routable) > 1  # classes of other output lengths share the slots: F4, not F4b

    def tables(counts: int) -> dict[tuple[str, int], list[float] | None]:
        out: dict[tuple[str, int], list[float] | None] = {}
        for w in routable:
            lengths = data.lengths.get(w.name)
            for t, target in enumerate(levels):
                if data.decode_tokens_per_s.get((w.name, inst.name, t)) is None:
                    continue
                try:
                    rows = decode_rate_table(scenario, inst, w, target, counts, routing=routing,
                                             output_lengths=lengths[1] if lengths else None,
                                             shared=shared)
                except PdoptError:
                    out[(w.name, t)] = None
                else:
                    out[(w.name, t)] = [r.tokens_per_s for r in rows]
        return out

    # The bound U_p (Eq. O9) at the count-1 capacity, the smallest of the table.
    first = tables(1)
    if routing == "random" and slo_window_of(scenario) is not None:
        # untabled: each class's capacity at the count it needs alone (Eq. W6)
        for (name, t), table in first.items():
            if table:
                first[(name, t)] = [_random_window_capacity(data, scenario, inst, name,
                                                            levels[t], routing, shared)]
    load = 0.0
    for w in routable:
        caps = [c[0] for (wn, _), c in first.items() if wn == w.name and c]
        if not caps:
            data.exclusions[w.name].append(
                f"instance '{inst.name}': no batch meets the TPOT target with room for the "
                "batch's fluctuation (Eqs. F3, F4)")
            continue
        load += data.demand_requests_per_s[w.name] * w.output_tokens / min(caps)
    data.pools[inst.name] = _pool(scenario, inst, load)
    counts = table_counts(data.pools[inst.name].upper_bound)
    tabled = routing != "random" and counts > 1
    for (name, t), table in first.items():
        data.decode_tokens_per_s[(name, inst.name, t)] = table[0] if table else None
    if tabled:
        data.table_counts[inst.name] = counts
        data.table_groups[inst.name] = len({t for (_, t), table in first.items() if table})

        def job(k: int) -> None:
            # every count the pool may have (to MAX_TABLE_COUNT), then the suffix minimum cut
            # to k: a fluctuating batch may do better at a lower peakedness where the measured
            # curve bends down (F2), and count k stands for the tail (counts k and up, Eq. O14)
            for (name, t), table in tables(counts).items():
                if table:
                    data.rate_tables[(name, inst.name, t)] = suffix_minimum(
                        [c / data.workload(name).output_tokens for c in table])[:k]

        data.table_jobs[inst.name] = job
    data.queue_models[inst.name] = (
        f"fluctuating batch, {'c_a^2 = 1/n' if tabled else 'Poisson'} arrivals (auto)"
        + _window_note(scenario))


def _window_note(scenario: Scenario) -> str:
    """What a queue-auto pool's model says about the SLO window it was sized for (section W)."""
    window = slo_window_of(scenario)
    if window is None:
        return ""
    return (f"; SLO window {window.window_s / 60:g} min at "
            f"{100 * window.confidence:g}% (method.md W)")


def _random_window_capacity(data: FleetData, scenario: Scenario, inst: Instance, name: str,
                            tpot_ms: float, routing: str, shared: bool) -> float:
    """Output tokens/s per instance of class `name` on an untabled (random-routed) decode pool
    with an SLO window: the windowed capacity (Eq. W5) at the count the class needs alone
    (Eq. W6)."""
    w = data.workload(name)
    lengths = data.lengths.get(name)
    row = decode_capacity_by_count(scenario, inst, w, tpot_ms, lengths[1] if lengths else None,
                                   routing, shared)
    n = count_for_demand(data.demand_requests_per_s[name] * w.output_tokens,
                         lambda count: row(count).tokens_per_s, MAX_TABLE_COUNT)
    return row(n).tokens_per_s


def _add_prefill(data: FleetData, scenario: Scenario, prefill: list[Instance]) -> None:
    decode_gpus_by_model: dict[str, set[str]] = {}
    for name, d in data.decode_routes:
        decode_gpus_by_model.setdefault(data.workload(name).model, set()).add(data.pools[d].gpu)
    for inst in prefill:
        routes: list[tuple[Workload, str, float, float, tuple[float, ...]]] = []
        moments_of: dict[str, ServiceMoments] = {}  # queue auto: each class's (Eqs. Q1, Q2)
        for w in (w for w in scenario.workloads if w.model == inst.model):
            try:
                # the prompt's computed share (Eq. H9: a prefix-cache hit is read, not computed)
                tp_max = (saturated_prefill_tokens_per_s(inst, w.input_tokens)
                          / prefill_work_share(w))
            except PdoptError as e:
                data.exclusions[w.name].append(f"instance '{inst.name}': {e}")
                continue
            queue, scv = scenario.queue_of(w)
            lengths = data.lengths.get(w.name)
            moments = None
            if queue == "auto":
                moments = moments_of[w.name] = prefill_service_moments(
                    scenario, inst, w, lengths[0] if lengths else None)
                data.service_s[(w.name, inst.name)] = moments.mean_s
                data.service_points[(w.name, inst.name)] = _quantile_points(moments)
                data.second_moment_s2[(w.name, inst.name)] = moments.second_moment_s2
            else:
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
                    cap = instance_prefill_capacity(
                        scenario, inst, w, extra_overhead_ms=t_ms,
                        input_lengths=lengths[0] if lengths else None)
                except PdoptError as e:
                    extra = f" (with {t_ms:.1f} ms KV transfer to {g})" if t_ms else ""
                    data.exclusions[w.name].append(f"{e}{extra}")
                    continue
                by_count: tuple[float, ...] = ()
                if moments is not None:  # the per-count waits (Eq. O13a), cached
                    by_count = auto_waiting_budgets_s(
                        scenario.routing_of(w), moments,
                        (w.slo.ttft_ms - w.ttft_overhead_ms - t_ms) / 1e3,
                        w.slo.ttft_percentile, MAX_TABLE_COUNT, slo_window_of(scenario))
                routes.append((w, g, t_ms, cap.waiting_budget_s, by_count))
        levels = _distinct_sorted([r[3] for r in routes])
        pool_routes = [PrefillRoute(w.name, inst.name, g, t_ms, b, _level_index(levels, b),
                                    by_count) for w, g, t_ms, b, by_count in routes]
        data.prefill_routes.extend(pool_routes)
        routable = list({r[0].name: r[0] for r in routes}.values())
        if _is_auto(scenario, routable) and pool_routing(
                [scenario.routing_of(w) for w in routable]) == "random":
            levels = _mixed_percentile_levels(data, scenario, inst, levels, moments_of,
                                              pool_routes)
        data.prefill_levels[inst.name] = levels
        # each workload's loosest group on this pool: it may use groups 0..that (Eq. O7)
        loosest: dict[str, int] = {}
        for r in pool_routes:
            loosest[r.workload] = max(loosest.get(r.workload, 0), r.level)
        # Load in instances if every routable workload came here at the costliest group that
        # admits it (the tightest budget, Eq. O9, or a group's line, Eq. O13d).
        load = sum(data.demand_requests_per_s[w.name]
                   * max(data.prefill_unit(w.name, inst.name, lvl)
                         for lvl in range(loosest[w.name] + 1)) for w in routable)
        data.pools[inst.name] = _pool(scenario, inst, load)
        _prefill_tables(data, scenario, inst, routable, pool_routes, loosest)


def _mixed_percentile_levels(data: FleetData, scenario: Scenario, inst: Instance,
                             levels: list[float], moments_of: dict[str, ServiceMoments],
                             routes: list[PrefillRoute]) -> list[float]:
    """The capacity rows of a random-routed (M/G/1) prefill pool's groups under queue auto that
    admit several classes, one a percentile class: each group's line (Eq. O13d,
    `data.prefill_lines`), above every admitted class's frontier whatever mix of the admitted
    classes (its routes at this level or looser) it carries, lowest at the mix of its own
    classes (its routes at this level). Where no line is found the group's budget is lowered
    instead, to where every percentile class keeps its target on every such mix (Eq. O13c); the
    groups stay ordered (a stricter group admits a superset of the classes). `moments_of`: each
    class's service moments on the pool, as its capacity was computed with (Eq. W6's count);
    `routes`: the pool's routes."""
    window = slo_window_of(scenario)
    out = list(levels)
    for lvl in range(len(levels)):
        admitted = [r for r in routes if r.level >= lvl]
        names = sorted({r.workload for r in admitted})
        if len(names) < 2:
            continue
        residuals = tuple(sorted({data.second_moment_s2[(w, inst.name)]
                                  / data.service_s[(w, inst.name)] for w in names}))
        percentile_classes: list[tuple[ServiceMoments, float, float, int]] = []
        mean_budgets = []
        for r in admitted:
            w = data.workload(r.workload)
            pct = w.slo.ttft_percentile
            if pct is None:
                mean_budgets.append(r.waiting_budget_s)
                continue
            limit = (w.slo.ttft_ms - w.ttft_overhead_ms - r.kv_transfer_ms) / 1e3
            count = 1 if window is None else random_window_count(
                scenario, w, moments_of[w.name], limit, window)
            percentile_classes.append((workload_service(data, w.name, inst.name), limit, pct,
                                       count))
        own = {r.workload for r in admitted if r.level == lvl}
        weight = {w: data.demand_requests_per_s[w] or 1.0 for w in own}  # the own classes' mix
        line = group_line(
            tuple(sorted(set(percentile_classes), key=repr)), tuple(sorted(set(mean_budgets))),
            (residuals[0], residuals[-1]),
            sum(weight[w] * data.second_moment_s2[(w, inst.name)] for w in own)
            / sum(weight[w] * data.service_s[(w, inst.name)] for w in own), window)
        if line is not None:
            data.prefill_lines[(inst.name, lvl)] = line
            continue
        for service, limit, pct, count in percentile_classes:
            out[lvl] = mixed_percentile_budget_s(out[lvl], service, limit, pct, residuals, count,
                                                 window)
    return suffix_minimum(out)


def _prefill_tables(data: FleetData, scenario: Scenario, inst: Instance,
                    routable: list[Workload], routes: list[PrefillRoute],
                    loosest: dict[str, int]) -> None:
    """Queue auto with round-robin or least-loaded routing: per-instance requests/s of each class
    in each group at counts 1..K (Eqs. Q9, O13, O14). Random routing keeps O5 (P-K is exact for
    several classes). `routes`: the pool's routes; `loosest`: each workload's loosest group on
    the pool (it may use groups 0..that, as `FleetData.prefill_shares`)."""
    if not _is_auto(scenario, routable):
        queues = {scenario.queue_of(w)[0] for w in routable}
        data.queue_models[inst.name] = ", ".join(
            QUEUE_MODEL_NAMES.get(q, q) for q in sorted(queues)) or "none"
        return
    routing = pool_routing([scenario.routing_of(w) for w in routable])
    data.queue_models[inst.name] = QUEUE_MODEL_NAMES[routing] + _window_note(scenario)
    data.prefill_routing[inst.name] = routing
    counts = table_counts(data.pools[inst.name].upper_bound)
    if routing == "random" or counts <= 1:
        return
    data.table_counts[inst.name] = counts
    members: dict[int, list[str]] = {}
    for w, top in sorted(loosest.items()):
        for lvl in range(top + 1):
            members.setdefault(lvl, []).append(w)
    data.table_groups[inst.name] = len(members)
    # a group's own classes: those with a route at its level (the looser ones it admits may
    # spill in); Eq. O15a's tangent is taken at their mix
    natives_of: dict[int, set[str]] = {}
    for r in routes:
        natives_of.setdefault(r.level, set()).add(r.workload)

    def job(k: int) -> None:
        # every count the pool may have (to MAX_TABLE_COUNT), then the suffix minimum cut to
        # k: the table is non-decreasing, so count k stands for the tail (counts k and up, O14)
        for lvl, ws in members.items():
            budgets = group_budgets(data, inst.name, lvl, ws, counts)
            if len(ws) > 1:  # several classes: the linear bound of Eq. O15a
                natives = sorted(natives_of.get(lvl, ()))
                for w in ws:
                    data.rate_tables[(w, inst.name, lvl)] = suffix_minimum(mixed_rate_table(
                        data, inst.name, ws, w, routing, budgets, natives))[:k]
                continue
            s, m2 = data.service_s[(ws[0], inst.name)], data.second_moment_s2[(ws[0], inst.name)]
            data.rate_tables[(ws[0], inst.name, lvl)] = suffix_minimum(
                prefill_rate_table_by_count(routing, ServiceMoments(s, m2, (s,)), budgets))[:k]

    data.table_jobs[inst.name] = job


def suffix_minimum(rates: list[float]) -> list[float]:
    """a(n) replaced by min over n' >= n of a(n') (Eq. O14's tail: counts K and up take a(K),
    valid when a does not fall beyond K). Lowers a capacity only where the table falls."""
    out = list(rates)
    for n in range(len(out) - 2, -1, -1):
        out[n] = min(out[n], out[n + 1])
    return out


def group_budgets(data: FleetData, pool: str, level: int, members: list[str],
                  counts: int) -> list[float]:
    """B_l(n), n = 1..counts: the mean wait group `level` of a prefill pool may have on n
    instances (Eq. O13b), the smallest per-count wait (Eq. O13a) of the routes it admits (its
    members' routes at this level or looser)."""
    routes = [r.count_budgets_s or (r.waiting_budget_s,) * MAX_TABLE_COUNT
              for r in data.prefill_routes
              if r.pool == pool and r.workload in members and r.level >= level]
    return [min(b[n - 1] for b in routes) for n in range(1, counts + 1)]


def mixed_rate_table(data: FleetData, pool: str, members: list[str], workload: str,
                     routing: str, budgets_s: list[float], natives: list[str]) -> list[float]:
    """Per-instance rate a_w(n) = 2B(n) / coefficient of class w in a group of several classes,
    n = 1..len(budgets_s) (Eq. O15a): round-robin g*(n) c_w(n) + 2B S_w, with c_w the class's
    share of Kingman's numerator under the tangent at m, the demand-weighted mean service time of
    the group's own classes (`natives`, those with a route at its level; all `members` when it
    has none) but at most twice their shortest: c_w(n) for a class of S_w >= m / 2, which falls with
    n, and its limit n -> oo for a shorter one (a looser class that may spill in), whose c_w
    rises with n (so that a_w(n) rises with n); g* the bound on KLB's factor (Eq. O15b).
    Least-loaded: E[S_w^2] / n + 2B S_w (Erlang C / (n rho) <= 1/n)."""
    s, m2 = data.service_s[(workload, pool)], data.second_moment_s2[(workload, pool)]
    classes = [(data.service_s[(w, pool)], data.second_moment_s2[(w, pool)]) for w in members]
    own = natives or members
    demand = [data.demand_requests_per_s[w] for w in own]
    mean = sum(d * data.service_s[(w, pool)] for d, w in zip(demand, own, strict=True)) \
        / sum(demand)
    tangent = min(mean, 2 * min(data.service_s[(w, pool)] for w in own))
    rising = 2 * s < tangent  # 2 m S_w < m^2: c_w(n) rises with n, take its limit
    out = []
    for n, budget_s in enumerate(budgets_s, start=1):
        if budget_s <= 0:
            out.append(0.0)
        elif routing == "least-loaded":
            out.append(2 * budget_s / (m2 / n + 2 * budget_s * s))
        else:
            g = mixed_klb_factor(budget_s, 1.0 / n, classes, tangent)
            c = mixed_wait_coefficient_s2(s, m2, 0.0 if rising else 1.0 / n, tangent)
            out.append(2 * budget_s / (g * c + 2 * budget_s * s))
    return out


def _pool(scenario: Scenario, inst: Instance, load_instances: float) -> Pool:
    # max_count applies later; any load needs an instance, however small (a rate below 1e-9 of
    # an instance's capacity would otherwise round to none). A utilisation cap x divides each
    # instance's capacity by 1/x, and a used pool has at least min_count_if_used (Eq. O9).
    limits = scenario.limits_of(inst.model)
    cap = limits.utilization_cap(inst.role)
    load_instances /= cap
    upper = max(inst.min_count, math.ceil(load_instances - 1e-9), 1 if load_instances > 0 else 0)
    if limits.min_count_if_used is not None and load_instances > 0:
        upper = max(upper, limits.min_count_if_used)
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
        utilization_cap=cap,
        min_count_if_used=limits.min_count_if_used,
    )


# --- predictions at the plan's load under queue auto (docs/method.md, O.1 with Q and F) --------

def _quantile_points(moments: ServiceMoments) -> tuple[float, ...]:
    """The service times Eq. Q8 sums over (at most QUANTILE_POINTS midpoint quantiles of the
    distribution's points, as `queueing.quantile_points` takes them), sorted."""
    return tuple(sorted(quantile_points(moments).tolist()))


def group_service(data: FleetData, pool: str, rates: dict[str, float]) -> ServiceMoments:
    """The service moments of a group's merged stream: the rate-weighted mixture of its classes'
    (Eq. Q1 over the classes)."""
    total = sum(rates.values())
    mean = sum(r * data.service_s[(w, pool)] for w, r in rates.items()) / total
    second = sum(r * data.second_moment_s2[(w, pool)] for w, r in rates.items()) / total
    return ServiceMoments(mean, second, (mean,))


def group_wait(data: FleetData, pool: str, rates: dict[str, float], count: int
               ) -> tuple[float, float]:
    """Mean wait and wait probability of a prefill group of `count` instances carrying `rates`
    (requests/s of the whole group by workload) under its routing (Eqs. Q5-Q7)."""
    routing = data.prefill_routing[pool]
    total = sum(rates.values())
    if total <= 0:
        return 0.0, 0.0
    service = group_service(data, pool, rates)
    per_instance = total / count
    return (mean_wait_s(routing, per_instance, count, service),
            wait_probability(routing, per_instance, count, service))


def group_percentile_wait(data: FleetData, pool: str, rates: dict[str, float], count: int
                          ) -> tuple[float, float]:
    """The mean wait and wait probability Eq. Q8 takes for a percentile in a prefill group of
    `count` instances carrying `rates` (Eqs. Q8b-Q8c under round-robin; Q5-Q7 otherwise), the
    sizing's own reading of the group's tail."""
    total = sum(rates.values())
    if total <= 0:
        return 0.0, 0.0
    return percentile_wait(data.prefill_routing[pool], total / count, count,
                           group_service(data, pool, rates))


def predicted_ttft_ms(data: FleetData, workload: str, pool: str, wait_s: float,
                      wait_prob: float, extra_overhead_ms: float) -> float:
    """A workload's mean or percentile TTFT in a prefill group of known wait (Eqs. Q5-Q8)."""
    w = data.workload(workload)
    base = w.ttft_overhead_ms + extra_overhead_ms
    if w.slo.ttft_percentile is None:
        return base + 1e3 * (wait_s + data.service_s[(workload, pool)])
    return base + 1e3 * ttft_quantile_s(wait_s, wait_prob, workload_service(data, workload, pool),
                                        w.slo.ttft_percentile)


def workload_service(data: FleetData, workload: str, pool: str) -> ServiceMoments:
    """A workload's prefill service time on a pool's instances: its moments and points (Q1)."""
    points = data.service_points.get((workload, pool), (data.service_s[(workload, pool)],))
    return ServiceMoments(data.service_s[(workload, pool)],
                          data.second_moment_s2[(workload, pool)], points)


def table_rate(data: FleetData, workload: str, pool: str, level: int, count: int) -> float:
    """a_w(n) of a tabled group (the table's last count for larger n, Eq. O14)."""
    table = data.rate_tables[(workload, pool, level)]
    return table[min(count, len(table)) - 1]


def fluctuating_operating_point(data: FleetData, pool: str, curve: DecodeCurve,
                                workloads: list[str], tokens_per_s: float, count: int
                                ) -> tuple[float, float]:
    """Mean batch b and the TPOT requests see at `tokens_per_s` per instance (Eqs. F1, F2): the
    b with b = x T(b) (Little's law), by bisection."""
    routing = data.decode_routing[pool]
    ca2 = arrival_scv("random" if routing == "random" else "round-robin", count)
    z = max(batch_peakedness(ca2, data.output_scvs.get(w, 0.0)) for w in workloads)
    x = tokens_per_s / 1e3  # tokens per ms
    if x <= 0:
        return 0.0, curve.tpot_at(1.0)
    lo, hi = 0.0, max(1.0, float(curve.batches[-1]))
    while hi - x * request_tpot_ms(curve, hi, z) < 0:
        hi *= 2
        if hi > 1e9:
            return math.inf, math.inf
    for _ in range(100):
        mid = (lo + hi) / 2
        if mid - x * request_tpot_ms(curve, mid, z) < 0:
            lo = mid
        else:
            hi = mid
    return hi, request_tpot_ms(curve, hi, z)
