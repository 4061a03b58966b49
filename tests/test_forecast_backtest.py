"""Backtest of the NRR forecast on a tiny synthetic company."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from models.revenue.forecast import pinball_loss
from models.revenue.nrr import account_flows, arr_at, arr_timeline, decompose
from tests.test_forecasting import synthetic_company
from training.forecast_backtest import (
    COLUMNS,
    Predictor,
    actual_nrr,
    backtest_forecast,
    backtest_quarters,
    forecast_quarter,
    horizon_table,
    naive_table,
    summarise,
)

T = pd.Timestamp
DATA_END = T("2026-01-01")
HORIZON = 90


def make_snapshots(subs: pd.DataFrame, accounts: pd.DataFrame) -> pd.DataFrame:
    """Monthly snapshots of active accounts with arr/segment/plan features and 90-day labels."""
    timeline = arr_timeline(subs, data_end=DATA_END)
    dates = pd.date_range("2024-01-01", DATA_END, freq="MS")
    ids = timeline["account_id"].unique()
    points = pd.DataFrame(
        {"account_id": np.repeat(ids, len(dates)), "at": np.tile(dates.to_numpy(), len(ids))}
    )
    now = arr_at(timeline, points)
    later = arr_at(timeline, points.assign(at=points["at"] + pd.Timedelta(days=HORIZON)))
    active = now["arr"].to_numpy() > 0
    labelled = (points["at"] + pd.Timedelta(days=HORIZON) <= DATA_END).to_numpy()
    seg = accounts.set_index("account_id")["segment"]
    frame = pd.DataFrame(
        {
            "account_id": points["account_id"].astype("string"),
            "as_of": points["at"].astype("datetime64[ns]"),
            "arr": now["arr"].to_numpy(),
            "plan": pd.array(now["plan"], dtype="string"),
            "segment": pd.array(seg.loc[points["account_id"]].to_numpy(), dtype="string"),
            "labelled": labelled,
            "churned": np.where(labelled, later["arr"].to_numpy() == 0, np.nan),
            "expanded": np.where(labelled, later["arr"].to_numpy() > now["arr"].to_numpy(), np.nan),
        }
    )
    return frame[active].reset_index(drop=True)


@pytest.fixture(scope="module")
def company() -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    subs, accounts = synthetic_company(5, n_accounts=90, months=24)
    return subs, accounts, make_snapshots(subs, accounts)


class MeanFitter:
    """Predicts the training label rate; records what each fit saw."""

    def __init__(self) -> None:
        self.seen: list[pd.DataFrame] = []

    def __call__(self, train: pd.DataFrame, target: str) -> Predictor:
        self.seen.append(train)
        rate = float(train["churned" if target == "churn" else "expanded"].astype(float).mean())
        return lambda rows: np.full(len(rows), rate)


def test_backtest_table_shape_coverage_and_pinball(company) -> None:
    subs, accounts, snaps = company
    table = backtest_forecast(
        snapshots=snaps,
        subscriptions=subs,
        accounts=accounts,
        data_end=DATA_END,
        draws=500,
        min_train_dates=3,
        min_positives=1,
        fit=MeanFitter(),
    )
    assert tuple(table.columns) == COLUMNS
    quarters = table["quarter_start"].drop_duplicates()
    assert len(quarters) >= 2
    assert (quarters + pd.DateOffset(months=3) <= DATA_END).all()
    assert set(table["segment"]) == {"All", "SMB", "Mid-Market", "Enterprise"}
    assert (table["p10"] <= table["p50"]).all() and (table["p50"] <= table["p90"]).all()
    expected = (table["actual"] >= table["p10"]) & (table["actual"] <= table["p90"])
    assert (table["covered"] == expected).all()
    row = table.iloc[0]
    assert row["pinball"] == pytest.approx(
        pinball_loss(row["actual"], [row["p10"], row["p50"], row["p90"]], (0.1, 0.5, 0.9))
    )
    figures = summarise(table)
    assert figures["quarters"] == len(quarters)
    first = table[(table["segment"] == "All") & (table["horizon"] == 1)]
    assert figures["pooled_coverage"] == pytest.approx(first["covered"].mean())
    # every origin is forecast as far ahead as the data covers, up to four quarters
    for q, part in table.groupby("quarter_start"):
        reach = max(h for h in range(1, 5) if q + pd.DateOffset(months=3 * h) <= DATA_END)
        assert sorted(set(part["horizon"])) == list(range(1, reach + 1))
    per = horizon_table(table)
    assert list(per["horizon"]) == sorted(set(table["horizon"]))
    for row in per.itertuples():
        pooled = table[(table["segment"] == "All") & (table["horizon"] == row.horizon)]
        assert row.origins == len(pooled)
        assert figures[f"h{row.horizon}.pooled_coverage"] == pytest.approx(pooled["covered"].mean())


def test_actual_nrr_over_horizons_and_the_compounded_naive(company) -> None:
    subs, accounts, _ = company
    q = T("2024-10-01")
    common = {"quarter_start": q, "data_end": DATA_END, "grace_days": 30}
    one = actual_nrr(subs, accounts, **common).set_index("segment")["actual"]
    # the horizon-1 path of the multi-quarter computation agrees with the quarterly bridge
    timeline = arr_timeline(subs, data_end=DATA_END)
    flows = account_flows(timeline, boundaries=[q, q + pd.DateOffset(months=3)])
    flows = flows[flows["arr_start"] > 0]
    kept = flows["arr_start"] + flows["expansion_arr"] - flows["contraction_arr"]
    assert one["All"] == pytest.approx(
        float((kept - flows["churned_arr"]).sum()) / float(flows["arr_start"].sum())
    )
    # two quarters: ARR kept at q + 6 months by the accounts of q, over their ARR at q
    two = actual_nrr(subs, accounts, horizon=2, **common).set_index("segment")["actual"]
    points = arr_at(
        timeline, pd.DataFrame({"account_id": timeline["account_id"].unique()}).assign(at=q)
    )
    later = arr_at(timeline, points.loc[:, ["account_id"]].assign(at=q + pd.DateOffset(months=6)))
    active = points["arr"].to_numpy() > 0
    assert two["All"] == pytest.approx(
        float(later["arr"].to_numpy()[active].sum()) / float(points["arr"].to_numpy()[active].sum())
    )
    history = {"pooled": decompose(subs, accounts, freq="quarter", data_end=DATA_END)}
    n1 = naive_table(history, quarter_start=q).iloc[0]
    n3 = naive_table(history, quarter_start=q, horizon=3).iloc[0]
    assert n3["naive_p50"] == pytest.approx(n1["naive_p50"] ** 3)
    assert n3["naive_p90"] - n3["naive_p50"] > n1["naive_p90"] - n1["naive_p50"]


def test_models_see_only_label_windows_closed_before_the_quarter(company) -> None:
    subs, accounts, snaps = company
    spy = MeanFitter()
    q = T("2025-04-01")
    backtest_forecast(
        snapshots=snaps,
        subscriptions=subs,
        accounts=accounts,
        data_end=DATA_END,
        draws=200,
        quarters=[q],
        fit=spy,
    )
    assert len(spy.seen) == 2
    for train in spy.seen:
        assert len(train) > 0
        assert (train["as_of"] + pd.Timedelta(days=HORIZON) <= q).all()
        assert train["labelled"].all()


def test_future_rows_do_not_change_a_quarter_forecast(company) -> None:
    subs, accounts, snaps = company
    q = T("2025-04-01")
    kwargs = {
        "subscriptions": subs,
        "accounts": accounts,
        "quarter_start": q,
        "horizon_days": HORIZON,
        "grace_days": 30,
        "draws": 300,
        "seed": 1,
    }
    base = forecast_quarter(snapshots=snaps, fit=MeanFitter(), **kwargs)
    # flip every label whose window was still open at q: a leak would move the forecast
    open_window = snaps["as_of"] + pd.Timedelta(days=HORIZON) > q
    flipped = snaps.assign(
        churned=snaps["churned"].where(~open_window, 1 - snaps["churned"]),
        expanded=snaps["expanded"].where(~open_window, 1 - snaps["expanded"]),
    )
    later_subs = subs.assign(arr=np.where(subs["start_at"] >= q, subs["arr"] * 7, subs["arr"]))
    moved = forecast_quarter(
        snapshots=flipped, fit=MeanFitter(), **{**kwargs, "subscriptions": later_subs}
    )
    pd.testing.assert_frame_equal(base, moved)


def test_quarters_need_enough_history_and_a_complete_quarter(company) -> None:
    _, _, snaps = company
    quarters = backtest_quarters(
        snaps, data_end=DATA_END, horizon_days=HORIZON, min_train_dates=6, min_positives=1
    )
    assert quarters and all(q.month in (1, 4, 7, 10) for q in quarters)
    assert max(quarters) + pd.DateOffset(months=3) <= DATA_END
    # first quarter with 6 closed label dates: Jan..Jun 2024 close by Oct 2024
    assert min(quarters) == T("2024-10-01")


def test_default_lightgbm_fit_produces_ordered_intervals(company) -> None:
    subs, accounts, snaps = company
    table = backtest_forecast(
        snapshots=snaps,
        subscriptions=subs,
        accounts=accounts,
        data_end=DATA_END,
        draws=300,
        quarters=[T("2025-07-01")],
    )
    # 2025Q3 + 2 quarters reach the data end: horizons 1 and 2, four groups each
    assert len(table) == 8 and sorted(set(table["horizon"])) == [1, 2]
    assert (table["p10"] <= table["p90"]).all()
    assert table["train_rows"].iloc[0] > 0 and table["scored_share"].iloc[0] > 0.9


def test_snapshots_without_labels_are_rejected(company) -> None:
    subs, accounts, snaps = company
    with pytest.raises(ValueError, match="labelled"):
        backtest_forecast(
            snapshots=snaps.drop(columns=["labelled"]),
            subscriptions=subs,
            accounts=accounts,
            data_end=DATA_END,
        )
