"""What `pdopt report` shows of a day plan (a plan over a horizon of periods, docs/method.md
section H): instances per period and pool, GPUs per period by purchase option (reserved, on
demand, spot) and GPU type, the cost per period, the reserved baseline, the total over the
horizon and the comparison with static peak sizing and with all on demand (docs/cli.md,
`pdopt report`, "Day plans").

Everything is read from the plan (`periods`, `reserved_gpus_by_type`, `total_cost`,
`comparison`); the scenario, when known, adds the prices that split each period's cost by
purchase option and the demand without headroom.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from pdopt import figures
from pdopt.document import Section
from pdopt.plan import PeriodPlan, Plan
from pdopt.report import Table, fmt_gap
from pdopt.scenario.schema import Scenario

OPTIONS = ("reserved", "on demand", "spot")

#: Comparison plans in the plan's `comparison`: key prefix and what they are.
COMPARISONS = (("static_peak", "sized statically for the peak"),
               ("all_on_demand", "all on demand"))


def is_day_plan(plan: Plan) -> bool:
    """A plan over a horizon (from the horizon program): it has periods and a total."""
    return plan.has_plan and bool(plan.periods) and plan.total_cost is not None


def dearest_period(plan: Plan) -> int:
    """The period whose pools are the plan's top-level pools (the dearest per hour; the first
    of equals), as pdopt.optimize.periods picks it."""
    return max(range(len(plan.periods)), key=lambda t: (plan.periods[t].cost_per_hour, -t))


def period_starts(plan: Plan) -> list[float]:
    """Hours from the start of the horizon to the start of each period."""
    starts, at = [], 0.0
    for p in plan.periods:
        starts.append(at)
        at += p.hours
    return starts


def horizon_hours(plan: Plan) -> float:
    return sum(p.hours for p in plan.periods)


@dataclass(frozen=True)
class PeriodGpus:
    """One GPU type in one period: GPUs running (serving + spare) and bought per option."""

    gpu: str
    running: int
    reserved: int
    on_demand: int
    spot: int

    @property
    def bought(self) -> int:
        return self.reserved + self.on_demand + self.spot

    def by_option(self) -> dict[str, int]:
        return {"reserved": self.reserved, "on demand": self.on_demand, "spot": self.spot}


def gpu_types(plan: Plan) -> list[str]:
    """Every GPU type the plan runs or buys in some period."""
    types: set[str] = set(plan.reserved_gpus_by_type)
    for p in plan.periods:
        types |= set(p.gpus_by_type) | set(p.on_demand_gpus_by_type) | set(p.spot_gpus_by_type)
    return sorted(types)


def period_gpus(plan: Plan, period: PeriodPlan) -> dict[str, PeriodGpus]:
    """GPUs of every type in a period, by purchase option (reserved: the baseline, the same in
    every period)."""
    return {g: PeriodGpus(g, period.gpus_by_type.get(g, 0), plan.reserved_gpus_by_type.get(g, 0),
                          period.on_demand_gpus_by_type.get(g, 0),
                          period.spot_gpus_by_type.get(g, 0)) for g in gpu_types(plan)}


def option_prices(plan: Plan, scenario: Scenario | None) -> dict[str, dict[str, float]] | None:
    """$/GPU-hour per GPU type and purchase option from the scenario, when it prices every
    type the plan buys and reproduces every period's cost to the cent; otherwise None."""
    if scenario is None or any(g not in scenario.gpus for g in gpu_types(plan)):
        return None
    prices: dict[str, dict[str, float]] = {}
    for g in gpu_types(plan):
        spec = scenario.gpus[g]
        prices[g] = {"on demand": spec.cost_per_hour,
                     "reserved": spec.reserved.cost_per_hour if spec.reserved else 0.0,
                     "spot": spec.spot.cost_per_hour if spec.spot else 0.0}
    for p in plan.periods:
        split = option_cost_per_hour(plan, p, prices)
        if abs(sum(split.values()) - p.cost_per_hour) > 0.005:
            return None
    return prices


def option_cost_per_hour(plan: Plan, period: PeriodPlan,
                         prices: dict[str, dict[str, float]]) -> dict[str, float]:
    """A period's $/hour by purchase option (Eq. H7: the GPUs bought times their prices)."""
    out = dict.fromkeys(OPTIONS, 0.0)
    for g, n in period_gpus(plan, period).items():
        for option, count in n.by_option().items():
            out[option] += count * prices[g][option]
    return out


@dataclass(frozen=True)
class Comparison:
    label: str
    total_cost: float | None
    mip_gap: float | None
    hours: float
    plan_total_cost: float

    @property
    def cost_per_hour(self) -> float | None:
        return None if self.total_cost is None else self.total_cost / self.hours

    @property
    def saved(self) -> float | None:
        """What the day plan saves against this plan, $ over the horizon."""
        return None if self.total_cost is None else self.total_cost - self.plan_total_cost

    @property
    def saved_share(self) -> float | None:
        if self.total_cost is None or self.total_cost <= 0:
            return None
        return 1 - self.plan_total_cost / self.total_cost


def comparisons(plan: Plan) -> list[Comparison]:
    """The comparison plans the solve computed (none when it ran with compare=False)."""
    out = []
    for key, label in COMPARISONS:
        if f"{key}_total_cost" in plan.comparison:
            out.append(Comparison(label, plan.comparison[f"{key}_total_cost"],
                                  plan.comparison.get(f"{key}_mip_gap"), horizon_hours(plan),
                                  plan.total_cost or 0.0))
    return out


def pool_labels(plan: Plan) -> dict[str, str]:
    """Every pool with serving or spare instances in some period -> 'pool (role, model, GPU)'
    where the plan knows the pool, in the order prefill before decode, then by name."""
    known = {p.instance: p for period in plan.periods for p in period.pools}
    known.update({p.instance: p for p in plan.pools})
    names = sorted({n for p in plan.periods for n in (*p.counts, *p.spares)},
                   key=lambda n: (known[n].role != "prefill" if n in known else True,
                                  known[n].model if n in known else "", n))
    return {n: (f"{n} ({known[n].role}, {known[n].model}, {known[n].gpu})" if n in known
                else n) for n in names}


def demand_by_model(plan: Plan) -> dict[str, list[float]]:
    """Requests/s per period (with headroom, as planned) summed over each model's workloads;
    empty when the plan's periods do not carry their demand (plans of an older pdopt)."""
    if not all(p.demand_requests_per_s for p in plan.periods):
        return {}
    model_of = {w.workload: w.model for w in plan.workloads}
    out: dict[str, list[float]] = {}
    for t, p in enumerate(plan.periods):
        for w, rate in p.demand_requests_per_s.items():
            out.setdefault(model_of.get(w, w), [0.0] * len(plan.periods))[t] += rate
    return out


def _period_labels(plan: Plan) -> tuple[list[str], str]:
    hours = {round(p.hours, 9) for p in plan.periods}
    xlabel = "period (lengths in the table)"
    if len(hours) == 1:
        h = next(iter(hours))
        xlabel = f"period ({h:g} h each)" if h >= 1 else f"period ({60 * h:.3g} min each)"
    return [str(p.index) for p in plan.periods], xlabel


def _money(v: float) -> str:
    return f"${v:,.2f}"


def summary_line(plan: Plan) -> str:
    total = plan.total_cost or 0.0
    hours = horizon_hours(plan)
    reserved = ", ".join(f"{n} {g}" for g, n in plan.reserved_gpus_by_type.items()) or "none"
    gap = fmt_gap(plan.mip_gap)
    text = (f"{plan.status} day plan over {len(plan.periods)} periods ({hours:g} h): "
            f"{_money(total)} in total, {_money(total / hours)} per hour on average"
            + (f" (warm-up {_money(plan.warm_up_cost)})" if plan.warm_up_cost else "")
            + f"; reserved baseline: {reserved}; gap to the bound {gap}.")
    for c in comparisons(plan):
        if c.total_cost is None:
            text += f" Sized {c.label}: no plan in its time."
        else:
            text += (f" The same demand {c.label} costs {_money(c.total_cost)}: this plan "
                     f"saves {_money(c.saved or 0.0)} ({100 * (c.saved_share or 0.0):.1f}%).")
    return text


def day_charts(plan: Plan, prices: dict[str, dict[str, float]] | None) -> list[figures.Chart]:
    labels, xlabel = _period_labels(plan)
    pools = pool_labels(plan)
    colours_of = figures.series_colours(list(pools))
    series: dict[str, list[float]] = {}
    colours: dict[str, str] = {}
    hatches: dict[str, str] = {}
    for name, label in pools.items():
        series[label] = [float(p.counts.get(name, 0)) for p in plan.periods]
        colours[label] = colours_of[name]
        spares = [float(p.spares.get(name, 0)) for p in plan.periods]
        if any(spares):
            series[f"{name} spare"] = spares
            colours[f"{name} spare"] = colours_of[name]
            hatches[f"{name} spare"] = "////"
    demand = demand_by_model(plan)
    charts = [figures.period_bars(
        "day-instances", "Instances per period by pool (hatched: spares)", labels, series,
        "instances", xlabel=xlabel, colours=colours, hatches=hatches,
        secondary={f"demand {m}" if len(demand) > 1 else "demand": v
                   for m, v in demand.items()},
        secondary_label="demand (requests/s, with headroom)")]
    types = gpu_types(plan)
    per_period = [period_gpus(plan, p) for p in plan.periods]
    panels: dict[str, dict[str, list[float]]] = {
        "all GPU types": {o: [float(sum(n[g].by_option()[o] for g in types))
                              for n in per_period] for o in OPTIONS}}
    running = {"all GPU types": [float(sum(n[g].running for g in types)) for n in per_period]}
    if len(types) > 1:
        for g in types:
            panels[g] = {o: [float(n[g].by_option()[o]) for n in per_period] for o in OPTIONS}
            running[g] = [float(n[g].running) for n in per_period]
    charts.append(figures.period_gpu_panels(
        "day-gpus", "GPUs per period: reserved, on demand and spot", labels, panels, running,
        xlabel=xlabel))
    hours = horizon_hours(plan)
    references = {f"this plan: {_money((plan.total_cost or 0) / hours)}/hour on average":
                  (plan.total_cost or 0) / hours}
    for c in comparisons(plan):
        if c.cost_per_hour is not None:
            references[f"{c.label}: {_money(c.cost_per_hour)}/hour"] = c.cost_per_hour
    if prices is not None:
        split = [option_cost_per_hour(plan, p, prices) for p in plan.periods]
        costs = {o: [s[o] for s in split] for o in OPTIONS if any(s[o] for s in split)}
        colours = {o: figures.OPTION_COLOURS[o] for o in costs}
    else:
        costs = {"cost": [p.cost_per_hour for p in plan.periods]}
        colours = {"cost": figures.PALETTE[0]}
    charts.append(figures.period_bars(
        "day-cost", "Cost per period ($/hour) against static peak sizing and all on demand",
        labels, costs, "$/hour", xlabel=xlabel, colours=colours, references=references))
    return charts


def day_tables(plan: Plan, prices: dict[str, dict[str, float]] | None) -> list[Table]:
    starts = period_starts(plan)
    pools = pool_labels(plan)
    demand = demand_by_model(plan)

    def cell(p: PeriodPlan, pool: str) -> str:
        n, k = p.counts.get(pool, 0), p.spares.get(pool, 0)
        return f"{n}+{k}" if k else str(n)

    instances = Table(
        "day plan: instances per period and pool (serving+spare), demand and cost",
        ("period", "start_h", "hours", *(f"demand {m} (req/s)" for m in demand), *pools,
         "cost", "cost_per_hour"),
        [(p.index, starts[t], p.hours, *(v[t] for v in demand.values()),
          *(cell(p, name) for name in pools), p.cost, p.cost_per_hour)
         for t, p in enumerate(plan.periods)])
    types = gpu_types(plan)
    per_period = [period_gpus(plan, p) for p in plan.periods]
    columns: list[tuple[str, str]] = []
    for g in types:
        columns.append((g, "running"))
        columns += [(g, o) for o in OPTIONS
                    if any(n[g].by_option()[o] for n in per_period)]
    shown = [o for o in OPTIONS if prices is not None
             and any(option_cost_per_hour(plan, p, prices)[o] for p in plan.periods)]
    gpus = Table(
        "day plan: GPUs per period by type and purchase option (running: serving + spare)",
        ("period", *(f"{g} {o}" for g, o in columns), *(f"{o} $/hour" for o in shown)),
        [(p.index, *(n[g].running if o == "running" else n[g].by_option()[o]
                     for g, o in columns),
          *((option_cost_per_hour(plan, p, prices)[o] for o in shown) if prices else ()))
         for p, n in zip(plan.periods, per_period, strict=True)])
    hours = horizon_hours(plan)
    reserved_rows = []
    for g, n in plan.reserved_gpus_by_type.items():
        running = [x[g].running for x in per_period]
        price = prices[g]["reserved"] if prices else None
        reserved_rows.append((g, n, price, None if price is None else n * price * hours,
                              min(running), max(running),
                              sum(1 for r in running if r <= n)))
    reserved = Table(
        "reserved baseline per GPU type (paid in every period)",
        ("gpu", "reserved_gpus", "$/GPU-hour", "cost over the horizon", "fewest running",
         "most running", "periods covered by reserved"), reserved_rows)
    total = plan.total_cost or 0.0
    rows: list[tuple[object, ...]] = [("this day plan", total, total / hours, None, None,
                                       plan.mip_gap)]
    for c in comparisons(plan):
        rows.append((c.label, c.total_cost, c.cost_per_hour, c.saved,
                     None if c.saved_share is None else 100 * c.saved_share, c.mip_gap))
    comparison = Table(
        f"cost over the horizon ({hours:g} h) against static peak sizing and all on demand",
        ("plan", "total $", "average $/hour", "day plan saves $", "day plan saves %",
         "gap to its bound"), rows)
    tables = [instances, gpus]
    if reserved_rows:
        tables.append(reserved)
    tables.append(comparison)
    return tables


def day_section(plan: Plan, scenario: Scenario | None) -> Section:
    """The day plan: what runs and what is bought in every period, and what it costs."""
    prices = option_prices(plan, scenario)
    notes = ["counts per pool are serving+spare instances; a period's cost includes its share "
             "of the reserved GPUs (paid in every period, used or not)"]
    if plan.warm_up_cost:
        notes.append(f"the total includes {_money(plan.warm_up_cost)} of warm-up: instances "
                     "added at a period's start, paid on demand before it (method.md H11)")
    if prices is None:
        notes.append("the cost per period is not split by purchase option: "
                     + ("give --scenario for the prices" if scenario is None else
                        "the scenario's prices do not reproduce the plan's period costs"))
    if not demand_by_model(plan):
        notes.append("the plan's periods carry no demand (written by an older pdopt): no "
                     "demand line")
    if not comparisons(plan):
        notes.append("the plan has no comparison with static peak sizing and all on demand "
                     "(solved without it)")
    return Section("Day plan", [summary_line(plan)], day_charts(plan, prices),
                   day_tables(plan, prices), notes)


def dearest_period_rates(plan: Plan, scenario: Scenario | None) -> dict[str, float] | None:
    """Each workload's requests/s (without headroom) in the dearest period, from the scenario."""
    if scenario is None:
        return None
    from pdopt.scenario.demand import period_rates

    rates = period_rates(scenario)
    t = dearest_period(plan)
    return {w: r[t] for w, r in rates.items() if t < len(r)}


def period_plan_note(plan: Plan) -> str:
    t = dearest_period(plan)
    p = plan.periods[t]
    return (f"Period {p.index} (from {period_starts(plan)[t]:g} h, {p.hours:g} h long) costs "
            f"the most per hour ({_money(p.cost_per_hour)}): its serving pools, their "
            "utilisation and the predicted latency at its demand. Pool costs here are at "
            "on-demand prices (what the instances would cost bought by the hour), not the "
            "reserved/on-demand/spot mix of the day plan above.")


# --- a day plan's simulation (`pdopt simulate` of a day plan, --format json) ------------------

def is_day_simulation(data: object) -> bool:
    """The JSON of `pdopt simulate` of a day plan: each period's simulation."""
    return isinstance(data, dict) and isinstance(data.get("periods"), list) and bool(
        data["periods"]) and all(isinstance(p, dict) and isinstance(p.get("simulation"), dict)
                                 and isinstance(p["simulation"].get("workloads"), list)
                                 for p in data["periods"])


def _ratio(value: float | None, target: float) -> float | None:
    return None if value is None or target <= 0 else value / target


def day_simulation_series(sim: dict[str, Any], key: str, target: str
                          ) -> dict[str, list[float | None]]:
    """Per workload, per period: the simulated statistic over its target (`key`
    `ttft_at_target_ms` or `tpot_ms`, whose mean is taken); None where not reached."""
    periods = sim["periods"]
    names = list(dict.fromkeys(w["workload"] for p in periods
                               for w in p["simulation"]["workloads"]))
    out: dict[str, list[float | None]] = {}
    for name in names:
        values: list[float | None] = []
        for p in periods:
            w = next((w for w in p["simulation"]["workloads"] if w["workload"] == name), None)
            stat = None if w is None else (w[key]["mean"] if key == "tpot_ms" else w[key])
            values.append(None if w is None else _ratio(stat, w[target]))
        out[name] = values
    return out


def day_simulation_section(sim: dict[str, Any], source: str) -> Section:
    """Each period simulated alone at its demand with its serving counts: per workload, the
    simulated TTFT (the statistic of its target) and mean TPOT over their targets."""
    periods = sim["periods"]
    labels = [str(p.get("index", k)) for k, p in enumerate(periods)]
    ttft = day_simulation_series(sim, "ttft_at_target_ms", "ttft_target_ms")
    tpot = day_simulation_series(sim, "tpot_ms", "tpot_target_ms")
    chart = figures.period_lines(
        "day-simulation", "Simulated latency over target per period (at most 1 meets the SLO)",
        labels, {"TTFT at its target's statistic / target": ttft, "mean TPOT / target": tpot},
        "simulated / target", level=1.0)
    rows = []
    for label, p in zip(labels, periods, strict=True):
        for w in p["simulation"]["workloads"]:
            rows.append((label, w["workload"], w["requests"], w["ttft_at_target_ms"],
                         w["ttft_target_ms"], w["tpot_ms"]["mean"], w["tpot_target_ms"],
                         w["attainment_both"], w["meets_slo"]))
    met = sum(bool(p["simulation"].get("meets_slo")) for p in periods)
    text = (f"{met} of {len(periods)} periods meet every SLO in simulation (each period "
            f"simulated alone at its demand with its serving counts; from {source}).")
    table = Table("simulated against targets, period by period",
                  ("period", "workload", "requests", "ttft at target", "ttft target",
                   "tpot mean", "tpot target", "both ok", "meets"), rows)
    missing = any(v is None for panel in (ttft, tpot) for vs in panel.values() for v in vs)
    notes = ["a red cross at the top: a statistic the simulation did not reach (requests "
             "unfinished, or none measured)"] if missing else []
    return Section("Simulation, period by period", [text], [chart], [table], notes)
