"""Metrics: known values on hand-made cases, and the early-warning rule."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from training.metrics import (
    brier,
    early_warning_share,
    ece,
    flagged_high_risk,
    log_loss,
    ranking_metrics,
    recall_at_budget,
    top_lift,
)


def test_perfect_ranking_and_calibration() -> None:
    y = np.array([0, 0, 0, 1, 1], dtype=float)
    assert ranking_metrics(y, y, budget=0.4)["roc_auc"] == 1.0
    assert brier(y, y) == 0.0
    assert ece(y, np.where(y == 1, 0.99, 0.01)) == pytest.approx(0.01)


def test_brier_and_log_loss_of_a_constant_forecast() -> None:
    y = np.array([0, 1, 0, 1], dtype=float)
    p = np.full(4, 0.5)
    assert brier(y, p) == pytest.approx(0.25)
    assert log_loss(y, p) == pytest.approx(np.log(2))
    assert ece(y, p) == pytest.approx(0.0)


def test_lift_and_recall_at_budget() -> None:
    y = np.array([1, 0, 0, 0, 0, 0, 0, 0, 0, 1], dtype=float)
    s = np.arange(10, 0, -1, dtype=float)  # row 0 scored highest, row 9 lowest
    assert top_lift(y, s, share=0.1) == pytest.approx(1.0 / 0.2)
    assert recall_at_budget(y, s, budget=0.2) == pytest.approx(0.5)


def test_nan_scores_and_non_binary_labels_are_rejected() -> None:
    with pytest.raises(ValueError, match="NaN"):
        brier(np.array([0.0, 1.0]), np.array([0.1, np.nan]))
    with pytest.raises(ValueError, match="0/1"):
        brier(np.array([0.0, 2.0]), np.array([0.1, 0.2]))


def test_high_risk_is_the_top_share_within_each_as_of() -> None:
    as_of = pd.Series(pd.to_datetime(["2024-01-01"] * 5 + ["2024-02-01"] * 5))
    scores = np.array([0.9, 0.1, 0.2, 0.3, 0.4, 0.05, 0.01, 0.02, 0.03, 0.04])
    flags = flagged_high_risk(as_of, scores, share=0.2, threshold=None)
    assert flags.tolist() == [True] + [False] * 4 + [True] + [False] * 4
    assert flagged_high_risk(as_of, scores, share=0.2, threshold=0.35).sum() == 2


def test_a_churner_counts_as_caught_only_when_flagged_at_least_lead_days_before() -> None:
    rows = pd.DataFrame(
        {
            "account_id": ["a", "a", "b", "b", "c"],
            "as_of": pd.to_datetime(["2024-01-01", "2024-02-01"] * 2 + ["2024-01-01"]),
            "churn_at": pd.to_datetime(["2024-02-20"] * 2 + ["2024-02-20"] * 2 + [None]),
        }
    )
    # a: flagged on Feb 1, only 19 days before churn -> too late; b: flagged on Jan 1 -> caught.
    flags = np.array([False, True, True, False, True])
    share, counted = early_warning_share(rows, flags, lead_days=30)
    assert counted == 2
    assert share == pytest.approx(0.5)
