"""Forecast tables of the leadership report, built from tiny synthetic histories."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from models.revenue.amounts import arr_change_events, fit_amount_model
from models.revenue.forecast_book import (
    book_at,
    contraction_rates,
    history_at,
    quarter_start,
    subscriptions_known_at,
)
from serving.forecasting import ForecastTables, build_forecast, build_nrr_tables

T = pd.Timestamp
SEGMENTS = ("SMB", "Mid-Market", "Enterprise")


def synthetic_company(
    seed: int = 0, n_accounts: int = 60, months: int = 24
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Accounts with quarterly renewals that may expand, contract or churn; (subs, accounts)."""
    rng = np.random.default_rng(seed)
    start = T("2024-01-01")
    subs, accounts = [], []
    for i in range(n_accounts):
        aid = f"a{i:03d}"
        segment = SEGMENTS[i % 3]
        created = start + pd.DateOffset(months=int(rng.integers(0, 6)))
        accounts.append((aid, segment, created, ["Finance", "Tech"][i % 2]))
        arr, at = float(rng.integers(5, 50)) * 1000, created
        while at < start + pd.DateOffset(months=months):
            end = at + pd.DateOffset(months=3)
            roll = rng.random()
            churn = roll < 0.05
            subs.append((aid, at, end if churn else end, arr, "Pro" if i % 4 else "Basic"))
            if churn:
                break
            arr = arr * (1.3 if roll < 0.2 else 0.8 if roll < 0.28 else 1.0)
            at = end
        else:
            subs[-1] = (*subs[-1][:2], pd.NaT, *subs[-1][3:])
    sub_frame = pd.DataFrame(subs, columns=["account_id", "start_at", "end_at", "arr", "plan"])
    sub_frame = sub_frame.astype({"start_at": "datetime64[ns]", "end_at": "datetime64[ns]"})
    acc = pd.DataFrame(accounts, columns=["account_id", "segment", "created_at", "industry"])
    return sub_frame, acc.astype({"created_at": "datetime64[ns]"})


def make_book(
    subs: pd.DataFrame, accounts: pd.DataFrame, as_of: pd.Timestamp, seed: int = 1
) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    book = book_at(subs, accounts, as_of=as_of)
    bands = np.array(["Thriving", "Healthy", "At risk", "Critical"], dtype=object)
    return book.assign(
        churn_probability=rng.uniform(0.01, 0.3, len(book)),
        expansion_probability=rng.uniform(0.05, 0.4, len(book)),
        health_score=rng.uniform(0, 100, len(book)),
        health_band=bands[rng.integers(0, 4, len(book))],
    )


def forecast_for(seed: int = 0, draws: int = 2000) -> ForecastTables:
    subs, accounts = synthetic_company(seed)
    as_of = T("2025-07-01")
    known = subscriptions_known_at(subs, as_of=as_of)
    amounts = fit_amount_model(arr_change_events(known, accounts, data_end=as_of))
    rates = contraction_rates(subs, accounts, as_of=as_of)
    return build_forecast(
        make_book(subs, accounts, as_of),
        amount_model=amounts,
        rates=rates,
        as_of=as_of,
        draws=draws,
        seed=seed,
    )


@pytest.fixture(scope="module")
def tables() -> ForecastTables:
    return forecast_for()


def test_quantiles_are_ordered_for_every_metric_and_group(tables: ForecastTables) -> None:
    for frame in (tables.summary, tables.fan):
        assert (frame["p10"] <= frame["p50"] + 1e-9).all()
        assert (frame["p50"] <= frame["p90"] + 1e-9).all()
    assert set(tables.summary["group"]) == {"All", *SEGMENTS}


def test_pooled_starting_arr_and_means_equal_the_sum_of_segments(tables: ForecastTables) -> None:
    s = tables.summary.set_index(["metric", "group"])
    for metric in ("starting_arr", "expansion_arr", "churned_arr", "ending_arr"):
        pooled = s.loc[(metric, "All"), "mean"]
        parts = sum(s.loc[(metric, g), "mean"] for g in SEGMENTS)
        assert pooled == pytest.approx(parts, rel=1e-9)
    assert s.loc[("starting_arr", "All"), "mean"] == pytest.approx(tables.accounts["arr"].sum())


def test_simulated_means_match_per_account_expectations(tables: ForecastTables) -> None:
    s = tables.summary.set_index(["metric", "group"])
    for metric, column in (
        ("expansion_arr", "expected_expansion_arr"),
        ("churned_arr", "expected_churned_arr"),
    ):
        assert s.loc[(metric, "All"), "mean"] == pytest.approx(
            tables.accounts[column].sum(), rel=0.05
        )


def test_top_accounts_are_ordered_and_limited(tables: ForecastTables) -> None:
    risk = tables.top_at_risk["arr_at_risk"].to_numpy()
    grow = tables.top_expansion["expected_expansion_arr"].to_numpy()
    assert len(risk) == 10 and (np.diff(risk) <= 0).all()
    assert (np.diff(grow) <= 0).all()
    assert risk[0] == pytest.approx(tables.accounts["arr_at_risk"].max())


def test_health_bands_cover_the_book_in_domain_order(tables: ForecastTables) -> None:
    bands = tables.health_bands
    assert bands["accounts"].sum() == len(tables.accounts)
    assert bands["arr_share"].sum() == pytest.approx(1.0)
    order = ["Thriving", "Healthy", "At risk", "Critical"]
    assert list(bands["health_band"]) == [b for b in order if b in set(bands["health_band"])]


def test_fan_labels_quarters_from_the_forecast_date(tables: ForecastTables) -> None:
    labels = tables.fan.drop_duplicates("quarter").sort_values("quarter")["quarter_label"]
    assert list(labels) == ["2025Q3", "2025Q4", "2026Q1", "2026Q2"]
    assert tables.quarter == "2025Q3"


def test_same_seed_same_forecast_and_json_is_serialisable() -> None:
    a, b = forecast_for(seed=3, draws=500), forecast_for(seed=3, draws=500)
    pd.testing.assert_frame_equal(a.summary, b.summary)
    data = a.to_dict()
    assert data["quarter"] == "2025Q3" and "New-logo ARR is out of scope" in data["scope"]
    assert {r["metric"] for r in data["summary"]} >= {"nrr", "grr", "ending_arr"}


def test_book_ignores_subscriptions_after_the_forecast_date() -> None:
    subs, accounts = synthetic_company(2)
    as_of = T("2025-01-01")
    future = subs.assign(arr=np.where(subs["start_at"] >= as_of, 1e9, subs["arr"]))
    pd.testing.assert_frame_equal(
        book_at(subs, accounts, as_of=as_of), book_at(future, accounts, as_of=as_of)
    )
    pd.testing.assert_frame_equal(
        contraction_rates(subs, accounts, as_of=as_of),
        contraction_rates(future, accounts, as_of=as_of),
    )
    past, with_future = (history_at(s, accounts, as_of=as_of) for s in (subs, future))
    assert past.amounts.to_dict() == with_future.amounts.to_dict()
    assert past.shock == with_future.shock
    pd.testing.assert_frame_equal(past.rates, with_future.rates)
    # and the future rows really were different: the whole-history model sees them
    later = T("2026-01-01")
    assert history_at(subs, accounts, as_of=later).amounts.to_dict() != (
        history_at(future, accounts, as_of=later).amounts.to_dict()
    )


def test_contraction_rates_count_contractions_and_shrink_to_pooled() -> None:
    subs = pd.DataFrame(
        {
            "account_id": ["x", "x", "y"],
            "start_at": pd.to_datetime(["2024-01-01", "2024-04-01", "2024-01-01"]),
            "end_at": pd.to_datetime(["2024-04-01", None, None]),
            "arr": [100.0, 50.0, 100.0],
            "plan": ["P", "P", "P"],
        }
    )
    accounts = pd.DataFrame({"account_id": ["x", "y"], "segment": ["A", "B"]})
    rates = contraction_rates(
        subs, accounts, as_of=T("2024-07-01"), quarters=2, prior_accounts=0.0
    ).set_index("segment")
    assert rates.loc["All", "starts"] == 4 and rates.loc["All", "contractions"] == 1
    assert rates.loc["A", "rate"] == pytest.approx(0.5)
    assert rates.loc["B", "rate"] == pytest.approx(0.0)


def test_bad_book_is_rejected_with_the_column_named() -> None:
    subs, accounts = synthetic_company(1, n_accounts=12)
    as_of = T("2025-01-01")
    book = make_book(subs, accounts, as_of).assign(churn_probability=1.5)
    amounts = fit_amount_model(arr_change_events(subs, accounts, data_end=as_of))
    rates = contraction_rates(subs, accounts, as_of=as_of)
    with pytest.raises(ValueError, match="churn_probability"):
        build_forecast(book, amount_model=amounts, rates=rates, as_of=as_of, seed=0)
    with pytest.raises(ValueError, match="2026Q1"):
        quarter_start("2026-1")


def test_nrr_tables_have_every_available_split_and_cohorts() -> None:
    subs, accounts = synthetic_company(4, n_accounts=30)
    nrr = build_nrr_tables(subs, accounts, data_end=T("2025-10-01"))
    assert set(nrr.by_split) == {"segment", "industry", "cohort", "plan"}
    assert not nrr.cohort_heatmap.empty
    pooled = nrr.quarterly.set_index("period_label")["starting_arr"]
    seg = nrr.by_split["segment"].groupby("period_label")["starting_arr"].sum()
    pd.testing.assert_series_equal(pooled.loc[seg.index], seg, check_names=False)
    assert nrr.to_dict()["quarterly"][0]["period_label"] == nrr.quarterly["period_label"].iloc[0]
