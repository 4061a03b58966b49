"""The win-back list: recently churned accounts ranked by the chance they come back.

Returns are in the data: a reactivation is a later paid period after a churn (a new spell
of `arr_timeline`). At a cut date T the candidates are the churns of the `lookback_days`
before T that are not back by T; the label is a return in [T, T + horizon_days). A small
logistic regression on what is known at T (days since churn, tenure at churn, churned ARR,
earlier returns, segment, ICP fit, inferred reason) is backtested on quarterly cut dates
(train only on cuts whose label window closed before the test cut) and then refitted on
every labelled cut to score today's candidates. Each row carries the seed's reason-matched
approach and its timing window (experiments/outcomes.yaml).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd
from scipy.stats import rankdata
from sklearn.linear_model import LogisticRegression

from models.outcomes.config import WinbackSpec
from models.revenue.nrr import UNKNOWN

NUMERIC = ("log_days_since_churn", "log_tenure_days", "log_churned_arr", "earlier_returns")
CATEGORICAL = ("segment", "icp_fit", "reason")
MIN_POSITIVES = 10  # fewer returns than this in the training cuts: base rate, no model
BOOTSTRAP = 500


@dataclass(frozen=True)
class WinbackBacktest:
    """Out-of-time figures of the return model: pooled over the test cuts."""

    rows: int
    returns: int
    auc: float
    auc_low: float
    auc_high: float
    mean_predicted: float
    observed_rate: float
    cuts: list[str] = field(default_factory=list)
    method: str = "logistic"

    def to_dict(self) -> dict[str, object]:
        return {k: getattr(self, k) for k in self.__dataclass_fields__}


def candidates_at(churns: pd.DataFrame, *, at: pd.Timestamp, lookback_days: int) -> pd.DataFrame:
    """Churns in [at - lookback, at) whose account is not back by `at`, with features at `at`."""
    since = at - pd.Timedelta(days=lookback_days)
    back = churns["returned_at"].notna() & (churns["returned_at"] < at)
    rows = churns[(churns["churn_at"] >= since) & (churns["churn_at"] < at) & ~back].copy()
    days = (at - rows["churn_at"]) / pd.Timedelta(days=1)
    rows["days_since_churn"] = days.to_numpy(dtype=float)
    rows["log_days_since_churn"] = np.log1p(rows["days_since_churn"])
    rows["log_tenure_days"] = np.log1p(rows["tenure_days"].astype(float).clip(lower=0))
    rows["log_churned_arr"] = np.log1p(rows["churned_arr"].astype(float))
    rows["earlier_returns"] = rows["spell"].astype(float)
    rows["cut"] = at
    return rows.reset_index(drop=True)


def labelled(rows: pd.DataFrame, *, horizon_days: int) -> pd.Series:
    """Whether each candidate returns within the horizon after its cut date."""
    end = rows["cut"] + pd.Timedelta(days=horizon_days)
    returned = rows["returned_at"].notna() & (rows["returned_at"] < end)
    return returned.astype(bool)


def _design(rows: pd.DataFrame, levels: dict[str, list[str]]) -> np.ndarray:
    cols = [rows[c].to_numpy(dtype=float) for c in NUMERIC]
    for name, values in levels.items():
        text = rows[name].astype("string").fillna(UNKNOWN) if name in rows else None
        for level in values[1:]:  # first level is the reference
            cols.append(np.zeros(len(rows)) if text is None else (text == level).to_numpy(float))
    return np.column_stack(cols) if cols else np.zeros((len(rows), 0))


@dataclass(frozen=True)
class ReturnModel:
    """Logistic regression on standardised features, or the base rate when returns are rare."""

    levels: dict[str, list[str]]
    mean: np.ndarray
    scale: np.ndarray
    model: LogisticRegression | None
    base_rate: float

    def predict(self, rows: pd.DataFrame) -> np.ndarray:
        if self.model is None or rows.empty:
            return np.full(len(rows), self.base_rate)
        x = (_design(rows, self.levels) - self.mean) / self.scale
        return np.asarray(self.model.predict_proba(x)[:, 1], dtype=float)


def fit_return_model(rows: pd.DataFrame, y: np.ndarray, *, seed: int = 0) -> ReturnModel:
    """Fit on candidate rows and their return labels (L2-regularised, C=1)."""
    levels = {
        c: sorted(rows[c].astype("string").fillna(UNKNOWN).unique().tolist())
        for c in CATEGORICAL
        if c in rows
    }
    rate = float(np.mean(y)) if len(y) else 0.0
    if int(np.sum(y)) < MIN_POSITIVES or int(np.sum(~y.astype(bool))) < MIN_POSITIVES:
        return ReturnModel(levels, np.zeros(0), np.ones(0), None, rate)
    x = _design(rows, levels)
    mean, scale = x.mean(axis=0), x.std(axis=0)
    scale = np.where(scale > 0, scale, 1.0)
    model = LogisticRegression(C=1.0, max_iter=1000, random_state=seed)
    model.fit((x - mean) / scale, y.astype(int))
    return ReturnModel(levels, mean, scale, model, rate)


def cut_dates(
    churns: pd.DataFrame, *, data_end: pd.Timestamp, horizon_days: int
) -> list[pd.Timestamp]:
    """Quarter starts with churns before them and a label window closed by data_end."""
    if churns.empty:
        return []
    first = churns["churn_at"].min()
    grid = pd.date_range(first.normalize(), data_end, freq="QS")
    return [t for t in grid if t > first and t + pd.Timedelta(days=horizon_days) <= data_end]


def history_rows(
    churns: pd.DataFrame, *, spec: WinbackSpec, data_end: pd.Timestamp
) -> pd.DataFrame:
    """Candidates and labels at every labelled cut date (the training and backtest rows)."""
    cuts = cut_dates(churns, data_end=data_end, horizon_days=spec.horizon_days)
    parts = [candidates_at(churns, at=t, lookback_days=spec.lookback_days) for t in cuts]
    parts = [p for p in parts if not p.empty]
    if not parts:
        return pd.DataFrame()
    rows = pd.concat(parts, ignore_index=True)
    return rows.assign(returned=labelled(rows, horizon_days=spec.horizon_days))


def _auc(y: np.ndarray, p: np.ndarray) -> float:
    """ROC-AUC as the Mann-Whitney statistic (ties count half), much cheaper per bootstrap."""
    ranks = rankdata(p)
    pos = int(y.sum())
    neg = len(y) - pos
    return float((ranks[y == 1].sum() - pos * (pos + 1) / 2) / (pos * neg))


def _auc_interval(y: np.ndarray, p: np.ndarray, seed: int) -> tuple[float, float, float]:
    """AUC and its 90% bootstrap interval (rows resampled)."""
    if y.min() == y.max():
        return float("nan"), float("nan"), float("nan")
    auc = _auc(y, p)
    rng = np.random.default_rng(seed)
    boots = []
    for _ in range(BOOTSTRAP):
        idx = rng.integers(0, len(y), len(y))
        if y[idx].min() != y[idx].max():
            boots.append(_auc(y[idx], p[idx]))
    low, high = np.quantile(boots, [0.05, 0.95]) if boots else (np.nan, np.nan)
    return auc, float(low), float(high)


def backtest(rows: pd.DataFrame, *, horizon_days: int, seed: int = 0) -> WinbackBacktest | None:
    """Each cut scored by a model fitted on the cuts whose labels closed before it."""
    if rows.empty:
        return None
    horizon = pd.Timedelta(days=horizon_days)
    scored = []
    for cut in sorted(rows["cut"].unique()):
        train = rows[rows["cut"] + horizon <= cut]
        test = rows[rows["cut"] == cut]
        if train.empty or int(train["returned"].sum()) < MIN_POSITIVES:
            continue
        model = fit_return_model(train, train["returned"].to_numpy(bool), seed=seed)
        scored.append(test.assign(p=model.predict(test)))
    if not scored:
        return None
    out = pd.concat(scored, ignore_index=True)
    y = out["returned"].to_numpy(dtype=int)
    auc, low, high = _auc_interval(y, out["p"].to_numpy(float), seed)
    return WinbackBacktest(
        rows=len(out),
        returns=int(y.sum()),
        auc=auc,
        auc_low=low,
        auc_high=high,
        mean_predicted=float(out["p"].mean()),
        observed_rate=float(y.mean()),
        cuts=[f"{pd.Timestamp(c):%Y-%m-%d}" for c in sorted(out["cut"].unique())],
    )


WINBACK_COLUMNS: tuple[str, ...] = (
    "rank",
    "account_id",
    "name",
    "segment",
    "icp_fit",
    "churn_at",
    "days_since_churn",
    "tenure_days",
    "churned_arr",
    "return_probability",
    "expected_arr_back",
    "reason",
    "approach",
    "window_start",
    "window_end",
    "timing",
    "message",
)


def winback_list(
    candidates: pd.DataFrame, model: ReturnModel, *, spec: WinbackSpec, at: pd.Timestamp
) -> pd.DataFrame:
    """Today's candidates ranked by return probability, with the reason-matched play."""
    out = candidates.assign(return_probability=model.predict(candidates))
    out["expected_arr_back"] = out["return_probability"] * out["churned_arr"]
    plays = {r.reason: r for r in spec.reasons}
    out["approach"] = [plays[r].approach for r in out["reason"]]
    out["message"] = [plays[r].message for r in out["reason"]]
    lo = np.array([plays[r].window_days[0] for r in out["reason"]], dtype="timedelta64[D]")
    hi = np.array([plays[r].window_days[1] for r in out["reason"]], dtype="timedelta64[D]")
    churn = out["churn_at"].to_numpy(dtype="datetime64[ns]")
    out["window_start"] = (churn + lo).astype("datetime64[ns]")
    out["window_end"] = (churn + hi).astype("datetime64[ns]")
    at64 = np.datetime64(at)
    out["timing"] = np.where(
        at64 < out["window_start"].to_numpy(),
        "wait",
        np.where(at64 <= out["window_end"].to_numpy(), "now", "window passed"),
    )
    out = out.sort_values(
        ["return_probability", "churned_arr", "account_id"], ascending=[False, False, True]
    ).reset_index(drop=True)
    out["rank"] = np.arange(1, len(out) + 1)
    out["days_since_churn"] = out["days_since_churn"].round().astype("int64")
    return out.reindex(columns=list(WINBACK_COLUMNS))
