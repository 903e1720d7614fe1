"""One rendering path for every command (pdopt/report.py)."""

from __future__ import annotations

import json
import math

import pytest

from pdopt.report import Report, Table, fmt_cell, render, to_json


@pytest.mark.parametrize("value, text", [
    (None, "-"), (True, "yes"), (False, "no"), (math.inf, "inf"), (0.0, "0"),
    (0.8168, "0.817"), (3.0677, "3.07"), (19.92, "19.92"), (25075.3158, "25,075"),
    (5325301.2, "5,325,301"), (1.5e7, "1.5e+07"), (0.0001234, "0.0001234"), (34, "34"),
    ("tpot", "tpot"),
])
def test_fmt_cell(value: object, text: str) -> None:
    assert fmt_cell(value) == text


def report() -> Report:
    return Report(
        data={"x": math.inf, "rows": [1.5, math.nan]},
        tables=[Table("first", ("name", "value"), [("a", 1.5), ("b", None)]),
                Table("second", ("k",), [("z",)])],
        notes=["a note"],
    )


def test_json_writes_inf_and_nan_as_null() -> None:
    assert json.loads(render(report(), "json")) == {"x": None, "rows": [1.5, None]}
    assert to_json({"a": (1, 2)}) == '{\n  "a": [\n    1,\n    2\n  ]\n}'


def test_table_markdown_csv() -> None:
    assert render(report(), "table") == (
        "first\nname  value\n----  -----\na      1.50\nb         -\n\n"
        "second\nk\n-\nz\n\na note"
    )
    assert render(report(), "markdown") == (
        "### first\n\n| name | value |\n|---|---|\n| a | 1.50 |\n| b | - |\n\n"
        "### second\n\n| k |\n|---|\n| z |\n\n- a note"
    )
    assert render(report(), "csv") == "# first\nname,value\na,1.5\nb,\n\n# second\nk\nz"
    single = Report(data={}, tables=[Table("t", ("a",), [(1,)])])
    assert render(single, "csv") == "a\n1"  # one table: no title line
