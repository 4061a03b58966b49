"""Self-contained HTML leadership report: every chart inline with a one-line reading."""

from __future__ import annotations

import html
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from models.outcomes.interventions import InterventionReport
from models.outcomes.tables import OutcomeTables
from models.revenue.forecast import POOLED, backtest_horizons
from models.revenue.nrr import NrrBands, SegmentBenchmark, nrr_band, segment_context
from serving import report_charts as charts
from serving.dashboard import INTERACTIVE_FILE
from serving.forecasting import CONTRACTION_NOTE, NEW_LOGO_NOTE, ForecastTables, NrrTables
from serving.report_charts import money, money_column

BACKTEST_COLUMNS: tuple[str, ...] = (
    "quarter",
    "segment",
    "p10",
    "p50",
    "p90",
    "actual",
    "covered",
    "pinball",
    "naive_pinball",
)


@dataclass(frozen=True)
class Section:
    """One block of the report: a title, a one-line reading and a figure or table."""

    key: str
    title: str
    reading: str
    image: str | None = None  # data URI
    table: str = ""  # HTML
    aside: str = ""  # HTML shown beside the figure


@dataclass(frozen=True)
class ReportInputs:
    """Everything the report shows."""

    nrr: NrrTables
    forecast: ForecastTables
    backtest: pd.DataFrame | None = None
    title: str = "NRR forecast"
    model_source: str = ""  # which models produced the probabilities (or the fallback)
    origin: str = ""
    # NRR bands and segment benchmarks of the rules file (experiments/rules.yaml `revenue`).
    bands: NrrBands | None = None
    benchmarks: Mapping[str, SegmentBenchmark] = field(default_factory=dict)
    # churn timing and win-back (models.outcomes.tables.OutcomeTables) and NRR targets
    # (models.outcomes.targets.target_probabilities); absent sections are left out
    outcomes: OutcomeTables | None = None
    targets: pd.DataFrame | None = None
    interventions: InterventionReport | None = None  # models.outcomes.interventions
    # themes.json / roadmap.json content (serving.voice_files) and their sections
    # (serving.voice_report); absent: no section
    voice: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)
    voice_sections: tuple[Section, ...] = ()

    def __post_init__(self) -> None:
        if self.backtest is not None:
            missing = [c for c in BACKTEST_COLUMNS if c not in self.backtest.columns]
            if missing:
                raise ValueError(f"backtest table is missing column(s) {missing}")


def pct(value: float) -> str:
    """0.1234 -> '12%' ('n/a' when not finite)."""
    return f"{100 * value:.0f}%" if np.isfinite(value) else "n/a"


def _loss(value: float) -> str:
    return f"{value:.4f}"


# One header per column name, used by every table of the report.
HEADERS: Mapping[str, str] = {
    "account_id": "Account ID",
    "name": "Account",
    "csm_owner": "CSM owner",
    "segment": "Segment",
    "plan": "Plan",
    "arr": "ARR",
    "churn_probability": "Churn prob. (90 days)",
    "expansion_probability": "Expansion prob. (90 days)",
    "health_score": "Health score",
    "health_band": "Health band",
    "arr_at_risk": "Expected ARR at risk",
    "expected_expansion_arr": "Expected expansion ARR",
    "group": "Group",
    "starting_arr": "Starting ARR",
    "expansion_arr": "Expansion",
    "contraction_arr": "Contraction",
    "churned_arr": "Churn",
    "ending_arr": "Ending ARR",
    "nrr": "NRR",
    "grr": "GRR",
    "starting_logos": "Accounts at start",
    "accounts": "Accounts",
    "arr_share": "Share of ARR",
    "mean_churn_probability": "Mean churn prob.",
    "cohort": "Cohort",
    "horizon": "Horizon (quarters)",
    "quarter": "Quarter",
    "p10": "P10",
    "p50": "P50",
    "p90": "P90",
    "actual": "Actual",
    "covered": "Inside P10-P90",
    "pinball": "Pinball loss",
    "naive_pinball": "Naive pinball loss",
    "owner": "Owner",
    "quarter_target": "Next-quarter target",
    "p_quarter": "Chance (next quarter)",
    "nrr_p50_quarter": "P50 NRR (next quarter)",
    "annual_target": "Annual target",
    "p_year": "Chance (4 quarters)",
    "nrr_p50_year": "P50 NRR (4 quarters)",
    "churned_accounts": "Churned accounts",
    "risk_level": "Risk level (health band)",
    "treated": "At-risk accounts with the play",
    "saved_rate": "Saved",
    "control_saved_rate": "Saved (matched, no play)",
    "saved_effect_ci": "Saved: effect (95%)",
    "retained_effect_ci": "Retained: effect (95%)",
    "churned_total_arr": "Churned ARR",
    "churn_at": "Churned on",
    "arr_at_churn": "ARR at churn",
    "return_probability": "Return prob. (90 days)",
    "reason": "Inferred reason",
    "approach": "Win-back approach",
    "timing": "When",
    "rank": "#",
    "status": "Status",
}


def header(column: object) -> str:
    """The human header of a column ('expansion_arr' -> 'Expansion')."""
    name = str(column)
    return HEADERS.get(name, name.replace("_", " ").capitalize())


def _yes_no(value: float) -> str:
    return "yes" if value else "no"


WIDE_TABLE = 7  # tables with more columns get a smaller font


def table_html(
    frame: pd.DataFrame,
    formats: Mapping[str, Callable[[float], str]],
    *,
    muted: Sequence[bool] | None = None,
    right: Sequence[str] = (),
) -> str:
    """An escaped HTML table inside a scrolling wrapper, with human headers.

    Columns in `formats` are formatted by their function; a column formatted with `money`
    gets one unit for all its cells (see `money_column`). Rows flagged in `muted` are greyed;
    columns in `right` hold figures already formatted as text (aligned like numbers).
    """
    fmts = {
        str(col): money_column(frame[col]) if formats.get(str(col)) is money else formats[str(col)]
        for col in frame.columns
        if str(col) in formats
    }
    head = "".join(f"<th>{html.escape(header(c))}</th>" for c in frame.columns)
    rows = []
    flags = list(muted) if muted is not None else [False] * len(frame)
    for record, grey in zip(frame.itertuples(index=False), flags, strict=True):
        cells = []
        for col, value in zip(frame.columns, record, strict=True):
            fmt = fmts.get(str(col))
            missing = value is None or (isinstance(value, float) and not np.isfinite(value))
            missing = missing or (not isinstance(value, str) and bool(pd.isna(value)))
            text = "" if missing else fmt(float(value)) if fmt else str(value)
            kind = "num" if fmt or str(col) in right else "text"
            cells.append(f'<td class="{kind}">{html.escape(text)}</td>')
        mark = ' class="small"' if grey else ""
        rows.append(f"<tr{mark}>" + "".join(cells) + "</tr>")
    wide = " wide" if len(frame.columns) > WIDE_TABLE else ""
    return (
        f'<div class="table-wrap"><table class="data{wide}"><thead><tr>{head}</tr></thead>'
        f"<tbody>{''.join(rows)}</tbody></table></div>"
    )


def _expansion_leader(forecast: ForecastTables) -> str:
    by_segment = forecast.accounts.groupby("segment")["expected_expansion_arr"].sum()
    total = float(by_segment.sum())
    if total <= 0 or by_segment.empty:
        return "no expansion expected"
    top = str(by_segment.idxmax())
    return f"expansion concentrated in {top} ({pct(float(by_segment.max()) / total)} of expected)"


def horizon_coverage(backtest: pd.DataFrame | None, horizon: int) -> tuple[float, int] | None:
    """Pooled P10-P90 coverage and origins of one backtest horizon; None without such rows."""
    if backtest is None or backtest.empty:
        return None
    rows = backtest[(backtest_horizons(backtest) == horizon) & (backtest["segment"] == POOLED)]
    if rows.empty:
        return None
    return float(rows["covered"].astype(bool).mean()), len(rows)


def forecast_reading(forecast: ForecastTables, backtest: pd.DataFrame | None = None) -> str:
    """'2026Q1 NRR P50 104%, 80% interval 99-109%; expansion concentrated in Enterprise'.

    The multi-quarter NRR of today's book is quoted only beside its own backtested
    coverage (the backtest's rows of that horizon); without them it is left out.
    """
    p10, p50, p90 = (forecast.value("nrr", c) for c in ("p10", "p50", "p90"))
    grr = forecast.value("grr")
    text = (
        f"{forecast.quarter} NRR P50 {pct(p50)}, 80% interval {pct(p10)}-{pct(p90)} "
        f"(GRR P50 {pct(grr)}); {_expansion_leader(forecast)}"
    )
    last = forecast.fan[(forecast.fan["group"] == POOLED) & (forecast.fan["metric"] == "nrr")]
    checked = horizon_coverage(backtest, len(last)) if len(last) > 1 else None
    if checked is not None:
        row = last.sort_values("quarter").iloc[-1]
        coverage, origins = checked
        text += (
            f"; {len(last)}-quarter NRR of today's book P50 {pct(float(row['p50']))} "
            f"(P10-P90 {pct(float(row['p10']))}-{pct(float(row['p90']))}; backtested "
            f"coverage {pct(coverage)} over {origins} origin{'s' * (origins != 1)})"
        )
    return text + "."


def forecast_table(forecast: ForecastTables) -> str:
    """Next-quarter figures per segment as 'P50 (P10-P90)' cells, one unit per column."""
    metrics = ("starting_arr", "expansion_arr", "contraction_arr", "churned_arr", "ending_arr")
    summary = forecast.summary
    rows = []
    for group, part in summary.groupby("group", sort=False):
        by = part.set_index("metric")
        row: dict[str, str] = {"segment": str(group)}
        for metric in (*metrics, "nrr", "grr"):
            if metric in ("nrr", "grr"):
                fmt: Callable[[float], str] = pct
            else:
                fmt = money_column(summary.loc[summary["metric"] == metric, "p90"])
            p10, p50, p90 = (float(by.loc[metric, c]) for c in ("p10", "p50", "p90"))
            row[metric] = (
                fmt(p50) if metric == "starting_arr" else f"{fmt(p50)} ({fmt(p10)}\u2013{fmt(p90)})"
            )
        rows.append(row)
    frame = pd.DataFrame(rows)
    return table_html(frame, {}, right=[c for c in frame.columns if c != "segment"])


def _bands(report: ReportInputs) -> NrrBands:
    if report.bands is not None:
        return report.bands
    from models.rules.config import load_rules_config

    return load_rules_config().revenue.bands()


def band_aside(
    forecast: ForecastTables, *, bands: NrrBands, benchmarks: Mapping[str, SegmentBenchmark]
) -> str:
    """NRR bands (docs/DOMAIN.md) with the forecast's band highlighted, and segment benchmarks."""
    p50 = forecast.value("nrr")
    current, strategy = nrr_band(p50, bands=bands)
    items = []
    for name, text in zip(bands.names, bands.strategies, strict=True):
        mark = ' class="current"' if name == current else ""
        items.append(f"<li{mark}><b>{html.escape(name)}</b>: {html.escape(text)}</li>")
    contexts = []
    for segment in sorted(set(forecast.summary["group"]) - {POOLED}):
        ctx = segment_context(forecast.value("nrr", group=segment), segment, benchmarks=benchmarks)
        if ctx is not None:
            contexts.append(f"<li>{html.escape(ctx.text)}</li>")
    bench = f"<p>Segment benchmarks:</p><ul>{''.join(contexts)}</ul>" if contexts else ""
    return (
        f"<p>Forecast band <b>{html.escape(current)}</b>: {html.escape(strategy)}.</p>"
        f"<p>NRR bands and strategy:</p><ul class='bands'>{''.join(items)}</ul>{bench}"
    )


def _last_complete(quarterly: pd.DataFrame) -> pd.Series | None:
    rows = quarterly[quarterly["starting_arr"] > 0]
    return None if rows.empty else rows.iloc[-1]


def bridge_section(nrr: NrrTables) -> Section:
    """ARR bridge / NRR waterfall of the last complete quarter."""
    last = _last_complete(nrr.quarterly)
    if last is None:
        return Section("bridge", "ARR bridge", "No complete quarter with starting ARR yet.")
    reading = (
        f"{last['period_label']}: NRR {pct(float(last['nrr']))}, GRR {pct(float(last['grr']))}; "
        f"expansion {money(float(last['expansion_arr']))} against contraction "
        f"{money(float(last['contraction_arr']))} and churn {money(float(last['churned_arr']))}."
    )
    return Section("bridge", "ARR bridge / NRR waterfall", reading, charts.arr_bridge_chart(last))


def trend_section(nrr: NrrTables) -> Section:
    """NRR and GRR over time, pooled and by segment."""
    pooled = nrr.quarterly[nrr.quarterly["starting_arr"] > 0]
    by_segment = nrr.by_split.get("segment")
    if pooled.empty:
        return Section("trend", "NRR and GRR over time", "No quarter with starting ARR yet.")
    recent = pooled.tail(4)
    reading = (
        f"Last {len(recent)} quarters: NRR {pct(float(recent['nrr'].min()))}-"
        f"{pct(float(recent['nrr'].max()))}, GRR {pct(float(recent['grr'].min()))}-"
        f"{pct(float(recent['grr'].max()))}"
    )
    if by_segment is not None and not by_segment.empty:
        last = by_segment[by_segment["period_label"] == pooled["period_label"].iloc[-1]]
        last = last[last["starting_arr"] > 0]
        if "starting_logos" in last.columns:  # small segments are never headlined
            last = last[last["starting_logos"] >= nrr.min_cohort_accounts]
        if not last.empty:
            best, worst = last.loc[last["nrr"].idxmax()], last.loc[last["nrr"].idxmin()]
            reading += (
                f"; latest quarter strongest {best['segment']} ({pct(float(best['nrr']))}), "
                f"weakest {worst['segment']} ({pct(float(worst['nrr']))})"
            )
    image = charts.nrr_over_time_chart(pooled, by_segment)
    return Section("trend", "NRR and GRR over time by segment", reading + ".", image)


def _ranked(frame: pd.DataFrame) -> pd.DataFrame:
    """Cohorts of at least the minimum size (tables without the flag are all ranked)."""
    if frame.empty or "below_min_size" not in frame.columns:
        return frame
    return frame[~frame["below_min_size"].astype(bool)]


def cohort_section(nrr: NrrTables) -> Section:
    """Cohort heatmap with the best and worst cohorts of the minimum size named."""
    size = nrr.min_cohort_accounts
    best_rows, worst_rows = _ranked(nrr.best_cohorts), _ranked(nrr.worst_cohorts)
    reading = (
        f"No cohort to rank: cohorts need segment, industry or created_at and {size}+ accounts."
    )
    if not nrr.best_cohorts.empty:
        reading = (
            f"No cohort has the {size}+ accounts needed to rank it; "
            "the extremes below are greyed and not headlined."
        )
    if not best_rows.empty:
        best = best_rows.iloc[0]
        reading = (
            f"Best cohort of {size}+ accounts: {best['group']} at {pct(float(best['nrr']))} "
            "trailing-12-month NRR"
        )
        if not worst_rows.empty:
            worst = worst_rows.iloc[0]
            reading += f"; worst {worst['group']} at {pct(float(worst['nrr']))}"
        reading += "."
    fmt = {"nrr": pct, "grr": pct, "starting_arr": money}
    cols = ["group", "starting_logos", "starting_arr", "nrr", "grr"]
    tables = ""
    for name, frame in (("Best", nrr.best_cohorts), ("Worst", nrr.worst_cohorts)):
        if frame.empty or not set(cols) <= set(frame.columns):
            continue
        flags = (
            frame["below_min_size"].astype(bool).tolist()
            if "below_min_size" in frame.columns
            else None
        )
        shown = frame.loc[:, cols].rename(columns={"group": "cohort"})
        tables += f"<h3>{name} cohorts</h3>" + table_html(shown, fmt, muted=flags)
    if tables and any(
        "below_min_size" in f.columns and f["below_min_size"].any()
        for f in (nrr.best_cohorts, nrr.worst_cohorts)
    ):
        tables += (
            f'<p class="note">Greyed: fewer than {size} accounts at the start of the window, '
            "too few to rank (rules.yaml revenue.min_cohort_accounts).</p>"
        )
    image = charts.cohort_heatmap_chart(nrr.cohort_heatmap)
    return Section("cohorts", "Cohort NRR heatmap", reading, image, tables)


def fan_section(inputs: ReportInputs) -> Section:
    """Next-quarter forecast and the four-quarter fan, with the NRR bands beside it."""
    fc = inputs.forecast
    notes = f"<p>{html.escape(NEW_LOGO_NOTE)} {html.escape(CONTRACTION_NOTE)}</p>"
    table = f"<h3>{html.escape(fc.quarter)}: P50 (P10-P90)</h3>{forecast_table(fc)}{notes}"
    history = inputs.nrr.quarterly[inputs.nrr.quarterly["starting_arr"] > 0]
    image = charts.fan_chart(fc.fan, history)
    return Section(
        "fan",
        "NRR forecast fan (P10-P90)",
        forecast_reading(fc, inputs.backtest),
        image,
        table,
        band_aside(fc, bands=_bands(inputs), benchmarks=inputs.benchmarks),
    )


def health_section(forecast: ForecastTables) -> Section:
    """Health band distribution of the book."""
    bands = forecast.health_bands
    if bands.empty:
        return Section("health", "Health bands", "No health scores available.", None)
    weak = bands[bands["health_band"].isin(["At risk", "Critical", "Churning"])]
    reading = (
        f"{pct(float(weak['arr_share'].sum()))} of ARR ({int(weak['accounts'].sum())} accounts) "
        "sits in At risk or worse."
    )
    fmt = {"arr": money, "arr_share": pct, "mean_churn_probability": pct}
    return Section(
        "health",
        "Health band distribution",
        reading,
        charts.health_band_chart(bands),
        table_html(bands, fmt),
    )


_ACCOUNT_FORMATS: Mapping[str, Callable[[float], str]] = {
    "arr": money,
    "arr_at_risk": money,
    "expected_expansion_arr": money,
    "churn_probability": pct,
    "expansion_probability": pct,
    "health_score": lambda v: f"{v:.0f}",
}


# Columns of the account tables: who the account is and who owns it, then the figures.
_WHO = ("account_id", "name", "csm_owner", "segment", "plan", "arr")
_ACCOUNT_COLUMNS: Mapping[str, tuple[str, ...]] = {
    "arr_at_risk": (*_WHO, "churn_probability", "health_band", "arr_at_risk"),
    "expected_expansion_arr": (
        *_WHO,
        "expansion_probability",
        "health_band",
        "expected_expansion_arr",
    ),
}


def account_table(top: pd.DataFrame, column: str) -> str:
    """The account table of a top-accounts section (name and owner beside each id)."""
    cols = [c for c in _ACCOUNT_COLUMNS[column] if c in top.columns]
    shown = top.loc[:, cols]
    if "csm_owner" in shown.columns:  # an account nobody owns says so
        shown = shown.assign(csm_owner=shown["csm_owner"].astype("string").fillna("no owner"))
    return table_html(shown, _ACCOUNT_FORMATS)


_PHRASES = {
    "arr_at_risk": "expected ARR at risk",
    "expected_expansion_arr": "expected expansion ARR",
}


def top_sections(forecast: ForecastTables) -> list[Section]:
    """Top accounts by ARR at risk and by expected expansion."""
    out = []
    specs = (
        (
            "top_risk",
            "Top accounts by ARR at risk",
            "arr_at_risk",
            forecast.top_at_risk,
            charts.RED,
        ),
        (
            "top_expansion",
            "Top accounts by expected expansion",
            "expected_expansion_arr",
            forecast.top_expansion,
            charts.GREEN,
        ),
    )
    for key, title, column, top, colour in specs:
        total = float(forecast.accounts[column].sum())
        share = float(top[column].sum()) / total if total > 0 else float("nan")
        reading = (
            f"The top {len(top)} accounts carry {money(float(top[column].sum()))} "
            f"({pct(share)} of the book's {_PHRASES[column]})."
        )
        image = charts.top_accounts_chart(top, value=column, title=title, colour=colour)
        out.append(Section(key, title, reading, image, account_table(top, column)))
    return out


def horizon_summary(backtest: pd.DataFrame) -> pd.DataFrame:
    """Per horizon: origins, pooled and segment-cell coverage, pinball loss vs naive."""
    rows = []
    for h, part in backtest.groupby(backtest_horizons(backtest), sort=True):
        pooled = part[part["segment"] == POOLED]
        cells = part[part["segment"] != POOLED]
        both = part.dropna(subset=["naive_pinball"])
        rows.append(
            {
                "Horizon": f"{int(h)} quarter{'s' * (int(h) != 1)}",
                "Origins": str(len(pooled)),
                "Coverage (pooled)": float(pooled["covered"].astype(bool).mean()),
                "Coverage (segments)": float(cells["covered"].astype(bool).mean())
                if len(cells)
                else float("nan"),
                "Pinball loss": float(both["pinball"].mean()) if len(both) else float("nan"),
                "Naive pinball loss": float(both["naive_pinball"].mean())
                if len(both)
                else float("nan"),
            }
        )
    return pd.DataFrame(rows)


def backtest_reading(backtest: pd.DataFrame) -> str:
    """Coverage of pooled and segment intervals and pinball loss against the naive baseline."""
    first = backtest[backtest_horizons(backtest) == 1]
    pooled = first[first["segment"] == POOLED]
    cells = first[first["segment"] != POOLED]
    beats = float(first["pinball"].mean()) < float(first["naive_pinball"].mean())
    seg = f", segment cells {pct(float(cells['covered'].mean()))}" if not cells.empty else ""
    text = (
        f"Over {len(pooled)} past quarters the P10-P90 interval held the actual pooled NRR "
        f"{int(pooled['covered'].sum())} times ({pct(float(pooled['covered'].mean()))}){seg}; "
        f"mean pinball loss {float(first['pinball'].mean()):.4f} vs naive "
        f"{float(first['naive_pinball'].mean()):.4f} "
        f"({'better' if beats else 'not better'} than the trailing four-quarter average)."
    )
    later = horizon_summary(backtest[backtest_horizons(backtest) > 1])
    if not later.empty:
        text += (
            " Further ahead (cumulative NRR of the book): "
            + "; ".join(
                f"{r['Horizon']} {pct(r['Coverage (pooled)'])} over {r['Origins']} origins"
                for r in later.to_dict("records")
            )
            + "."
        )
    return text


def backtest_section(backtest: pd.DataFrame | None) -> Section:
    """Past forecasts against what happened, per horizon."""
    if backtest is None or backtest.empty:
        return Section(
            "backtest",
            "Forecast backtest",
            "No backtest in this report: run `nrr backtest-forecast --data DIR --out FILE` and "
            "pass it with `nrr forecast --backtest FILE`.",
        )
    fmt: dict[str, Callable[[float], str]] = dict.fromkeys(("p10", "p50", "p90", "actual"), pct)
    fmt |= dict.fromkeys(("pinball", "naive_pinball"), _loss)
    fmt["covered"] = _yes_no
    fmt |= dict.fromkeys(("Coverage (pooled)", "Coverage (segments)"), pct)
    fmt |= dict.fromkeys(("Pinball loss", "Naive pinball loss"), _loss)
    columns = ["horizon", *BACKTEST_COLUMNS] if "horizon" in backtest.columns else BACKTEST_COLUMNS
    pooled = backtest[backtest["segment"] == POOLED]
    table = (
        "<h3>Per horizon</h3>"
        + table_html(horizon_summary(backtest), fmt, right=["Origins"])
        + "<h3>Pooled book per origin quarter</h3>"
        + table_html(pooled.loc[:, list(columns)], fmt)
    )
    image = charts.backtest_chart(backtest)
    return Section(
        "backtest", "Forecast backtest: coverage", backtest_reading(backtest), image, table
    )


def build_sections(inputs: ReportInputs) -> list[Section]:
    """The report's sections in reading order."""
    return [
        fan_section(inputs),
        bridge_section(inputs.nrr),
        trend_section(inputs.nrr),
        cohort_section(inputs.nrr),
        health_section(inputs.forecast),
        *top_sections(inputs.forecast),
        backtest_section(inputs.backtest),
        *([targets_section(inputs.targets)] if inputs.targets is not None else []),
        *([timing_section(inputs.outcomes)] if inputs.outcomes is not None else []),
        *([winback_section(inputs.outcomes)] if inputs.outcomes is not None else []),
        *([interventions_section(inputs.interventions)] if inputs.interventions else []),
        *inputs.voice_sections,
    ]


def _effect(value: float) -> str:
    return f"{100 * value:+.1f} pp"


def _with_interval(frame: pd.DataFrame, name: str) -> list[str]:
    cols = (f"{name}_effect", f"{name}_low", f"{name}_high")
    return [
        f"{_effect(e)} ({_effect(lo)} to {_effect(hi)})"
        for e, lo, hi in zip(*(frame[c] for c in cols), strict=True)
    ]


def interventions_section(report: InterventionReport) -> Section:
    """Saved at-risk accounts per risk level and play against matched accounts without one."""
    from models.outcomes.interventions import interventions_reading

    frame = report.results
    shown = pd.DataFrame(
        {
            "risk_level": frame["risk_level"],
            "play": frame["play"],
            "treated": frame["treated"],
            "saved_rate": frame["saved_rate"],
            "control_saved_rate": frame["control_saved_rate"],
            "saved_effect_ci": _with_interval(frame, "saved"),
            "retained_effect_ci": _with_interval(frame, "retained"),
        }
    )
    fmt: dict[str, Callable[[float], str]] = {
        "treated": lambda v: f"{v:,.0f}",
        "saved_rate": pct,
        "control_saved_rate": pct,
    }
    note = (
        "Saved: still a customer and Healthy or Thriving 90 days after the play. Comparison: "
        "accounts of the same health band and nearest churn probability at the same month "
        "start, without a play within 90 days; 95% bootstrap intervals. Left out: "
        f"{report.pending} plays with the outcome after the data, {report.not_at_risk} on "
        f"accounts not at risk, {report.unmatched} without a comparison account. Accounts "
        "chosen on what the models cannot see bias the comparison."
    )
    right = ["saved_effect_ci", "retained_effect_ci"]
    table = table_html(shown, fmt, right=right) + f"<p class='note'>{html.escape(note)}</p>"
    return Section(
        "interventions", "Are the plays working?", interventions_reading(report), table=table
    )


def _chance(value: float) -> str:
    # the Monte Carlo reads chances to 0.1 point: never print 0% or 100%
    if not np.isfinite(value):
        return "n/a"
    return "<1%" if value < 0.01 else ">99%" if value > 0.99 else f"{100 * value:.0f}%"


def targets_section(targets: pd.DataFrame) -> Section:
    """NRR target and owner per segment, with the chance of reaching it."""
    from models.outcomes.targets import TARGET_COLUMNS

    shown = targets.loc[:, list(TARGET_COLUMNS)]
    ratios = ("quarter_target", "nrr_p50_quarter", "annual_target", "nrr_p50_year")
    fmt: dict[str, Callable[[float], str]] = {
        "starting_arr": money,
        "accounts": lambda v: f"{v:,.0f}",
        "p_quarter": _chance,
        "p_year": _chance,
        **{c: lambda v: f"{100 * v:.1f}%" for c in ratios},
    }
    scored = targets[targets["p_year"].notna()]
    if scored.empty:
        reading = "No target matches a segment of the book."
    else:
        worst = scored.loc[scored["p_year"].idxmin()]
        on_track = int((scored["status"] == "on track").sum())
        reading = (
            f"{on_track} of {len(scored)} NRR targets on track; the least likely is "
            f"{worst['segment']} ({worst['owner']}): {100 * worst['annual_target']:.0f}% "
            f"annual NRR, a {_chance(float(worst['p_year']))} chance over four quarters "
            f"({_chance(float(worst['p_quarter']))} for next quarter's "
            f"{100 * worst['quarter_target']:.1f}%)."
        )
    table = table_html(shown, fmt) + (
        "<p class='note'>Chances are P(NRR &ge; target) in the forecast's Monte Carlo "
        "(same inputs as the fan). Targets and owners: experiments/targets.yaml or "
        "<code>nrr forecast --targets FILE</code>.</p>"
    )
    return Section("targets", "NRR targets by segment", reading, table=table)


_SPLIT_NAMES = {"segment": "Segment", "icp_fit": "ICP fit"}


def timing_section(outcomes: OutcomeTables) -> Section:
    """Churn timing cohorts: share of churned ARR (and logos) by tenure band at churn."""
    from models.outcomes.timing import timing_reading

    frame = outcomes.timing
    ranges = dict(zip(frame["band"], frame["tenure_days"], strict=False))
    rows = []
    for (split, group), part in frame.groupby(["split", "group"], sort=False):
        row = {
            "group": "All accounts" if split == "all" else f"{_SPLIT_NAMES[split]}: {group}",
            "churned_accounts": f"{int(part['churned_logos'].sum()):,}",
            "churned_total_arr": money(float(part["churned_arr"].sum())),
        }
        for r in part.itertuples(index=False):
            row[f"{r.band} (days {ranges[r.band]})"] = f"{pct(r.arr_share)} ({pct(r.logo_share)})"
        rows.append(row)
    table = pd.DataFrame(rows)
    since = "" if outcomes.first_churn is None else f"{outcomes.first_churn:%Y-%m-%d}"
    note = (
        f"Share of churned ARR (of churned accounts in brackets), churns {since} to "
        f"{outcomes.data_end:%Y-%m-%d}; tenure counted from the start of the relationship."
    )
    if not outcomes.icp_fit_present:
        note += " The accounts table has no icp_fit: no split by ICP fit."
    right = [c for c in table.columns if c != "group"]
    html_table = table_html(table, {}, right=right) + f"<p class='note'>{html.escape(note)}</p>"
    return Section("timing", "When customers churn", timing_reading(frame), table=html_table)


_WINBACK_SHOWN = (
    "rank",
    "account_id",
    "name",
    "segment",
    "churn_at",
    "churned_arr",
    "return_probability",
    "reason",
    "approach",
    "timing",
)


def winback_section(outcomes: OutcomeTables, top: int = 15) -> Section:
    """The win-back list's head, with the return model's backtest."""
    frame = outcomes.winback
    test = outcomes.winback_backtest
    shown = frame.loc[:, [c for c in _WINBACK_SHOWN if c in frame.columns]].head(top)
    shown = shown.rename(columns={"churned_arr": "arr_at_churn"}).assign(
        churn_at=pd.to_datetime(shown["churn_at"]).dt.strftime("%Y-%m-%d"),
        timing=[
            f"from {s:%Y-%m-%d}" if t == "wait" else t
            for s, t in zip(frame["window_start"].head(top), shown["timing"], strict=True)
        ],
    )
    expected = float((frame["return_probability"] * frame["churned_arr"]).sum())
    due = int((frame["timing"] == "now").sum())
    reading = (
        f"{len(frame):,} accounts churned in the last 12 months and are not back; "
        f"{money(expected)} of their ARR is expected to return within 90 days; "
        f"{due:,} are in their reason's win-back window now."
    )
    if test is None:
        note = "Too few past returns to backtest a return model: every account gets the base rate."
    else:
        note = (
            f"Return model backtest ({len(test.cuts)} quarterly cut dates, {test.rows:,} "
            f"candidates, {test.returns:,} returns): ROC-AUC {test.auc:.2f} (90% interval "
            f"{test.auc_low:.2f}-{test.auc_high:.2f}); predicted {test.mean_predicted:.1%} vs "
            f"observed {test.observed_rate:.1%} returning within 90 days."
        )
        if test.auc_low <= 0.5:
            note += " The ranking is no better than chance on this history: use the list for the timing and approach, not the order."
    fmt: dict[str, Callable[[float], str]] = {
        "arr_at_churn": money,
        "return_probability": lambda v: f"{100 * v:.1f}%",
        "rank": lambda v: f"{v:.0f}",
    }
    table = table_html(shown, fmt) + f"<p class='note'>{html.escape(note)}</p>"
    return Section("winback", "Win-back list", reading, table=table)


_CSS = """
body{font-family:system-ui,-apple-system,Segoe UI,sans-serif;margin:2rem auto;max-width:1100px;
color:#222;line-height:1.4;padding:0 1rem}
h1{margin-bottom:.2rem} .meta{color:#666;font-size:.9rem}
.scope{background:#fff7e0;border-left:4px solid #e67e22;padding:.5rem 1rem}
section{border-top:1px solid #ddd;margin-top:1.5rem;padding-top:.5rem}
.reading{font-size:1.1rem;font-weight:600;color:#1f5fa8}
.row{display:flex;gap:1.5rem;flex-wrap:wrap} .row img{max-width:100%;height:auto}
.aside{flex:1;min-width:260px;font-size:.9rem} .bands li.current{background:#e8f0fb}
.table-wrap{max-width:100%;overflow-x:auto;margin:.5rem 0}
table{border-collapse:collapse;font-size:.85rem;max-width:100%}
table.wide{font-size:.75rem}
td,th{border:1px solid #ddd;padding:.2rem .5rem} th{background:#f4f4f4;text-align:left}
td.num{text-align:right;font-variant-numeric:tabular-nums;white-space:nowrap} td.text{text-align:left}
tr.small td{color:#999;background:#f7f7f7;font-style:italic}
.note{color:#666;font-size:.85rem}
"""


def _section_html(section: Section) -> str:
    img = (
        f'<img class="chart" alt="{html.escape(section.title)}" src="{section.image}">'
        if section.image
        else ""
    )
    aside = f'<div class="aside">{section.aside}</div>' if section.aside else ""
    return (
        f'<section id="{section.key}"><h2>{html.escape(section.title)}</h2>'
        f'<p class="reading">{html.escape(section.reading)}</p>'
        f'<div class="row">{img}{aside}</div>{section.table}</section>'
    )


def render_report(inputs: ReportInputs, sections: Sequence[Section] | None = None) -> str:
    """The whole report as one HTML document with no external resources."""
    body = "".join(_section_html(s) for s in (sections or build_sections(inputs)))
    fc = inputs.forecast
    meta = (
        f"Forecast from {fc.as_of:%Y-%m-%d} for {fc.quarter}; data through "
        f"{inputs.nrr.data_end:%Y-%m-%d}; {fc.draws:,} Monte Carlo draws (seed {fc.seed}); "
        f"{len(fc.accounts):,} accounts in the book."
    )
    extra = " ".join(x for x in (inputs.model_source, inputs.origin) if x)
    return (
        "<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'>"
        # an inline empty icon: browsers would otherwise request /favicon.ico (a 404)
        "<link rel='icon' href='data:,'>"
        f"<title>{html.escape(inputs.title)}</title><style>{_CSS}</style></head><body>"
        f"<h1>{html.escape(inputs.title)}</h1><p class='meta'>{html.escape(meta)} "
        f"{html.escape(extra)}</p><p class='scope'>{html.escape(NEW_LOGO_NOTE)}</p>"
        f"<p class='meta'>Interactive charts: <a href='{INTERACTIVE_FILE}'>{INTERACTIVE_FILE}</a></p>"
        f"{body}</body></html>"
    )
