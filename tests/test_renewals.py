"""Renewal calendar: dates, month-to-month accounts, high risk, 90/60/30-day alerts, owners."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from rules_factories import AS_OF, default_config

from models.rules.renewals import CALENDAR_COLUMNS, monthly_at_risk, renewal_calendar

CONFIG = default_config()


def _frames(rows: list[dict]) -> tuple[pd.DataFrame, pd.DataFrame]:
    snaps = pd.DataFrame(
        {
            "account_id": pd.array([f"a{i}" for i in range(len(rows))], dtype="string"),
            "as_of": AS_OF,
            "arr": [r.get("arr", 1000.0) for r in rows],
            "csm_owner": pd.array([r.get("owner", "kim") for r in rows], dtype="string"),
            "renewal_at": pd.to_datetime(
                [
                    AS_OF + pd.Timedelta(days=r["days"]) if r.get("days") is not None else pd.NaT
                    for r in rows
                ]
            ),
        }
    )
    health = pd.DataFrame(
        {
            "health_score": [r.get("score", 80.0) for r in rows],
            "health_band": pd.array([r.get("band", "Healthy") for r in rows], dtype="string"),
        }
    )
    return snaps, health


def _calendar(
    rows: list[dict], *, within: int = 365, p_churn: list[float] | None = None
) -> pd.DataFrame:
    snaps, health = _frames(rows)
    churn = None if p_churn is None else pd.Series(p_churn, index=snaps.index)
    return renewal_calendar(
        snaps,
        as_of=AS_OF,
        within_days=within,
        health=health,
        churn_probability=churn,
        config=CONFIG,
    )


@pytest.mark.parametrize(
    ("days", "tier"),
    [(-5, 30), (0, 30), (30, 30), (31, 60), (60, 60), (61, 90), (90, 90), (91, None)],
)
def test_alert_tier_for_high_risk_accounts(days: int, tier: int | None) -> None:
    cal = _calendar([{"days": days, "band": "At risk"}])
    value = cal["alert_days"].iloc[0]
    assert (pd.isna(value) and tier is None) or value == tier


@pytest.mark.parametrize(
    ("band", "p_churn", "high"),
    [
        ("Thriving", None, False),
        ("Healthy", None, False),
        ("At risk", None, True),
        ("Critical", None, True),
        ("Churning", None, True),
        ("Healthy", 0.3, False),
        ("Healthy", 0.31, True),
    ],
)
def test_high_risk_is_band_or_churn_probability(
    band: str, p_churn: float | None, high: bool
) -> None:
    cal = _calendar([{"days": 20, "band": band}], p_churn=None if p_churn is None else [p_churn])
    assert bool(cal["high_risk"].iloc[0]) is high
    assert pd.isna(cal["alert_days"].iloc[0]) is not high


def test_window_sorting_and_stale_dates() -> None:
    rows: list[dict] = [
        {"days": 80, "arr": 5.0},
        {"days": 10, "arr": 1.0},
        {"days": 10, "arr": 9.0},
        {"days": 200},
        {"days": -3},
    ]
    cal = _calendar(rows, within=90)
    # the overdue term (ended 3 days ago, still in the book) comes first, then the soonest
    assert list(cal["account_id"]) == ["a4", "a2", "a1", "a0"]
    assert list(cal["days_left"]) == [-3.0, 10.0, 10.0, 80.0]
    assert list(cal["overdue"]) == [True, False, False, False]
    assert list(cal.columns) == list(CALENDAR_COLUMNS)


def test_an_overdue_renewal_is_due_in_every_window_and_alerts_at_the_first_tier() -> None:
    rows: list[dict] = [{"days": -20, "band": "At risk"}, {"days": -1, "band": "Healthy"}]
    for within in (0, 30, 365):
        cal = _calendar(rows, within=within)
        assert list(cal["account_id"]) == ["a0", "a1"]
    cal = _calendar(rows, within=0)
    assert cal["alert_days"].iloc[0] == 30  # the smallest tier of rules.yaml's 90/60/30
    assert pd.isna(cal["alert_days"].iloc[1])  # not high risk: listed, no alert


def test_month_to_month_accounts_are_not_renewals_but_the_monthly_at_risk_view() -> None:
    rows = [
        {"days": None, "band": "Critical", "score": 30.0},
        {"days": None, "band": "Healthy"},
        {"days": None, "band": "Healthy"},
        {"days": 20, "band": "Critical"},
    ]
    cal = _calendar(rows, within=90, p_churn=[0.2, 0.6, 0.1, 0.5])
    assert list(cal["account_id"]) == ["a3"] and not cal["month_to_month"].any()
    snaps, health = _frames(rows)
    view = monthly_at_risk(
        snaps,
        as_of=AS_OF,
        health=health,
        churn_probability=pd.Series([0.2, 0.6, 0.1, 0.5], index=snaps.index),
        config=CONFIG,
    )
    # high risk (band, or churn probability above 0.3), highest churn probability first
    assert list(view["account_id"]) == ["a1", "a0"]
    assert view["month_to_month"].all() and view["days_left"].isna().all()
    assert view["renewal_at"].isna().all() and view["alert_days"].isna().all()


@pytest.mark.parametrize(("owner", "unowned"), [("kim", False), ("  ", True), (None, True)])
def test_unowned_accounts_are_flagged(owner: str | None, unowned: bool) -> None:
    cal = _calendar([{"days": 5, "owner": owner}])
    assert bool(cal["unowned"].iloc[0]) is unowned
    assert pd.isna(cal["csm_owner"].iloc[0]) is unowned


def test_churn_probability_is_carried_and_aligned_by_index() -> None:
    snaps, health = _frames([{"days": 5}, {"days": 6}])
    snaps.index = health.index = pd.Index([10, 20])
    p = pd.Series([0.9, 0.1], index=[20, 10])
    cal = renewal_calendar(
        snaps, as_of=AS_OF, within_days=90, health=health, churn_probability=p, config=CONFIG
    )
    np.testing.assert_allclose(cal["churn_probability"], [0.1, 0.9])


def test_snapshots_at_another_date_are_an_error() -> None:
    snaps, health = _frames([{"days": 5}])
    with pytest.raises(ValueError, match="as_of"):
        renewal_calendar(
            snaps,
            as_of=AS_OF + pd.Timedelta(days=1),
            within_days=90,
            health=health,
            churn_probability=None,
            config=CONFIG,
        )
    with pytest.raises(ValueError, match="within_days"):
        renewal_calendar(
            snaps, as_of=AS_OF, within_days=-1, health=health, churn_probability=None, config=CONFIG
        )


def test_nrr_renewals_command_prints_the_calendar(tmp_path) -> None:
    from rules_factories import write_tiny_company
    from typer.testing import CliRunner

    from nrr.cli import build_app

    write_tiny_company(tmp_path / "data")
    result = CliRunner().invoke(
        build_app(),
        ["renewals", "--data", str(tmp_path / "data"), "--within", "90"],
        env={"COLUMNS": "200"},
    )
    assert result.exit_code == 0, result.output
    assert "x" in result.output and "2026-04-15" in result.output
    assert "monthly" not in result.output  # month-to-month accounts are not renewals
    assert "2027-01-01" not in result.output  # beyond 90 days
    monthly = CliRunner().invoke(
        build_app(),
        ["renewals", "--data", str(tmp_path / "data"), "--monthly"],
        env={"COLUMNS": "200"},
    )
    assert monthly.exit_code == 0, monthly.output
    assert "Month-to-month accounts at high risk" in monthly.output
