"""`pdopt report`: cost per workload by hand, the HTML and Markdown documents, the command, and the
page in a real browser (headless Chromium; skipped, with the reason, where there is none)."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import yaml
from browser import find_chromium, visit
from click.testing import CliRunner

from pdopt.cli import main
from pdopt.optimize import solve
from pdopt.plan_document import workload_costs
from pdopt.report import to_json
from pdopt.scenario.loading import scenario_from_data
from pdopt.simulate import SimulationOptions, simulate_plan
from pdopt.simulate.metrics import CDF_LEVELS, quantiles

pytest.importorskip("matplotlib", reason="pdopt report needs the report extra (matplotlib)")


def _case(workloads: int = 2) -> dict[str, Any]:
    """Two GPU types; prefill is cheap on PF, decode fast on DM; a 400 Gbit/s link."""
    data: dict[str, Any] = {
        "name": "report-case",
        "gpus": {"PF": {"cost_per_hour": 1.0}, "DM": {"cost_per_hour": 3.0}},
        "models": {"m": {"kv_bytes_per_token": 131072}},
        "kv_transfer": {"default_gbit_per_s": 400},
        "instances": [
            {"name": "pre-pf", "model": "m", "role": "prefill", "gpu": "PF",
             "gpus_per_instance": 1, "prefill_tokens_per_s": 12000},
            {"name": "dec-pf", "model": "m", "role": "decode", "gpu": "PF",
             "gpus_per_instance": 1, "tpot_ms_by_batch": {8: 30, 16: 40, 32: 60}},
            {"name": "pre-dm", "model": "m", "role": "prefill", "gpu": "DM",
             "gpus_per_instance": 1, "prefill_tokens_per_s": 15000},
            {"name": "dec-dm", "model": "m", "role": "decode", "gpu": "DM",
             "gpus_per_instance": 1, "tpot_ms_by_batch": {8: 10, 16: 12, 32: 15, 64: 22}},
        ],
        "workloads": [{"name": "chat", "model": "m", "requests_per_s": 6,
                       "input_tokens": 3000, "output_tokens": 200,
                       "slo": {"ttft_ms": 1000, "tpot_ms": 25}, "ttft_overhead_ms": 50}],
    }
    if workloads > 1:
        data["workloads"].append({"name": "rag", "model": "m", "requests_per_s": 2,
                                  "input_tokens": 6000, "output_tokens": 100,
                                  "slo": {"ttft_ms": 2000, "tpot_ms": 40},
                                  "ttft_overhead_ms": 50})
    return data


# ---- cost per workload ------------------------------------------------------------------------

def test_one_workload_carries_the_whole_cost() -> None:
    """$/M input tokens = prefill $/hour x 1e6 / (requests/s x input tokens x 3600) (Eq. W2)."""
    scenario = scenario_from_data(_case(workloads=1))
    plan = solve(scenario, mip_gap=0.0)
    (cost,) = workload_costs(plan, scenario)
    prefill = sum(p.cost_per_hour for p in plan.pools if p.role == "prefill")
    decode = sum(p.cost_per_hour for p in plan.pools if p.role == "decode")
    assert cost.prefill_cost_per_hour == pytest.approx(prefill)
    assert cost.decode_cost_per_hour == pytest.approx(decode)
    assert cost.per_million("prefill") == pytest.approx(prefill * 1e6 / (6 * 3000 * 3600))
    assert cost.per_million("decode") == pytest.approx(decode * 1e6 / (6 * 200 * 3600))
    assert cost.per_million_total == pytest.approx(plan.cost_per_hour * 1e6 / (6 * 3200 * 3600))


def test_shared_pools_split_by_tokens() -> None:
    scenario = scenario_from_data(_case())
    plan = solve(scenario, mip_gap=0.0)
    costs = {c.workload: c for c in workload_costs(plan, scenario)}
    assert sum(c.cost_per_hour for c in costs.values()) == pytest.approx(plan.cost_per_hour)
    lengths = {"chat": (3000, 200), "rag": (6000, 100)}
    expected = {"chat": [0.0, 0.0], "rag": [0.0, 0.0]}
    for pool in plan.pools:
        k = 0 if pool.role == "prefill" else 1
        weights = {w: rps * lengths[w][k] for w, rps in pool.routed_requests_per_s.items()}
        for w, weight in weights.items():
            expected[w][k] += pool.cost_per_hour * weight / sum(weights.values())
    for w, (pre, dec) in expected.items():
        assert costs[w].prefill_cost_per_hour == pytest.approx(pre)
        assert costs[w].decode_cost_per_hour == pytest.approx(dec)
    # without the scenario: split by requests, no per-token figures
    bare = {c.workload: c for c in workload_costs(plan, None)}
    assert bare["chat"].per_million("prefill") is None and bare["rag"].per_million_total is None
    assert sum(c.cost_per_hour for c in bare.values()) == pytest.approx(plan.cost_per_hour)


def test_quantiles_are_the_inverted_cdf() -> None:
    values = np.arange(1.0, 101.0)
    q = quantiles(values)
    assert len(q) == len(CDF_LEVELS) == 101
    assert q[0] == 1.0 and q[50] == 50.0 and q[90] == 90.0 and q[100] == 100.0
    assert quantiles(np.array([])) == []
    assert quantiles(np.array([5.0, np.inf]))[100] == np.inf


# ---- the documents and the command ------------------------------------------------------------

@pytest.fixture(scope="module")
def inputs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """A scenario, its explained plan, a simulation of it and a two-parameter batch folder."""
    root = tmp_path_factory.mktemp("report")
    data = _case()
    scenario_path = root / "case.yaml"
    scenario_path.write_text(yaml.safe_dump(data), encoding="utf-8")
    runner = CliRunner()
    result = runner.invoke(main, ["solve", str(scenario_path), "--explain", "--format", "json",
                                  "-o", str(root / "plan.json")])
    assert result.exit_code == 0, result.output
    from pdopt.plan import Plan

    raw = json.loads((root / "plan.json").read_text())
    raw.pop("alternatives")
    plan = Plan.from_dict(raw)
    sim = simulate_plan(scenario_from_data(data), plan,
                        SimulationOptions(duration_s=120, warmup_s=20, cooldown_s=30))
    (root / "sim.json").write_text(to_json(sim.to_dict()), encoding="utf-8")
    batch = root / "batch"
    batch.mkdir()
    rows = []
    for k, (price, rate) in enumerate([(p, r) for p in (1.0, 2.0) for r in (4, 8, 16)]):
        gpus = {"PF": 2 * rate // 4, "DM": rate // 4} if price < 2 else {"DM": rate // 2}
        rows.append({"id": f"v{k}", "source": "x.yaml", "params": {"price": price, "rate": rate},
                     "status": "optimal", "cost_per_hour": price * sum(gpus.values()),
                     "total_gpus": sum(gpus.values()), "gpus_by_type": gpus,
                     "instances_by_role": {"prefill": 1, "decode": 1}})
    rows.append({"id": "v-bad", "source": "x.yaml", "params": {"price": 3.0, "rate": 4},
                 "status": "infeasible", "cost_per_hour": None, "total_gpus": None,
                 "gpus_by_type": {}, "instances_by_role": {}})
    (batch / "summary.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    return {"scenario": scenario_path, "plan": root / "plan.json", "sim": root / "sim.json",
            "batch": batch, "root": root}


def _report(args: list[str]) -> Any:
    return CliRunner().invoke(main, ["report", *args])


EXPECTED_PLAN_FIGURES = [
    "Cost by model, GPU type and role ($/hour)", "Instances per pool",
    "Utilisation per pool against its SLO-constrained capacity",
    "Predicted TTFT and TPOT per workload against targets",
    "Why this GPU: the chosen plan against one GPU type and the best prefill/decode pair",
    "Simulated latency CDFs per workload against targets (dashed)",
]


def _self_contained(text: str) -> None:
    assert "<script" not in text and "<link" not in text and "<img" not in text
    assert not re.search(r"""(src|href)\s*=\s*["'](?!#)""", text)  # only in-page anchors
    urls = set(re.findall(r"https?://[^\s\"'<>)]+", text))
    assert urls <= {"http://www.w3.org/2000/svg", "http://www.w3.org/1999/xlink"}, urls


def test_html_report_of_a_plan_with_simulation(inputs: dict[str, Path]) -> None:
    out = inputs["root"] / "plan.html"
    result = _report([str(inputs["plan"]), "--scenario", str(inputs["scenario"]),
                      "--simulation", str(inputs["sim"]), "-o", str(out)])
    assert result.exit_code == 0, result.output
    text = out.read_text(encoding="utf-8")
    _self_contained(text)
    captions = re.findall(r"<figcaption>(.*?)</figcaption>", text)
    assert [c.replace("&#x27;", "'").replace("&amp;", "&") for c in captions] == \
        EXPECTED_PLAN_FIGURES
    assert text.count("<svg") == len(EXPECTED_PLAN_FIGURES)
    for needle in ("cost per workload", "$/M input tokens", "P/D ratio per model",
                   "why this GPU", "PF prefill + DM decode", "chat: TTFT (ms)",
                   "rag: TPOT per request (ms)"):
        assert needle in text, needle
    assert "give --scenario" not in text


def test_plan_without_scenario_says_what_is_missing(inputs: dict[str, Path]) -> None:
    out = inputs["root"] / "bare.html"
    result = _report([str(inputs["plan"]), "-o", str(out)])
    assert result.exit_code == 0, result.output
    text = out.read_text(encoding="utf-8")
    assert "give --scenario" in text
    assert "Why this GPU" in text  # the plan's own `alternatives`


def test_scenario_is_solved_and_explained(inputs: dict[str, Path]) -> None:
    out = inputs["root"] / "scenario.html"
    result = _report([str(inputs["scenario"]), "-o", str(out), "--no-explain"])
    assert result.exit_code == 0, result.output
    text = out.read_text(encoding="utf-8")
    assert "report-case" in text and "Why this GPU" not in text


def test_batch_folder_markdown_with_figure_files(inputs: dict[str, Path]) -> None:
    out = inputs["root"] / "sweeps.md"
    result = _report([str(inputs["batch"]), "--format", "markdown", "-o", str(out)])
    assert result.exit_code == 0, result.output
    text = out.read_text(encoding="utf-8")
    links = re.findall(r"!\[[^\]]*\]\(([^)]+)\)", text)
    assert links == ["sweeps_files/sweep-1.svg", "sweeps_files/sweep-2.svg"]
    for link in links:
        svg = (out.parent / link).read_text(encoding="utf-8")
        assert svg.startswith("<svg") and "Cost and GPUs" not in svg  # the title is Markdown's
        assert "GPUs of each plan" in svg  # two parameters: the composition grid
    assert "**Cost and GPUs against price**" in text and "| v-bad |" in text.replace("  ", " ")


@pytest.mark.parametrize("args,message", [
    (["{root}"], "summary.jsonl: cannot read file"),
    (["{plan}", "--simulation", "{plan}"], "not the JSON of `pdopt simulate`"),
])
def test_bad_inputs_exit_2_with_one_line(inputs: dict[str, Path], args: list[str],
                                         message: str) -> None:
    filled = [a.format(root=inputs["root"], plan=inputs["plan"]) for a in args]
    result = _report([*filled, "-o", str(inputs["root"] / "bad.html")])
    assert result.exit_code == 2
    assert message in result.output and "Traceback" not in result.output


def test_infeasible_scenario_is_reported_with_exit_3(tmp_path: Path) -> None:
    data = _case(workloads=1)
    data["workloads"][0]["slo"]["tpot_ms"] = 5  # below every decode table
    path = tmp_path / "infeasible.yaml"
    path.write_text(yaml.safe_dump(data), encoding="utf-8")
    out = tmp_path / "infeasible.html"
    result = _report([str(path), "-o", str(out)])
    assert result.exit_code == 3
    text = out.read_text(encoding="utf-8")
    assert "Plan: infeasible" in text and "No plan: " in text and "<svg" not in text


def test_unwritable_output_exits_2(inputs: dict[str, Path], tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("")
    result = _report([str(inputs["plan"]), "-o", str(blocker / "x.html")])
    assert result.exit_code == 2 and "cannot write" in result.output
    assert "Traceback" not in result.output


def test_not_a_plan_json(tmp_path: Path) -> None:
    path = tmp_path / "list.json"
    path.write_text("[1, 2]")
    result = _report([str(path), "-o", str(tmp_path / "x.html")])
    assert result.exit_code == 2 and "holds 2 plans" in result.output


# ---- in a browser -----------------------------------------------------------------------------

PROBE = """(() => Array.from(document.querySelectorAll('figure.chart')).map(f => {
  const svg = f.querySelector('svg');
  const box = svg ? svg.getBoundingClientRect() : {width: 0, height: 0};
  const texts = svg ? Array.from(svg.querySelectorAll('text')).map(t => t.textContent) : [];
  const drawn = svg ? svg.querySelectorAll('path, rect, use, line, polyline').length : 0;
  return {caption: f.querySelector('figcaption').textContent, width: box.width,
          height: box.height, drawn: drawn, texts: texts};
}))()"""


@pytest.fixture(scope="module")
def chromium() -> str:
    path = find_chromium()
    if path is None:
        pytest.skip("no Chromium on this machine (.ci/run installs the Debian package "
                    "`chromium` where apt-get is available)")
    return path


def test_report_renders_in_chromium(inputs: dict[str, Path], chromium: str) -> None:
    out = inputs["root"] / "browser.html"
    result = _report([str(inputs["plan"]), "--scenario", str(inputs["scenario"]),
                      "--simulation", str(inputs["sim"]), "-o", str(out)])
    assert result.exit_code == 0, result.output
    page = visit(out, PROBE, browser=chromium)
    assert page.console_errors == []
    assert page.external_requests == []
    assert page.requests == [out.resolve().as_uri()]  # the page itself and nothing else
    assert [f["caption"] for f in page.probe] == EXPECTED_PLAN_FIGURES
    for figure in page.probe:
        assert figure["width"] > 600 and figure["height"] > 100, figure["caption"]
        assert figure["drawn"] > 20, figure["caption"]
    texts = {t for f in page.probe for t in f["texts"]}
    assert {"TTFT (ms)", "TPOT (ms)", "chat: TTFT (ms)", "rag: TPOT per request (ms)"} <= texts
    png = page.screenshot_png
    assert png.startswith(b"\x89PNG") and len(png) > 50_000
    (inputs["root"] / "browser.png").write_bytes(png)


def test_batch_report_renders_in_chromium(inputs: dict[str, Path], chromium: str) -> None:
    out = inputs["root"] / "batch.html"
    assert _report([str(inputs["batch"]), "-o", str(out)]).exit_code == 0
    page = visit(out, PROBE, browser=chromium)
    assert page.console_errors == [] and page.external_requests == []
    assert [f["caption"] for f in page.probe] == ["Cost and GPUs against price",
                                                  "Cost and GPUs against rate"]
    assert all(f["width"] > 600 and f["drawn"] > 20 for f in page.probe)


def test_browser_check_catches_errors_and_requests(tmp_path: Path, chromium: str) -> None:
    """The browser test can fail: a page with a script error and a remote image is caught."""
    page_path = tmp_path / "bad.html"
    page_path.write_text("<!DOCTYPE html><html><body><script>console.error('boom');"
                         "undefinedFunction();</script>"
                         "<img src='http://192.0.2.1/x.png'></body></html>")
    page = visit(page_path, browser=chromium, timeout_s=30)
    assert any("boom" in e for e in page.console_errors)
    assert any("undefinedFunction" in e for e in page.console_errors)
    assert page.external_requests == ["http://192.0.2.1/x.png"]
