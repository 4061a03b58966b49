"""The interactive leadership page: plotly charts to hover, one segment filter for all of them.

plotly.js comes from the installed plotly wheel and is inlined once, so interactive.html opens
with the network off. Every chart is built per segment in Python (figures and one-line
readings, formatted like the static report); the page's script only swaps them when the
filter changes, so the numbers a reader hovers are exactly the forecast tables' rows.
"""

from __future__ import annotations

import html
import json
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
import plotly.graph_objects as go
import plotly.io as pio
from plotly.offline import get_plotlyjs

from models.revenue.forecast import POOLED, backtest_horizons
from serving.dashboard import INTERACTIVE_FILE, REPORT_FILE
from serving.forecasting import NEW_LOGO_NOTE, ForecastTables, NrrTables
from serving.report_charts import BLUE, GREEN, GREY, ORANGE, RED, currency, money
from serving.report_html import ReportInputs, header, pct

__all__ = ["INTERACTIVE_FILE", "PLOTLY_CONFIG", "Chart", "charts", "render_interactive"]

# No plotly logo and no way to send the data anywhere: the page is for reading.
PLOTLY_CONFIG: Mapping[str, Any] = {
    "displaylogo": False,
    "showLink": False,
    "showSendToCloud": False,
    "showEditInChartStudio": False,
    "responsive": True,
    "modeBarButtonsToRemove": ["lasso2d", "select2d"],
}
COVERAGE_TARGET = 0.8  # the P10-P90 interval should hold the actual 80% of the time
_BAND_FILL = "rgba(31,95,168,0.18)"
_LIGHT_GREY = "#c8c8c8"
_ARR_METRICS = {"expansion_arr": GREEN, "contraction_arr": ORANGE, "churned_arr": RED}


@dataclass(frozen=True)
class Chart:
    """One chart of the page: per segment (group name) a plotly figure and its reading."""

    key: str
    title: str
    figures: Mapping[str, go.Figure]
    readings: Mapping[str, str]


def _interval(p10: float, p90: float, fmt: Callable[[float], str]) -> str:
    return f"{fmt(p10)}\u2013{fmt(p90)}"


def _groups(forecast: ForecastTables) -> list[str]:
    """The pooled book first, then each segment of the forecast."""
    return [POOLED, *sorted(set(forecast.summary["group"].astype(str)) - {POOLED})]


def _accounts(forecast: ForecastTables, group: str) -> int:
    if group == POOLED:
        return len(forecast.accounts)
    return int((forecast.accounts["segment"].astype(str) == group).sum())


def _layout(title_y: str, title_x: str, **extra: Any) -> dict[str, Any]:
    return {
        "template": "plotly_white",
        "height": 380,
        # legend above the plot (rotated quarter labels below would run into it), the mode
        # bar above the legend's right end
        "margin": {"l": 70, "r": 20, "t": 60, "b": 50},
        "xaxis": {"title": {"text": title_x}, "type": "category"},
        "yaxis": {"title": {"text": title_y}, "tickformat": ".0%", "exponentformat": "none"},
        "legend": {"orientation": "h", "x": 0, "y": 1.02, "yanchor": "bottom"},
        "hoverlabel": {"namelength": -1},
        **extra,
    }


def _percent_line(y: float, text: str = "") -> dict[str, Any]:
    """A dashed reference line across the plot at `y`, labelled at its right end."""
    line: dict[str, Any] = {
        "type": "line",
        "xref": "paper",
        "x0": 0,
        "x1": 1,
        "y0": y,
        "y1": y,
        "line": {"color": GREY, "dash": "dash", "width": 1},
    }
    if text:
        line["label"] = {"text": text, "textposition": "end", "font": {"size": 11, "color": GREY}}
    return line


def _floats(values: pd.Series) -> list[float]:
    # plain lists: plotly would pack numpy arrays as base64 typed arrays in the page
    return [float(v) for v in values]


def _fan_rows(forecast: ForecastTables, group: str, metric: str) -> pd.DataFrame:
    fan = forecast.fan
    rows = fan[(fan["group"].astype(str) == group) & (fan["metric"] == metric)]
    return rows.sort_values("quarter")


def _who(forecast: ForecastTables, group: str) -> str:
    return "today's book" if group == POOLED else f"{group} accounts of today's book"


def cumulative_chart(forecast: ForecastTables, groups: Sequence[str]) -> Chart:
    """(a) Cumulative NRR of today's book per fan quarter: P10-P90 band and P50 line."""
    figures, readings = {}, {}
    for group in groups:
        rows = _fan_rows(forecast, group, "nrr")
        x = [str(q) for q in rows["quarter_label"]]
        p10, p50, p90 = (_floats(rows[c]) for c in ("p10", "p50", "p90"))
        text = [[pct(b), pct(m), pct(t)] for b, m, t in zip(p10, p50, p90, strict=True)]
        fig = go.Figure(
            [
                go.Scatter(
                    x=x,
                    y=p90,
                    mode="lines",
                    line={"width": 0},
                    hoverinfo="skip",
                    showlegend=False,
                    name="P90",
                ),
                go.Scatter(
                    x=x,
                    y=p10,
                    mode="lines",
                    line={"width": 0},
                    fill="tonexty",
                    fillcolor=_BAND_FILL,
                    hoverinfo="skip",
                    name="P10\u2013P90 (8 scenarios in 10)",
                ),
                go.Scatter(
                    x=x,
                    y=p50,
                    mode="lines+markers",
                    name="P50",
                    line={"color": BLUE, "width": 3},
                    customdata=text,
                    hovertemplate="Through %{x}: P50 %{customdata[1]}<br>"
                    "P10\u2013P90 %{customdata[0]}\u2013%{customdata[2]}<extra></extra>",
                ),
            ],
            _layout(
                "Cumulative NRR of today's book",
                "Through the end of quarter",
                shapes=[_percent_line(1.0, "100%: the book keeps its ARR")],
                hovermode="x",
            ),
        )
        figures[group] = fig
        readings[group] = (
            f"After {len(rows)} quarter{'s' * (len(rows) != 1)} ({x[-1]}) {_who(forecast, group)} "
            f"{'keeps' if group == POOLED else 'keep'} P50 {pct(p50[-1])} of "
            f"{'its' if group == POOLED else 'their'} ARR "
            f"(P10\u2013P90 {_interval(p10[-1], p90[-1], pct)}); new logos not counted."
            if x
            else "No fan for this group."
        )
    return Chart("cumulative", "Cumulative NRR of today's book", figures, readings)


def _history(nrr: NrrTables, group: str) -> pd.DataFrame:
    """Quarters with starting ARR of the pooled book or of one segment."""
    if group == POOLED:
        frame = nrr.quarterly
    else:
        by_segment = nrr.by_split.get("segment")
        if by_segment is None or by_segment.empty:
            return nrr.quarterly.iloc[:0]
        frame = by_segment[by_segment["segment"].astype(str) == group]
    return frame[frame["starting_arr"] > 0]


def quarterly_chart(inputs: ReportInputs, groups: Sequence[str]) -> Chart:
    """(b) Actual quarterly NRR, then each forecast quarter's P50 with P10-P90 error bars."""
    fc, size = inputs.forecast, inputs.nrr.min_cohort_accounts
    figures, readings = {}, {}
    for group in groups:
        past = _history(inputs.nrr, group)
        labels = [str(q) for q in past["period_label"]]
        logos = (
            [int(n) for n in past["starting_logos"]]
            if "starting_logos" in past.columns
            else [size] * len(past)
        )
        small = [n < size for n in logos]
        notes = [
            f"{n} accounts at the start: too few to read" if s else f"{n} accounts at the start"
            for n, s in zip(logos, small, strict=True)
        ]
        ahead = _fan_rows(fc, group, "quarter_nrr")
        x = [str(q) for q in ahead["quarter_label"]]
        p10, p50, p90 = (_floats(ahead[c]) for c in ("p10", "p50", "p90"))
        fig = go.Figure(
            [
                go.Scatter(
                    x=labels,
                    y=_floats(past["nrr"]),
                    mode="lines+markers",
                    name="Actual",
                    line={"color": "#444"},
                    marker={"size": 8, "color": [_LIGHT_GREY if s else "#444" for s in small]},
                    customdata=[[pct(v), n] for v, n in zip(past["nrr"], notes, strict=True)],
                    hovertemplate="%{x} actual: %{customdata[0]}<br>%{customdata[1]}"
                    "<extra></extra>",
                ),
                go.Scatter(
                    x=x,
                    y=p50,
                    mode="markers",
                    name="Forecast P50 (bars: P10\u2013P90)",
                    marker={"size": 10, "color": BLUE},
                    error_y={
                        "type": "data",
                        "array": [t - m for t, m in zip(p90, p50, strict=True)],
                        "arrayminus": [m - b for m, b in zip(p50, p10, strict=True)],
                        "color": BLUE,
                    },
                    customdata=[
                        [pct(b), pct(m), pct(t)] for b, m, t in zip(p10, p50, p90, strict=True)
                    ],
                    hovertemplate="%{x} forecast: P50 %{customdata[1]}<br>P10\u2013P90 "
                    "%{customdata[0]}\u2013%{customdata[2]}<extra></extra>",
                ),
            ],
            _layout(
                "Quarterly NRR",
                "Quarter",
                shapes=[
                    _percent_line(1.0, "100%"),
                    *(
                        [
                            {
                                "type": "rect",
                                "xref": "x",
                                "yref": "paper",
                                "x0": len(labels) - 0.5,
                                "x1": len(labels) + len(x) - 0.5,
                                "y0": 0,
                                "y1": 1,
                                "fillcolor": "rgba(31,95,168,0.06)",
                                "line": {"width": 0},
                                "layer": "below",
                                "label": {
                                    "text": "forecast",
                                    "textposition": "top center",
                                    "font": {"size": 11, "color": BLUE},
                                },
                            }
                        ]
                        if x
                        else []
                    ),
                ],
            ),
        )
        figures[group] = fig
        reading = []
        if labels:
            last = past.iloc[-1]
            reading.append(f"Last actual quarter {labels[-1]}: NRR {pct(float(last['nrr']))}")
            if small[-1]:
                reading[-1] += f" ({logos[-1]} accounts, too few to read)"
        if x:
            reading.append(
                f"forecast {x[0]} P50 {pct(p50[0])} (P10\u2013P90 {_interval(p10[0], p90[0], pct)})"
            )
        readings[group] = ("; ".join(reading) or "No quarter with starting ARR yet") + "."
    return Chart("quarterly", "Quarterly NRR: actual, then forecast", figures, readings)


def _nice_step(top: float, ticks: int = 5) -> float:
    """1, 2, 2.5 or 5 times a power of ten, giving about `ticks` ticks up to `top`."""
    raw = max(top, 1.0) / ticks
    power = 10 ** np.floor(np.log10(raw))
    return float(next(m * power for m in (1, 2, 2.5, 5, 10) if m * power >= raw))


def money_ticks(top: float) -> dict[str, Any]:
    """Axis ticks from $0 to above `top` labelled $450K / $1.2M (d3 would write '450k')."""
    step = _nice_step(top)
    values = [step * i for i in range(int(np.ceil(top / step)) + 1)]
    return {
        "tickmode": "array",
        "tickvals": values,
        "ticktext": [currency(v) for v in values],
        "range": [0, values[-1] * 1.05],
    }


def movements_chart(forecast: ForecastTables, groups: Sequence[str]) -> Chart:
    """(c) Next quarter's expansion, contraction and churned ARR: P50 bars, P10-P90 bars."""
    figures, readings = {}, {}
    for group in groups:
        part = forecast.summary[forecast.summary["group"].astype(str) == group]
        by = part.set_index("metric")
        names = [header(m) for m in _ARR_METRICS]
        p10, p50, p90 = ([float(by.loc[m, c]) for m in _ARR_METRICS] for c in ("p10", "p50", "p90"))
        fig = go.Figure(
            [
                go.Bar(
                    x=names,
                    y=p50,
                    name="P50",
                    marker={"color": list(_ARR_METRICS.values())},
                    error_y={
                        "type": "data",
                        "array": [t - m for t, m in zip(p90, p50, strict=True)],
                        "arrayminus": [m - b for m, b in zip(p50, p10, strict=True)],
                        "color": "#333",
                    },
                    customdata=[
                        [money(b), money(m), money(t)]
                        for b, m, t in zip(p10, p50, p90, strict=True)
                    ],
                    hovertemplate="%{x}: P50 %{customdata[1]}<br>P10\u2013P90 "
                    "%{customdata[0]}\u2013%{customdata[2]}<extra></extra>",
                    showlegend=False,
                )
            ],
            _layout(f"ARR gained or lost in {forecast.quarter}", "", showlegend=False),
        )
        fig.update_yaxes(tickformat=None, **money_ticks(max(p90)))
        figures[group] = fig
        start = float(by.loc["starting_arr", "p50"])
        readings[group] = (
            f"{forecast.quarter}, starting ARR {money(start)}: "
            + ", ".join(
                f"{n.lower()} P50 {money(m)} ({_interval(b, t, money)})"
                for n, b, m, t in zip(names, p10, p50, p90, strict=True)
            )
            + "."
        )
    return Chart(
        "movements",
        f"Next quarter ({forecast.quarter}): expansion, contraction and churn",
        figures,
        readings,
    )


def _coverage(backtest: pd.DataFrame, group: str) -> pd.DataFrame:
    """Per horizon: share of origins whose actual NRR fell inside P10-P90, and the origins."""
    rows = backtest[backtest["segment"].astype(str) == group]
    horizon = backtest_horizons(backtest)[rows.index]
    out = (
        rows.assign(horizon=horizon, covered=rows["covered"].astype(bool))
        .groupby("horizon", sort=True)["covered"]
        .agg(coverage="mean", inside="sum", origins="size")
        .reset_index()
    )
    return out


def coverage_chart(backtest: pd.DataFrame, groups: Sequence[str]) -> Chart:
    """(d) Backtested P10-P90 coverage per horizon against the 80% target."""
    figures, readings = {}, {}
    for group in groups:
        own = _coverage(backtest, group)
        table, whose = (own, group) if not own.empty else (_coverage(backtest, POOLED), POOLED)
        names = [f"{h} quarter{'s' * (h != 1)} ahead" for h in table["horizon"].astype(int)]
        cover = _floats(table["coverage"])
        counts = [
            f"{int(i)} of {int(n)}" for i, n in zip(table["inside"], table["origins"], strict=True)
        ]
        fig = go.Figure(
            [
                go.Bar(
                    x=names,
                    y=cover,
                    marker={"color": BLUE},
                    text=[pct(c) for c in cover],
                    textposition="outside",
                    customdata=[[pct(c), n] for c, n in zip(cover, counts, strict=True)],
                    hovertemplate="%{x}: actual inside P10\u2013P90 %{customdata[0]} "
                    "(%{customdata[1]} origins)<extra></extra>",
                    showlegend=False,
                )
            ],
            _layout(
                "Actual inside P10\u2013P90",
                "Forecast horizon",
                bargap=0.5,
                # the target in the legend: a label on the line would sit on a bar
                shapes=[
                    {
                        **_percent_line(COVERAGE_TARGET),
                        "showlegend": True,
                        "name": f"Target: {pct(COVERAGE_TARGET)} of actuals inside P10\u2013P90",
                    }
                ],
            ),
        )
        fig.update_yaxes(range=[0, 1.12])
        figures[group] = fig
        scope = "the whole book" if whose == POOLED else group
        note = f" No backtest of {group} alone: the whole book is shown." if whose != group else ""
        readings[group] = (
            f"Past forecasts of {scope}: "
            + "; ".join(
                f"{n} {pct(c)} ({k} origins)" for n, c, k in zip(names, cover, counts, strict=True)
            )
            + f" inside P10\u2013P90 (target {pct(COVERAGE_TARGET)})."
            + note
        )
    return Chart("coverage", "Backtest: how often the interval held the actual", figures, readings)


def charts(inputs: ReportInputs) -> list[Chart]:
    """The page's charts in reading order; the backtest chart only with a backtest."""
    groups = _groups(inputs.forecast)
    out = [
        cumulative_chart(inputs.forecast, groups),
        quarterly_chart(inputs, groups),
        movements_chart(inputs.forecast, groups),
    ]
    if inputs.backtest is not None and not inputs.backtest.empty:
        out.append(coverage_chart(inputs.backtest, groups))
    return out


def _option(forecast: ForecastTables, group: str, size: int) -> str:
    n = _accounts(forecast, group)
    if group == POOLED:
        label = f"All accounts ({n:,})"
    else:
        few = ", too few to read" if n < size else ""
        label = f"{group} ({n:,} account{'s' * (n != 1)}{few})"
    return f'<option value="{html.escape(group)}">{html.escape(label)}</option>'


def _json_script(payload: Any) -> str:
    # '</' would end the script element early; JSON allows the escaped '<\/'
    return json.dumps(payload, separators=(",", ":")).replace("</", "<\\/")


_CSS = """
body{font-family:system-ui,-apple-system,Segoe UI,sans-serif;margin:1.5rem auto;max-width:1240px;
color:#222;line-height:1.4;padding:0 1rem}
h1{margin:0 0 .2rem} .meta{color:#555;font-size:.9rem;margin:.2rem 0}
.scope{background:#fff7e0;border-left:4px solid #e67e22;padding:.4rem .8rem;font-size:.9rem}
.filter{position:sticky;top:0;background:#fff;padding:.6rem 0;z-index:10;border-bottom:1px solid #ddd}
.filter select{font-size:1rem;padding:.2rem .4rem}
.grid{display:grid;grid-template-columns:repeat(auto-fit,minmax(520px,1fr));gap:1rem}
.card{border:1px solid #ddd;border-radius:6px;padding:.6rem .8rem;min-width:0;display:flex;
flex-direction:column} .card h2{font-size:1.05rem;margin:.1rem 0}
.reading{color:#1f5fa8;font-weight:600;font-size:.95rem;margin:.2rem 0 .4rem;flex:1}
.chart{width:100%;height:380px;flex:none}
"""

_SCRIPT = """
(function () {
  var page = JSON.parse(document.getElementById("nrr-data").textContent);
  var select = document.getElementById("segment");
  function show(group) {
    page.charts.forEach(function (chart) {
      var fig = chart.figures[group];
      Plotly.react(chart.key, fig.data, fig.layout, page.config);
      document.getElementById(chart.key + "-reading").textContent = chart.readings[group];
    });
  }
  select.addEventListener("change", function () { show(select.value); });
  show(select.value);
})();
"""


def page_data(inputs: ReportInputs) -> dict[str, Any]:
    """What the page's script reads: every chart's figures and readings per group, the config."""
    return {
        "groups": _groups(inputs.forecast),
        "config": dict(PLOTLY_CONFIG),
        "charts": [
            {
                "key": c.key,
                "title": c.title,
                "figures": {g: json.loads(pio.to_json(f)) for g, f in c.figures.items()},
                "readings": dict(c.readings),
            }
            for c in charts(inputs)
        ],
    }


def render_interactive(inputs: ReportInputs) -> str:
    """interactive.html: plotly.js inlined once, the charts, the segment filter; no network."""
    fc = inputs.forecast
    data = page_data(inputs)
    options = "".join(_option(fc, g, inputs.nrr.min_cohort_accounts) for g in data["groups"])
    cards = "".join(
        f'<div class="card" id="card-{c["key"]}"><h2>{html.escape(c["title"])}</h2>'
        f'<p class="reading" id="{c["key"]}-reading"></p>'
        f'<div class="chart" id="{c["key"]}"></div></div>'
        for c in data["charts"]
    )
    meta = (
        f"The NRR forecast from {fc.as_of:%Y-%m-%d} for {fc.quarter} and the following "
        f"quarters ({fc.draws:,} Monte Carlo scenarios), with the NRR history through "
        f"{inputs.nrr.data_end:%Y-%m-%d}. Hover a chart for P10 / P50 / P90; the filter "
        "switches every chart to one segment. Works offline: the chart library is inside "
        "this file."
    )
    title = f"{inputs.title}: interactive charts"
    return (
        "<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'>"
        "<link rel='icon' href='data:,'>"  # no /favicon.ico request
        "<meta name='viewport' content='width=device-width,initial-scale=1'>"
        f"<title>{html.escape(title)}</title><style>{_CSS}</style>"
        f"<script>{get_plotlyjs()}</script></head><body>"
        f"<h1>{html.escape(title)}</h1><p class='meta'>{html.escape(meta)}</p>"
        f"<p class='meta'>Tables, cohorts, accounts and notes: "
        f"<a id='report-link' href='{REPORT_FILE}'>the full report</a>.</p>"
        f"<p class='scope'>{html.escape(NEW_LOGO_NOTE)}</p>"
        "<div class='filter'><label for='segment'><b>Segment</b> </label>"
        f"<select id='segment'>{options}</select></div>"
        f"<div class='grid'>{cards}</div>"
        f"<script type='application/json' id='nrr-data'>{_json_script(data)}</script>"
        f"<script>{_SCRIPT}</script></body></html>"
    )
