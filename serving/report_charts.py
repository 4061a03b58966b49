"""Charts of the leadership report as inline PNG data URIs (matplotlib, Agg, no pyplot)."""

from __future__ import annotations

import base64
import io
from collections.abc import Callable

import numpy as np
import pandas as pd
from matplotlib.axes import Axes
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.ticker import FuncFormatter, ScalarFormatter

from models.revenue.forecast import POOLED

BLUE, GREEN, RED, ORANGE, GREY = "#1f5fa8", "#2e8b57", "#c0392b", "#e67e22", "#7f8c8d"
PALETTE = ("#1f5fa8", "#e67e22", "#2e8b57", "#8e44ad", "#c0392b", "#16a085", "#7f8c8d")
BAND_COLOURS = {
    "Thriving": "#1e8449",
    "Healthy": "#58d68d",
    "At risk": "#f4d03f",
    "Critical": "#e67e22",
    "Churning": "#c0392b",
}


def _figure(width: float = 7.5, height: float = 3.6) -> Figure:
    fig = Figure(figsize=(width, height), dpi=110, layout="constrained")
    FigureCanvasAgg(fig)
    return fig


def _trim(number: float) -> str:
    """1.0 -> '1', 2.5 -> '2.5', 1.25 -> '1.25' (at most two decimals)."""
    return f"{number:,.2f}".rstrip("0").rstrip(".")


def currency(value: float, _pos: object = None) -> str:
    """Axis label of an amount: $1.2M, $450K, $2.5K, $900 (no scientific notation)."""
    size = abs(value)
    sign = "-" if value < 0 else ""
    if size >= 1e6:
        return f"{sign}${_trim(size / 1e6)}M"
    if size >= 1e3:
        return f"{sign}${_trim(size / 1e3)}K"
    return f"{sign}${size:,.0f}"


def money_axis(ax: Axes, axis: str = "y") -> None:
    """Currency ticks ($1.2M, $450K) on one axis of `ax`."""
    (ax.yaxis if axis == "y" else ax.xaxis).set_major_formatter(FuncFormatter(currency))


def _no_offsets(fig: Figure) -> None:
    """Plain numbers on every numeric axis: no '1e7' offset or scientific notation."""
    for ax in fig.axes:
        for axis in (ax.xaxis, ax.yaxis):
            formatter = axis.get_major_formatter()
            if isinstance(formatter, ScalarFormatter):
                formatter.set_useOffset(False)
                formatter.set_scientific(False)


def to_data_uri(fig: Figure) -> str:
    """Render a figure to an inline `data:image/png;base64,...` URI."""
    _no_offsets(fig)
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png")
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode("ascii")


def money(value: float, *, million_digits: int = 2) -> str:
    """ARR amount with a $ and a K/M suffix: $1.23M, $40K, $114."""
    size = abs(value)
    sign = "-" if value < 0 else ""
    if size >= 1e6:
        return f"{sign}${size / 1e6:,.{million_digits}f}M"
    if size >= 1e3:
        return f"{sign}${size / 1e3:,.0f}K"
    return f"{sign}${size:,.0f}"


def money_column(values: pd.Series) -> Callable[[float], str]:
    """One unit for a whole table column ($M, $K or $), chosen from its typical amount.

    A column never shows "114" beside "40k": in a column of $K amounts a $114 cell reads
    "$0.1K". $M cells carry two decimals, $K cells none (one below $10K).
    """
    sizes = pd.to_numeric(values, errors="coerce").abs().dropna()
    typical = float(sizes.median()) if len(sizes) else 0.0
    top = float(sizes.max()) if len(sizes) else 0.0

    def sign(v: float) -> str:
        return "-" if v < 0 else ""

    if typical >= 1e6:
        return lambda v: f"{sign(v)}${abs(v) / 1e6:,.2f}M"
    if top >= 1e3:  # an exact zero reads "$0", not "$0.0K"
        return lambda v: (
            "$0" if v == 0 else f"{sign(v)}${abs(v) / 1e3:,.{0 if abs(v) >= 1e4 else 1}f}K"
        )
    return lambda v: f"{sign(v)}${abs(v):,.0f}"


def _empty(fig: Figure, message: str) -> str:
    ax = fig.add_subplot()
    ax.axis("off")
    ax.text(0.5, 0.5, message, ha="center", va="center", color=GREY)
    return to_data_uri(fig)


def arr_bridge_chart(period: pd.Series) -> str:
    """Waterfall of one period: starting ARR, +expansion, -contraction, -churn, retained, +new.

    Every bar carries its value above it; category labels are on two lines so they never
    collide; the new + reactivated bar (outside NRR) is labelled as such.
    """
    fig = _figure(height=4.0)
    start = float(period["starting_arr"])
    new = float(period["new_arr"]) + float(period["reactivation_arr"])
    steps = [
        ("Starting\nARR", start, BLUE),
        ("Expansion", float(period["expansion_arr"]), GREEN),
        ("Contraction", -float(period["contraction_arr"]), ORANGE),
        ("Churn", -float(period["churned_arr"]), RED),
    ]
    ax = fig.add_subplot()
    level = 0.0
    tops = []
    for i, (_name, value, colour) in enumerate(steps):
        bottom = 0.0 if i == 0 else level + min(value, 0.0)
        ax.bar(i, abs(value), bottom=bottom, color=colour)
        level = value if i == 0 else level + value
        tops.append((i, bottom + abs(value), ("+" if value > 0 and i else "") + money(value)))
    retained = level
    ax.bar(len(steps), retained, color=BLUE, alpha=0.7)
    tops.append((len(steps), retained, money(retained)))
    ax.bar(len(steps) + 1, new, bottom=retained, color=GREY, hatch="//", alpha=0.6)
    tops.append((len(steps) + 1, retained + new, "+" + money(new)))
    for x, y, text in tops:
        ax.annotate(
            text,
            (x, y),
            xytext=(0, 3),
            textcoords="offset points",
            ha="center",
            va="bottom",
            fontsize=8,
        )
    names = [n for n, _, _ in steps] + ["Retained\n(NRR)", "New +\nreactivated\n(not in NRR)"]
    ax.set_xticks(range(len(names)), names, fontsize=8)
    high = max(y for _, y, _ in tops)
    moves = max([abs(v) for _, v, _ in steps[1:]] + [new])
    # From zero the moves are slivers under the starting bar: start the axis just below
    # the lowest level the bridge reaches, and say so in the title.
    low = min(start, retained) - 1.5 * moves
    step = 10 ** np.floor(np.log10(max(high - low, 1.0)))
    low = float(np.floor(low / step) * step)
    title = f"ARR bridge {period['period_label']}"
    if low <= 0.3 * start or low <= 0:
        low = 0.0
    else:
        title += f" (axis starts at {currency(low)})"
    ax.set_ylim(low, high + 0.12 * (high - low))
    money_axis(ax)
    ax.set_ylabel("ARR")
    ax.set_title(title)
    return to_data_uri(fig)


def nrr_over_time_chart(pooled: pd.DataFrame, by_segment: pd.DataFrame | None) -> str:
    """Quarterly NRR and GRR, pooled and by segment."""
    fig = _figure(height=3.8)
    axes = fig.subplots(1, 2, sharey=True)
    for ax, metric in zip(axes, ("nrr", "grr"), strict=True):
        ax.plot(pooled["period_label"], 100 * pooled[metric], color="black", lw=2, label=POOLED)
        if by_segment is not None and not by_segment.empty:
            for i, (segment, part) in enumerate(by_segment.groupby("segment", sort=True)):
                ax.plot(
                    part["period_label"],
                    100 * part[metric],
                    color=PALETTE[i % len(PALETTE)],
                    label=str(segment),
                )
        ax.axhline(100, color=GREY, lw=0.8, ls="--")
        ax.set_title(metric.upper() + " by quarter (%)")
        ax.tick_params(axis="x", labelrotation=60, labelsize=7)
    axes[0].legend(fontsize=7)
    return to_data_uri(fig)


def cohort_heatmap_chart(heatmap: pd.DataFrame) -> str:
    """Signup-quarter cohort x months since start: ARR retained as % of starting ARR."""
    fig = _figure(height=4.0)
    if heatmap.empty:
        return _empty(fig, "No cohort data (accounts.created_at absent)")
    grid = heatmap.pivot(index="cohort", columns="months_since_start", values="retention")
    ax = fig.add_subplot()
    image = ax.imshow(
        100 * grid.to_numpy(dtype=float), aspect="auto", cmap="RdYlGn", vmin=50, vmax=150
    )
    ax.set_yticks(range(len(grid.index)), [str(c) for c in grid.index], fontsize=7)
    step = max(1, len(grid.columns) // 12)
    ticks = list(range(0, len(grid.columns), step))
    ax.set_xticks(ticks, [str(grid.columns[t]) for t in ticks], fontsize=7)
    ax.set_xlabel("months since first ARR")
    fig.colorbar(image, ax=ax, label="ARR retained %")
    return to_data_uri(fig)


def _fan_band(ax: Axes, part: pd.DataFrame, colour: str, label: str) -> None:
    labels = [str(q) for q in part["quarter_label"]]
    ax.fill_between(labels, 100 * part["p10"], 100 * part["p90"], color=colour, alpha=0.25)
    ax.plot(labels, 100 * part["p50"], "o-", color=colour, label=label)


def fan_chart(fan: pd.DataFrame, history: pd.DataFrame | None = None) -> str:
    """Quarterly NRR fan after the history, and the cumulative NRR of today's book."""
    fig = _figure(width=9.0, height=3.8)
    left, right = fig.subplots(1, 2)
    pooled = fan[fan["group"] == POOLED].sort_values("quarter")
    if history is not None and not history.empty:
        tail = history.tail(8)
        left.plot(
            list(tail["period_label"].astype(str)),
            100 * tail["nrr"],
            "o-",
            color=GREY,
            label="actual",
        )
    _fan_band(left, pooled[pooled["metric"] == "quarter_nrr"], BLUE, "forecast P50 (P10-P90)")
    _fan_band(right, pooled[pooled["metric"] == "nrr"], BLUE, "NRR P50 (P10-P90)")
    _fan_band(right, pooled[pooled["metric"] == "grr"], ORANGE, "GRR P50 (P10-P90)")
    left.set_title("Quarterly NRR %", fontsize=10)
    right.set_title("Cumulative NRR / GRR of today's book %", fontsize=10)
    for ax in (left, right):
        ax.axhline(100, color=GREY, lw=0.8, ls="--")
        ax.legend(fontsize=7)
        ax.tick_params(axis="x", labelrotation=45, labelsize=8)
    return to_data_uri(fig)


def health_band_chart(bands: pd.DataFrame) -> str:
    """ARR and accounts per health band."""
    fig = _figure(height=3.2)
    if bands.empty:
        return _empty(fig, "No health scores available")
    ax = fig.add_subplot()
    colours = [BAND_COLOURS.get(str(b), GREY) for b in bands["health_band"]]
    names = [str(b) for b in bands["health_band"]]
    ax.barh(names, bands["arr"], color=colours)
    for i, (arr, n) in enumerate(zip(bands["arr"], bands["accounts"], strict=True)):
        ax.annotate(
            f"{currency(float(arr))} ({int(n)} accounts)",
            (float(arr), i),
            xytext=(4, 0),
            textcoords="offset points",
            va="center",
            fontsize=8,
        )
    ax.invert_yaxis()
    ax.set_xlim(0, 1.3 * float(bands["arr"].max()))
    money_axis(ax, "x")
    ax.set_xlabel("ARR")
    return to_data_uri(fig)


def account_labels(top: pd.DataFrame) -> list[str]:
    """'Name (id)' per account when the table carries names, else the id."""
    ids = [str(a) for a in top["account_id"]]
    if "name" not in top.columns:
        return ids
    names = top["name"].astype("string")
    return [
        ident if pd.isna(name) or not str(name) else f"{str(name)[:28]} ({ident})"
        for name, ident in zip(names, ids, strict=True)
    ]


def top_accounts_chart(top: pd.DataFrame, *, value: str, title: str, colour: str) -> str:
    """Horizontal bars of the top accounts by `value`."""
    fig = _figure(height=3.4)
    if top.empty:
        return _empty(fig, "No accounts")
    ax = fig.add_subplot()
    ax.barh(account_labels(top), top[value], color=colour)
    ax.invert_yaxis()
    ax.set_title(title)
    ax.tick_params(axis="y", labelsize=7)
    money_axis(ax, "x")
    return to_data_uri(fig)


def backtest_chart(backtest: pd.DataFrame) -> str:
    """Pooled NRR P10-P90 interval per origin quarter against the actual, one panel per horizon."""
    pooled = backtest[backtest["segment"] == POOLED]
    if "horizon" not in pooled.columns:
        pooled = pooled.assign(horizon=1)
    horizons = sorted(int(h) for h in pooled["horizon"].unique())
    fig = _figure(width=max(7.5, 3.0 * len(horizons)), height=3.6)
    if pooled.empty:
        return _empty(fig, "No backtest quarters")
    axes = np.atleast_1d(fig.subplots(1, len(horizons)))
    for ax, h in zip(axes, horizons, strict=True):
        part = pooled[pooled["horizon"] == h].sort_values("quarter")
        x = np.arange(len(part))
        p50 = 100 * part["p50"].to_numpy(dtype=float)
        low = p50 - 100 * part["p10"].to_numpy(dtype=float)
        high = 100 * part["p90"].to_numpy(dtype=float) - p50
        ax.errorbar(x, p50, yerr=[low, high], fmt="o", color=BLUE, capsize=3, label="P10-P90")
        covered = part["covered"].astype(bool).to_numpy()
        actual = 100 * part["actual"].to_numpy(dtype=float)
        ax.scatter(x[covered], actual[covered], marker="x", color=GREEN, zorder=3, label="inside")
        ax.scatter(x[~covered], actual[~covered], marker="x", color=RED, zorder=3, label="outside")
        ax.set_xticks(x, [str(q) for q in part["quarter"]], rotation=60, fontsize=7)
        ax.set_title(f"{h} quarter{'s' * (h != 1)} ahead", fontsize=9)
    axes[0].set_ylabel("NRR of the book at the origin %")
    axes[0].legend(fontsize=7)
    return to_data_uri(fig)
