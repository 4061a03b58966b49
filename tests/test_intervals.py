"""The weighted metrics and the account bootstrap of training/intervals.py.

Weighted metrics are checked against sklearn / training.metrics on the same rows with the
rows repeated as often as their weight (an independent route to the same number); the
bootstrap against the textbook standard error of a mean.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import average_precision_score, roc_auc_score

from training import metrics
from training.intervals import (
    Ranked,
    account_bootstrap,
    brier,
    calibration_in_the_large,
    ece,
    interval_frame,
    pr_auc,
    recall_at_budget,
    roc_auc,
)


def _data(n: int = 400, seed: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    y = (rng.random(n) < 0.2).astype(float)
    # Rounded scores: many ties, which sklearn and ours must treat alike.
    p = np.clip(np.round(0.15 + 0.3 * y * rng.random(n) + 0.5 * rng.random(n), 2), 0.0, 0.99)
    w = rng.integers(0, 4, n).astype(float)
    return y, p, w


def test_unit_weights_equal_sklearn_and_training_metrics() -> None:
    y, p, _ = _data()
    ones = np.ones_like(y)
    ranked = Ranked.of(p)
    assert roc_auc(y, ranked, ones) == pytest.approx(roc_auc_score(y, p), abs=1e-12)
    assert pr_auc(y, ranked, ones) == pytest.approx(average_precision_score(y, p), abs=1e-12)
    for budget in (0.1, 0.2, 0.37):
        assert recall_at_budget(y, ranked, ones, budget=budget) == pytest.approx(
            metrics.recall_at_budget(y, p, budget=budget), abs=1e-12
        )
    assert ece(y, p, ones, bins=10) == pytest.approx(metrics.ece(y, p, bins=10), abs=1e-12)
    assert brier(y, p, ones) == pytest.approx(metrics.brier(y, p), abs=1e-12)
    assert calibration_in_the_large(y, p, ones) == pytest.approx(p.mean() - y.mean(), abs=1e-12)


def test_integer_weights_equal_the_metric_on_repeated_rows() -> None:
    y, p, w = _data(seed=1)
    reps = w.astype(int)
    y_rep, p_rep = np.repeat(y, reps), np.repeat(p, reps)
    ranked = Ranked.of(p)
    assert roc_auc(y, ranked, w) == pytest.approx(roc_auc_score(y_rep, p_rep), abs=1e-12)
    assert pr_auc(y, ranked, w) == pytest.approx(average_precision_score(y_rep, p_rep), abs=1e-12)
    assert ece(y, p, w, bins=10) == pytest.approx(metrics.ece(y_rep, p_rep, bins=10), abs=1e-12)
    assert brier(y, p, w) == pytest.approx(metrics.brier(y_rep, p_rep), abs=1e-12)


def test_recall_at_budget_with_distinct_scores_and_weights() -> None:
    # Scores 6 > 5 > ... > 1, weights 2,1,1,1,1,1 (8 rows in all): a 25% budget reviews
    # ceil(2) = 2 weighted rows, i.e. the first row (weight 2) only.
    y = np.array([1.0, 1.0, 0.0, 1.0, 0.0, 0.0])
    s = np.array([6.0, 5.0, 4.0, 3.0, 2.0, 1.0])
    w = np.array([2.0, 1.0, 1.0, 1.0, 1.0, 1.0])
    assert recall_at_budget(y, Ranked.of(s), w, budget=0.25) == pytest.approx(2 / 4)
    # 50%: 4 weighted rows = rows 0 (2), 1, 2 -> positives 2 + 1 of 4.
    assert recall_at_budget(y, Ranked.of(s), w, budget=0.5) == pytest.approx(3 / 4)


def test_one_class_gives_nan_not_an_error() -> None:
    y = np.zeros(5)
    ranked = Ranked.of(np.arange(5.0))
    assert math.isnan(roc_auc(y, ranked, np.ones(5)))
    assert math.isnan(pr_auc(y, ranked, np.ones(5)))


def test_bootstrap_interval_of_a_mean_matches_its_standard_error() -> None:
    # 2,000 accounts with 3 identical rows each: the interval must be that of 2,000
    # independent accounts (not 6,000 rows), +-1.96 * sd / sqrt(2000).
    rng = np.random.default_rng(3)
    value = rng.normal(size=2000)
    accounts = np.repeat(np.arange(2000), 3)
    x = np.repeat(value, 3)

    def mean(weights: np.ndarray) -> dict[str, float]:
        return {"mean": float(np.average(x, weights=weights))}

    point, lo, hi = account_bootstrap(accounts, mean, resamples=1000, seed=0)["mean"]
    assert point == pytest.approx(value.mean())
    half = 1.96 * value.std() / math.sqrt(2000)
    assert (hi - lo) / 2 == pytest.approx(half, rel=0.12)
    assert lo < point < hi


def test_bootstrap_draws_whole_accounts_and_is_seeded() -> None:
    accounts = pd.Series(["a", "a", "b", "c", "c", "c"])
    seen: list[np.ndarray] = []

    def record(weights: np.ndarray) -> dict[str, float]:
        seen.append(weights.copy())
        return {"total": float(weights.sum())}

    first = account_bootstrap(accounts, record, resamples=50, seed=5)
    for w in seen[1:]:
        assert w[0] == w[1] and w[3] == w[4] == w[5]  # one weight per account
        assert w[[0, 2, 3]].sum() == 3  # three accounts drawn per resample
    assert account_bootstrap(accounts, record, resamples=50, seed=5) == first


def test_undefined_resamples_are_left_out() -> None:
    # One positive account of 50: resamples without it have no ROC-AUC; the rest still count.
    accounts = np.arange(50)
    y = np.zeros(50)
    y[0] = 1.0
    ranked = Ranked.of(np.linspace(1, 0, 50))
    answer = account_bootstrap(
        accounts, lambda w: {"auc": roc_auc(y, ranked, w)}, resamples=100, seed=1
    )
    point, lo, hi = answer["auc"]
    assert point == 1.0 and lo == 1.0 and hi == 1.0


def test_interval_frame_splits_names() -> None:
    frame = interval_frame({"pooled|all|model|roc_auc": (0.8, 0.7, 0.9)}, columns=("scope", "group", "scorer"))  # fmt: skip
    assert frame.to_dict("records") == [
        {"scope": "pooled", "group": "all", "scorer": "model", "metric": "roc_auc",
         "value": 0.8, "low": 0.7, "high": 0.9}
    ]  # fmt: skip
    with pytest.raises(ValueError, match="parts"):
        interval_frame({"model|roc_auc": (0.8, 0.7, 0.9)}, columns=("scope", "group", "scorer"))
