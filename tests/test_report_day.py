"""`pdopt report` of a day plan (a plan over periods, docs/method.md section H): the numbers of its
tables by hand from the plan's JSON (tests/fixtures/report/day-plan.json, the plan of
day-case.yaml), the documents and the command, and the page in headless Chromium."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest
import yaml
from browser import find_chromium, visit
from click.testing import CliRunner
from test_report_html import PROBE, _self_contained

from pdopt import day_document as day
from pdopt.cli import main
from pdopt.plan import Plan
from pdopt.plan_document import plan_sections
from pdopt.scenario.loading import scenario_from_data
from pdopt.scenario.schema import Scenario

pytest.importorskip("matplotlib", reason="pdopt report needs the report extra (matplotlib)")

FIXTURES = Path(__file__).parent / "fixtures" / "report"
PLAN, SCENARIO = FIXTURES / "day-plan.json", FIXTURES / "day-case.yaml"

EXPECTED_DAY_FIGURES = [
    "Instances per period by pool (hatched: spares)",
    "GPUs per period: reserved, on demand and spot",
    "Cost per period ($/hour) against static peak sizing and all on demand",
    "Cost by model, GPU type and role ($/hour)", "Instances per pool",
    "Utilisation per pool against its SLO-constrained capacity",
    "Predicted TTFT and TPOT per workload against targets",
]

SIMULATION_FIGURE = "Simulated latency over target per period (at most 1 meets the SLO)"


def _raw() -> dict[str, Any]:
    return json.loads(PLAN.read_text(encoding="utf-8"))


def _plan(raw: dict[str, Any] | None = None) -> Plan:
    return Plan.from_dict(raw if raw is not None else _raw())


def _scenario(**gpu_changes: dict[str, Any]) -> Scenario:
    data = yaml.safe_load(SCENARIO.read_text(encoding="utf-8"))
    for g, change in gpu_changes.items():
        data["gpus"][g].update(change)
    return scenario_from_data(data)


def _table(tables: list[Any], start: str) -> Any:
    (table,) = [t for t in tables if t.title.startswith(start)]
    return table


# ---- the numbers, by hand from day-plan.json ----------------------------------------------------
# Prices (day-case.yaml): PF on demand 1.00, reserved 0.70, spot 0.40; DM on demand 3.00,
# reserved 2.10. Reserved baseline: 2 DM, 4 PF. Six periods of 4 h.

def test_the_fixture_is_the_plan_these_numbers_are_checked_against() -> None:
    raw = _raw()
    assert raw["reserved_gpus_by_type"] == {"DM": 2, "PF": 4}
    assert [p["counts"] for p in raw["periods"]][3] == {"dec-dm": 2, "pre-pf": 7}
    assert [p["spares"] for p in raw["periods"]][3] == {"dec-dm": 1, "pre-pf": 1}
    assert [(p["on_demand_gpus_by_type"], p["spot_gpus_by_type"]) for p in raw["periods"]] == [
        ({}, {}), ({}, {}), ({"PF": 1}, {"PF": 1}), ({"DM": 1, "PF": 3}, {"PF": 1}),
        ({}, {"PF": 1}), ({}, {})]


def test_cost_per_period_by_purchase_option() -> None:
    plan = _plan()
    prices = day.option_prices(plan, _scenario())
    assert prices is not None
    split = [day.option_cost_per_hour(plan, p, prices) for p in plan.periods]
    reserved = 2 * 2.10 + 4 * 0.70  # 7.00 in every period
    assert [s["reserved"] for s in split] == pytest.approx([reserved] * 6)
    assert [s["on demand"] for s in split] == pytest.approx([0, 0, 1.0, 1 * 3.0 + 3 * 1.0, 0, 0])
    assert [s["spot"] for s in split] == pytest.approx([0, 0, 0.4, 0.4, 0.4, 0])
    # and so the plan's own period costs: 7.00, 7.00, 8.40, 13.40, 7.40, 7.00 $/hour
    assert [p.cost_per_hour for p in plan.periods] == pytest.approx(
        [7.0, 7.0, 8.4, 13.4, 7.4, 7.0])


def test_prices_that_do_not_reproduce_the_plan_are_not_used() -> None:
    plan = _plan()
    assert day.option_prices(plan, None) is None
    assert day.option_prices(plan, _scenario(PF={"reserved": {"cost_per_hour": 0.8}})) is None
    section = day.day_section(plan, _scenario(PF={"reserved": {"cost_per_hour": 0.8}}))
    assert any("do not reproduce" in n for n in section.notes)
    assert "reserved $/hour" not in _table(section.tables, "day plan: GPUs").columns


def test_instances_table() -> None:
    tables = day.day_tables(_plan(), None)
    t = _table(tables, "day plan: instances per period")
    assert list(t.columns) == ["period", "start_h", "hours", "demand m (req/s)", "pre-pf",
                               "dec-dm", "cost", "cost_per_hour"]
    # period 3: chat 6 x 2.5 + rag 2 x 2 = 19 requests/s; 7 serving + 1 spare prefill,
    # 2 + 1 decode; 13.40 $/hour x 4 h
    assert tuple(t.rows[3]) == pytest.approx((3, 12.0, 4.0, 19.0, "7+1", "2+1", 53.6, 13.4))
    assert [r[3] for r in t.rows] == pytest.approx([3 + 2, 4.8 + 2, 9 + 3, 15 + 4, 7.2 + 2,
                                                    3.6 + 2])
    assert [r[4] for r in t.rows] == ["3+1", "3+1", "5+1", "7+1", "4+1", "3+1"]


def test_gpus_table_by_type_and_option() -> None:
    plan = _plan()
    prices = day.option_prices(plan, _scenario())
    t = _table(day.day_tables(plan, prices), "day plan: GPUs")
    assert list(t.columns) == ["period", "DM running", "DM reserved", "DM on demand",
                               "PF running", "PF reserved", "PF on demand", "PF spot",
                               "reserved $/hour", "on demand $/hour", "spot $/hour"]
    # period 3: DM 2+1 running = 2 reserved + 1 on demand; PF 7+1 = 4 + 3 + 1 spot
    assert tuple(t.rows[3]) == pytest.approx((3, 3, 2, 1, 8, 4, 3, 1, 7.0, 6.0, 0.4))
    # period 4: PF 4+1 running on 4 reserved and 1 spot
    assert tuple(t.rows[4]) == pytest.approx((4, 2, 2, 0, 5, 4, 0, 1, 7.0, 0.0, 0.4))
    for row in t.rows:  # what runs is bought
        assert row[1] <= row[2] + row[3] and row[4] <= row[5] + row[6] + row[7]
    # without prices: no $ columns
    assert "spot $/hour" not in _table(day.day_tables(plan, None), "day plan: GPUs").columns


def test_reserved_baseline_table() -> None:
    plan = _plan()
    t = _table(day.day_tables(plan, day.option_prices(plan, _scenario())), "reserved baseline")
    # DM: 2 x 2.10 x 24 h = 100.80, 2..3 running, covered in 5 of 6 periods (not period 3)
    # PF: 4 x 0.70 x 24 h = 67.20, 4..8 running, covered in periods 0, 1, 5
    assert [tuple(r) for r in t.rows] == [
        pytest.approx(("DM", 2, 2.10, 100.80, 2, 3, 5)),
        pytest.approx(("PF", 4, 0.70, 67.20, 4, 8, 3))]


def test_horizon_total_and_comparison() -> None:
    plan = _plan()
    total = 28.0 + 28.0 + 33.6 + 53.6 + 29.6 + 28.0  # 200.80
    assert plan.total_cost == pytest.approx(total)
    t = _table(day.day_tables(plan, None), "cost over the horizon (24 h)")
    assert [tuple(r) for r in t.rows] == [
        pytest.approx(("this day plan", total, total / 24, None, None, plan.mip_gap)),
        pytest.approx(("sized statically for the peak", 278.40, 278.40 / 24, 278.40 - total,
                       100 * (1 - total / 278.40), 0.0)),
        pytest.approx(("all on demand", 280.0, 280.0 / 24, 280.0 - total,
                       100 * (1 - total / 280.0), 0.0))]
    line = day.summary_line(plan)
    assert "$200.80 in total, $8.37 per hour on average" in line
    assert "saves $77.60 (27.9%)" in line and "saves $79.20 (28.3%)" in line


def test_old_plans_without_demand_or_comparison_say_so() -> None:
    raw = _raw()
    for p in raw["periods"]:
        p["demand_requests_per_s"] = {}
    raw["comparison"] = {}
    section = day.day_section(_plan(raw), None)
    assert not any(c.startswith("demand") for c in _table(section.tables, "day plan: inst").columns)
    assert any("no demand line" in n for n in section.notes)
    assert any("no comparison" in n for n in section.notes)
    assert [t.title for t in section.tables][-1].startswith("cost over the horizon")
    assert len(_table(section.tables, "cost over the horizon").rows) == 1


def test_day_plan_sections_and_the_dearest_period() -> None:
    plan, scenario = _plan(), _scenario()
    sections = plan_sections(plan, scenario)
    assert [s.title for s in sections] == ["Day plan", "Dearest period: period 3"]
    assert day.dearest_period(plan) == 3
    assert {p.instance: p.count for p in plan.pools} == plan.periods[3].counts
    titles = [t.title for t in sections[1].tables]
    assert "period 3: serving pools (spares not counted)" in titles
    assert "totals by GPU type" not in titles and not any(t.startswith("periods:")
                                                          for t in titles)
    # cost per workload at the dearest period's demand (chat 15, rag 4 requests/s)
    costs = _table(sections[1].tables, "cost per workload")
    assert [r[2] for r in costs.rows] == pytest.approx([15.0, 4.0])


# ---- a day plan's simulation -------------------------------------------------------------------

@pytest.fixture(scope="module")
def day_simulation(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """`pdopt simulate` of the fixture's day plan, each period for two simulated minutes."""
    path = tmp_path_factory.mktemp("day-sim") / "sim.json"
    result = CliRunner().invoke(main, ["simulate", str(SCENARIO), "--plan", str(PLAN),
                                       "--duration", "120", "--warmup", "20", "--cooldown", "30",
                                       "--format", "json", "-o", str(path)])
    assert result.exit_code == 0, result.output
    return path


def test_day_simulation_over_targets(day_simulation: Path) -> None:
    sim = json.loads(day_simulation.read_text(encoding="utf-8"))
    assert day.is_day_simulation(sim) and not day.is_day_simulation(_raw())
    ttft = day.day_simulation_series(sim, "ttft_at_target_ms", "ttft_target_ms")
    tpot = day.day_simulation_series(sim, "tpot_ms", "tpot_target_ms")
    for t, period in enumerate(sim["periods"]):
        for w in period["simulation"]["workloads"]:  # chat: 1000 ms / 25 ms, rag: 2000 / 40
            target_ttft, target_tpot = {"chat": (1000, 25), "rag": (2000, 40)}[w["workload"]]
            assert ttft[w["workload"]][t] == pytest.approx(w["ttft_at_target_ms"] / target_ttft)
            assert tpot[w["workload"]][t] == pytest.approx(w["tpot_ms"]["mean"] / target_tpot)
    section = day.day_simulation_section(sim, "sim.json")
    met = sum(p["simulation"]["meets_slo"] for p in sim["periods"])
    assert section.paragraphs[0].startswith(f"{met} of 6 periods meet every SLO")
    assert len(section.tables[0].rows) == 6 * 2
    # a statistic not reached is a gap, and the note says what the cross means
    sim["periods"][2]["simulation"]["workloads"][0]["ttft_at_target_ms"] = None
    assert day.day_simulation_series(sim, "ttft_at_target_ms", "ttft_target_ms")["chat"][2] \
        is None
    assert any("red cross" in n for n in day.day_simulation_section(sim, "x").notes)


# ---- the command -----------------------------------------------------------------------------

def _report(args: list[str]) -> Any:
    return CliRunner().invoke(main, ["report", *args])


def _captions(text: str) -> list[str]:
    return [c.replace("&#x27;", "'").replace("&amp;", "&")
            for c in re.findall(r"<figcaption>(.*?)</figcaption>", text)]


def test_html_report_of_a_day_plan(tmp_path: Path) -> None:
    out = tmp_path / "day.html"
    result = _report([str(PLAN), "--scenario", str(SCENARIO), "-o", str(out)])
    assert result.exit_code == 0, result.output
    text = out.read_text(encoding="utf-8")
    _self_contained(text)
    assert _captions(text) == EXPECTED_DAY_FIGURES
    assert text.count("<svg") == len(EXPECTED_DAY_FIGURES)
    for needle in ("reserved baseline per GPU type", "sized statically for the peak",
                   "all GPU types: GPUs", "DM: GPUs", "PF: GPUs", "pre-pf spare",
                   "demand (requests/s, with headroom)", "spot $/hour"):
        assert needle in text, needle


def test_markdown_report_of_a_day_plan_without_scenario(tmp_path: Path) -> None:
    out = tmp_path / "day.md"
    result = _report([str(PLAN), "--format", "markdown", "-o", str(out)])
    assert result.exit_code == 0, result.output
    text = out.read_text(encoding="utf-8")
    links = re.findall(r"!\[[^\]]*\]\(([^)]+)\)", text)
    assert links[:3] == ["day_files/day-instances.svg", "day_files/day-gpus.svg",
                         "day_files/day-cost.svg"]
    for link in links:
        assert (out.parent / link).read_text(encoding="utf-8").startswith("<svg")
    assert "| 3 | 12.00 | 4.00 | 19.00 | 7+1 | 2+1 | 53.60 | 13.40 |" in text
    assert "give --scenario for the prices" in text


def test_report_of_a_day_scenario_is_solved_without_why_this_gpu(tmp_path: Path) -> None:
    out = tmp_path / "solved.html"
    result = _report([str(SCENARIO), "--mip-gap", "0", "-o", str(out)])
    assert result.exit_code == 0, result.output
    text = out.read_text(encoding="utf-8")
    assert _captions(text) == EXPECTED_DAY_FIGURES and "Why this GPU" not in text
    assert "$200.80 in total" in text  # the fixture's plan, solved again to optimality


def test_mip_gap_is_checked(tmp_path: Path) -> None:
    result = _report([str(SCENARIO), "--mip-gap", "nan", "-o", str(tmp_path / "x.html")])
    assert result.exit_code == 2 and "--mip-gap" in result.output


# ---- in a browser ------------------------------------------------------------------------------

def test_day_report_renders_in_chromium(tmp_path: Path, day_simulation: Path) -> None:
    chromium = find_chromium()
    if chromium is None:
        pytest.skip("no Chromium on this machine (.ci/run installs it where apt-get is there)")
    out = tmp_path / "day.html"
    assert _report([str(PLAN), "--scenario", str(SCENARIO), "--simulation",
                    str(day_simulation), "-o", str(out)]).exit_code == 0
    page = visit(out, PROBE, browser=chromium)
    assert page.console_errors == [] and page.external_requests == []
    assert page.requests == [out.resolve().as_uri()]
    assert [f["caption"] for f in page.probe] == [*EXPECTED_DAY_FIGURES, SIMULATION_FIGURE]
    for figure in page.probe:
        assert figure["width"] > 600 and figure["height"] > 100, figure["caption"]
        assert figure["drawn"] > 20, figure["caption"]
    texts = {f["caption"]: set(f["texts"]) for f in page.probe}
    assert {"instances", "demand (requests/s, with headroom)", "pre-pf spare",
            "period (4 h each)"} <= texts[EXPECTED_DAY_FIGURES[0]]
    assert {"all GPU types: GPUs", "DM: GPUs", "PF: GPUs", "reserved", "on demand", "spot",
            "GPUs running"} <= texts[EXPECTED_DAY_FIGURES[1]]
    assert {"$/hour", "this plan: $8.37/hour on average",
            "sized statically for the peak: $11.60/hour",
            "all on demand: $11.67/hour"} <= texts[EXPECTED_DAY_FIGURES[2]]
    assert {"TTFT at its target's statistic / target", "mean TPOT / target", "chat", "rag",
            "simulated / target"} <= texts[SIMULATION_FIGURE]
    assert page.screenshot_png.startswith(b"\x89PNG") and len(page.screenshot_png) > 50_000


def test_period_axis_names_the_period_length() -> None:
    from dataclasses import replace

    plan = _plan()
    assert day._period_labels(plan) == (["0", "1", "2", "3", "4", "5"], "period (4 h each)")
    ten_minutes = replace(plan, periods=[replace(p, hours=1 / 6) for p in plan.periods])
    assert day._period_labels(ten_minutes)[1] == "period (10 min each)"
    mixed = replace(plan, periods=[replace(p, hours=1 + p.index) for p in plan.periods])
    assert day._period_labels(mixed)[1] == "period (lengths in the table)"
    assert day.period_starts(mixed) == [0, 1, 3, 6, 10, 15]
