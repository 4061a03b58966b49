"""Account-level bootstrap intervals of the evaluation metrics.

Rows of one account (its monthly snapshots, over several cuts) are not independent, so a
resample draws whole accounts with replacement: an account drawn twice counts twice with
all its rows. A resample is a vector of row weights (how often each row's account was
drawn), and every metric here takes weights, so one sort per scorer serves all resamples.

Point estimates use the same functions with unit weights; with unit weights they equal
sklearn's roc_auc_score / average_precision_score and training.metrics (tests check).
Review lists are fixed by the scorer on the observed rows (the top share per snapshot date,
as the CS team would receive them); a resample re-weights who is on them, it does not
re-draw the list.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

DEFAULT_RESAMPLES = 500
DEFAULT_LEVEL = 0.95


@dataclass(frozen=True)
class Ranked:
    """Rows sorted once by score, descending, with tie groups (one threshold per group)."""

    order: np.ndarray  # row positions, highest score first
    group: np.ndarray  # tie group of each sorted row, 0 = highest score
    groups: int

    @classmethod
    def of(cls, scores: np.ndarray) -> Ranked:
        s = np.asarray(scores, dtype=float)
        order = np.argsort(-s, kind="stable")
        sorted_s = s[order]
        new = np.r_[True, sorted_s[1:] != sorted_s[:-1]]
        group = np.cumsum(new) - 1
        return cls(order, group, int(group[-1]) + 1 if len(group) else 0)


def _by_group(ranked: Ranked, values: np.ndarray) -> np.ndarray:
    return np.bincount(ranked.group, weights=values[ranked.order], minlength=ranked.groups)


def roc_auc(labels: np.ndarray, ranked: Ranked, weights: np.ndarray) -> float:
    """Weighted ROC-AUC: P(score of a positive > a negative's), ties counting one half."""
    pos = _by_group(ranked, weights * labels)
    neg = _by_group(ranked, weights * (1.0 - labels))
    total_pos, total_neg = pos.sum(), neg.sum()
    if total_pos <= 0 or total_neg <= 0:
        return float("nan")
    # Groups are in descending score: negatives below group g are those of later groups.
    below = total_neg - np.cumsum(neg)
    return float((pos * (below + 0.5 * neg)).sum() / (total_pos * total_neg))


def pr_auc(labels: np.ndarray, ranked: Ranked, weights: np.ndarray) -> float:
    """Weighted average precision: sum over thresholds of recall gained x precision there."""
    pos = _by_group(ranked, weights * labels)
    neg = _by_group(ranked, weights * (1.0 - labels))
    total_pos = pos.sum()
    if total_pos <= 0 or neg.sum() <= 0:
        return float("nan")
    tp, fp = np.cumsum(pos), np.cumsum(neg)
    with np.errstate(invalid="ignore", divide="ignore"):
        precision = np.where(tp + fp > 0, tp / (tp + fp), 0.0)
    return float((pos / total_pos * precision).sum())


def recall_at_budget(
    labels: np.ndarray, ranked: Ranked, weights: np.ndarray, *, budget: float
) -> float:
    """Share of (weighted) positives in the top `budget` share of (weighted) rows.

    As `training.metrics.recall_at_budget`: the first ceil(budget x n) rows by score.
    """
    w = weights[ranked.order]
    total = w.sum()
    if total <= 0:
        return float("nan")
    # A row is reviewed when the rows ranked above it fill less than the budget.
    before = np.cumsum(w) - w
    reviewed = before < math.ceil(budget * total - 1e-9)
    y = labels[ranked.order] * w
    positives = y.sum()
    return float(y[reviewed].sum() / positives) if positives > 0 else float("nan")


def brier(labels: np.ndarray, probs: np.ndarray, weights: np.ndarray) -> float:
    return float(np.average((probs - labels) ** 2, weights=weights))


def calibration_in_the_large(labels: np.ndarray, probs: np.ndarray, weights: np.ndarray) -> float:
    """Mean predicted probability minus observed rate (> 0: over-predicts)."""
    return float(np.average(probs - labels, weights=weights))


def ece(labels: np.ndarray, probs: np.ndarray, weights: np.ndarray, *, bins: int) -> float:
    """Weighted expected calibration error over equal-width bins (training.metrics.ece)."""
    which = np.minimum((probs * bins).astype(int), bins - 1)
    w = np.bincount(which, weights=weights, minlength=bins)
    gap = np.bincount(which, weights=weights * (probs - labels), minlength=bins)
    total = w.sum()
    return float(np.abs(gap).sum() / total) if total > 0 else float("nan")


Statistic = Callable[[np.ndarray], dict[str, float]]


def account_bootstrap(
    accounts: np.ndarray | pd.Series,
    statistic: Statistic,
    *,
    resamples: int = DEFAULT_RESAMPLES,
    seed: int = 0,
    level: float = DEFAULT_LEVEL,
) -> dict[str, tuple[float, float, float]]:
    """(point, low, high) of every value `statistic(row_weights)` returns.

    The one bootstrap of the project: `resamples` draws of the accounts with replacement
    (seeded), each turned into row weights; percentile interval at `level`. A resample in
    which a value is undefined (NaN, e.g. no positive drawn) is left out of that value.
    """
    if resamples < 1:
        raise ValueError(f"resamples must be at least 1, got {resamples}")
    if not 0 < level < 1:
        raise ValueError(f"level must be in (0, 1), got {level}")
    codes, uniques = pd.factorize(pd.Series(np.asarray(accounts, dtype=object)), sort=True)
    n_accounts = len(uniques)
    point = statistic(np.ones(len(codes)))
    draws: dict[str, list[float]] = {name: [] for name in point}
    rng = np.random.default_rng(seed)
    for _ in range(resamples):
        counts = np.bincount(rng.integers(0, n_accounts, n_accounts), minlength=n_accounts)
        for name, value in statistic(counts[codes].astype(float)).items():
            draws[name].append(value)
    tail = (1 - level) / 2
    out: dict[str, tuple[float, float, float]] = {}
    for name, value in point.items():
        values = np.asarray(draws[name], dtype=float)
        values = values[~np.isnan(values)]
        if len(values) == 0:
            out[name] = (value, float("nan"), float("nan"))
        else:
            lo, hi = np.quantile(values, [tail, 1 - tail])
            out[name] = (value, float(lo), float(hi))
    return out


def interval_frame(
    intervals: Mapping[str, tuple[float, float, float]], *, columns: Sequence[str]
) -> pd.DataFrame:
    """Long table of `account_bootstrap`'s answer whose names are "a|b|...|metric".

    One row per value: the name's parts in `columns`, then metric, value, low, high.
    """
    records = []
    for label, (point, lo, hi) in intervals.items():
        *parts, metric = label.split("|")
        if len(parts) != len(columns):
            raise ValueError(f"{label!r} does not have the parts {list(columns)} + metric")
        keys = dict(zip(columns, parts, strict=True))
        records.append({**keys, "metric": metric, "value": point, "low": lo, "high": hi})
    return pd.DataFrame.from_records(records)


def paired_auc_gain(
    accounts: np.ndarray | pd.Series,
    labels: np.ndarray,
    challenger: np.ndarray,
    champion: np.ndarray,
    *,
    resamples: int = DEFAULT_RESAMPLES,
    seed: int = 0,
    level: float = DEFAULT_LEVEL,
) -> tuple[float, float, float]:
    """(gain, low, high): challenger's ROC-AUC minus the champion's on the same rows, with
    the account-bootstrap interval of the difference (both scored on each resample)."""
    y = np.asarray(labels, dtype=float)
    first, second = Ranked.of(challenger), Ranked.of(champion)

    def gain(weights: np.ndarray) -> dict[str, float]:
        return {"gain": roc_auc(y, first, weights) - roc_auc(y, second, weights)}

    return account_bootstrap(accounts, gain, resamples=resamples, seed=seed, level=level)["gain"]
