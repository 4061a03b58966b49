"""All outcome tables of one export: churn timing cohorts and the win-back list.

The one place that turns a validated source into the tables the CLI, the report and the API
show, so `nrr timing`, `nrr winback` and `nrr forecast` agree.
"""

from __future__ import annotations

from dataclasses import dataclass

import pandas as pd

from features.source import DataSource
from models.outcomes.churns import churn_events
from models.outcomes.config import OutcomesConfig
from models.outcomes.reasons import churn_reasons
from models.outcomes.timing import timing_cohorts
from models.outcomes.winback import (
    WinbackBacktest,
    backtest,
    candidates_at,
    fit_return_model,
    history_rows,
    winback_list,
)

ATTRIBUTES = ("name", "segment", "icp_fit")


@dataclass(frozen=True)
class OutcomeTables:
    """What the report's outcome sections show."""

    data_end: pd.Timestamp
    first_churn: pd.Timestamp | None
    timing: pd.DataFrame
    winback: pd.DataFrame
    winback_backtest: WinbackBacktest | None
    icp_fit_present: bool


def _with_attributes(churns: pd.DataFrame, accounts: pd.DataFrame) -> pd.DataFrame:
    cols = [c for c in ATTRIBUTES if c in accounts.columns]
    attrs = accounts.loc[:, ["account_id", *cols]].drop_duplicates("account_id")
    attrs = attrs.assign(account_id=attrs["account_id"].astype("string"))
    out = churns.merge(attrs, on="account_id", how="left")
    for col in ATTRIBUTES:
        if col not in out:
            out[col] = pd.NA
    return out


def build_outcome_tables(
    source: DataSource, *, config: OutcomesConfig, grace_days: int, seed: int = 0
) -> OutcomeTables:
    """Timing cohorts over every churn in the data; the win-back list at data_end, backtested."""
    subscriptions = source.sql("SELECT * FROM subscriptions")
    accounts = source.sql("SELECT * FROM accounts")
    data_end = source.data_end
    churns = churn_events(subscriptions, accounts, data_end=data_end, grace_days=grace_days)
    timing = timing_cohorts(churns, accounts, bands=config.timing_bands)
    spec = config.winback
    churns = _with_attributes(churns, accounts)
    churns["reason"] = churn_reasons(
        source, churns, subscriptions=subscriptions, spec=spec, bands=config.timing_bands
    )
    rows = history_rows(churns, spec=spec, data_end=data_end)
    tested = backtest(rows, horizon_days=spec.horizon_days, seed=seed)
    today = candidates_at(churns, at=data_end, lookback_days=spec.lookback_days)
    # the served model learns from every labelled cut (the backtest above never saw its own)
    train = rows if not rows.empty else today.iloc[:0].assign(returned=False)
    model = fit_return_model(train, train["returned"].to_numpy(bool), seed=seed)
    return OutcomeTables(
        data_end=data_end,
        first_churn=None if churns.empty else pd.Timestamp(churns["churn_at"].min()),
        timing=timing,
        winback=winback_list(today, model, spec=spec, at=data_end),
        winback_backtest=tested,
        icp_fit_present=bool("icp_fit" in accounts.columns and accounts["icp_fit"].notna().any()),
    )
