"""Evaluation metrics for a risk or likelihood score against 0/1 outcomes."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
from sklearn.metrics import average_precision_score, roc_auc_score

_EPS = 1e-12


def _checked(labels: np.ndarray, scores: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    y = np.asarray(labels, dtype=float)
    s = np.asarray(scores, dtype=float)
    if y.shape != s.shape or y.ndim != 1:
        raise ValueError(f"labels and scores must be 1-D of equal length, got {y.shape}, {s.shape}")
    if not np.isin(y, (0.0, 1.0)).all():
        raise ValueError("labels must be 0/1 without missing values")
    if np.isnan(s).any():
        raise ValueError("scores contain NaN")
    return y, s


def brier(labels: np.ndarray, probs: np.ndarray) -> float:
    """Mean squared error of probabilities."""
    y, p = _checked(labels, probs)
    return float(np.mean((p - y) ** 2))


def log_loss(labels: np.ndarray, probs: np.ndarray) -> float:
    """Mean negative log-likelihood, probabilities clipped away from 0 and 1."""
    y, p = _checked(labels, probs)
    p = np.clip(p, _EPS, 1 - _EPS)
    return float(-np.mean(y * np.log(p) + (1 - y) * np.log(1 - p)))


def ece(labels: np.ndarray, probs: np.ndarray, *, bins: int = 10) -> float:
    """Expected calibration error over equal-width probability bins."""
    y, p = _checked(labels, probs)
    which = np.minimum((p * bins).astype(int), bins - 1)
    total = 0.0
    for b in range(bins):
        mask = which == b
        if mask.any():
            total += mask.mean() * abs(p[mask].mean() - y[mask].mean())
    return float(total)


def _top(scores: np.ndarray, share: float) -> np.ndarray:
    n = max(1, math.ceil(len(scores) * share))
    # Stable order so ties resolve the same way every time.
    order = np.argsort(-scores, kind="stable")
    mask = np.zeros(len(scores), dtype=bool)
    mask[order[:n]] = True
    return mask


def top_lift(labels: np.ndarray, scores: np.ndarray, *, share: float = 0.1) -> float:
    """Positive rate among the top `share` by score over the overall positive rate."""
    y, s = _checked(labels, scores)
    if y.mean() == 0:
        return float("nan")
    return float(y[_top(s, share)].mean() / y.mean())


def recall_at_budget(labels: np.ndarray, scores: np.ndarray, *, budget: float = 0.2) -> float:
    """Share of all positives found when reviewing the top `budget` share by score."""
    y, s = _checked(labels, scores)
    if y.sum() == 0:
        return float("nan")
    return float(y[_top(s, budget)].sum() / y.sum())


def ranking_metrics(labels: np.ndarray, scores: np.ndarray, *, budget: float) -> dict[str, float]:
    """ROC-AUC, PR-AUC, top-decile lift and recall at the review budget (any monotone score)."""
    y, s = _checked(labels, scores)
    both = 0 < y.sum() < len(y)
    return {
        "roc_auc": float(roc_auc_score(y, s)) if both else float("nan"),
        "pr_auc": float(average_precision_score(y, s)) if both else float("nan"),
        "lift_top_decile": top_lift(y, s, share=0.1),
        "recall_at_budget": recall_at_budget(y, s, budget=budget),
    }


def probability_metrics(labels: np.ndarray, probs: np.ndarray, *, bins: int) -> dict[str, float]:
    """Brier, log loss and ECE of probabilities."""
    return {
        "brier": brier(labels, probs),
        "log_loss": log_loss(labels, probs),
        "ece": ece(labels, probs, bins=bins),
    }


def flagged_high_risk(
    as_of: pd.Series, scores: np.ndarray, *, share: float, threshold: float | None
) -> np.ndarray:
    """Rows flagged high-risk: probability above `threshold`, or the top `share` per as_of date."""
    s = np.asarray(scores, dtype=float)
    if threshold is not None:
        return s >= threshold
    flags = np.zeros(len(s), dtype=bool)
    for _, positions in pd.Series(np.arange(len(s))).groupby(as_of.to_numpy()):
        idx = positions.to_numpy()
        flags[idx[_top(s[idx], share)]] = True
    return flags


def early_warning_share(
    rows: pd.DataFrame, flags: np.ndarray, *, lead_days: int
) -> tuple[float, int]:
    """Share of churned accounts flagged at some as_of <= churn_at - lead_days, and how many counted.

    `rows` has account_id, as_of, churn_at; only accounts with a snapshot early enough count.
    """
    churn_at = rows.groupby("account_id")["churn_at"].min()
    churned = churn_at.dropna()
    if churned.empty:
        return float("nan"), 0
    deadline = rows["account_id"].map(churned) - pd.Timedelta(days=lead_days)
    early = (rows["as_of"] <= deadline).fillna(False).to_numpy(dtype=bool)
    eligible = set(rows.loc[early, "account_id"])
    if not eligible:
        return float("nan"), 0
    caught = set(rows.loc[early & flags, "account_id"])
    return len(caught & eligible) / len(eligible), len(eligible)
