"""Routing weights of a plan: what a router (Dynamo, llm-d, SGLang router) is configured with.

Per workload, the share of its requests each prefill pool takes, and from each prefill pool the
share of what it prefilled that each decode pool takes; both from the plan's flows (requests/s of
one workload prefilled on one pool and decoded on another).
"""

from __future__ import annotations

from collections import defaultdict
from typing import Any

from pdopt.plan import Flow


def routing_weights(flows: list[Flow]) -> dict[str, dict[str, Any]]:
    """{workload: {"prefill": {pool: share}, "decode": {prefill pool: {decode pool: share}}}};
    every share in 0..1, each set of shares adds up to 1."""
    by_w: dict[str, dict[str, dict[str, float]]] = defaultdict(lambda: defaultdict(dict))
    for f in flows:
        pairs = by_w[f.workload][f.prefill_instance]
        pairs[f.decode_instance] = pairs.get(f.decode_instance, 0.0) + f.requests_per_s
    out: dict[str, dict[str, Any]] = {}
    for w, by_prefill in by_w.items():
        through = {p: sum(d.values()) for p, d in by_prefill.items()}
        total = sum(through.values())
        out[w] = {
            "prefill": {p: through[p] / total for p in sorted(through)},
            "decode": {p: {d: rate / through[p] for d, rate in sorted(by_prefill[p].items())}
                       for p in sorted(by_prefill)},
        }
    return out


def routing_rows(flows: list[Flow], order: list[str] | None = None) -> list[tuple[Any, ...]]:
    """Rows (workload, prefill pool, share of the workload, decode pool, share of that prefill
    pool's requests), workloads in `order` when given."""
    weights = routing_weights(flows)
    names = [w for w in (order or sorted(weights)) if w in weights]
    rows = []
    for w in names:
        for p, share in weights[w]["prefill"].items():
            for d, onward in weights[w]["decode"][p].items():
                rows.append((w, p, share, d, onward))
    return rows
