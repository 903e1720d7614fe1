"""One rendering path for every command's output: a `Report` is JSON-able data plus the tables a
person reads; `render(report, fmt)` turns it into table, markdown, csv or json text."""

from __future__ import annotations

import csv
import io
import json
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

Format = Literal["table", "json", "markdown", "csv"]
FORMATS: tuple[str, ...] = ("table", "json", "markdown", "csv")


@dataclass
class Table:
    title: str
    columns: Sequence[str]
    rows: Sequence[Sequence[Any]]


@dataclass
class Report:
    data: dict[str, Any]  # what --format json prints
    tables: list[Table] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)  # lines printed under the tables


#: Below this, a number is floating-point noise (HiGHS's tolerances are 1e-7 to 1e-9): shown as 0.
NOISE = 1e-9
#: Column names whose numbers are money (USD): printed to the cent.
MONEY_WORDS = ("cost", "$", "price", "budget", "per_hour", "/hour", "vs_chosen", "difference")
#: Column names whose numbers are shares (utilisation, routing weights): two decimals.
SHARE_WORDS = ("util", "share")


def column_kind(column: str) -> str | None:
    """How a column's numbers read: "money" (to the cent), "share" (two decimals), "gap" (noise
    shown as 0) or None (significant digits)."""
    name = column.lower()
    if "gpus" in name:  # counts of GPUs, also where they are a difference ("price_gpus")
        return None
    if any(word in name for word in MONEY_WORDS):
        return "money"
    if any(word in name for word in SHARE_WORDS):
        return "share"
    if "gap" in name:
        return "gap"
    return None


def fmt_gap(gap: float | None) -> str:
    """A relative gap in percent; below the solver's tolerance, 0%."""
    if gap is None:
        return "-"
    return "0%" if abs(gap) < NOISE else f"{100 * gap:.3g}%"


def fmt_cell(value: Any, column: str = "") -> str:
    """A cell as people read it: money to the cent, shares with two decimals, noise as 0."""
    if value is None:
        return "-"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, int | float) and math.isfinite(value):
        kind = column_kind(column)
        if kind == "money":
            return f"{value:,.2f}"
        if isinstance(value, float) and abs(value) < NOISE:
            return "0"
        if kind == "share" and isinstance(value, float):
            return f"{value:.2f}"
    if isinstance(value, float):
        if math.isinf(value):
            return "inf"
        if abs(value) >= 1e7 or abs(value) < 1e-3:
            return f"{value:.4g}"
        if abs(value) >= 100:
            return f"{value:,.0f}"
        return f"{value:.3g}" if abs(value) < 1 else f"{value:.2f}"
    return str(value)


def _json_default(obj: Any) -> Any:
    if hasattr(obj, "to_dict"):
        return obj.to_dict()
    if hasattr(obj, "model_dump"):
        return obj.model_dump(mode="json")
    raise TypeError(f"cannot serialise {type(obj).__name__}")


def _clean_floats(obj: Any) -> Any:
    """JSON has no inf/nan: write them as null."""
    if isinstance(obj, float) and (math.isinf(obj) or math.isnan(obj)):
        return None
    if isinstance(obj, dict):
        return {k: _clean_floats(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [_clean_floats(v) for v in obj]
    return obj


def to_json(data: Any) -> str:
    return json.dumps(_clean_floats(data), indent=2, default=_json_default, allow_nan=False)


def _text_table(table: Table) -> str:
    cells = [[fmt_cell(v, c) for v, c in zip(row, table.columns, strict=True)]
             for row in table.rows]
    widths = [len(c) for c in table.columns]
    for row in cells:
        widths = [max(w, len(c)) for w, c in zip(widths, row, strict=True)]

    def line(values: Sequence[str]) -> str:
        return "  ".join(
            v.ljust(w) if k == 0 else v.rjust(w) for k, (v, w) in enumerate(zip(values, widths,
                                                                               strict=True))
        ).rstrip()

    out = [table.title, line(table.columns), line(["-" * w for w in widths])]
    out += [line(r) for r in cells]
    return "\n".join(out)


def _markdown_table(table: Table) -> str:
    out = [f"### {table.title}", "", "| " + " | ".join(table.columns) + " |",
           "|" + "|".join("---" for _ in table.columns) + "|"]
    out += ["| " + " | ".join(fmt_cell(v, c) for v, c in zip(row, table.columns, strict=True))
            + " |" for row in table.rows]
    return "\n".join(out)


def _csv_tables(tables: list[Table]) -> str:
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    for k, table in enumerate(tables):
        if k:
            buf.write("\n")
        if len(tables) > 1:
            buf.write(f"# {table.title}\n")
        writer.writerow(table.columns)
        for row in table.rows:
            writer.writerow(["" if v is None else v for v in row])
    return buf.getvalue().rstrip("\n")


def render(report: Report, fmt: Format) -> str:
    """Render a report in one of FORMATS. csv writes each table (titled when there are several)."""
    if fmt == "json":
        return to_json(report.data)
    if fmt == "csv":
        return _csv_tables(report.tables)
    if fmt == "markdown":
        parts = [_markdown_table(t) for t in report.tables]
        if report.notes:
            parts.append("\n".join(f"- {n}" for n in report.notes))
        return "\n\n".join(parts)
    parts = [_text_table(t) for t in report.tables]
    if report.notes:
        parts.append("\n".join(report.notes))
    return "\n\n".join(parts)
