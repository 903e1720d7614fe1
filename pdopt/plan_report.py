"""A plan as a `Report` (tables for people, `Plan.to_dict()` for machines)."""

from __future__ import annotations

from pdopt.plan import Plan
from pdopt.report import Report, Table, fmt_gap
from pdopt.routing import routing_rows


def plan_report(plan: Plan) -> Report:
    """Pools, workloads and totals of a plan; for a plan-less outcome, the diagnosis."""
    data = plan.to_dict()
    if not plan.has_plan:
        rows = [(k + 1, reason) for k, reason in enumerate(plan.diagnosis)]
        return Report(data, [Table(f"{plan.scenario}: {plan.status}", ("#", "reason"), rows)])
    pools = Table(
        f"{plan.scenario}: {plan.status}, ${plan.cost_per_hour:,.2f}/hour, {plan.total_gpus} GPUs",
        ("pool", "model", "role", "gpu", "gpus/inst", "count", "utilization", "requests/s",
         "kv_util"),
        [(p.instance, p.model, p.role, p.gpu, p.gpus_per_instance, p.count,
          p.utilization, sum(p.routed_requests_per_s.values()), p.kv_utilization)
         for p in plan.pools],
    )
    workloads = Table(
        "workloads: predicted at the plan's load vs targets",
        ("workload", "model", "requests/s", "ttft_ms", "ttft_target", "ttft_percentile",
         "tpot_ms", "tpot_target"),
        [(w.workload, w.model, w.demand_requests_per_s, w.expected_ttft_ms, w.ttft_target_ms,
          w.ttft_percentile, w.expected_tpot_ms, w.tpot_target_ms) for w in plan.workloads],
    )
    routing = Table(
        "routing weights: each workload's share per prefill pool, then per decode pool of what "
        "that prefill pool takes",
        ("workload", "prefill pool", "share", "decode pool", "decode share"),
        routing_rows(plan.flows, [w.workload for w in plan.workloads]))
    by_type: dict[str, float] = {}
    for p in plan.pools:
        by_type[p.gpu] = by_type.get(p.gpu, 0.0) + p.cost_per_hour
    totals = Table(
        "totals by GPU type",
        ("gpu", "gpus", "cost_per_hour"),
        [(g, n, by_type[g]) for g, n in plan.gpus_by_type.items()]
        + [("total", plan.total_gpus, plan.cost_per_hour)],
    )
    gap = fmt_gap(plan.mip_gap)
    bound = "-" if plan.dual_bound is None else f"{plan.dual_bound:,.6g}"
    notes = [f"objective: {plan.objective}; dual bound {bound}; gap {gap}; "
             f"build {plan.build_seconds:.3f} s, solve {plan.solve_seconds:.3f} s"]
    notes += plan.messages
    if plan.estimated:
        notes.append(f"unmeasured: {len(plan.estimated)} pools use estimated numbers ("
                     + ", ".join(plan.estimated) + "); their sources are in the JSON's "
                     "`estimated`")
    from pdopt.horizon_report import horizon_tables

    extra, horizon_notes = horizon_tables(plan)
    return Report(data, [pools, workloads, routing, totals, *extra], notes + horizon_notes)
