"""A report document (`pdopt report`): sections of text, figures and tables, written as one
self-contained HTML file (styles and SVG figures inline, no script, nothing fetched) or as
Markdown with its figures as SVG files in a folder beside it (docs/cli.md, `pdopt report`)."""

from __future__ import annotations

import html
import re
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from pdopt.figures import Chart
from pdopt.fileio import write_atomic
from pdopt.report import Report, Table, fmt_cell, render


@dataclass
class Section:
    title: str
    paragraphs: list[str] = field(default_factory=list)
    charts: list[Chart] = field(default_factory=list)
    tables: list[Table] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)  # small print under the section


@dataclass
class Document:
    title: str
    subtitle: str
    sections: list[Section] = field(default_factory=list)

    @property
    def charts(self) -> list[Chart]:
        return [c for s in self.sections for c in s.charts]


CSS = """
:root { --ink: #1f2933; --muted: #616e7c; --line: #d9dee3; --accent: #0072B2; }
* { box-sizing: border-box; }
body { font-family: -apple-system, "Segoe UI", "DejaVu Sans", Helvetica, Arial, sans-serif;
       color: var(--ink); margin: 0; background: #f5f7f9; font-size: 14px; line-height: 1.45; }
header { background: #102a43; color: white; padding: 18px 32px; }
header h1 { margin: 0; font-size: 22px; }
header p { margin: 4px 0 0; color: #bcccdc; }
nav { padding: 8px 32px; background: white; border-bottom: 1px solid var(--line);
      font-size: 13px; }
nav a { color: var(--accent); margin-right: 14px; text-decoration: none; }
main { max-width: 1100px; margin: 0 auto; padding: 8px 24px 40px; }
section { background: white; border: 1px solid var(--line); border-radius: 6px;
          padding: 6px 22px 16px; margin-top: 18px; }
section h2 { font-size: 18px; border-bottom: 2px solid var(--accent); padding-bottom: 4px; }
figure { margin: 14px 0; }
figure svg { width: 100%; height: auto; display: block; }
figcaption { font-weight: 600; margin-bottom: 4px; }
.tablewrap { overflow-x: auto; margin: 12px 0; }
table { border-collapse: collapse; font-size: 12.5px; width: 100%; }
caption { text-align: left; font-weight: 600; padding: 4px 0; }
th, td { border-bottom: 1px solid var(--line); padding: 4px 8px; white-space: nowrap; }
th { background: #f0f4f8; text-align: left; }
td.num { text-align: right; font-variant-numeric: tabular-nums; }
p.note { color: var(--muted); font-size: 12.5px; margin: 4px 0; }
@media print { body { background: white; } section { break-inside: avoid; border: 0; }
               nav { display: none; } }
"""


def _anchor(title: str, k: int) -> str:
    return f"s{k}-" + re.sub(r"[^a-z0-9]+", "-", title.lower()).strip("-")


def _is_number(v: object) -> bool:
    return isinstance(v, int | float) and not isinstance(v, bool)


def _html_table(table: Table) -> str:
    head = "".join(f"<th>{html.escape(str(c))}</th>" for c in table.columns)
    rows = []
    for row in table.rows:
        cells = "".join(
            f'<td class="num">{html.escape(fmt_cell(v, c))}</td>' if _is_number(v)
            else f"<td>{html.escape(fmt_cell(v, c))}</td>"
            for v, c in zip(row, table.columns, strict=True))
        rows.append(f"<tr>{cells}</tr>")
    return (f'<div class="tablewrap"><table><caption>{html.escape(table.title)}</caption>'
            f"<thead><tr>{head}</tr></thead><tbody>{''.join(rows)}</tbody></table></div>")


def to_html(doc: Document) -> str:
    """One HTML file: CSS inline, figures as inline SVG, no scripts, no external resources."""
    nav = "".join(f'<a href="#{_anchor(s.title, k)}">{html.escape(s.title)}</a>'
                  for k, s in enumerate(doc.sections))
    parts = []
    for k, s in enumerate(doc.sections):
        body = [f'<section id="{_anchor(s.title, k)}"><h2>{html.escape(s.title)}</h2>']
        body += [f"<p>{html.escape(p)}</p>" for p in s.paragraphs]
        for chart in s.charts:
            body.append(f'<figure class="chart" data-chart="{html.escape(chart.name)}">'
                        f"<figcaption>{html.escape(chart.title)}</figcaption>{chart.svg}"
                        "</figure>")
        body += [_html_table(t) for t in s.tables]
        body += [f'<p class="note">{html.escape(n)}</p>' for n in s.notes]
        body.append("</section>")
        parts.append("\n".join(body))
    return (
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
        "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">"
        f"<title>{html.escape(doc.title)}</title><style>{CSS}</style></head><body>"
        f"<header><h1>{html.escape(doc.title)}</h1><p>{html.escape(doc.subtitle)}</p>"
        f"</header><nav>{nav}</nav><main>\n" + "\n".join(parts) + "\n</main></body></html>\n"
    )


def to_markdown(doc: Document, figures_dir: Path, link_prefix: str) -> tuple[str, list[Path]]:
    """Markdown text and the figure files it links (`link_prefix/NAME.svg`), written to
    `figures_dir` (created)."""
    figures_dir.mkdir(parents=True, exist_ok=True)
    written: list[Path] = []
    out = [f"# {doc.title}", "", doc.subtitle]
    for s in doc.sections:
        out += ["", f"## {s.title}", ""]
        out += [p + "\n" for p in s.paragraphs]
        for chart in s.charts:
            path = figures_dir / f"{chart.name}.svg"
            write_atomic(path, chart.svg + "\n")
            written.append(path)
            out += [f"**{chart.title}**", "", f"![{chart.title}]({link_prefix}/{chart.name}.svg)",
                    ""]
        for t in s.tables:
            out += [render(Report({}, [t]), "markdown"), ""]
        out += [f"- {n}" for n in s.notes]
    return "\n".join(out).rstrip() + "\n", written


def write_document(doc: Document, output: str | Path, fmt: str) -> list[Path]:
    """Write the document as `html` or `markdown` (figures in OUTPUT-stem_files/ beside it).
    Returns the files written."""
    output = Path(output)
    if fmt == "html":
        write_atomic(output, to_html(doc))
        return [output]
    folder = output.with_name(output.stem + "_files")
    text, figures = to_markdown(doc, folder, folder.name)
    write_atomic(output, text)
    return [output, *figures]


def generated_line(source: str) -> str:
    now = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    return f"from {source}; written by pdopt report on {now}"
