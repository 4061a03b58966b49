"""Time folds: training labels close before the cut, test windows follow it, nothing random."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from training.folds import NotEnoughHistoryError, calibration_split, time_folds


def _grid(months: int = 18, accounts: int = 4) -> pd.DataFrame:
    dates = pd.date_range("2024-01-01", periods=months, freq="MS")
    frame = pd.DataFrame(
        [(f"a{i}", d) for d in dates for i in range(accounts)], columns=["account_id", "as_of"]
    )
    # The last three dates are too recent to be labelled (90-day window still open).
    frame["labelled"] = frame["as_of"] <= dates[-4]
    return frame


def test_training_labels_close_before_each_cut_and_tests_follow_it() -> None:
    frame = _grid()
    folds = time_folds(frame["as_of"], frame["labelled"], horizon_days=90, folds=3, spacing=2)
    assert len(folds) == 3
    for fold in folds:
        train, test = frame.iloc[fold.train], frame.iloc[fold.test]
        assert (train["as_of"] + pd.Timedelta(days=90) <= fold.cut).all()
        assert (test["as_of"] >= fold.cut).all()
        if fold.end is not None:
            assert (test["as_of"] < fold.end).all()
        assert train["labelled"].all() and test["labelled"].all()
        assert not set(fold.train) & set(fold.test)


def test_cuts_are_the_last_labelled_dates_spaced_apart_and_windows_tile() -> None:
    frame = _grid()
    folds = time_folds(frame["as_of"], frame["labelled"], horizon_days=90, folds=3, spacing=2)
    labelled_dates = sorted(frame.loc[frame["labelled"], "as_of"].unique())
    assert [f.cut for f in folds] == [pd.Timestamp(d) for d in labelled_dates[-6::2]]
    tested = np.concatenate([f.test for f in folds])
    expected = np.flatnonzero((frame["labelled"] & (frame["as_of"] >= folds[0].cut)).to_numpy())
    assert sorted(tested) == list(expected)


def test_row_order_does_not_change_the_split() -> None:
    frame = _grid()
    shuffled = frame.sample(frac=1.0, random_state=1).reset_index(drop=True)
    a = time_folds(frame["as_of"], frame["labelled"], horizon_days=90, folds=2, spacing=3)
    b = time_folds(shuffled["as_of"], shuffled["labelled"], horizon_days=90, folds=2, spacing=3)
    for fa, fb in zip(a, b, strict=True):
        keys_a = set(map(tuple, frame.iloc[fa.test][["account_id", "as_of"]].to_numpy()))
        keys_b = set(map(tuple, shuffled.iloc[fb.test][["account_id", "as_of"]].to_numpy()))
        assert keys_a == keys_b


def test_too_short_history_is_a_clear_error() -> None:
    frame = _grid(months=6)
    with pytest.raises(NotEnoughHistoryError, match="labelled snapshot dates"):
        time_folds(frame["as_of"], frame["labelled"], horizon_days=90, folds=3, spacing=3)


def test_calibration_hold_out_is_the_latest_dates_and_fit_rows_closed_before_it() -> None:
    frame = _grid(months=12)
    fit, cal = calibration_split(frame["as_of"], horizon_days=90, periods=3)
    start = frame["as_of"].iloc[cal].min()
    assert start == pd.Timestamp("2024-10-01")
    assert (frame["as_of"].iloc[fit] + pd.Timedelta(days=90) <= start).all()
    assert len(cal) == 3 * 4
