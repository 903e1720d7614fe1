"""The tables of a plan over a horizon (docs/method.md, section H): counts and cost per period,
the reserved baseline per GPU type, and the comparison with static peak sizing and all on
demand. Used by `pdopt.plan_report` for plans that have `periods`."""

from __future__ import annotations

from pdopt.plan import Plan
from pdopt.report import Table


def horizon_tables(plan: Plan) -> tuple[list[Table], list[str]]:
    """Tables and notes of a horizon plan (none for a plan without periods)."""
    if not plan.periods or plan.total_cost is None:
        return [], []
    pools = sorted({p for period in plan.periods for p in period.counts}
                   | {p for period in plan.periods for p in period.spares})

    def cell(period_counts: dict[str, int], spares: dict[str, int], pool: str) -> str:
        n, k = period_counts.get(pool, 0), spares.get(pool, 0)
        return f"{n}+{k}" if k else str(n)

    periods = Table(
        f"periods: counts per pool (serving+spare), ${plan.total_cost:,.2f} over "
        f"{sum(p.hours for p in plan.periods):g} h",
        ("period", "hours", *pools, "on_demand_gpus", "spot_gpus", "cost", "cost_per_hour"),
        [(p.index, p.hours, *(cell(p.counts, p.spares, name) for name in pools),
          sum(p.on_demand_gpus_by_type.values()), sum(p.spot_gpus_by_type.values()),
          f"{p.cost:,.2f}", f"{p.cost_per_hour:,.2f}") for p in plan.periods])
    tables = [periods]
    if plan.reserved_gpus_by_type:
        tables.append(Table("reserved baseline (every period)", ("gpu", "reserved_gpus"),
                            list(plan.reserved_gpus_by_type.items())))
    notes = [f"horizon: ${plan.total_cost:,.2f} in total, ${plan.cost_per_hour:,.2f}/hour on "
             f"average (warm-up ${plan.warm_up_cost:,.2f}); the pools above are the dearest "
             "period's"]
    for key, label in (("static_peak_total_cost", "sized statically for the peak"),
                       ("all_on_demand_total_cost", "all on demand")):
        if key in plan.comparison:
            other = plan.comparison[key]
            saved = "" if other is None else f" (this plan saves " \
                f"{100 * (1 - plan.total_cost / other):.1f}%)"
            gap = plan.comparison.get(key.replace("total_cost", "mip_gap"))
            proven = "" if gap is None else f", within {100 * gap:.2g}% of its bound"
            notes.append(f"vs {label}: " + ("no plan" if other is None else
                                             f"${other:,.2f}{proven}{saved}"))
    return tables, notes
