"""What `pdopt report` shows: the sections of a report document for a plan (and its scenario),
its alternatives (why this GPU), a batch folder's sweeps and a simulation (docs/cli.md).

Cost per workload (Eqs. W1-W2 in docs/cli.md, `pdopt report`): each pool's $/hour is split over
the workloads it serves in proportion to the tokens they bring to it, input tokens on a prefill pool
and output tokens on a decode pool (by requests when the scenario, and so the lengths, is not
known). A workload's $ per million input tokens is its share of prefill pools over its input
tokens per hour at its demand (without headroom), and per million output tokens its share of
decode pools over its output tokens per hour.
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from pdopt import figures
from pdopt.document import Section
from pdopt.errors import PdoptError
from pdopt.explain import Alternative, alternatives_table
from pdopt.inputfiles import FileTooLargeError, InputFileError, read_limited
from pdopt.plan import Plan
from pdopt.plan_report import plan_report
from pdopt.report import Report, Table
from pdopt.scenario.schema import Scenario


class ReportInputError(PdoptError):
    """A file or folder `pdopt report` cannot read."""


# --- cost per workload ----------------------------------------------------------------------

@dataclass
class WorkloadCost:
    workload: str
    model: str
    prefill_cost_per_hour: float
    decode_cost_per_hour: float
    requests_per_s: float | None  # demand without headroom (None: scenario unknown)
    input_tokens: int | None
    output_tokens: int | None

    @property
    def cost_per_hour(self) -> float:
        return self.prefill_cost_per_hour + self.decode_cost_per_hour

    def per_million(self, role: str) -> float | None:
        """$ per million input (prefill) or output (decode) tokens (Eq. W2)."""
        tokens = self.input_tokens if role == "prefill" else self.output_tokens
        if self.requests_per_s is None or tokens is None or self.requests_per_s <= 0:
            return None
        cost = self.prefill_cost_per_hour if role == "prefill" else self.decode_cost_per_hour
        return cost * 1e6 / (self.requests_per_s * tokens * 3600)

    @property
    def per_million_total(self) -> float | None:
        if self.requests_per_s is None or self.input_tokens is None or self.output_tokens is None:
            return None
        tokens = self.requests_per_s * (self.input_tokens + self.output_tokens) * 3600
        return self.cost_per_hour * 1e6 / tokens if tokens > 0 else None


def workload_costs(plan: Plan, scenario: Scenario | None,
                   rates: dict[str, float] | None = None) -> list[WorkloadCost]:
    """Each workload's share of the plan's cost (Eq. W1); `rates`: the requests/s (without
    headroom) the plan serves when not the scenario's (a period of a day plan)."""
    lengths: dict[str, tuple[int, int, float]] = {}
    if scenario is not None:
        lengths = {w.name: (w.input_tokens, w.output_tokens,
                            w.rate_requests_per_s if rates is None else rates[w.name])
                   for w in scenario.workloads}
    shares = {w.workload: [0.0, 0.0] for w in plan.workloads}
    for pool in plan.pools:
        k = 0 if pool.role == "prefill" else 1
        weights = {}
        for name, rps in pool.routed_requests_per_s.items():
            if name not in shares:
                continue
            tokens = lengths[name][k] if name in lengths else 1
            weights[name] = rps * tokens
        total = sum(weights.values())
        for name, weight in weights.items():
            if total > 0:
                shares[name][k] += pool.cost_per_hour * weight / total
    out = []
    for w in plan.workloads:
        inp, outp, rate = lengths.get(w.workload, (None, None, None))
        out.append(WorkloadCost(w.workload, w.model, shares[w.workload][0],
                                shares[w.workload][1], rate, inp, outp))
    return out


# --- the plan -------------------------------------------------------------------------------

def _pd_ratio_rows(plan: Plan) -> list[tuple[Any, ...]]:
    rows = []
    for model in dict.fromkeys(p.model for p in plan.pools):
        pools = [p for p in plan.pools if p.model == model and p.count > 0]
        pre = sum(p.count for p in pools if p.role == "prefill")
        dec = sum(p.count for p in pools if p.role == "decode")
        pre_g = sum(p.count * p.gpus_per_instance for p in pools if p.role == "prefill")
        dec_g = sum(p.count * p.gpus_per_instance for p in pools if p.role == "decode")
        rows.append((model, pre, dec, pre / dec if dec else None, pre_g, dec_g,
                     pre_g / dec_g if dec_g else None))
    return rows


def plan_sections(plan: Plan, scenario: Scenario | None = None,
                  alternatives: Sequence[Alternative] | None = None) -> list[Section]:
    """The plan: cost by model, GPU type and role; counts and utilisation per pool; predicted
    latency against targets; cost per workload and per million tokens; P/D ratio; alternatives.
    A day plan (periods): the day first (pdopt.day_document), then its dearest period."""
    base = plan_report(plan)
    if not plan.has_plan:
        return [Section(f"Plan: {plan.status}", ["No plan: " + "; ".join(plan.diagnosis)],
                        tables=base.tables)]
    from pdopt import day_document as day

    if day.is_day_plan(plan):
        sections = [day.day_section(plan, scenario), _dearest_period_section(plan, scenario, base)]
        if alternatives:
            sections[0].notes.append(
                "why this GPU (the plan's `alternatives`) is not shown: it compares plans for "
                "one steady rate, not over the periods")
        return sections
    gap = "-" if plan.mip_gap is None else f"{100 * plan.mip_gap:.3g}%"
    summary = (f"{plan.status} plan minimising {plan.objective}: ${plan.cost_per_hour:,.2f} per "
               f"hour (${24 * 30 * (plan.cost_per_hour or 0):,.0f} per 30 days), "
               f"{plan.total_gpus} GPUs ("
               + ", ".join(f"{n} {g}" for g, n in plan.gpus_by_type.items())
               + f"), gap to the bound {gap}.")
    sections = [plan_section(plan, scenario, base, "Plan", summary)]
    if alternatives:
        sections.append(alternatives_section(list(alternatives)))
    return sections


def _dearest_period_section(plan: Plan, scenario: Scenario | None, base: Report) -> Section:
    """A day plan's top-level pools (its dearest period's) as a plan's section, without what the
    day section shows: the horizon's tables, and the totals by GPU type (whose $/hour would be
    the horizon's average beside the period's pools)."""
    from pdopt import day_document as day
    from pdopt.horizon_report import horizon_tables

    shown_in_day, day_notes = horizon_tables(plan)
    titles = {t.title for t in shown_in_day} | {"totals by GPU type"}
    top = plan.periods[day.dearest_period(plan)]
    tables = [replace(t, title=f"period {top.index}: serving pools (spares not counted)")
              if t.columns[0] == "pool" else t for t in base.tables if t.title not in titles]
    trimmed = Report(base.data, tables, [n for n in base.notes if n not in day_notes])
    return plan_section(plan, scenario, trimmed, f"Dearest period: period {top.index}",
                        day.period_plan_note(plan), day.dearest_period_rates(plan, scenario))


def plan_section(plan: Plan, scenario: Scenario | None, base: Report, title: str,
                 summary: str, rates: dict[str, float] | None = None) -> Section:
    """The figures and tables of the plan's pools (`base`: its `plan_report`)."""
    pools = [p for p in plan.pools if p.count > 0]
    models = list(dict.fromkeys(p.model for p in pools))
    series: dict[str, list[float]] = {}
    hatches: dict[str, str] = {}
    colours: dict[str, str] = {}
    gpu_types = sorted({p.gpu for p in pools})
    for p in sorted(pools, key=lambda p: (p.gpu, p.role != "prefill")):
        key = f"{p.gpu} {p.role}"
        series.setdefault(key, [0.0] * len(models))[models.index(p.model)] += p.cost_per_hour
        hatches[key] = figures.ROLE_HATCH[p.role]
        colours[key] = figures.PALETTE[gpu_types.index(p.gpu) % len(figures.PALETTE)]
    charts = [
        figures.stacked_bars("cost", "Cost by model, GPU type and role ($/hour)", models, series,
                             "$/hour", money=True, horizontal=True, hatches=hatches,
                             colours=colours),
        figures.stacked_bars(
            "instances", "Instances per pool",
            [f"{p.instance} ({p.gpus_per_instance} GPU{'s' if p.gpus_per_instance > 1 else ''})"
             for p in pools],
            {role: [float(p.count if p.role == role else 0) for p in pools]
             for role in ("prefill", "decode")}, "instances", horizontal=True,
            colours={"prefill": figures.PALETTE[0], "decode": figures.PALETTE[1]}),
        figures.utilization_bars("utilization", "Utilisation per pool against its "
                                 "SLO-constrained capacity", [p.instance for p in pools],
                                 [p.utilization for p in pools], [p.role for p in pools]),
    ]
    if plan.workloads:
        pct = {w.ttft_percentile for w in plan.workloads}
        label = "TTFT" if pct == {None} else "TTFT (mean or the target's percentile)"
        charts.append(figures.latency_vs_targets(
            "latency", "Predicted TTFT and TPOT per workload against targets",
            [w.workload for w in plan.workloads],
            [(w.expected_ttft_ms, w.ttft_target_ms) for w in plan.workloads],
            [(w.expected_tpot_ms, w.tpot_target_ms) for w in plan.workloads], label))
    costs = workload_costs(plan, scenario, rates)
    cost_table = Table(
        "cost per workload (each pool's cost split by the tokens each workload brings to it)",
        ("workload", "model", "requests/s", "$/hour", "prefill $/hour", "decode $/hour",
         "$/M input tokens", "$/M output tokens", "$/M tokens"),
        [(c.workload, c.model, c.requests_per_s, c.cost_per_hour, c.prefill_cost_per_hour,
          c.decode_cost_per_hour, c.per_million("prefill"), c.per_million("decode"),
          c.per_million_total) for c in costs])
    ratio = Table("P/D ratio per model", ("model", "prefill instances", "decode instances",
                                          "P/D (instances)", "prefill GPUs", "decode GPUs",
                                          "P/D (GPUs)"), _pd_ratio_rows(plan))
    notes = list(base.notes)
    if scenario is None:
        notes.append("cost per workload is split by requests and $ per million tokens is not "
                     "shown: the plan's file has no request lengths (give --scenario)")
    return Section(title, [summary], charts, [*base.tables, cost_table, ratio], notes)


def alternatives_section(alternatives: list[Alternative]) -> Section:
    models = list(dict.fromkeys(a.model for a in alternatives))
    rows = [[(a.label, a.cost_per_hour, a.kind == "chosen") for a in alternatives
             if a.model == m] for m in models]
    chart = figures.alternatives_bars("why-this-gpu", "Why this GPU: the chosen plan against "
                                      "one GPU type and the best prefill/decode pair", models,
                                      rows)
    text = ("For each model, the cheapest plan restricted to each single GPU type and to the "
            "best pair of a prefill and a decode GPU type, solved with the other models held at "
            "the plan (their GPUs and budget are not available).")
    return Section("Why this GPU", [text], [chart], [alternatives_table(alternatives)])


# --- batch folders --------------------------------------------------------------------------

#: A summary row is under 2 kB: room for 100,000 rows (one sweep file's limit) many times over.
MAX_SUMMARY_BYTES = 256 * 1024 * 1024


def read_summary(folder: Path) -> list[dict[str, Any]]:
    path = folder / "summary.jsonl"
    try:  # a regular file of bounded size: a FIFO cannot block, /dev/zero is refused
        lines = read_limited(path, MAX_SUMMARY_BYTES, "batch summaries").decode(
            "utf-8").splitlines()
    except FileTooLargeError as e:
        raise ReportInputError(f"{path}: {e}") from None
    except InputFileError as e:
        raise ReportInputError(f"{path}: cannot read file: {e} (is {folder} a "
                               "pdopt batch output folder?)") from None
    except UnicodeDecodeError as e:
        raise ReportInputError(f"{path}: not UTF-8 text (bad byte at offset {e.start})"
                               ) from None
    rows = []
    for k, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError as e:
            raise ReportInputError(f"{path}: line {k}: not valid JSON ({e})") from None
        if not isinstance(row, dict) or "params" not in row:
            raise ReportInputError(f"{path}: line {k}: not a pdopt batch summary row")
        rows.append(row)
    if not rows:
        raise ReportInputError(f"{path}: no rows")
    return rows


def _sort_key(v: Any) -> tuple[int, Any]:
    if isinstance(v, int | float) and not isinstance(v, bool):
        return (0, v)
    return (1, str(v))


def _label(params: dict[str, Any]) -> str:
    return ", ".join(f"{k}={v:g}" if isinstance(v, float) else f"{k}={v}"
                     for k, v in params.items())


def batch_sections(folder: Path) -> list[Section]:
    """Cost and GPUs against each swept parameter (one curve per setting of the others), the
    GPU types bought along the sweep, and every variant's row."""
    rows = read_summary(folder)
    params = list(dict.fromkeys(k for r in rows for k in r["params"]))
    types = sorted({g for r in rows for g in r.get("gpus_by_type") or {}})
    solved = [r for r in rows if r.get("cost_per_hour") is not None]
    failed = len(rows) - len(solved)
    text = (f"{len(rows)} variants from {folder}: {len(solved)} with a plan"
            + (f", {failed} without (status in the table)" if failed else "") + ".")
    charts: list[figures.Chart] = []
    for param in params:
        others = [p for p in params if p != param]
        xs = sorted({r["params"].get(param) for r in rows if param in r["params"]},
                    key=_sort_key)
        groups: dict[str, dict[Any, dict[str, Any]]] = {}
        for r in rows:
            if param not in r["params"]:
                continue
            key = _label({p: r["params"].get(p) for p in others})
            groups.setdefault(key, {})[r["params"][param]] = r
        lines = {}
        for key, by_x in groups.items():
            lines[key] = ([by_x[x].get("cost_per_hour") if x in by_x else None for x in xs],
                          [by_x[x].get("total_gpus") if x in by_x else None for x in xs])
        composition = None
        if len(groups) == 1:
            (by_x,) = groups.values()
            composition = {g: [float((by_x.get(x) or {}).get("gpus_by_type", {}).get(g, 0))
                               for x in xs] for g in types}
        grid = None
        if len(groups) > 1:
            grid = {key: [None if x not in by_x else
                          ({} if by_x[x].get("total_gpus") is None
                           else dict(by_x[x].get("gpus_by_type") or {})) for x in xs]
                    for key, by_x in groups.items()}
        charts.append(figures.sweep_curves(
            f"sweep-{len(charts) + 1}", f"Cost and GPUs against {param}", param, xs, lines,
            composition, grid))
    table = Table("variants", ("id", *params, "status", "cost_per_hour", "total_gpus",
                               *(f"gpus.{g}" for g in types)),
                  [(r["id"], *(r["params"].get(p) for p in params), r["status"],
                    r.get("cost_per_hour"), r.get("total_gpus"),
                    *((r.get("gpus_by_type") or {}).get(g, 0 if r.get("total_gpus") is not None
                                                        else None) for g in types))
                   for r in rows])
    notes = [] if params else ["the batch swept no parameter: no curves"]
    return [Section("Sweeps", [text], charts, [table], notes)]


# --- simulation -----------------------------------------------------------------------------

def simulation_of(data: Any, source: str) -> dict[str, Any]:
    """The simulation result in `pdopt simulate --format json` or `pdopt verify --format json`
    output (verify: the plan's own simulation; a day plan's: every period's)."""
    if isinstance(data, dict) and isinstance(data.get("workloads"), list) and "options" in data:
        return data
    from pdopt.day_document import is_day_simulation

    if is_day_simulation(data):  # of a day plan: one simulation per period
        return data
    if isinstance(data, dict) and isinstance(data.get("plan"), dict) and isinstance(
            data["plan"].get("simulation"), dict):
        return data["plan"]["simulation"]
    raise ReportInputError(f"{source}: not the JSON of `pdopt simulate` or `pdopt verify` "
                           "(--format json)")


def simulation_sections(sim: dict[str, Any], source: str) -> list[Section]:
    from pdopt.day_document import day_simulation_section, is_day_simulation
    from pdopt.simulate.metrics import CDF_LEVELS

    if is_day_simulation(sim):
        return [day_simulation_section(sim, source)]

    workloads = sim["workloads"]
    names = [w["workload"] for w in workloads]
    charts = []
    notes = []
    if all(w.get("ttft_quantiles_ms") for w in workloads):
        charts.append(figures.latency_cdfs(
            "latency-cdf", "Simulated latency CDFs per workload against targets (dashed)",
            names,
            [(w["ttft_quantiles_ms"], w["ttft_target_ms"], w.get("ttft_percentile"))
             for w in workloads],
            [(w.get("tpot_quantiles_ms") or [], w["tpot_target_ms"]) for w in workloads],
            CDF_LEVELS))
    else:
        notes.append(f"{source} has no quantile arrays (written by an older pdopt): no CDFs; "
                     "run pdopt simulate again")

    def _num(v: Any) -> float:
        return math.inf if v is None else float(v)

    table = Table(
        "simulated against targets",
        ("workload", "requests", "ttft target", "ttft target percentile", "ttft at target",
         "ttft p99", "tpot target", "tpot mean", "tpot p99", "both ok", "meets"),
        [(w["workload"], w["requests"], w["ttft_target_ms"], w.get("ttft_percentile"),
          _num(w["ttft_at_target_ms"]), _num(w["ttft_ms"]["p99"]),
          w["tpot_target_ms"], _num(w["tpot_ms"]["mean"]), _num(w["tpot_ms"]["p99"]),
          w["attainment_both"], w["meets_slo"]) for w in workloads])
    text = (f"{sim.get('source', '?')} arrivals, seed {sim.get('options', {}).get('seed')}; "
            f"SLOs met in simulation: {'yes' if sim.get('meets_slo') else 'no'}.")
    return [Section("Simulation", [text], charts, [table], notes + list(sim.get("messages", [])))]
