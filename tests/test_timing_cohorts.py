"""Churn timing cohorts: tenure bands at churn, shares by segment and ICP fit (issue 16 part 3).

Expected figures are computed by hand from the tiny subscription histories below, not by the
code under test; the churn definition is the project's one (grace rule of features/sql.py).
"""

from __future__ import annotations

import pandas as pd
import pytest

from models.outcomes.churns import churn_events
from models.outcomes.config import OutcomesConfigError, load_outcomes_config
from models.outcomes.timing import band_of, band_ranges, timing_cohorts, timing_reading

END = pd.Timestamp("2025-01-01")
BANDS = load_outcomes_config().timing_bands
T = pd.Timestamp


def _subs(rows: list[tuple[str, str, str | None, float]]) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "account_id": [r[0] for r in rows],
            "start_at": [T(r[1]) for r in rows],
            "end_at": [T(r[2]) if r[2] else pd.NaT for r in rows],
            "plan": "Starter",
            "arr": [r[3] for r in rows],
        }
    )


def _accounts(ids: list[str], segment: list[str], icp: list[str] | None = None) -> pd.DataFrame:
    frame = pd.DataFrame({"account_id": ids, "created_at": T("2024-01-01"), "segment": segment})
    if icp is not None:
        frame["icp_fit"] = icp
    return frame


def test_band_boundaries_are_inclusive_upper_bounds() -> None:
    # days 0-30 activation failure, 31-90 adoption stall, 91-180 value gap, 181+ decay
    got = band_of(pd.Series([0, 30, 31, 90, 91, 180, 181, 2000]), BANDS)
    assert list(got) == [
        "activation failure",
        "activation failure",
        "adoption stall",
        "adoption stall",
        "value gap",
        "value gap",
        "relationship decay",
        "relationship decay",
    ]
    assert band_ranges(BANDS) == {
        "activation failure": "0-30",
        "adoption stall": "31-90",
        "value gap": "91-180",
        "relationship decay": "181+",
    }


def test_churns_use_the_grace_rule_and_tenure_of_each_relationship() -> None:
    subs = _subs(
        [
            ("A", "2024-01-01", "2024-01-31", 100.0),  # 30 days: activation failure
            # B: a 30-day gap (exactly the grace window) continues; churn 2024-05-30
            ("B", "2024-01-01", "2024-03-01", 200.0),
            ("B", "2024-03-31", "2024-05-30", 300.0),
            # C: churn after 60 days, back after a 31-day gap (a reactivation), still active
            ("C", "2024-01-01", "2024-03-01", 50.0),
            ("C", "2024-04-01", None, 80.0),
            ("D", "2024-01-01", None, 1000.0),  # never churned
        ]
    )
    accounts = _accounts(["A", "B", "C", "D"], ["SMB", "SMB", "Mid", "Mid"])
    churns = churn_events(subs, accounts, data_end=END, grace_days=30)
    got = churns.set_index("account_id")
    assert sorted(got.index) == ["A", "B", "C"]
    assert got.loc["A", "tenure_days"] == 30
    assert got.loc["B", "tenure_days"] == (T("2024-05-30") - T("2024-01-01")).days  # 150
    assert got.loc["B", "churned_arr"] == 300.0  # the ARR just before the churn
    assert got.loc["C", "tenure_days"] == 60
    assert got.loc["C", "returned_at"] == T("2024-04-01")
    assert pd.isna(got.loc["A", "returned_at"])


def test_tenure_starts_at_created_at_when_the_export_starts_later() -> None:
    subs = _subs([("A", "2024-06-01", "2024-07-01", 100.0)])
    accounts = pd.DataFrame(
        {"account_id": ["A"], "created_at": [T("2022-01-01")], "segment": ["SMB"]}
    )
    churns = churn_events(subs, accounts, data_end=END, grace_days=30)
    assert churns["tenure_days"].iloc[0] == (T("2024-07-01") - T("2022-01-01")).days


def test_undecided_trailing_end_is_not_a_churn() -> None:
    # ended 10 days before data_end: a renewal could still start within the grace window
    subs = _subs([("A", "2024-01-01", "2024-12-22", 100.0)])
    churns = churn_events(subs, _accounts(["A"], ["SMB"]), data_end=END, grace_days=30)
    assert churns.empty


def test_shares_by_segment_and_icp_fit() -> None:
    subs = _subs(
        [
            ("A", "2024-01-01", "2024-01-21", 100.0),  # 20 d, SMB, High
            ("B", "2024-01-01", "2024-03-01", 300.0),  # 60 d, SMB, Low
            ("C", "2024-01-01", "2024-09-01", 600.0),  # 244 d, Mid, Low
            ("D", "2024-01-01", "2024-09-01", 1000.0),  # 244 d, Mid, Low
        ]
    )
    accounts = _accounts(
        ["A", "B", "C", "D"], ["SMB", "SMB", "Mid", "Mid"], ["High", "Low", "Low", "Low"]
    )
    churns = churn_events(subs, accounts, data_end=END, grace_days=30)
    table = timing_cohorts(churns, accounts, bands=BANDS).set_index(["split", "group", "band"])
    table = table.sort_index()
    pooled = table.loc[("all", "All")]
    logos = pooled["churned_logos"]
    assert [logos[b.name] for b in BANDS] == [1, 1, 0, 2]
    assert pooled.loc["relationship decay", "arr_share"] == pytest.approx(1600 / 2000)
    assert pooled.loc["activation failure", "logo_share"] == pytest.approx(1 / 4)
    assert table.loc[("segment", "SMB", "adoption stall"), "arr_share"] == pytest.approx(300 / 400)
    assert table.loc[("segment", "Mid", "relationship decay"), "logo_share"] == pytest.approx(1.0)
    assert table.loc[("icp_fit", "Low", "relationship decay"), "arr_share"] == pytest.approx(
        1600 / 1900
    )
    assert table.loc[("icp_fit", "High", "value gap"), "churned_logos"] == 0
    for _, group in table.groupby(level=["split", "group"]):
        assert group["logo_share"].sum() == pytest.approx(1.0)
    assert "80% of churned ARR" in timing_reading(table.reset_index())


def test_without_icp_fit_there_is_no_icp_split() -> None:
    subs = _subs([("A", "2024-01-01", "2024-01-21", 100.0)])
    accounts = _accounts(["A"], ["SMB"])
    churns = churn_events(subs, accounts, data_end=END, grace_days=30)
    table = timing_cohorts(churns, accounts, bands=BANDS)
    assert set(table["split"]) == {"all", "segment"}


def test_no_churn_gives_zero_rows_and_a_plain_reading() -> None:
    subs = _subs([("A", "2024-01-01", None, 100.0)])
    accounts = _accounts(["A"], ["SMB"])
    churns = churn_events(subs, accounts, data_end=END, grace_days=30)
    table = timing_cohorts(churns, accounts, bands=BANDS)
    assert table["churned_logos"].sum() == 0
    assert timing_reading(table) == "No churn in the period: no timing cohorts."


def test_bands_must_increase(tmp_path) -> None:  # type: ignore[no-untyped-def]
    bad = tmp_path / "o.yaml"
    from importlib import resources

    raw = resources.files("experiments").joinpath("outcomes.yaml").read_text()
    bad.write_text(raw.replace("max_days: 90", "max_days: 20"))
    with pytest.raises(OutcomesConfigError, match="max_days must increase"):
        load_outcomes_config(bad)
    bad.write_text(
        raw.replace("  onboarding_bands: [activation failure", "  onboarding_bands: [nope")
    )
    with pytest.raises(OutcomesConfigError, match="not timing bands"):
        load_outcomes_config(bad)
