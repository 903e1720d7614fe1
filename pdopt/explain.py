"""Why this GPU: for each model, the cheapest plan on each single GPU type and on the best
prefill/decode pair of GPU types, next to the plan's choice (docs/cli.md, `pdopt solve
--explain`).

An alternative for model m re-solves m alone on a restricted copy of the prepared scenario: m's
instance types and workloads only, its placement narrowed with `models.<m>.allowed_prefill_gpus`
and `allowed_decode_gpus` (on top of any restriction the scenario already has), every other model
held at the plan: the GPU inventory (`gpus.<g>.count`) and the budget are reduced by what the
other models use in the plan. So the difference of an alternative is what moving m alone would
cost, and the alternatives of several models do not add up to a fleet when inventory or budget
binds. The solver runs with the plan's objective, time limit and gap.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any, Literal

from pdopt.plan import Objective, Plan, PlanTotals
from pdopt.report import Report, Table
from pdopt.scenario.prepare import PreparedScenario, prepare
from pdopt.scenario.problems import Problem, ScenarioError
from pdopt.scenario.schema import ModelSpec, Scenario

AlternativeKind = Literal["chosen", "single", "pair"]
SolveFn = Callable[..., Plan]


@dataclass
class Alternative:
    """One model's cheapest plan under one GPU restriction (or the plan's own choice)."""

    model: str
    kind: AlternativeKind  # chosen: the plan's pools of the model; single: one GPU type; pair
    label: str  # "H100", "L40S prefill + H100 decode", or the chosen composition
    prefill_gpus: list[str]
    decode_gpus: list[str]
    status: str  # the restricted solve's status (chosen: the plan's)
    cost_per_hour: float | None  # of this model's pools
    total_gpus: int | None
    difference_per_hour: float | None  # cost_per_hour - the chosen cost of the model
    difference_gpus: int | None
    counts: dict[str, int]  # instances per instance type
    reason: str | None = None  # why there is no plan (first line of the diagnosis)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


DAY_PLAN_REFUSAL = ("not computed for day plans (periods, reserved or spot capacity, spares): the "
                    "alternatives are static one-period plans and would be compared with one "
                    "period at on-demand prices; solve without --explain")


def _usable_gpus(scenario: Scenario, model: str, role: str) -> list[str]:
    """GPU types with an instance type of `model` in `role` that the scenario allows."""
    spec = scenario.models.get(model) or ModelSpec()
    role_list = spec.allowed_prefill_gpus if role == "prefill" else spec.allowed_decode_gpus
    out: list[str] = []
    for inst in scenario.instances:
        if inst.model != model or inst.role != role or inst.gpu in out:
            continue
        if all(lst is None or inst.gpu in lst for lst in (spec.allowed_gpus, role_list)):
            out.append(inst.gpu)
    return sorted(out)


def _linked(scenario: Scenario, prefill_gpu: str, decode_gpu: str) -> bool:
    """Can KV move from prefill_gpu to decode_gpu (a link or a default bandwidth)?"""
    kv = scenario.kv_transfer
    return kv.default_gbit_per_s is not None or any(
        link.prefill_gpu == prefill_gpu and link.decode_gpu == decode_gpu for link in kv.links)


def restricted_scenario(prepared: PreparedScenario, plan: Plan, model: str,
                        prefill_gpu: str, decode_gpu: str) -> PreparedScenario:
    """`model` alone, prefill on `prefill_gpu` and decode on `decode_gpu`, with the inventory
    and budget left over by the plan's other models."""
    sc = prepared.scenario
    others = [p for p in plan.pools if p.model != model]
    gpus = {}
    for name, gpu in sc.gpus.items():
        if gpu.count is None:
            gpus[name] = gpu
            continue
        used = sum(p.count * p.gpus_per_instance for p in others if p.gpu == name)
        gpus[name] = gpu.model_copy(update={"count": max(gpu.count - used, 0)})
    spec = sc.models.get(model) or ModelSpec()
    spec = spec.model_copy(update={"allowed_prefill_gpus": [prefill_gpu],
                                   "allowed_decode_gpus": [decode_gpu]})
    budget = sc.budget_per_hour
    if budget is not None:
        budget = budget - sum(p.cost_per_hour for p in others)
    label = prefill_gpu if prefill_gpu == decode_gpu else f"{prefill_gpu}+{decode_gpu}"
    restricted = sc.model_copy(update={
        "name": f"{sc.name} [{model} on {label}]",
        "gpus": gpus,
        "instances": [i for i in sc.instances if i.model == model],
        "workloads": [w for w in sc.workloads if w.model == model],
        "models": {model: spec},
        "budget_per_hour": budget,
    })
    return prepared.with_scenario(restricted)


def _composition(gpus: list[str], role: str) -> str:
    return f"{'+'.join(gpus)} {role}" if gpus else f"no {role}"


def chosen_alternative(plan: Plan, model: str) -> Alternative:
    pools = [p for p in plan.pools if p.model == model and p.count > 0]
    prefill = sorted({p.gpu for p in pools if p.role == "prefill"})
    decode = sorted({p.gpu for p in pools if p.role == "decode"})
    label = prefill[0] if prefill == decode and len(prefill) == 1 else (
        f"{_composition(prefill, 'prefill')} + {_composition(decode, 'decode')}")
    totals = PlanTotals.of(pools)
    return Alternative(
        model=model, kind="chosen", label=label, prefill_gpus=prefill, decode_gpus=decode,
        status=plan.status, cost_per_hour=totals.cost_per_hour, total_gpus=totals.total_gpus,
        difference_per_hour=0.0, difference_gpus=0,
        counts={p.instance: p.count for p in pools})


def _alternative(model: str, kind: AlternativeKind, prefill_gpu: str, decode_gpu: str,
                 result: Plan, chosen: Alternative) -> Alternative:
    label = prefill_gpu if kind == "single" else f"{prefill_gpu} prefill + {decode_gpu} decode"
    if not result.has_plan:
        return Alternative(model, kind, label, [prefill_gpu], [decode_gpu], result.status,
                           None, None, None, None, {},
                           result.diagnosis[0] if result.diagnosis else None)
    cost = result.cost_per_hour or 0.0
    gpus = result.total_gpus or 0
    return Alternative(
        model, kind, label, [prefill_gpu], [decode_gpu], result.status, cost, gpus,
        cost - (chosen.cost_per_hour or 0.0), gpus - (chosen.total_gpus or 0),
        {p.instance: p.count for p in result.pools if p.count > 0})


def explain(scenario: PreparedScenario | Scenario | str, plan: Plan, *,
            solve: SolveFn | None = None, time_limit_s: float | None = None,
            mip_gap: float | None = None, include_pairs: bool = True) -> list[Alternative]:
    """For each model of the plan: the chosen composition, the cheapest plan on each single GPU
    type that has both a prefill and a decode instance type of the model, and the cheapest
    plan on a prefill/decode pair of different GPU types (the best of all linked pairs; when none
    has a plan, one entry says so with the first pair's reason). Empty for a plan-less
    outcome.

    `solve` is `pdopt.optimize.solve` unless given (tests inject a counting wrapper)."""
    prepared = prepare(scenario)
    sc = prepared.scenario
    if sc.plans_horizon:
        raise ScenarioError([Problem("--explain", DAY_PLAN_REFUSAL)])
    if not plan.has_plan:
        return []
    if solve is None:
        from pdopt.optimize import solve as optimize_solve  # Pyomo loads only here

        solve = optimize_solve
    out: list[Alternative] = []
    models = list(dict.fromkeys(w.model for w in sc.workloads))

    def run(model: str, prefill_gpu: str, decode_gpu: str) -> Plan:
        return solve(restricted_scenario(prepared, plan, model, prefill_gpu, decode_gpu),
                     objective=plan.objective, time_limit_s=time_limit_s, mip_gap=mip_gap)

    for model in models:
        chosen = chosen_alternative(plan, model)
        out.append(chosen)
        prefill, decode = _usable_gpus(sc, model, "prefill"), _usable_gpus(sc, model, "decode")
        for gpu in sorted(set(prefill) & set(decode)):
            out.append(_alternative(model, "single", gpu, gpu, run(model, gpu, gpu), chosen))
        if not include_pairs:
            continue
        pairs = [(p, d) for p in prefill for d in decode if p != d and _linked(sc, p, d)]
        tried = [_alternative(model, "pair", p, d, run(model, p, d), chosen) for p, d in pairs]
        solved = [a for a in tried if a.cost_per_hour is not None]
        if solved:
            key = (lambda a: (a.total_gpus, a.cost_per_hour)) \
                if plan.objective == Objective.GPUS else (lambda a: (a.cost_per_hour, a.total_gpus))
            out.append(min(solved, key=key))
        elif tried:  # one line for all: none of the pairs has a plan
            first = tried[0]
            out.append(Alternative(
                model, "pair", f"no P/D pair of {len(tried)} has a plan",
                sorted({a.prefill_gpus[0] for a in tried}),
                sorted({a.decode_gpus[0] for a in tried}), first.status, None, None, None, None,
                {}, f"{first.label}: {first.reason}" if first.reason else None))
    return out


ALTERNATIVES_COLUMNS = ("model", "restriction", "gpus", "status", "cost_per_hour",
                        "vs_chosen", "total_gpus", "instances / reason")


def alternatives_table_rows(alternatives: list[Alternative]) -> list[tuple[Any, ...]]:
    """Rows of the "why this GPU" table (model, GPUs, status, $/hour, difference, GPUs, counts)."""
    rows = []
    for a in alternatives:
        what = {"chosen": "chosen", "single": "one type", "pair": "P/D pair"}[a.kind]
        counts = ", ".join(f"{n} x {name}" for name, n in sorted(a.counts.items()))
        rows.append((a.model, what, a.label, a.status, a.cost_per_hour, a.difference_per_hour,
                     a.total_gpus, counts or (a.reason or "-")))
    return rows


def alternatives_table(alternatives: list[Alternative]) -> Table:
    return Table("why this GPU: each model's cheapest plan on one GPU type and on the best "
                 "prefill/decode pair (other models as planned)", ALTERNATIVES_COLUMNS,
                 alternatives_table_rows(alternatives))


def alternatives_from_dicts(data: list[dict[str, Any]]) -> list[Alternative]:
    """Alternatives read back from a plan JSON's `alternatives`."""
    return [Alternative(**d) for d in data]


def add_alternatives(report: Report, alternatives: list[Alternative]) -> Report:
    """A plan's report with its alternatives: `alternatives` in the JSON, the table after the
    plan's tables."""
    report.data["alternatives"] = [a.to_dict() for a in alternatives]
    if alternatives:
        report.tables.append(alternatives_table(alternatives))
    return report
