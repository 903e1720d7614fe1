"""`pdopt report` of a single-period plan renders exactly as before day plans were added: the
Markdown text, the HTML page (figures aside) and, with the same matplotlib, every figure's SVG are
compared with files written by the report before that change (tests/fixtures/report/).

    python -m tests.test_report_regression --update    # after an intended change
"""

from __future__ import annotations

import hashlib
import json
import re
import sys
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from pdopt.cli import main

pytest.importorskip("matplotlib", reason="pdopt report needs the report extra (matplotlib)")

FIXTURES = Path(__file__).parent / "fixtures" / "report"
GENERATED = re.compile(r"from \S+; written by pdopt report on \d{4}-\d\d-\d\d \d\d:\d\d UTC")


def _render(folder: Path) -> dict[str, Any]:
    """The report of the fixture plan (with its scenario) as Markdown and as HTML."""
    plan, scenario = FIXTURES / "single-plan.json", FIXTURES / "single-case.yaml"
    out: dict[str, Any] = {}
    for fmt, name in (("markdown", "report.md"), ("html", "report.html")):
        result = CliRunner().invoke(main, ["report", str(plan), "--scenario", str(scenario),
                                           "--format", fmt, "-o", str(folder / name)])
        assert result.exit_code == 0, result.output
        out[fmt] = GENERATED.sub("GENERATED", (folder / name).read_text(encoding="utf-8"))
    svgs = {p.name: p.read_text(encoding="utf-8") for p in
            sorted((folder / "report_files").glob("*.svg"))}
    out["svg_sha256"] = {k: hashlib.sha256(v.encode()).hexdigest() for k, v in svgs.items()}
    # the page without its figures' drawing (matplotlib's SVG changes with its version)
    out["html_text"] = re.sub(r"<svg.*?</svg>", "<svg/>", out["html"], flags=re.S)
    return out


def _expected() -> dict[str, Any]:
    return json.loads((FIXTURES / "single-expected.json").read_text(encoding="utf-8"))


def test_single_period_markdown_and_html_are_unchanged(tmp_path: Path) -> None:
    got, expected = _render(tmp_path), _expected()
    assert got["markdown"] == expected["markdown"]
    assert got["html_text"] == expected["html_text"]
    assert list(got["svg_sha256"]) == list(expected["svg_sha256"])


def test_single_period_figures_are_unchanged(tmp_path: Path) -> None:
    import matplotlib

    expected = _expected()
    if matplotlib.__version__ != expected["matplotlib"]:
        pytest.skip(f"figures recorded with matplotlib {expected['matplotlib']}, this is "
                    f"{matplotlib.__version__}: SVG text differs between versions")
    assert _render(tmp_path)["svg_sha256"] == expected["svg_sha256"]


def update() -> None:
    import tempfile

    import matplotlib

    with tempfile.TemporaryDirectory() as folder:
        got = _render(Path(folder))
    record = {"matplotlib": matplotlib.__version__, "markdown": got["markdown"],
              "html_text": got["html_text"], "svg_sha256": got["svg_sha256"]}
    (FIXTURES / "single-expected.json").write_text(json.dumps(record, indent=1) + "\n",
                                                   encoding="utf-8")
    print(f"wrote {FIXTURES / 'single-expected.json'}")


if __name__ == "__main__":
    if sys.argv[1:] != ["--update"]:
        sys.exit("usage: python -m tests.test_report_regression --update")
    update()
