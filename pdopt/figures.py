"""The figures of `pdopt report` as SVG text, drawn with matplotlib (the `report` extra).

Every function takes plain numbers and returns a `Chart`: an SVG document whose text stays text
(`svg.fonttype: none`, so titles can be searched and read by a screen reader) and that refers to
nothing outside itself, so it can be put inline in a self-contained HTML page or written beside a
Markdown file. Only matplotlib's object API is used (no pyplot): no global state, no GUI backend.
docs/report.md says why matplotlib.
"""

from __future__ import annotations

import io
import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from pdopt.errors import PdoptError

#: Colours of the series (Okabe-Ito: told apart with colour-vision deficiencies), in order.
PALETTE = ("#0072B2", "#E69F00", "#009E73", "#D55E00", "#56B4E9", "#CC79A7", "#F0E442",
           "#000000")
TARGET_COLOUR = "#C0392B"
ROLE_HATCH = {"prefill": "", "decode": "//"}
WIDTH_IN = 10.0


class ReportDependencyError(PdoptError):
    """matplotlib is not installed."""


@dataclass
class Chart:
    name: str  # file stem for --format markdown
    title: str
    svg: str


def _mpl() -> Any:
    try:
        import matplotlib
        from matplotlib.figure import Figure
    except ImportError:
        raise ReportDependencyError(
            "pdopt report draws its figures with matplotlib, which is not installed: "
            "pip install 'pdopt[report]'") from None
    return matplotlib, Figure


STYLE = {
    "svg.fonttype": "none",  # text as <text>, not paths
    "svg.hashsalt": "pdopt",  # the same figure gives the same SVG
    "font.family": "sans-serif",
    "font.sans-serif": ["DejaVu Sans", "Helvetica", "Arial"],
    "font.size": 9,
    "axes.titlesize": 10,
    "axes.titleweight": "bold",
    "axes.spines.top": False,
    "axes.spines.right": False,
    "axes.grid": True,
    "grid.color": "#e3e3e3",
    "grid.linewidth": 0.6,
    "axes.axisbelow": True,
    "axes.prop_cycle": None,  # set below
    "legend.frameon": False,
    "legend.fontsize": 8,
}


def _figure(height_in: float, ncols: int = 1, nrows: int = 1) -> tuple[Any, Any, Any]:
    matplotlib, figure_cls = _mpl()
    from cycler import cycler

    style = dict(STYLE, **{"axes.prop_cycle": cycler(color=list(PALETTE))})
    ctx = matplotlib.rc_context(style)
    ctx.__enter__()
    fig = figure_cls(figsize=(WIDTH_IN, height_in), layout="constrained")
    axes = fig.subplots(nrows, ncols, squeeze=False)
    return ctx, fig, axes


def _finish(ctx: Any, fig: Any, name: str, title: str) -> Chart:
    try:
        buf = io.StringIO()
        fig.savefig(buf, format="svg", metadata={"Date": None, "Creator": "pdopt"})
    finally:
        ctx.__exit__(None, None, None)
    text = buf.getvalue()
    text = re.sub(r"\s*<metadata>.*?</metadata>", "", text[text.find("<svg"):], flags=re.S)
    return Chart(name, title, text.strip())


def _number(v: float) -> str:
    return f"{v:,.0f}" if abs(v) >= 100 else f"{v:.3g}"


def _money(v: float) -> str:
    return f"${v:,.0f}" if abs(v) >= 100 else f"${v:,.2f}"


def stacked_bars(name: str, title: str, categories: Sequence[str],
                 series: Mapping[str, Sequence[float]], ylabel: str, *,
                 money: bool = False, horizontal: bool = False,
                 hatches: Mapping[str, str] | None = None,
                 colours: Mapping[str, str] | None = None) -> Chart:
    """Bars per category, stacked by series (e.g. cost per GPU type stacked by role)."""
    height = max(1.6, 0.34 * len(categories) + 0.9) if horizontal else 3.0
    ctx, fig, axes = _figure(height)
    ax = axes[0][0]
    base = [0.0] * len(categories)
    positions = list(range(len(categories)))
    for k, (label, values) in enumerate(series.items()):
        colour = (colours or {}).get(label, PALETTE[k % len(PALETTE)])
        kw = {"label": label, "color": colour, "edgecolor": "white",
              "hatch": (hatches or {}).get(label, "")}
        if horizontal:
            ax.barh(positions, values, left=base, height=0.6, **kw)
        else:
            ax.bar(positions, values, bottom=base, width=0.6, **kw)
        base = [b + v for b, v in zip(base, values, strict=True)]
    for pos, total in zip(positions, base, strict=True):
        text = _money(total) if money else _number(total)
        if horizontal:
            ax.annotate(text, (total, pos), xytext=(3, 0), textcoords="offset points",
                        va="center", fontsize=8)
        else:
            ax.annotate(text, (pos, total), xytext=(0, 2), textcoords="offset points",
                        ha="center", fontsize=8)
    if horizontal:
        ax.set_yticks(positions, list(categories))
        ax.invert_yaxis()
        ax.set_xlabel(ylabel)
        ax.grid(axis="y", visible=False)
        ax.set_xlim(0, max(base or [1.0]) * 1.15 or 1.0)
    else:
        ax.set_xticks(positions, list(categories))
        ax.set_ylabel(ylabel)
        ax.grid(axis="x", visible=False)
        ax.set_ylim(0, max(base or [1.0]) * 1.15 or 1.0)
    if len(series) > 1:
        ax.legend(loc="center left", bbox_to_anchor=(1.01, 0.5))
    return _finish(ctx, fig, name, title)


def utilization_bars(name: str, title: str, pools: Sequence[str], utilization: Sequence[float],
                     roles: Sequence[str]) -> Chart:
    """Load over SLO-constrained capacity per pool, with the 100% line."""
    ctx, fig, axes = _figure(max(1.6, 0.32 * len(pools) + 0.9))
    ax = axes[0][0]
    positions = list(range(len(pools)))
    colours = [PALETTE[0] if r == "prefill" else PALETTE[1] for r in roles]
    ax.barh(positions, [100 * u for u in utilization], color=colours, height=0.6,
            hatch=None)
    for pos, u in zip(positions, utilization, strict=True):
        ax.annotate(f"{100 * u:.0f}%", (100 * u, pos), xytext=(3, 0),
                    textcoords="offset points", va="center", fontsize=8)
    ax.axvline(100, color=TARGET_COLOUR, linewidth=1.2, linestyle="--")
    ax.set_yticks(positions, list(pools))
    ax.invert_yaxis()
    ax.set_xlim(0, max(110.0, 100 * max(utilization or [0]) * 1.12))
    ax.set_xlabel("utilisation: load / capacity within the SLOs (%); dashed: full capacity")
    ax.grid(axis="y", visible=False)
    from matplotlib.patches import Patch

    ax.legend(handles=[Patch(color=PALETTE[0], label="prefill"),
                       Patch(color=PALETTE[1], label="decode")], loc="center left",
              bbox_to_anchor=(1.01, 0.5))
    return _finish(ctx, fig, name, title)


def latency_vs_targets(name: str, title: str, workloads: Sequence[str],
                       ttft: Sequence[tuple[float, float]],
                       tpot: Sequence[tuple[float, float]], ttft_label: str = "TTFT") -> Chart:
    """Predicted TTFT and TPOT per workload (bars) against their targets (red ticks)."""
    ctx, fig, axes = _figure(max(1.6, 0.34 * len(workloads) + 1.0), ncols=2)
    positions = list(range(len(workloads)))
    for ax, values, label in ((axes[0][0], ttft, ttft_label), (axes[0][1], tpot, "TPOT")):
        predicted = [v[0] for v in values]
        targets = [v[1] for v in values]
        colours = [PALETTE[2] if p <= t * (1 + 1e-9) else PALETTE[3]
                   for p, t in zip(predicted, targets, strict=True)]
        ax.barh(positions, predicted, color=colours, height=0.55, label="predicted")
        ax.scatter(targets, positions, marker="|", s=400, color=TARGET_COLOUR, linewidths=2,
                   label="target", zorder=3)
        for pos, p in zip(positions, predicted, strict=True):
            ax.annotate(_number(p), (p, pos), xytext=(3, -9), textcoords="offset points",
                        fontsize=7.5)
        ax.set_yticks(positions, list(workloads))
        ax.invert_yaxis()
        ax.set_title(f"{label} (ms)", loc="left")
        top = max([*predicted, *targets, 1e-9])
        ax.set_xlim(0, top * 1.2)
        ax.grid(axis="y", visible=False)
    axes[0][1].legend(loc="center left", bbox_to_anchor=(1.01, 0.5))
    axes[0][1].set_yticklabels([])
    return _finish(ctx, fig, name, title)


def alternatives_bars(name: str, title: str, models: Sequence[str],
                      rows: Sequence[Sequence[tuple[str, float | None, bool]]]) -> Chart:
    """Per model, the cost of the chosen plan and of each restricted alternative (no plan: a
    note on the axis)."""
    count = sum(len(r) for r in rows)
    ctx, fig, axes = _figure(max(1.6, 0.3 * count + 0.45 * len(models) + 0.6))
    ax = axes[0][0]
    labels: list[str] = []
    pos = 0.0
    ticks: list[float] = []
    top = max([c for r in rows for _, c, _ in r if c is not None] or [1.0])
    for model, alternatives in zip(models, rows, strict=True):
        for label, cost, chosen in alternatives:
            colour = PALETTE[0] if chosen else "#9aa5b1"
            if cost is None:
                ax.annotate("no plan", (0, pos), xytext=(3, 0), textcoords="offset points",
                            va="center", fontsize=8, color=PALETTE[3])
            else:
                ax.barh([pos], [cost], color=colour, height=0.6)
                ax.annotate(_money(cost), (cost, pos), xytext=(3, 0),
                            textcoords="offset points", va="center", fontsize=8)
            ticks.append(pos)
            prefix = f"{model}: " if len(models) > 1 else ""
            labels.append(prefix + ("chosen: " if chosen else "") + label)
            pos += 1
        pos += 0.6
    ax.set_yticks(ticks, labels)
    ax.set_ylim(pos - 0.4, -0.6)
    ax.set_xlim(0, top * 1.2)
    ax.set_xlabel("cost of the model's pools ($/hour)")
    ax.grid(axis="y", visible=False)
    return _finish(ctx, fig, name, title)


def _is_number(v: Any) -> bool:
    return isinstance(v, int | float) and not isinstance(v, bool) and math.isfinite(v)


def sweep_curves(name: str, title: str, parameter: str, xs: Sequence[Any],
                 lines: Mapping[str, tuple[Sequence[float | None], Sequence[float | None]]],
                 composition: Mapping[str, Sequence[float]] | None,
                 grid: Mapping[str, Sequence[Mapping[str, int] | None]] | None = None) -> Chart:
    """Cost and GPUs against a swept parameter: one line per setting of the other parameters.
    With one line, the GPUs stacked by GPU type (`composition`: the plan's composition along the
    sweep); with several, `grid` shows the GPUs by type of every plan (rows: the lines)."""
    numeric = all(_is_number(x) for x in xs)
    if grid is not None and composition is None:
        ctx, fig, axes = _figure(3.0 + 0.32 * len(grid), ncols=2, nrows=2)
        _composition_grid(fig, axes, xs, grid)
    else:
        ctx, fig, axes = _figure(3.0, ncols=2)
    positions = list(xs) if numeric else list(range(len(xs)))
    cost_ax, gpu_ax = axes[0][0], axes[0][1]
    for k, (label, (costs, gpus)) in enumerate(lines.items()):
        colour = PALETTE[k % len(PALETTE)]
        cost_ax.plot(positions, [math.nan if c is None else c for c in costs], marker="o",
                     markersize=3.5, color=colour, label=label or None)
        if composition is None:
            gpu_ax.plot(positions, [math.nan if g is None else g for g in gpus], marker="o",
                        markersize=3.5, color=colour, label=label or None)
    if composition is not None:
        gpu_ax.stackplot(positions, *composition.values(), labels=list(composition),
                         colors=[PALETTE[k % len(PALETTE)] for k in range(len(composition))],
                         alpha=0.85, step=None)
        gpu_ax.legend(loc="upper left", title="GPU type", title_fontsize=8)
    elif len(lines) > 1:
        cost_ax.legend(loc="best", fontsize=7)
    cost_ax.set_title("cost ($/hour)", loc="left")
    gpu_ax.set_title("GPUs" + (" by type" if composition is not None else ""), loc="left")
    for ax in (cost_ax, gpu_ax):
        ax.set_xlabel(parameter)
        if numeric:
            finite = [x for x in xs if x > 0]
            if finite and len(finite) == len(xs) and max(finite) / min(finite) >= 50:
                ax.set_xscale("log")
        else:
            ax.set_xticks(positions, [str(x) for x in xs], rotation=30, ha="right")
        ax.set_ylim(bottom=0)
    return _finish(ctx, fig, name, title)


def _composition_grid(fig: Any, axes: Any, xs: Sequence[Any],
                      grid: Mapping[str, Sequence[Mapping[str, int] | None]]) -> None:
    """Bottom row of a sweep figure: each plan's GPUs by type, coloured by its largest type."""
    gs = axes[1][0].get_gridspec()
    axes[1][0].remove()
    axes[1][1].remove()
    ax = fig.add_subplot(gs[1, :])
    types = sorted({g for row in grid.values() for cell in row if cell for g in cell})
    for r, row in enumerate(grid.values()):
        for c, cell in enumerate(row):
            if not cell:
                text, colour = ("no plan" if cell is not None else "-"), "#f0f0f0"
            else:
                top = max(cell, key=lambda g: cell[g])
                colour = PALETTE[types.index(top) % len(PALETTE)]
                text = "\n".join(f"{n} {g}" for g, n in sorted(cell.items()) if n)
            ax.add_patch(_rectangle((c - 0.5, r - 0.5), colour))
            ax.annotate(text, (c, r), ha="center", va="center", fontsize=6.5,
                        color="white" if cell else "#616e7c")
    ax.set_xlim(-0.5, len(xs) - 0.5)
    ax.set_ylim(len(grid) - 0.5, -0.5)
    ax.set_xticks(range(len(xs)), [f"{x:g}" if _is_number(x) else str(x) for x in xs])
    ax.set_yticks(range(len(grid)), list(grid))
    ax.grid(False)
    ax.set_title("GPUs of each plan (colour: the type it has most of)", loc="left")


def _rectangle(corner: tuple[float, float], colour: str) -> Any:
    from matplotlib.patches import Rectangle

    return Rectangle(corner, 1, 1, facecolor=colour, edgecolor="white", alpha=0.85)


def _finite_steps(values: Sequence[float | None], levels: Sequence[float]
                  ) -> tuple[list[float], list[float]]:
    pairs = [(v, lv) for v, lv in zip(values, levels, strict=False)
             if v is not None and math.isfinite(v)]
    return [v for v, _ in pairs], [lv for _, lv in pairs]


def latency_cdfs(name: str, title: str, workloads: Sequence[str],
                 ttft: Sequence[tuple[Sequence[float | None], float, float | None]],
                 tpot: Sequence[tuple[Sequence[float | None], float]],
                 levels: Sequence[float]) -> Chart:
    """Simulated TTFT and TPOT CDFs, one row per workload, with the target (dashed red line)
    and, for a percentile TTFT target, the percentile (dotted)."""
    ctx, fig, axes = _figure(0.3 + 1.55 * len(workloads), ncols=2, nrows=len(workloads))
    for k, w in enumerate(workloads):
        for col, (values, target, percentile) in enumerate(
                (ttft[k], (*tpot[k], None))):
            ax = axes[k][col]
            xs, ys = _finite_steps(values, levels)
            if xs:
                ax.step(xs, ys, where="post", color=PALETTE[col], linewidth=1.6)
                ax.fill_between(xs, ys, step="post", color=PALETTE[col], alpha=0.12)
            ax.axvline(target, color=TARGET_COLOUR, linestyle="--", linewidth=1.2)
            if percentile is not None:
                ax.axhline(percentile, color="#7b8794", linestyle=":", linewidth=1)
            if len(xs) < len(values):
                ax.annotate(f"{100 - ys[-1] if ys else 100:.0f}% not reached", (0.98, 0.08),
                            xycoords="axes fraction", ha="right", fontsize=7.5,
                            color=PALETTE[3])
            ax.set_xlim(0, max([target, *xs]) * 1.1)
            ax.set_ylim(0, 101)
            ax.set_yticks([0, 50, 90, 100])
            metric = "TTFT" if col == 0 else "TPOT per request"
            ax.set_title(f"{w}: {metric} (ms)", loc="left", fontsize=9)
            if col == 0:
                ax.set_ylabel("% of requests")
    return _finish(ctx, fig, name, title)


# --- day plans (plans over a horizon of periods) --------------------------------------------

#: Colours of the purchase options in the GPU and cost figures of a day plan.
OPTION_COLOURS = {"reserved": "#0072B2", "on demand": "#E69F00", "spot": "#009E73"}


def series_colours(labels: Sequence[str]) -> dict[str, str]:
    """A colour per label: the palette for up to its length, then matplotlib's tab20."""
    if len(labels) <= len(PALETTE):
        return {label: PALETTE[k] for k, label in enumerate(labels)}
    matplotlib, _ = _mpl()
    cmap = matplotlib.colormaps["tab20"]
    return {label: matplotlib.colors.to_hex(cmap(k % 20)) for k, label in enumerate(labels)}


def _period_axes(ax: Any, labels: Sequence[str], series: Mapping[str, Sequence[float]], *,
                 colours: Mapping[str, str], hatches: Mapping[str, str] | None = None,
                 overlay: Mapping[str, Sequence[float]] | None = None,
                 references: Mapping[str, float] | None = None,
                 max_ticks: int = 24) -> list[float]:
    """Bars per period stacked by series, `overlay` as step lines and `references` as dashed
    levels on the same axis; at most `max_ticks` period labels. Returns the stacks' heights."""
    positions = list(range(len(labels)))
    base = [0.0] * len(labels)
    many = len(labels) > 48  # bars touch, without white edges that would stripe them
    for label, values in series.items():
        ax.bar(positions, values, bottom=base, width=1.0 if many else 0.8, label=label,
               color=colours[label], edgecolor="white", linewidth=0.0 if many else 0.4,
               hatch=(hatches or {}).get(label, ""))
        base = [b + v for b, v in zip(base, values, strict=True)]
    styles = ("-", "--", ":", "-.")
    for k, (label, values) in enumerate((overlay or {}).items()):
        ax.step([p - 0.5 for p in positions] + [positions[-1] + 0.5],
                [*values, values[-1]], where="post", color="#102a43", linewidth=1.4,
                linestyle=styles[k % len(styles)], label=label)
    for k, (label, level) in enumerate((references or {}).items()):
        ax.axhline(level, color=(TARGET_COLOUR, "#52606d", "#9aa5b1", "#000000")[k % 4],
                   linestyle=("--", "-.", ":", "--")[k % 4], linewidth=1.3, label=label)
    step = max(1, math.ceil(len(labels) / max_ticks))
    ax.set_xticks(positions[::step], list(labels)[::step])
    ax.set_xlim(-0.6, len(labels) - 0.4)
    top = max([*base, *(v for vs in (overlay or {}).values() for v in vs),
               *(references or {}).values(), 1e-9])
    ax.set_ylim(0, top * 1.12)
    ax.grid(axis="x", visible=False)
    return base


#: Legends with more entries than this go under the figure, three to a row.
LEGEND_RIGHT_MAX = 9

#: Lines on a period figure's right-hand axis (e.g. demand per model): dark, told apart by dash
#: and marker from the bars' colours.
SECONDARY_STYLES = (("#102a43", "-", "o"), ("#52606d", "--", "s"), ("#3e4c59", ":", "^"),
                    ("#000000", "-.", "D"))


def _period_legend(fig: Any, ax: Any, extra: Any = None) -> None:
    handles, labels = ax.get_legend_handles_labels()
    if extra is not None:
        more, more_labels = extra.get_legend_handles_labels()
        handles, labels = handles + more, labels + more_labels
    if not handles:
        return
    if len(handles) > LEGEND_RIGHT_MAX:
        fig.legend(handles, labels, loc="outside lower center", ncol=3, fontsize=7.5)
    else:
        ax.legend(handles, labels, loc="upper left", bbox_to_anchor=(1.01 if extra is None
                                                                     else 1.08, 1.0),
                  fontsize=7.5)


def period_bars(name: str, title: str, labels: Sequence[str],
                series: Mapping[str, Sequence[float]], ylabel: str, *, xlabel: str = "period",
                colours: Mapping[str, str] | None = None,
                hatches: Mapping[str, str] | None = None,
                overlay: Mapping[str, Sequence[float]] | None = None,
                references: Mapping[str, float] | None = None,
                secondary: Mapping[str, Sequence[float]] | None = None,
                secondary_label: str = "") -> Chart:
    """Per period, bars stacked by series (e.g. instances per pool, $/hour by purchase option);
    `overlay`: step lines in the same unit; `references`: dashed levels (e.g. the average $/hour
    of other plans); `secondary`: lines on a right-hand axis (e.g. demand per period)."""
    entries = len(series) + len(overlay or {}) + len(references or {}) + len(secondary or {})
    below = math.ceil(entries / 3) if entries > LEGEND_RIGHT_MAX else 0
    ctx, fig, axes = _figure(3.4 + 0.17 * below)
    ax = axes[0][0]
    colours = dict(colours or series_colours(list(series)))
    _period_axes(ax, labels, series, colours=colours, hatches=hatches, overlay=overlay,
                 references=references)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    twin = None
    if secondary:
        twin = ax.twinx()
        twin.spines["right"].set_visible(True)
        twin.grid(False)
        positions = list(range(len(labels)))
        for k, (label, values) in enumerate(secondary.items()):
            colour, dash, marker = SECONDARY_STYLES[k % len(SECONDARY_STYLES)]
            twin.plot(positions, values, marker=None if len(labels) > 48 else marker,
                      markersize=3.5, linewidth=1.5,
                      color=colour, linestyle=dash, label=label, markeredgecolor="white",
                      markeredgewidth=0.5)
        twin.set_ylim(0, max([v for vs in secondary.values() for v in vs] + [1e-9]) * 1.12)
        twin.set_ylabel(secondary_label)
    _period_legend(fig, ax, twin)
    return _finish(ctx, fig, name, title)


def period_gpu_panels(name: str, title: str, labels: Sequence[str],
                      panels: Mapping[str, Mapping[str, Sequence[float]]],
                      running: Mapping[str, Sequence[float]], *,
                      xlabel: str = "period") -> Chart:
    """GPUs per period stacked by purchase option (reserved, on demand, spot), one panel per
    key of `panels` (the first across the figure, e.g. all GPU types; then one per GPU type,
    three to a row), each with the GPUs running (serving + spare) as a step line."""
    keys = list(panels)
    rest = keys[1:]
    ncols = 3 if len(rest) >= 3 else max(1, len(rest))
    rows = 1 + math.ceil(len(rest) / ncols)
    ctx, fig, axes = _figure(2.9 + 2.1 * (rows - 1), ncols=ncols, nrows=rows)
    gs = axes[0][0].get_gridspec()
    for ax in axes[0]:
        ax.remove()
    first = fig.add_subplot(gs[0, :])
    for k, key in enumerate(keys):
        ax = first if k == 0 else axes[1 + (k - 1) // ncols][(k - 1) % ncols]
        series = {o: v for o, v in panels[key].items() if any(v)}
        _period_axes(ax, labels, series, colours=OPTION_COLOURS,
                     overlay={"GPUs running": running[key]}, max_ticks=24 if k == 0 else 12)
        ax.set_title(f"{key}: GPUs", loc="left", fontsize=9)
        if k == 0:
            ax.set_xlabel(xlabel)
            ax.set_ylabel("GPUs")
            from matplotlib.patches import Patch

            handles = [Patch(color=OPTION_COLOURS[o], label=o) for o in OPTION_COLOURS
                       if any(any(panels[key].get(o, [])) for key in keys)]
            lines = [h for h, label in zip(*ax.get_legend_handles_labels(), strict=True)
                     if label == "GPUs running"]
            ax.legend(handles=[*handles, *lines], loc="upper left", bbox_to_anchor=(1.01, 1.0),
                      fontsize=7.5)
    for k in range(len(rest), (rows - 1) * ncols):
        axes[1 + k // ncols][k % ncols].remove()
    return _finish(ctx, fig, name, title)


def period_lines(name: str, title: str, labels: Sequence[str],
                 panels: Mapping[str, Mapping[str, Sequence[float | None]]], ylabel: str, *,
                 level: float | None = None, xlabel: str = "period") -> Chart:
    """Side by side panels of lines per period (one per series, e.g. per workload), with a
    dashed red `level` (e.g. 1: at the target); a missing value (None, inf) is a gap marked
    with a red cross at the top."""
    ctx, fig, axes = _figure(3.0, ncols=len(panels))
    positions = list(range(len(labels)))
    colours = series_colours(list(dict.fromkeys(s for p in panels.values() for s in p)))
    step = max(1, math.ceil(len(labels) / (24 if len(panels) == 1 else 12)))
    for ax, (panel, series) in zip(axes[0], panels.items(), strict=True):
        finite = [v for vs in series.values() for v in vs if v is not None and math.isfinite(v)]
        top = max([*finite, level or 0.0, 1e-9]) * 1.15
        for label, values in series.items():
            ys = [math.nan if v is None or not math.isfinite(v) else v for v in values]
            ax.plot(positions, ys, marker="o", markersize=3.5, linewidth=1.4,
                    color=colours[label], label=label)
            missing = [p for p, y in zip(positions, ys, strict=True) if math.isnan(y)]
            if missing:
                ax.scatter(missing, [top * 0.97] * len(missing), marker="x", color=PALETTE[3],
                           zorder=3)
        if level is not None:
            ax.axhline(level, color=TARGET_COLOUR, linestyle="--", linewidth=1.2)
        ax.set_title(panel, loc="left", fontsize=9)
        ax.set_xticks(positions[::step], list(labels)[::step])
        ax.set_xlim(-0.5, len(labels) - 0.5)
        ax.set_ylim(0, top)
        ax.set_xlabel(xlabel)
    axes[0][0].set_ylabel(ylabel)
    _period_legend(fig, axes[0][-1])
    return _finish(ctx, fig, name, title)
