"""Routing weights from a plan's flows, and numbers printed as people read them."""

from __future__ import annotations

import pytest

from pdopt.plan import Flow
from pdopt.report import Report, Table, fmt_cell, fmt_gap, render
from pdopt.routing import routing_rows, routing_weights


def test_routing_weights_by_hand() -> None:
    """chat: 6 req/s on pre-a (4 to dec-a, 2 to dec-b), 2 on pre-b (all to dec-b)."""
    flows = [Flow("chat", "pre-a", "dec-a", 4.0, 0.0), Flow("chat", "pre-a", "dec-b", 2.0, 1.5),
             Flow("chat", "pre-b", "dec-b", 2.0, 0.0), Flow("code", "pre-b", "dec-b", 1.0, 0.0)]
    w = routing_weights(flows)
    assert w["chat"]["prefill"] == {"pre-a": 0.75, "pre-b": 0.25}
    assert w["chat"]["decode"]["pre-a"] == pytest.approx({"dec-a": 2 / 3, "dec-b": 1 / 3})
    assert w["chat"]["decode"]["pre-b"] == {"dec-b": 1.0}
    assert w["code"] == {"prefill": {"pre-b": 1.0}, "decode": {"pre-b": {"dec-b": 1.0}}}
    assert routing_rows(flows, ["code", "chat"])[0] == ("code", "pre-b", 1.0, "dec-b", 1.0)


def test_plan_json_carries_routing_weights(paper_scenario_path: object) -> None:
    from pdopt.optimize import solve
    from pdopt.plan_report import plan_report

    plan = solve(paper_scenario_path)  # type: ignore[arg-type]
    data = plan_report(plan).data
    chat = data["routing"][plan.workloads[0].workload]
    assert sum(chat["prefill"].values()) == pytest.approx(1.0)
    for onward in chat["decode"].values():
        assert sum(onward.values()) == pytest.approx(1.0)


@pytest.mark.parametrize("value,column,text", [
    (127.68, "$/hour", "127.68"), (127.68, "cost_per_hour", "127.68"),
    (1234.5, "cost_per_hour", "1,234.50"), (1.0, "utilization", "1.00"),
    (0.8567, "kv_util", "0.86"), (1.781e-16, "mip_gap", "0"), (3.2e-15, "requests/s", "0"),
    (0.5, "", "0.5"), (-2, "price_gpus", "-2"), (12, "total_gpus", "12"),
    (1500.0, "ttft_target", "1,500"), (None, "cost", "-"),
])
def test_cells_as_people_read_them(value: object, column: str, text: str) -> None:
    assert fmt_cell(value, column) == text


def test_gap_noise_is_zero() -> None:
    assert fmt_gap(3.61e-16) == "0%" and fmt_gap(0.0123) == "1.23%" and fmt_gap(None) == "-"


def test_csv_keeps_numbers() -> None:
    report = Report({}, [Table("t", ("workload", "ttft_target", "ttft_percentile"),
                               [("chat", 1500.0, 90.0), ("code", 800.0, None)])])
    assert render(report, "csv").splitlines()[1:] == ["chat,1500.0,90.0", "code,800.0,"]
