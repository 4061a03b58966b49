"""Are themes churn- or expansion-correlated? The mention rate of each theme among accounts
that churned (expanded) in the 90 days after a month start, against the rest.

Rows are (account, month start) pairs of the snapshot spine whose label window closed
(labels from features/labels.py, the same definition the models train on); a row
"mentions" a theme when the account wrote a text of that theme in the 90 days before the
month start, so the texts come strictly before the outcome window. The interval of the
ratio of the two rates comes from a bootstrap over accounts (an account's rows move
together), so an account's repeated months do not narrow it.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from features.config import SnapshotConfig
from features.labels import build_labels
from features.source import DataSource
from features.spine import build_spine

OUTCOMES = ("churned", "expanded")


@dataclass(frozen=True)
class CorrelationSettings:
    """Which months, how far back a mention counts, how many bootstrap draws."""

    months: int = 12  # labelled month starts looked at (the latest ones)
    lookback_days: int = 90
    draws: int = 500
    level: float = 0.95
    seed: int = 0


def labelled_months(
    source: DataSource, settings: CorrelationSettings, config: SnapshotConfig
) -> pd.DataFrame:
    """account_id, as_of and the labels of the latest `months` labelled month starts."""
    horizon = pd.Timedelta(days=config.horizon_days)
    last = (source.data_end - horizon).to_period("M").to_timestamp()
    first = last - pd.DateOffset(months=settings.months - 1)
    spine = build_spine(source, start=first, end=last)
    labels = build_labels(source=source, spine=spine, config=config)
    return labels[labels["labelled"]].reset_index(drop=True)


def mentions(rows: pd.DataFrame, corpus: pd.DataFrame, k: int, lookback_days: int) -> np.ndarray:
    """rows x k: did the account write a text of theme j in [as_of - lookback, as_of)?"""
    out = np.zeros((len(rows), k), dtype=bool)
    texts = corpus.loc[corpus["theme"] >= 0, ["account_id", "at", "theme"]]
    keyed = rows[["account_id", "as_of"]].assign(row=np.arange(len(rows)))
    pairs = keyed.merge(texts, on="account_id")
    since = pairs["as_of"] - pd.Timedelta(days=lookback_days)
    hit = pairs[(pairs["at"] >= since) & (pairs["at"] < pairs["as_of"])]
    out[hit["row"].to_numpy(), hit["theme"].to_numpy()] = True
    return out


def _per_account(
    accounts: np.ndarray, flag: np.ndarray, said: np.ndarray
) -> tuple[np.ndarray, ...]:
    """Per account: rows with / without the outcome, and theme mentions in each."""
    codes, index = np.unique(accounts, return_inverse=True)
    a = codes.size
    n1 = np.bincount(index, weights=flag, minlength=a)
    n0 = np.bincount(index, weights=~flag, minlength=a)
    m1 = np.zeros((a, said.shape[1]))
    m0 = np.zeros((a, said.shape[1]))
    np.add.at(m1, index, said & flag[:, None])
    np.add.at(m0, index, said & ~flag[:, None])
    return n1, n0, m1, m0


def theme_correlation(
    rows: pd.DataFrame, said: np.ndarray, settings: CorrelationSettings
) -> pd.DataFrame:
    """Per theme and outcome: mention rates with / without it, their ratio and interval."""
    k = said.shape[1]
    out = pd.DataFrame({"theme": np.arange(k)})
    if rows.empty:  # history shorter than one label window: nothing to compare
        for short in ("churn", "expand"):
            out[f"{short}_rows"] = 0
            for col in ("mention_rate", "ratio", "ratio_low", "ratio_high"):
                out[f"{short}_{col}"] = np.nan
            out[f"rest_{short}_mention_rate"] = np.nan
        return out
    rng = np.random.default_rng(settings.seed)
    accounts = rows["account_id"].astype(str).to_numpy()
    n_accounts = np.unique(accounts).size
    weights = rng.multinomial(n_accounts, np.full(n_accounts, 1.0 / n_accounts), settings.draws)
    tail = (1.0 - settings.level) / 2.0
    for outcome in OUTCOMES:
        flag = rows[outcome].astype(bool).to_numpy()
        n1, n0, m1, m0 = _per_account(accounts, flag, said)
        with np.errstate(divide="ignore", invalid="ignore"):
            rate1, rate0 = m1.sum(0) / n1.sum(), m0.sum(0) / n0.sum()
            boot = ((weights @ m1) / (weights @ n1)[:, None]) / (
                (weights @ m0) / (weights @ n0)[:, None]
            )
        boot = np.where(np.isfinite(boot), boot, np.nan)
        short = outcome.removesuffix("ed")  # churn / expand
        out[f"{short}_rows"] = int(flag.sum())
        out[f"{short}_mention_rate"] = rate1
        out[f"rest_{short}_mention_rate"] = rate0
        out[f"{short}_ratio"] = rate1 / np.where(rate0 > 0, rate0, np.nan)
        out[f"{short}_ratio_low"] = np.nanquantile(boot, tail, axis=0)
        out[f"{short}_ratio_high"] = np.nanquantile(boot, 1.0 - tail, axis=0)
    return out


def correlation_reading(low: float, high: float) -> str:
    """`more`, `less` or `no difference`: where the interval of the ratio lies against 1."""
    if low > 1.0:
        return "more"
    if high < 1.0:
        return "less"
    return "no difference"
