"""interactive.html: the forecast tables' numbers per segment, offline, linked both ways."""

from __future__ import annotations

import dataclasses
import json
import re
from pathlib import Path
from typing import Any
from urllib.parse import urljoin

import pandas as pd
import pytest
from plotly.offline import get_plotlyjs

from models.revenue.forecast import POOLED
from serving.dashboard import INTERACTIVE_FILE, REPORT_FILE
from serving.forecast_cli import write_report
from serving.forecasting import build_nrr_tables
from serving.report_html import ReportInputs
from serving.report_interactive import render_interactive
from tests.test_forecasting import forecast_for, synthetic_company
from tests.test_report import _app, tiny_backtest

DATA = re.compile(r"<script type='application/json' id='nrr-data'>(.*?)</script>", re.DOTALL)


def horizon_backtest() -> pd.DataFrame:
    """tiny_backtest's origins checked one and two quarters ahead (two fewer inside at 2)."""
    first = tiny_backtest().assign(horizon=1)
    second = first.assign(horizon=2, actual=first["actual"] + 0.05)
    second = second.assign(covered=second["actual"].between(second["p10"], second["p90"]))
    return pd.concat([first, second], ignore_index=True)


@pytest.fixture(scope="module")
def inputs() -> ReportInputs:
    subs, accounts = synthetic_company(0)
    nrr = build_nrr_tables(subs, accounts, data_end=pd.Timestamp("2025-07-01"))
    return ReportInputs(nrr=nrr, forecast=forecast_for(draws=500), backtest=horizon_backtest())


@pytest.fixture(scope="module")
def page(inputs: ReportInputs) -> str:
    return render_interactive(inputs)


@pytest.fixture(scope="module")
def data(page: str) -> dict[str, Any]:
    match = DATA.search(page)
    assert match, "the page carries its figures as a JSON script"
    out: dict[str, Any] = json.loads(match.group(1))
    return out


def _trace(data: dict[str, Any], chart: str, group: str, name: str) -> dict[str, Any]:
    (found,) = (c for c in data["charts"] if c["key"] == chart)
    traces = [t for t in found["figures"][group]["data"] if t.get("name") == name]
    assert len(traces) == 1, (chart, group, name)
    trace: dict[str, Any] = traces[0]
    return trace


def _rows(frame: pd.DataFrame, group: str, metric: str) -> pd.DataFrame:
    return frame[(frame["group"] == group) & (frame["metric"] == metric)]


def test_every_group_of_the_forecast_has_a_filter_entry(
    inputs: ReportInputs, data: dict[str, Any], page: str
) -> None:
    groups = set(inputs.forecast.summary["group"])
    assert data["groups"][0] == POOLED and set(data["groups"]) == groups
    assert {c["key"] for c in data["charts"]} == {
        "cumulative",
        "quarterly",
        "movements",
        "coverage",
    }
    for chart in data["charts"]:
        assert set(chart["figures"]) == groups == set(chart["readings"])
    for group in groups:
        assert f'<option value="{group}">' in page


@pytest.mark.parametrize("group", ["All", "Enterprise", "SMB"])
def test_embedded_numbers_are_the_segments_rows_of_the_forecast_tables(
    inputs: ReportInputs, data: dict[str, Any], group: str
) -> None:
    fc = inputs.forecast
    cumulative = _rows(fc.fan, group, "nrr").sort_values("quarter")
    for name, column in (
        ("P50", "p50"),
        ("P90", "p90"),
        ("P10\u2013P90 (8 scenarios in 10)", "p10"),
    ):
        trace = _trace(data, "cumulative", group, name)
        assert trace["x"] == cumulative["quarter_label"].tolist()
        assert trace["y"] == pytest.approx(cumulative[column].tolist(), rel=1e-12)

    quarterly = _rows(fc.fan, group, "quarter_nrr").sort_values("quarter")
    ahead = _trace(data, "quarterly", group, "Forecast P50 (bars: P10\u2013P90)")
    assert ahead["y"] == pytest.approx(quarterly["p50"].tolist(), rel=1e-12)
    assert ahead["error_y"]["array"] == pytest.approx(
        (quarterly["p90"] - quarterly["p50"]).tolist()
    )
    low = (quarterly["p50"] - quarterly["p10"]).tolist()
    assert ahead["error_y"]["arrayminus"] == pytest.approx(low)
    history = inputs.nrr.quarterly
    if group != POOLED:
        split = inputs.nrr.by_split["segment"]
        history = split[split["segment"] == group]
    history = history[history["starting_arr"] > 0]
    actual = _trace(data, "quarterly", group, "Actual")
    assert actual["x"] == history["period_label"].tolist()
    assert actual["y"] == pytest.approx(history["nrr"].tolist(), rel=1e-12)

    bars = _trace(data, "movements", group, "P50")
    metrics = ["expansion_arr", "contraction_arr", "churned_arr"]
    summary = fc.summary[fc.summary["group"] == group].set_index("metric").loc[metrics]
    assert bars["y"] == pytest.approx(summary["p50"].tolist(), rel=1e-12)
    assert bars["error_y"]["array"] == pytest.approx((summary["p90"] - summary["p50"]).tolist())


def test_coverage_chart_is_the_share_of_origins_inside_the_interval(
    inputs: ReportInputs, data: dict[str, Any]
) -> None:
    assert inputs.backtest is not None
    for group, rows_of in (("All", "All"), ("SMB", "SMB"), ("Enterprise", "All")):
        rows = inputs.backtest[inputs.backtest["segment"] == rows_of]
        (coverage,) = next(c for c in data["charts"] if c["key"] == "coverage")["figures"][group][
            "data"
        ]
        expected = [float(rows.loc[rows["horizon"] == h, "covered"].mean()) for h in (1, 2)]
        assert coverage["x"] == ["1 quarter ahead", "2 quarters ahead"]
        assert coverage["y"] == pytest.approx(expected)
    reading = next(c for c in data["charts"] if c["key"] == "coverage")["readings"]["Enterprise"]
    assert "No backtest of Enterprise alone" in reading


def test_hover_and_axes_read_as_money_and_percent(data: dict[str, Any]) -> None:
    money = re.compile(r"^-?\$\d[\d,]*(\.\d+)?[KM]?$")
    percent = re.compile(r"^-?\d+%$")
    for chart in data["charts"]:
        for group, fig in chart["figures"].items():
            yaxis = fig["layout"]["yaxis"]
            assert yaxis.get("exponentformat") == "none"
            assert yaxis["title"]["text"] and fig["layout"]["xaxis"]["title"]
            if chart["key"] == "movements":
                assert all(money.match(t) for t in yaxis["ticktext"]), yaxis["ticktext"]
                assert yaxis["tickvals"][-1] >= max(fig["data"][0]["y"])
                cells = [v for row in fig["data"][0]["customdata"] for v in row]
                assert all(money.match(v) for v in cells), (group, cells)
            else:
                assert yaxis["tickformat"] == ".0%"
                for trace in fig["data"]:
                    for row in trace.get("customdata") or []:
                        pcts = [v for v in row if v.endswith("%")]
                        assert pcts and all(percent.match(v) for v in pcts), row


def test_page_fetches_nothing_and_inlines_plotly_once(page: str, data: dict[str, Any]) -> None:
    library = get_plotlyjs()
    assert page.count(library) == 1
    own = page.replace(library, "")  # the library's source mentions URLs it never loads here
    assert "http://" not in own and "https://" not in own
    assert not re.search(r"<script[^>]*\bsrc\s*=", own, flags=re.IGNORECASE)
    refs = re.findall(r"""(?:src|href)\s*=\s*["']([^"']*)""", own, flags=re.IGNORECASE)
    assert sorted(refs) == sorted(["data:,", REPORT_FILE])
    assert "mathjax" not in own.lower() and "@import" not in own
    assert data["config"]["displaylogo"] is False
    assert not data["config"].get("showSendToCloud") and not data["config"].get("showLink")


def test_small_segments_are_flagged_in_the_filter(inputs: ReportInputs) -> None:
    strict = dataclasses.replace(inputs.nrr, min_cohort_accounts=100)
    text = render_interactive(dataclasses.replace(inputs, nrr=strict))
    for group in sorted(set(inputs.forecast.summary["group"]) - {POOLED}):
        assert re.search(
            rf'<option value="{group}">{group} \(\d+ accounts, too few to read\)', text
        )
    assert re.search(r'<option value="All">All accounts \(\d+\)</option>', text)


@pytest.fixture(scope="module")
def written(inputs: ReportInputs, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("interactive") / "report"
    write_report(inputs, out)
    return out


def test_write_report_puts_the_page_beside_the_report_and_links_both_ways(written: Path) -> None:
    report = (written / REPORT_FILE).read_text(encoding="utf-8")
    page = (written / INTERACTIVE_FILE).read_text(encoding="utf-8")
    assert f"href='{INTERACTIVE_FILE}'" in report
    assert f"href='{REPORT_FILE}'" in page
    assert [p.name for p in written.parent.iterdir()] == ["report"]  # no temp folder left


def test_served_pages_link_to_each_others_route(written: Path, tmp_path: Path) -> None:
    client = _app(written)
    base = "http://testserver"
    report = client.get("/dashboard")
    page = client.get("/dashboard/interactive")
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    assert "id='nrr-data'" in page.text
    (to_page,) = re.findall(r"Interactive charts: <a href='([^']*)'", report.text)
    (to_report,) = re.findall(r"<a id='report-link' href='([^']*)'", page.text)
    assert urljoin(f"{base}/dashboard", to_page) == f"{base}/dashboard/interactive"
    assert urljoin(f"{base}/dashboard/interactive", to_report) == f"{base}/dashboard"
    # the same rule as /dashboard: a reader key unless the deployment opens the pages
    assert _app(written, auth=True).get("/dashboard/interactive").status_code == 401
    assert _app(written, auth=True, public=True).get("/dashboard/interactive").status_code == 200
    missing = _app(tmp_path).get("/dashboard/interactive")
    assert missing.status_code == 404 and "nrr forecast" in missing.json()["detail"]
