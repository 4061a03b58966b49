"""The report sections of the voice of the customer (themes) and of the roadmap input,
rendered from the same JSON that GET /v1/themes and /v1/roadmap serve."""

from __future__ import annotations

import html
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd

from serving.report_charts import money
from serving.report_html import _CSS, Section, _section_html

THEMES_FILE = "themes.json"
ROADMAP_FILE = "roadmap.json"


def _table(frame: pd.DataFrame, right: Sequence[str] = ()) -> str:
    """An escaped HTML table of text cells, headers as written (the report's table style)."""
    head = "".join(f"<th>{html.escape(str(c))}</th>" for c in frame.columns)
    body = "".join(
        "<tr>"
        + "".join(
            f'<td class="{"num" if col in right else "text"}">{html.escape(str(v))}</td>'
            for col, v in zip(frame.columns, record, strict=True)
        )
        + "</tr>"
        for record in frame.itertuples(index=False)
    )
    wide = " wide" if len(frame.columns) > 7 else ""
    return (
        f'<div class="table-wrap"><table class="data{wide}"><thead><tr>{head}</tr></thead>'
        f"<tbody>{body}</tbody></table></div>"
    )


def _ratio(low: Any, mid: Any, high: Any) -> str:
    if mid is None or not np.isfinite(mid):
        return "too few"
    if low is None or high is None:
        return f"{mid:.1f}x"
    return f"{mid:.1f}x ({low:.1f}-{high:.1f})"


def _arrow(trend: str) -> str:
    return {"up": "↑ up", "down": "↓ down", "stable": "→ stable", "new": "new"}.get(trend, trend)


def _segment(theme: Mapping[str, Any]) -> str:
    segment, lift = theme.get("segment_most_affected"), theme.get("segment_lift")
    if not segment or lift is None:
        return "n/a"
    return f"{segment} ({lift:.1f}x its share)"


def _theme_frame(themes: Sequence[Mapping[str, Any]]) -> pd.DataFrame:
    rows = []
    for t in themes:
        rows.append(
            {
                "Theme": t["name"],
                "Mentions (90 d)": f"{t['mentions']:,}",
                "Accounts": f"{t['accounts']:,}",
                "ARR affected": money(float(t["arr_affected"])),
                "Trend (30 d vs 3 before)": _arrow(str(t["trend"])),
                "Most affected segment": _segment(t),
                "Sentiment": "n/a" if t.get("sentiment") is None else f"{t['sentiment']:+.2f}",
                "Churned vs rest": _ratio(
                    t.get("churn_ratio_low"), t.get("churn_ratio"), t.get("churn_ratio_high")
                ),
                "Expanded vs rest": _ratio(
                    t.get("expand_ratio_low"), t.get("expand_ratio"), t.get("expand_ratio_high")
                ),
            }
        )
    return pd.DataFrame(rows)


def _signal(themes: Sequence[Mapping[str, Any]], reading: str, key: str) -> list[str]:
    return [t["name"] for t in themes if t.get(f"{key}_reading") == reading]


def themes_section(report: Mapping[str, Any]) -> Section:
    """Top themes by ARR affected, their link to churn and expansion, and quotes."""
    themes = list(report.get("themes") or [])
    if not themes:
        return Section("themes", "Voice of the customer: themes", "No customer texts to read.")
    top = themes[0]
    churny = _signal(themes, "more", "churn")
    growth = _signal(themes, "more", "expand")
    reading = (
        f"“{top['name']}” touches the most ARR: {money(float(top['arr_affected']))} across "
        f"{top['accounts']} accounts in the last {report['window_days']} days. "
        + (
            f"Churn-correlated: {', '.join(churny)}. "
            if churny
            else "No theme is churn-correlated. "
        )
        + (f"Expansion-correlated: {', '.join(growth)}." if growth else "")
    )
    right = list(_theme_frame(themes).columns[1:])
    table = _table(_theme_frame(themes), right=right)
    quotes = "".join(
        f"<li><b>{html.escape(t['name'])}</b>: "
        + " ".join(f"<q>{html.escape(q)}</q>" for q in list(t.get("quotes") or [])[:3])
        + "</li>"
        for t in themes
    )
    note = (
        f"<p class='note'>{report['texts']:,} ticket texts and NPS comments; themes found in the "
        "texts themselves (TF-IDF + NMF, sentiment words and template sentences left out). "
        "Churned / expanded vs rest: how much more often accounts that churned (expanded) in "
        "the 90 days after a month start had written about the theme in the 90 days before "
        f"it, with a 95% interval over accounts ({report['correlation_rows']:,} labelled "
        "account-months); above 1 with the whole interval above 1 is a correlation.</p>"
    )
    body = table + "<h3>What customers say</h3><ul>" + quotes + "</ul>" + note
    return Section("themes", "Voice of the customer: themes", reading, table=body)


def _driver_frame(rows: Sequence[Mapping[str, Any]], top: int) -> pd.DataFrame:
    kept = [r for r in rows if not r.get("contract_fact")][:top]
    return pd.DataFrame(
        {
            "Signal": [r["label"] for r in kept],
            "Share": [f"{100 * float(r['share']):.0f}%" for r in kept],
            "Mean push x ARR": [f"{float(r['mean_pushing_x_arr']):,.0f}" for r in kept],
            "Accounts": [f"{int(r['accounts_pushed']):,}" for r in kept],
        }
    )


def _auc(row: Mapping[str, Any], short: str) -> str:
    return (
        f"{row[f'{short}_auc']:.2f} ({row[f'{short}_auc_low']:.2f}-{row[f'{short}_auc_high']:.2f})"
    )


def roadmap_section(roadmap: Mapping[str, Any], top: int = 10) -> Section:
    """Top churn drivers and expansion blockers by ARR, and the vanity metrics."""
    churn = list(roadmap.get("churn_drivers") or [])
    blockers = list(roadmap.get("expansion_blockers") or [])
    audit = list(roadmap.get("metric_audit") or [])
    vanity = [r for r in audit if r.get("vanity")]
    parts = []
    if churn:
        parts.append(f"top churn driver by ARR: {_driver_frame(churn, 1)['Signal'].iloc[0]}")
    if blockers:
        parts.append(f"top expansion blocker: {_driver_frame(blockers, 1)['Signal'].iloc[0]}")
    if audit:
        parts.append(f"{len(vanity)} of {len(audit)} metrics show no association (vanity)")
    reading = ("; ".join(parts) + ".") if parts else "No drivers or audit to show."
    reading = reading[0].upper() + reading[1:]
    right = ["Share", "Mean push x ARR", "Accounts"]
    body = ""
    if churn:
        body += "<h3>Churn drivers</h3>" + _table(_driver_frame(churn, top), right=right)
    if blockers:
        body += "<h3>Expansion blockers</h3>" + _table(_driver_frame(blockers, top), right=right)
    if audit:
        frame = pd.DataFrame(
            {
                "Metric": [f"{r.get('label') or r['metric']} ({r['metric']})" for r in vanity],
                "Family": [r["family"] for r in vanity],
                "Churn AUC (95%)": [_auc(r, "churn") for r in vanity],
                "Expansion AUC (95%)": [_auc(r, "expansion") for r in vanity],
            }
        )
        body += "<h3>Metric audit: no association with renewal or expansion</h3>" + (
            _table(frame, right=list(frame.columns[2:])) if vanity else "<p>None.</p>"
        )
    body += (
        "<p class='note'>Drivers: the champion models' TreeSHAP contributions summed per "
        "signal, times each account's ARR, averaged over the book at "
        f"{str(roadmap.get('as_of', ''))[:10]} ({roadmap.get('accounts', 0):,} accounts); "
        "a churn driver raises churn, an expansion blocker lowers expansion (push: log-odds x $ "
        "per account; share: of all signals' push); contract facts "
        "(plan, term, size) are left out. Audit: univariate ROC-AUC of each metric on "
        f"{roadmap.get('audit_rows', 0):,} labelled account-months, 95% interval over accounts; "
        "vanity = both intervals contain 0.5. "
        + html.escape(str(roadmap.get("note") or ""))
        + "</p>"
    )
    return Section(
        "roadmap", "Roadmap input: drivers, blockers, vanity metrics", reading, table=body
    )


def page(title: str, sections: Sequence[Section]) -> str:
    """A standalone HTML page of sections, styled like the forecast report."""
    body = "".join(_section_html(s) for s in sections)
    return (
        "<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'>"
        "<link rel='icon' href='data:,'>"
        f"<title>{html.escape(title)}</title><style>{_CSS}</style></head><body>"
        f"<h1>{html.escape(title)}</h1>{body}</body></html>"
    )


def voice_sections(voice: Mapping[str, Mapping[str, Any]]) -> list[Section]:
    """The sections of whichever of themes.json / roadmap.json the report holds."""
    out = []
    if THEMES_FILE in voice:
        out.append(themes_section(voice[THEMES_FILE]))
    if ROADMAP_FILE in voice:
        out.append(roadmap_section(voice[ROADMAP_FILE]))
    return out
