"""The training recipe shrinks to the labelled history, in a fixed order, and says so."""

from __future__ import annotations

import pandas as pd
import pytest

from experiments import DEFAULT_EXPERIMENT
from training.config import load_experiment
from training.fit import holdout_split
from training.folds import NotEnoughHistoryError, time_folds
from training.history import plan_history, tuning_rows


def _grid(months: int, accounts: int = 6) -> pd.DataFrame:
    """Monthly snapshots; the last three are unlabelled (their 90-day window is still open)."""
    dates = pd.date_range("2023-01-01", periods=months, freq="MS")
    frame = pd.DataFrame(
        [(f"a{i}", d) for d in dates for i in range(accounts)], columns=["account_id", "as_of"]
    )
    frame["labelled"] = frame["as_of"] <= dates[-4]
    return frame


@pytest.fixture(scope="module")
def quarterly():  # type: ignore[no-untyped-def]
    return load_experiment(DEFAULT_EXPERIMENT)


def _labelled_dates(frame: pd.DataFrame) -> int:
    return frame.loc[frame["labelled"], "as_of"].nunique()


def test_three_years_keep_the_full_recipe(quarterly) -> None:  # type: ignore[no-untyped-def]
    plan = plan_history(_grid(36), quarterly)
    assert plan.reductions == ()
    assert plan.config == quarterly
    assert plan.labelled_dates == 33
    assert "full recipe" in plan.describe()


def test_two_years_keep_folds_and_calibration_and_tune_on_accounts(quarterly) -> None:  # type: ignore[no-untyped-def]
    # 21 labelled dates: 3 folds with a 3-date hold-out fit; the 10 dates before the first
    # cut are too few for inner folds with a date hold-out, so the inner fits hold out
    # accounts; two inner cuts 3 apart would leave the first only 2 training dates.
    plan = plan_history(_grid(24), quarterly)
    c = plan.config
    assert (c.backtest.folds, c.calibration.holdout, c.calibration.periods) == (3, "time", 3)
    assert c.tuning.trials == quarterly.tuning.trials and c.tuning.holdout == "accounts"
    assert c.tuning.inner_folds == 1
    assert plan.reductions == (
        "tuning on 1 inner fold (of 2), tuning's inner fits calibrate on held-out accounts",
    )


def test_eighteen_months_lose_a_fold_and_a_calibration_date(quarterly) -> None:  # type: ignore[no-untyped-def]
    # 15 labelled dates. Three cuts 3 apart start at date 6, leaving fold 0 only 4 training
    # dates: too few for a 3-date hold-out with 3 earlier fit dates. Two folds train on 7.
    frame = _grid(18)
    plan = plan_history(frame, quarterly)
    c = plan.config
    assert (c.backtest.folds, c.backtest.spacing) == (2, 3)
    assert (c.calibration.holdout, c.calibration.periods) == ("time", 2)
    assert plan.reductions[:2] == (
        "2 backtest folds (of 3)",
        "calibration on 2 date(s) (of 3)",
    )
    # The plan is feasible: every fold's training rows split into fit and hold-out rows
    # with the fit rows' label windows closed before the hold-out starts.
    rows = frame[frame["labelled"]].reset_index(drop=True)
    folds = time_folds(rows["as_of"], rows["labelled"], horizon_days=90, folds=2, spacing=3)
    for fold in folds:
        train = rows.iloc[fold.train].reset_index(drop=True)
        fit, cal = holdout_split(train, config=c)
        start = train["as_of"].iloc[cal].min()
        assert (train["as_of"].iloc[fit] + pd.Timedelta(days=90) <= start).all()
        assert train["as_of"].iloc[fit].nunique() >= c.calibration.min_fit_dates


def test_a_year_calibrates_on_held_out_accounts(quarterly) -> None:  # type: ignore[no-untyped-def]
    frame = _grid(12)
    plan = plan_history(frame, quarterly)
    c = plan.config
    assert c.backtest.folds == 1 and c.calibration.holdout == "accounts"
    assert c.tuning.trials == 0
    assert any("held-out accounts" in r for r in plan.reductions)
    assert plan.reductions[-1].startswith("tuning off")
    fit, cal = holdout_split(frame, config=c)
    # Whole accounts are held out: no account is on both sides.
    assert not set(frame["account_id"].iloc[fit]) & set(frame["account_id"].iloc[cal])
    assert set(frame.index[fit]) | set(frame.index[cal]) == set(frame.index)


def test_nine_months_still_train(quarterly) -> None:  # type: ignore[no-untyped-def]
    plan = plan_history(_grid(9), quarterly)
    assert plan.config.backtest.folds == 1
    assert plan.labelled_dates == 6


def test_below_the_minimum_is_one_clear_error(quarterly) -> None:  # type: ignore[no-untyped-def]
    # Labelled dates spanning less than the horizon: no training row before any test row.
    frame = _grid(6)
    assert _labelled_dates(frame) == 3
    with pytest.raises(NotEnoughHistoryError) as info:
        plan_history(frame, quarterly)
    message = str(info.value)
    assert "3 labelled snapshot date(s)" in message and "90 days" in message
    assert "\n" not in message


def test_tuning_keeps_what_the_early_rows_allow(quarterly) -> None:  # type: ignore[no-untyped-def]
    frame = _grid(36)
    plan = plan_history(frame, quarterly)
    assert plan.reductions == ()
    rows = frame[frame["labelled"]].reset_index(drop=True)
    early = tuning_rows(rows, plan.config)
    first_cut = time_folds(rows["as_of"], rows["labelled"], horizon_days=90, folds=3, spacing=3)[
        0
    ].cut
    assert (early["as_of"] + pd.Timedelta(days=90) <= first_cut).all()
    assert len(early) == int((rows["as_of"] + pd.Timedelta(days=90) <= first_cut).sum())


def test_plan_is_logged_as_plain_json(quarterly) -> None:  # type: ignore[no-untyped-def]
    import json

    plan = plan_history(_grid(12), quarterly)
    data = json.loads(json.dumps(plan.to_dict()))
    assert data["backtest_folds"] == 1 and data["calibration_holdout"] == "accounts"
    assert data["summary"] == plan.describe()
