"""interactive.html opened from disk in headless chromium with every network request refused."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
from browser_factories import chromium_page

from serving.dashboard import FORECAST_FILE, INTERACTIVE_FILE

# uvicorn serving this module's report_dir on a free port (the /dashboard browser test's)
from tests.test_dashboard_browser import base_url  # noqa: F401

ARTIFACTS = Path(__file__).resolve().parents[1] / "test-artifacts"
CHARTS = ("cumulative", "quarterly", "movements", "coverage")

pytestmark = pytest.mark.browser


@pytest.fixture(scope="module")
def report_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from serving.forecast_cli import write_report
    from serving.forecasting import build_nrr_tables
    from serving.report_html import ReportInputs
    from tests.test_forecasting import forecast_for, synthetic_company
    from tests.test_report_interactive import horizon_backtest

    subs, accounts = synthetic_company(0)
    nrr = build_nrr_tables(subs, accounts, data_end=pd.Timestamp("2025-07-01"))
    inputs = ReportInputs(nrr=nrr, forecast=forecast_for(draws=500), backtest=horizon_backtest())
    out = tmp_path_factory.mktemp("interactive") / "report"
    write_report(inputs, out)
    return out


def _fan_p50(forecast: dict[str, Any], group: str, metric: str) -> list[float]:
    rows = [r for r in forecast["fan"] if r["group"] == group and r["metric"] == metric]
    return [r["p50"] for r in sorted(rows, key=lambda r: r["quarter"])]


def _summary_p50(forecast: dict[str, Any], group: str) -> list[float]:
    by = {r["metric"]: r["p50"] for r in forecast["summary"] if r["group"] == group}
    return [by[m] for m in ("expansion_arr", "contraction_arr", "churned_arr")]


_SHOWN = """() => ({
  fan: document.getElementById('cumulative').data.find(t => t.name === 'P50').y,
  arr: document.getElementById('movements').data[0].y,
  reading: document.getElementById('cumulative-reading').innerText,
  rendered: CHARTS.map(id => !!document.querySelector('#' + id + ' .main-svg')),
})""".replace("CHARTS", json.dumps(CHARTS))


def test_page_renders_offline_and_the_filter_switches_every_chart(report_dir: Path) -> None:
    forecast = json.loads((report_dir / FORECAST_FILE).read_text(encoding="utf-8"))
    segment = "SMB"
    errors: list[str] = []
    offline = chromium_page(
        allow=lambda url: url.startswith(("file://", "data:")),
        viewport={"width": 1300, "height": 1000},
    )
    with offline as (page, refused):
        page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
        page.on("pageerror", lambda exc: errors.append(str(exc)))
        page.goto((report_dir / INTERACTIVE_FILE).as_uri(), wait_until="load")
        before = page.evaluate(_SHOWN)
        page.select_option("#segment", segment)
        page.wait_for_function(
            "t => document.getElementById('cumulative-reading').innerText !== t",
            arg=before["reading"],
        )
        after = page.evaluate(_SHOWN)
        # hover the segment's expansion bar: the label reads as money
        bar = page.locator("#movements .bars .point").first
        bar.scroll_into_view_if_needed()
        box = bar.bounding_box()
        assert box is not None
        page.mouse.move(box["x"] + box["width"] / 2, box["y"] + box["height"] / 2)
        page.wait_for_selector("#movements .hoverlayer .hovertext", timeout=5000)
        hover = page.text_content("#movements .hoverlayer .hovertext") or ""
        page.evaluate("window.scrollTo(0, 0)")  # the sticky filter back above the charts
        ARTIFACTS.mkdir(exist_ok=True)
        page.screenshot(path=str(ARTIFACTS / "interactive.png"), full_page=True)
    assert refused == [] and errors == []
    assert before["rendered"] == [True] * len(CHARTS) == after["rendered"]
    assert before["fan"] == pytest.approx(_fan_p50(forecast, "All", "nrr"))
    assert after["fan"] == pytest.approx(_fan_p50(forecast, segment, "nrr"))
    assert after["fan"] != pytest.approx(before["fan"])
    assert after["arr"] == pytest.approx(_summary_p50(forecast, segment))
    assert f"{100 * _fan_p50(forecast, segment, 'nrr')[-1]:.0f}%" in after["reading"]
    assert hover.startswith("Expansion: P50 $") and "P10\u2013P90 $" in hover, hover
    assert (ARTIFACTS / "interactive.png").stat().st_size > 10_000


def test_served_pages_link_to_each_other(base_url: str) -> None:  # noqa: F811
    local = chromium_page(
        allow=lambda url: url.startswith((base_url, "data:")),
        viewport={"width": 1300, "height": 1000},
    )
    with local as (page, refused):
        page.goto(f"{base_url}/dashboard", wait_until="load")
        page.click("text=Interactive charts: >> a")
        page.wait_for_selector("#cumulative .main-svg")
        landed = page.url
        rendered = page.evaluate(_SHOWN)["rendered"]
        page.click("#report-link")
        page.wait_for_selector("section#fan")
        back = page.url
    assert landed == f"{base_url}/dashboard/interactive" and rendered == [True] * len(CHARTS)
    assert back == f"{base_url}/dashboard" and refused == []
