"""The leadership report: self-contained HTML with every chart and its reading."""

from __future__ import annotations

import base64
import dataclasses
import re
from pathlib import Path
from types import SimpleNamespace

import pandas as pd
import pytest
from fastapi.testclient import TestClient
from matplotlib.figure import Figure

from models.revenue.amounts import arr_change_events, fit_amount_model
from models.revenue.forecast_book import contraction_rates, subscriptions_known_at
from models.rules.config import load_rules_config
from serving import report_charts
from serving.dashboard import INTERACTIVE_FILE
from serving.forecast_cli import attach_scores, prepare_report, write_report
from serving.forecasting import build_forecast, build_nrr_tables, cohort_extremes
from serving.report_html import (
    ReportInputs,
    Section,
    backtest_reading,
    backtest_section,
    build_sections,
    cohort_section,
    forecast_reading,
    render_report,
)
from tests.test_forecasting import forecast_for, make_book, synthetic_company

EXPECTED_SECTIONS = (
    "fan",
    "bridge",
    "trend",
    "cohorts",
    "health",
    "top_risk",
    "top_expansion",
    "backtest",
)


def tiny_backtest() -> pd.DataFrame:
    rows = []
    for i, quarter in enumerate(("2025Q1", "2025Q2", "2025Q3")):
        for segment in ("All", "SMB"):
            actual = 1.0 + 0.05 * i
            rows.append(
                {
                    "quarter": quarter,
                    "segment": segment,
                    "p10": 0.97,
                    "p50": 1.02,
                    "p90": 1.07,
                    "actual": actual,
                    "covered": 0.97 <= actual <= 1.07,
                    "pinball": 0.01,
                    "naive_pinball": 0.02,
                }
            )
    return pd.DataFrame(rows)


@pytest.fixture(scope="module")
def inputs() -> ReportInputs:
    subs, accounts = synthetic_company(0)
    nrr = build_nrr_tables(subs, accounts, data_end=pd.Timestamp("2025-07-01"))
    return ReportInputs(nrr=nrr, forecast=forecast_for(draws=500), backtest=tiny_backtest())


@pytest.fixture(scope="module")
def sections(inputs: ReportInputs) -> list[Section]:
    return build_sections(inputs)


@pytest.fixture(scope="module")
def page(inputs: ReportInputs, sections: list[Section]) -> str:
    return render_report(inputs, sections)


@pytest.fixture(scope="module")
def written(inputs: ReportInputs, tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("written")
    out = root / "report"
    out.mkdir()
    (out / "stale.csv").write_text("old")
    write_report(inputs, out)
    return out


def test_report_has_no_external_resources(page: str) -> None:
    refs = re.findall(r"""(?:src|href)\s*=\s*["']([^"']*)""", page, flags=re.IGNORECASE)
    assert refs.count(INTERACTIVE_FILE) == 1  # the page beside it (tests/test_report_interactive)
    refs = [r for r in refs if r != INTERACTIVE_FILE]
    assert refs, "expected inline images"
    assert all(r.startswith("data:") for r in refs)
    assert sum(r.startswith("data:image/png;base64,") for r in refs) == len(EXPECTED_SECTIONS)
    assert "http://" not in page and "https://" not in page
    assert "@import" not in page and "<script" not in page.lower()


def test_every_chart_is_present_with_a_reading_and_a_valid_png(
    sections: list[Section], page: str
) -> None:
    assert tuple(s.key for s in sections) == EXPECTED_SECTIONS
    for section in sections:
        assert f'id="{section.key}"' in page
        assert section.reading and section.reading in page.replace("&#x27;", "'")
        assert section.image is not None, section.key
        png = base64.b64decode(section.image.split(",", 1)[1])
        assert png[:8] == b"\x89PNG\r\n\x1a\n" and len(png) > 2000


def test_forecast_reading_quotes_the_summary_figures(inputs: ReportInputs) -> None:
    fc = inputs.forecast
    text = forecast_reading(fc)
    for column in ("p10", "p50", "p90"):
        assert f"{100 * fc.value('nrr', column):.0f}%" in text
    assert fc.quarter in text and "expansion concentrated in" in text


def test_multi_quarter_headline_only_with_its_own_backtested_coverage(
    inputs: ReportInputs,
) -> None:
    fc = inputs.forecast
    quarters = int(fc.fan["quarter"].max())
    assert f"{quarters}-quarter NRR" not in forecast_reading(fc)
    # a backtest of horizon 1 only does not vouch for the multi-quarter figure
    assert f"{quarters}-quarter NRR" not in forecast_reading(fc, tiny_backtest())
    far = tiny_backtest().assign(horizon=quarters)
    both = pd.concat([tiny_backtest().assign(horizon=1), far], ignore_index=True)
    text = forecast_reading(fc, both)
    last = fc.fan[(fc.fan["group"] == "All") & (fc.fan["metric"] == "nrr")]
    row = last[last["quarter"] == quarters].iloc[0]
    assert f"{quarters}-quarter NRR of today's book P50 {100 * row['p50']:.0f}%" in text
    assert "backtested coverage 67% over 3 origins" in text
    reading = backtest_reading(both)
    assert "3 past quarters" in reading and f"{quarters} quarters 67% over 3 origins" in reading
    section = backtest_section(both)
    assert "Per horizon" in section.table and section.image is not None


def test_report_states_scope_and_nrr_bands(page: str) -> None:
    assert "New-logo ARR is out of scope" in page
    assert "Fix gross retention" in page and "Compound" in page
    assert 'class="current"' in page


def test_backtest_reading_counts_covered_quarters() -> None:
    text = backtest_reading(tiny_backtest())
    assert "3 past quarters" in text and "held the actual pooled NRR 2 times (67%)" in text
    assert "better than" in text


def test_missing_backtest_names_the_command() -> None:
    section = backtest_section(None)
    assert section.image is None and "nrr backtest-forecast" in section.reading


def test_malformed_backtest_is_rejected(inputs: ReportInputs) -> None:
    bad = tiny_backtest().drop(columns=["naive_pinball"])
    with pytest.raises(ValueError, match="naive_pinball"):
        ReportInputs(nrr=inputs.nrr, forecast=inputs.forecast, backtest=bad)


def _app(report_dir: Path | None, *, auth: bool = False, public: bool = False) -> TestClient:
    from fastapi import FastAPI

    from serving.dashboard import router
    from serving.security import KeyStore

    app = FastAPI()
    app.include_router(router)
    app.state.settings = SimpleNamespace(
        report_dir=report_dir, auth_enabled=auth, dashboard_public=public
    )
    app.state.keys = KeyStore([])
    return TestClient(app)


def test_write_report_writes_every_file_and_replaces_atomically(
    inputs: ReportInputs, written: Path
) -> None:
    assert not (written / "stale.csv").exists()
    names = {p.name for p in written.iterdir()}
    assert {"report.html", "forecast.json", "nrr.json", "forecast_backtest.csv"} <= names
    assert {"nrr_monthly.csv", "cohort_heatmap.csv", "forecast_fan.csv"} <= names
    assert [p.name for p in written.parent.iterdir()] == ["report"]  # no temp folder left
    fan = pd.read_csv(written / "forecast_fan.csv")
    assert len(fan) == len(inputs.forecast.fan)


def test_dashboard_routes_serve_the_written_report(inputs: ReportInputs, written: Path) -> None:
    client = _app(written)
    page = client.get("/dashboard")
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    assert 'id="fan"' in page.text
    body = client.get("/v1/forecast").json()
    assert body["quarter"] == inputs.forecast.quarter
    assert body["summary"] and "New-logo" in body["scope"]
    nrr = client.get("/v1/nrr").json()
    assert len(nrr["quarterly"]) == len(inputs.nrr.quarterly)


def test_dashboard_routes_explain_a_missing_report(tmp_path: Path) -> None:
    missing = _app(tmp_path / "nowhere")
    for route in ("/dashboard", "/v1/forecast", "/v1/nrr"):
        response = missing.get(route)
        assert response.status_code == 404
        assert "nrr forecast" in response.json()["detail"]
    locked = _app(tmp_path, auth=True)
    assert locked.get("/v1/forecast").status_code == 401
    assert locked.get("/v1/nrr").status_code == 401
    # The page names the accounts most at risk: locked unless the deployment opens it.
    assert locked.get("/dashboard").status_code == 401
    assert _app(tmp_path, auth=True, public=True).get("/dashboard").status_code == 404
    unconfigured = _app(None).get("/v1/forecast")
    assert unconfigured.status_code == 503 and "NRR_REPORT_DIR" in unconfigured.json()["detail"]


def test_attach_scores_fills_unscored_accounts_and_rejects_empty_scores() -> None:
    book = pd.DataFrame({"account_id": ["a", "b", "c"], "arr": [1.0, 2.0, 3.0]})
    scored = pd.DataFrame(
        {
            "account_id": ["a", "b"],
            "churn_probability": [0.1, 0.3],
            "expansion_probability": [0.2, 0.4],
        }
    )
    joined, filled = attach_scores(book, scored)
    assert filled == 1
    assert joined.set_index("account_id").loc["c", "churn_probability"] == pytest.approx(0.2)
    empty = scored.assign(churn_probability=None, fallback_reason="no fallback calibration")
    with pytest.raises(ValueError, match="no fallback calibration.*nrr train"):
        attach_scores(book, empty)
    with pytest.raises(ValueError, match="one row per account"):
        attach_scores(book, pd.concat([scored, scored]))


def test_report_renders_for_accounts_without_optional_columns() -> None:
    subs, accounts = synthetic_company(6, n_accounts=24)
    bare = accounts.loc[:, ["account_id"]]
    as_of = pd.Timestamp("2025-07-01")
    book = make_book(subs, bare, as_of).drop(columns=["health_band", "health_score"])
    known = subscriptions_known_at(subs, as_of=as_of)
    forecast = build_forecast(
        book,
        amount_model=fit_amount_model(arr_change_events(known, bare, data_end=as_of)),
        rates=contraction_rates(subs, bare, as_of=as_of),
        as_of=as_of,
        draws=200,
        seed=0,
    )
    assert set(forecast.summary["group"]) == {"All", "Unknown"}
    nrr = build_nrr_tables(subs, bare, data_end=as_of)
    assert set(nrr.by_split) == {"plan"} and nrr.cohort_heatmap.empty
    page = render_report(ReportInputs(nrr=nrr, forecast=forecast))
    assert "No health scores available" in page and 'id="cohorts"' in page


# --- A report a VP would forward (issue 14, part 6) ---------------------------------


def _figures(monkeypatch: pytest.MonkeyPatch) -> list[Figure]:
    """Every figure the report's charts render from now on."""
    seen: list[Figure] = []
    original = report_charts.to_data_uri

    def keep(fig: Figure) -> str:
        uri = original(fig)  # formats the axes as the report does, then renders
        seen.append(fig)
        return uri

    monkeypatch.setattr(report_charts, "to_data_uri", keep)
    return seen


def _big_period() -> pd.Series:
    # ARR in the tens of millions with small moves: matplotlib's default is a "1e7" offset
    return pd.Series(
        {
            "period_label": "2025Q2",
            "starting_arr": 12_345_678.0,
            "expansion_arr": 456_789.0,
            "contraction_arr": 23_456.0,
            "churned_arr": 98_765.0,
            "new_arr": 150_000.0,
            "reactivation_arr": 4_321.0,
        }
    )


def test_chart_axes_have_no_scientific_offsets(
    inputs: ReportInputs, monkeypatch: pytest.MonkeyPatch
) -> None:
    figures = _figures(monkeypatch)
    build_sections(inputs)
    report_charts.arr_bridge_chart(_big_period())
    assert len(figures) >= len(EXPECTED_SECTIONS)
    for fig in figures:
        fig.canvas.draw()
        for ax in fig.axes:
            for axis in (ax.xaxis, ax.yaxis):
                assert axis.get_offset_text().get_text() == "", ax.get_title()
                for label in axis.get_ticklabels():
                    text = label.get_text()
                    assert "e+0" not in text and "1e" not in text, (ax.get_title(), text)
    bridge = figures[-1].axes[0]
    ticks = [t.get_text() for t in bridge.yaxis.get_ticklabels() if t.get_text()]
    assert ticks and all(t.startswith("$") and t[-1] in "MK" for t in ticks), ticks
    values = {t.get_text() for t in bridge.texts}
    assert "+$154K" in values  # the new + reactivated bar carries its value


def test_currency_labels() -> None:
    assert report_charts.currency(1_200_000) == "$1.2M"
    assert report_charts.currency(450_000) == "$450K"
    assert report_charts.currency(2_500) == "$2.5K"
    assert report_charts.currency(-55_000) == "-$55K"
    column = report_charts.money_column(pd.Series([114.0, 40_000.0, 12_000.0]))
    assert [column(v) for v in (114.0, 40_000.0)] == ["$0.1K", "$40K"]  # one unit per column


def test_table_headers_are_human(page: str) -> None:
    headers = re.findall(r"<th>(.*?)</th>", page)
    assert headers and not [h for h in headers if "_" in h]
    assert "Expansion" in headers and "expansion_arr" not in headers


def _cohorts(rows: list[tuple[str, int, float]]) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "group": [g for g, _, _ in rows],
            "starting_logos": [n for _, n, _ in rows],
            "starting_arr": [100_000.0 * n for _, n, _ in rows],
            "nrr": [r for _, _, r in rows],
            "grr": [0.9 for _ in rows],
        }
    )


def test_small_cohorts_are_greyed_and_never_headlined(inputs: ReportInputs) -> None:
    ranked = _cohorts(
        [
            ("Tiny - 2024Q1", 5, 3.28),
            ("SMB - 2023Q1", 40, 1.10),
            ("Mid-Market - 2023Q2", 25, 1.02),
            ("Enterprise - 2023Q3", 12, 0.95),
            ("Little - 2024Q2", 3, 0.10),
        ]
    )
    best, worst = cohort_extremes(ranked, min_accounts=10, n=1)
    assert list(best["group"]) == ["Tiny - 2024Q1", "SMB - 2023Q1"]
    assert list(worst["group"]) == ["Little - 2024Q2", "Enterprise - 2023Q3"]
    nrr = dataclasses.replace(inputs.nrr, best_cohorts=best, worst_cohorts=worst)
    section = cohort_section(nrr)
    assert "SMB - 2023Q1 at 110%" in section.reading
    assert "Enterprise - 2023Q3 at 95%" in section.reading
    for small in ("Tiny", "Little", "328%"):
        assert small in section.table  # shown, greyed
    assert section.table.count('<tr class="small">') == 2
    report = dataclasses.replace(inputs, nrr=nrr)
    for part in build_sections(report):
        assert "Tiny" not in part.reading and "Little" not in part.reading
        assert "328%" not in part.reading
    # nothing big enough: no cohort headlined at all
    alone = dataclasses.replace(inputs.nrr, best_cohorts=best.head(1), worst_cohorts=worst.head(1))
    assert "Tiny" not in cohort_section(alone).reading


def test_min_cohort_size_is_read_from_the_rules() -> None:
    assert load_rules_config().revenue.min_cohort_accounts == 10


def test_at_risk_table_names_each_account_and_its_owner() -> None:
    subs, accounts = synthetic_company(0)
    ids = accounts["account_id"].astype(str)
    named = accounts.assign(
        name=[f"Acme {i}" for i in ids],
        csm_owner=["Ana Ruiz" if n % 2 else "Ben Okafor" for n in range(len(ids))],
    )
    as_of = pd.Timestamp("2025-07-01")
    book = make_book(subs, accounts, as_of)
    scored = book.loc[:, ["account_id", "churn_probability", "expansion_probability"]]
    report, _ = prepare_report(
        subscriptions=subs,
        accounts=named,
        scored=scored,
        as_of=as_of,
        data_end=as_of,
        draws=200,
        seed=0,
        backtest=None,
    )
    risk = {s.key: s for s in build_sections(report)}["top_risk"]
    top = report.forecast.top_at_risk
    assert not top.empty
    for row in top.itertuples():
        assert f'<td class="text">{row.account_id}</td>' in risk.table
        assert f"Acme {row.account_id}" in risk.table
        assert row.csm_owner in risk.table
    assert "<th>Account</th>" in risk.table and "<th>CSM owner</th>" in risk.table
    assert "table-wrap" in risk.table
